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
from .assign._kernels import _facet_move_rates, _facet_move_rates_at
from .assign.cells import _Raster, polygon_buffer_bytes
from .errors import ConvergenceWarning, EmptyCellError, ResolutionWarning
from .ot._jacobian import preconditioned_cg
from .ot.newton import CONVERGED, RESOLUTION, _rel_error, _solve, resolution_message

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


def _follow_moves(raster, psi, moves):
    """Weights for the moved sites ``y + moves`` keeping the cell masses to first order.

    Moving the sites by ``d`` moves the facet between cells ``i`` and ``j`` by
    ``(2 (x - y_i).d_i - 2 (x - y_j).d_j) / (2 |y_i - y_j|)`` at each of its points
    ``x``, so ``dm_i = sum 2 w_t ((x_t - y_i).d_i - (x_t - y_j).d_j)`` over the facet
    pieces ``t`` of the last fractional Jacobian (``w_t`` its entry, ``x_t`` the centre
    of the pixel that holds it). The weights then change by ``J^-1 (-dm)``, solved by
    conjugate gradients preconditioned with the last Newton factorisation (to
    ``_config.PREDICTOR_CG_RTOL``). The next solve starts a few pixels' worth of
    mass from its target instead of the whole first-order change, and often needs no
    Newton step at all. Without facets (centre quadrature, or no Newton step taken
    yet) each site keeps its power distance at its cell's barycenter, which keeps the
    cells from emptying: ``psi_i -= |d_i|^2`` (for a full step). For moves longer than
    ``_config.LINEAR_MOVE_PIXELS`` pixels (the first Lloyd steps) the first order
    overshoots: the weights take ``_config.LONG_MOVE_BLEND`` of it and the rest of the
    barycenter rule (benchmarks/bench_stipple.py: 15.8 s -> 14.0-14.6 s). Beyond
    ``_config.BLEND_MOVE_PIXELS`` pixels (the first Lloyd step from random points)
    returns None: the next solve starts cold, from zero weights on coarser rasters,
    which after a Lloyd step (sites near their barycenters) takes two or three
    Newton steps, while the barycenter rule empties cells that need repairs
    (portrait, N=10,000, 30-pixel move: 0.27 s against 1.5 s).
    """
    facets, solver = raster.facets, raster.last_solver
    reach = float(np.sqrt((moves**2).sum(axis=1).max())) if len(moves) else 0.0
    pixel = float(np.max(raster.grid.spacing))
    linear = reach <= _config.LINEAR_MOVE_PIXELS * pixel
    barycentric = psi - (moves**2).sum(axis=1)
    if reach > _config.BLEND_MOVE_PIXELS * pixel:
        return None
    if (
        facets is not None
        and solver is not None
        and reach <= _config.BLEND_MOVE_PIXELS * pixel
    ):
        w_f, rows, cols, vals, pix, jac = facets
        gauge = np.abs(w_f - w_f.mean() - psi).max()
        if gauge <= 1e-9 * (1.0 + np.abs(psi).max()):
            d3 = (
                moves
                if raster.grid.ndim == 3
                else np.column_stack([np.zeros(len(moves)), moves])
            )
            if pix.ndim == 2:
                # a polygon pass: each facet at its density-weighted centre
                dm = _facet_move_rates_at(
                    rows,
                    cols,
                    vals,
                    pix,
                    np.ascontiguousarray(raster.points),
                    np.ascontiguousarray(moves),
                    len(psi),
                )
            else:
                dm = _facet_move_rates(
                    rows,
                    cols,
                    vals,
                    pix,
                    raster.points3,
                    np.ascontiguousarray(d3),
                    raster.shape3,
                    raster.spacing3,
                    raster.origin3,
                    raster.lengths3,
                    raster.periodic3,
                    len(psi),
                )
            # the Jacobian at these weights; the last factorisation (maybe of an
            # earlier Newton step) preconditions it
            step = preconditioned_cg(
                jac(), -dm, solver, _config.PREDICTOR_CG_RTOL, _config.PCG_MAX_ITER
            )
            if step is None:
                step = solver(-dm)
            if linear:
                return psi + step
            blend = _config.LONG_MOVE_BLEND
            return blend * (psi + step) + (1.0 - blend) * barycentric
    return barycentric


def _accepted(out):
    """Tell whether Lloyd may move points with this solve.

    It must meet ``ot_tol``, or stop at the raster's resolution floor (centre
    quadrature: masses move in whole pixels, which a retry cannot change).
    """
    return out["status"] in (CONVERGED, RESOLUTION)


