"""Lloyd-type quantization loops: classic (Voronoi) and uniform (optimal transport)."""

from __future__ import annotations

import logging
import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _config
from ._validation import (
    check_callback,
    check_density,
    check_masses,
    check_memory,
    check_n_points,
    check_points,
    check_positive_int,
    check_real,
    check_tol,
)
from .assign.cells import polygon_buffer_bytes
from .assign.quadrature import make_quadrature
from .errors import ConvergenceWarning, EmptyCellError, ResolutionWarning
from .ot.newton import (
    CONVERGED,
    RESOLUTION,
    NewtonState,
    _rel_error,
    resolution_message,
    solve_cells,
)

__all__ = ["LloydResult", "lloyd"]

logger = logging.getLogger(__name__)

_METHODS = ("uniform", "voronoi")

#: after a failed OT solve at moved points, steps of step/2, step/4, ... are tried
#: from the last accepted points, at most this many
MAX_STEP_HALVINGS = 3

#: the keys of LloydResult.history that have one entry per accepted iterate
_HISTORY_KEYS = (
    "energy",
    "max_mass_error",
    "displacement",
    "newton_iterations",
    "repairs",
    "step",
    "retries",
    "time",
)


@dataclass(frozen=True)
class LloydResult:
    """Result of :func:`lloyd`.

    Attributes
    ----------
    points : (N, d) ndarray
        Final points.
    weights : (N,) ndarray
        Power weights of the final points (zero for ``method="voronoi"``).
    masses : (N,) ndarray
        Cell masses of the final points.
    energy : float
        Energy of the final points: F_N (uniform) or G_N (voronoi).
    n_iter : int
        Iterations taken.
    converged : bool
        True if the largest point displacement fell below ``tol``.
    history : dict of list
        Per accepted iterate (energy of the iterate before its move): "energy",
        "max_mass_error", "displacement", "newton_iterations", "repairs", "step"
        (the relaxation step that reached the iterate; NaN for the starting points),
        "retries" (OT solves rejected before it was accepted), "time". Plus
        "rejected": one dict per OT solve that missed ``ot_tol`` and was not used
        ("iteration", "attempt" ("warm", "cold" or "centre" start), "step",
        "status", "max_mass_error").
    status : str
        How the loop ended: "converged" (displacement below ``tol``), "n_iter"
        (``n_iter`` moves made) or "ot_failed" (no OT solve met ``ot_tol``, even
        after the retries: the last accepted iterate is returned).
    """

    points: np.ndarray
    weights: np.ndarray
    masses: np.ndarray
    energy: float
    n_iter: int
    converged: bool
    history: dict = field(repr=False)
    status: str = "n_iter"


def _follow_moves(quad, state, psi, moves):
    """Weights for the moved sites ``y + moves`` keeping the cell masses to first order.

    Moving the sites by ``d`` moves the facet between cells ``i`` and ``j`` by
    ``(2 (x - y_i).d_i - 2 (x - y_j).d_j) / (2 |y_i - y_j|)`` at each of its points
    ``x``, so ``dm_i = sum 2 w_t ((x_t - y_i).d_i - (x_t - y_j).d_j)`` over the facet
    pieces ``t`` of the last exact Jacobian (``w_t`` its entry, ``x_t`` where it lies:
    see ``Quadrature.move_rates``). The weights then change by ``J^-1 (-dm)``, solved by
    conjugate gradients preconditioned with the last Newton factorisation (to
    ``_config.PREDICTOR_CG_RTOL``). The next solve starts a few pixels' worth of
    mass from its target instead of the whole first-order change, and often needs no
    Newton step at all. Without facets (centre quadrature, or no Newton step taken
    yet) each site keeps its power distance at its cell's barycenter, which keeps the
    cells from emptying: ``psi_i -= |d_i|^2`` (for a full step). For moves longer than
    ``_config.LINEAR_MOVE_PIXELS`` pixels (the first Lloyd steps) the first order
    overshoots: the weights take ``_config.LONG_MOVE_BLEND`` of it and the rest of the
    barycenter rule. Beyond
    ``_config.BLEND_MOVE_PIXELS`` pixels (the first Lloyd step from random points)
    returns None: the next solve starts cold, from zero weights on coarser rasters,
    which after a Lloyd step (sites near their barycenters) takes two or three
    Newton steps, while the barycenter rule empties cells that need repairs.
    """
    reach = float(np.sqrt((moves**2).sum(axis=1).max())) if len(moves) else 0.0
    pixel = float(np.max(quad.grid.spacing))
    linear_move = reach <= _config.LINEAR_MOVE_PIXELS * pixel
    barycentric = psi - (moves**2).sum(axis=1)
    if reach > _config.BLEND_MOVE_PIXELS * pixel:
        return None
    solver = state.solver
    rates = None if solver is None else quad.move_rates(psi, moves)
    if rates is None:
        return barycentric
    dm, jac = rates
    # the Jacobian at these weights; the last factorisation (maybe of an earlier
    # Newton step) preconditions it
    step = state.solve_nearby(jac(), -dm)
    if linear_move:
        return psi + step
    blend = _config.LONG_MOVE_BLEND
    return blend * (psi + step) + (1.0 - blend) * barycentric


