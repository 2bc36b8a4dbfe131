"""Input checks shared by every public entry point.

Each check returns a fresh, C-contiguous float64 copy (user arrays are never
modified) or raises ValueError/TypeError with a one-line message naming the argument,
what came and what was expected. docs/errors.md lists the messages and their fixes.
"""

from __future__ import annotations

import numbers
import os

import numpy as np

from . import _config
from .density import Density
from .errors import InsufficientMemoryError

__all__ = [
    "available_memory",
    "check_callback",
    "check_density",
    "check_masses",
    "check_memory",
    "check_points",
    "check_positive_int",
    "check_real",
    "check_tol",
    "check_weights",
    "estimate_memory",
]

#: largest |weight| accepted: beyond it squared distances minus weights lose all
#: precision (and max(psi) - psi overflows near 1e308).
MAX_ABS_WEIGHT = 1e150


def _numeric_array(value, name, shape_hint):
    """``np.array(value, float64)`` with one-line TypeErrors for non-numeric input."""
    if value is None:
        raise TypeError(f"{name} must be a numeric {shape_hint} array, got None")
    if isinstance(value, (str, bytes, dict, set)):
        raise TypeError(
            f"{name} must be a numeric {shape_hint} array, got {type(value).__name__}"
        )
    probe = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if probe.dtype.kind == "c":
        raise TypeError(
            f"{name} must be real numbers, got a complex array; expected a numeric "
            f"{shape_hint} array of float"
        )
    if probe.dtype.kind == "O":  # e.g. lists mixing ints and floats, pandas objects
        try:
            return np.array(probe, dtype=np.float64, order="C")
        except (TypeError, ValueError):
            pass
    if probe.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be a numeric {shape_hint} array, got dtype {probe.dtype} "
            f"from {type(value).__name__}"
        )
    return np.array(probe, dtype=np.float64, order="C")


def check_density(density, *, periodic=None) -> Density:
    """Accept a Density, a path to a density file or an array of pixel values."""
    if isinstance(density, Density):
        return density
    if isinstance(density, (str, bytes)) or hasattr(density, "__fspath__"):
        from .density import read_density

        return read_density(os.fsdecode(density))
    if density is None or isinstance(density, (numbers.Number, dict, set)):
        raise TypeError(
            "density must be a rasterquant Density, a path or a 2D/3D array of pixel "
            f"values, got {type(density).__name__}"
        )
    arr = np.asarray(density)
    if arr.dtype.kind == "c":
        raise TypeError(
            "density must be real numbers, got a complex array; expected "
            "non-negative float pixel values"
        )
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"density must be a numeric 2D/3D array, got dtype {arr.dtype} from "
            f"{type(density).__name__}"
        )
    return Density.from_array(arr, periodic=bool(periodic))


def check_points(points, grid, *, name="points", allow_duplicates=False) -> np.ndarray:
    """Points ``(N, d)`` inside the grid box (wrapped into it on periodic axes)."""
    try:
        pts = _numeric_array(points, name, f"(N, {grid.ndim})")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TypeError) and str(exc).startswith(name):
            raise
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
        row = np.dtype((np.void, pts.dtype.itemsize * pts.shape[1]))
        key = np.ascontiguousarray(pts).view(row)
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
        w = _numeric_array(weights, name, "(N,)")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TypeError) and str(exc).startswith(name):
            raise
        raise TypeError(
            f"{name} must be a numeric (N,) array, got {type(weights).__name__}"
        ) from None
    if w.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},) (one per point), got {w.shape}"
        )
    if not np.isfinite(w).all():
        i = int(np.flatnonzero(~np.isfinite(w))[0])
        raise ValueError(
            f"{name}[{i}] = {w[i]}; expected finite values (NaN/inf are not weights)"
        )
    big = np.abs(w) > MAX_ABS_WEIGHT
    if big.any():
        i = int(np.flatnonzero(big)[0])
        raise ValueError(
            f"{name}[{i}] = {w[i]:.3g}; expected |weight| <= {MAX_ABS_WEIGHT:g} (power "
            "weights are of the order of squared distances in the grid)"
        )
    return w


