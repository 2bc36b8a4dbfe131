"""Polycrystalline microstructures: Laguerre grains of given volumes, statistics."""

from .generate import (
    VOLUME_LAWS,
    Microstructure,
    generate_microstructure,
    parse_volumes,
)
from .stats import GrainStatistics, face_adjacency, grain_statistics

__all__ = [
    "VOLUME_LAWS",
    "GrainStatistics",
    "Microstructure",
    "face_adjacency",
    "generate_microstructure",
    "grain_statistics",
    "parse_volumes",
]