def _accepted(out):
    """Tell whether Lloyd may move points with this solve.

    It must meet ``ot_tol``, or stop at the raster's resolution floor (centre
    quadrature: masses move in whole pixels, which a retry cannot change).
    """
    return out.status in (CONVERGED, RESOLUTION)


def _solve_uniform(quad, state, alpha, psi, ot_tol, max_iter, reject):
    """Solve OT at the raster's sites for Lloyd, retrying from other starts.

    Tries in turn: ``psi`` (warm; skipped when None), the multiscale cold start from
    zero weights, and, with fractional quadrature, the continuation through centre
    quadrature (its solution, found on whole pixels, starts the fractional solve).
    Each attempt that Lloyd may not use is passed to ``reject(attempt, out)``.
    Returns the first usable result, or else the failed one with the smallest error.
    """
    n = len(alpha)
    attempts = ["cold"] if psi is None else ["warm", "cold"]
    if quad.centre_fallback:
        attempts.append("centre")
    best = None
    for k, how in enumerate(attempts):
        try:
            if how == "centre":
                rc = quad.centre_on(quad.density)
                pre = solve_cells(
                    rc, alpha, np.zeros(n), ot_tol, max_iter, multiscale=True
                )
                start, multiscale = pre.weights, False
            elif how == "cold":
                start, multiscale = np.zeros(n), True
            else:
                start, multiscale = psi, False
            out = solve_cells(
                quad,
                alpha,
                start,
                ot_tol,
                max_iter,
                state=state,
                multiscale=multiscale,
                want_moments=True,
            )
        except EmptyCellError:
            if k == 0:
                raise  # the start Lloyd has always used: as before
            reject(how, "empty_cell", float("inf"))
            continue
        if _accepted(out):
            return out
        reject(how, out.status, out.max_error)
        if best is None or out.max_error < best.max_error:
            best = out
    return best


