"""Input checks shared by every public entry point.

Each check returns a fresh, C-contiguous float64 copy (user arrays are never modified)
or raises ValueError/TypeError with a one-line message naming the argument, what came and
what was expected.
"""

from __future__ import annotations

import numbers

import numpy as np

from .density import Density

__all__ = [
    "check_density",
    "check_masses",
    "check_points",
    "check_positive_int",
    "check_tol",
    "check_weights",
]


def check_density(density, *, periodic=None) -> Density:
    """Accept a Density or an array of pixel values."""
    if isinstance(density, Density):
        return density
    if isinstance(density, (str, bytes)) or hasattr(density, "__fspath__"):
        from .density import read_density

        return read_density(density)
    return Density.from_array(density, periodic=bool(periodic))


def check_points(points, grid, *, name="points", allow_duplicates=False) -> np.ndarray:
    """Points ``(N, d)`` inside the grid box (wrapped into it on periodic axes)."""
    try:
        pts = np.array(points, dtype=np.float64, order="C")
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a numeric (N, {grid.ndim}) array, got "
            f"{type(points).__name__}"
        ) from None
    if pts.ndim != 2 or pts.shape[1] != grid.ndim:
        raise ValueError(
            f"{name} must have shape (N, {grid.ndim}) for a {grid.ndim}D grid, "
            f"got {pts.shape}"
        )
    if pts.shape[0] == 0:
        raise ValueError(f"{name} is empty (N = 0); expected at least 1 point")
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{name} contains NaN or inf in {int(bad.sum())} rows (first: row "
            f"{int(np.flatnonzero(bad)[0])}); remove or clip those rows"
        )
    for a in range(grid.ndim):
        lo, hi = grid.extent[a]
        outside = (pts[:, a] < lo) | (pts[:, a] > hi)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            what = "wrapped into" if grid.periodic[a] else "inside"
            raise ValueError(
                f"{name}[{i}] = {pts[i].tolist()} lies outside the grid on axis {a}: "
                f"expected points {what} [{lo}, {hi}]"
            )
    pts = grid.wrap(pts) if grid.any_periodic else pts
    if not allow_duplicates and pts.shape[0] > 1:
        key = np.ascontiguousarray(pts).view(np.dtype((np.void, pts.dtype.itemsize * pts.shape[1])))
        _, idx, counts = np.unique(key.ravel(), return_index=True, return_counts=True)
        if (counts > 1).any():
            first = int(np.sort(idx[counts > 1])[0])
            dup = np.flatnonzero((pts == pts[first]).all(axis=1))
            raise ValueError(
                f"{name} has duplicate points: rows {dup[:4].tolist()} are all at "
                f"{pts[first].tolist()}; expected distinct points"
            )
    return pts


def check_weights(weights, n, *, name="weights") -> np.ndarray:
    """Weights ``(N,)``, finite; ``None`` gives zeros."""
    if weights is None:
        return np.zeros(n)
    try:
        w = np.array(weights, dtype=np.float64, order="C")
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric (N,) array") from None
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"{name} contains NaN or inf; expected finite values")
    return w


def check_masses(masses, n, *, name="masses", normalize=False) -> np.ndarray:
    """Target masses ``(N,)``: positive, summing to 1 (or rescaled with normalize)."""
    if masses is None:
        return np.full(n, 1.0 / n)
    try:
        m = np.array(masses, dtype=np.float64, order="C")
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric (N,) array") from None
    if m.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one per point), got {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError(f"{name} contains NaN or inf; expected finite values")
    if (m <= 0).any():
        i = int(np.flatnonzero(m <= 0)[0])
        raise ValueError(f"{name}[{i}] = {m[i]:g}; expected every mass > 0")
    total = m.sum()
    if abs(total - 1.0) > 1e-9:
        if not normalize:
            raise ValueError(
                f"{name} sum to {total:.12g}; expected 1 (within 1e-9), or pass "
                "normalize=True to rescale"
            )
    return m / total


def check_tol(tol, *, name="tol") -> float:
    """A tolerance in (0, 1)."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(tol).__name__}")
    if not (np.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"{name} must be in (0, 1), got {tol}")
    return float(tol)


def check_positive_int(value, name, *, minimum=1) -> int:
    """An integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_n_points(n, density, *, name="N") -> None:
    """N must not exceed the number of positive-density pixels."""
    npos = density.n_positive()
    if n > npos:
        raise ValueError(
            f"{name} = {n} points but the density has only {npos} positive pixels; "
            "expected N <= positive pixels (use a finer raster or fewer points)"
        )
