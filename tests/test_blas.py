"""BLAS runs on one thread inside the solver (rasterquant._blas)."""

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import rasterquant as rq
from rasterquant._blas import one_blas_thread
from rasterquant.ot import newton


def _blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_one_blas_thread_limits_and_restores():
    with threadpool_limits(2, user_api="blas"):
        assert _blas_threads() and all(n == 2 for n in _blas_threads())
        with one_blas_thread():
            assert all(n == 1 for n in _blas_threads())
            with one_blas_thread():  # nested: still one, and no restore inside
                assert all(n == 1 for n in _blas_threads())
            assert all(n == 1 for n in _blas_threads())
        assert all(n == 2 for n in _blas_threads())


def test_newton_systems_are_solved_on_one_blas_thread(monkeypatch):
    seen = []
    inner = newton.solve_newton_system

    def spy(*args, **kwargs):
        seen.append(_blas_threads())
        return inner(*args, **kwargs)

    monkeypatch.setattr(newton, "solve_newton_system", spy)
    rng = np.random.default_rng(0)
    d = rq.Density.from_array(rng.random((48, 40)) + 0.5)
    pts = rng.random((60, 2)) * [48, 40]
    with threadpool_limits(2, user_api="blas"):
        res = rq.solve_ot(d, pts, tol=1e-6)
        after = _blas_threads()
    assert res.converged
    assert seen and all(all(n == 1 for n in s) for s in seen)
    assert all(n == 2 for n in after)
