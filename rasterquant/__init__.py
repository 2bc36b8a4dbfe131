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
from .microstructure.anisotropic import generate_anisotropic_microstructure
from .ot import OTResult, solve_ot
from .ot.anisotropic import assign_anisotropic, solve_anisotropic
from .pen import TourResult, order_dots, tour_length, write_gcode, write_path_svg
from .sampling import sample_points
from .stipple import StippleResult, stipple
from .stipple_layers import LayeredStipple, StippleLayer, stipple_layers

__all__ = [
    "Cells",
    "ConvergenceError",
    "ConvergenceWarning",
    "Density",
    "EmptyCellError",
    "Grid",
    "InsufficientMemoryError",
    "LayeredStipple",
    "LloydResult",
    "Microstructure",
    "OTResult",
    "RasterquantWarning",
    "ResolutionWarning",
    "StippleLayer",
    "StippleResult",
    "TourResult",
    "__version__",
    "assign_anisotropic",
    "assign_cells",
    "barycenter_energy",
    "critical_residual",
    "generate_anisotropic_microstructure",
    "generate_microstructure",
    "lloyd",
    "mass_jacobian",
    "min_separation",
    "order_dots",
    "quantization_energy",
    "read_density",
    "read_points",
    "sample_points",
    "solve_anisotropic",
    "solve_ot",
    "stipple",
    "stipple_layers",
    "tour_length",
    "voronoi_energy",
    "write_gcode",
    "write_path_svg",
    "write_points",
]
