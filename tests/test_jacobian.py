"""Linear solves with the mass Jacobian (rasterquant.ot._jacobian)."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial import Delaunay

from rasterquant import _config
from rasterquant.ot._jacobian import (
    AMGSolver,
    DirectSolver,
    preconditioned_cg,
    solve_newton_system,
)


def _laplacian(edges, vals, n):
    w = sp.coo_matrix((vals, (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    w = w + w.T
    return (sp.diags(np.asarray(w.sum(axis=1)).ravel()) - w).tocsr()


def _cell_graph(rng, n, ndim, offset=0.0):
    """Edges of the Delaunay graph of ``n`` random points (a Voronoi cell graph)."""
    simplices = Delaunay(rng.random((n, ndim)) + offset).simplices
    pairs = [simplices[:, [a, b]] for a in range(ndim + 1) for b in range(a)]
    edges = np.sort(np.concatenate(pairs), axis=1)
    return np.unique(edges, axis=0)


def _random_laplacian(rng, n, ndim):
    """Jacobian-like Laplacian: facet weights spread over three decades (contrast)."""
    edges = _cell_graph(rng, n, ndim)
    return _laplacian(edges, 10.0 ** rng.uniform(-3, 0, len(edges)), n), edges


def _rhs(rng, n):
    b = rng.standard_normal(n)
    return b - b.mean()


def _rel_residual(jac, x, b):
    return np.linalg.norm(jac @ x - b) / np.linalg.norm(b)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("method", ["direct", "cg"])
def test_solution_satisfies_the_system(rng, ndim, method):
    n = 3000
    jac, _ = _random_laplacian(rng, n, ndim)
    b = _rhs(rng, n)
    x, solver = solve_newton_system(jac, b, method=method, want_solver=True, rtol=1e-8)
    assert isinstance(solver, DirectSolver if method == "direct" else AMGSolver)
    # the direct solve is exact up to the grounding shift (1e-10 of the diagonal)
    tol = 1e-8 if method == "cg" else 1e-6
    assert _rel_residual(jac, x, b) <= tol
    assert abs(x.mean()) <= 1e-12 * np.abs(x).max()
    # the solver solves other right-hand sides of the same system
    b2 = _rhs(rng, n)
    assert _rel_residual(jac, solver(b2), b2) <= 1e-6


@pytest.mark.parametrize("method", ["direct", "cg"])
def test_disconnected_graph(rng, method):
    # two groups of cells that no facet links (separated by zero density)
    n1, n2 = 800, 700
    e1, e2 = _cell_graph(rng, n1, 2), _cell_graph(rng, n2, 2) + n1
    edges = np.concatenate([e1, e2])
    n = n1 + n2
    jac = _laplacian(edges, rng.uniform(0.1, 1.0, len(edges)), n)
    # each group's net mass is zero: solvable, and solved
    b = rng.standard_normal(n)
    b[:n1] -= b[:n1].mean()
    b[n1:] -= b[n1:].mean()
    x = solve_newton_system(jac, b, method=method, rtol=1e-8)
    assert np.isfinite(x).all()
    assert _rel_residual(jac, x, b) <= 1e-6
    # net mass between the groups: no solution; the grounding shift gives the same
    # finite answer as the factorisation (no endless CG)
    b = _rhs(rng, n)
    x = solve_newton_system(jac, b, method=method)
    np.testing.assert_array_equal(x, solve_newton_system(jac, b, method="direct"))
    assert np.isfinite(x).all()


@pytest.mark.parametrize("ndim", [2, 3])
def test_hierarchy_reused_for_a_changed_matrix(rng, monkeypatch, ndim):
    n = 3000
    old, edges = _random_laplacian(rng, n, ndim)
    vals = -old[edges[:, 0], edges[:, 1]].A1
    new = _laplacian(edges, vals * rng.uniform(0.7, 1.4, len(vals)), n)
    b = _rhs(rng, n)
    _, solver = solve_newton_system(old, _rhs(rng, n), method="cg", want_solver=True)
    # the old hierarchy preconditions the new system: same solver back, and the
    # new system's solution
    x, s2 = solve_newton_system(
        new, b, method="cg", want_solver=True, precond=solver, precond_rtol=1e-4
    )
    assert s2 is solver
    assert _rel_residual(new, x, b) <= 1e-4
    assert _rel_residual(old, x, b) > 1e-2  # (the old system's would not do)
    # as a preconditioner of a later system (Lloyd's predictor)
    x = preconditioned_cg(new, b, solver, 1e-8, 200)
    assert x is not None and _rel_residual(new, x, b) <= 1e-8
    # too few iterations with the old hierarchy: a new one, from their last iterate
    x, s3 = solve_newton_system(
        new,
        b,
        method="cg",
        want_solver=True,
        precond=solver,
        precond_rtol=1e-8,
        pcg_max_iter=2,
    )
    assert isinstance(s3, AMGSolver) and s3 is not solver
    assert _rel_residual(new, x, b) <= 1e-8
    # a solver of a system of another size is not used
    small, _ = _random_laplacian(rng, 500, ndim)
    _, s4 = solve_newton_system(
        small, _rhs(rng, 500), method="cg", want_solver=True, precond=solver
    )
    assert s4 is not solver


def test_amg_preconditioner_is_symmetric_positive(rng):
    """One V-cycle is a fixed SPD operator on mean-zero vectors (CG's requirement)."""
    jac, _ = _random_laplacian(rng, 2000, 2)
    solver = AMGSolver(jac)
    u, v = _rhs(rng, 2000), _rhs(rng, 2000)
    pu, pv = solver.precondition(u), solver.precondition(v)
    np.testing.assert_allclose(u @ pv, pv @ u, rtol=0)
    np.testing.assert_allclose(u @ pv, v @ pu, rtol=1e-10)
    assert u @ pu > 0 and v @ pv > 0
    np.testing.assert_array_equal(solver.precondition(u), pu)  # no hidden state


@pytest.mark.parametrize("method", ["direct", "cg"])
def test_deterministic(rng, method):
    jac, _ = _random_laplacian(rng, 3000, 3)
    b = _rhs(rng, 3000)
    # numpy's legacy global generator, the one pyamg's setup draws from: the
    # result does not depend on its state, and the solve leaves it as it was
    x1 = solve_newton_system(jac, b, method=method)
    np.random.random()  # noqa: NPY002
    state = np.random.get_state()  # noqa: NPY002
    draw = np.random.random()  # noqa: NPY002
    np.random.set_state(state)  # noqa: NPY002
    x2 = solve_newton_system(jac, b, method=method)
    np.testing.assert_array_equal(x1, x2)
    assert np.random.random() == draw  # noqa: NPY002


def test_auto_chooses_by_size(rng):
    for ndim in (2, 3):
        small = _config.DIRECT_SOLVE_MAX_N[ndim]
        n = min(small + 1, 4000)
        jac, _ = _random_laplacian(rng, n, ndim)
        _, solver = solve_newton_system(jac, _rhs(rng, n), ndim=ndim, want_solver=True)
        assert isinstance(solver, DirectSolver if n <= small else AMGSolver)


def test_bad_method(rng):
    jac, _ = _random_laplacian(rng, 50, 2)
    with pytest.raises(ValueError, match="method must be 'auto', 'direct' or 'cg'"):
        solve_newton_system(jac, _rhs(rng, 50), method="lu")
