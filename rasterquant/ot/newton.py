"""Semi-discrete optimal transport on a raster by damped Newton iterations."""

from __future__ import annotations

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
from ..assign.cells import Cells, _Raster, polygon_buffer_bytes
from ..errors import ConvergenceWarning, EmptyCellError, ResolutionWarning
from ._jacobian import solve_newton_system
from ._limits import step_limit

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
    _raster: object = field(default=None, repr=False, compare=False)
    _labels3: object = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def cells(self) -> Cells:
        """The cells at ``weights``: labels, masses, barycenters, energies.

        Computed on first access (one moment pass over the raster).
        """
        return self._raster.cells(self.weights, self._labels3)

    @property
    def labels(self) -> np.ndarray:
        """The cell of every pixel's centre, int32, the raster's shape (no moments)."""
        if "cells" in self.__dict__ or self._labels3 is None:
            return self.cells.labels
        return self._labels3 if self._raster.grid.ndim == 3 else self._labels3[0]

    @property
    def energy(self) -> float:
        """Transport cost ``sum_i int_{Lag_i} |x - y_i|^2 d rho`` at these weights."""
        return self.cells.energy


def _rel_error(m, alpha):
    return float(np.max(np.abs(m - alpha) / alpha))


def _positive_pixel_tree(raster):
    """kd-tree of the centres of positive-density pixels (for empty-cell repair)."""
    grid = raster.grid
    if raster.umass >= 0:
        centres = grid.pixel_centres()
    else:
        vals = raster.density.values
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


def _pixel_tree(raster):
    """Return the raster's kd-tree of positive pixel centres (built once per raster)."""
    cached = getattr(raster, "_pixel_tree", None)
    if cached is None:
        cached = _positive_pixel_tree(raster)
        raster._pixel_tree = cached
    return cached


def _raise_cells(raster, psi, labels3, cells, k, alpha=None, eager=True):
    """One round of raising the weights of ``cells`` (in place); returns how many rose.

    Each cell ``i`` takes the positive pixel near ``y_i`` (among its ``k`` nearest) that
    is cheapest to steal from a cell that keeps other pixels: ``psi_i`` is set just
    above ``|x_p - y_i|^2 - (|x_p - y_o|^2 - psi_o)``. With target masses ``alpha`` and
    ``eager``, it takes the cheapest nearby pixels holding about half its target. Cells
    of one round never take pixels from each other, nor the same pixel twice.
    """
    grid = raster.grid
    tree, centres, _ = _pixel_tree(raster)
    k = min(k, len(centres))
    counts = np.bincount(labels3.ravel(), minlength=raster.n)
    flat_labels = labels3.reshape(-1)
    origin = np.array(grid.origin)
    q = raster.points - origin if grid.any_periodic else raster.points
    _, nn = tree.query(q[cells], k=k)
    nn = np.atleast_2d(nn).reshape(len(cells), -1)
    taken = set(int(e) for e in cells)
    stolen = set()
    h2 = float(np.min(grid.spacing)) ** 2
    raised = 0
    for r, i in enumerate(cells):
        cand = nn[r]
        x = centres[cand] + (origin if grid.any_periodic else 0.0)
        idx = np.ravel_multi_index(
            tuple(
                np.clip(
                    ((x[:, a] - grid.origin[a]) / grid.spacing[a]).astype(np.int64),
                    0,
                    grid.shape[a] - 1,
                )
                for a in range(grid.ndim)
            ),
            grid.shape,
        )
        owners = flat_labels[idx]
        di = grid.min_image(x - raster.points[i])
        do = grid.min_image(x - raster.points[owners])
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
                np.full(len(order), raster.umass)
                if raster.umass >= 0
                else raster.density.values.ravel()[idx[order]]
            )
            reach = np.searchsorted(np.cumsum(pm), 0.5 * alpha[i])
            if reach < len(order):
                level = max(level, cost[order[reach]])
        psi[i] = max(psi[i], level + 1e-6 * h2 + abs(level) * 1e-9)
        raised += 1
    return raised


