"""Linear solves with the (singular, Laplacian-like) mass Jacobian."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .. import _config

__all__ = ["solve_newton_system"]


def solve_newton_system(jac, rhs, *, method="auto", rtol=1e-6, ndim=2,
                        want_solver=False):
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
    """
    n = jac.shape[0]
    if n == 1:
        return (np.zeros(1), lambda r: np.zeros(1)) if want_solver else np.zeros(1)
    if method == "auto":
        method = "direct" if n <= _config.DIRECT_SOLVE_MAX_N[ndim] else "cg"
    diag = jac.diagonal()
    scale = float(diag.max()) if diag.size and diag.max() > 0 else 1.0
    eps = 1e-10 * scale
    a = jac[1:, 1:].tocsc() + eps * sp.identity(n - 1, format="csc")
    if method == "direct":
        # symmetric positive definite: minimum-degree ordering of A + A^T, no pivoting
        lu = spla.splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                       options={"SymmetricMode": True})
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
