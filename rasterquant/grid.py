"""Raster grids: shape, spacing, origin and periodic axes.

Pixel ``k`` along axis ``a`` covers
``[origin[a] + k * spacing[a], origin[a] + (k + 1) * spacing[a])``; its centre is at
``origin[a] + (k + 0.5) * spacing[a]``. Points use the array axis order ``(row, col)``
or ``(z, row, col)`` in physical units.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

__all__ = ["Grid"]


def _per_axis(value, ndim, name, *, positive=False):
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    if arr.shape != (ndim,):
        raise ValueError(
            f"{name} must be a scalar or a sequence of {ndim} numbers, got {value!r}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and (arr <= 0).any():
        raise ValueError(f"{name} must be > 0 on every axis, got {value!r}")
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class Grid:
    """A regular 2D or 3D raster in physical units.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` or ``(D, H, W)``.
    spacing : float or sequence of float
        Pixel size along each array axis, > 0.
    origin : float or sequence of float
        Physical coordinate of the lower corner of pixel ``(0, ..., 0)``.
    periodic : bool or sequence of bool
        Axes on which the domain wraps around (a torus).

    Examples
    --------
    >>> g = Grid((4, 6), spacing=0.5)
    >>> g.extent
    ((0.0, 2.0), (0.0, 3.0))
    >>> g.n_pixels
    24
    """

    shape: tuple
    spacing: tuple = 1.0
    origin: tuple = 0.0
    periodic: tuple = False

    def __post_init__(self):
        shape = self.shape
        if isinstance(shape, (int, np.integer)):
            raise ValueError(
                f"shape must be a tuple (H, W) or (D, H, W), got the integer {shape}"
            )
        try:
            entries = tuple(shape)
        except TypeError:
            raise ValueError(
                f"shape must be a tuple of 2 or 3 positive integers, got {self.shape!r}"
            ) from None
        if not all(
            isinstance(s, (numbers.Integral, np.integer))
            and not isinstance(s, (bool, np.bool_))
            for s in entries
        ):
            raise ValueError(
                f"shape must be a tuple of 2 or 3 positive integers, got {self.shape!r}"
            )
        shape = tuple(int(s) for s in entries)
        if len(shape) not in (2, 3):
            raise ValueError(
                f"shape must have 2 or 3 axes (2D image or 3D volume), got {shape}"
            )
        if min(shape) < 1:
            raise ValueError(f"shape must be positive on every axis, got {shape}")
        ndim = len(shape)
        spacing = _per_axis(self.spacing, ndim, "spacing", positive=True)
        origin = _per_axis(self.origin, ndim, "origin")
        periodic = self.periodic
        if isinstance(periodic, (bool, np.bool_)):
            periodic = (bool(periodic),) * ndim
        periodic = tuple(bool(p) for p in periodic)
        if len(periodic) != ndim:
            raise ValueError(
                f"periodic must be a bool or {ndim} bools, got {self.periodic!r}"
            )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "periodic", periodic)

    @property
    def ndim(self) -> int:
        """Number of axes, 2 or 3."""
        return len(self.shape)

    @property
    def n_pixels(self) -> int:
        """Total number of pixels (voxels)."""
        return int(np.prod(self.shape))

    @property
    def lengths(self) -> np.ndarray:
        """Physical length of the box along each axis, ``(d,)``."""
        return np.array(self.shape, dtype=np.float64) * np.array(self.spacing)

    @property
    def extent(self) -> tuple:
        """``((lo, hi), ...)`` physical bounds of the box per axis."""
        return tuple(
            (o, o + n * h)
            for o, n, h in zip(self.origin, self.shape, self.spacing, strict=True)
        )

    @property
    def pixel_volume(self) -> float:
        """Area (2D) or volume (3D) of one pixel."""
        return float(np.prod(self.spacing))

    @property
    def volume(self) -> float:
        """Area (2D) or volume (3D) of the box."""
        return float(np.prod(self.lengths))

    @property
    def any_periodic(self) -> bool:
        """True if at least one axis wraps around."""
        return any(self.periodic)

    def axis_centres(self, axis: int) -> np.ndarray:
        """Physical coordinates of the pixel centres along ``axis``."""
        n, h, o = self.shape[axis], self.spacing[axis], self.origin[axis]
        return o + (np.arange(n) + 0.5) * h

    def pixel_centres(self) -> np.ndarray:
        """All pixel centres, ``(n_pixels, d)``, in C order of the raster."""
        axes = np.meshgrid(
            *[self.axis_centres(a) for a in range(self.ndim)], indexing="ij"
        )
        return np.stack([a.ravel() for a in axes], axis=1)

    def to_index(self, points) -> np.ndarray:
        """Physical coordinates -> fractional index coordinates.

        Pixel ``k`` is [k, k+1).
        """
        pts = np.asarray(points, dtype=np.float64)
        return (pts - np.array(self.origin)) / np.array(self.spacing)

    def to_physical(self, index_coords) -> np.ndarray:
        """Fractional index coordinates -> physical coordinates."""
        idx = np.asarray(index_coords, dtype=np.float64)
        return np.array(self.origin) + idx * np.array(self.spacing)

    def wrap(self, points) -> np.ndarray:
        """Map points into the box along periodic axes (a copy)."""
        pts = np.array(points, dtype=np.float64)
        lo = np.array(self.origin)
        length = self.lengths
        for a, p in enumerate(self.periodic):
            if p:
                pts[:, a] = lo[a] + np.mod(pts[:, a] - lo[a], length[a])
                # mod can return exactly `length` for tiny negative inputs
                pts[pts[:, a] >= lo[a] + length[a], a] = lo[a]
        return pts

    def min_image(self, delta) -> np.ndarray:
        """Minimum-image displacement on periodic axes (a copy)."""
        d = np.array(delta, dtype=np.float64)
        length = self.lengths
        for a, p in enumerate(self.periodic):
            if p:
                d[..., a] -= length[a] * np.round(d[..., a] / length[a])
        return d

    def as_3d(self) -> tuple:
        """``(shape3, spacing3, origin3, periodic3)`` with a unit first axis for 2D."""
        if self.ndim == 3:
            return self.shape, self.spacing, self.origin, self.periodic
        return (
            (1, *self.shape),
            (1.0, *self.spacing),
            (0.0, *self.origin),
            (False, *self.periodic),
        )
