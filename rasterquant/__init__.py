"""rasterquant: approximate a raster density by a point cloud, fast.

Semi-discrete optimal transport between a pixel (2D) or voxel (3D) density and weighted
points, Lloyd-type quantization loops, stippling and microstructure generation.
"""

__version__ = "0.1.0"

from .assign import Cells, assign_cells, mass_jacobian
from .density import Density, read_density
from .errors import (
    ConvergenceWarning,
    EmptyCellError,
    RasterquantWarning,
    ResolutionWarning,
)
from .energy import min_separation, quantization_energy, voronoi_energy
from .grid import Grid
from .lloyd import LloydResult, lloyd
from .ot import OTResult, solve_ot
from .sampling import sample_points
from .io.points import read_points, write_points

__all__ = [
    "Cells",
    "ConvergenceWarning",
    "Density",
    "EmptyCellError",
    "Grid",
    "LloydResult",
    "OTResult",
    "RasterquantWarning",
    "ResolutionWarning",
    "__version__",
    "assign_cells",
    "lloyd",
    "min_separation",
    "quantization_energy",
    "read_points",
    "sample_points",
    "solve_ot",
    "voronoi_energy",
    "write_points",
    "mass_jacobian",
    "read_density",
]
