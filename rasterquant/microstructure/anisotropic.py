"""Microstructures of elongated grains: anisotropic Laguerre grains of given volumes.

Grain ``i`` is the anisotropic power cell
``{x : (x - y_i)^T A_i (x - y_i) - w_i <= (x - y_j)^T A_j (x - y_j) - w_j}`` of
its seed ``y_i``, with ``A_i = R_i D R_i^T``: ``D = diag(1 / a^2)`` from the aspect
ratios ``a`` (normalised to ``prod a = 1``, so ``det A = 1``) and ``R_i`` the grain's
rotation. Weights ``w`` give the grains their volumes (damped Newton,
:func:`rasterquant.ot.anisotropic.solve_anisotropic`); a few Lloyd steps (seed ->
centroid of its grain) make each grain look like the unit ball of its metric: about
``a_k`` long along its axis ``k``.

Axis order. ``aspect`` is given in array order like everything in rasterquant:
``(z, y, x)`` in 3D (``(y, x)`` in 2D, ``y`` the rows). ``aspect=(3, 1, 0.5)``:
grains about 3 times longer along z than along y, and twice longer along y than
along x. Rotations (Bunge Euler angles ``(phi1, Phi, phi2)`` in degrees, ZXZ, or a
scipy ``Rotation``) follow :mod:`rasterquant.microstructure.orientations`: the active
rotation ``R`` takes the grain's axes to the sample's (``v_sample = R v_grain`` in
``(x, y, z)`` components); the metric is converted to array order. In 2D a rotation
is one angle in degrees, counter-clockwise in the ``(x, y)`` plane.

Fast path. One diagonal metric (``aspect`` without rotation or per-grain metrics)
is the isotropic problem on the raster with spacing ``spacing / a``:
``(x - y)^T A (x - y) = |x' - y'|^2`` with ``x' = x / a``. Then
:func:`~rasterquant.microstructure.generate_microstructure` runs on that raster
(Lloyd steps and the final solve on the exact cells, milliseconds per solve), the
seeds are mapped back, and if the grain map's voxel counts miss ``tol``,
:func:`~rasterquant.ot.anisotropic.solve_anisotropic` (metric ``diag(1 / a^2)``
on the real raster, started from those weights) brings them within it. The grain
map is the brute-force anisotropic argmin (tests compare them).
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..density import Density
from ..errors import RasterquantWarning
from ..ot.anisotropic import check_metrics, solve_anisotropic
from .generate import (
    Microstructure,
    _shape,
    generate_microstructure,
    parse_volumes,
)
from .stats import grain_statistics

__all__ = [
    "METRIC_LAWS",
    "AnisotropicMicrostructure",
    "aspect_metric",
    "generate_anisotropic_microstructure",
    "grain_second_moments",
]

logger = logging.getLogger(__name__)

#: laws for per-grain metrics (the ``metrics`` argument as a string)
METRIC_LAWS = ("random", "spread:DEGREES")

#: relative tolerance of the Lloyd-step solves (at least ``tol``)
LLOYD_TOL = 0.05


@dataclass(frozen=True)
class AnisotropicMicrostructure(Microstructure):
    """A :class:`Microstructure` of anisotropic Laguerre grains.

    ``weights`` are those of the metric: voxel ``x`` belongs to the grain
    minimising ``(x - y_i)^T A_i (x - y_i) - w_i`` (minimum image under ``A_i``).

    Attributes
    ----------
    metrics : (N, d, d) ndarray of float64
        Metric ``A_i`` of every grain (array axis order).
    aspect : tuple of float
        Requested aspect ratios (array axis order), normalised to product 1.
    fast_path : bool
        True if the grains came from the isotropic solver on the rescaled raster.
    """

    metrics: np.ndarray | None = field(default=None, repr=False)
    aspect: tuple = ()
    fast_path: bool = False


def _rotation_matrix(rotation, ndim):
    """Active rotation in array axis order (d, d), or None."""
    if rotation is None:
        return None
    from scipy.spatial.transform import Rotation

    if ndim == 2:
        if isinstance(rotation, Rotation) or np.ndim(rotation) != 0:
            raise ValueError(
                f"rotation must be one angle (degrees) for a 2D shape, got {rotation!r}"
            )
        rxy = Rotation.from_euler("z", float(rotation), degrees=True).as_matrix()[
            :2, :2
        ]
        return rxy[::-1, ::-1].copy()
    if isinstance(rotation, Rotation):
        if not rotation.single:
            raise ValueError(
                f"rotation must be a single scipy Rotation, got {len(rotation)} of them"
            )
        rot = rotation
    else:
        e = np.asarray(rotation, dtype=np.float64)
        if e.shape != (3,) or not np.isfinite(e).all():
            raise ValueError(
                "rotation must be Bunge Euler angles (phi1, Phi, phi2) in degrees or a "
                f"scipy Rotation, got {rotation!r}"
            )
        rot = Rotation.from_euler("ZXZ", e, degrees=True)
    return rot.as_matrix()[::-1, ::-1].copy()


def _check_aspect(aspect, ndim):
    a = np.asarray(aspect, dtype=np.float64)
    if a.shape != (ndim,) or not np.isfinite(a).all() or (a <= 0).any():
        raise ValueError(
            f"aspect must be {ndim} positive numbers (array axis order), got {aspect!r}"
        )
    return a / np.prod(a) ** (1.0 / ndim)


def aspect_metric(aspect, rotation=None):
    """Metric ``A = R diag(1 / a^2) R^T`` of grains with aspect ratios ``a``.

    Parameters
    ----------
    aspect : sequence of 2 or 3 float
        Grain lengths along the array axes (z, y, x) / (y, x), relative; normalised
        to product 1 (``det A = 1``).
    rotation : Bunge Euler angles (3,) in degrees, scipy Rotation, 2D angle, or None
        See the module docstring.

    Returns
    -------
    (d, d) ndarray of float64

    Examples
    --------
    >>> aspect_metric((2.0, 0.5)).round(3).tolist()
    [[0.25, 0.0], [0.0, 4.0]]
    """
    a = _check_aspect(aspect, len(aspect))
    d = np.diag(1.0 / a**2)
    r = _rotation_matrix(rotation, len(a))
    return d if r is None else r @ d @ r.T


def _metric_law(law, n, aspect, rotation, ndim, rng):
    """Per-grain metrics (N, d, d) from a law name (see METRIC_LAWS)."""
    from scipy.spatial.transform import Rotation

    name, _, arg = str(law).partition(":")
    base = _rotation_matrix(rotation, ndim)
    base = np.eye(ndim) if base is None else base
    if name == "random" and not arg:
        if ndim == 3:
            rots = Rotation.random(n, rng=rng).as_matrix()[:, ::-1, ::-1]
        else:
            t = rng.uniform(0.0, 2.0 * np.pi, n)
            rots = np.stack([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
            rots = rots.transpose(2, 0, 1)
    elif name == "spread":
        try:
            deg = float(arg)
        except ValueError:
            deg = -1.0
        if not 0 <= deg <= 180:
            raise ValueError(
                f"metrics {law!r}: expected 'spread:DEGREES' with 0 <= DEGREES <= 180"
            )
        ang = np.deg2rad(rng.uniform(-deg, deg, n))
        if ndim == 3:
            axis = rng.normal(size=(n, 3))
            axis /= np.linalg.norm(axis, axis=1, keepdims=True)
            rv = Rotation.from_rotvec(axis * ang[:, None]).as_matrix()[:, ::-1, ::-1]
        else:
            rv = np.stack([[np.cos(ang), np.sin(ang)], [-np.sin(ang), np.cos(ang)]])
            rv = rv.transpose(2, 0, 1)
        rots = base[None] @ rv
    else:
        raise ValueError(
            f"metrics must be an (N, d, d) array or one of {', '.join(METRIC_LAWS)}, "
            f"got {law!r}"
        )
    d = np.diag(1.0 / aspect**2)
    return rots @ d @ rots.transpose(0, 2, 1)


def grain_second_moments(grain_map, seeds, *, spacing=1.0, periodic=False):
    """Voxel counts and covariance matrices of the voxel centres of every grain.

    Displacements are taken from each grain's seed (minimum image on periodic
    axes), so grains that wrap around the box need no unwrapping (as long as they
    are shorter than half a period).

    Parameters
    ----------
    grain_map : (H, W) or (D, H, W) array_like of int
    seeds : (N, d) array_like of float
        Physical units, array axis order.
    spacing : float or sequence of float
    periodic : bool or sequence of bool

    Returns
    -------
    counts : (N,) ndarray of int64
    cov : (N, d, d) ndarray of float64
        Covariance of the voxel centres (physical units); NaN for empty grains.
    """
    from ..grid import Grid

    gm = np.asarray(grain_map)
    grid = Grid(gm.shape, spacing=spacing, periodic=periodic)
    seeds = np.asarray(seeds, dtype=np.float64)
    n = len(seeds)
    lab = gm.ravel().astype(np.int64)
    counts = np.bincount(lab, minlength=n)
    safe = np.maximum(counts, 1).astype(np.float64)
    cent = grid.pixel_centres()
    d = grid.min_image(cent - seeds[lab])
    nd = gm.ndim
    mean = np.stack([np.bincount(lab, d[:, a], n) / safe for a in range(nd)], 1)
    cov = np.empty((n, nd, nd))
    for a in range(nd):
        for b in range(a, nd):
            s = np.bincount(lab, d[:, a] * d[:, b], n) / safe
            cov[:, a, b] = cov[:, b, a] = s - mean[:, a] * mean[:, b]
    cov[counts == 0] = np.nan
    return counts, cov


def _anisotropic_stats(grain_map, n, h, periodic, seeds, metrics):
    """Grain statistics with facet normals ``(A_i + A_j) / 2 (y_j - y_i)``.

    The normal is exact for a common metric (the facets are planes with normal
    ``A (y_j - y_i)``) and first-order for per-grain metrics.
    """
    stats = grain_statistics(grain_map, n_grains=n, spacing=h, periodic=periodic)
    pairs = stats.neighbour_pairs
    if not len(pairs):
        return stats
    i, j = pairs[:, 0], pairs[:, 1]
    lengths = np.asarray(h) * np.array(grain_map.shape)
    delta = seeds[j] - seeds[i]
    for a, p in enumerate(periodic):
        if p:
            delta[:, a] -= lengths[a] * np.round(delta[:, a] / lengths[a])
    normal = np.einsum("kab,kb->ka", 0.5 * (metrics[i] + metrics[j]), delta)
    norm = np.linalg.norm(normal, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        nrm = np.abs(normal) / norm[:, None]
    nrm = np.where(np.isfinite(nrm), nrm, 1.0)
    face_area = np.array([np.prod(np.delete(h, a)) for a in range(grain_map.ndim)])
    facet = (stats.face_counts * face_area * nrm).sum(axis=1)
    surface = (
        np.bincount(i, weights=facet, minlength=n)
        + np.bincount(j, weights=facet, minlength=n)
        + stats.boundary_area
    )
    return dataclasses.replace(stats, facet_area=facet, surface_area=surface)


def _check_args(shape, n_grains, tol, lloyd_iterations, spacing):
    shape = _shape(shape)
    ndim = len(shape)
    if n_grains is not None and (
        isinstance(n_grains, bool)
        or not isinstance(n_grains, numbers.Integral)
        or n_grains < 1
    ):
        raise ValueError(f"n_grains must be an integer >= 1, got {n_grains!r}")
    if not (isinstance(tol, numbers.Real) and 0 < tol < 1):
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    if (
        isinstance(lloyd_iterations, bool)
        or not isinstance(lloyd_iterations, numbers.Integral)
        or lloyd_iterations < 0
    ):
        raise ValueError(
            f"lloyd_iterations must be an integer >= 0, got {lloyd_iterations!r}"
        )
    h = np.asarray(spacing, dtype=np.float64)
    h = np.full(ndim, float(h)) if h.ndim == 0 else h
    if h.shape != (ndim,) or not np.isfinite(h).all() or (h <= 0).any():
        raise ValueError(
            f"spacing must be a number > 0 or {ndim} such numbers, got {spacing!r}"
        )
    return shape, h


def _fast_path(shape, n_grains, a, h, opts, solve_kw, t0):
    """Diagonal common metric: the isotropic generator on the raster ``h / a``.

    Its Lloyd steps and final solve use the exact cells; the voxel counts of the
    grain map are then brought to ``tol`` by :func:`solve_anisotropic` with the
    metric ``diag(1 / a^2)`` on the real raster, started from those weights (a few
    Newton steps on the voxel counts and the voxel polish).
    """
    volumes, periodic, tol, lloyd_iterations, seed, statistics = opts
    with warnings.catch_warnings(record=True) as caught_iso:
        warnings.simplefilter("always", RasterquantWarning)
        ms = generate_microstructure(
            shape,
            n_grains,
            volumes=volumes,
            spacing=tuple(h / a),
            periodic=periodic,
            lloyd_iterations=lloyd_iterations,
            tol=tol,
            seed=seed,
            statistics=False,
            progress=solve_kw["progress"],
            polish=False,
        )
    n, ndim = ms.n_grains, len(shape)
    seeds = np.asarray(ms.seeds) * a
    metrics = np.broadcast_to(np.diag(1.0 / a**2), (n, ndim, ndim)).copy()
    extent = [(0.0, s * hh) for s, hh in zip(shape, h, strict=True)]
    density = Density.uniform(shape, extent=extent, periodic=periodic)
    grid = density.grid
    fractions = ms.target_volumes / ms.target_volumes.sum()
    hist = {k: list(v) for k, v in ms.history.items()}
    res = None
    counts = np.bincount(ms.grain_map.ravel(), minlength=n)
    if np.max(np.abs(counts / grid.n_pixels - fractions) / fractions) > tol:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RasterquantWarning)
            res = solve_anisotropic(
                density,
                seeds,
                metrics,
                fractions,
                weights=ms.weights,
                tol=tol,
                **solve_kw,
            )
        for c in caught:
            if issubclass(c.category, RasterquantWarning):
                warnings.warn(str(c.message), c.category, stacklevel=4)
        _record(hist, "voxels", res, 0.0, t0)
    for c in caught_iso:  # the isotropic generator's warnings, unless superseded
        if res is None or not issubclass(c.category, RasterquantWarning):
            warnings.warn(str(c.message), c.category, stacklevel=4)
    grain_map = ms.grain_map if res is None else res.labels
    weights = ms.weights if res is None else res.weights
    status = ms.status if res is None else res.status
    return _assemble(
        grain_map,
        (seeds, weights, metrics, fractions, ms.phases),
        (h, grid, tol, status, seed, ms.volume_law, hist, statistics),
        a,
        True,
        t0,
    )


def _record(hist, stage, res, disp, t0):
    """Append one solve to the history (the keys of Microstructure.history)."""
    hist["stage"].append(stage)
    hist["max_volume_error"].append(float(res.max_error))
    hist["newton_iterations"].append(int(res.n_iter))
    hist["repairs"].append(0)
    hist["status"].append(res.status)
    hist["displacement"].append(disp)
    hist["energy"].append(float("nan"))
    hist["time"].append(time.perf_counter() - t0)


def _assemble(grain_map, grains, opts, a, fast, t0):
    """AnisotropicMicrostructure of a grain map (volumes are its voxel counts)."""
    seeds, weights, metrics, fractions, phases = grains
    h, grid, tol, status, seed, law, hist, statistics = opts
    n = len(seeds)
    target = fractions * grid.volume
    volumes = np.bincount(grain_map.ravel(), minlength=n) * float(np.prod(h))
    rel = np.abs(volumes - target) / target
    stats = None
    if statistics:
        stats = _anisotropic_stats(grain_map, n, h, grid.periodic, seeds, metrics)
    return AnisotropicMicrostructure(
        grain_map=np.ascontiguousarray(grain_map, dtype=np.int32),
        seeds=np.array(seeds),
        weights=np.array(weights),
        target_volumes=target,
        volumes=volumes,
        phases=phases,
        stats=stats,
        converged=bool(rel.max() <= tol),
        max_volume_error=float(rel.max()),
        mean_volume_error=float(rel.mean()),
        volume_measure="voxels",
        max_voxel_volume_error=float(rel.max()),
        tol=float(tol),
        status=status,
        n_repairs=0,
        spacing=tuple(float(v) for v in h),
        periodic=tuple(grid.periodic),
        seed=seed,
        volume_law=law,
        history=hist,
        elapsed=time.perf_counter() - t0,
        metrics=metrics,
        aspect=tuple(float(v) for v in a),
        fast_path=fast,
    )


#: Lloyd steps run on a raster this many times coarser per axis...
_LLOYD_COARSEN = 2
#: ...when the grains keep at least this many coarse voxels on average
_COARSE_VOXELS = 64


def _coarse_density(grid, n):
    """Return the uniform density of the Lloyd steps' coarser raster, or None.

    ``_LLOYD_COARSEN`` times fewer voxels per axis on the same box; None when the
    ``n`` grains would get fewer than ``_COARSE_VOXELS`` voxels on average.
    """
    coarse = tuple(max(1, -(-s // _LLOYD_COARSEN)) for s in grid.shape)
    if np.prod(coarse) < _COARSE_VOXELS * n or min(coarse) < 8:
        return None
    extent = [
        (o, o + length) for o, length in zip(grid.origin, grid.lengths, strict=True)
    ]
    return Density.uniform(coarse, extent=extent, periodic=grid.periodic)


def _lloyd_solves(
    density, pts, metrics, fractions, tol, lloyd_iterations, solve_kw, hist, t0
):
    """Lloyd steps in the metric, then the final solve; returns (result, seeds).

    The Lloyd steps only need the grains' centroids: they run on a raster coarser
    by ``_LLOYD_COARSEN`` per axis when the grains keep at least
    ``_COARSE_VOXELS`` coarse voxels on average (the weights carry over: they do
    not depend on the raster), to ``LLOYD_TOL`` or twice the relative volume of
    one coarse voxel in the smallest grain, whichever is larger (at most 0.5).
    """
    grid = density.grid
    coarse = _coarse_density(grid, len(fractions)) or density
    # the Lloyd steps' tolerance: loose, and within what the coarse voxels resolve
    floor = 1.0 / (float(fractions.min()) * coarse.grid.n_pixels)
    lloyd_tol = min(max(tol, LLOYD_TOL, 2.0 * floor), 0.5)
    w = None
    caught_final = []
    for step in range(lloyd_iterations + 1):
        final = step == lloyd_iterations
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RasterquantWarning)
            res = solve_anisotropic(
                density if final else coarse,
                pts,
                metrics,
                fractions,
                weights=w,
                tol=tol if final else lloyd_tol,
                **solve_kw,
            )
        disp = 0.0
        w = res.weights
        if final:
            caught_final = [
                c for c in caught if issubclass(c.category, RasterquantWarning)
            ]
        else:
            move = grid.min_image(res.centroids - pts)
            disp = float(np.sqrt((move**2).sum(axis=1)).max())
            pts = res.centroids.copy()
            # each seed keeps its value at its grain's centroid
            w = w - np.einsum("ka,kab,kb->k", move, metrics, move)
        _record(hist, "final" if final else "lloyd", res, disp, t0)
        logger.debug(
            "anisotropic microstructure step %d: error %.3g (%s)",
            step,
            res.max_error,
            res.status,
        )
    for c in caught_final:
        warnings.warn(str(c.message), c.category, stacklevel=4)
    return res, pts


def generate_anisotropic_microstructure(
    shape,
    n_grains=None,
    *,
    aspect=(3.0, 1.0, 0.5),
    rotation=None,
    metrics=None,
    volumes="constant",
    spacing=1.0,
    periodic=True,
    tol: float = 0.01,
    lloyd_iterations: int = 3,
    seed=None,
    max_iter: int = 100,
    linear_solver: str = "auto",
    statistics: bool = True,
    progress: bool = False,
) -> AnisotropicMicrostructure:
    """Generate a voxel microstructure of elongated grains with prescribed volumes.

    Parameters
    ----------
    shape : tuple of int
        ``(D, H, W)`` voxels or ``(H, W)`` pixels.
    n_grains : int, optional
        Number of grains (may be omitted with explicit ``volumes``).
    aspect : sequence of d float
        Grain lengths along the array axes (z, y, x) / (y, x), relative: the
        default ``(3, 1, 0.5)`` makes grains 3 times longer along z than along y
        and twice longer along y than along x.
    rotation : (3,) Bunge Euler angles in degrees, scipy Rotation, 2D angle, or None
        Orientation of every grain's axes (module docstring).
    metrics : (N, d, d) array_like or str, optional
        Per-grain SPD metrics (then ``aspect`` and ``rotation`` are ignored), or a
        law applied to ``aspect``: ``"random"`` (each grain a uniformly random
        orientation) or ``"spread:DEGREES"`` (each grain ``rotation`` followed by a
        random rotation of up to DEGREES about a random axis).
    volumes : str or (N,) array_like or path
        Volume law, as :func:`~rasterquant.microstructure.parse_volumes`.
    spacing : float or sequence of float
        Voxel size per array axis.
    periodic : bool or sequence of bool
        Periodic axes.
    tol : float
        Maximum relative volume error of the grain map's voxel counts.
    lloyd_iterations : int
        Lloyd steps (seed -> its grain's centroid) before the final solve.
    seed : int, optional
        Seed of the random seeds, volumes and metric laws.
    max_iter : int
        Newton iterations per solve.
    linear_solver : {"auto", "direct", "cg"}
        Newton linear solver.
    statistics : bool
        Compute :class:`~rasterquant.microstructure.stats.GrainStatistics`.
    progress : bool
        Progress bars on stderr.

    Returns
    -------
    AnisotropicMicrostructure
        A :class:`Microstructure` with the grains' ``metrics``.

    Raises
    ------
    ValueError
        Bad shape, counts, aspect, rotation, metrics, volumes or tolerance.

    Warns
    -----
    ResolutionWarning, ConvergenceWarning
        From the final solve (voxel counts cannot meet ``tol``, or no progress).

    Notes
    -----
    With a common diagonal metric (``aspect``, no rotation, no per-grain metrics)
    the grains are the isotropic Laguerre grains of the raster with spacing
    ``spacing / a`` (module docstring): :func:`generate_microstructure` builds them
    (exact cell volumes, voxel polish) and ``fast_path`` is True. Otherwise each
    solve is damped Newton on the voxel counts over the anisotropic kernels; its
    masses are piecewise constant, so ``tol`` needs grains of well over ``1 / tol``
    voxels. Cost: ``lloyd_iterations + 1`` solves.

    Examples
    --------
    >>> ms = generate_anisotropic_microstructure((64, 64), 8, aspect=(2, 1), seed=0,
    ...                                          tol=0.05)
    >>> ms.fast_path, ms.converged
    (True, True)
    """
    t0 = time.perf_counter()
    shape, h = _check_args(shape, n_grains, tol, lloyd_iterations, spacing)
    ndim = len(shape)
    a = _check_aspect(aspect, ndim)
    opts = (volumes, periodic, float(tol), lloyd_iterations, seed, statistics)
    solve_kw = {
        "max_iter": max_iter,
        "linear_solver": linear_solver,
        "progress": progress,
    }
    if metrics is None and rotation is None:
        return _fast_path(shape, n_grains, a, h, opts, solve_kw, t0)
    return _general_path(shape, n_grains, (a, rotation, metrics), h, opts, solve_kw, t0)


def _general_path(shape, n_grains, metric_spec, h, opts, solve_kw, t0):
    """Per-grain or rotated metrics: Lloyd steps and solves on the general kernels."""
    a, rotation, metrics = metric_spec
    volumes, periodic, tol, lloyd_iterations, seed, statistics = opts
    ndim = len(shape)
    fractions, phases, law = parse_volumes(volumes, n_grains, ndim=ndim, seed=seed)
    n = len(fractions)
    extent = [(0.0, s * hh) for s, hh in zip(shape, h, strict=True)]
    density = Density.uniform(shape, extent=extent, periodic=periodic)
    grid = density.grid
    if n > grid.n_pixels:
        raise ValueError(
            f"n_grains={n} exceeds the {grid.n_pixels} voxels of shape {shape}; "
            "expected at most one grain per voxel"
        )
    rng = np.random.default_rng(None if seed is None else [seed, 7])
    if metrics is None:
        mets = np.broadcast_to(aspect_metric(a, rotation), (n, ndim, ndim)).copy()
    elif isinstance(metrics, str):
        mets = _metric_law(metrics, n, a, rotation, ndim, rng)
    else:
        mets = check_metrics(metrics, n, ndim)
    pts = rng.random((n, ndim)) * grid.lengths
    keys = "stage max_volume_error newton_iterations repairs status displacement"
    hist = {k: [] for k in (*keys.split(), "energy", "time")}
    res, pts = _lloyd_solves(
        density, pts, mets, fractions, tol, lloyd_iterations, solve_kw, hist, t0
    )
    return _assemble(
        res.labels,
        (pts, res.weights, mets, fractions, phases),
        (h, grid, tol, res.status, seed, law, hist, statistics),
        a,
        False,
        t0,
    )
