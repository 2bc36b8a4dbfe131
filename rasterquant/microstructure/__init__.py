"""Polycrystalline microstructures: Laguerre grains of given volumes, statistics."""

from .generate import (
    VOLUME_LAWS,
    Microstructure,
    generate_microstructure,
    parse_volumes,
)
from .orientations import (
    TEXTURE_COMPONENTS,
    Orientations,
    PhaseVolumes,
    assign_orientations,
    cubic_symmetry,
    dual_phase_volumes,
    misorientation_angles,
    parse_texture,
    random_orientations,
    read_orientations,
    texture_orientations,
)
from .stats import (
    GrainStatistics,
    MisorientationStatistics,
    face_adjacency,
    grain_statistics,
    misorientation_statistics,
)

__all__ = [
    "TEXTURE_COMPONENTS",
    "VOLUME_LAWS",
    "GrainStatistics",
    "Microstructure",
    "MisorientationStatistics",
    "Orientations",
    "PhaseVolumes",
    "assign_orientations",
    "cubic_symmetry",
    "dual_phase_volumes",
    "face_adjacency",
    "generate_microstructure",
    "grain_statistics",
    "misorientation_angles",
    "misorientation_statistics",
    "parse_texture",
    "parse_volumes",
    "random_orientations",
    "read_orientations",
    "texture_orientations",
]
