"""lloyd(): monotone energies, relaxation, stopping, callback, progress, periodic."""

import numpy as np
import pytest

import rasterquant as rq


def _smooth(shape=(128, 128)):
    return rq.Density.from_function(
        lambda y, x: np.exp(-((y - 40.0) ** 2 + (x - 80.0) ** 2) / 2000.0) + 0.3,
        shape,
    )


@pytest.mark.parametrize("step", [1.0, 0.5])
def test_voronoi_energy_monotone(rng, step):
    density = _smooth()
    pts = rng.random((40, 2)) * 128
    res = rq.lloyd(density, pts, method="voronoi", n_iter=15, step=step)
    e = np.array(res.history["energy"])
    assert len(e) == res.n_iter + 1 == 16
    assert (np.diff(e) <= 1e-12 * e[:-1]).all(), np.diff(e)
    assert e[-1] < 0.7 * e[0]
    np.testing.assert_allclose(res.energy, e[-1], rtol=0)
    np.testing.assert_array_equal(res.weights, np.zeros(40))
    np.testing.assert_allclose(res.masses.sum(), 1.0, rtol=1e-12)
    # the final energy is G_N of the final points
    np.testing.assert_allclose(
        rq.voronoi_energy(density, res.points), res.energy, rtol=1e-12
    )
    assert np.isnan(res.history["max_mass_error"]).all()


def test_voronoi_energy_monotone_3d(rng):
    density = rq.Density.uniform((24, 24, 24))
    pts = rng.random((30, 3)) * 24
    res = rq.lloyd(density, pts, method="voronoi", n_iter=8)
    e = np.array(res.history["energy"])
    assert (np.diff(e) <= 1e-12 * e[:-1]).all(), np.diff(e)


@pytest.mark.parametrize("step", [1.0, 0.5])
def test_uniform_energy_nonincreasing_up_to_mass_tol(rng, step):
    density = _smooth((160, 160))
    n = 30
    pts = rng.random((n, 2)) * 160
    ot_tol = 1e-2
    res = rq.lloyd(density, pts, method="uniform", n_iter=10, step=step, ot_tol=ot_tol)
    e = np.array(res.history["energy"])
    err = np.array(res.history["max_mass_error"])
    assert (err <= ot_tol).all()
    assert res.status == "n_iter"
    assert res.history["rejected"] == []
    assert res.history["retries"] == [0] * (res.n_iter + 1)
    assert res.history["step"][1:] == [step] * res.n_iter
    # F_N moves by at most (mass error) x (mass-weighted squared cell size) from the
    # mass mismatch: allow 2 * ot_tol relative
    assert (np.diff(e) <= 2 * ot_tol * e[:-1]).all(), np.diff(e) / e[:-1]
    assert e[-1] < e[0]
    assert np.abs(res.weights.mean()) <= 1e-9 * max(1.0, np.abs(res.weights).max())
    np.testing.assert_allclose(res.masses, 1.0 / n, rtol=ot_tol)


def test_relaxed_step_moves_part_way(rng):
    density = _smooth()
    pts = rng.random((20, 2)) * 128
    full = rq.lloyd(density, pts, method="voronoi", n_iter=1, step=1.0)
    half = rq.lloyd(density, pts, method="voronoi", n_iter=1, step=0.25)
    np.testing.assert_allclose(
        half.points, pts + 0.25 * (full.points - pts), rtol=0, atol=1e-9
    )
    cells = rq.assign_cells(density, pts)
    np.testing.assert_allclose(full.points, cells.barycenters, rtol=0, atol=1e-9)


def test_tol_on_displacement_stops_early(rng):
    density = rq.Density.uniform((96, 96))
    pts = rng.random((16, 2)) * 96
    res = rq.lloyd(density, pts, method="voronoi", n_iter=500, tol=0.05)
    assert res.converged and res.status == "converged"
    assert res.n_iter < 500
    assert res.history["displacement"][-1] <= 0.05
    assert all(d > 0.05 for d in res.history["displacement"][:-1])
    no_tol = rq.lloyd(density, pts, method="voronoi", n_iter=3)
    assert not no_tol.converged and no_tol.n_iter == 3
    assert no_tol.status == "n_iter"


def test_callback_called(rng):
    density = _smooth()
    pts = rng.random((12, 2)) * 128
    seen = []
    res = rq.lloyd(density, pts, method="uniform", n_iter=4, callback=seen.append)
    assert [s["iteration"] for s in seen] == [1, 2, 3, 4]
    assert res.n_iter == 4
    np.testing.assert_array_equal(seen[-1]["points"], res.points)
    assert [s["energy"] for s in seen] == res.history["energy"][:-1]