def _solve_uniform(raster, alpha, psi, ot_tol, max_iter, reject):
    """Solve OT at the raster's sites for Lloyd, retrying from other starts.

    Tries in turn: ``psi`` (warm; skipped when None), the multiscale cold start from
    zero weights, and, with fractional quadrature, the continuation through centre
    quadrature (its solution, found on whole pixels, starts the fractional solve).
    Each attempt that Lloyd may not use is passed to ``reject(attempt, out)``.
    Returns the first usable result, or else the failed one with the smallest error.
    """
    n = len(alpha)
    attempts = ["cold"] if psi is None else ["warm", "cold"]
    if raster.quadrature == "fractional" and not raster.geometric:
        attempts.append("centre")
    best = None
    for k, how in enumerate(attempts):
        try:
            if how == "centre":
                rc = _Raster(raster.density, raster.points, "center")
                pre = _solve(rc, alpha, np.zeros(n), ot_tol, max_iter, multiscale=True)
                start, multiscale = pre["weights"], False
            elif how == "cold":
                start, multiscale = np.zeros(n), True
            else:
                start, multiscale = psi, False
            out = _solve(
                raster,
                alpha,
                start,
                ot_tol,
                max_iter,
                multiscale=multiscale,
                want_moments=True,
            )
        except EmptyCellError:
            if k == 0:
                raise  # the start Lloyd has always used: as before
            reject(how, {"status": "empty_cell", "max_error": float("inf")})
            continue
        if _accepted(out):
            return out
        reject(how, out)
        if best is None or out["max_error"] < best["max_error"]:
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
        extra_bytes=polygon_buffer_bytes(density, n),
        what="lloyd",
    )
    check_n_points(n, density)
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
    raster = _Raster(density, pts, quadrature)
    psi = np.zeros(n)
    hist = {k: [] for k in _HISTORY_KEYS}
    hist["rejected"] = []
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_iter, desc=f"lloyd ({method})", unit="it", leave=False)
    worst = None  # the worst solve used at the resolution floor
    failed = None  # the best failed solve when the loop stopped on it
    cold = True
    status = "n_iter"
    it = 0
    tau = float("nan")  # the step that reached pts
    last = None  # the last accepted iterate: (points, weights, masses, move)
    pending = None  # the callback's dict for the move being tried
    halvings = 0
    n_rejected = 0

    def reject(how, out):
        hist["rejected"].append(
            {
                "iteration": it,
                "attempt": how,
                "step": tau,
                "status": out["status"],
                "max_mass_error": float(out["max_error"]),
            }
        )
        logger.debug(
            "lloyd %d: OT solve (%s start, step %g) ended %s at %.3g; not used",
            it,
            how,
            tau,
            out["status"],
            out["max_error"],
        )

    try:
        while True:
            raster.set_points(pts)
            if method == "voronoi":
                zero = np.zeros(n)
                if raster.quadrature == "fractional":
                    # one pass for the moments; in 2D its Jacobian gives the cells'
                    # adjacency, from which the next pass builds them as polygons
                    labels3, _, (m, bary, energies), jac = raster.evaluate_deferred(
                        zero, None, True, raster.grid.ndim == 2
                    )
                    if jac is not None:
                        jac()
                        if labels3 is not None:
                            # a pixel pass: its floor links add the facets through
                            # zero pixels to the adjacency
                            raster.floor_links(labels3)
                else:
                    labels3, _ = raster.labels_masses(zero)
                    m, bary, energies = raster.moments(labels3, zero)
                err = float("nan")
                newton, repairs = 0, 0
            else:
                # the first solve (and any after a long move) starts from coarser
                # rasters (multiscale); later ones are warm-started
                n_before = len(hist["rejected"])
                out = _solve_uniform(
                    raster, alpha, None if cold else psi, ot_tol, ot_max_iter, reject
                )
                n_rejected += len(hist["rejected"]) - n_before
                if not _accepted(out):
                    if last is None or halvings >= MAX_STEP_HALVINGS:
                        failed = dict(out, points=pts)
                        status = "ot_failed"
                        break
                    # never move with a failed solve: back to the last accepted
                    # points, a shorter step towards their barycenters
                    halvings += 1
                    tau = step / 2.0**halvings
                    last_pts, last_psi, _, last_move = last
                    pts = last_pts + tau * last_move
                    if density.grid.any_periodic:
                        pts = density.grid.wrap(pts)
                    # each site keeps its power distance at its cell's barycenter
                    psi = last_psi - ((tau * last_move) ** 2).sum(axis=1)
                    cold = False
                    raster.expect_moves(0.0)
                    continue
                psi = out["weights"]
                labels3 = out["labels3"]
                if out["moments"] is not None:
                    m, bary, energies = out["moments"]
                else:
                    m, bary, energies = raster.moments(labels3, psi)
                err = _rel_error(m, alpha)
                newton, repairs = out["n_iter"], out["n_repairs"]
                if out["status"] == RESOLUTION and (worst is None or err > worst[0]):
                    worst = (err, out)
            halvings = 0
            if pending is not None:
                pending["weights"] = psi
                pending["step"] = tau
                callback(pending)
                pending = None
            energy = float(energies.sum())
            move = density.grid.min_image(bary - pts)
            dmax = float(np.sqrt((move**2).sum(axis=1)).max()) * step
            for key, value in (
                ("energy", energy),
                ("max_mass_error", err),
                ("displacement", dmax),
                ("newton_iterations", newton),
                ("repairs", repairs),
                ("step", tau),
                ("retries", n_rejected),
                ("time", time.perf_counter() - t0),
            ):
                hist[key].append(value)
            n_rejected = 0
            if tol is not None and dmax <= tol:
                status = "converged"
                break
            if it >= n_iter:
                break
            last = (pts, psi, m, move)
            tau = step
            new = pts + step * move
            # short moves (late Lloyd steps): candidate lists with room for a few
            reach = step * float(np.sqrt((move**2).sum(axis=1).max()))
            short = reach <= _config.LINEAR_MOVE_PIXELS * float(
                np.max(density.grid.spacing)
            )
            raster.expect_moves(reach if short else 0.0)
            if method == "uniform":
                psi = _follow_moves(raster, psi, step * move)
                cold = psi is None
                if cold:
                    psi = np.zeros(n)
            if density.grid.any_periodic:
                new = density.grid.wrap(new)
            pts = new
            it += 1
            if bar is not None:
                bar.set_postfix(energy=f"{energy:.4g}", mass_err=f"{err:.2g}")
                bar.update(1)
            if callback is not None:
                pending = {
                    "iteration": it,
                    "energy": energy,
                    "points": pts,
                    "weights": psi,
                    "max_mass_error": err,
                    "displacement": dmax,
                }
    finally:
        if bar is not None:
            bar.close()
    if worst is not None:
        err, out = worst
        msg = resolution_message(
            ot_tol,
            err,
            out["granularity"],
            density.n_positive() * float(alpha.min()),
            density.grid.ndim,
        )
        warnings.warn(f"lloyd: {msg}", ResolutionWarning, stacklevel=2)
    if failed is not None:
        # the last accepted iterate (or the starting points), never the failed solve
        it, pts, psi, m = _stopped(failed, last, hist, it, tau, ot_tol, n_rejected, t0)
    return LloydResult(
        points=pts,
        weights=psi - psi.mean(),
        masses=m,
        energy=hist["energy"][-1],
        n_iter=it,
        converged=status == "converged",
        history=hist,
        status=status,
    )


