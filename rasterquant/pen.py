"""Dot ordering and pen-plotter output for stipples.

:func:`order_dots` orders the dots of a stipple along a short open pen path
(a travelling-salesman path: greedy nearest neighbour, then 2-opt and Or-opt
local search over K nearest neighbours and iterated local search; the kernels are
in ``_pen_kernels.py``), :func:`tour_length` measures a path,
:func:`write_gcode` writes plain millimetre G-code for a pen plotter and
:func:`write_path_svg` an SVG with one ``<path>`` per ink layer (Inkscape layers).

Dots are ``(N, 2)`` arrays in ``(row, col)`` pixel units of an ``(H, W)`` image:
pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``. The writers map a dot to
``x = col`` and ``y = row`` (SVG, y down) or ``y = H - row`` (G-code, y up).
"""

from __future__ import annotations

import logging
import math
import numbers
import re
import time
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from scipy.spatial import cKDTree

from . import _pen_kernels as _k
from .io.atomic import atomic_write_text

__all__ = [
    "TourResult",
    "order_dots",
    "tour_length",
    "write_gcode",
    "write_path_svg",
]

logger = logging.getLogger(__name__)

#: neighbours per dot examined by the local search (and used by the greedy path)
N_NEIGHBOURS = 10
#: reversals logged per kick of the iterated local search (a kick whose repair
#: needs more is kept whatever its outcome, as it cannot be undone)
LOG_SIZE = 4096
#: longest segment moved by a kick
KICK_SEGMENT = 50
#: kicks drawn (and run) per batch
KICK_BATCH = 8192
#: up to this many dots, "tsp" returns the shortest path (Held-Karp, exact)
EXACT_MAX = 10
#: dots per bucket-grid cell (on average) for the nearest-neighbour fallback search
DOTS_PER_CELL = 2.0
#: default plotter scale of write_gcode: millimetres per pixel
MM_PER_PIXEL = 0.1
_METHODS = ("tsp", "nearest", "none")
_STYLES = ("line", "dots")
#: default colours of write_path_svg layers, in order
_PALETTE = ("#000000", "#00a0e0", "#e0007a", "#f0c000", "#d03020", "#20a040")


@dataclass(frozen=True)
class TourResult:
    """An order of the dots along an open pen path, from :func:`order_dots`."""

    order: np.ndarray  # (N,) int64, a permutation of range(N): the visiting order
    length: float  # length of the OPEN path points[order] (pixels), no return edge
    method: str  # "tsp", "nearest" or "none"
    nearest_length: float  # greedy nearest-neighbour path from the start dot (pixels)
    time: float  # wall-clock seconds spent in order_dots


# --------------------------------------------------------------------- checks


