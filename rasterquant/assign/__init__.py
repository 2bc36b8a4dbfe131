"""Power-cell assignment on rasters."""

from ._laguerre import cell_polygons
from .cells import (
    Cells,
    QuadratureSpec,
    assign_cells,
    mass_jacobian,
    quadrature_spec,
)

__all__ = [
    "Cells",
    "QuadratureSpec",
    "assign_cells",
    "cell_polygons",
    "mass_jacobian",
    "quadrature_spec",
]
