"""Semi-discrete optimal transport on a raster by damped Newton iterations."""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .. import _config
from .._blas import on_one_blas_thread, one_blas_thread
from .._validation import (
    check_callback,
    check_density,
    check_masses,
    check_memory,
    check_n_points,
    check_points,
    check_positive_int,
    check_tol,
    check_weights,
)
from ..assign.cells import Cells, polygon_buffer_bytes
from ..assign.quadrature import CrowdedPixelsError, make_quadrature
from ..errors import ConvergenceWarning, EmptyCellError, ResolutionWarning
from ._continuation import continuation as _continuation_paths
from ._jacobian import preconditioned_cg, solve_newton_system

__all__ = ["OTResult", "solve_ot"]

logger = logging.getLogger(__name__)

#: status codes of the core solver
CONVERGED, MAX_ITER, RESOLUTION, STALLED = (
    "converged",
    "max_iter",
    "resolution",
    "stalled",
)


@dataclass(frozen=True)
class OTResult:
    """Result of :func:`solve_ot`.

    Attributes
    ----------
    weights : (N,) ndarray
        Power weights, gauge fixed to mean zero.
    masses : (N,) ndarray
        Achieved cell masses.
    target : (N,) ndarray
        Target masses.
    cells : Cells
        The cells at ``weights`` (labels, masses, barycenters, energies), computed on
        first access.
    n_iter : int
        Newton iterations taken.
    converged : bool
        ``max_error <= tol``, computed from the achieved masses.
    max_error : float
        Achieved ``max_i |m_i - alpha_i| / alpha_i``.
    tol : float
    status : str
        "converged", "max_iter", "resolution" (the raster cannot resolve tol) or
        "stalled" (damping fell below its floor).
    n_repairs : int
        Empty-cell repairs applied to the starting weights.
    history : dict of list
        Per iteration: "max_mass_error", "step", "time".
    pixels_per_cell : float
        Positive pixels per cell of this problem.
    coarse_levels : int
        Coarser rasters solved first to build the start (multiscale).
    continuation : dict or None
        When the fast solve stalled and the continuation took over (see
        ``ot/_continuation.py``): its ``path`` ("width" or "mass"), ``stages``
        and ``rejected`` stage solves, and the ``fast_error`` it started from.
    """

    weights: np.ndarray
    masses: np.ndarray
    target: np.ndarray
    n_iter: int
    converged: bool
    max_error: float
    tol: float
    status: str
    n_repairs: int
    history: dict = field(repr=False)
    pixels_per_cell: float = 0.0
    coarse_levels: int = 0
    continuation: dict | None = None
    _quad: object = field(default=None, repr=False, compare=False)
    _labels3: object = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def cells(self) -> Cells:
        """The cells at ``weights``: labels, masses, barycenters, energies.

        Computed on first access (one moment pass over the raster).
        """
        return self._quad.cells(self.weights, self._labels3)

    @property
    def labels(self) -> np.ndarray:
        """The cell of every pixel's centre, int32, the raster's shape (no moments)."""
        if "cells" in self.__dict__ or self._labels3 is None:
            return self.cells.labels
        return self._labels3 if self._quad.grid.ndim == 3 else self._labels3[0]

    @property
    def energy(self) -> float:
        """Transport cost ``sum_i int_{Lag_i} |x - y_i|^2 d rho`` at these weights."""
        return self.cells.energy


@dataclass
class NewtonState:
    """What the damped Newton solver carries from one step, level or solve to the next.

    Lloyd keeps one across its iterations; the multiscale levels pass it along.

    Attributes
    ----------
    solver : solver or None
        Solver of the last Newton system (factorisation or AMG hierarchy): it
        preconditions the next systems (see ``solve_newton_system``).
    slack : float
        Room in the weights of new candidate lists: set from the first step of a
        warm solve, so that the next warm solve (after a Lloyd move) builds its
        lists once.
    damped : bool
        The last trial step was damped (its cells moved far): polygon passes look
        further for their neighbours.
    pixel_tree : tuple or None
        kd-tree of the positive pixel centres (empty-cell repair of many cells),
        built once.
    """

    solver: object = None
    slack: float = 0.0
    damped: bool = False
    pixel_tree: tuple | None = None

    def solve_nearby(self, jac, rhs):
        """Solve a system near the last Newton system: ``jac x = rhs``.

        Conjugate gradients preconditioned by ``solver`` to
        ``_config.PREDICTOR_CG_RTOL``, or ``solver`` alone if they fall short.
        """
        with one_blas_thread():
            x = preconditioned_cg(
                jac, rhs, self.solver, _config.PREDICTOR_CG_RTOL, _config.PCG_MAX_ITER
            )
            return self.solver(rhs) if x is None else x


@dataclass(frozen=True)
class Solution:
    """Result of the damped Newton core :func:`solve_cells` (no warnings issued).

    Attributes
    ----------
    weights : (N,) ndarray
        Gauge fixed to mean zero.
    labels3 : (D, H, W) ndarray of int32 or None
        Centre labels at ``weights`` (None after a pass without pixels).
    masses : (N,) ndarray
    max_error : float
    status : str
        "converged", "max_iter", "resolution" or "stalled".
    n_iter, n_repairs : int
    history : dict of list
    granularity : float or None
        Largest boundary pixel mass relative to the target, when a solve on whole
        pixels stalled.
    coarse_levels : int
    moments : tuple or None
        ``(masses, barycenters, energies)`` when asked for and computed by the last
        pass.
    """

    weights: np.ndarray
    labels3: np.ndarray | None
    masses: np.ndarray
    max_error: float
    status: str
    n_iter: int
    n_repairs: int
    history: dict = field(repr=False)
    granularity: float | None = None
    coarse_levels: int = 0
    moments: tuple | None = field(default=None, repr=False)
    continuation: dict | None = None


def _rel_error(m, alpha):
    return float(np.max(np.abs(m - alpha) / alpha))