def _check_dots(points, name="points"):
    """``(N, 2)`` finite float64 C-contiguous copy of ``points``."""
    if points is None or isinstance(points, (str, bytes, dict, set)):
        raise TypeError(
            f"{name} must be a numeric (N, 2) array of (row, col) dots, got "
            f"{type(points).__name__}"
        )
    try:
        pts = np.array(points, dtype=np.float64, order="C")
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a numeric (N, 2) array of (row, col) dots, got "
            f"{type(points).__name__}"
        ) from None
    if pts.ndim == 1 and pts.size == 0:
        pts = pts.reshape(0, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(
            f"{name} must have shape (N, 2) of (row, col) dots, got {pts.shape}"
        )
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{name} contains NaN or inf in {int(bad.sum())} rows (first: row "
            f"{int(np.flatnonzero(bad)[0])}); expected finite (row, col) dots"
        )
    return pts


def _check_order(order, n, name="order"):
    """``order`` as a 1-D int64 array of indices into ``n`` dots."""
    if isinstance(order, TourResult):
        order = order.order
    arr = np.asarray(order)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.astype(np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be a 1-D integer array of dot indices, got shape "
            f"{arr.shape} dtype {arr.dtype}"
        )
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        bad = int(arr[(arr < 0) | (arr >= n)][0])
        raise ValueError(
            f"{name} contains index {bad}; expected indices in [0, {n}) for {n} dots"
        )
    return arr


def _check_shape(shape):
    try:
        h, w = (int(s) for s in shape)
        ok = all(float(s) == int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"shape must be (H, W), two positive integers, got {shape!r}"
        ) from None
    if not ok or h < 1 or w < 1:
        raise ValueError(f"shape must be (H, W), two positive integers, got {shape!r}")
    return h, w


def _check_inside(pts, shape, name):
    """Dots must lie in the image box [0, H] x [0, W] (the page)."""
    h, w = shape
    out = (pts[:, 0] < 0) | (pts[:, 0] > h) | (pts[:, 1] < 0) | (pts[:, 1] > w)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValueError(
            f"{name}[{i}] = {pts[i].tolist()} lies outside the image; expected "
            f"(row, col) in [0, {h}] x [0, {w}] for shape {shape}"
        )


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int >= 0 or None, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0 or None, got {seed}")
    return int(seed)


# ---------------------------------------------------------------- ordering


def tour_length(points, order) -> float:
    """Length of the open path through ``points[order]`` (no return edge).

    Parameters
    ----------
    points : (N, 2) array_like of float
        Dots in ``(row, col)`` pixel units.
    order : (M,) array_like of int or TourResult
        Indices into ``points`` in visiting order (usually a permutation).

    Returns
    -------
    float
        ``sum_t |points[order[t + 1]] - points[order[t]]|`` in pixels; 0 for
        ``M < 2``.

    Raises
    ------
    ValueError
        If ``points`` is not ``(N, 2)`` and finite, or ``order`` holds an index
        outside ``[0, N)``.

    Examples
    --------
    >>> tour_length([[0.0, 0.0], [3.0, 4.0], [3.0, 0.0]], [0, 1, 2])
    9.0
    """
    pts = _check_dots(points)
    idx = _check_order(order, pts.shape[0])
    return _path_length(pts[idx])


def _path_length(path):
    if path.shape[0] < 2:
        return 0.0
    return float(np.sqrt((np.diff(path, axis=0) ** 2).sum(axis=1)).sum())


def _neighbours(pts, k):
    """(N, k) int64 indices of the ``k`` nearest other dots, nearest first."""
    n = pts.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return np.zeros((n, 0), np.int64)
    _, idx = cKDTree(pts).query(pts, k=k + 1)
    idx = np.asarray(idx, dtype=np.int64).reshape(n, k + 1)
    keep = idx != np.arange(n)[:, None]
    # with more than k duplicates a dot may not be listed among its own k + 1
    keep[keep.all(axis=1), -1] = False
    return np.ascontiguousarray(idx[keep].reshape(n, k))


def _bucket_grid(pts):
    """Square cells of about DOTS_PER_CELL dots over the bounding box."""
    n = pts.shape[0]
    lo = pts.min(axis=0)
    ext = np.maximum(pts.max(axis=0) - lo, 1e-12)
    cs = math.sqrt(ext[0] * ext[1] * DOTS_PER_CELL / n) if n else 1.0
    cs = max(cs, ext.max() / max(1, int(math.sqrt(2.0 * n))), 1e-12)
    ny, nx = (int(v) for v in np.minimum(ext // cs + 1, 4 * n + 1))
    ij = np.minimum(((pts - lo) / cs).astype(np.int64), [ny - 1, nx - 1])
    cell = ij[:, 0] * nx + ij[:, 1]
    items = np.argsort(cell, kind="stable").astype(np.int64)
    first = np.zeros(ny * nx + 1, np.int64)
    np.cumsum(np.bincount(cell, minlength=ny * nx), out=first[1:])
    return first, items, cell.astype(np.int64), nx, lo, float(cs)


def _nearest_order(pts, neigh, grid, start):
    first, items, cell, nx, lo, cs = grid
    return _k._nearest_path(pts, neigh, first, items, cell, nx, lo, cs, int(start))


def _improve(pts, neigh, path, bar, rng=None, kicks=0):
    """2-opt + Or-opt from ``path``, then ``kicks`` kicks; the open path (N,) int64."""
    n = pts.shape[0]
    tour = np.append(path, n).astype(np.int64)  # the dummy node closes the cycle
    pos = np.empty(n + 1, np.int64)
    pos[tour] = np.arange(n + 1)
    queue = tour.copy()
    inq = np.ones(n + 1, np.bool_)
    state = np.array([0, n + 1, 0, 0], np.int64)
    log = np.empty((LOG_SIZE, 2), np.int64)
    eps = 1e-9 * (float(np.abs(pts).max()) + 1.0)
    chunk = max(4 * (n + 1), 100_000) if bar is not None else np.iinfo(np.int64).max
    while state[1] > 0:
        moves, _ = _k._local_search(
            pts, neigh, tour, pos, queue, inq, state, log, chunk, eps
        )
        if bar is not None:
            bar.update(1)
            bar.set_postfix(moves=int(moves), queued=int(state[1]))
    if kicks > 0 and n > 8:
        w = min(KICK_SEGMENT, (n - 2) // 2)
        # drawn in fixed batches: bounded memory, same kicks with or without a bar
        for lo in range(0, kicks, KICK_BATCH):
            size = min(KICK_BATCH, kicks - lo)
            draws = np.column_stack(
                [
                    rng.integers(0, n + 1, size=size),
                    rng.integers(1, w + 1, size=size),
                    rng.integers(1, w + 1, size=size),
                ]
            ).astype(np.int64)
            _k._perturb(pts, neigh, tour, pos, queue, inq, state, log, draws, eps)
            if bar is not None:
                bar.update(1)
    cut = pos[n]
    return np.concatenate([tour[cut + 1 :], tour[:cut]])


def order_dots(
    points, method: str = "tsp", *, seed=0, kicks=None, progress: bool = False
) -> TourResult:
    """Order dots along a short open pen path.

    Parameters
    ----------
    points : (N, 2) array_like of float
        Dots in ``(row, col)`` pixel units; duplicates are allowed.
    method : {"tsp", "nearest", "none"}
        ``"tsp"``: a short path: the greedy nearest-neighbour path improved by
        2-opt and Or-opt moves, then by iterated local search (for up to 10 dots
        the shortest path, found exactly); ``"nearest"``: the greedy
        nearest-neighbour path; ``"none"``: the given order.
    seed : int or None
        Chooses the start dot of the greedy path,
        ``default_rng(seed).integers(N)``; the same seed gives the same order.
        ``None`` draws a fresh start. It also draws the kicks.
    kicks : int, optional
        Perturbations of the iterated local search ("tsp" only); default ``N``
        (one per dot: about 3 % shorter than the plain local optimum, several
        times its cost). 0 stops at the 2-opt/Or-opt local optimum.
    progress : bool
        Show a tqdm progress bar of the local search on stderr.

    Returns
    -------
    TourResult
        ``order`` (N,) int64 permutation of ``range(N)``; ``length`` of the
        OPEN path ``points[order]`` (pen path: no return to the first dot), in
        pixels; ``method``; ``nearest_length``, the length of the greedy
        nearest-neighbour path from the start dot drawn with ``seed``, for
        comparison (whatever the method, it equals
        ``order_dots(points, "nearest", seed=seed).length``; the ``"tsp"`` path
        improves on that path, so ``length <= nearest_length``); ``time`` in
        seconds.

    Raises
    ------
    ValueError
        If ``points`` is not ``(N, 2)`` and finite, ``method`` is unknown, or
        ``seed`` or ``kicks`` is negative.

    See Also
    --------
    tour_length, write_gcode, write_path_svg

    Notes
    -----
    The path is a closed tour through the dots plus a dummy node at distance 0
    from every dot, cut open at the dummy, so both ends are free. The local search
    [1]_ keeps the tour as an array with its inverse; each dot examined (a work
    queue playing the part of don't-look bits) tries the 2-opt moves adding an
    edge to one of its ``K = 10`` nearest neighbours (``scipy.spatial.cKDTree``)
    and the Or-opt moves of the 1 to 3 dots starting or ending at it to beside a
    neighbour, either way round, and applies the best that shortens the tour; the
    ends of the changed edges are queued again. A 2-opt move reverses the shorter
    side of the tour, an Or-opt move is two or three such reversals. The greedy
    path takes the nearest unvisited dot from the neighbour list, or from a
    bucket grid when all listed neighbours are visited.

    The iterated local search [2]_ then applies ``kicks`` random double-bridge
    kicks on short windows of the tour (two adjacent runs of 1 to 50 dots swap
    places), each followed by the same local search from the ends of the changed
    edges; a kick is kept if the tour got shorter, otherwise undone (the
    reversals are logged and replayed backwards).

    Cost: ``O(N K)`` per sweep plus the reversals (``O(N)`` each at worst, far
    less in practice). On uniform random dots the local optimum is about 14 %
    shorter than the greedy path and one kick per dot brings that to about 17 %
    (benchmarks/bench_tour.py records times and ratios). Everything runs in one
    thread, so the order does not depend on the thread count.

    References
    ----------
    .. [1] D. S. Johnson and L. A. McGeoch, "The traveling salesman problem: a
       case study in local optimization", in Local Search in Combinatorial
       Optimization, Wiley, 1997, pp. 215-310.
    .. [2] D. Applegate, W. Cook and A. Rohe, "Chained Lin-Kernighan for large
       traveling salesman problems", INFORMS J. Computing 15(1), 2003, 82-92.

    Examples
    --------
    >>> res = order_dots([[0.0, 0.0], [0.0, 2.0], [0.0, 1.0]], seed=0)
    >>> sorted(res.order.tolist()), res.length
    ([0, 1, 2], 2.0)
    """
    t0 = time.perf_counter()
    pts = _check_dots(points)
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    seed = _check_seed(seed)
    n = pts.shape[0]
    if kicks is None:
        kicks = n
    elif isinstance(kicks, bool) or not isinstance(kicks, numbers.Integral):
        raise TypeError(
            f"kicks must be an int >= 0 or None, got {type(kicks).__name__}"
        )
    elif kicks < 0:
        raise ValueError(f"kicks must be an int >= 0 or None, got {kicks}")
    if n == 0:
        sec = time.perf_counter() - t0
        return TourResult(np.zeros(0, np.int64), 0.0, method, 0.0, sec)
    rng = np.random.default_rng(seed)
    start = int(rng.integers(n))
    neigh = _neighbours(pts, N_NEIGHBOURS)
    nn = _nearest_order(pts, neigh, _bucket_grid(pts), start)
    if method == "none":
        order = np.arange(n, dtype=np.int64)
    elif method == "nearest" or n <= 2:
        order = nn
    elif n <= EXACT_MAX:
        order = _k._exact_path(pts)
    else:
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(desc="ordering dots", unit=" sweeps", leave=False)
        try:
            order = _improve(pts, neigh, nn, bar, rng, int(kicks))
        finally:
            if bar is not None:
                bar.close()
    length = _path_length(pts[order])
    nearest = length if order is nn else _path_length(pts[nn])
    sec = time.perf_counter() - t0
    logger.debug(
        "order_dots(%s): %d dots, length %.6g (nearest %.6g) in %.3f s",
        method,
        n,
        length,
        nearest,
        sec,
    )
    return TourResult(order, length, method, nearest, sec)


# ---------------------------------------------------------------- G-code


def _scale(shape, size_mm):
    """Millimetres per pixel for ``size_mm`` (None, width or (width, height))."""
    h, w = shape
    if size_mm is None:
        return MM_PER_PIXEL
    if isinstance(size_mm, numbers.Real) and not isinstance(size_mm, bool):
        return _check_positive(size_mm, "size_mm") / w
    try:
        sw, sh = size_mm
    except (TypeError, ValueError):
        raise ValueError(
            f"size_mm must be None, a width or (width, height) in mm, got {size_mm!r}"
        ) from None
    for v in (sw, sh):
        if (
            isinstance(v, bool)
            or not isinstance(v, numbers.Real)
            or not (np.isfinite(v) and v > 0)
        ):
            raise ValueError(
                f"size_mm must be None, a width or (width, height) of finite "
                f"numbers > 0 in mm, got {size_mm!r}"
            )
    return min(float(sw) / w, float(sh) / h)


def _check_command(value, name):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a G-code string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty G-code command, got {value!r}")
    return value.strip()


def write_gcode(
    path,
    points,
    order,
    *,
    shape,
    size_mm=None,
    feed: float = 3000.0,
    travel_feed=None,
    pen_up: str = "G0 Z5",
    pen_down: str = "G0 Z0",
    dot: bool = True,
) -> None:
    """Write plain G-code (millimetres, absolute) that plots dots in a given order.

    Parameters
    ----------
    path : str or os.PathLike
        The output file (written atomically).
    points : (N, 2) array_like of float
        Dots in ``(row, col)`` pixel units, inside ``[0, H] x [0, W]``.
    order : (M,) array_like of int or TourResult
        Indices into ``points`` in plotting order, e.g. ``order_dots(points).order``.
    shape : (int, int)
        ``(H, W)`` of the image, in pixels: the page.
    size_mm : float or (float, float), optional
        Page width, or ``(width, height)``, in mm; the image is scaled uniformly to
        fit (``min(width / W, height / H)`` mm per pixel) with its lower-left corner
        at the plotter origin. Default: 0.1 mm per pixel (a 1000-pixel-wide image
        is 100 mm wide).
    feed : float
        Drawing feed rate (mm/min) of the pen-down ``G1`` moves (strokes mode,
        ``dot=False``; dots have no drawing moves).
    travel_feed : float, optional
        Feed rate of the pen-up moves: ``G1 ... F<travel_feed>``; default rapid
        ``G0`` moves.
    pen_up, pen_down : str
        The commands that lift and lower the pen (e.g. ``"M3 S30"``/``"M5"`` for a
        servo pen). Each appears alone on its line.
    dot : bool
        True: one stroke per dot (travel pen up to the dot, pen down, pen up), so
        ``M`` pen-downs. False: one stroke through all dots in order (a single
        continuous line, one pen-down).

    Raises
    ------
    ValueError
        If an argument has a bad shape or value, or a dot lies outside the page.

    Notes
    -----
    A pixel point ``(row, col)`` goes to ``x = col * s``, ``y = (H - row) * s``
    (plotter y points up), ``s`` the scale in mm per pixel. The file starts with
    ``;`` comments (dot count, strokes, pen path length in pixels and mm, units,
    page size), then ``G21`` (mm), ``G90`` (absolute) and ``pen_up``, and ends
    with ``pen_up`` and a pen-up move back to ``X0 Y0``.
    """
    pts = _check_dots(points)
    idx = _check_order(order, pts.shape[0])
    shape = _check_shape(shape)
    _check_inside(pts, shape, "points")
    s = _scale(shape, size_mm)
    feed = _check_positive(feed, "feed")
    if travel_feed is not None:
        travel_feed = _check_positive(travel_feed, "travel_feed")
    if not isinstance(dot, (bool, np.bool_)):
        raise TypeError(f"dot must be True or False, got {type(dot).__name__}")
    pen_up = _check_command(pen_up, "pen_up")
    pen_down = _check_command(pen_down, "pen_down")
    if pen_up == pen_down:
        raise ValueError(f"pen_up and pen_down must differ, both are {pen_up!r}")
    h, w = shape
    xy = np.column_stack([pts[idx, 1] * s, (h - pts[idx, 0]) * s])
    length_px = _path_length(pts[idx])
    travel = "G0" if travel_feed is None else "G1"
    tf = "" if travel_feed is None else f" F{travel_feed:g}"
    strokes = len(idx) if dot else int(len(idx) > 0)
    lines = [
        "; rasterquant pen plot",
        f"; dots: {len(idx)}",
        f"; strokes (pen-downs): {strokes} ({'one per dot' if dot else 'one line'})",
        f"; tour length: {length_px:.3f} px = {length_px * s:.3f} mm",
        f"; units: mm, absolute; scale {s:.6g} mm per pixel; x = col, y = H - row",
        f"; page: {w * s:.3f} x {h * s:.3f} mm (image H x W = {h} x {w} pixels)",
        f"; pen up: {pen_up}; pen down: {pen_down}",
        "G21",
        "G90",
        pen_up,
    ]
    coords = [f"X{x:.3f} Y{y:.3f}" for x, y in xy]
    if dot:
        for c in coords:
            lines += [f"{travel} {c}{tf}", pen_down, pen_up]
    elif coords:
        lines += [f"{travel} {coords[0]}{tf}", pen_down]
        lines += [
            f"G1 {c}" + (f" F{feed:g}" if t == 0 else "")
            for t, c in enumerate(coords[1:])
        ]
        lines.append(pen_up)
    lines.append(f"{travel} X0 Y0{tf}")
    atomic_write_text(path, "\n".join(lines) + "\n")


# ---------------------------------------------------------------- SVG


def _svg_colour(c, name):
    if isinstance(c, str):
        if not re.fullmatch(r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?|[a-zA-Z]+", c):
            raise ValueError(
                f"{name} must be '#rrggbb', a colour name or RGB in [0, 1], got {c!r}"
            )
        return c
    arr = np.asarray(c, dtype=np.float64) if c is not None else np.zeros(0)
    if (
        arr.shape != (3,)
        or not np.isfinite(arr).all()
        or (arr < 0).any()
        or (arr > 1).any()
    ):
        raise ValueError(
            f"{name} must be '#rrggbb', a colour name or RGB in [0, 1], got {c!r}"
        )
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in np.rint(arr * 255)))


def _check_layers(layers):
    """``[(name, (K, 2) float64)]`` from a list of pairs or a single array."""
    if isinstance(layers, np.ndarray) or (
        isinstance(layers, (list, tuple))
        and layers
        and not isinstance(layers[0], (tuple, list))
    ):
        return [("dots", _check_dots(layers, "layers"))]
    if (
        isinstance(layers, (list, tuple))
        and layers
        and isinstance(layers[0], (tuple, list))
        and len(layers[0]) == 2
        and isinstance(layers[0][0], str)
    ):
        out = []
        for i, item in enumerate(layers):
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ValueError(
                    f"layers[{i}] must be a (name, points) pair, got "
                    f"{type(item).__name__}"
                )
            name, pts = item
            if not isinstance(name, str) or not name.strip():
                raise ValueError(
                    f"layers[{i}] name must be a non-empty str, got {name!r}"
                )
            out.append((name, _check_dots(pts, f"layers[{i}] points")))
        names = [n for n, _ in out]
        if len(set(names)) != len(names):
            raise ValueError(f"layers names must be distinct, got {names}")
        return out
    if isinstance(layers, (list, tuple)) and not layers:
        raise ValueError("layers is empty; expected (name, points) pairs or an array")
    # a nested list of coordinates, e.g. [[r, c], ...]
    return [("dots", _check_dots(layers, "layers"))]


def _layer_id(name, i, used):
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "layer"
    if not re.match(r"[A-Za-z_]", base):
        base = f"layer-{base}"
    ident = base
    if ident in used:
        ident = f"{base}-{i}"
    used.add(ident)
    return ident


def write_path_svg(
    path,
    layers,
    *,
    shape,
    style: str = "line",
    stroke_width=None,
    colors=None,
    size_mm=None,
) -> None:
    """Write ordered dots as an SVG with one ``<path>`` per ink layer.

    Parameters
    ----------
    path : str or os.PathLike
        The output file (written atomically).
    layers : (N, 2) array_like of float, or list of (str, (N_i, 2) array_like)
        Dots in ``(row, col)`` pixel units, already in drawing order (e.g.
        ``points[order_dots(points).order]``), one array per ink. A single array is
        one layer named ``"dots"``.
    shape : (int, int)
        ``(H, W)`` of the image in pixels: the SVG ``viewBox`` is ``0 0 W H``.
    style : {"line", "dots"}
        ``"line"``: each layer is one polyline ``M x0 y0 L x1 y1 ...`` through its
        dots. ``"dots"``: each dot is a zero-length subpath ``M x y Z`` drawn with
        round caps, a disc of diameter ``stroke_width`` (plotter software sees a
        pen-down at each dot); still one ``<path>`` per layer.
    stroke_width : float, optional
        In pixels; default 0.5 for ``"line"`` and 2.0 for ``"dots"``.
    colors : list of (str or 3 floats in [0, 1]), optional
        One colour per layer; default black, then a fixed palette.
    size_mm : float or (float, float), optional
        Physical width (or ``(width, height)``, fitted keeping the aspect ratio)
        written into the ``width``/``height`` attributes in mm; default ``W`` and
        ``H`` user units (pixels).

    Raises
    ------
    ValueError
        If an argument has a bad shape or value.

    Notes
    -----
    Dot ``(row, col)`` is drawn at ``x = col``, ``y = row``. Every path has as many
    vertices (``M`` and ``L`` coordinate pairs) as its layer has dots. Each layer is
    a ``<g id=... inkscape:groupmode="layer" inkscape:label=name>`` so Inkscape and
    plotter software (AxiDraw, vpype) treat the inks as layers.
    """
    items = _check_layers(layers)
    h, w = _check_shape(shape)
    if not isinstance(style, str) or style not in _STYLES:
        raise ValueError(f"style must be one of {_STYLES}, got {style!r}")
    if stroke_width is None:
        stroke_width = 0.5 if style == "line" else 2.0
    stroke_width = _check_positive(stroke_width, "stroke_width")
    if colors is None:
        colors = [_PALETTE[i % len(_PALETTE)] for i in range(len(items))]
    elif isinstance(colors, str) or (
        isinstance(colors, (tuple, list, np.ndarray))
        and len(colors) == 3
        and all(isinstance(v, numbers.Real) for v in colors)
    ):
        colors = [colors]  # one colour for a single layer
    else:
        try:
            colors = list(colors)
        except TypeError:
            raise ValueError(
                f"colors must be a list of colours, one per layer, got {colors!r}"
            ) from None
    if len(colors) != len(items):
        raise ValueError(
            f"colors must have one colour per layer ({len(items)}), got {len(colors)}"
        )
    colors = [_svg_colour(c, f"colors[{i}]") for i, c in enumerate(colors)]
    if size_mm is None:
        width, height = f"{w}", f"{h}"
    else:
        s = _scale((h, w), size_mm)
        width, height = f"{w * s:.4f}mm", f"{h * s:.4f}mm"
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<svg xmlns="http://www.w3.org/2000/svg" '
        'xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" '
        f'version="1.1" width="{width}" height="{height}" viewBox="0 0 {w} {h}">',
    ]
    used = set()
    for i, ((name, pts), colour) in enumerate(zip(items, colors, strict=True)):
        ident = _layer_id(name, i, used)
        xy = [f"{c:.3f} {r:.3f}" for r, c in pts]
        if style == "line":
            d = (f"M {xy[0]}" + "".join(f" L {v}" for v in xy[1:])) if xy else ""
        else:  # zero-length subpaths: round caps make them discs
            d = " ".join(f"M {v} Z" for v in xy)
        out += [
            f'  <g id={quoteattr(ident)} inkscape:groupmode="layer" '
            f"inkscape:label={quoteattr(name)}>",
            f"    <title>{escape(name)}: {len(pts)} dots</title>",
            f'    <path d="{d}" fill="none" stroke="{colour}" '
            f'stroke-width="{stroke_width:g}" stroke-linecap="round" '
            'stroke-linejoin="round"/>',
            "  </g>",
        ]
    out.append("</svg>")
    atomic_write_text(path, "\n".join(out) + "\n")
