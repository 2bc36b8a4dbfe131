"""Failed OT solves: the energies raise on them, lloyd never moves points with them."""

import dataclasses
import importlib
from pathlib import Path

import numpy as np
import pytest

import rasterquant as rq
from rasterquant import energy as energy_mod
from rasterquant.errors import ConvergenceError, ConvergenceWarning, ResolutionWarning
from rasterquant.sampling import sample_points, tightness_density

# the module (rasterquant.lloyd is the function)
lloyd_mod = importlib.import_module("rasterquant.lloyd")

PORTRAIT = Path(__file__).resolve().parent.parent / "data" / "portrait.png"

ENERGIES = [
    (rq.quantization_energy, "quantization_energy: the OT solve"),
    (rq.barycenter_energy, "barycenter_energy: the OT solve at the points"),
    (rq.critical_residual, "critical_residual: the OT solve"),
]


def _unresolvable():
    """Centre quadrature with 2.5 pixels per cell side cannot reach tol=1e-3."""
    rho = tightness_density(5, 20)
    return rho, sample_points(rho, 25, method="tightness-grid")


def _corner_cluster(rng):
    """A peaked density and 20 points clustered in a corner: Newton needs ~12 steps."""
    y, x = np.mgrid[0:64, 0:64]
    v = 1e-3 + np.exp(-((y - 44.0) ** 2 + (x - 40.0) ** 2) / 60.0)
    return rq.Density.from_array(v), 4.0 + rng.random((20, 2)) * 12.0


def _smooth(shape=(96, 96)):
    return rq.Density.from_function(
        lambda y, x: np.exp(-((y - 30.0) ** 2 + (x - 60.0) ** 2) / 1500.0) + 0.3,
        shape,
    )


def test_convergence_error_is_a_value_error():
    assert issubclass(rq.ConvergenceError, ValueError)
    assert rq.ConvergenceError is ConvergenceError


@pytest.mark.parametrize(("func", "what"), ENERGIES)
def test_energies_raise_on_an_unresolvable_tol(func, what):
    rho, pts = _unresolvable()
    with pytest.raises(ConvergenceError, match=what) as info:
        func(rho, pts, tol=1e-3, quadrature="center")
    exc = info.value
    msg = str(exc)
    assert "\n" not in msg
    assert "ended resolution at max relative mass error" in msg
    assert "> tol=0.001" in msg
    assert "on_failure='warn'" in msg
    assert exc.status == "resolution"
    assert exc.tol == 1e-3
    assert exc.max_error > exc.tol
    assert isinstance(exc.result, rq.OTResult)
    assert not exc.result.converged
    assert exc.n_iter == exc.result.n_iter


def test_on_failure_warn_returns_todays_number():
    rho, pts = _unresolvable()
    with pytest.warns(ResolutionWarning):
        ref = rq.solve_ot(rho, pts, tol=1e-3, quadrature="center")
    assert not ref.converged
    with pytest.warns(ResolutionWarning, match="finer than this raster resolves"):
        f = rq.quantization_energy(
            rho, pts, tol=1e-3, quadrature="center", on_failure="warn"
        )
    assert f == ref.energy


def _capped_solver(monkeypatch, max_iter, only_warm=False):
    """Make the energies' solve_ot stop after ``max_iter`` Newton iterations.

    With ``only_warm``, only warm-started solves (the second one of
    barycenter_energy) are capped.
    """
    real = energy_mod.solve_ot

    def capped(density, points, masses=None, **kwargs):
        if not only_warm or kwargs.get("weights") is not None:
            kwargs["max_iter"] = max_iter
        return real(density, points, masses, **kwargs)

    monkeypatch.setattr(energy_mod, "solve_ot", capped)


@pytest.mark.parametrize(("func", "what"), ENERGIES)
def test_energies_raise_when_newton_runs_out_of_iterations(
    monkeypatch, rng, func, what
):
    density, pts = _corner_cluster(rng)
    _capped_solver(monkeypatch, 1)
    with pytest.raises(ConvergenceError, match=f"{what} ended max_iter") as info:
        func(density, pts)
    assert info.value.n_iter == 1
    assert info.value.max_error > 1.0  # far from the target masses
    # the number is still there for a caller who asks for it
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        value = func(density, pts, on_failure="warn")
    assert np.isfinite(value)


def test_barycenter_energy_raises_when_the_second_solve_fails(monkeypatch, rng):
    density, pts = _corner_cluster(rng)
    _capped_solver(monkeypatch, 0, only_warm=True)
    with pytest.raises(
        ConvergenceError, match="barycenter_energy: the OT solve at the barycenters"
    ):
        rq.barycenter_energy(density, pts)


@pytest.mark.parametrize("func", [f for f, _ in ENERGIES])
@pytest.mark.parametrize("bad", ["ignore", "RAISE", None, True])
def test_on_failure_is_checked(func, bad):
    density = rq.Density.uniform((8, 8))
    with pytest.raises(ValueError, match=r"on_failure must be one of \('raise'"):
        func(density, [[2.0, 2.0], [6.0, 6.0]], on_failure=bad)


