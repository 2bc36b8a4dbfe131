"""Initial point clouds: random, density-weighted, regular, separated and fractal.

Every method returns an ``(n, d)`` float64 array in physical coordinates, in the array
axis order of the grid (``(row, col)`` or ``(z, row, col)``), strictly inside the grid
box: ``lo <= x < hi`` on every axis (on periodic axes this is the canonical image of
the torus).
"""

from __future__ import annotations

import numbers

import numpy as np

from .density import Density
from .grid import Grid

__all__ = ["koch_curve", "sample_points", "tightness_density"]

METHODS = (
    "uniform",
    "density",
    "stratified",
    "grid",
    "jittered-grid",
    "separated",
    "koch",
    "file",
    "tightness-grid",
)

# 4**12 + 1 = 16.8 million vertices (270 MB): beyond that a typo is more likely than
# a wish.
_MAX_KOCH_LEVEL = 12
# Scipy's PoissonDisk stores accepted samples as float32 and compares candidates with
# those copies; inflating the radius by this (unit-box) amount makes the minimum
# distance hold for the float64 output.
_POISSON_PAD = 1e-6


def sample_points(
    density_or_grid,
    n,
    *,
    method="density",
    seed=None,
    jitter=0.5,
    min_distance=None,
    c0=0.5,
    beta=None,
    level=None,
    path=None,
) -> np.ndarray:
    """Draw or place ``n`` points in the box of a density or grid.

    Parameters
    ----------
    density_or_grid : Density or Grid
        The box (and, for ``method="density"``, the distribution) to sample.
    n : int or None
        Number of points, >= 1. May be ``None`` for ``"koch"`` when ``level`` is
        given and for ``"file"`` (then every point of the file is returned); when
        given, it must match.
    method : str
        One of

        - ``"uniform"``: i.i.d. uniform in the box;
        - ``"density"``: i.i.d. from the density (a pixel chosen with probability
          its mass, then a uniform position inside it); needs a :class:`Density`;
        - ``"stratified"``: systematic sampling of the density along a space-filling
          curve (Hilbert in 2D, Morton in 3D): the pixels are ordered along the
          curve, and the ``k``-th point falls where the cumulative mass reaches
          ``(k + u) / n`` (one uniform ``u``), uniformly inside its pixel. Every run of
          the curve (so every region of the image) gets its share of points to
          within one, which balances separate dark regions from the start;
        - ``"grid"``: centres of the ``k**d`` equal cells of the box, ``n = k**d``
          (``k`` cells per axis, also for a box with unequal sides);
        - ``"jittered-grid"``: those centres moved uniformly by up to ``jitter``
          times the cell size along each axis;
        - ``"separated"``: a random cloud spread over the whole box with minimum
          distance ``r = c0 * n**(-1/beta)`` in units where the box has unit
          volume, or ``min_distance`` in physical units: a random subset of ``n``
          points of a maximal Poisson disk set (Bridson's algorithm via
          :class:`scipy.stats.qmc.PoissonDisk`), or, when the box holds far more
          than ``n`` such points, uniform dart throwing;
        - ``"koch"``: the ``4**level + 1`` vertices of the von Koch curve (2D);
        - ``"file"``: the points stored in ``path`` (see
          :func:`rasterquant.io.points.read_points`);
        - ``"tightness-grid"``: the optimal-looking cloud for
          :func:`tightness_density`, ``n = n_axis**d`` (see Notes).
    seed : int >= 0, numpy.random.Generator or None
        Seed of ``numpy.random.default_rng``; the same seed gives the same points.
    jitter : float
        For ``"jittered-grid"``: amplitude in [0, 0.5] as a fraction of the cell
        size; 0.5 makes each point uniform in its cell, 0 gives ``"grid"``.
    min_distance : float, optional
        For ``"separated"``: the minimum distance in physical units; overrides
        ``c0`` and ``beta``.
    c0 : float
        For ``"separated"``: the constant in ``r = c0 * n**(-1/beta)``. Bridson's
        algorithm fills the unit square up to about ``c0 = 0.8`` (2D and 3D);
        beyond that it cannot place ``n`` points.
    beta : float, optional
        For ``"separated"``: the exponent; defaults to the dimension ``d``.
    level : int, optional
        For ``"koch"``: the level ``k`` (``n = 4**k + 1``); derived from ``n`` when
        omitted.
    path : str or path-like, optional
        For ``"file"``: the point file.

    Returns
    -------
    points : (n, d) ndarray of float64
        Physical coordinates in array axis order, with ``lo <= x < hi`` per axis.

    Raises
    ------
    TypeError
        If ``density_or_grid`` is not a Density or Grid (or a Grid is given for
        ``method="density"``), ``n`` is not an integer, or ``seed`` is not an int,
        a Generator or None.
    ValueError
        If ``n < 1``, ``seed < 0``, ``method`` is unknown, ``n`` does not fit the
        method (not a ``d``-th power for the grids, not ``4**k + 1`` for
        ``"koch"``), the radius is too large to place ``n`` separated points, or
        an option is out of range.

    See Also
    --------
    koch_curve : The von Koch vertices in unit-square coordinates.
    tightness_density : The density that ``"tightness-grid"`` quantizes.

    Notes
    -----
    The i.i.d. methods cost O(n) (plus O(pixels) once for the cumulative masses of
    ``"density"``); ``"separated"`` runs Bridson's algorithm in Python, about
    0.3 ms per point of the filled box (about ``2.5 n`` points for ``c0 = 0.5``).
    Distances of ``"separated"`` ignore periodic wrapping.

    ``"tightness-grid"`` places, on each axis of ``[-1, 1]``, one coordinate at
    ``-1/2`` (the centre of ``[-1, 0]``) and ``n_axis - 1`` coordinates at the
    centres of ``n_axis - 1`` equal parts of ``[0, 1]``, and takes the tensor
    product; a box other than ``[-1, 1]**d`` receives the affine image.

    Examples
    --------
    >>> g = Grid((4, 4))
    >>> sample_points(g, 4, method="grid")
    array([[1., 1.],
           [1., 3.],
           [3., 1.],
           [3., 3.]])
    >>> sample_points(g, 3, method="uniform", seed=0).shape
    (3, 2)
    """
    grid, density = _grid_and_density(density_or_grid)
    n, rng = _check_request(method, n, seed)
    return _place_points(
        grid, density, method, n, rng, jitter, min_distance, c0, beta, level, path
    )