def _positive_pixel_tree(quad):
    """kd-tree of the centres of positive-density pixels (for empty-cell repair)."""
    grid = quad.grid
    if quad.pixel_mass >= 0:
        centres = grid.pixel_centres()
    else:
        vals = quad.density.values
        idx = np.flatnonzero(vals.ravel() > 0)
        coords = np.unravel_index(idx, grid.shape)
        centres = np.stack(
            [
                grid.origin[a] + (coords[a] + 0.5) * grid.spacing[a]
                for a in range(grid.ndim)
            ],
            axis=1,
        )
    periods = None
    if grid.any_periodic:
        # cKDTree's boxsize needs the box at the origin; shift coordinates
        periods = np.where(grid.periodic, grid.lengths, 0.0)
        centres = centres - np.array(grid.origin)
    return cKDTree(centres, boxsize=periods), centres, periods


def _pixel_tree(quad, state):
    """Return the kd-tree of positive pixel centres (built once per state)."""
    if state.pixel_tree is None:
        state.pixel_tree = _positive_pixel_tree(quad)
    return state.pixel_tree


def _nearest_pixels(quad, y, k):
    """Return the flat indices of the ``k`` positive pixels with centres nearest ``y``.

    Searched in a window of pixels around ``y`` (wrapped on periodic axes), grown until
    it holds ``k`` positive pixels and the ball through the ``k``-th lies inside it, so
    the result is exact without a kd-tree over every pixel (which on 200^3 voxels took
    5 s to build for one empty-cell repair). Nearest first (ties by flat index); fewer
    than ``k`` if the raster has fewer positive pixels.
    """
    grid = quad.grid
    shape = np.array(grid.shape)
    h = np.array(grid.spacing, dtype=np.float64)
    origin = np.array(grid.origin, dtype=np.float64)
    positive = None if quad.pixel_mass >= 0 else quad.density.values > 0
    rel = (np.asarray(y, dtype=np.float64) - origin) / h  # in pixels
    # a ball holding about 2k pixels, in pixels per axis
    half = np.ceil((2.0 * k) ** (1.0 / grid.ndim) * h.max() / h).astype(np.int64)
    while True:
        axes = []
        for a in range(grid.ndim):
            lo = int(np.floor(rel[a])) - half[a]
            hi = int(np.floor(rel[a])) + half[a]
            idx = np.arange(lo, hi + 1)
            whole = 2 * half[a] + 1 >= shape[a]
            if grid.periodic[a]:
                idx = np.arange(shape[a]) if whole else idx
            else:
                idx = idx[(idx >= 0) & (idx < shape[a])]
            axes.append((idx, whole))
        mesh = np.meshgrid(*[i for i, _ in axes], indexing="ij")
        d2 = np.zeros(mesh[0].shape)
        for a in range(grid.ndim):
            off = (mesh[a] + 0.5 - rel[a]) * h[a]
            if grid.periodic[a]:
                off -= grid.lengths[a] * np.round(off / grid.lengths[a])
            d2 += off**2
        flat = np.ravel_multi_index(
            tuple(np.mod(m, s) for m, s in zip(mesh, shape, strict=True)), grid.shape
        ).ravel()
        d2 = d2.ravel()
        if positive is not None:
            keep = positive.ravel()[flat]
            flat, d2 = flat[keep], d2[keep]
        # exact when the k-th distance is within the window's inscribed ball (or the
        # window already covers every axis)
        covers = all(len(idx) == shape[a] for a, (idx, _) in enumerate(axes))
        inner = float(np.min(half * h)) - 0.5 * float(h.max())
        if len(flat) >= k or covers:
            order = np.lexsort((flat, d2))[:k]
            if covers or len(order) == 0 or np.sqrt(d2[order[-1]]) <= inner:
                return flat[order]
        half = 2 * half


def _raise_cells(quad, state, psi, labels3, cells, k, alpha=None, eager=True):
    """One round of raising the weights of ``cells`` (in place); returns how many rose.

    Each cell ``i`` takes the positive pixel near ``y_i`` (among its ``k`` nearest) that
    is cheapest to steal from a cell that keeps other pixels: ``psi_i`` is set just
    above ``|x_p - y_i|^2 - (|x_p - y_o|^2 - psi_o)``. With target masses ``alpha`` and
    ``eager``, it takes the cheapest nearby pixels holding about half its target. Cells
    of one round never take pixels from each other, nor the same pixel twice.
    """
    grid = quad.grid
    counts = np.bincount(labels3.ravel(), minlength=quad.n)
    flat_labels = labels3.reshape(-1)
    taken = set(int(e) for e in cells)
    stolen = set()
    h = np.array(grid.spacing, dtype=np.float64)
    h2 = float(h.min()) ** 2
    raised = 0
    near = None
    if len(cells) * _config.REPAIR_TREE_PIXELS >= grid.n_pixels:
        # many cells on a small raster: one kd-tree of the pixels answers them all
        # (a window search per cell costs ~0.3 ms; the tree ~0.6 us per pixel)
        tree, centres, _ = _pixel_tree(quad, state)
        origin = np.array(grid.origin)
        q = quad.points[cells] - origin if grid.any_periodic else quad.points[cells]
        _, near = tree.query(q, k=min(k, len(centres)))
        near = np.atleast_2d(near).reshape(len(cells), -1)
        near = np.ravel_multi_index(
            tuple(
                np.clip(
                    (
                        (centres[near, a] - (0.0 if grid.any_periodic else origin[a]))
                        / h[a]
                    ).astype(np.int64),
                    0,
                    grid.shape[a] - 1,
                )
                for a in range(grid.ndim)
            ),
            grid.shape,
        )
    for r, i in enumerate(cells):
        idx = _nearest_pixels(quad, quad.points[i], k) if near is None else near[r]
        x = grid.origin + (np.stack(np.unravel_index(idx, grid.shape), 1) + 0.5) * h
        owners = flat_labels[idx]
        di = grid.min_image(x - quad.points[i])
        do = grid.min_image(x - quad.points[owners])
        cost = (di**2).sum(1) - ((do**2).sum(1) - psi[owners])
        free = np.array(
            [
                (o not in taken) and (int(p) not in stolen)
                for o, p in zip(owners, idx, strict=True)
            ]
        )
        ok = (counts[owners] > 1) & free
        if not ok.any():
            continue  # try again next round, after the others moved
        best = int(np.argmin(np.where(ok, cost, np.inf)))
        taken.add(int(owners[best]))
        stolen.add(int(idx[best]))
        level = cost[best]
        if alpha is not None and eager:
            # the cheapest pixels around y_i up to half the target mass
            order = np.argsort(cost)
            pm = (
                np.full(len(order), quad.pixel_mass)
                if quad.pixel_mass >= 0
                else quad.density.values.ravel()[idx[order]]
            )
            reach = np.searchsorted(np.cumsum(pm), 0.5 * alpha[i])
            if reach < len(order):
                level = max(level, cost[order[reach]])
        psi[i] = max(psi[i], level + 1e-6 * h2 + abs(level) * 1e-9)
        raised += 1
    return raised