def _flaky_solve(monkeypatch, fails):
    """Make lloyd's fractional solves report failure at the points where ``fails``.

    The solve runs; only its status and error are replaced, as a solver that stalled
    there would report them.
    """
    real = lloyd_mod.solve_cells

    def flaky(quad, alpha, psi, tol, max_iter, *args, **kwargs):
        out = real(quad, alpha, psi, tol, max_iter, *args, **kwargs)
        if quad.continuous and fails(quad.points):
            out = dataclasses.replace(out, status="stalled", max_error=0.7)
        return out

    monkeypatch.setattr(lloyd_mod, "solve_cells", flaky)


def test_lloyd_takes_a_shorter_step_after_a_failed_solve(monkeypatch, rng):
    density = _smooth()
    pts = rng.random((20, 2)) * 96
    full = rq.lloyd(density, pts, n_iter=1)  # step 1: pts -> their barycenters
    _flaky_solve(monkeypatch, lambda p: np.array_equal(p, full.points))
    res = rq.lloyd(density, pts, n_iter=1)
    # the move is taken again from pts with half the step
    np.testing.assert_allclose(
        res.points, pts + 0.5 * (full.points - pts), rtol=0, atol=1e-9
    )
    assert full.status == "n_iter" and full.history["retries"] == [0, 0]
    assert res.status == "n_iter" and res.n_iter == 1
    rejected = res.history["rejected"]
    assert {r["attempt"] for r in rejected} >= {"cold", "centre"}
    assert all(r["iteration"] == 1 and r["step"] == 1.0 for r in rejected)
    assert res.history["retries"] == [0, len(rejected)]
    assert res.history["step"][1] == 0.5
    err = np.array(res.history["max_mass_error"])
    assert (err <= 1e-2).all()
    e = res.history["energy"]
    assert e[1] < e[0]


def test_lloyd_stops_with_the_last_accepted_points(monkeypatch, rng):
    density = _smooth()
    pts = rng.random((20, 2)) * 96
    start = pts.copy()
    ok = rq.lloyd(density, pts, n_iter=0)
    _flaky_solve(monkeypatch, lambda p: not np.array_equal(p, start))
    seen = []
    with pytest.warns(ConvergenceWarning, match="lloyd stopped at iteration 1") as rec:
        res = rq.lloyd(density, pts, n_iter=5, callback=seen.append)
    assert rec[0].filename == __file__
    assert "steps down to 0.125" in str(rec[0].message)
    assert res.status == "ot_failed"
    assert not res.converged
    assert res.n_iter == 0
    assert seen == []  # no move was accepted
    np.testing.assert_array_equal(res.points, start)
    np.testing.assert_allclose(res.weights, ok.weights, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.masses, ok.masses, rtol=0, atol=1e-15)
    assert res.energy == ok.energy == res.history["energy"][-1]
    assert len(res.history["energy"]) == 1
    steps = sorted({r["step"] for r in res.history["rejected"]}, reverse=True)
    assert steps == [1.0, 0.5, 0.25, 0.125]


def test_lloyd_stops_at_the_start_when_no_solve_converges(rng):
    # ot_max_iter=0: only the starts themselves are tried, none meets ot_tol
    density, pts = _corner_cluster(rng)
    with pytest.warns(ConvergenceWarning, match="stopped at the starting points"):
        res = rq.lloyd(density, pts, n_iter=5, ot_max_iter=0)
    assert res.status == "ot_failed" and res.n_iter == 0
    np.testing.assert_array_equal(res.points, pts)
    assert np.isnan(res.energy)
    assert res.history["max_mass_error"][0] > 1e-2
    assert {r["attempt"] for r in res.history["rejected"]} == {"cold", "centre"}


def test_lloyd_never_accepts_a_failed_solve_portrait():
    """Issue 15: 300 points drawn from the portrait, ot_tol 0.05.

    The first solve stalls at a relative mass error near 2; old lloyd moved the points
    with its barycenters and reported F_N = 29 at the start, 288 after one step.
    """
    d = rq.Density.from_image(PORTRAIT)
    pts = rq.sample_points(d, 300, method="density", seed=0)
    ot_tol = 0.05
    res = rq.lloyd(d, pts, ot_tol=ot_tol, n_iter=3)
    assert res.status == "n_iter" and res.n_iter == 3
    err = np.array(res.history["max_mass_error"])
    assert (err <= ot_tol).all(), err
    e = np.array(res.history["energy"])
    # DESIGN: non-increasing up to the mass tolerance
    assert (np.diff(e) <= 2 * ot_tol * e[:-1]).all(), e
    assert e[-1] < e[0]
    for r in res.history["rejected"]:
        assert r["max_mass_error"] > ot_tol
