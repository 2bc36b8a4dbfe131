"""The globalisation of the Newton solve: two continuation paths for hard problems.

Damped Newton (Kitagawa, Merigot and Thibert) converges on every valid problem in
theory, but its steps can be tiny for a long time: when a cloud sits on a curve or in
a cluster (the Voronoi cells at zero weights are extremely unequal), or when the
density has a high contrast (cells that must cross from a light region into a dark
one see almost no mass along the linearised direction). ``ot/newton.py`` first runs
its fast solve; when that stalls, :func:`continuation` takes over from the best
weights it reached, along two paths whose every stage is an easy Newton solve:

- **width** (non-uniform densities only; sdot's width continuation): the density
  convolved with a Gaussian of width ``sigma``, from a quarter of the box, where it is
  nearly flat, down to zero, the density itself. Steps are taken in
  ``s = log(sigma / h + 1)`` (``h`` the smallest pixel spacing): at most a factor
  4 in ``sigma + h``, lengthened by half after a converged stage, halved after a
  failed one, down to a factor 1.05. Intermediate stages are solved to
  ``max(tol, 1e-2)``: they only need to start the next one close.
- **mass** (every stage of the width path that fails, and the whole problem when the
  density is uniform): the targets ``(1 - t) m0 + t alpha``, from the masses ``m0``
  of the current weights (a solved problem at ``t = 0``) to the targets at
  ``t = 1``; ``t`` grows by steps that double after a success and halve after a
  failure (down to ``1e-3``), intermediate stages solved to ``max(tol, 0.05)``.

Both paths are continuous in their parameter, so a stage starts inside Newton's
region of fast convergence once its step is small enough; a path that still fails at
its smallest step, or after :data:`MAX_STAGES` stage solves, is reported as a failure,
never as a success (the caller keeps the best weights and the achieved error).

The stage solver is the caller's: ``solve(density, alpha, psi, tol, max_iter)``
returns a Newton result with the attributes ``status``, ``weights`` and ``masses``
(``ot/newton.Solution``), with ``density=None`` for the problem's own density.
"""

import math

import numpy as np

CONVERGED = "converged"

# the width path: first width (a fraction of the box), longest and shortest steps in
# s = log(sigma/h + 1), Newton steps per stage, intermediate tolerance
WIDTH_START = 0.25
WIDTH_MAX_RATIO = 4.0
WIDTH_MIN_RATIO = 1.05
STAGE_MAX_ITER = 60
WIDTH_STAGE_TOL = 1e-2
# the mass path: first step in t, smallest step, intermediate tolerance
MASS_FIRST_STEP = 0.25
MASS_MIN_STEP = 1e-3
# at most this many stage solves over both paths: a problem the raster cannot
# resolve (masses that are only approximate) must not keep the paths busy forever
MAX_STAGES = 40
MASS_STAGE_TOL = 0.05


def blurred(density, sigma):
    """Return ``density`` convolved with a Gaussian of width ``sigma`` (physical).

    Periodic axes wrap around, the others reflect at the border; the result is a
    :class:`Density` on the same grid (normalised to mass 1).
    """
    from scipy.ndimage import gaussian_filter

    from ..density import Density

    grid = density.grid
    values = np.asarray(density.values, dtype=np.float64)
    modes = ["wrap" if p else "reflect" for p in grid.periodic]
    sig = [sigma / h for h in grid.spacing]
    out = gaussian_filter(values, sig, mode=modes)
    return Density.from_array(np.maximum(out, 0.0), grid)


def _ok(out):
    return out.status == CONVERGED


def mass_path(solve, density, alpha, psi, masses, tol, max_iter):
    """Solve by continuation on the targets, from ``masses`` at ``psi`` to ``alpha``.

    Returns ``(out, stages, rejected)``: the final Newton result and the number of
    converged and failed stages.
    """
    m0 = np.maximum(np.asarray(masses, dtype=np.float64), 1e-3 * alpha)
    m0 = m0 / m0.sum() * alpha.sum()
    t, dt = 0.0, MASS_FIRST_STEP
    stages = rejected = 0
    out = None
    while True:
        t1 = min(1.0, t + dt)
        target = (1.0 - t1) * m0 + t1 * alpha
        last = t1 >= 1.0
        stage_tol = tol if last else max(tol, MASS_STAGE_TOL)
        out = solve(density, target, psi, stage_tol, min(max_iter, STAGE_MAX_ITER))
        if _ok(out):
            stages += 1
            t, psi = t1, out.weights
            if last:
                return out, stages, rejected
            dt = min(2.0 * dt, 1.0)
        else:
            rejected += 1
            dt *= 0.5
            if dt < MASS_MIN_STEP:
                return out, stages, rejected