def _empty_cells_hint(quad, empty):
    """Say why cells likely stay empty (the end of the error message)."""
    v = quad.density.values
    on_zero = 0
    if v is not None:
        idx = np.floor(quad.grid.to_index(quad.points)).astype(np.int64)
        idx = np.clip(idx, 0, np.array(v.shape) - 1)
        zero = v[tuple(idx.T)] == 0
        on_zero = int(zero[empty].sum())
    if on_zero:
        return (
            f"{on_zero} of them have their point on a zero-density pixel "
            f"({int(zero.sum())} of the {quad.n} points are); expected points on "
            "the density: draw them from it (sample_points method 'stratified' or "
            "'density'; --init stratified), or give the empty regions some density "
            "(--floor)"
        )
    return "the points may be too many for the positive pixels"


def repair_empty_cells(
    quad, state, weights, labels3, masses, *, max_rounds=None, alpha=None
):
    """Raise the weights of empty cells until every cell has mass.

    Rounds of :func:`_raise_cells`: with target masses ``alpha`` each empty cell first
    takes the cheapest nearby pixels holding about half its target, so that Newton
    starts from a cell of fair size rather than a single pixel (whose tiny Jacobian
    row forces many damped steps). Repeats until no cell is empty.

    Returns
    -------
    weights, labels3, masses, n_rounds
    """
    if max_rounds is None:
        max_rounds = _config.MAX_REPAIR_ROUNDS
    if labels3 is None:
        labels3, masses = quad.labels_masses(weights, slack=state.slack)
    psi = weights.copy()
    rounds = 0
    k = 16 if alpha is None else 64
    seen = {}
    fewest = (np.inf, 0)  # fewest empty cells so far, and the round
    while True:
        empty = np.flatnonzero(masses <= 0)
        if empty.size == 0:
            return psi, labels3, masses, rounds
        if empty.size < fewest[0]:
            fewest = (empty.size, rounds)
        stuck = rounds - fewest[1] >= _config.REPAIR_PATIENCE
        if rounds >= max_rounds or stuck:
            raise EmptyCellError(
                f"{empty.size} cells are still empty after {rounds} repair rounds "
                f"of the starting weights{' (no progress)' if stuck else ''}; "
                + _empty_cells_hint(quad, empty),
                weights=psi,
                empty=empty,
            )
        key = tuple(empty.tolist())
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 3:
            # the same cells keep emptying: look further for pixels to take
            k = 4 * k
            if seen[key] > 12:
                i = int(empty[0])
                raise EmptyCellError(
                    f"the cell of point {i} at {quad.points[i].tolist()} stays "
                    "empty: no weights found that give it a pixel of positive density "
                    "without emptying a neighbour (points closer than a pixel, or more "
                    "points than this raster can separate); move or remove it",
                    weights=psi,
                    empty=empty,
                )
        rounds += 1
        _raise_cells(quad, state, psi, labels3, empty, k, alpha, eager=seen[key] == 1)
        labels3, masses = quad.labels_masses(psi, labels3, slack=state.slack)


