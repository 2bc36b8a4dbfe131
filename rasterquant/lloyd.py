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
from .errors import ConvergenceWarning, ResolutionWarning
from .ot._jacobian import preconditioned_cg
from .ot.newton import RESOLUTION, _rel_error, _solve, resolution_message

__all__ = ["LloydResult", "lloyd"]

logger = logging.getLogger(__name__)

_METHODS = ("uniform", "voronoi")


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
        Per iteration (energy of the iterate before its move): "energy",
        "max_mass_error", "displacement", "newton_iterations", "repairs", "time".
    """

    points: np.ndarray
    weights: np.ndarray
    masses: np.ndarray
    energy: float
    n_iter: int
    converged: bool
    history: dict = field(repr=False)


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
        Called with a dict (iteration, energy, points, ...) after each iteration.
    progress : bool
        Show a tqdm progress bar on stderr.
    quadrature : {"center", "fractional"}
        Pixel quadrature of the cells (see :func:`solve_ot`).

    Returns
    -------
    LloydResult

    Notes
    -----
    The energies decompose per cell as ``int |x - b_i|^2 d rho + m_i |b_i - y_i|^2``;
    moving ``y_i`` to ``b_i`` cannot increase them (for the uniform method up to the OT
    mass tolerance). Each iteration costs one OT solve (uniform: a few Newton steps,
    warm-started) or one sweep (voronoi), plus a moment pass.

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
    raster = _Raster(density, pts, quadrature)
    psi = np.zeros(n)
    hist = {
        k: []
        for k in (
            "energy",
            "max_mass_error",
            "displacement",
            "newton_iterations",
            "repairs",
            "time",
        )
    }
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_iter, desc=f"lloyd ({method})", unit="it", leave=False)
    worst_status, worst = None, None
    cold = True
    converged = False
    it = 0
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
                out = _solve(
                    raster,
                    alpha,
                    psi,
                    ot_tol,
                    _config.DEFAULT_MAX_ITER,
                    multiscale=cold,
                    want_moments=True,
                )
                psi = out["weights"]
                labels3 = out["labels3"]
                if out["moments"] is not None:
                    m, bary, energies = out["moments"]
                else:
                    m, bary, energies = raster.moments(labels3, psi)
                err = _rel_error(m, alpha)
                newton, repairs = out["n_iter"], out["n_repairs"]
                if out["status"] != "converged" and (worst is None or err > worst[0]):
                    worst = (err, out)
                    worst_status = out["status"]
            energy = float(energies.sum())
            disp = np.sqrt(((density.grid.min_image(bary - pts)) ** 2).sum(axis=1))
            dmax = float(disp.max()) * step
            hist["energy"].append(energy)
            hist["max_mass_error"].append(err)
            hist["displacement"].append(dmax)
            hist["newton_iterations"].append(newton)
            hist["repairs"].append(repairs)
            hist["time"].append(time.perf_counter() - t0)
            if tol is not None and dmax <= tol:
                converged = True
                break
            if it >= n_iter:
                break
            move = density.grid.min_image(bary - pts)
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
                callback(
                    {
                        "iteration": it,
                        "energy": energy,
                        "points": pts,
                        "weights": psi,
                        "max_mass_error": err,
                        "displacement": dmax,
                    }
                )
    finally:
        if bar is not None:
            bar.close()
    if worst is not None:
        err, out = worst
        if worst_status == RESOLUTION:
            msg = resolution_message(
                ot_tol,
                err,
                out["granularity"],
                density.n_positive() * float(alpha.min()),
                density.grid.ndim,
            )
            warnings.warn(f"lloyd: {msg}", ResolutionWarning, stacklevel=2)
        else:
            warnings.warn(
                f"lloyd: an OT solve ended {worst_status} at max relative mass error "
                f"{err:.3g} > ot_tol={ot_tol:g}",
                ConvergenceWarning,
                stacklevel=2,
            )
    return LloydResult(
        points=pts,
        weights=psi - psi.mean(),
        masses=m,
        energy=hist["energy"][-1],
        n_iter=it,
        converged=converged,
        history=hist,
    )
