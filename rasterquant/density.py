"""Densities on a raster: constructors from arrays, images, volumes and formulas."""

from __future__ import annotations

import os

import numpy as np

from .grid import Grid

__all__ = ["Density"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _check_values(values, name="density"):
    """Return a validated float64 copy of ``values``, scaled to maximum 1."""
    if np.iscomplexobj(values):
        raise TypeError(
            f"{name} must be real numbers, got a complex array; expected "
            "non-negative float pixel values"
        )
    try:
        arr = np.array(values, dtype=np.float64, order="C")
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a numeric array, got {type(values).__name__}"
        ) from None
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be a 2D (H, W) or 3D (D, H, W) array, got {arr.ndim}D "
            f"with shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); expected pixels")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN or inf values; expected finite "
            "non-negative values"
        )
    if (arr < 0).any():
        raise ValueError(
            f"{name} contains negative values (min {arr.min():.3g}); expected >= 0"
        )
    peak = arr.max()
    if not peak > 0:
        raise ValueError(f"{name} is zero everywhere; expected some positive mass")
    # scale by the maximum first: the sum of huge finite values (1e308) overflows
    arr /= peak
    return arr


class Density:
    """A probability density, piecewise constant on the pixels of a grid.

    ``values[k]`` is the mass of pixel ``k``; the masses sum to 1. Build one with the
    class methods :meth:`from_array`, :meth:`from_image`, :meth:`from_volume`,
    :meth:`uniform`, :meth:`gaussian` or :meth:`from_function`.

    Attributes
    ----------
    grid : Grid
        The raster.
    values : (H, W) or (D, H, W) ndarray of float64
        Pixel masses, summing to 1 (materialised on first access for uniform densities).
    is_uniform : bool
        True when every pixel has the same mass (kernels then skip reading the array).

    Examples
    --------
    >>> d = Density.from_array([[0.0, 1.0], [1.0, 2.0]])
    >>> float(d.values.sum()), float(d.values[1, 1])
    (1.0, 0.5)
    """

    def __init__(self, grid: Grid, values=None, *, _uniform=False):
        self.grid = grid
        self.is_uniform = bool(_uniform)
        self._values = values
        if values is not None:
            values.setflags(write=False)

    @property
    def values(self) -> np.ndarray:
        """Pixel masses, summing to 1."""
        if self._values is None:
            v = np.full(self.grid.shape, 1.0 / self.grid.n_pixels)
            v.setflags(write=False)
            self._values = v
        return self._values

    @property
    def shape(self) -> tuple:
        """Shape of the raster."""
        return self.grid.shape

    @property
    def ndim(self) -> int:
        """2 or 3."""
        return self.grid.ndim

    def __repr__(self):
        kind = "uniform " if self.is_uniform else ""
        return f"<{kind}Density shape={self.grid.shape} spacing={self.grid.spacing}>"

    def n_positive(self) -> int:
        """Return the number of pixels with positive mass."""
        if self.is_uniform:
            return self.grid.n_pixels
        return int(np.count_nonzero(self.values))

    def kernel_arrays(self):
        """``(values3d, uniform_mass)`` for kernels: a (D, H, W) view, or a dummy."""
        if self.is_uniform:
            return np.zeros((1, 1, 1)), 1.0 / self.grid.n_pixels
        v = self.values
        if v.ndim == 2:
            v = v[None]
        return v, -1.0

    @classmethod
    def from_array(
        cls, values, grid=None, *, spacing=1.0, origin=0.0, periodic=False
    ) -> Density:
        """Density from an array of non-negative pixel values (normalised to sum 1).

        Parameters
        ----------
        values : (H, W) or (D, H, W) array_like of float
            Non-negative, finite, not all zero.
        grid : Grid, optional
            Must have the array's shape; otherwise one is built from the options.
        spacing, origin, periodic
            Grid options when ``grid`` is not given.
        """
        arr = _check_values(values)
        if grid is None:
            grid = Grid(arr.shape, spacing=spacing, origin=origin, periodic=periodic)
        elif not isinstance(grid, Grid):
            raise TypeError(
                f"grid must be a rasterquant.Grid, got {type(grid).__name__}"
            )
        elif tuple(grid.shape) != arr.shape:
            raise ValueError(
                f"grid has shape {grid.shape} but density has shape {arr.shape}"
            )
        arr /= arr.sum()
        uniform = bool(arr.max() == arr.min())
        return cls(grid, arr, _uniform=uniform)

    @classmethod
    def uniform(cls, shape, extent=None, periodic=False) -> Density:
        """Uniform density on a box.

        Parameters
        ----------
        shape : tuple of int
            Raster shape.
        extent : sequence of (lo, hi), optional
            Physical bounds per axis; default ``[(0, n), ...]`` (unit pixels).
        periodic : bool or sequence of bool
        """
        grid = _grid_from_extent(shape, extent, periodic)
        return cls(grid, None, _uniform=True)

    @classmethod
    def gaussian(
        cls, shape, extent=None, *, mean=None, sigma=0.25, radius=None, periodic=False
    ) -> Density:
        """Isotropic Gaussian, optionally restricted to a ball of ``radius``.

        ``mean`` defaults to the box centre; ``sigma`` is in physical units.
        """
        grid = _grid_from_extent(shape, extent, periodic)
        lo = np.array([e[0] for e in grid.extent])
        hi = np.array([e[1] for e in grid.extent])
        centre = (lo + hi) / 2 if mean is None else np.asarray(mean, dtype=float)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")

        def f(*xs):
            r2 = sum((x - c) ** 2 for x, c in zip(xs, centre, strict=True))
            v = np.exp(-r2 / (2 * sigma**2))
            if radius is not None:
                v = np.where(r2 <= radius**2, v, 0.0)
            return v

        return cls.from_function(f, grid.shape, grid.extent, periodic=periodic)

    @classmethod
    def from_function(cls, f, shape, extent=None, *, periodic=False) -> Density:
        """Density ``f(x0, x1[, x2])`` evaluated at the pixel centres.

        ``f`` receives one broadcastable coordinate array per axis (array axis order)
        and returns non-negative values.
        """
        grid = _grid_from_extent(shape, extent, periodic)
        coords = np.meshgrid(
            *[grid.axis_centres(a) for a in range(grid.ndim)],
            indexing="ij",
            sparse=True,
        )
        values = np.broadcast_to(np.asarray(f(*coords), dtype=float), grid.shape)
        return cls.from_array(values, grid)

    @classmethod
    def from_image(
        cls,
        path,
        *,
        invert=True,
        gamma=1.0,
        floor=0.0,
        spacing=1.0,
        origin=0.0,
        periodic=False,
    ) -> Density:
        """Density from a grayscale or colour image file (dark = dense by default).

        Colour is converted to luminance (Rec. 601); an alpha channel is a mask (fully
        transparent pixels get zero density). With ``invert`` the density is
        ``1 - luminance``; then ``max(value, floor) ** gamma``.
        """
        from .io.images import read_image

        lum, alpha = read_image(path)
        return cls.from_luminance(
            lum,
            alpha,
            invert=invert,
            gamma=gamma,
            floor=floor,
            spacing=spacing,
            origin=origin,
            periodic=periodic,
            name=str(path),
        )

    @classmethod
    def from_luminance(
        cls,
        lum,
        alpha=None,
        *,
        invert=True,
        gamma=1.0,
        floor=0.0,
        spacing=1.0,
        origin=0.0,
        periodic=False,
        name="image",
    ) -> Density:
        """Density from a luminance array in [0, 1] (see :meth:`from_image`)."""
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        if not 0 <= floor < 1:
            raise ValueError(f"floor must be in [0, 1), got {floor}")
        v = 1.0 - lum if invert else np.array(lum, dtype=float)
        v = np.maximum(v, floor) ** gamma
        if alpha is not None:
            v = v * (alpha > 0)
        if not (v > 0).any():
            raise ValueError(
                f"{name}: the image gives zero density everywhere (all "
                f"{'white' if invert else 'black'} or transparent); expected some "
                f"{'dark' if invert else 'bright'} pixels, or use --floor"
            )
        return cls.from_array(v, spacing=spacing, origin=origin, periodic=periodic)

    @classmethod
    def from_volume(cls, path, *, spacing=1.0, origin=0.0, periodic=False) -> Density:
        """Density from a 3D volume: ``.npy`` or a multi-page TIFF."""
        from .io.images import read_volume

        return cls.from_array(
            read_volume(path), spacing=spacing, origin=origin, periodic=periodic
        )

    @classmethod
    def from_file(cls, path, **options) -> Density:
        """Density from any supported file, chosen by suffix.

        See :func:`read_density`.
        """
        return read_density(path, **options)


