"""Anisotropic power diagrams on the raster and their volumes by damped Newton.

Site ``i`` has a position ``y_i``, a weight ``w_i`` and a symmetric positive
definite metric ``A_i``; a voxel belongs to the cell

``C_i = {x : (x - y_i)^T A_i (x - y_i) - w_i <= (x - y_j)^T A_j (x - y_j) - w_j}``

(lowest index on ties; on periodic axes the minimum over the images ``y_i + k L``,
the minimum image under ``A_i``). Cell masses are sums of voxel masses (centre
quadrature). The kernels, and the proof that their tile candidate lists are exact,
are in :mod:`rasterquant.assign._anisotropic`.

Common metric. When every site has the same ``A = L^T L``, ``C_i`` is the ordinary
power cell of ``L y_i`` in the space ``x' = L x``; for a diagonal ``A`` that is the
raster with spacing ``sqrt(diag A) * spacing``, so the isotropic solver applies
as it is (``rasterquant.microstructure.anisotropic`` uses it for aspect ratios
without rotation). These functions handle any metrics.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .. import _config
from .._blas import one_blas_thread
from .._validation import (
    check_callback,
    check_density,
    check_masses,
    check_points,
    check_positive_int,
    check_tol,
    check_weights,
)
from ..assign import _anisotropic as _k
from ..density import Density
from ..errors import ConvergenceWarning, EmptyCellError, ResolutionWarning
from ._jacobian import solve_newton_system
from .newton import CONVERGED, MAX_ITER, RESOLUTION, STALLED

__all__ = [
    "AnisotropicCells",
    "AnisotropicResult",
    "assign_anisotropic",
    "check_metrics",
    "solve_anisotropic",
]

logger = logging.getLogger(__name__)

#: tiles of the candidate lists and sub-tiles of the sweep's pruning, (z, y, x),
#: for isotropic metrics: smaller than the isotropic sweep's (_config.TILE_3D),
#: elongated cells make the bounds of a large tile loose. Tiles follow the cells'
#: typical shape (:func:`_tiling`) with these voxel counts.
TILE_2D = (1, 16, 16)
SUB_2D = (1, 8, 8)
TILE_3D = (8, 8, 8)
SUB_3D = (4, 4, 4)
#: slack of the reusable candidate lists, in units of the squared metric radius
#: of the mean cell (lists grow by ~10 % at 0.5 on 10,000 grains)
LIST_SLACK = 0.5
#: weight groups of the binned copies (each scanned within its own reach)
_N_GROUPS = 8
#: rounds of the repair of empty starting cells
_MAX_REPAIRS = 50


# ----------------------------------------------------------------------------------
# validation


def check_metrics(metrics, n, ndim) -> np.ndarray:
    """Metrics as a fresh ``(N, d, d)`` float64 array of symmetric positive definite.

    Parameters
    ----------
    metrics : (d, d) or (N, d, d) array_like of float
        One metric shared by every site, or one per site.
    n : int
        Number of sites.
    ndim : int
        Dimension ``d``.

    Returns
    -------
    (N, d, d) ndarray of float64
        Exactly symmetric (the mean of ``A`` and ``A^T``).

    Raises
    ------
    ValueError
        Wrong shape, NaN/inf, asymmetry above ``1e-10`` relative, or a metric that
        is not positive definite.
    """
    try:
        a = np.array(metrics, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"metrics must be a numeric ({ndim}, {ndim}) or (N, {ndim}, {ndim}) array, "
            f"got {type(metrics).__name__}"
        ) from None
    if a.shape == (ndim, ndim):
        a = np.broadcast_to(a, (n, ndim, ndim)).copy()
    if a.shape != (n, ndim, ndim):
        raise ValueError(
            f"metrics must have shape ({ndim}, {ndim}) or ({n}, {ndim}, {ndim}) "
            f"(one per point), got {a.shape}"
        )
    bad = ~np.isfinite(a).all(axis=(1, 2))
    if bad.any():
        raise ValueError(
            f"metrics[{int(np.flatnonzero(bad)[0])}] contains NaN or inf; expected "
            "finite symmetric positive definite matrices"
        )
    scale = np.abs(a).max(axis=(1, 2))
    asym = np.abs(a - a.transpose(0, 2, 1)).max(axis=(1, 2))
    if (asym > 1e-10 * scale).any():
        i = int(np.flatnonzero(asym > 1e-10 * scale)[0])
        raise ValueError(
            f"metrics[{i}] is not symmetric (max |A - A^T| = {asym[i]:.3g}); expected "
            "symmetric positive definite matrices"
        )
    a = 0.5 * (a + a.transpose(0, 2, 1))
    lam = np.linalg.eigvalsh(a)
    notpd = ~(lam[:, 0] > 1e-12 * np.maximum(lam[:, -1], 1e-300))
    if notpd.any():
        i = int(np.flatnonzero(notpd)[0])
        raise ValueError(
            f"metrics[{i}] has eigenvalues {np.round(lam[i], 6).tolist()}; expected a "
            "symmetric positive definite matrix (all eigenvalues > 0)"
        )
    return a


def _density(density_or_shape, periodic):
    """Return a Density from a Density, an array of voxel values or a shape."""
    if isinstance(density_or_shape, Density):
        if periodic is not None:
            per = (bool(periodic),) * density_or_shape.ndim
            if not isinstance(periodic, (bool, np.bool_)):
                per = tuple(bool(p) for p in periodic)
            if per != tuple(density_or_shape.grid.periodic):
                raise ValueError(
                    f"periodic={periodic!r} contradicts the density's grid (periodic="
                    f"{density_or_shape.grid.periodic}); expected None or the same"
                )
        return density_or_shape
    per = False if periodic is None else periodic
    if isinstance(density_or_shape, tuple) and all(
        isinstance(s, numbers.Integral) for s in density_or_shape
    ):
        return Density.uniform(density_or_shape, periodic=per)
    dens = check_density(density_or_shape)
    return Density(
        type(dens.grid)(dens.grid.shape, periodic=per),
        dens.values.copy(),
        _uniform=dens.is_uniform,
    )


# ----------------------------------------------------------------------------------
# sites, copies and candidate lists


def _coefficients(metrics3):
    """``(coef (N, 6), lmin (N,), lmax (N,), invd (N, 3))`` of (N, 3, 3) metrics.

    ``invd`` is the diagonal of ``A^-1`` (1 on the dummy axis of 2D metrics).
    """
    a = metrics3
    coef = np.stack(
        [
            a[:, 0, 0],
            a[:, 1, 1],
            a[:, 2, 2],
            2.0 * a[:, 0, 1],
            2.0 * a[:, 0, 2],
            2.0 * a[:, 1, 2],
        ],
        axis=1,
    )
    flat2d = a.shape[0] > 0 and bool(np.all(a[:, 0, :] == 0.0))
    core = a[:, 1:, 1:] if flat2d else a
    lam = np.linalg.eigvalsh(core)
    inv = np.diagonal(np.linalg.inv(core), axis1=1, axis2=2)
    if flat2d:  # 2D: the dummy axis has no metric and no extent
        inv = np.column_stack([np.ones(len(a)), inv])
    lmin = lam[:, 0] * (1.0 - 1e-9)
    lmax = lam[:, -1] * (1.0 + 1e-9)
    invd = np.ascontiguousarray(inv * (1.0 + 1e-9))
    return np.ascontiguousarray(coef), lmin, lmax, invd


def _embed(grid, points, metrics):
    """3D layout: points (N, 3) (dummy coordinate 0.5), metrics (N, 3, 3)."""
    if grid.ndim == 3:
        return np.ascontiguousarray(points), np.ascontiguousarray(metrics)
    n = len(points)
    p3 = np.column_stack([np.full(n, 0.5), points])
    m3 = np.zeros((n, 3, 3))
    m3[:, 1:, 1:] = metrics
    return np.ascontiguousarray(p3), m3


def _copies(points3, lengths3, origin3, periodic3, margins):
    """Sites and their copies by whole periods within ``margins`` of the box.

    ``margins`` (N, 3): per site and axis. Returns ``(pos (M, 3), owner (M,)
    int64)``, the originals first. A copy is ``y + k * L`` computed as such
    (``tests/reference.py`` builds its images the same way, so both see the same
    floating-point positions).
    """
    n = len(points3)
    lengths3 = np.asarray(lengths3, dtype=np.float64)
    lo = np.asarray(origin3, dtype=np.float64)
    hi = lo + lengths3
    ranges = []
    for a in range(3):
        s = (
            math.ceil(float(margins[:, a].max()) / lengths3[a]) + 1
            if periodic3[a]
            else 0
        )
        ranges.append(range(-s, s + 1))
    pos, own = [points3], [np.arange(n, dtype=np.int64)]
    for sz in ranges[0]:
        for sy in ranges[1]:
            for sx in ranges[2]:
                if sz == 0 and sy == 0 and sx == 0:
                    continue
                shift = np.array([sz, sy, sx], dtype=np.float64) * lengths3
                p = points3 + shift
                keep = np.all((p >= lo - margins) & (p <= hi + margins), axis=1)
                if keep.any():
                    pos.append(p[keep])
                    own.append(np.flatnonzero(keep).astype(np.int64))
    return np.ascontiguousarray(np.concatenate(pos)), np.concatenate(own)


def _tile_boxes(shape3, spacing3, origin3, tile):
    """``(lo (T, 3), hi (T, 3))``: boxes of the voxel centres of each tile."""
    nt = [-(-s // t) for s, t in zip(shape3, tile, strict=True)]
    los, his = [], []
    for a in range(3):
        start = np.arange(nt[a]) * tile[a]
        stop = np.minimum(start + tile[a], shape3[a])
        los.append(origin3[a] + (start + 0.5) * spacing3[a])
        his.append(origin3[a] + (stop - 0.5) * spacing3[a])
    lo = np.stack([g.ravel() for g in np.meshgrid(*los, indexing="ij")], axis=1)
    hi = np.stack([g.ravel() for g in np.meshgrid(*his, indexing="ij")], axis=1)
    return np.ascontiguousarray(lo), np.ascontiguousarray(hi), tuple(nt)


@dataclass(frozen=True)
class _Candidates:
    """Site copies and exact per-tile candidate lists (CSR) of one evaluation."""

    sites: tuple  # (pos (M, 3), owner (M,), coef (N, 6), lmin, lmax, w (N,))
    cand_ptr: np.ndarray  # (T + 1,) int64
    cand_idx: np.ndarray  # copies listed by tile t: cand_idx[cand_ptr[t]:...]
    layout: tuple  # (shape3, tile, sub, n_tiles) as int64 arrays
    built: np.ndarray  # (N,) the weights the lists were built for
    slack: float  # the lists hold for weights w with spread(w - built) <= slack

    def covers(self, weights):
        """Whether the lists are exact for ``weights`` (gauge-blind spread test)."""
        d = weights - self.built
        return float(d.max() - d.min()) <= self.slack

    def at(self, weights):
        """Return the same lists with the sites' weights replaced (see covers)."""
        s = self.sites
        sites = (s[0], s[1], s[2], s[3], s[4], weights, s[6])
        return dataclasses.replace(self, sites=sites)