def test_progress_bar_to_stderr(rng, capsys):
    density = rq.Density.uniform((64, 64))
    pts = rng.random((8, 2)) * 64
    res = rq.lloyd(density, pts, method="voronoi", n_iter=3, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "lloyd" in err
    assert res.n_iter == 3


@pytest.mark.parametrize("method", ["voronoi", "uniform"])
def test_periodic_keeps_points_inside(rng, method):
    density = rq.Density.uniform(
        (80, 60), extent=[(-1.0, 1.0), (2.0, 3.5)], periodic=True
    )
    lo = np.array([-1.0, 2.0])
    size = np.array([2.0, 1.5])
    pts = lo + rng.random((15, 2)) * size
    pts[:3] = lo + [[0.0, 0.01], [1.999, 1.49], [0.01, 0.0]] * np.array([1.0, 1.0])
    res = rq.lloyd(density, pts, method=method, n_iter=8)
    assert (res.points >= lo).all() and (res.points < lo + size).all()
    e = np.array(res.history["energy"])
    assert e[-1] < e[0]
    if method == "voronoi":
        assert (np.diff(e) <= 1e-12 * e[:-1]).all(), np.diff(e)


def test_bad_arguments(rng):
    density = rq.Density.uniform((16, 16))
    pts = rng.random((4, 2)) * 16
    with pytest.raises(ValueError, match="method"):
        rq.lloyd(density, pts, method="kmeans")
    with pytest.raises(ValueError, match="step"):
        rq.lloyd(density, pts, step=1.5)
    with pytest.raises(ValueError, match="step"):
        rq.lloyd(density, pts, step=0.0)
    with pytest.raises(ValueError, match="tol"):
        rq.lloyd(density, pts, tol=-1.0)
    with pytest.raises(ValueError, match="n_iter"):
        rq.lloyd(density, pts, n_iter=-1)
    with pytest.raises(ValueError, match="ot_max_iter must be >= 0, got -1"):
        rq.lloyd(density, pts, ot_max_iter=-1)
    with pytest.raises(TypeError, match="ot_max_iter must be an integer"):
        rq.lloyd(density, pts, ot_max_iter=2.5)


@pytest.mark.parametrize("periodic", [False, True])
def test_weights_follow_small_moves_to_first_order(periodic):
    from rasterquant.assign.quadrature import make_quadrature
    from rasterquant.lloyd import _follow_moves
    from rasterquant.ot.newton import NewtonState, solve_cells

    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:96, 0:128]
    v = 1.0 + np.exp(-((y - 40.0) ** 2 + (x - 70.0) ** 2) / 400.0)
    dens = rq.Density.from_array(v, periodic=periodic)
    pts = rq.sample_points(dens, 150, method="stratified", seed=1)
    alpha = np.full(150, 1 / 150)
    quad = make_quadrature(dens, pts, "fractional")
    state = NewtonState()
    # as lloyd solves: with the moments, so that the last pass sweeps the pixels and
    # keeps the facet pieces the predictor reads (polygon passes have none)
    out = solve_cells(
        quad,
        alpha,
        np.zeros(150),
        1e-10,
        50,
        state=state,
        multiscale=False,
        want_moments=True,
    )
    psi = out.weights
    moves = rng.normal(scale=0.4, size=pts.shape)
    new = dens.grid.wrap(pts + moves) if periodic else pts + moves
    predicted = _follow_moves(quad, state, psi, moves)
    quad.set_points(new)
    _, m_old = quad.labels_masses(psi)
    _, m_new = quad.labels_masses(predicted)
    err_old = np.abs(m_old - alpha).max() / alpha[0]
    err_new = np.abs(m_new - alpha).max() / alpha[0]
    assert err_old > 0.02  # the moves matter
    # first order (facets at pixel centres): the error left is a fraction of it
    assert err_new < 0.4 * err_old, (err_old, err_new)


def test_long_moves_restart_the_weights_cold():
    from rasterquant.assign.quadrature import make_quadrature
    from rasterquant.lloyd import _follow_moves
    from rasterquant.ot.newton import NewtonState

    dens = rq.Density.uniform((64, 64))
    pts = rq.sample_points(dens, 40, method="stratified", seed=2)
    quad = make_quadrature(dens, pts, "fractional")
    psi = np.zeros(40)
    short = np.full((40, 2), 0.5)
    assert _follow_moves(quad, NewtonState(), psi, short) is not None
    far = np.zeros((40, 2))
    far[3] = [9.0, 0.0]  # one site moves more than BLEND_MOVE_PIXELS
    assert _follow_moves(quad, NewtonState(), psi, far) is None
