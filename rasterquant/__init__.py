"""rasterquant: approximate a raster density by a point cloud, fast.

Semi-discrete optimal transport between a pixel (2D) or voxel (3D) density and weighted
points, Lloyd-type quantization loops, stippling and microstructure generation.
"""

__version__ = "0.1.0"

from .assign import Cells, assign_cells, mass_jacobian
from .density import Density, read_density
from .energy import (
    barycenter_energy,
    critical_residual,
    min_separation,
    quantization_energy,
    voronoi_energy,
)
from .errors import (
    ConvergenceError,
    ConvergenceWarning,
    EmptyCellError,
    InsufficientMemoryError,
    RasterquantWarning,
    ResolutionWarning,
)
from .grid import Grid
from .io.points import read_points, write_points
from .lloyd import LloydResult, lloyd
from .microstructure import Microstructure, generate_microstructure
from .ot import OTResult, solve_ot
from .sampling import sample_points
from .stipple import StippleResult, stipple

__all__ = [
    "Cells",
    "ConvergenceError",
    "ConvergenceWarning",
    "Density",
    "EmptyCellError",
    "Grid",
    "InsufficientMemoryError",
    "LloydResult",
    "Microstructure",
    "OTResult",
    "RasterquantWarning",
    "ResolutionWarning",
    "StippleResult",
    "__version__",
    "assign_cells",
    "barycenter_energy",
    "critical_residual",
    "generate_microstructure",
    "lloyd",
    "mass_jacobian",
    "min_separation",
    "quantization_energy",
    "read_density",
    "read_points",
    "sample_points",
    "solve_ot",
    "stipple",
    "voronoi_energy",
    "write_points",
]
