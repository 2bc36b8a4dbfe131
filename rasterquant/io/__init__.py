"""Input and output: images, volumes, point sets, VTK and Neper rasters, renders."""

from .atomic import atomic_write
from .images import read_image, read_volume
from .points import read_points, write_points
from .tesr import read_tesr, write_tesr
from .vtk import read_vti, write_vti

__all__ = [
    "atomic_write",
    "read_image",
    "read_points",
    "read_tesr",
    "read_volume",
    "read_vti",
    "write_points",
    "write_tesr",
    "write_vti",
]