def _empty_cells_hint(raster, empty):
    """Say why cells likely stay empty (the end of the error message)."""
    v = raster.density.values
    on_zero = 0
    if v is not None:
        idx = np.floor(raster.grid.to_index(raster.points)).astype(np.int64)
        idx = np.clip(idx, 0, np.array(v.shape) - 1)
        zero = v[tuple(idx.T)] == 0
        on_zero = int(zero[empty].sum())
    if on_zero:
        return (
            f"{on_zero} of them have their point on a zero-density pixel "
            f"({int(zero.sum())} of the {raster.n} points are); expected points on "
            "the density: draw them from it (sample_points method 'stratified' or "
            "'density'; --init stratified), or give the empty regions some density "
            "(--floor)"
        )
    return "the points may be too many for the positive pixels"


def repair_empty_cells(
    raster, weights, labels3, masses, *, max_rounds=None, alpha=None
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
        labels3, masses = raster.labels_masses(weights)
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
                + _empty_cells_hint(raster, empty),
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
                    f"the cell of point {i} at {raster.points[i].tolist()} stays "
                    "empty: no weights found that give it a pixel of positive density "
                    "without emptying a neighbour (points closer than a pixel, or more "
                    "points than this raster can separate); move or remove it",
                    weights=psi,
                    empty=empty,
                )
        rounds += 1
        _raise_cells(raster, psi, labels3, empty, k, alpha, eager=seen[key] == 1)
        labels3, masses = raster.labels_masses(psi, labels3)


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
    raster, alpha, tol, linear_solver, min_pixels_per_cell=None, floored=False
):
    """Weights solved on coarser rasters, used as the start on this one (or None).

    Weights are in physical units, so a solution on a coarser raster of the same box is
    a close start: the fine solve then needs a few Newton steps instead of many damped
    ones. With centre quadrature the chain ends with the fractional solution on the
    raster itself, which the centre Newton then polishes to whole pixels. Returns
    ``(weights, levels)``.
    """
    density = raster.density
    if raster.geometric:
        return None  # exact cells without pixels: coarse rasters would not help
    if min_pixels_per_cell is None:
        # coarse levels with cells a few pixels across cost more per pixel (nearly
        # every pixel is split) than they save: stop at ~8 pixels per cell
        min_pixels_per_cell = 2.0 if raster.grid.ndim == 2 else 8.0
    chain = []
    d = density
    while True:
        c = coarsen_density(d)
        # the coarsest level runs the long damped phase; below ~256^2 / 32^3 pixels a
        # pass costs mostly fixed overhead, so coarser levels stop paying off
        if c is None or c.grid.n_pixels < (2**16 if c.grid.ndim == 2 else 2**15):
            break
        if c.n_positive() < min_pixels_per_cell * raster.n:
            break
        chain.append(c)
        d = c
    if floored and raster.has_zeros:
        # zero pixels split the cells into groups that Newton cannot balance, and
        # the damped steps crawl where they must reach across zero density: the
        # start levels see zero pixels at a small floor (connected support), ending
        # with this raster itself at that floor; the solve on the density itself
        # then starts with its cells already reaching across
        chain = [_floored(c) for c in chain]
        chain.insert(0, _floored(density))
    if raster.quadrature == "center":
        # polish start: the exact (fractional) solution on this raster itself
        chain.insert(0, density)
    if not chain:
        return None
    psi = np.zeros(raster.n)
    graph = raster.graph
    from ..assign.cells import _Raster

    for level, c in enumerate(reversed(chain)):
        try:
            if level == 0 and c.grid.ndim == 3:
                # 3D: the long damped phase runs on cheap centre passes first (a 3D
                # fractional pass with cells a few voxels wide is ~100x dearer); the
                # fractional Newton then starts close to the solution
                rc = _Raster(c, raster.points, "center")
                psi = _solve(
                    rc,
                    alpha,
                    psi,
                    max(tol, 1e-1),
                    50,
                    None,
                    linear_solver,
                    multiscale=False,
                )["weights"]
            r = _Raster(c, raster.points, "fractional")
            r.last_solver = raster.last_solver
            # the cells' adjacency on the coarser raster: candidates of polygon passes
            r.graph = graph
            out = _solve(
                r, alpha, psi, max(tol, 1e-1), 50, None, linear_solver, multiscale=False
            )
        except EmptyCellError:
            return None
        psi = out["weights"]
        # the coarse system's factorisation (or AMG hierarchy) preconditions the
        # next level's
        raster.last_solver = r.last_solver
        graph = r.graph
    raster.graph = graph
    # the first fine step corrects what the coarser raster could not see (a
    # fraction of the error there): lists with room for it are built only once
    room = _config.FINE_START_SLACK * raster.grid.volume / raster.n
    raster.slack_hint = max(raster.slack_hint, room)
    return psi, len(chain)


