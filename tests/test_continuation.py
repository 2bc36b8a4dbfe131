"""The continuation paths of the Newton solve (rasterquant/ot/_continuation.py)."""

from types import SimpleNamespace

import numpy as np
import pytest

import rasterquant as rq
from rasterquant.ot import _continuation as cont


def _result(ok, weights, masses):
    status = "converged" if ok else "stalled"
    return SimpleNamespace(status=status, weights=weights, masses=masses)


class Toy:
    """A 'solver' whose masses are its weights: it converges only from close by."""

    def __init__(self, reach):
        self.reach = reach
        self.calls = []

    def __call__(self, density, alpha, psi, tol, max_iter):
        self.calls.append((density, alpha.copy(), tol))
        ok = np.max(np.abs(alpha - psi) / alpha) <= self.reach
        return _result(ok, alpha.copy() if ok else psi.copy(), psi.copy())


def test_mass_path_reaches_the_targets_by_steps_the_solver_can_take():
    alpha = np.full(4, 0.25)
    m0 = np.array([0.7, 0.1, 0.1, 0.1])
    toy = Toy(reach=0.5)
    out, stages, rejected = cont.mass_path(toy, None, alpha, m0, m0, 1e-6, 50)
    assert out.status == "converged"
    assert np.allclose(out.weights, alpha)
    assert rejected >= 1 and stages >= 2  # the first quarter step was too long
    for _, target, _ in toy.calls:
        assert np.isclose(target.sum(), 1.0)
    # intermediate stages are solved loosely, the last one to tol
    for _, target, tol in toy.calls:
        final = np.array_equal(target, alpha)
        assert tol == (1e-6 if final else cont.MASS_STAGE_TOL)


def test_mass_path_reports_failure_when_no_step_is_small_enough():
    alpha = np.full(4, 0.25)
    m0 = np.array([0.7, 0.1, 0.1, 0.1])
    out, stages, rejected = cont.mass_path(
        Toy(reach=0.0), None, alpha, m0, m0, 1e-6, 50
    )
    assert out.status != "converged"
    assert stages == 0 and rejected >= 8  # 1/4 halved down to MASS_MIN_STEP


def test_width_path_goes_from_flat_to_sharp_and_ends_on_the_density():
    img = np.ones((64, 64))
    img[:, :32] = 1e3
    density = rq.Density.from_array(img)
    seen = []

    def solve(d, alpha, psi, tol, max_iter):
        seen.append(None if d is None else float(d.values.max() / d.values.min()))
        return _result(True, psi + 1.0, alpha)

    alpha = np.full(3, 1 / 3)
    out, info = cont.continuation(solve, density, alpha, alpha, alpha, 1e-6, 20)
    assert out.status == "converged" and info["path"] == "width"
    assert seen[-1] is None, "the last stage is on the density itself"
    peaks = seen[:-1]
    assert len(peaks) >= 2 and peaks == sorted(peaks), "widths must shrink"
    assert peaks[0] < 0.05 * 1e3, "the first width must flatten the contrast"
    assert info["stages"] == len(seen) and info["rejected"] == 0


def test_uniform_density_takes_the_mass_path():
    density = rq.Density.from_array(np.ones((16, 16)))
    alpha = np.full(2, 0.5)
    out, info = cont.continuation(
        Toy(reach=0.3),
        density,
        alpha,
        np.array([0.8, 0.2]),
        np.array([0.8, 0.2]),
        1e-6,
        20,
    )
    assert info["path"] == "mass" and out.status == "converged"


@pytest.mark.parametrize("periodic", [False, True])
def test_blur_keeps_the_grid_and_the_mass(periodic):
    rng = np.random.default_rng(0)
    density = rq.Density.from_array(rng.random((24, 20)), periodic=periodic)
    wide = cont.blurred(density, 3.0)
    assert wide.grid == density.grid
    assert np.isclose(wide.values.sum(), 1.0)
    assert wide.values.std() < density.values.std()
    if periodic:  # a bump on the edge spreads to the other side
        img = np.full((24, 20), 1e-3)
        img[0, 10] = 1.0
        spread = cont.blurred(rq.Density.from_array(img, periodic=True), 2.0)
        assert spread.values[-1, 10] > spread.values[12, 10]


def test_stage_budget_ends_a_path_that_cannot_converge():
    img = np.ones((32, 32))
    img[:, :16] = 50.0
    density = rq.Density.from_array(img)
    toy = Toy(reach=0.0)  # never converges
    alpha = np.full(3, 1 / 3)
    start = np.array([0.5, 0.3, 0.2])
    out, info = cont.continuation(toy, density, alpha, start, start, 1e-6, 20)
    assert out.status != "converged"
    assert info["exhausted"] and len(toy.calls) == cont.MAX_STAGES
    assert info["stages"] == 0 and info["rejected"] == cont.MAX_STAGES