def lloyd(
    density,
    points,
    *,
    method: str = "uniform",
    n_iter: int = 50,
    step: float = 1.0,
    tol: float | None = None,
    masses=None,
    ot_tol: float = _config.DEFAULT_TOL,
    callback=None,
    progress: bool = False,
    quadrature: str = _config.DEFAULT_QUADRATURE,
    ot_max_iter: int = _config.DEFAULT_MAX_ITER,
) -> LloydResult:
    """Lloyd's algorithm, classic or uniform, with an optional relaxed step.

    Parameters
    ----------
    density : Density or array_like
        The raster density.
    points : (N, d) array_like of float
        Starting points (distinct, inside the grid).
    method : {"uniform", "voronoi"}
        ``"uniform"``: optimal-transport (power) cells with the target masses, solved by
        :func:`solve_ot` warm-started from the previous weights; decreases F_N.
        ``"voronoi"``: classic Lloyd on Voronoi cells; decreases G_N.
    n_iter : int
        Maximum number of iterations (>= 0).
    step : float
        Relaxation ``tau`` in (0, 1]: ``y <- (1 - tau) y + tau b``.
    tol : float, optional
        Stop when the largest displacement is below ``tol`` (physical units).
    masses : (N,) array_like, optional
        Target masses of the uniform method (default ``1/N``).
    ot_tol : float
        Relative mass tolerance of each OT solve.
    callback : callable, optional
        Called with a dict (iteration, energy, points, weights, step, ...) after each
        move, once the OT solve at the moved points has been accepted.
    progress : bool
        Show a tqdm progress bar on stderr.
    quadrature : {"center", "fractional"}
        Pixel quadrature of the cells (see :func:`solve_ot`).
    ot_max_iter : int
        Maximum Newton iterations of each OT solve (>= 0).

    Returns
    -------
    LloydResult
        ``status`` says how the loop ended; ``history["rejected"]`` lists the OT
        solves that were not used.

    Warns
    -----
    ConvergenceWarning
        When the loop stopped because no OT solve met ``ot_tol`` (status
        "ot_failed"), naming the iteration and the error achieved.
    ResolutionWarning
        When centre quadrature cannot resolve ``ot_tol`` (those solves are used).

    Notes
    -----
    The energies decompose per cell as ``int |x - b_i|^2 d rho + m_i |b_i - y_i|^2``;
    moving ``y_i`` to ``b_i`` cannot increase them (for the uniform method up to the OT
    mass tolerance). Each iteration costs one OT solve (uniform: a few Newton steps,
    warm-started) or one sweep (voronoi), plus a moment pass.

    The uniform method never moves points with the barycenters of an OT solve that
    missed ``ot_tol`` (they can be far off: the energy would jump). Such a solve is
    retried from the multiscale cold start, then from the centre-quadrature
    solution; if all fail at points reached by a move, the move is taken again from
    the last accepted points with half the step, down to ``step / 2**3``. When that
    fails too, the loop stops with status "ot_failed" and returns the last accepted
    iterate (at the starting points: the points unmoved, the best weights found and
    ``energy`` NaN). Solves at the resolution floor of centre quadrature (status
    "resolution") are used, with a ``ResolutionWarning``.

    Examples
    --------
    >>> import numpy as np
    >>> res = lloyd(np.ones((32, 32)), [[5.0, 5.0], [20.0, 9.0], [9.0, 25.0],
    ...             [26.0, 26.0]], method="voronoi", n_iter=30)
    >>> bool(res.history["energy"][-1] <= res.history["energy"][0])
    True
    """
    density = check_density(density)
    pts = check_points(points, density.grid)
    n = len(pts)
    check_memory(
        density.grid.n_pixels,
        n,
        uniform=density.is_uniform,
        n_label_arrays=3,
        extra_bytes=polygon_buffer_bytes(density, n, quadrature),
        what="lloyd",
    )
    check_n_points(n, density)
    n_iter, step, tol, alpha, ot_tol, callback, ot_max_iter = _check_options(
        n, method, n_iter, step, tol, masses, ot_tol, callback, ot_max_iter
    )
    run = _Run(density, pts, alpha, quadrature, method, step, ot_tol, ot_max_iter)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_iter, desc=f"lloyd ({method})", unit="it", leave=False)
    try:
        run.loop(n_iter, tol, callback, bar)
    finally:
        if bar is not None:
            bar.close()
    hist, m = run.hist, run.m
    if run.worst is not None:
        err, out = run.worst
        msg = resolution_message(
            ot_tol,
            err,
            out.granularity,
            density.n_positive() * float(alpha.min()),
            density.grid.ndim,
        )
        warnings.warn(f"lloyd: {msg}", ResolutionWarning, stacklevel=2)
    it, pts, psi = run.it, run.pts, run.psi
    if run.failed is not None:
        # the last accepted iterate (or the starting points), never the failed solve
        it, pts, psi, m = _stopped(
            run.failed, run.last, hist, it, run.tau, ot_tol, run.n_rejected, run.t0
        )
    return LloydResult(
        points=pts,
        weights=psi - psi.mean(),
        masses=m,
        energy=hist["energy"][-1],
        n_iter=it,
        converged=run.status == "converged",
        history=hist,
        status=run.status,
    )