def _limit_windows(raster, psi, cache):
    """Labels or cell boxes at the start of a step, for the step limits.

    ``cache`` is ``[labels3, boxes]`` of this step. After a polygon pass (no labels)
    the boxes it computed, or else the centre labels at ``psi`` (computed once).
    """
    if cache[0] is None and cache[1] is None and not raster.geometric:
        cache[1] = raster.cell_boxes(psi)
        if cache[1] is None:
            cache[0] = raster.centre_labels(psi)
    return cache


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


def _solve(
    raster,
    alpha,
    psi,
    tol,
    max_iter,
    callback=None,
    linear_solver="auto",
    multiscale=False,
    want_moments=False,
):
    """Damped Newton core; returns a dict of results (no warnings issued here).

    With ``multiscale`` (and zero starting weights) the start comes from solves on
    coarser rasters (see :func:`_multiscale_start`). On a density with zero pixels
    those levels first see the zero pixels at a floor; if the solve from that start
    misses ``tol``, it is run again from the plain start, and the better one is kept.
    """
    args = (raster, alpha, psi, tol, max_iter, callback, linear_solver, multiscale)
    floored = (
        multiscale
        and not np.any(psi)
        and raster.has_zeros
        and _config.ZERO_DENSITY_FLOOR > 0
    )
    out = _solve_attempt(*args, want_moments, floored)
    if floored and out["status"] != CONVERGED:
        alt = _solve_attempt(*args, want_moments, False)
        if alt["max_error"] < out["max_error"]:
            out = alt
    return out


