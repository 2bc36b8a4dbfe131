"""Linear solves with the (singular, Laplacian-like) mass Jacobian.

``J`` is a weighted graph Laplacian: symmetric positive semi-definite, the constants
in its kernel. Every solver here works on the grounded system
``(J[1:, 1:] + eps I) y = r[1:]`` (first unknown pinned to zero, ``eps`` a tiny
shift that keeps a disconnected cell graph solvable) and returns ``(0, y)`` shifted
to mean zero. Two kinds, chosen by ``_config.DIRECT_SOLVE_MAX_N``:

- :class:`DirectSolver`: a SuperLU factorisation (small systems, where it is
  fastest; 3D cell graphs fill in much more than 2D ones);
- :class:`AMGSolver`: a smoothed-aggregation algebraic multigrid hierarchy (pyamg)
  whose V-cycle preconditions conjugate gradients: its cost grows like N.

A solver is kept by its caller between Newton steps and Lloyd iterations: the
next, nearby system is first solved by conjugate gradients preconditioned by it,
and a new solver is built only when those fall short (the factorisation or the
hierarchy of an earlier Jacobian stays a good preconditioner of a later one).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .. import _config

__all__ = ["AMGSolver", "DirectSolver", "preconditioned_cg", "solve_newton_system"]


def _grounded(jac):
    """Return ``J[1:, 1:] + eps I`` (CSR), ``eps`` = 1e-10 of the largest diagonal."""
    n = jac.shape[0]
    diag = jac.diagonal()
    scale = float(diag.max()) if diag.size and diag.max() > 0 else 1.0
    return (jac[1:, 1:] + 1e-10 * scale * sp.identity(n - 1, format="csr")).tocsr()


def _lift(y):
    """Return ``(0, y)`` shifted to mean zero."""
    delta = np.concatenate([[0.0], y])
    return delta - delta.mean()


class DirectSolver:
    """SuperLU factorisation of the grounded Jacobian.

    ``solver(r)`` and ``solver.precondition(r)`` both return the mean-zero
    solution of ``J delta = r`` (``r`` summing to zero) for the factorised ``J``.
    """

    def __init__(self, jac):
        self.n = jac.shape[0]
        # symmetric positive definite: minimum-degree ordering of A + A^T, no pivoting
        self._lu = spla.splu(
            _grounded(jac).tocsc(),
            permc_spec="MMD_AT_PLUS_A",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )

    def __call__(self, r):
        return _lift(self._lu.solve(np.asarray(r, dtype=np.float64)[1:]))

    precondition = __call__


class AMGSolver:
    """Smoothed-aggregation AMG hierarchy (pyamg) of the grounded Jacobian.

    ``solver.precondition(r)`` applies one V-cycle (a fixed symmetric positive
    definite operator on mean-zero vectors: a valid CG preconditioner, also for
    later Jacobians). ``solver(r)`` solves ``J delta = r`` for the ``J`` it was
    built from, by conjugate gradients to ``rtol`` (1e-6 by default).

    The setup is deterministic: pyamg estimates a spectral radius from a random
    vector of numpy's global generator, which is seeded here and restored after.
    """

    def __init__(self, jac):
        import pyamg

        self.n = jac.shape[0]
        self._jac = jac.tocsr()
        # pyamg draws from numpy's legacy global generator: seeded, then restored
        state = np.random.get_state()  # noqa: NPY002
        try:
            np.random.seed(_config.AMG_SEED)  # noqa: NPY002
            self._ml = pyamg.smoothed_aggregation_solver(
                _grounded(jac),
                symmetry="symmetric",
                max_coarse=_config.AMG_MAX_COARSE,
            )
        finally:
            np.random.set_state(state)  # noqa: NPY002
        # one V-cycle from a zero guess, without the two residual norms that
        # ``MultilevelSolver.solve`` computes around it
        self._cycle = getattr(self._ml, "_MultilevelSolver__solve", None)

    def precondition(self, r):
        b = np.ascontiguousarray(np.asarray(r, dtype=np.float64)[1:])
        if self._cycle is None or len(self._ml.levels) == 1:
            y = self._ml.solve(b, maxiter=1, cycle="V", tol=1e-300)
        else:
            y = np.zeros_like(b)
            self._cycle(0, y, b, "V")
        return _lift(y)

    def __call__(self, r, rtol=1e-6):
        x, ok = _pcg(self._jac, r, self.precondition, rtol, _config.AMG_MAX_ITER)
        if not ok:  # a cell graph whose separated groups get net mass
            x = DirectSolver(self._jac)(r)
        return x


def _pcg(jac, rhs, precond, rtol, maxiter, x0=None):
    """Return ``(x, converged)``: CG on ``J x = rhs`` preconditioned by ``precond``.

    ``x`` is the last iterate, mean-zero (zero if ``rhs`` is zero); ``converged``
    says whether ``|J x - rhs| <= rtol |rhs|``.
    """
    a = jac.tocsr()
    apply = getattr(precond, "precondition", precond)
    b = np.asarray(rhs, dtype=np.float64)
    nb = float(np.linalg.norm(b))
    x = np.zeros_like(b)
    if nb == 0.0:
        return x, True
    r = b.copy()
    if x0 is not None:
        x = np.asarray(x0, dtype=np.float64) - np.mean(x0)
        r = b - a @ x
        if float(np.linalg.norm(r)) <= rtol * nb:
            return x, True
    z = apply(r)
    p = z.copy()
    rz = float(r @ z)
    for _ in range(maxiter):
        ap = a @ p
        pap = float(p @ ap)
        if not (pap > 0.0 and rz > 0.0):
            break
        step = rz / pap
        x += step * p
        r -= step * ap
        if float(np.linalg.norm(r)) <= rtol * nb:
            return x - x.mean(), True
        z = apply(r)
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x - x.mean(), False


def preconditioned_cg(jac, rhs, precond, rtol, maxiter, x0=None):
    """Conjugate gradients on ``J x = rhs`` preconditioned by ``precond``, or None.

    ``precond`` is the solver of an earlier, nearby Newton system (its
    ``precondition`` method: a factorisation or an AMG V-cycle), or any callable:
    a few iterations then give the new direction for a fraction of a new solver.
    ``rhs`` must sum to zero (the kernel of ``J`` is the constants); the iterates stay
    mean-zero. ``x0`` is a first guess (zero if None). Returns None if
    ``|J x - rhs| <= rtol |rhs|`` is not reached in ``maxiter`` iterations.
    """
    x, ok = _pcg(jac, rhs, precond, rtol, maxiter, x0)
    return x if ok else None


def solve_newton_system(
    jac,
    rhs,
    *,
    method="auto",
    rtol=1e-6,
    ndim=2,
    want_solver=False,
    precond=None,
    precond_rtol=1e-3,
    x0=None,
    pcg_max_iter=_config.PCG_MAX_ITER,
):
    """Solve ``J delta = rhs`` for a mean-zero ``delta``.

    ``J`` is symmetric positive semi-definite with the constants in its kernel
    (a weighted graph Laplacian). The system is grounded on its first unknown and a tiny
    diagonal shift keeps it solvable if the cell graph is disconnected (cells separated
    by zero density).

    Parameters
    ----------
    jac : (N, N) sparse matrix
    rhs : (N,) ndarray
        Must sum to zero.
    method : {"auto", "direct", "cg"}
        ``direct``: SuperLU (:class:`DirectSolver`). ``cg``: conjugate gradients
        preconditioned by a smoothed-aggregation AMG hierarchy (:class:`AMGSolver`).
        ``auto`` factorises up to ``_config.DIRECT_SOLVE_MAX_N[ndim]`` unknowns and
        uses ``cg`` above (benchmarks/bench_linear.py).
    ndim : int
        Dimension of the raster (selects the threshold).
    rtol : float
        Relative residual of a ``cg`` solve with a new hierarchy.
    want_solver : bool
        Also return the solver (:class:`DirectSolver` or :class:`AMGSolver`) for
        other right-hand sides and as ``precond`` of later, nearby systems.
    precond : solver or callable, optional
        Solver of an earlier Newton system of the same size (``want_solver``). Up to
        ``pcg_max_iter`` conjugate-gradient iterations preconditioned by it
        are tried first, to the relative residual ``precond_rtol``; a new solver is
        built only if they fall short (``cg`` then continues from their last iterate
        to ``precond_rtol``). The returned solver is then ``precond``.
    precond_rtol : float
        Relative residual that suffices when ``precond`` is given.
    x0 : (N,) ndarray, optional
        First guess of those iterations.
    pcg_max_iter : int, optional
        Iterations preconditioned by ``precond`` before a new solver is built.

    Returns
    -------
    delta : (N,) ndarray
    solver : DirectSolver or AMGSolver
        Only with ``want_solver``.
    """
    n = jac.shape[0]
    if n == 1:
        return (np.zeros(1), lambda r: np.zeros(1)) if want_solver else np.zeros(1)
    if method == "auto":
        method = "direct" if n <= _config.DIRECT_SOLVE_MAX_N[ndim] else "cg"
    if method not in ("direct", "cg"):
        raise ValueError(f"method must be 'auto', 'direct' or 'cg', got {method!r}")
    tol = rtol
    if precond is not None and getattr(precond, "n", n) == n:
        delta, ok = _pcg(jac, rhs, precond, precond_rtol, pcg_max_iter, x0)
        if ok:
            return (delta, precond) if want_solver else delta
        x0, tol = delta, precond_rtol
    if method == "direct":
        solver = DirectSolver(jac)
        delta = solver(rhs)
    else:
        solver = AMGSolver(jac)
        delta, ok = _pcg(jac, rhs, solver, tol, _config.AMG_MAX_ITER, x0)
        if not ok:  # separated groups of cells with net mass: no Krylov solution
            delta = DirectSolver(jac)(rhs)
    return (delta, solver) if want_solver else delta