def koch_curve(level) -> np.ndarray:
    """Vertices of the von Koch curve at a given level, in unit-square coordinates.

    Parameters
    ----------
    level : int
        Number of refinements ``k >= 0``; level 0 is the segment itself.

    Returns
    -------
    xy : (4**level + 1, 2) ndarray of float64
        The vertices in order along the curve, as ``(x, y)`` (horizontal,
        vertical, y pointing up), from ``(0, 0)`` to ``(1, 0)``; the curve lies in
        ``0 <= y <= sqrt(3)/6``.

    Raises
    ------
    TypeError
        If ``level`` is not an integer.
    ValueError
        If ``level`` is negative or larger than 12.

    Notes
    -----
    Each segment ``[a, b]`` is replaced by ``a, a + u, a + u + u e^{i pi/3},
    a + 2u, b`` with ``u = (b - a)/3``, in complex arithmetic; level ``k`` has
    ``4**k`` segments of length ``3**-k``.

    Examples
    --------
    >>> koch_curve(1).round(4)
    array([[0.    , 0.    ],
           [0.3333, 0.    ],
           [0.5   , 0.2887],
           [0.6667, 0.    ],
           [1.    , 0.    ]])
    """
    if isinstance(level, bool) or not isinstance(level, numbers.Integral):
        raise TypeError(f"level must be an integer, got {type(level).__name__}")
    if not 0 <= level <= _MAX_KOCH_LEVEL:
        raise ValueError(
            f"level must be in [0, {_MAX_KOCH_LEVEL}] (4**level + 1 points), "
            f"got {level}"
        )
    z = np.array([0.0, 1.0], dtype=np.complex128)
    turn = np.exp(1j * np.pi / 3)
    for _ in range(int(level)):
        a = z[:-1]
        u = (z[1:] - a) / 3.0
        new = np.empty(4 * a.size + 1, dtype=np.complex128)
        new[0:-1:4] = a
        new[1::4] = a + u
        new[2::4] = a + u + u * turn
        new[3::4] = a + 2.0 * u
        new[-1] = z[-1]
        z = new
    return np.stack([z.real, z.imag], axis=1)