def coarsen_density(density):
    """Return the density summed over 2x2 or 2x2x2 blocks (twice as coarse), or None.

    Only axes of even length are coarsened, so the box (and the period of periodic
    axes) is unchanged.
    """
    from ..density import Density
    from ..grid import Grid

    grid = density.grid
    factors = [2 if (s % 2 == 0 and s >= 32) else 1 for s in grid.shape]
    if max(factors) == 1:
        return None
    shape = tuple(s // f for s, f in zip(grid.shape, factors, strict=True))
    spacing = tuple(h * f for h, f in zip(grid.spacing, factors, strict=True))
    coarse_grid = Grid(
        shape, spacing=spacing, origin=grid.origin, periodic=grid.periodic
    )
    if density.is_uniform:
        return Density(coarse_grid, None, _uniform=True)
    v = density.values
    blocks = []
    for s, f in zip(shape, factors, strict=True):
        blocks += [s, f]
    v = v.reshape(blocks).sum(axis=tuple(range(1, 2 * len(shape), 2)))
    return Density(coarse_grid, np.ascontiguousarray(v), _uniform=False)


def _floored(density):
    """Raise the zero pixels of ``density`` to ``ZERO_DENSITY_FLOOR`` of its max."""
    from ..density import Density

    v = density.values
    floor = _config.ZERO_DENSITY_FLOOR * float(v.max())
    return Density.from_array(np.maximum(v, floor), grid=density.grid)


def _multiscale_start(
    quad, state, alpha, tol, linear_solver, min_pixels_per_cell=None, floored=False
):
    """Weights solved on coarser rasters, used as the start on this one (or None).

    Weights are in physical units, so a solution on a coarser raster of the same box is
    a close start: the fine solve then needs a few Newton steps instead of many damped
    ones. For a quadrature with ``exact_start`` (centre pixels) the chain ends with the
    exact (split-pixel) solution on the raster itself, which the centre Newton then
    polishes to whole pixels. Returns ``(weights, levels)``; the levels' last solver
    and the cells' adjacency carry over to ``state`` and ``quad``.
    """
    density = quad.density
    if not quad.coarsens:
        return None  # exact cells without pixels: coarse rasters would not help
    if min_pixels_per_cell is None:
        # coarse levels with cells a few pixels across cost more per pixel (nearly
        # every pixel is split) than they save: stop at ~8 pixels per cell
        min_pixels_per_cell = 2.0 if quad.grid.ndim == 2 else 8.0
    chain = []
    d = density
    while True:
        c = coarsen_density(d)
        # the coarsest level runs the long damped phase; below ~256^2 / 32^3 pixels a
        # pass costs mostly fixed overhead, so coarser levels stop paying off
        if c is None or c.grid.n_pixels < (2**16 if c.grid.ndim == 2 else 2**15):
            break
        if c.n_positive() < min_pixels_per_cell * quad.n:
            break
        chain.append(c)
        d = c
    if floored and quad.has_zeros:
        # zero pixels split the cells into groups that Newton cannot balance, and
        # the damped steps crawl where they must reach across zero density: the
        # start levels see zero pixels at a small floor (connected support), ending
        # with this raster itself at that floor; the solve on the density itself
        # then starts with its cells already reaching across
        chain = [_floored(c) for c in chain]
        chain.insert(0, _floored(density))
    if quad.exact_start:
        # polish start: the exact solution on this raster itself
        chain.insert(0, density)
    if not chain:
        return None
    psi = np.zeros(quad.n)
    graph = quad.adjacency
    used = 0
    for level, c in enumerate(reversed(chain)):
        try:
            alone = c.grid.ndim == 3 and _centre_only(
                c, quad.n, level == len(chain) - 1
            )
            if c.grid.ndim == 3 and (level == 0 or alone):
                # 3D: the long damped phase runs on cheap centre passes first (a 3D
                # fractional pass with cells a few voxels wide is ~100x dearer); the
                # fractional Newton then starts close to the solution. Levels with
                # cells only a few voxels wide get the centre solve alone: nearly
                # every voxel of theirs is split among several cells
                psi = solve_cells(
                    quad.centre_on(c),
                    alpha,
                    psi,
                    max(tol, 1e-1),
                    50,
                    linear_solver=linear_solver,
                    globalise=False,
                ).weights
                if alone:
                    continue
            r = quad.exact_on(c, coarse=c.grid.shape != density.grid.shape)
            sub = NewtonState(solver=state.solver)
            # the cells' adjacency on the coarser raster: candidates of polygon passes
            r.adjacency = graph
            out = solve_cells(
                r,
                alpha,
                psi,
                max(tol, 1e-1),
                50,
                state=sub,
                linear_solver=linear_solver,
                globalise=False,
            )
        except (EmptyCellError, CrowdedPixelsError):
            # a level too coarse for these points (clustered sites share its
            # pixels, or crowd many cells into some): the next finer level starts
            # where this one did
            if level == len(chain) - 1:
                return None
            continue
        used += 1
        psi = out.weights
        # the coarse system's factorisation (or AMG hierarchy) preconditions the
        # next level's
        state.solver = sub.solver
        graph = r.adjacency
    quad.adjacency = graph
    # the first fine step corrects what the coarser raster could not see (a
    # fraction of the error there): lists with room for it are built only once
    room = _config.FINE_START_SLACK * quad.grid.volume / quad.n
    state.slack = max(state.slack, room)
    return psi, used


def _centre_only(level, n, last):
    """Tell whether a 3D start level gets the centre solve alone (no split voxels).

    Below ``_config.SPLIT_START_VOXELS`` voxels a cell, a fractional pass costs
    several microseconds a voxel (most voxels meet three or more cells), and the
    next finer level corrects the start anyway; the last level of the chain is
    always solved exactly.
    """
    return not last and level.n_positive() < _config.SPLIT_START_VOXELS * n


def _groups(jac0):
    """Return the groups of cells that faces of positive density link, or None.

    ``(n_groups, group of each cell)`` from the exact Jacobian ``jac0``; None when
    the cells form one group (``jac0`` is then connected).
    """
    a = jac0.tocsr(copy=True)
    a.eliminate_zeros()
    n_comp, comp = connected_components(a, directed=False)
    return None if n_comp == 1 else (n_comp, comp)


def _cross_links(links, comp):
    """Keep the weak links of ``links`` (a Laplacian) that join different groups.

    Within a group, the exact Jacobian is connected and needs no regulariser; a floor
    link there would carry flux that no mass follows (Newton's direction then moves
    too little, and the solve crawls).
    """
    c = links.tocoo()
    keep = (comp[c.row] != comp[c.col]) & (c.row != c.col)
    off = sp.coo_matrix((c.data[keep], (c.row[keep], c.col[keep])), shape=c.shape)
    off = off.tocsr()
    return off - sp.diags(np.asarray(off.sum(axis=1)).ravel())


def _component_projection(groups, alpha, m, tol):
    """Projection that removes the total mass error of separated cell groups, or None.

    Zero density can split the cells into groups with no face of positive density
    between them (``groups`` from :func:`_groups`; the exact Jacobian is then block
    diagonal). Newton cannot move mass between groups: the floor links turn a group's
    total mass error into a huge common shift of its weights, and the damped steps
    collapse. When every group's total is within ``tol / 2`` of its target, Newton
    removes only the rest of the error: ``r -> r - alpha * (sum_K r / sum_K alpha)``
    on each group ``K``. Each cell then ends off by at most its group's share.
    Returns None when some group's total is off by more (the floor links must then
    shift the groups).
    """
    n_comp, comp = groups
    sa = np.bincount(comp, alpha, minlength=n_comp)
    b = np.bincount(comp, alpha - m, minlength=n_comp) / sa
    if np.max(np.abs(b)) > 0.5 * tol:
        return None

    def proj(r):
        return r - alpha * (np.bincount(comp, r, minlength=n_comp) / sa)[comp]

    return proj


@on_one_blas_thread  # see rasterquant/_blas.py
def solve_cells(
    quad,
    alpha,
    psi,
    tol,
    max_iter,
    *,
    state=None,
    callback=None,
    linear_solver="auto",
    multiscale=False,
    want_moments=False,
    globalise=True,
) -> Solution:
    """Damped Newton core on a quadrature; returns a :class:`Solution` (no warnings).

    The internal entry point of :func:`solve_ot` and :func:`~rasterquant.lloyd`.
    ``state`` (a :class:`NewtonState`, updated in place) carries the last solver and
    the candidate-list slack from one solve to the next. With ``multiscale`` (and
    zero starting weights) the start comes from solves on coarser rasters (see
    :func:`_multiscale_start`). On a density with zero pixels those levels first see
    the zero pixels at a floor; if the solve from that start misses ``tol``, it is
    run again from the plain start, and the better one is kept. With ``globalise``,
    a solve that stalls is taken over by the continuation paths of
    ``ot/_continuation.py`` (:func:`_globalised`), when the quadrature's masses are
    continuous in the weights (not with centre pixels).
    """
    if state is None:
        state = NewtonState()
    args = (quad, state, alpha, psi, tol, max_iter, callback, linear_solver)
    floored = (
        multiscale
        and not np.any(psi)
        and quad.has_zeros
        and _config.ZERO_DENSITY_FLOOR > 0
    )
    out = _solve_attempt(*args, multiscale, want_moments, floored)
    if floored and out.status != CONVERGED:
        alt = _solve_attempt(*args, multiscale, want_moments, False)
        if alt.max_error < out.max_error:
            out = alt
    # (not when the passes were only approximate -- more cells met a pixel than the
    # split-pixel quadrature resolves, which it warned about --: no path reaches a
    # tolerance below the quadrature's own error, the 3D helix of issue 15 spent
    # 470 s in the paths to end where the stalled solve was)
    # Nor with centre pixels: their masses move in whole pixels, so a stall there is
    # the raster's resolution, which no continuation changes (Lloyd with centre
    # quadrature spent 130 Newton steps a solve in the paths, 7 s -> 45 s for 20
    # iterations in benchmarks/bench_fractional.py)
    approximate = getattr(quad.raster, "truncated", False)
    if globalise and quad.continuous and out.status == STALLED and not approximate:
        out = _globalised(quad, state, alpha, out, tol, max_iter, linear_solver)
    return out


def _globalised(quad, state, alpha, stalled, tol, max_iter, linear_solver):
    """Solve by continuation from the best weights of a stalled solve.

    Every stage is a damped Newton solve (``max_iter`` bounds each); stages on a
    blurred density run on the same quadrature family over that density. Returns
    the continuation's solution on the problem itself when it converged, else the
    better of it and the stalled one (never a success that was not reached).
    """
    n_iter = [stalled.n_iter]

    def solve(density, target, psi, stage_tol, stage_iter):
        own = density is None
        q = quad if own else make_quadrature(density, quad.points, quad.spec)
        st = state if own else NewtonState(solver=state.solver)
        out = _solve_attempt(
            q, st, target, psi, stage_tol, stage_iter, None, linear_solver,
            False, False, False,
        )  # fmt: skip
        n_iter[0] += out.n_iter
        return out

    logger.debug("newton stalled at %.3g: continuation", stalled.max_error)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, info = _continuation_paths(
            solve, quad.density, alpha, stalled.weights, stalled.masses, tol, max_iter
        )
    seen = set()
    for w in caught:  # the stages repeat the same warnings: each once
        if (w.category, str(w.message)) not in seen:
            seen.add((w.category, str(w.message)))
            warnings.warn(w.message, w.category, stacklevel=2)
    info["fast_error"] = stalled.max_error
    if out.status != CONVERGED:
        # the last stage may have had other targets or another density: finish on
        # the problem itself, and keep the better of that and the stalled solve
        fin = solve(None, alpha, out.weights, tol, max_iter)
        out = fin if fin.max_error < stalled.max_error else stalled
    return dataclasses.replace(out, n_iter=n_iter[0], continuation=info)


def _start(quad, state, alpha, psi, want_moments):
    """Take the first pass and repair empty cells.

    Returns ``(psi, pass or None, labels3, m, n_repairs)``: the pass (its moments and
    Jacobian) only if no repair was needed.
    """
    # continuous families' passes also give the exact Jacobian (and the moments if
    # asked): an accepted full step then needs no separate Jacobian pass
    first = quad.evaluate(
        psi,
        moments=want_moments,
        jacobian=quad.continuous,
        slack=state.slack,
        damped=state.damped,
    )
    labels3, m = first.labels, first.masses
    n_repairs = 0
    if (m <= 0).any() and np.any(psi != 0):
        # warm weights that leave cells empty (points moved): first give each empty
        # cell a fair share of its neighbourhood, which keeps the other weights
        try:
            psi, labels3, m, n_repairs = repair_empty_cells(
                quad,
                state,
                psi,
                labels3,
                m,
                alpha=alpha,
                max_rounds=min(20, _config.MAX_REPAIR_ROUNDS),
            )
        except EmptyCellError:
            labels3, m = quad.labels_masses(psi, labels3, slack=state.slack)
    # continuation: warm weights that still leave cells empty shrink towards zero
    scale = 1.0
    while (m <= 0).any() and np.any(psi != 0):
        n_repairs += 1
        scale = 0.0 if scale < 0.1 else scale * 0.5
        trial = psi * scale
        labels3, m = quad.labels_masses(trial, labels3, slack=state.slack)
        if scale == 0.0 or not (m <= 0).any():
            psi = trial
            break
    if (m <= 0).any():
        psi, labels3, m, rounds = repair_empty_cells(
            quad, state, psi, labels3, m, alpha=alpha
        )
        n_repairs += rounds
    return psi, (None if n_repairs else first), labels3, m, n_repairs


def _direction(
    quad, state, alpha, psi, labels3, m, jac, err, tol, linear_solver, guess
):
    """Newton direction at ``psi``: ``(delta, projection or None, rhs)``.

    ``jac`` is the exact Jacobian at ``psi``; weak links through zero density are
    added here. ``state.solver`` is updated.
    """
    # cells are separated into groups only by zero density
    comp = _groups(jac) if quad.has_zeros else None
    proj = None if comp is None else _component_projection(comp, alpha, m, tol)
    rhs = alpha - m if proj is None else proj(alpha - m)
    if quad.has_zeros:
        # weak links through zero density regularise the system. Between
        # separated groups they are needed at full strength. Within a group they
        # only damp near-singular directions (the damped phase), and they carry
        # flux that no mass follows (Newton's direction then moves too little):
        # they fade with the error, as the regulariser of Levenberg-Marquardt
        # methods that keeps the local convergence quadratic
        links = quad.floor_links(labels3, psi)
        fade = min(1.0, err)
        if comp is None:
            jac = jac + fade * links
        else:
            cross = _cross_links(links, comp[1])
            jac = jac + cross + fade * (links - cross)
    # inexact Newton: the direction to a relative residual (forcing term) of a
    # tenth of the error, whose share of the next error (about forcing * err) is
    # then below the quadratic term: the convergence stays quadratic, and a
    # first step far from the tolerance is not solved to it; above an error of
    # 1 (damped steps) DAMPED_FORCING. A few CG steps preconditioned by the last
    # factorisation or AMG hierarchy, from the last direction scaled down, when
    # they reach it.
    delta, state.solver = solve_newton_system(
        jac,
        rhs,
        method=linear_solver,
        ndim=quad.grid.ndim,
        want_solver=True,
        precond=state.solver,
        precond_rtol=(_config.DAMPED_FORCING if err > 1.0 else min(1e-2, 0.1 * err)),
        x0=guess,
    )
    return delta, proj, rhs, jac


def _line_search(quad, state, alpha, psi, delta, step, want_moments):
    """Damped step ``psi + tau delta``: ``(tau, trial pass, risky)``; tau 0 on a stall.

    ``step`` holds the step's context: ``labels3``, ``m``, ``jac`` (regularised),
    ``res``, ``reach``, ``eps0``, ``last_tau``, ``risky`` and ``proj``.
    """
    labels3, m, jac, eps0 = step["labels3"], step["m"], step["jac"], step["eps0"]
    res, reach, proj, risky = step["res"], step["reach"], step["proj"], step["risky"]
    last_tau = step["last_tau"]
    # in the damped phase, start the halvings from a few times the last accepted
    # step (each trial costs a sweep); the full step is tried again once taken
    tau = min(1.0, _config.STEP_GROWTH * last_tau)
    # trust region (geometric cells): no weight moves by more than a few squared
    # cell sizes in one step (a huge trial step gives cells that span the whole
    # box, whose neighbour lists are all the other cells)
    cap = quad.max_weight_step()
    while tau * reach > cap and tau > _config.MIN_STEP:
        tau *= 0.5
    # the step limits follow cells on windows of the pixel labels (or the boxes of
    # a polygon pass)
    limit = quad.step_limits(psi, labels3, jac)
    if limit is not None:
        # the cells that fell below the floor on earlier trials usually limit this
        # step too (not after a full step: cells no longer empty then), and so do
        # the cells whose facets the step moves in furthest for their size: their
        # limits, found on windows, save a rejected pass
        crushed = quad.crushed_cells(jac, m, delta, tau)
        watch = np.union1d(risky, crushed) if last_tau < 1.0 else crushed
        if watch.size:
            lim = limit(delta, tau, watch, eps0, m[watch])
            if lim is not None and lim < tau:
                tau = max(0.9 * lim, tau / 16)
    new_labels = None if labels3 is None else np.empty_like(labels3)
    while True:
        cand = psi + tau * delta
        # damped steps move the cells far: polygon passes look further
        state.damped = tau < 1.0
        # every trial pass also builds the Jacobian at its weights (about 10 % more
        # per pass): an accepted step then needs no separate Jacobian pass; with the
        # floor, a pass may prove a cell below it, from upper bounds
        trial = quad.evaluate(
            cand,
            moments=want_moments,
            jacobian=quad.continuous,
            floor=eps0,
            labels=new_labels,
            slack=state.slack,
            damped=state.damped,
        )
        new_labels, mn = trial.labels, trial.masses
        rn = alpha - mn if proj is None else proj(alpha - mn)
        if mn.min() >= eps0 and np.linalg.norm(rn) <= (1 - tau / 2) * res:
            return tau, trial, risky
        # cells below the floor: the next trial stops short of the step at
        # which the first of them reaches it (followed cell by cell on small
        # windows, 2D), instead of halving; the full pass still decides
        low = np.flatnonzero(mn < eps0)
        if low.size <= max(64, quad.n // 10):
            risky = np.union1d(risky, low)
        lim = None
        if limit is not None and 0 < low.size <= max(64, quad.n // 10):
            lim = limit(delta, tau, low, eps0, m[low], mn[low])
        if lim is None:
            tau *= 0.5
        else:
            tau = min(max(0.9 * lim, tau / 16), 0.9 * tau)
        if tau < min_step(quad):
            return 0.0, trial, risky


def min_step(quad):
    """Smallest damping step before a stall is declared.

    ``_config.MIN_STEP`` where the masses are continuous in the weights. With centre
    pixels (whole-pixel masses) ``_config.MIN_STEP_PIXELS``: a shorter step moves
    too few pixels to reduce the error, and at the raster's resolution floor each
    halving below it was a wasted pass (Lloyd with centre quadrature in
    benchmarks/bench_fractional.py: half its Newton steps were such halvings).
    """
    return _config.MIN_STEP if quad.continuous else _config.MIN_STEP_PIXELS


def _solve_attempt(
    quad,
    state,
    alpha,
    psi,
    tol,
    max_iter,
    callback,
    linear_solver,
    multiscale,
    want_moments,
    floored,
):
    """One damped Newton solve (see :func:`solve_cells`)."""
    t0 = time.perf_counter()
    levels = 0
    if multiscale and not np.any(psi):
        ms = _multiscale_start(quad, state, alpha, tol, linear_solver, floored=floored)
        if ms is not None:
            psi, levels = ms
    want_moments = want_moments and quad.continuous  # else a separate pass
    psi, cur, labels3, m, n_repairs = _start(quad, state, alpha, psi, want_moments)
    mom = None if cur is None else cur.moments
    eps0 = 0.5 * min(float(alpha.min()), float(m.min()))
    risky = np.zeros(0, np.int64)  # cells that fell below the floor on a trial
    guess = None  # first guess of the next Newton direction
    last_tau = 1.0
    history = {"max_mass_error": [], "step": [], "time": []}
    err = _rel_error(m, alpha)
    best = (err, psi, None if labels3 is None else labels3.copy(), m, mom)
    status = MAX_ITER
    n_iter = 0

    def record(e, tau):
        history["max_mass_error"].append(e)
        history["step"].append(tau)
        history["time"].append(time.perf_counter() - t0)

    record(err, 0.0)
    while True:
        if err <= tol:
            status = CONVERGED
            break
        if n_iter >= max_iter:
            status = MAX_ITER
            break
        if cur is None or not cur.has_jacobian:
            jac = quad.jacobian(labels3, psi)
        else:
            jac = cur.jacobian
        delta, proj, rhs, jac = _direction(
            quad, state, alpha, psi, labels3, m, jac, err, tol, linear_solver, guess
        )
        if not np.isfinite(delta).all():
            status = STALLED  # the linear solve failed: keep the best iterate
            record(err, 0.0)
            n_iter += 1
            break
        # one set of candidate lists serves every trial step psi + tau delta, tau <= 1;
        # new lists get twice the reach, so that the next (shorter) steps reuse them
        reach = float(np.max(np.abs(delta))) * (1 + 1e-12)
        quad.prepare_steps(psi, reach, 2.0 * reach)
        step = {
            "labels3": labels3,
            "m": m,
            "jac": jac,
            "res": float(np.linalg.norm(rhs)),
            "reach": reach,
            "eps0": eps0,
            "last_tau": last_tau,
            "risky": risky,
            "proj": proj,
        }
        tau, trial, risky = _line_search(
            quad, state, alpha, psi, delta, step, want_moments
        )
        n_iter += 1
        if n_iter == 1:
            # a warm solve that starts with a full step: the next warm solve (after a
            # Lloyd move) builds its first lists with room for a step like this one
            state.slack = 2.0 * reach if tau == 1.0 else 0.0
        if tau == 0.0:
            status = STALLED
            record(err, 0.0)
            break
        last_tau = tau
        # after a damped step tau the residual is about (1 - tau) times this one:
        # so is the next direction, nearly
        guess = (1.0 - tau) * delta if tau < 1.0 else None
        cur = trial
        psi, m, mom, labels3 = trial.weights, trial.masses, trial.moments, trial.labels
        err = _rel_error(m, alpha)
        record(err, tau)
        logger.debug("newton %d: max rel error %.3e, step %g", n_iter, err, tau)
        if err < best[0]:
            best = (err, psi, None if labels3 is None else labels3.copy(), m, mom)
        if callback is not None:
            callback(
                {
                    "iteration": n_iter,
                    "max_mass_error": err,
                    "step": tau,
                    "weights": psi,
                }
            )
    err, psi, labels3, m, mom = best
    granularity = None
    g = quad.granularity(labels3, alpha) if status == STALLED else None
    if g is not None:
        granularity = g
        # whole rows of pixels can flip at once on symmetric layouts: compare with the
        # mass of a boundary row as well as with a single boundary pixel
        d = quad.grid.ndim
        cell_pixels = quad.density.n_positive() * float(alpha.min())
        row = granularity * max(cell_pixels, 1.0) ** ((d - 1) / d)
        if err <= 4.0 * granularity or err <= row:
            status = RESOLUTION
    return Solution(
        weights=psi - psi.mean(),
        labels3=labels3,
        masses=m,
        max_error=err,
        status=status,
        n_iter=n_iter,
        n_repairs=n_repairs,
        history=history,
        granularity=granularity,
        coarse_levels=levels,
        moments=mom,
    )


def pixels_per_cell(density, n):
    """Positive pixels per cell."""
    return density.n_positive() / n


def resolution_message(tol, err, granularity, ppc, ndim=2):
    """One-line explanation of a raster that cannot resolve ``tol``.

    ``ppc`` is the number of positive pixels of the smallest target cell.
    """
    need = 2.0 / tol
    factor = max((need / max(ppc, 1e-300)) ** (1.0 / ndim), 1.1)
    return (
        f"tol={tol:g} is finer than this raster resolves with centre quadrature: "
        f"achieved max relative mass error {err:.3g}; a boundary pixel weighs up to "
        f"{granularity:.3g} of a cell's target mass. It needs about {need:.0f} pixels "
        f"in the smallest cell (this problem has {ppc:.0f}): use "
        f"quadrature='fractional' (exact sub-pixel masses), refine the raster about "
        f"{factor:.1f}x per axis, use fewer points, or loosen tol"
    )


def solve_ot(
    density,
    points,
    masses=None,
    *,
    weights=None,
    tol: float = _config.DEFAULT_TOL,
    max_iter: int = _config.DEFAULT_MAX_ITER,
    callback=None,
    normalize: bool = False,
    linear_solver: str = "auto",
    quadrature: str = _config.DEFAULT_QUADRATURE,
    multiscale: bool | None = None,
) -> OTResult:
    """Semi-discrete optimal transport from a raster density to weighted points.

    Finds power weights ``psi`` such that every power cell has its target mass.

    Parameters
    ----------
    density : Density or array_like
        The raster density (arrays: unit-spacing grid).
    points : (N, d) array_like of float
        Distinct sites inside the grid.
    masses : (N,) array_like of float, optional
        Target masses ``alpha`` (> 0, summing to 1); uniform ``1/N`` by default.
    weights : (N,) array_like of float, optional
        Starting weights (warm start); zero by default.
    tol : float
        Maximum relative mass error ``max_i |m_i - alpha_i| / alpha_i``.
    max_iter : int
        Maximum Newton iterations.
    callback : callable, optional
        Called with a dict after each iteration.
    normalize : bool
        Rescale ``masses`` to sum 1 instead of rejecting them.
    linear_solver : {"auto", "direct", "cg"}
        Solver of the Newton systems: ``"direct"`` a SuperLU factorisation,
        ``"cg"`` conjugate gradients preconditioned by algebraic multigrid (pyamg);
        ``"auto"`` factorises up to ``_config.DIRECT_SOLVE_MAX_N`` points.
    quadrature : {"fractional", "center"}
        ``"fractional"`` (default): pixels on cell boundaries are split exactly, the
        masses are continuous in the weights and Newton converges quadratically to any
        ``tol``. ``"center"``: a pixel belongs wholly to the cell of its centre (masses
        move in whole pixels, so ``tol`` needs about ``2/tol`` pixels per cell).
    multiscale : bool, optional
        Start from weights solved on coarser rasters (2x binning, fractional
        quadrature) of the same box. Default: when no ``weights`` are given.

    Returns
    -------
    OTResult
        ``converged`` is computed from the achieved masses.

    Warns
    -----
    ResolutionWarning
        The raster cannot resolve ``tol`` (centre quadrature moves whole pixels).
    ConvergenceWarning
        ``max_iter`` reached or the damping stalled; the best iterate is returned.

    Raises
    ------
    EmptyCellError
        If the starting weights cannot be repaired to give every cell mass.

    Notes
    -----
    Damped Newton of Kitagawa, Mérigot and Thibert [1]_: solve ``J delta = alpha - m``,
    then take the largest ``tau`` in {1, 1/2, ...} with
    ``min m(psi + tau delta) >= eps0`` and
    ``|m(psi + tau delta) - alpha| <= (1 - tau/2) |m(psi) - alpha|``; in the damped
    phase the halvings start from four times the last accepted step rather than from
    1 (each trial costs a sweep). In 2D, a trial that leaves cells below ``eps0``
    is followed by one just short of the step at which the first of them reaches
    it: their masses are followed along the step on small windows (the limits of
    sdot's solver), instead of halving. Each iteration costs one sweep (which also
    gives the next Jacobian), one sparse solve (a few conjugate-gradient steps
    preconditioned by the last factorisation or AMG hierarchy, or a new one), and
    a sweep per rejected trial.

    References
    ----------
    .. [1] J. Kitagawa, Q. Mérigot, B. Thibert, "Convergence of a Newton algorithm for
       semi-discrete optimal transport", J. Eur. Math. Soc. 21 (2019).

    Examples
    --------
    >>> import numpy as np
    >>> res = solve_ot(np.ones((32, 32)), [[8.0, 8.0], [8.0, 24.0], [24.0, 16.0]],
    ...                masses=[0.25, 0.25, 0.5])
    >>> res.converged
    True
    """
    density = check_density(density)
    pts = check_points(points, density.grid)
    n = len(pts)
    check_n_points(n, density)
    alpha = check_masses(masses, n, normalize=normalize)
    psi = check_weights(weights, n)
    tol = check_tol(tol)
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    callback = check_callback(callback)
    check_memory(
        density.grid.n_pixels,
        n,
        uniform=density.is_uniform,
        n_label_arrays=3,
        extra_bytes=polygon_buffer_bytes(density, n, quadrature),
        what="solve_ot",
    )
    quad = make_quadrature(density, pts, quadrature)
    if multiscale is None:
        multiscale = weights is None
    out = solve_cells(
        quad,
        alpha,
        psi,
        tol,
        max_iter,
        callback=callback,
        linear_solver=linear_solver,
        multiscale=bool(multiscale),
    )
    result = _make_result(quad, alpha, tol, out, density)
    _warn_status(result, out, stacklevel=3)
    return result


def _make_result(quad, alpha, tol, out, density):
    masses = out.masses
    err = _rel_error(masses, alpha)
    return OTResult(
        weights=out.weights,
        masses=masses,
        target=alpha,
        n_iter=out.n_iter,
        converged=bool(err <= tol),
        max_error=err,
        tol=tol,
        status=out.status,
        n_repairs=out.n_repairs,
        history=out.history,
        pixels_per_cell=pixels_per_cell(density, len(alpha)),
        coarse_levels=out.coarse_levels,
        continuation=out.continuation,
        _quad=quad,
        _labels3=out.labels3,
    )


def _warn_status(result, out, stacklevel=2):
    if result.status == RESOLUTION:
        warnings.warn(
            resolution_message(
                result.tol,
                result.max_error,
                out.granularity,
                result.pixels_per_cell
                * len(result.target)
                * float(result.target.min()),
                len(result.weights) and result._quad.grid.ndim,
            ),
            ResolutionWarning,
            stacklevel=stacklevel,
        )
    elif result.status == STALLED:
        cont = result.continuation
        quad = result._quad
        floor = _config.MIN_STEP if quad is None else min_step(quad)
        how = (
            f"damping step below {floor:g}"
            if cont is None
            else f"damping step below {floor:g}, then its {cont['path']} "
            f"continuation failed after {cont['stages'] + cont['rejected']} stages"
        )
        warnings.warn(
            f"solve_ot stalled ({how}) at max relative mass error "
            f"{result.max_error:.3g} > tol={result.tol:g}; returning the best iterate",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
    elif result.status == MAX_ITER:
        warnings.warn(
            f"solve_ot reached max_iter={result.n_iter} at max relative mass error "
            f"{result.max_error:.3g} > tol={result.tol:g}; returning the best iterate",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