def _check_options(n, method, n_iter, step, tol, masses, ot_tol, callback, ot_max_iter):
    """Validate the options of :func:`lloyd`; returns them converted.

    ``(n_iter, step, tol, alpha, ot_tol, callback, ot_max_iter)``; raises ValueError
    or TypeError naming the option otherwise.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    step = check_real(step, "step", low=0.0, high=1.0, low_open=True)
    if tol is not None and (
        isinstance(tol, (bool, np.bool_)) or not isinstance(tol, numbers.Real)
    ):
        raise TypeError(
            f"tol must be a displacement >= 0 or None, got {type(tol).__name__}"
        )
    if tol is not None and not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a displacement >= 0 or None, got {tol!r}")
    tol = None if tol is None else float(tol)
    if masses is not None and method != "uniform":
        raise ValueError(
            f"masses only apply to method='uniform', got method={method!r} with "
            "masses; drop masses or use method='uniform'"
        )
    alpha = check_masses(masses, n)
    ot_tol = check_tol(ot_tol, name="ot_tol")
    callback = check_callback(callback)
    ot_max_iter = check_positive_int(ot_max_iter, "ot_max_iter", minimum=0)
    return n_iter, step, tol, alpha, ot_tol, callback, ot_max_iter


class _Run:
    """The state of one Lloyd run: points, weights, history, and its steps."""

    def __init__(self, density, pts, alpha, quadrature, method, step, ot_tol, max_iter):
        self.density, self.alpha, self.method, self.step = density, alpha, method, step
        self.ot_tol, self.ot_max_iter = ot_tol, max_iter
        self.quad = make_quadrature(density, pts, quadrature)
        self.state = NewtonState()
        self.pts, self.psi, self.m = pts, np.zeros(len(pts)), None
        self.hist = {k: [] for k in _HISTORY_KEYS}
        self.hist["rejected"] = []
        self.t0 = time.perf_counter()
        self.worst = None  # the worst solve used at the resolution floor
        self.failed = None  # the best failed solve when the loop stopped on it
        self.cold = True
        self.status = "n_iter"
        self.it = 0
        self.tau = float("nan")  # the step that reached pts
        self.last = None  # the last accepted iterate: (points, weights, masses, move)
        self.pending = None  # the callback's dict for the move being tried
        self.halvings = 0
        self.n_rejected = 0

    def reject(self, how, status, max_error):
        """Record an OT solve that Lloyd does not use."""
        self.hist["rejected"].append(
            {
                "iteration": self.it,
                "attempt": how,
                "step": self.tau,
                "status": status,
                "max_mass_error": float(max_error),
            }
        )
        logger.debug(
            "lloyd %d: OT solve (%s start, step %g) ended %s at %.3g; not used",
            self.it,
            how,
            self.tau,
            status,
            max_error,
        )

    def loop(self, n_iter, tol, callback, bar):
        """Iterate until ``tol``, ``n_iter`` moves, or a failed solve."""
        while True:
            cells = self.cells()
            if cells is None:
                if self.status == "ot_failed":
                    return
                continue  # a shorter step from the last accepted points
            bary, energies, err, newton, repairs = cells
            self.halvings = 0
            if self.pending is not None:
                self.pending["weights"] = self.psi
                self.pending["step"] = self.tau
                callback(self.pending)
                self.pending = None
            energy = float(energies.sum())
            move = self.density.grid.min_image(bary - self.pts)
            dmax = float(np.sqrt((move**2).sum(axis=1)).max()) * self.step
            for key, value in (
                ("energy", energy),
                ("max_mass_error", err),
                ("displacement", dmax),
                ("newton_iterations", newton),
                ("repairs", repairs),
                ("step", self.tau),
                ("retries", self.n_rejected),
                ("time", time.perf_counter() - self.t0),
            ):
                self.hist[key].append(value)
            self.n_rejected = 0
            if tol is not None and dmax <= tol:
                self.status = "converged"
                return
            if self.it >= n_iter:
                return
            self.advance(move)
            if bar is not None:
                bar.set_postfix(energy=f"{energy:.4g}", mass_err=f"{err:.2g}")
                bar.update(1)
            if callback is not None:
                self.pending = {
                    "iteration": self.it,
                    "energy": energy,
                    "points": self.pts,
                    "weights": self.psi,
                    "max_mass_error": err,
                    "displacement": dmax,
                }

    def cells(self):
        """Solve for the cells at the current points.

        Returns ``(barycenters, energies, err, newton, repairs)``, or None after a
        failed solve (a shorter step is then set up, or ``status`` is "ot_failed").
        """
        quad, n = self.quad, len(self.alpha)
        quad.set_points(self.pts)
        if self.method == "voronoi":
            self.m, bary, energies = quad.voronoi_moments(np.zeros(n))
            return bary, energies, float("nan"), 0, 0
        # the first solve (and any after a long move) starts from coarser rasters
        # (multiscale); later ones are warm-started
        n_before = len(self.hist["rejected"])
        out = _solve_uniform(
            quad,
            self.state,
            self.alpha,
            None if self.cold else self.psi,
            self.ot_tol,
            self.ot_max_iter,
            self.reject,
        )
        self.n_rejected += len(self.hist["rejected"]) - n_before
        if not _accepted(out):
            if self.last is None or self.halvings >= MAX_STEP_HALVINGS:
                self.failed = (out, self.pts)
                self.status = "ot_failed"
                return None
            # never move with a failed solve: back to the last accepted points, a
            # shorter step towards their barycenters
            self.halvings += 1
            self.tau = self.step / 2.0**self.halvings
            last_pts, last_psi, _, last_move = self.last
            pts = last_pts + self.tau * last_move
            if self.density.grid.any_periodic:
                pts = self.density.grid.wrap(pts)
            self.pts = pts
            # each site keeps its power distance at its cell's barycenter
            self.psi = last_psi - ((self.tau * last_move) ** 2).sum(axis=1)
            self.cold = False
            quad.expect_moves(0.0)
            return None
        self.psi = out.weights
        if out.moments is not None:
            self.m, bary, energies = out.moments
        else:
            self.m, bary, energies = quad.moments(out.labels3, self.psi)
        err = _rel_error(self.m, self.alpha)
        if out.status == RESOLUTION and (self.worst is None or err > self.worst[0]):
            self.worst = (err, out)
        return bary, energies, err, out.n_iter, out.n_repairs

    def advance(self, move):
        """Move the points ``step`` of the way to their barycenters."""
        grid = self.density.grid
        self.last = (self.pts, self.psi, self.m, move)
        self.tau = self.step
        new = self.pts + self.step * move
        # short moves (late Lloyd steps): candidate lists with room for a few
        reach = self.step * float(np.sqrt((move**2).sum(axis=1).max()))
        short = reach <= _config.LINEAR_MOVE_PIXELS * float(np.max(grid.spacing))
        self.quad.expect_moves(reach if short else 0.0)
        if self.method == "uniform":
            psi = _follow_moves(self.quad, self.state, self.psi, self.step * move)
            self.cold = psi is None
            self.psi = np.zeros(len(self.alpha)) if self.cold else psi
        if grid.any_periodic:
            new = grid.wrap(new)
        self.pts = new
        self.it += 1


def _stopped(failed, last, hist, it, tau, ot_tol, n_rejected, t0):
    """Settle a loop stopped on an OT solve that no retry could make usable.

    Warns ``ConvergenceWarning``. Returns ``(n_iter, points, weights, masses)`` of
    the last accepted iterate; when the solve at the starting points failed, of the
    starting points with the best weights found (``failed = (solution, points)``),
    and appends a history entry for them whose energy is NaN.
    """
    failed, failed_points = failed
    err = float(failed.max_error)
    tried = ", ".join(
        sorted({r["attempt"] for r in hist["rejected"] if r["iteration"] == it})
    )
    if last is None:
        # nothing accepted: the starting points, unmoved
        for key, value in (
            ("energy", float("nan")),
            ("max_mass_error", err),
            ("displacement", float("nan")),
            ("newton_iterations", failed.n_iter),
            ("repairs", failed.n_repairs),
            ("step", float("nan")),
            ("retries", n_rejected),
            ("time", time.perf_counter() - t0),
        ):
            hist[key].append(value)
        where = "at the starting points"
        returning = "the starting points unmoved, energy NaN"
        pts, psi, masses = failed_points, failed.weights, failed.masses
    else:
        pts, psi, masses, _ = last
        where = f"at iteration {it} (steps down to {tau:g} tried)"
        returning = f"the points of iteration {it - 1}"
    warnings.warn(
        f"lloyd stopped {where}: no OT solve met ot_tol={ot_tol:g} (best max "
        f"relative mass error {err:.3g}, {failed.status}; starts tried: {tried}); "
        f"returning {returning}. Loosen ot_tol, raise ot_max_iter or use a smaller "
        "step",
        ConvergenceWarning,
        stacklevel=3,
    )
    return len(hist["energy"]) - 1, pts, psi, masses