def _stage(solve, density, alpha, psi, tol, max_iter):
    """One stage: Newton from ``psi``, then the mass path from where it stopped."""
    out = solve(density, alpha, psi, tol, max_iter)
    if _ok(out):
        return out, 1, 0
    if not np.all(np.isfinite(out.weights)):
        return out, 0, 1
    out, n_ok, n_bad = mass_path(
        solve, density, alpha, out.weights, out.masses, tol, max_iter
    )
    return out, n_ok, n_bad + 1


def continuation(solve, density, alpha, psi, masses, tol, max_iter):
    """Solve a problem the fast Newton solve stalled on, from its best weights.

    Parameters
    ----------
    solve : callable
        ``solve(density, alpha, psi, tol, max_iter)``, the Newton solve
        (``density=None``: the problem's own density).
    density : Density
        The problem's density.
    alpha : (N,) ndarray
        Target masses.
    psi, masses : (N,) ndarray
        The best weights of the stalled solve, and their masses.
    tol : float
        Requested maximum relative mass error.
    max_iter : int
        Newton iterations per stage.

    Returns
    -------
    out
        The Newton result of the last stage (on the problem's density, unless the
        width path failed before reaching it).
    info : dict
        ``path`` ("width" or "mass"), ``stages`` (converged stages) and
        ``rejected`` (failed stages) over both paths, and ``exhausted`` (the
        stage budget ran out).
    """
    calls = []

    def budgeted(*args):
        if len(calls) >= MAX_STAGES:
            raise _Exhausted(calls[-1])
        calls.append(solve(*args))
        return calls[-1]

    try:
        out, info = _paths(budgeted, density, alpha, psi, masses, tol, max_iter)
        info["exhausted"] = False
    except _Exhausted as stop:
        ok = sum(c.status == CONVERGED for c in calls)
        path = "mass" if density.is_uniform else "width"
        out = stop.last
        info = {"path": path, "stages": ok, "rejected": len(calls) - ok}
        info["exhausted"] = True
    return out, info


class _Exhausted(Exception):
    def __init__(self, last):
        super().__init__("continuation stage budget exhausted")
        self.last = last


def _paths(solve, density, alpha, psi, masses, tol, max_iter):
    """Run the paths of :func:`continuation` (``solve`` counts the stages)."""
    if density.is_uniform:
        out, stages, rejected = mass_path(
            solve, None, alpha, psi, masses, tol, max_iter
        )
        return out, {"path": "mass", "stages": stages, "rejected": rejected}
    h = min(density.grid.spacing)
    grid = density.grid
    extent = max(n * s for n, s in zip(grid.shape, grid.spacing, strict=True))
    k0 = WIDTH_START * extent / h
    s_end = math.log(k0 + 1.0)
    big = math.log(WIDTH_MAX_RATIO)
    s = s_prev = 0.0
    ds = big
    stages = rejected = 0
    # the width path starts from zero weights: the stalled weights belong to the
    # sharp density, far from the solution of a flat one
    w = np.zeros_like(alpha)
    while True:
        last = s >= s_end - 1e-9
        sigma = 0.0 if last else ((k0 + 1.0) * math.exp(-s) - 1.0) * h
        stage_density = None if last else blurred(density, sigma)
        stage_tol = tol if last else max(tol, WIDTH_STAGE_TOL)
        out, n_ok, n_bad = _stage(
            solve, stage_density, alpha, w, stage_tol, min(max_iter, STAGE_MAX_ITER)
        )
        stages += n_ok
        rejected += n_bad
        if _ok(out):
            w = out.weights
            if last:
                break
            s_prev, ds = s, min(1.5 * ds, big)
        else:
            if ds / 2 < math.log(WIDTH_MIN_RATIO):
                if not last:  # report on the problem's own density
                    out = solve(None, alpha, w, tol, max_iter)
                break
            ds /= 2
        s = min(s_prev + ds, s_end)
    return out, {"path": "width", "stages": stages, "rejected": rejected}
