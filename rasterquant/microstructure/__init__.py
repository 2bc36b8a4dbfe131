"""Polycrystalline microstructures: Laguerre grains of given volumes, statistics."""

from .anisotropic import (
    AnisotropicMicrostructure,
    aspect_metric,
    generate_anisotropic_microstructure,
    grain_second_moments,
)
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
    "AnisotropicMicrostructure",
    "GrainStatistics",
    "Microstructure",
    "MisorientationStatistics",
    "Orientations",
    "PhaseVolumes",
    "aspect_metric",
    "assign_orientations",
    "cubic_symmetry",
    "dual_phase_volumes",
    "face_adjacency",
    "generate_anisotropic_microstructure",
    "generate_microstructure",
    "grain_second_moments",
    "grain_statistics",
    "misorientation_angles",
    "misorientation_statistics",
    "parse_texture",
    "parse_volumes",
    "random_orientations",
    "read_orientations",
    "texture_orientations",
]