def check_masses(masses, n, *, name="masses", normalize=False) -> np.ndarray:
    """Target masses ``(N,)``: positive, summing to 1 (or rescaled with normalize)."""
    if masses is None:
        return np.full(n, 1.0 / n)
    try:
        m = _numeric_array(masses, name, "(N,)")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TypeError) and str(exc).startswith(name):
            raise
        raise TypeError(
            f"{name} must be a numeric (N,) array, got {type(masses).__name__}"
        ) from None
    if m.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},) (one per point), got {m.shape}"
        )
    if not np.isfinite(m).all():
        i = int(np.flatnonzero(~np.isfinite(m))[0])
        raise ValueError(f"{name}[{i}] = {m[i]}; expected finite masses > 0")
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
    """Check a tolerance in (0, 1)."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(tol).__name__}")
    if not (np.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"{name} must be in (0, 1), got {tol}")
    return float(tol)


def check_positive_int(value, name, *, minimum=1) -> int:
    """Check an integer >= minimum."""
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


def check_real(
    value,
    name,
    *,
    low=None,
    high=None,
    low_open=False,
    high_open=False,
    allow_none=False,
):
    """Check a finite real number (NumPy scalars accepted) in an optional interval.

    ``low_open``/``high_open`` exclude the bound. Returns a Python float (or None when
    ``allow_none`` and the value is None).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    lo_txt = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi_txt = "" if high is None else f"{high:g}" + (")" if high_open else "]")
    if low is not None and high is not None:
        expected = f"in {lo_txt}, {hi_txt}"
    elif low is not None:
        expected = ("> " if low_open else ">= ") + f"{low:g}"
    elif high is not None:
        expected = ("< " if high_open else "<= ") + f"{high:g}"
    else:
        expected = "finite"
    ok = np.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return v


def check_callback(callback, name="callback"):
    """None or a callable."""
    if callback is not None and not callable(callback):
        raise TypeError(
            f"{name} must be callable (called with a dict after each iteration) or "
            f"None, got {type(callback).__name__}"
        )
    return callback


# --------------------------------------------------------------------------- memory


def _read_int(path):
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        return int(text.split()[0])
    except ValueError:
        return None


def _meminfo_available():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available():
    """Bytes left under the cgroup memory limit (v2 or v1), or None."""
    limit = _read_int("/sys/fs/cgroup/memory.max")
    if limit is not None:
        used = _read_int("/sys/fs/cgroup/memory.current") or 0
        return max(limit - used, 0)
    limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
    if limit is not None and limit < 1 << 60:  # v1 reports ~2**63 for "no limit"
        used = _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes") or 0
        return max(limit - used, 0)
    return None


def available_memory() -> int | None:
    """Bytes of memory this process can still allocate, or None if unknown.

    The smallest of ``MemAvailable`` (``/proc/meminfo``), the room left under a
    cgroup limit, and (when neither is known) the physical memory
    ``SC_PHYS_PAGES * SC_PAGE_SIZE``.
    """
    candidates = [v for v in (_meminfo_available(), _cgroup_available()) if v]
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return int(min(candidates))


def _fmt_bytes(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def estimate_memory(
    n_pixels, n_points, *, uniform=False, n_label_arrays=1, n_chunks=None, extra_bytes=0
) -> int:
    """Bytes a labels/moments pass over ``n_pixels`` with ``n_points`` needs.

    ``n_label_arrays`` int32 label arrays (assign: 1; Newton and Lloyd keep 3: the
    current, the trial and the best), the per-chunk reduction buffers
    ``n_chunks x N x 5`` float64, the float64 density (unless uniform) and
    ``extra_bytes``.
    """
    n_chunks = _config.N_CHUNKS if n_chunks is None else int(n_chunks)
    n_pixels, n_points = int(n_pixels), int(n_points)
    return int(
        n_label_arrays * 4 * n_pixels
        + n_chunks * n_points * 5 * 8
        + (0 if uniform else 8 * n_pixels)
        + int(extra_bytes)
    )


def check_memory(
    n_pixels,
    n_points,
    *,
    uniform=False,
    n_label_arrays=1,
    n_chunks=None,
    extra_bytes=0,
    what="this problem",
) -> int:
    """Refuse a raster x N that would not fit in memory, before allocating anything.

    Compares :func:`estimate_memory` with ``MEMORY_FRACTION`` (``_config``) of
    :func:`available_memory`; does nothing when the available memory is unknown.

    Returns
    -------
    int
        The estimated bytes.

    Raises
    ------
    InsufficientMemoryError
        (a ValueError and a MemoryError) saying how much it would need and how much
        there is.
    """
    need = estimate_memory(
        n_pixels,
        n_points,
        uniform=uniform,
        n_label_arrays=n_label_arrays,
        n_chunks=n_chunks,
        extra_bytes=extra_bytes,
    )
    avail = available_memory()
    if avail is None:
        return need
    budget = int(avail * _config.MEMORY_FRACTION)
    if need > budget:
        raise InsufficientMemoryError(
            f"{what} needs about {_fmt_bytes(need)} ({int(n_pixels):,} pixels x "
            f"N = {int(n_points):,} points) but only {_fmt_bytes(avail)} of memory is "
            f"available (budget {_config.MEMORY_FRACTION:.0%}: {_fmt_bytes(budget)}); "
            "use a coarser raster, fewer points or a machine with more memory",
            needed=need,
            available=avail,
        )
    return need
