"""Linear solves with the (singular, Laplacian-like) mass Jacobian."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .. import _config

__all__ = ["solve_newton_system"]


def preconditioned_cg(jac, rhs, precond, rtol, maxiter, x0=None):
    """Conjugate gradients on ``J x = rhs`` preconditioned by ``precond``, or None.

    ``precond`` is the solver of an earlier, nearby Newton system (its factorisation):
    a few iterations then give the new direction for a fraction of a factorisation.
    ``rhs`` must sum to zero (the kernel of ``J`` is the constants); the iterates stay
    mean-zero. ``x0`` is a first guess (zero if None). Returns None if
    ``|J x - rhs| <= rtol |rhs|`` is not reached in ``maxiter`` iterations.
    """
    a = jac.tocsr()
    b = np.asarray(rhs, dtype=np.float64)
    nb = float(np.linalg.norm(b))
    x = np.zeros_like(b)
    if nb == 0.0:
        return x
    r = b.copy()
    if x0 is not None:
        x = np.asarray(x0, dtype=np.float64) - np.mean(x0)
        r = b - a @ x
        if float(np.linalg.norm(r)) <= rtol * nb:
            return x
    z = precond(r)
    p = z.copy()
    rz = float(r @ z)
    for _ in range(maxiter):
        ap = a @ p
        pap = float(p @ ap)
        if not (pap > 0.0 and rz > 0.0):
            return None
        step = rz / pap
        x += step * p
        r -= step * ap
        if float(np.linalg.norm(r)) <= rtol * nb:
            return x - x.mean()
        z = precond(r)
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return None


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
    method : {"auto", "direct", "cg"}
        ``auto`` factorises (SuperLU) up to ``_config.DIRECT_SOLVE_MAX_N[ndim]``
        unknowns and uses conjugate gradients with a Jacobi preconditioner above (3D
        cell graphs fill in much more under factorisation than 2D ones).
    ndim : int
        Dimension of the raster (selects the threshold).
    rtol : float
        Relative residual of CG.
    want_solver : bool
        Also return ``solver(rhs) -> delta``, which reuses the factorisation (or the
        matrix, for CG) for other right-hand sides.
    precond : callable, optional
        Solver of an earlier Newton system (``want_solver``). With the direct method,
        up to ``_config.PCG_MAX_ITER`` conjugate-gradient iterations preconditioned by
        it are tried first (to the relative residual ``precond_rtol``); the system is
        factorised only if they fall short. The returned solver is then ``precond``.
    x0 : (N,) ndarray, optional
        First guess of those iterations.
    """
    n = jac.shape[0]
    if n == 1:
        return (np.zeros(1), lambda r: np.zeros(1)) if want_solver else np.zeros(1)
    if method == "auto":
        method = "direct" if n <= _config.DIRECT_SOLVE_MAX_N[ndim] else "cg"
    if precond is not None and method == "direct":
        delta = preconditioned_cg(
            jac, rhs, precond, precond_rtol, _config.PCG_MAX_ITER, x0
        )
        if delta is not None:
            return (delta, precond) if want_solver else delta
    diag = jac.diagonal()
    scale = float(diag.max()) if diag.size and diag.max() > 0 else 1.0
    eps = 1e-10 * scale
    a = jac[1:, 1:].tocsc() + eps * sp.identity(n - 1, format="csc")
    if method == "direct":
        # symmetric positive definite: minimum-degree ordering of A + A^T, no pivoting
        lu = spla.splu(
            a,
            permc_spec="MMD_AT_PLUS_A",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )
        inner = lu.solve
    elif method == "cg":
        d = a.diagonal()
        d = np.where(d > 0, d, 1.0)
        m = spla.LinearOperator(a.shape, matvec=lambda v: v / d, dtype=np.float64)
        a = a.tocsr()

        def inner(b):
            return spla.cg(a, b, rtol=rtol, atol=0.0, M=m, maxiter=10 * n)[0]
    else:
        raise ValueError(f"method must be 'auto', 'direct' or 'cg', got {method!r}")

    def solver(r):
        delta = np.concatenate([[0.0], inner(r[1:])])
        return delta - delta.mean()

    delta = solver(rhs)
    return (delta, solver) if want_solver else delta