def _solve_attempt(
    raster,
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
    """One damped Newton solve (see :func:`_solve`)."""
    t0 = time.perf_counter()
    levels = 0
    if multiscale and not np.any(psi):
        ms = _multiscale_start(raster, alpha, tol, linear_solver, floored=floored)
        if ms is not None:
            psi, levels = ms
    # fractional passes also give the exact Jacobian (and the moments if asked):
    # an accepted full step then needs no separate Jacobian pass
    frac = raster.quadrature == "fractional"
    want_moments = want_moments and frac  # centre moments are a separate pass
    labels3, m, mom, jac0 = raster.evaluate_deferred(psi, None, want_moments, frac)
    n_repairs = 0
    if (m <= 0).any() and np.any(psi != 0):
        # warm weights that leave cells empty (points moved): first give each empty
        # cell a fair share of its neighbourhood, which keeps the other weights
        try:
            psi, labels3, m, n_repairs = repair_empty_cells(
                raster,
                psi,
                labels3,
                m,
                alpha=alpha,
                max_rounds=min(20, _config.MAX_REPAIR_ROUNDS),
            )
        except EmptyCellError:
            labels3, m = raster.labels_masses(psi, labels3)
    # continuation: warm weights that still leave cells empty shrink towards zero
    scale = 1.0
    while (m <= 0).any() and np.any(psi != 0):
        n_repairs += 1
        scale = 0.0 if scale < 0.1 else scale * 0.5
        trial = psi * scale
        labels3, m = raster.labels_masses(trial, labels3)
        if scale == 0.0 or not (m <= 0).any():
            psi = trial
            break
    if (m <= 0).any():
        psi, labels3, m, rounds = repair_empty_cells(
            raster, psi, labels3, m, alpha=alpha
        )
        n_repairs += rounds
    if n_repairs:
        mom, jac0 = None, None
    eps0 = 0.5 * min(float(alpha.min()), float(m.min()))
    risky = np.zeros(0, np.int64)  # cells that fell below the floor on a trial
    guess = None  # first guess of the next Newton direction
    last_tau = 1.0
    history = {"max_mass_error": [], "step": [], "time": []}
    err = _rel_error(m, alpha)
    best = (err, psi, None if labels3 is None else labels3.copy(), m, mom)
    status = MAX_ITER
    n_iter = 0
    history["max_mass_error"].append(err)
    history["step"].append(0.0)
    history["time"].append(time.perf_counter() - t0)
    while True:
        if err <= tol:
            status = CONVERGED
            break
        if n_iter >= max_iter:
            status = MAX_ITER
            break
        jac = raster.jacobian(labels3, 0.0, psi) if jac0 is None else jac0()
        # cells are separated into groups only by zero density
        comp = _groups(jac) if raster.has_zeros else None
        proj = None if comp is None else _component_projection(comp, alpha, m, tol)
        rhs = alpha - m if proj is None else proj(alpha - m)
        if raster.has_zeros:
            # weak links through zero density regularise the system. Between
            # separated groups they are needed at full strength. Within a group they
            # only damp near-singular directions (the damped phase), and they carry
            # flux that no mass follows (Newton's direction then moves too little):
            # they fade with the error, as the regulariser of Levenberg-Marquardt
            # methods that keeps the local convergence quadratic
            links = raster.floor_links(labels3, psi)
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
        delta, raster.last_solver = solve_newton_system(
            jac,
            rhs,
            method=linear_solver,
            ndim=raster.grid.ndim,
            want_solver=True,
            precond=raster.last_solver,
            precond_rtol=(
                _config.DAMPED_FORCING if err > 1.0 else min(1e-2, 0.1 * err)
            ),
            x0=guess,
        )
        if not np.isfinite(delta).all():
            status = STALLED  # the linear solve failed: keep the best iterate
            history["max_mass_error"].append(err)
            history["step"].append(0.0)
            history["time"].append(time.perf_counter() - t0)
            n_iter += 1
            break
        res = float(np.linalg.norm(rhs))
        # one set of candidate lists serves every trial step psi + tau delta, tau <= 1;
        # new lists get twice the reach, so that the next (shorter) steps reuse them
        reach = float(np.max(np.abs(delta))) * (1 + 1e-12)
        if (
            not raster.geometric
            and not raster.polygon_ready()
            and not raster.covers(psi, reach)
        ):
            # (polygon passes need no lists: a pass that falls back builds its own)
            raster.plan(psi, 2.0 * reach)
        # in the damped phase, start the halvings from a few times the last accepted
        # step (each trial costs a sweep); the full step is tried again once taken
        tau = min(1.0, _config.STEP_GROWTH * last_tau)
        if raster.geometric:
            # trust region: no weight moves by more than a few squared cell sizes in
            # one step (a huge trial step gives cells that span the whole box, whose
            # neighbour lists are all the other cells)
            cap = _config.GEOMETRIC_MAX_STEP * (raster.grid.volume / raster.n) ** (
                2.0 / raster.grid.ndim
            )
            while tau * reach > cap and tau > _config.MIN_STEP:
                tau *= 0.5
        use_limits = _config.STEP_LIMITS and frac
        # the step limits follow cells on windows of the pixel labels; a polygon pass
        # gives none, but the pixels each cell meets
        windows = [labels3, None]
        if use_limits and risky.size and last_tau < 1.0:
            # the cells that fell below the floor on earlier trials usually limit
            # this step too: their limit, found on windows, saves a rejected pass
            # (not after a full step: cells no longer empty then)
            lab, boxes = _limit_windows(raster, psi, windows)
            lim = step_limit(
                raster, psi, delta, tau, risky, lab, jac, eps0, m[risky], boxes=boxes
            )
            if lim is not None and lim < tau:
                tau = max(0.9 * lim, tau / 16)
        new_labels = None if labels3 is None else np.empty_like(labels3)
        # every trial pass also builds the Jacobian at its weights (about 10 % more
        # per pass): an accepted step then needs no separate Jacobian pass
        want_jac = frac
        while True:
            cand = psi + tau * delta
            # damped steps move the cells far: their candidates, the 3-rings
            raster.poly_depth = 3 if tau < 1.0 else 2
            # (with the floor: a pass may prove a cell below it, from upper bounds)
            new_labels, mn, mom_n, jac_n = raster.evaluate_deferred(
                cand, new_labels, want_moments, want_jac, floor=eps0
            )
            rn = alpha - mn if proj is None else proj(alpha - mn)
            if mn.min() >= eps0 and np.linalg.norm(rn) <= (1 - tau / 2) * res:
                break
            # cells below the floor: the next trial stops short of the step at
            # which the first of them reaches it (followed cell by cell on small
            # windows, 2D), instead of halving; the full pass still decides
            low = np.flatnonzero(mn < eps0)
            if low.size <= max(64, raster.n // 10):
                risky = np.union1d(risky, low)
            lim = None
            if use_limits and 0 < low.size <= max(64, raster.n // 10):
                lab, boxes = _limit_windows(raster, psi, windows)
                lim = step_limit(
                    raster,
                    psi,
                    delta,
                    tau,
                    low,
                    lab,
                    jac,
                    eps0,
                    m[low],
                    mn[low],
                    boxes=boxes,
                )
            if lim is None:
                tau *= 0.5
            else:
                tau = min(max(0.9 * lim, tau / 16), 0.9 * tau)
            if tau < _config.MIN_STEP:
                tau = 0.0
                break
        n_iter += 1
        if n_iter == 1:
            # a warm solve that starts with a full step: the next warm solve (after a
            # Lloyd move) builds its first lists with room for a step like this one
            raster.slack_hint = 2.0 * reach if tau == 1.0 else 0.0
        if tau == 0.0:
            status = STALLED
            history["max_mass_error"].append(err)
            history["step"].append(0.0)
            history["time"].append(time.perf_counter() - t0)
            break
        last_tau = tau
        # after a damped step tau the residual is about (1 - tau) times this one:
        # so is the next direction, nearly
        guess = (1.0 - tau) * delta if tau < 1.0 else None
        psi, m, mom, jac0 = cand, mn, mom_n, jac_n
        labels3, new_labels = new_labels, labels3
        err = _rel_error(m, alpha)
        history["max_mass_error"].append(err)
        history["step"].append(tau)
        history["time"].append(time.perf_counter() - t0)
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
    if status == STALLED and raster.quadrature == "center":
        bpm = raster.boundary_pixel_mass(labels3)
        granularity = float(np.max(bpm / alpha))
        # whole rows of pixels can flip at once on symmetric layouts: compare with the
        # mass of a boundary row as well as with a single boundary pixel
        d = raster.grid.ndim
        cell_pixels = raster.density.n_positive() * float(alpha.min())
        row = granularity * max(cell_pixels, 1.0) ** ((d - 1) / d)
        if err <= 4.0 * granularity or err <= row:
            status = RESOLUTION
    psi = psi - psi.mean()
    return {
        "weights": psi,
        "labels3": labels3,
        "masses": m,
        "max_error": err,
        "status": status,
        "n_iter": n_iter,
        "n_repairs": n_repairs,
        "history": history,
        "granularity": granularity,
        "coarse_levels": levels,
        "moments": mom,
    }


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
        extra_bytes=polygon_buffer_bytes(density, n),
        what="solve_ot",
    )
    raster = _Raster(density, pts, quadrature)
    if multiscale is None:
        multiscale = weights is None
    out = _solve(
        raster,
        alpha,
        psi,
        tol,
        max_iter,
        callback,
        linear_solver,
        multiscale=bool(multiscale),
    )
    result = _make_result(raster, alpha, tol, out, density)
    _warn_status(result, out, stacklevel=3)
    return result


def _make_result(raster, alpha, tol, out, density):
    masses = out["masses"]
    err = _rel_error(masses, alpha)
    return OTResult(
        weights=out["weights"],
        masses=masses,
        target=alpha,
        n_iter=out["n_iter"],
        converged=bool(err <= tol),
        max_error=err,
        tol=tol,
        status=out["status"],
        n_repairs=out["n_repairs"],
        history=out["history"],
        pixels_per_cell=pixels_per_cell(density, len(alpha)),
        coarse_levels=out.get("coarse_levels", 0),
        _raster=raster,
        _labels3=out["labels3"],
    )


def _warn_status(result, out, stacklevel=2):
    if result.status == RESOLUTION:
        warnings.warn(
            resolution_message(
                result.tol,
                result.max_error,
                out["granularity"],
                result.pixels_per_cell
                * len(result.target)
                * float(result.target.min()),
                len(result.weights) and result._raster.grid.ndim,
            ),
            ResolutionWarning,
            stacklevel=stacklevel,
        )
    elif result.status == STALLED:
        warnings.warn(
            f"solve_ot stalled (damping step below {_config.MIN_STEP:g}) at max "
            f"relative mass error {result.max_error:.3g} > tol={result.tol:g}; "
            "returning the best iterate",
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