def tightness_density(n_axis, resolution, d=2) -> Density:
    """Build the "tightness" density on ``[-1, 1]**d``, exact on every pixel.

    Parameters
    ----------
    n_axis : int
        The parameter ``n >= 1`` of the profile ``r_n`` (see Notes); the matching
        point cloud is ``sample_points(density, n_axis**d, method="tightness-grid")``.
    resolution : int
        Pixels per axis, >= 1; the pixel size is ``2 / resolution``.
    d : int
        Dimension, 2 or 3.

    Returns
    -------
    Density
        On the non-periodic grid ``(resolution,) * d`` with origin -1.

    Raises
    ------
    TypeError
        If an argument is not an integer.
    ValueError
        If ``n_axis`` or ``resolution`` is < 1, or ``d`` is not 2 or 3.

    Notes
    -----
    The density is the tensor product ``rho(x) = prod_a r_n(x_a)`` of
    ``r_n(t) = 1/n`` on ``[-1, 0)`` and ``1 - 1/n`` on ``[0, 1]``, which integrates to
    1 on ``[-1, 1]``. Pixel masses are the exact integrals of ``rho`` over the
    pixels (products of 1D integrals), so a pixel straddling 0 (odd
    ``resolution``) gets the right mixed mass. With ``n`` points per axis, one at
    the centre of ``[-1, 0]`` and ``n - 1`` evenly spread on ``[0, 1]``, every
    point gets mass ``1/n`` per axis.

    Examples
    --------
    >>> rho = tightness_density(4, 8)
    >>> rho.values.shape, round(float(rho.values[:4, :4].sum()), 4)
    ((8, 8), 0.0625)
    """
    for value, name in ((n_axis, "n_axis"), (resolution, "resolution"), (d, "d")):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if n_axis < 1:
        raise ValueError(f"n_axis must be >= 1, got {n_axis}")
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    if d not in (2, 3):
        raise ValueError(f"d must be 2 or 3, got {d}")
    edges = np.linspace(-1.0, 1.0, int(resolution) + 1)
    a, b = edges[:-1], edges[1:]
    left = np.clip(np.minimum(b, 0.0) - a, 0.0, None)  # |[a, b] ∩ [-1, 0]|
    right = np.clip(b - np.maximum(a, 0.0), 0.0, None)  # |[a, b] ∩ [0, 1]|
    mass = left / n_axis + right * (1.0 - 1.0 / n_axis)
    values = mass
    for _ in range(int(d) - 1):
        values = np.multiply.outer(values, mass)
    return Density.from_array(values, spacing=2.0 / resolution, origin=-1.0)


# --------------------------------------------------------------------------- helpers


def _grid_and_density(obj):
    if isinstance(obj, Density):
        return obj.grid, obj
    if isinstance(obj, Grid):
        return obj, None
    raise TypeError(
        f"density_or_grid must be a rasterquant Density or Grid, got "
        f"{type(obj).__name__}; wrap arrays with Density.from_array"
    )


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an integer number of points, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return int(n)


def _check_seed(seed):
    """``seed`` for ``numpy.random.default_rng``: None, an int >= 0 or a Generator."""
    if seed is None or isinstance(
        seed, (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)
    ):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            "seed must be an int >= 0, a numpy.random.Generator or None, got "
            f"{type(seed).__name__}"
        )
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed}")
    return int(seed)