def _binned(sites, grid3):
    """Bucket the copies of ``sites`` by weight group and the tile grid ``grid3``.

    ``_N_GROUPS`` groups of equal site counts by weight: a group's scan reach
    follows its own largest weight.
    """
    pos, owner, w, invd = sites[0], sites[1], sites[5], sites[6]
    n_groups = max(1, min(_N_GROUPS, len(w) // 64))
    edges = np.quantile(w, np.linspace(0.0, 1.0, n_groups + 1)[1:-1])
    group = np.searchsorted(edges, w, side="right").astype(np.int64)[owner]
    sroot = np.ascontiguousarray(np.sqrt(invd[owner]))
    return _k._bin_copies(
        pos, np.ascontiguousarray(w[owner]), sroot, group, n_groups, grid3
    )


def _tiling(grid, invd):
    """Tile and sub-tile shapes (voxels, 3D order) shaped like a typical cell.

    A cell's extent along axis ``a`` is proportional to ``sqrt((A^-1)_aa)``
    (in voxels: divided by the spacing); the tiles keep the voxel count of
    ``TILE_3D`` / ``TILE_2D`` with sides in those proportions, rounded to powers
    of two (at least 2, at most 64), and sub-tiles halve them. Elongated cells
    then have about half as many candidates per tile as with cubes. Any shape
    gives exact lists.
    """
    shape3, spacing3 = grid.as_3d()[:2]
    base, base_sub = (TILE_2D, SUB_2D) if grid.ndim == 2 else (TILE_3D, SUB_3D)
    axes = [a for a in range(3) if base[a] > 1]
    ext = np.log2(np.median(np.sqrt(invd), axis=0) / np.asarray(spacing3))[axes]
    total = float(np.sum(np.log2(np.asarray(base)[axes])))
    k = np.rint(ext + (total - ext.sum()) / len(axes))
    tile, sub = list(base), list(base_sub)
    for a, e in zip(axes, k, strict=True):
        tile[a] = int(2 ** min(max(e, 1.0), 6.0))
        sub[a] = max(tile[a] // 2, 1)
    tile = tuple(min(t, s) for t, s in zip(tile, shape3, strict=True))
    sub = tuple(min(t, s) for t, s in zip(sub, tile, strict=True))
    return tile, sub


def _candidates(grid, points3, metric_arrays, weights, slack=0.0):
    """Exact candidate lists for ``weights`` and any weights within ``slack``.

    Copies (periodic axes): a copy of site ``i`` can be listed by a tile only if
    ``dist_a(y, T)^2 / (A_i^-1)_aa - w_i <= U_T + slack`` on every axis ``a`` (the
    axial lower bound of :mod:`rasterquant.assign._anisotropic`), so copies
    farther than ``sqrt(max_T U_T + slack + w_i) sqrt((A_i^-1)_aa)`` from the box
    along some axis are never needed; ``U_T`` comes from the originals (an upper
    bound of its value with the copies). The tiles' lists come from
    :func:`_k._candidate_lists`; they stay exact for every ``w + d`` with
    ``max(d) - min(d) <= slack`` ("Reusing candidate lists" there).
    """
    coef, lmin, lmax, invd = metric_arrays
    shape3, spacing3, origin3, periodic3 = grid.as_3d()
    tile, sub = _tiling(grid, invd)
    lo, hi, nt = _tile_boxes(shape3, spacing3, origin3, tile)
    grid3 = (
        np.array(origin3, np.float64),
        np.array(tile, np.float64) * np.array(spacing3),
        np.array(nt, np.int64),
    )
    n = len(points3)
    sites = (points3, np.arange(n, dtype=np.int64), coef, lmin, lmax, weights, invd)
    bins = _binned(sites, grid3)
    upper = _k._tile_upper(sites, bins, grid3, (lo, hi))
    if any(periodic3):
        lengths3 = np.array(shape3, np.float64) * np.array(spacing3)
        top = float(upper.max())
        reach = np.maximum(top + slack + weights, 0.0)
        margins = np.sqrt(reach)[:, None] * np.sqrt(invd)
        margins = margins * (1 + 1e-9) + 1e-9 * (1.0 + margins)
        pos, owner = _copies(points3, lengths3, origin3, periodic3, margins)
        sites = (pos, owner, coef, lmin, lmax, weights, invd)
        bins = _binned(sites, grid3)
        upper = np.minimum(upper, _k._tile_upper(sites, bins, grid3, (lo, hi)))
    cand_ptr, cand_idx, _ = _k._candidate_lists(
        sites, bins, grid3, (lo, hi), upper, float(slack)
    )
    layout = tuple(np.array(v, dtype=np.int64) for v in (shape3, tile, sub, nt))
    return _Candidates(sites, cand_ptr, cand_idx, layout, weights.copy(), slack)


# ----------------------------------------------------------------------------------
# one pass: labels, masses, Jacobian


def _list_slack(grid, metrics):
    """Slack of the reusable candidate lists: ``LIST_SLACK`` times ``r^2``.

    ``r`` is the metric radius of a ball of the mean cell volume
    (``omega_d r^d / sqrt(det A) = |box| / N``, with the geometric mean of
    ``det A``): weights are squared metric distances, so this scales with them.
    """
    n, d = len(metrics), grid.ndim
    logdet = np.linalg.slogdet(metrics)[1]
    ball = math.pi if d == 2 else 4.0 * math.pi / 3.0
    vol = grid.volume / max(n, 1) * math.exp(0.5 * float(np.mean(logdet)))
    return LIST_SLACK * (vol / ball) ** (2.0 / d)


class _Pass:
    """Evaluations of one (density, points, metrics) problem at given weights.

    Keeps the candidate lists of its last build, made with a slack (see
    :func:`_candidates`), and sweeps with them while they stay exact for the
    weights asked for: the line search's trial steps and the polish's sweeps
    move the weights by less than the slack. Results do not depend on it.
    """

    def __init__(self, density, points, metrics):
        self.density = density
        self.grid = density.grid
        self.n = len(points)
        self.points3, m3 = _embed(self.grid, points, metrics)
        self.metric_arrays = _coefficients(m3)
        _, spacing3, origin3, periodic3 = self.grid.as_3d()
        self.geom = (np.array(origin3, np.float64), np.array(spacing3, np.float64))
        self.periodic3 = np.array(periodic3, dtype=np.int64)
        values, umass = density.kernel_arrays()
        self.dens = (np.ascontiguousarray(values), float(umass))
        self.slack = _list_slack(self.grid, metrics)
        self._lists = None  # the candidates of the last build
        self.n_builds = 0

    def candidates(self, weights):
        """Candidate lists exact for ``weights``: the last build's, or new ones."""
        if self._lists is not None and self._lists.covers(weights):
            return self._lists.at(weights)
        self._lists = _candidates(
            self.grid, self.points3, self.metric_arrays, weights, self.slack
        )
        self.n_builds += 1
        return self._lists

    def evaluate(self, weights):
        """Return ``(copies (D, H, W) int64, candidates, moments (N, 4))``."""
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        cands = self.candidates(weights)
        copies = _k._sweep(
            cands.sites, self.geom, (cands.cand_ptr, cands.cand_idx), cands.layout
        )
        mom = _k._moments(copies, cands.sites, self.geom, self.dens, _config.N_CHUNKS)
        return copies, cands, mom.sum(axis=0)

    def labels(self, copies, cands):
        """Owner index of every voxel, int32, in the grid's shape."""
        lab = cands.sites[1][copies].astype(np.int32)
        return lab.reshape(self.grid.shape)

    def jacobian(self, copies, cands):
        """Sparse ``dm/dw`` (N, N) CSR: symmetric, zero row sums, off-diagonal <= 0.

        Returns ``(jac, status)``; status 1 if a face had equal site gradients.
        """
        rows, cols, vals, status = _k._faces(
            copies, cands.sites, self.geom, self.dens, self.periodic3, _config.N_CHUNKS
        )
        n = self.n
        w = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
        w = w + w.T
        deg = np.asarray(w.sum(axis=1)).ravel()
        return (sp.diags(deg) - w).tocsr(), int(status)


@dataclass(frozen=True)
class AnisotropicCells:
    """Labels and masses of an anisotropic power diagram on the raster.

    Attributes
    ----------
    labels : (H, W) or (D, H, W) ndarray of int32
        Owner of every voxel centre (lowest index on ties).
    masses : (N,) ndarray of float64
        Density mass of each cell (sums to 1).
    centroids : (N, d) ndarray of float64
        Mass centroid of each cell, physical units, wrapped into the box on
        periodic axes; NaN for an empty cell.
    """

    labels: np.ndarray
    masses: np.ndarray
    centroids: np.ndarray


def _validate(density_or_shape, points, metrics, weights, periodic):
    density = _density(density_or_shape, periodic)
    grid = density.grid
    pts = check_points(points, grid)
    a = check_metrics(metrics, len(pts), grid.ndim)
    w = check_weights(weights, len(pts))
    return density, pts, a, w


def _centroids(grid, pass_, cands, mom):
    """Mass centroids from the moments about the owning copies (see _moments)."""
    pos0 = pass_.points3
    with np.errstate(invalid="ignore", divide="ignore"):
        c3 = pos0 + mom[:, 1:] / mom[:, :1]
    c = c3 if grid.ndim == 3 else c3[:, 1:]
    ok = np.isfinite(c).all(axis=1)
    c[ok] = grid.wrap(c[ok]) if grid.any_periodic else c[ok]
    return c


def assign_anisotropic(
    density_or_shape, points, metrics, weights=None, *, periodic=None
) -> AnisotropicCells:
    """Anisotropic power cells of the voxel centres, with their masses.

    Parameters
    ----------
    density_or_shape : Density or (H, W)/(D, H, W) array_like or tuple of int
        A density, an array of voxel values (unit spacing), or a shape (uniform
        density, unit voxels).
    points : (N, d) array_like of float
        Sites, physical units, array axis order (z, y, x).
    metrics : (d, d) or (N, d, d) array_like of float
        Symmetric positive definite metric of every site (or one for all).
    weights : (N,) array_like of float, optional
        Power weights ``w`` (zeros by default).
    periodic : bool or sequence of bool, optional
        Periodic axes (for a shape or an array); with a Density, its grid's.

    Returns
    -------
    AnisotropicCells

    Raises
    ------
    ValueError
        For malformed points, weights or metrics (not SPD, wrong shape).

    Notes
    -----
    Voxel ``x`` goes to ``argmin_i (x - y_i)^T A_i (x - y_i) - w_i``, minimum
    image under ``A_i`` on periodic axes. Cost: one sweep of the raster over exact
    per-tile candidate lists (:mod:`rasterquant.assign._anisotropic`).

    Examples
    --------
    >>> cells = assign_anisotropic((4, 6), [[2.0, 1.0], [2.0, 5.0]], np.eye(2))
    >>> cells.labels.tolist()[0], cells.masses.tolist()
    ([0, 0, 0, 1, 1, 1], [0.5, 0.5])
    """
    density, pts, a, w = _validate(density_or_shape, points, metrics, weights, periodic)
    pass_ = _Pass(density, pts, a)
    copies, cands, mom = pass_.evaluate(w)
    return AnisotropicCells(
        labels=pass_.labels(copies, cands),
        masses=mom[:, 0].copy(),
        centroids=_centroids(density.grid, pass_, cands, mom),
    )


# ----------------------------------------------------------------------------------
# damped Newton

#: statuses of solve_anisotropic: those of solve_ot (CONVERGED, MAX_ITER,
#: RESOLUTION, STALLED, imported from .newton)


@dataclass(frozen=True)
class AnisotropicResult:
    """Result of :func:`solve_anisotropic`.

    Attributes
    ----------
    weights : (N,) ndarray of float64
        Weights of the best iterate (smallest max relative error), mean zero.
    labels : (H, W) or (D, H, W) ndarray of int32
        Its cells (owner of every voxel centre).
    masses : (N,) ndarray of float64
        Its achieved cell masses (voxel sums of the density).
    centroids : (N, d) ndarray of float64
        Mass centroids of its cells (wrapped into the box on periodic axes).
    max_error : float
        ``max_i |m_i - alpha_i| / alpha_i`` of ``masses``.
    converged : bool
        ``max_error <= tol``, computed from ``masses``.
    n_iter : int
        Newton iterations (accepted steps).
    status : str
        "converged", "max_iter", "stalled" (no damped step improves and the voxel
        polish did not meet ``tol``), or "resolution" (not converged and one voxel
        of a cell is more than ``tol / 2`` of its target: the raster cannot
        resolve ``tol``).
    tol : float
    voxel_floor : float
        ``max_i`` of one voxel mass of cell ``i`` over ``alpha_i`` (the relative
        error of one voxel; the error cannot be expected much below it).
    history : dict of list
        Per iteration: "max_mass_error", "step", "time".
    """

    weights: np.ndarray
    labels: np.ndarray
    masses: np.ndarray
    centroids: np.ndarray
    max_error: float
    converged: bool
    n_iter: int
    status: str
    tol: float
    voxel_floor: float
    history: dict = field(repr=False)


def _repair_empty(pass_, weights, copies, cands, mom):
    """Raise the weights of empty cells until each owns the voxel of its site.

    Returns ``(weights, copies, cands, mom)``; raises EmptyCellError if cells stay
    empty (two sites in one voxel, or zero density there).
    """
    grid = pass_.grid
    pts = pass_.points3 if grid.ndim == 3 else pass_.points3[:, 1:]
    coef = pass_.metric_arrays[0]
    w = weights.copy()
    for _ in range(_MAX_REPAIRS):
        empty = np.flatnonzero(mom[:, 0] <= 0.0)
        if empty.size == 0:
            return w, copies, cands, mom
        idx = np.floor(grid.to_index(pts[empty])).astype(np.int64)
        idx = np.minimum(np.maximum(idx, 0), np.array(grid.shape) - 1)
        flat = np.ravel_multi_index(idx.T, grid.shape)
        g = copies.ravel()[flat]
        own = cands.sites[1][g]
        centre = grid.to_physical(idx + 0.5)
        c3 = (
            centre
            if grid.ndim == 3
            else np.column_stack([np.full(len(idx), 0.5), centre])
        )
        d_own = c3 - cands.sites[0][g]
        d_me = c3 - pass_.points3[empty]
        f_own = _qform_rows(coef[own], d_own) - w[own]
        f_me = _qform_rows(coef[empty], d_me) - w[empty]
        w[empty] += f_me - f_own + 1e-6 * (np.abs(f_own) + 1.0)
        copies, cands, mom = pass_.evaluate(w)
    empty = np.flatnonzero(mom[:, 0] <= 0.0)
    raise EmptyCellError(
        f"{empty.size} cells stay empty after {_MAX_REPAIRS} repairs (first: "
        f"{empty[:5].tolist()}); expected sites in distinct voxels of positive density",
        weights=w,
        empty=empty,
    )


def _qform_rows(coef, d):
    """``d^T A d`` per row from coefficients (k, 6) and displacements (k, 3)."""
    return (
        coef[:, 0] * d[:, 0] ** 2
        + coef[:, 1] * d[:, 1] ** 2
        + coef[:, 2] * d[:, 2] ** 2
        + coef[:, 3] * d[:, 0] * d[:, 1]
        + coef[:, 4] * d[:, 0] * d[:, 2]
        + coef[:, 5] * d[:, 1] * d[:, 2]
    )


def _newton_direction(pass_, copies, cands, rhs, solver_state, method):
    """Solve ``J delta = rhs``; returns delta or None if the system is singular."""
    jac, status = pass_.jacobian(copies, cands)
    if status:
        logger.debug("anisotropic Newton: degenerate faces skipped")
    if not np.isfinite(jac.data).all() or jac.nnz == 0:
        return None
    with one_blas_thread():  # see rasterquant/_blas.py
        delta, solver = solve_newton_system(
            jac,
            rhs,
            method=method,
            ndim=pass_.grid.ndim,
            want_solver=True,
            precond=solver_state.get("solver"),
            precond_rtol=1e-3,
        )
    solver_state["solver"] = solver
    return delta if np.isfinite(delta).all() else None


def _run_newton(pass_, alpha, w, tol, max_iter, method, callback, bar, early):
    """Damped Newton of Kitagawa, Merigot and Thibert on the voxel masses.

    Returns ``(best, status, n_iter, hist)``. With ``early``, an accepted step
    of at most ``_HANDOVER_STEP``, or a damped one (``tau < 1``) that does not
    lower the best max error, ends it with status ``_HANDOVER``: the voxel masses
    no longer follow the linearisation, and the polish does better from there.
    """
    t0 = time.perf_counter()
    copies, cands, mom = pass_.evaluate(w)
    w, copies, cands, mom = _repair_empty(pass_, w, copies, cands, mom)
    m = mom[:, 0]
    eps = 0.5 * min(float(alpha.min()), float(m.min()))
    hist = {"max_mass_error": [], "step": [], "time": []}
    best = (float(np.max(np.abs(m - alpha) / alpha)), w, copies, cands, mom)
    status, n_iter, state, tau, short = MAX_ITER, 0, {}, 1.0, 0
    while True:
        err = float(np.max(np.abs(m - alpha) / alpha))
        stale = n_iter > 0 and (tau <= _HANDOVER_STEP or (tau < 1.0 and err >= best[0]))
        if err < best[0]:
            best = (err, w, copies, cands, mom)
        if err <= tol:
            status = CONVERGED
            break
        if n_iter >= max_iter:
            break
        if short >= _SHORT_STEPS:
            status = STALLED
            break
        if early and stale:
            status = _HANDOVER
            break
        delta = _newton_direction(pass_, copies, cands, alpha - m, state, method)
        if delta is None:
            status = STALLED
            break
        norm0 = float(np.linalg.norm(m - alpha))
        tau = min(1.0, 4.0 * tau)
        while tau >= _MIN_STEP:
            trial = w + tau * delta
            c2, k2, mom2 = pass_.evaluate(trial)
            m2 = mom2[:, 0]
            if m2.min() >= eps and np.linalg.norm(m2 - alpha) <= (1 - tau / 2) * norm0:
                break
            tau *= 0.5
        if tau < _MIN_STEP:
            status = STALLED
            break
        w, copies, cands, mom, m = trial, c2, k2, mom2, m2
        n_iter += 1
        err_new = float(np.max(np.abs(m - alpha) / alpha))
        short = short + 1 if tau <= 0.125 else 0
        hist["max_mass_error"].append(float(np.max(np.abs(m - alpha) / alpha)))
        hist["step"].append(tau)
        hist["time"].append(time.perf_counter() - t0)
        logger.debug("anisotropic Newton %d: step %g, error %.3g", n_iter, tau, err_new)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(err=f"{hist['max_mass_error'][-1]:.2g}")
        if callback is not None:
            callback(
                {
                    "iteration": n_iter,
                    "max_mass_error": hist["max_mass_error"][-1],
                    "step": tau,
                    "weights": w,
                }
            )
    return best, status, n_iter, hist


#: voxel polish: sweeps at most, and sweeps without a better map before it stops
_POLISH_MAX_SWEEPS = 40
_POLISH_PATIENCE = 6
#: smallest damping step: voxel masses are piecewise constant in the weights, and
#: shorter steps than this fraction of a Newton step rarely change any of them
_MIN_STEP = 1.0 / 64.0
#: Newton gives way to the polish after this many accepted steps in a row of at most
#: 1/8 (the voxel masses no longer follow the linearisation)
_SHORT_STEPS = 3
#: internal status of a Newton run that gave way early to the polish (after a
#: damped step that did not lower the best max error, or an accepted step of at
#: most _HANDOVER_STEP); reported as STALLED if it stays
_HANDOVER = "handover"
_HANDOVER_STEP = 0.25


def _independent_worst(n, own, other, err, inner):
    """Cells with ``err > inner``, worst first, no two sharing a voxel face.

    Only the pairs ``(a, b)`` with ``a`` off target are needed (the neighbours
    of the cells that can be chosen): the entries owned by such cells.
    """
    mine = err[own] > inner
    return independent_worst(np.unique(own[mine] * n + other[mine]), n, err, inner)


def independent_worst(keys, n, err, inner):
    """Return the cells with ``err > inner``, worst first, no two neighbours.

    ``keys`` holds the neighbour pairs ``(a, b)`` as sorted unique ``a * n + b``,
    both orders present. Greedy: a cell is taken unless a taken cell neighbours it
    (the voxel polishes of ``generate_microstructure`` and :func:`solve_anisotropic`
    move the voxels of such cells at once without one undoing another).
    """
    src, dst = keys // n, keys % n
    start = np.searchsorted(src, np.arange(n + 1))
    order = np.flatnonzero(err > inner)
    order = order[np.argsort(-err[order], kind="stable")]
    blocked = np.zeros(n, dtype=bool)
    chosen = []
    for i in order.tolist():
        if not blocked[i]:
            chosen.append(i)
            blocked[i] = True
            blocked[dst[start[i] : start[i + 1]]] = True
    return np.array(chosen, dtype=np.int64)


def _thresholds(key, vox, gap, mass, need, cells):
    """Weight change per cell in ``cells`` moving about ``need`` mass across ``gap``.

    Entries ``(key, vox, gap, mass)``: the cell ``key`` takes (or gives) voxel
    ``vox`` of mass ``mass`` once its weight moves by more than ``gap``. Returns
    the changes (>= 0) of ``cells``: just past the gap of the last voxel taken,
    with the voxels taken in gap order and their count the one whose mass is
    closest to ``need``.
    """
    out = np.zeros(len(cells))
    if len(key) == 0:  # e.g. the cells to grow are empty: no voxel borders them
        return out
    span = int(vox.max()) + 1
    if (int(key.max()) + 1) * span < 2**62:  # (key, vox) as one sort key
        kv = key * span + vox
        order = np.lexsort((gap, kv))
        kv = kv[order]
        key, gap, mass = key[order], gap[order], mass[order]
        first = np.ones(len(key), dtype=bool)
        first[1:] = kv[1:] != kv[:-1]
    else:
        order = np.lexsort((gap, vox, key))
        key, vox, gap, mass = key[order], vox[order], gap[order], mass[order]
        first = np.ones(len(key), dtype=bool)
        first[1:] = (key[1:] != key[:-1]) | (vox[1:] != vox[:-1])
    key, gap, mass = key[first], gap[first], mass[first]  # one entry per voxel
    order = np.lexsort((gap, key))
    key, gap, mass = key[order], np.maximum(gap[order], 0.0), mass[order]
    csum = np.cumsum(mass)
    s = np.searchsorted(key, cells)
    e = np.searchsorted(key, cells, side="right")
    base = np.where(s > 0, csum[np.maximum(s - 1, 0)], 0.0)
    target = base + need
    j = np.searchsorted(csum, target)
    for c, (lo, hi, b, tg, jj) in enumerate(zip(s, e, base, target, j, strict=True)):
        if hi <= lo:
            continue
        best_t, best_d = lo - 1, abs(tg - b)
        for t in (jj - 1, jj):
            if lo <= t < hi and abs(csum[t] - tg) < best_d:
                best_t, best_d = t, abs(csum[t] - tg)
        if best_t < lo:
            continue
        g = gap[best_t]
        step = 0.5 * (g + gap[best_t + 1]) if best_t + 1 < hi else g * (1 + 1e-9)
        out[c] = step + 1e-12 * (1.0 + abs(g))
    return out


def _polish_step(pass_, copies, cands, m, alpha, tol):
    """Weight changes putting the worst cells, pairwise not adjacent, on target.

    Each chosen cell gets the change of its own weight that moves the voxel mass
    it lacks or has in excess across its boundary, the other weights fixed: a
    voxel ``x`` of cell ``a`` next to cell ``i`` joins ``i`` when ``w_i`` rises by
    more than ``f_i(x) - f_a(x)``, and leaves ``a`` when ``w_a`` falls by more than
    the same gap to its nearest other neighbour.
    """
    vox, own, other, gap = _k._boundary_gaps(
        copies, cands.sites, pass_.geom, pass_.periodic3, _config.N_CHUNKS
    )
    n = pass_.n
    err = np.abs(m - alpha) / alpha
    delta = np.zeros(n)
    off = err > 0.5 * tol
    keep = np.flatnonzero(off[own] | off[other])  # the others never enter
    vox = vox[keep]
    own = own[keep]
    other = other[keep]
    gap = gap[keep]
    chosen = _independent_worst(n, own, other, err, 0.5 * tol)
    if chosen.size == 0:
        return delta
    values, umass = pass_.dens
    mass = np.full(len(vox), umass) if umass >= 0 else values.ravel()[vox]
    need = alpha - m
    grow = chosen[need[chosen] > 0]
    shrink = chosen[need[chosen] < 0]
    sel = np.isin(other, grow)
    delta[grow] = _thresholds(
        other[sel], vox[sel], gap[sel], mass[sel], need[grow], grow
    )
    sel = np.isin(own, shrink)
    delta[shrink] = -_thresholds(
        own[sel], vox[sel], gap[sel], mass[sel], -need[shrink], shrink
    )
    return delta


def _polish(pass_, alpha, best, tol):
    """Coordinate moves of single weights until the voxel masses meet ``tol``.

    Continues from ``best`` (``(err, w, copies, cands, mom)``); returns the best
    state seen and the number of sweeps. Each sweep costs one boundary pass and
    one evaluation.
    """
    err, w, copies, cands, mom = best
    since = 0
    for sweep in range(_POLISH_MAX_SWEEPS):
        if best[0] <= tol or since >= _POLISH_PATIENCE:
            return best, sweep
        delta = _polish_step(pass_, copies, cands, mom[:, 0], alpha, tol)
        if not delta.any():
            return best, sweep
        w = w + delta
        copies, cands, mom = pass_.evaluate(w)
        err = float(np.max(np.abs(mom[:, 0] - alpha) / alpha))
        logger.debug("anisotropic voxel polish %d: error %.3g", sweep, err)
        if err < best[0] and mom[:, 0].min() > 0:
            best, since = (err, w, copies, cands, mom), 0
        else:
            since += 1
    return best, _POLISH_MAX_SWEEPS


def _voxel_floor(pass_, labels, alpha):
    """Return the largest relative voxel mass ``max_i max_{x in C_i} m_x / a_i``."""
    values, umass = pass_.dens
    if umass >= 0.0:
        return float(umass / alpha.min())
    vmax = np.zeros(len(alpha))
    np.maximum.at(vmax, labels.ravel(), values.ravel())
    return float((vmax / alpha).max())


def solve_anisotropic(
    density_or_shape,
    points,
    metrics,
    masses=None,
    *,
    weights=None,
    tol: float = _config.DEFAULT_TOL,
    max_iter: int = _config.DEFAULT_MAX_ITER,
    periodic=None,
    linear_solver: str = "auto",
    callback=None,
    progress: bool = False,
) -> AnisotropicResult:
    """Weights whose anisotropic power cells have the prescribed masses.

    Parameters
    ----------
    density_or_shape : Density or (H, W)/(D, H, W) array_like or tuple of int
        A density, an array of voxel values (unit spacing) or a shape (uniform
        density on unit voxels).
    points : (N, d) array_like of float
        Sites, physical units, array axis order (z, y, x).
    metrics : (d, d) or (N, d, d) array_like of float
        Symmetric positive definite metric of each site (or one for all).
    masses : (N,) array_like of float, optional
        Target masses summing to 1 (uniform by default).
    weights : (N,) array_like of float, optional
        Starting weights (zeros by default); empty starting cells are repaired.
    tol : float
        Target ``max_i |m_i - alpha_i| / alpha_i``.
    max_iter : int
        Newton iterations; 0 goes straight to the voxel polish (for weights that
        are already close, e.g. from the exact cells of a common metric).
    periodic : bool or sequence of bool, optional
        Periodic axes (for a shape or an array); with a Density, its grid's.
    linear_solver : {"auto", "direct", "cg"}
        See :func:`rasterquant.ot._jacobian.solve_newton_system`.
    callback : callable, optional
        Called with a dict after every accepted step.
    progress : bool
        A tqdm bar over the Newton iterations on stderr.

    Returns
    -------
    AnisotropicResult
        The best iterate; ``converged`` is computed from its achieved masses.

    Raises
    ------
    ValueError
        For malformed inputs (metrics not SPD, wrong shapes, bad masses or tol).
    EmptyCellError
        If a starting cell cannot be given a voxel.

    Warns
    -----
    ResolutionWarning
        Stalled where one voxel of a cell is more than ``tol / 2`` of its target
        (status "resolution"): masses are voxel sums and cannot meet ``tol``.
    ConvergenceWarning
        Stopped at ``max_iter`` or stalled above the voxel floor.

    Notes
    -----
    ``m_i(w)`` is the density mass of ``C_i(w)``. Raising ``w_j`` by ``t`` moves
    the facet ``f_i = f_j`` (``f_i(x) = (x - y_i)^T A_i (x - y_i) - w_i``) into
    cell ``i`` by ``t / |grad f_i - grad f_j|`` along its normal, so
    ``dm_i/dw_j = -int_{C_i cap C_j} rho / |grad f_i - grad f_j| dsigma`` for
    ``j != i``, ``grad f_i(x) = 2 A_i (x - y_i)``, and ``dm_i/dw_i`` is minus the
    sum of the others: a symmetric graph Laplacian. On the raster the integral is a
    sum over the voxel faces between cells ``i`` and ``j`` of
    ``rho A_k |g_k| / |g|^2``, ``g = grad f_i - grad f_j`` at the face centre
    (``A_k |g_k| / |g|`` is the facet area per face normal to axis ``k``, DESIGN
    section 3). Damped Newton [1]_: solve ``J delta = alpha - m``, then halve
    ``tau`` from ``min(1, 4 tau_prev)`` until ``min m(w + tau delta) >= eps``
    (half the smallest initial or target mass) and
    ``|m - alpha|`` decreased by ``(1 - tau / 2)``. With centre quadrature the
    masses are piecewise constant in ``w``: a cell of ``V`` voxels cannot meet
    ``tol`` much below ``1 / V``. Newton gives way to a voxel polish (when one
    voxel is at most ``tol`` of every target) after an accepted step of at most
    1/4, or a damped step that does not lower the best max error; if the polish
    misses ``tol``, Newton continues from the best state until three accepted
    steps in a row of at most 1/8 (or ``max_iter``), and the polish runs again.
    Each polish sweep gives the worst cells (error above ``tol / 2``), pairwise
    not adjacent, the change of their own weight that moves the voxel mass they
    lack or have in excess across their boundary (the voxels' thresholds are the
    gaps ``f_i(x) - f_a(x)`` to the neighbouring cells); it stops at ``tol``,
    after 40 sweeps, or 6 sweeps without a better map. Cost per Newton
    iteration: one Jacobian pass, a sparse solve and one sweep per trial step; per
    polish sweep: one boundary pass and one sweep. The tiles' candidate lists are
    built with a slack and reused while the weights move less than it (the line
    search's trials and the polish sweeps mostly need no new lists).

    References
    ----------
    .. [1] J. Kitagawa, Q. Merigot, B. Thibert, "Convergence of a Newton algorithm
       for semi-discrete optimal transport", J. Eur. Math. Soc. 21 (2019).

    Examples
    --------
    >>> a = [[4.0, 0.0], [0.0, 1.0]]
    >>> res = solve_anisotropic((40, 40), [[10.0, 10.0], [30.0, 30.0]], a,
    ...                         [0.3, 0.7], tol=0.01)
    >>> res.converged, [round(float(m), 2) for m in res.masses]
    (True, [0.3, 0.7])
    """
    density, pts, a, w = _validate(density_or_shape, points, metrics, weights, periodic)
    alpha = check_masses(masses, len(pts))
    tol = check_tol(tol)
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    callback = check_callback(callback)
    if linear_solver not in ("auto", "direct", "cg"):
        raise ValueError(
            f"linear_solver must be 'auto', 'direct' or 'cg', got {linear_solver!r}"
        )
    if len(pts) > density.n_positive():
        raise ValueError(
            f"points has {len(pts)} rows but the density has {density.n_positive()} "
            "positive voxels; expected at most one site per positive voxel"
        )
    pass_ = _Pass(density, pts, a)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iter, desc="anisotropic newton", leave=False)
    try:
        best, run, floor = _newton_polish(
            pass_, alpha, w, (tol, max_iter, linear_solver), callback, bar
        )
    finally:
        if bar is not None:
            bar.close()
    result = _finish(pass_, alpha, best, run, (tol, floor))
    _warn(result)
    return result


def _newton_polish(pass_, alpha, w, opts, callback, bar):
    """Newton, giving way early to the voxel polish; Newton again if that fails.

    Returns ``(best, (status, n_iter, hist), voxel floor)``. The first Newton run
    hands over early (:func:`_run_newton`); if the polish then misses ``tol``,
    Newton continues from the best state to its own stall test (within the
    remaining ``max_iter``), and the polish runs again.
    """
    tol, max_iter, method = opts
    best, status, n_iter, hist = _run_newton(
        pass_, alpha, w, tol, max_iter, method, callback, bar, True
    )
    floor = _voxel_floor(pass_, pass_.labels(best[2], best[3]), alpha)
    for again in (False, True):
        if best[0] > tol and status in (STALLED, MAX_ITER, _HANDOVER) and floor <= tol:
            best, sweeps = _polish(pass_, alpha, best, tol)
            hist.setdefault("polish_sweeps", []).append(sweeps)
        if best[0] <= tol or status != _HANDOVER or again:
            break
        logger.debug("anisotropic Newton: polish missed tol, Newton continues")
        more, status, k, hist2 = _run_newton(
            pass_, alpha, best[1], tol, max_iter - n_iter, method, callback, bar, False
        )
        n_iter += k
        for key, values in hist2.items():
            hist[key] += values
        if more[0] < best[0]:
            best = more
    if status == _HANDOVER:
        status = STALLED
    return best, (status, n_iter, hist), floor


def _finish(pass_, alpha, best, run, limits):
    """Return the result of the best iterate (``limits = (tol, voxel floor)``)."""
    status, n_iter, hist = run
    tol, floor = limits
    density = pass_.density
    err, w, copies, cands, mom = best
    labels = pass_.labels(copies, cands)
    converged = err <= tol
    if converged:
        status = CONVERGED
    elif status in (STALLED, MAX_ITER) and floor > 0.5 * tol:
        status = RESOLUTION
    return AnisotropicResult(
        weights=w - w.mean(),
        labels=labels,
        masses=mom[:, 0].copy(),
        centroids=_centroids(density.grid, pass_, cands, mom),
        max_error=float(err),
        converged=bool(converged),
        n_iter=int(n_iter),
        status=status,
        tol=tol,
        voxel_floor=floor,
        history=hist,
    )


def _warn(result):
    if result.status == RESOLUTION:
        warnings.warn(
            f"solve_anisotropic stalled at max relative mass error "
            f"{result.max_error:.3g} > tol={result.tol:g}: one voxel is up to "
            f"{result.voxel_floor:.3g} of a cell's target, so voxel masses cannot meet "
            f"tol; refine the raster to about {2.0 / result.tol:.0f} voxels in the "
            "smallest cell, or loosen tol",
            ResolutionWarning,
            stacklevel=3,
        )
    elif result.status in (STALLED, MAX_ITER):
        what = "stalled" if result.status == STALLED else "hit max_iter"
        warnings.warn(
            f"solve_anisotropic {what} at max relative mass error "
            f"{result.max_error:.3g} > tol={result.tol:g}; returning the best iterate",
            ConvergenceWarning,
            stacklevel=3,
        )
