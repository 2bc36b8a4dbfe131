"""Power-cell assignment on rasters."""

from .cells import Cells, assign_cells, mass_jacobian

__all__ = ["Cells", "assign_cells", "mass_jacobian"]