def _check_real(value, name) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_request(method, n, seed):
    """Validate ``method``, ``n`` and ``seed``; return ``n`` and the generator."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(
            f"method must be one of {', '.join(repr(m) for m in METHODS)}, "
            f"got {method!r}"
        )
    if n is not None or method not in ("koch", "file"):
        n = _check_n(n)
    return n, np.random.default_rng(_check_seed(seed))


def _place_points(
    grid, density, method, n, rng, jitter, min_distance, c0, beta, level, path
):
    """Place the points of one validated ``method``, clipped into the grid box."""
    lo = np.array([e[0] for e in grid.extent])
    length = grid.lengths
    d = grid.ndim

    if method == "uniform":
        pts = lo + rng.random((n, d)) * length
    elif method == "density":
        if density is None:
            raise TypeError(
                "method='density' needs a Density, got a Grid; pass a Density or "
                "use method='uniform'"
            )
        pts = _sample_density(density, n, rng)
    elif method == "stratified":
        pts = _sample_stratified(
            density if density is not None else Density(grid, None, _uniform=True),
            n,
            rng,
        )
    elif method == "grid":
        k = _integer_root(n, d, method)
        pts = _cell_centres(lo, length, k)
    elif method == "jittered-grid":
        pts = _jittered_grid(lo, length, n, rng, jitter)
    elif method == "separated":
        pts = _separated(lo, length, n, rng, min_distance, c0, beta)
    elif method == "koch":
        pts = _koch_points(grid, lo, length, n, level)
    elif method == "file":
        pts = _points_from_file(grid, n, path)
    else:  # "tightness-grid"
        pts = _tightness_grid(lo, length, n)
    return _inside(pts, lo, length)


def _jittered_grid(lo, length, n, rng, jitter):
    """Cell centres of the ``k**d`` grid, each moved by up to ``jitter`` cells."""
    d = lo.size
    jitter = _check_real(jitter, "jitter")
    if not 0 <= jitter <= 0.5:
        raise ValueError(f"jitter must be in [0, 0.5], got {jitter}")
    k = _integer_root(n, d, "jittered-grid")
    cell = length / k
    pts = _cell_centres(lo, length, k)
    pts += (2.0 * rng.random((n, d)) - 1.0) * jitter * cell
    return pts


def _tightness_grid(lo, length, n):
    """Return the ``"tightness-grid"`` cloud, the tensor grid of ``_tightness_axis``."""
    d = lo.size
    k = _integer_root(n, d, "tightness-grid")
    axis = _tightness_axis(k)
    unit = np.stack(
        [a.ravel() for a in np.meshgrid(*([axis] * d), indexing="ij")], axis=1
    )
    return lo + (unit + 1.0) / 2.0 * length


def _inside(pts, lo, length):
    """Clip into ``[lo, hi)`` per axis (only rounding can put points outside)."""
    hi = lo + length
    top = np.nextafter(hi, lo)
    out = np.minimum(np.maximum(pts, lo), top)
    return np.ascontiguousarray(out, dtype=np.float64)


def _integer_root(n, d, method) -> int:
    """``k`` with ``k**d == n``, or a ValueError naming the nearest valid ``n``."""
    k = max(round(n ** (1.0 / d)), 1)
    while k**d > n:
        k -= 1
    while (k + 1) ** d <= n:
        k += 1
    if k**d == n:
        return k
    power = "square" if d == 2 else "cube"
    raise ValueError(
        f"method={method!r} needs n = k**{d} (a perfect {power}) for a {d}D grid, "
        f"got n = {n}; nearest valid values are {k**d} and {(k + 1) ** d}"
    )


def _cell_centres(lo, length, k):
    axes = [lo[a] + (np.arange(k) + 0.5) * (length[a] / k) for a in range(lo.size)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _sample_density(density, n, rng):
    grid = density.grid
    lo = np.array(grid.origin)
    spacing = np.array(grid.spacing)
    if density.is_uniform:
        idx = rng.random((n, grid.ndim)) * np.array(grid.shape)
        return lo + idx * spacing
    flat = density.values.ravel()
    cdf = np.cumsum(flat)
    # side="right" never picks a zero-mass pixel; the clip guards u * total rounding
    # up to total.
    pick = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    pick = np.minimum(pick, np.flatnonzero(flat)[-1])
    index = np.stack(np.unravel_index(pick, grid.shape), axis=1).astype(np.float64)
    return lo + (index + rng.random((n, grid.ndim))) * spacing


def curve_order(shape):
    """Flat pixel indices of a grid in space-filling-curve order.

    2D: the Hilbert curve of the smallest power-of-two square holding the grid
    (pixels outside the grid skipped); 3D: Morton (Z) order.
    """
    shape = tuple(int(s) for s in shape)
    bits = max(int(np.ceil(np.log2(max(max(shape), 2)))), 1)
    coords = np.indices(shape).reshape(len(shape), -1).astype(np.int64)
    if len(shape) == 2:
        # Hilbert index, rotating the sub-squares level by level (x: axis 1)
        x, y = coords[1].copy(), coords[0].copy()
        key = np.zeros(x.size, dtype=np.int64)
        s = 1 << (bits - 1)
        while s > 0:
            rx = (x & s) > 0
            ry = (y & s) > 0
            key += s * s * ((3 * rx) ^ ry)
            flip = ~ry
            swap_x = np.where(flip & rx, s - 1 - x, x)
            swap_y = np.where(flip & rx, s - 1 - y, y)
            x = np.where(flip, swap_y, swap_x)
            y = np.where(flip, swap_x, swap_y)
            s >>= 1
    else:
        key = np.zeros(coords.shape[1], dtype=np.int64)
        for b in range(bits):
            for a in range(len(shape)):
                key |= ((coords[a] >> b) & 1) << (len(shape) * b + (len(shape) - 1 - a))
    return np.argsort(key, kind="stable")


def _sample_stratified(density, n, rng):
    grid = density.grid
    lo = np.array(grid.origin)
    spacing = np.array(grid.spacing)
    order = curve_order(grid.shape)
    if density.is_uniform:
        mass = np.ones(order.size)
    else:
        mass = density.values.ravel()[order]
    cdf = np.cumsum(mass)
    u = (np.arange(n) + rng.random()) / n * cdf[-1]
    pos = np.searchsorted(cdf, u, side="right")
    pos = np.minimum(pos, np.flatnonzero(mass)[-1])
    pick = order[pos]
    index = np.stack(np.unravel_index(pick, grid.shape), axis=1).astype(np.float64)
    return lo + (index + rng.random((n, grid.ndim))) * spacing


def _separated(lo, length, n, rng, min_distance, c0, beta):
    from scipy.stats import qmc

    d = lo.size
    # Isotropic scaling to a box of unit volume (the unit cube for a cubic box).
    unit = float(np.prod(length)) ** (1.0 / d)
    bounds = length / unit
    if min_distance is not None:
        min_distance = _check_real(min_distance, "min_distance")
        if min_distance <= 0:
            raise ValueError(f"min_distance must be > 0, got {min_distance}")
        r = min_distance / unit
        what = f"min_distance = {min_distance:g}"
        hint = "use a smaller min_distance"
    else:
        c0 = _check_real(c0, "c0")
        if c0 <= 0:
            raise ValueError(f"c0 must be > 0, got {c0}")
        beta = float(d) if beta is None else _check_real(beta, "beta")
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        r = c0 * n ** (-1.0 / beta)
        what = f"radius r = c0 * n**(-1/beta) = {r:.4g} (c0 = {c0:g}, beta = {beta:g})"
        hint = "use a smaller c0"
    if n == 1:
        return lo + rng.random((1, d)) * bounds * unit
    radius = r + _POISSON_PAD * max(1.0, float(bounds.max()))
    # A maximal Poisson disk set of radius r holds about 0.6 / r**d points per unit
    # volume (2D and 3D). When that is far more than n, filling the box would take
    # long: throw darts instead, which then succeed almost every time.
    unit_pts = None
    if 0.6 * radius ** (-d) > _DART_FACTOR * n:
        unit_pts = _dart_throwing(bounds, n, radius, rng)
    if unit_pts is None:
        # PoissonDisk.random(n) returns the first n points of a front that grows
        # from one seed, a clump covering part of the box: fill the whole box and
        # keep a random subset instead.
        sampler = qmc.PoissonDisk(
            d, radius=radius, rng=rng, l_bounds=np.zeros(d), u_bounds=bounds
        )
        filled = np.asarray(sampler.fill_space(), dtype=np.float64)
        m = filled.shape[0]
        if m < n:
            raise ValueError(
                f"{what} is too large for n = {n} points: Poisson disk sampling "
                f"placed only {m}; {hint} (about {(m / n) ** (1.0 / d):.2g} times "
                "the current value should fit)"
            )
        unit_pts = filled[rng.choice(m, size=n, replace=False)]
    return lo + unit_pts * unit


#: dart throwing replaces filling the box when it would hold more than this many
#: times n separated points
_DART_FACTOR = 20


def _dart_throwing(bounds, n, radius, rng):
    """``n`` uniform points in ``[0, bounds)`` at distance >= ``radius``, or None.

    Candidates are uniform in the box and kept when no kept point is closer than
    ``radius`` (a cell hash of side ``radius`` finds the neighbours). Gives up
    (None) after ``10 n + 100`` candidates.
    """
    d = bounds.size
    cells = {}
    kept = []
    r2 = radius * radius
    offsets = np.stack(
        np.meshgrid(*([np.arange(-1, 2)] * d), indexing="ij"), axis=-1
    ).reshape(-1, d)
    budget = 10 * n + 100
    while len(kept) < n and budget > 0:
        batch = min(budget, 2 * (n - len(kept)) + 16)
        budget -= batch
        for p in rng.random((batch, d)) * bounds:
            key = np.floor(p / radius).astype(np.int64)
            near = (
                q for off in offsets for q in cells.get(tuple((key + off).tolist()), ())
            )
            if any(float(((p - q) ** 2).sum()) < r2 for q in near):
                continue
            cells.setdefault(tuple(key.tolist()), []).append(p)
            kept.append(p)
            if len(kept) == n:
                break
    if len(kept) < n:
        return None
    return np.array(kept, dtype=np.float64)


def _koch_points(grid, lo, length, n, level):
    if grid.ndim != 2:
        raise ValueError(
            f"method='koch' is 2D only, got a {grid.ndim}D grid; use another method"
        )
    if level is None:
        if n is None:
            raise ValueError("method='koch' needs n = 4**level + 1 or level")
        level = 0
        while 4**level + 1 < n:
            level += 1
        if 4**level + 1 != n:
            valid = sorted({4 ** max(level - 1, 0) + 1, 4**level + 1})
            raise ValueError(
                f"method='koch' needs n = 4**level + 1, got n = {n}; nearest valid "
                f"values: {' and '.join(str(v) for v in valid)}"
            )
    xy = koch_curve(level)
    if n is not None and xy.shape[0] != n:
        raise ValueError(
            f"method='koch' with level = {level} gives {xy.shape[0]} points, but "
            f"n = {n}; pass n = {xy.shape[0]} or n=None"
        )
    height, width = length  # rows (vertical), cols (horizontal)
    ymin, ymax = xy[:, 1].min(), xy[:, 1].max()
    # x spans 90% of the width, unless the box is too flat for the curve.
    scale = 0.9 * width
    if ymax > ymin:
        scale = min(scale, 0.9 * height / (ymax - ymin))
    col = lo[1] + width / 2 + (xy[:, 0] - 0.5) * scale
    # Rows grow downwards: flip y so the curve is upright in an image.
    row = lo[0] + height / 2 - (xy[:, 1] - (ymin + ymax) / 2) * scale
    return np.stack([row, col], axis=1)


def _points_from_file(grid, n, path):
    if path is None:
        raise ValueError("method='file' needs path, the point file to read")
    from ._validation import check_points
    from .io.points import read_points

    points, _columns = read_points(path, ndim=grid.ndim)
    pts = check_points(points, grid, name=f"points read from {path}")
    if n is not None and pts.shape[0] != n:
        raise ValueError(
            f"{path} holds {pts.shape[0]} points but n = {n}; pass n = "
            f"{pts.shape[0]} or n=None"
        )
    return pts


def _tightness_axis(k):
    right = (np.arange(k - 1) + 0.5) / (k - 1) if k > 1 else np.empty(0)
    return np.concatenate([[-0.5], right])