def _stopped(failed, last, hist, it, tau, ot_tol, n_rejected, t0):
    """Settle a loop stopped on an OT solve that no retry could make usable.

    Warns ``ConvergenceWarning``. Returns ``(n_iter, points, weights, masses)`` of
    the last accepted iterate; when the solve at the starting points failed, of the
    starting points with the best weights found (``failed["points"]``), and appends
    a history entry for them whose energy is NaN.
    """
    err = float(failed["max_error"])
    tried = ", ".join(
        sorted({r["attempt"] for r in hist["rejected"] if r["iteration"] == it})
    )
    if last is None:
        # nothing accepted: the starting points, unmoved
        for key, value in (
            ("energy", float("nan")),
            ("max_mass_error", err),
            ("displacement", float("nan")),
            ("newton_iterations", failed["n_iter"]),
            ("repairs", failed["n_repairs"]),
            ("step", float("nan")),
            ("retries", n_rejected),
            ("time", time.perf_counter() - t0),
        ):
            hist[key].append(value)
        where = "at the starting points"
        returning = "the starting points unmoved, energy NaN"
        pts, psi, masses = failed["points"], failed["weights"], failed["masses"]
    else:
        pts, psi, masses, _ = last
        where = f"at iteration {it} (steps down to {tau:g} tried)"
        returning = f"the points of iteration {it - 1}"
    warnings.warn(
        f"lloyd stopped {where}: no OT solve met ot_tol={ot_tol:g} (best max "
        f"relative mass error {err:.3g}, {failed['status']}; starts tried: {tried}); "
        f"returning {returning}. Loosen ot_tol, raise ot_max_iter or use a smaller "
        "step",
        ConvergenceWarning,
        stacklevel=3,
    )
    return len(hist["energy"]) - 1, pts, psi, masses