def _grid_from_extent(shape, extent, periodic):
    grid = Grid(shape, periodic=periodic)
    if extent is None:
        return grid
    ext = np.asarray(extent, dtype=float)
    if ext.shape != (grid.ndim, 2) or not np.isfinite(ext).all():
        raise ValueError(f"extent must be {grid.ndim} pairs (lo, hi), got {extent!r}")
    if (ext[:, 1] <= ext[:, 0]).any():
        raise ValueError(f"extent must have hi > lo on every axis, got {extent!r}")
    spacing = (ext[:, 1] - ext[:, 0]) / np.array(grid.shape)
    return Grid(grid.shape, spacing=spacing, origin=ext[:, 0], periodic=periodic)


def read_density(
    path, *, invert=True, gamma=1.0, floor=0.0, spacing=1.0, origin=0.0, periodic=False
) -> Density:
    """Read a density from an image (png/jpg/tif...) or an array file (.npy).

    A ``.npy`` holds pixel values directly (2D or 3D, no inversion). A multi-page TIFF
    is read as a 3D volume; other images as 2D, with ``invert``, ``gamma``, ``floor``.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(
            f"path must be a str, bytes or os.PathLike file name, got "
            f"{type(path).__name__}"
        )
    path = os.fsdecode(os.fspath(path))
    if os.path.isdir(path):
        raise ValueError(f"density path {path!r} is a directory; expected a file")
    if not os.path.exists(path):
        raise ValueError(f"density file {path!r} does not exist")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        from .io.images import read_volume

        arr = read_volume(path, allow_2d=True)
        return Density.from_array(
            arr, spacing=spacing, origin=origin, periodic=periodic
        )
    if suffix in (".tif", ".tiff"):
        from .io.images import tiff_page_count

        if tiff_page_count(path) > 1:
            return Density.from_volume(
                path, spacing=spacing, origin=origin, periodic=periodic
            )
    if suffix in _IMAGE_SUFFIXES:
        return Density.from_image(
            path,
            invert=invert,
            gamma=gamma,
            floor=floor,
            spacing=spacing,
            origin=origin,
            periodic=periodic,
        )
    raise ValueError(
        f"density file {path!r} has unsupported format {suffix or '(no suffix)'!r}; "
        f"expected one of .npy, {', '.join(sorted(_IMAGE_SUFFIXES))}"
    )
