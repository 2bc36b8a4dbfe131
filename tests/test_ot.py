"""solve_ot: convergence, repairs, warm starts, resolution limits, warnings."""

import itertools
import warnings
from pathlib import Path

import numba
import numpy as np
import pytest

import rasterquant as rq

DATA = Path(__file__).resolve().parent.parent / "data"


def _max_error(res):
    """Max relative mass error, recomputed from the result's own masses and target."""
    return float(np.max(np.abs(res.masses - res.target) / res.target))


def _lognormal(rng, n):
    a = rng.lognormal(sigma=0.5, size=n)
    return a / a.sum()


def _check_converged(res, tol, n):
    assert res.converged, (res.status, res.max_error)
    assert res.status == "converged"
    err = _max_error(res)
    assert err <= tol
    np.testing.assert_allclose(res.max_error, err, rtol=1e-9)
    np.testing.assert_allclose(
        res.weights.mean(),
        0.0,
        rtol=0,
        atol=1e-12 * max(1.0, np.abs(res.weights).max()),
    )
    assert res.weights.shape == (n,)
    np.testing.assert_allclose(res.masses.sum(), 1.0, rtol=1e-12)
    # the solver's last pass and the moment pass may integrate differently (polygon
    # cells or pixel pieces): both exact, up to rounding that grows with the weights
    # (|psi| of thousands of squared pixels on white backgrounds: ~1e-12)
    np.testing.assert_allclose(res.masses, res.cells.masses, rtol=1e-11)
    # history: the start plus one entry per iteration
    for key in ("max_mass_error", "step", "time"):
        assert len(res.history[key]) == res.n_iter + 1
    np.testing.assert_allclose(res.history["max_mass_error"][-1], err, rtol=1e-9)
    assert all(0 < s <= 1 for s in res.history["step"][1:])


def _resolvable(density, alpha_min, tol):
    """The heaviest pixel weighs at most tol of the smallest target mass."""
    return density.values.max() / alpha_min <= tol


def _smooth_2d(shape=(256, 256)):
    y, x = np.meshgrid(
        np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij"
    )
    v = np.exp(-((y - 0.3) ** 2 + (x - 0.6) ** 2) / 0.1) + 1.0
    return rq.Density.from_array(v)


@pytest.mark.parametrize("n", [20, 50])
@pytest.mark.parametrize("target", ["uniform", "lognormal"])
@pytest.mark.parametrize("kind", ["uniform", "smooth"])
def test_fractional_meets_1e_6_2d(rng, n, target, kind):
    density = rq.Density.uniform((256, 256)) if kind == "uniform" else _smooth_2d()
    pts = rng.random((n, 2)) * 256
    alpha = None if target == "uniform" else _lognormal(rng, n)
    res = rq.solve_ot(density, pts, alpha, tol=1e-6, quadrature="fractional")
    _check_converged(res, 1e-6, n)
    cells = rq.assign_cells(density, pts, res.weights, quadrature="fractional")
    np.testing.assert_allclose(cells.masses, res.masses, rtol=1e-12)


@pytest.mark.parametrize("target", ["uniform", "lognormal"])
@pytest.mark.parametrize("kind", ["uniform", "blobs"])
def test_fractional_meets_1e_6_3d(rng, target, kind):
    density = (
        rq.Density.uniform((40, 40, 40))
        if kind == "uniform"
        else rq.read_density(DATA / "blobs3d.npy")
    )
    n = 8 if (kind, target) == ("blobs", "lognormal") else 20
    pts = rng.random((n, 3)) * np.array(density.shape)
    alpha = None if target == "uniform" else _lognormal(rng, n)
    res = rq.solve_ot(density, pts, alpha, tol=1e-6, quadrature="fractional")
    _check_converged(res, 1e-6, n)


@pytest.mark.parametrize("seed", range(4))
def test_fractional_meets_1e_6_from_points_in_zero_density(seed):
    density = _half_density()
    rng = np.random.default_rng(seed)
    pts = rng.random((20, 2)) * 128
    pts[:6, 1] = rng.random(6) * 60
    res = rq.solve_ot(density, pts, tol=1e-6, quadrature="fractional")
    _check_converged(res, 1e-6, 20)


@pytest.mark.parametrize("n", [20, 50])
@pytest.mark.parametrize("target", ["uniform", "lognormal"])
@pytest.mark.parametrize("kind", ["uniform", "smooth"])
def test_converges_2d(rng, n, target, kind):
    density = rq.Density.uniform((256, 256)) if kind == "uniform" else _smooth_2d()
    pts = rng.random((n, 2)) * 256
    alpha = None if target == "uniform" else _lognormal(rng, n)
    res = rq.solve_ot(density, pts, alpha, tol=1e-2)
    # the smallest cell holds >= 1/tol of the heaviest pixels: 1e-2 is resolvable
    assert _resolvable(density, res.target.min(), 1e-2)
    _check_converged(res, 1e-2, n)
    # the achieved cells are the power cells of the returned weights
    cells = rq.assign_cells(density, pts, res.weights)
    np.testing.assert_array_equal(cells.labels, res.cells.labels)
    np.testing.assert_allclose(cells.masses, res.masses, rtol=1e-12)


@pytest.mark.parametrize("target", ["uniform", "lognormal"])
@pytest.mark.parametrize("kind", ["uniform", "blobs"])
def test_converges_3d(rng, target, kind):
    density = (
        rq.Density.uniform((40, 40, 40))
        if kind == "uniform"
        else rq.read_density(DATA / "blobs3d.npy")
    )
    # blobs3d peaks at ~13x its mean: fewer cells keep the lognormal case resolvable
    n = 8 if (kind, target) == ("blobs", "lognormal") else 20
    pts = rng.random((n, 3)) * np.array(density.shape)
    alpha = None if target == "uniform" else _lognormal(rng, n)
    res = rq.solve_ot(density, pts, alpha, tol=1e-2)
    assert _resolvable(density, res.target.min(), 1e-2)
    _check_converged(res, 1e-2, n)


def test_converges_periodic_anisotropic(rng):
    density = rq.Density.uniform(
        (200, 150), extent=[(0, 2.0), (-1.0, 2.0)], periodic=True
    )
    pts = np.column_stack([rng.random(25) * 2.0, -1.0 + rng.random(25) * 3.0])
    res = rq.solve_ot(density, pts, _lognormal(rng, 25), tol=1e-2)
    _check_converged(res, 1e-2, 25)


def _half_density(shape=(128, 128)):
    v = np.ones(shape)
    v[:, : shape[1] // 2] = 0.0
    return rq.Density.from_array(v)


@pytest.mark.parametrize("seed", range(8))
def test_converges_from_points_in_zero_density(seed):
    """Points in the empty left half: the start is repaired, then Newton converges."""
    density = _half_density()
    rng = np.random.default_rng(seed)
    pts = rng.random((20, 2)) * 128
    pts[:6, 1] = rng.random(6) * 60  # six points in the zero-density half
    # from zero weights (no start levels), the empty cells are repaired first
    res = rq.solve_ot(density, pts, tol=1e-2, multiscale=False)
    assert res.n_repairs > 0
    _check_converged(res, 1e-2, 20)
    assert (res.masses > 0).all()
    # with the start levels, which see the zero half at a floor
    res = rq.solve_ot(density, pts, tol=1e-2)
    assert res.coarse_levels >= 1
    _check_converged(res, 1e-2, 20)


@pytest.mark.parametrize("seed", [4, 7])
def test_converges_on_portrait_from_uniform_points(seed):
    """portrait.png is 63 % white (zero density); 30 random points, ~800 px per cell."""
    density = rq.Density.from_image(DATA / "portrait.png")
    pts = np.random.default_rng(seed).random((30, 2)) * 256
    res = rq.solve_ot(density, pts, tol=1e-2)
    _check_converged(res, 1e-2, 30)


def test_warm_start_takes_fewer_iterations(rng):
    density = _smooth_2d()
    pts = rng.random((40, 2)) * 256
    alpha = _lognormal(rng, 40)
    # multiscale=False: the coarse-to-fine start would already be a (better) warm start
    cold = rq.solve_ot(density, pts, alpha, tol=1e-2, multiscale=False)
    assert cold.n_iter >= 2
    moved = np.clip(pts + rng.normal(scale=0.5, size=pts.shape), 0, 255.9)
    warm = rq.solve_ot(density, moved, alpha, tol=1e-2, weights=cold.weights)
    again = rq.solve_ot(density, moved, alpha, tol=1e-2, multiscale=False)
    _check_converged(warm, 1e-2, 40)
    assert warm.n_iter < again.n_iter
    same = rq.solve_ot(density, pts, alpha, tol=1e-2, weights=cold.weights + 17.0)
    assert same.n_iter == 0 and same.converged


def test_callback_called_each_iteration(rng):
    density = rq.Density.uniform((128, 128))
    pts = rng.random((15, 2)) * 128
    seen = []
    res = rq.solve_ot(density, pts, tol=1e-2, callback=seen.append)
    assert [s["iteration"] for s in seen] == list(range(1, res.n_iter + 1))
    assert res.n_iter >= 1


def test_tol_finer_than_raster_warns_resolution(rng):
    density = rq.Density.uniform((50, 50))
    pts = rng.random((50, 2)) * 50  # 50 pixels per cell
    with pytest.warns(rq.ResolutionWarning, match="pixels"):
        res = rq.solve_ot(density, pts, tol=1e-4, quadrature="center")
    assert not res.converged
    assert res.status == "resolution"
    assert _max_error(res) > 1e-4
    np.testing.assert_allclose(res.max_error, _max_error(res), rtol=1e-12)
    assert len(res.history["max_mass_error"]) == res.n_iter + 1
    # still a sensible answer: about one boundary pixel per cell
    assert _max_error(res) < 0.2


@pytest.mark.parametrize("tol", [1e-4, 1e-9])
def test_fractional_reaches_tol_finer_than_pixels(rng, tol):
    """The same 50 px/cell problem: fractional masses are continuous, tol is met."""
    density = rq.Density.uniform((50, 50))
    pts = rng.random((50, 2)) * 50
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = rq.solve_ot(density, pts, tol=tol, quadrature="fractional")
    _check_converged(res, tol, 50)


@pytest.mark.parametrize("kind", ["uniform", "smooth"])
def test_fractional_converges_quadratically(rng, kind):
    density = rq.Density.uniform((256, 256)) if kind == "uniform" else _smooth_2d()
    pts = rng.random((50, 2)) * 256
    res = rq.solve_ot(
        density,
        pts,
        _lognormal(rng, 50),
        tol=1e-10,
        quadrature="fractional",
        multiscale=False,
    )
    _check_converged(res, 1e-10, 50)
    err = np.array(res.history["max_mass_error"])
    steps = np.array(res.history["step"])
    # once full steps are taken the error is squared (up to a constant) each step
    full = np.flatnonzero((steps == 1.0) & (err < 1e-2))
    pairs = [(err[i - 1], err[i]) for i in full if i >= 1 and err[i - 1] < 1e-2]
    assert pairs
    for before, after in pairs:
        assert after <= max(100 * before**2, 1e-12), (before, after)


@pytest.mark.parametrize("max_iter", [0, 1])
def test_max_iter_warns_convergence(rng, max_iter):
    density = rq.Density.uniform((128, 128))
    pts = rng.random((30, 2)) * 128
    with pytest.warns(rq.ConvergenceWarning):
        res = rq.solve_ot(density, pts, tol=1e-3, max_iter=max_iter)
    assert not res.converged
    assert res.n_iter <= max_iter
    assert _max_error(res) > 1e-3
    assert len(res.history["step"]) == res.n_iter + 1


def test_masses_must_sum_to_one(rng):
    density = rq.Density.uniform((64, 64))
    pts = rng.random((4, 2)) * 64
    bad = [0.1, 0.2, 0.3, 0.3]
    with pytest.raises(ValueError, match="sum to"):
        rq.solve_ot(density, pts, bad)
    res = rq.solve_ot(density, pts, bad, normalize=True, tol=1e-2)
    np.testing.assert_allclose(res.target, np.array(bad) / 0.9, rtol=1e-14)
    _check_converged(res, 1e-2, 4)
    with pytest.raises(ValueError, match="masses"):
        rq.solve_ot(density, pts, [0.5, 0.5, 0.0, 0.0])
    with pytest.raises(ValueError, match="masses"):
        rq.solve_ot(density, pts, [0.5, 0.5])


def test_bad_arguments(rng):
    density = rq.Density.uniform((16, 16))
    pts = rng.random((4, 2)) * 16
    with pytest.raises(ValueError, match="tol"):
        rq.solve_ot(density, pts, tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        rq.solve_ot(density, pts, max_iter=-1)
    with pytest.raises(ValueError, match="positive pixels"):
        rq.solve_ot(rq.Density.uniform((4, 4)), rng.random((17, 2)) * 4)


def test_identical_for_1_and_2_threads(rng):
    density = _smooth_2d((160, 192))
    pts = rng.random((40, 2)) * np.array([160, 192])
    alpha = _lognormal(rng, 40)
    prev = numba.get_num_threads()
    out = []
    try:
        for k in (1, 2):
            numba.set_num_threads(min(k, numba.config.NUMBA_NUM_THREADS))
            out.append(rq.solve_ot(density, pts, alpha, tol=1e-2))
    finally:
        numba.set_num_threads(prev)
    a, b = out
    assert a.n_iter == b.n_iter
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.masses, b.masses)
    np.testing.assert_array_equal(a.cells.labels, b.cells.labels)
    assert a.history["max_mass_error"] == b.history["max_mass_error"]


def test_no_warning_when_converged(rng):
    density = rq.Density.uniform((128, 128))
    pts = rng.random((10, 2)) * 128
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = rq.solve_ot(density, pts, tol=1e-2)
    assert res.converged


def test_fractional_koch_curve_points_converge():
    """Thin cells of points along a curve (issue 7): Newton converges to 1e-3."""
    density = rq.Density.uniform((1024, 1024))
    pts = rq.sample_points(density, 1025, method="koch", seed=0)
    res = rq.solve_ot(density, pts, tol=1e-3, quadrature="fractional")
    err = np.max(np.abs(res.masses - res.target) / res.target)
    assert res.converged and err <= 1e-3


def test_fractional_reaches_1e8_quadratically():
    """N = 10,000 on 512^2: tol 1e-8, the error at least squares on the last step."""
    density = rq.Density.uniform((512, 512))
    pts = rq.sample_points(density, 10000, seed=1)
    res = rq.solve_ot(density, pts, tol=1e-8, quadrature="fractional")
    err = np.max(np.abs(res.masses - res.target) / res.target)
    assert res.converged and err <= 1e-8
    hist = res.history["max_mass_error"]
    assert len(hist) >= 2
    assert hist[-1] <= 10 * hist[-2] ** 2


def test_component_projection_of_separated_cell_groups():
    import scipy.sparse as sp

    from rasterquant.ot.newton import _component_projection, _groups

    # two groups of cells with no positive-density face between them
    block = np.array([[2.0, -1.0, -1.0], [-1.0, 2.0, -1.0], [-1.0, -1.0, 2.0]])
    jac0 = sp.csr_matrix(sp.block_diag([block, block]))
    alpha = np.full(6, 1 / 6)
    # each group's total is off by 0.1 % of its target: within tol / 2
    m = alpha * np.array([1.02, 0.99, 0.992, 1.01, 0.995, 0.994])
    groups = _groups(jac0)
    assert groups[0] == 2
    np.testing.assert_array_equal(groups[1], [0, 0, 0, 1, 1, 1])
    proj = _component_projection(groups, alpha, m, tol=0.01)
    assert proj is not None
    r = proj(alpha - m)
    np.testing.assert_allclose([r[:3].sum(), r[3:].sum()], 0.0, atol=1e-15)
    # the projection removes the group totals and nothing else
    np.testing.assert_allclose(proj(r), r, atol=1e-15)
    np.testing.assert_allclose(
        (alpha - m) - r,
        alpha
        * np.repeat([(alpha - m)[:3].sum() / 0.5, (alpha - m)[3:].sum() / 0.5], 3),
        atol=1e-15,
    )
    # totals off by more than tol / 2: no projection, the groups must be shifted
    assert _component_projection(groups, alpha, m, tol=0.001) is None
    # one group: nothing to do
    assert _groups(sp.csr_matrix(block)) is None


def test_floor_links_join_groups_only():
    import scipy.sparse as sp

    from rasterquant.ot.newton import _cross_links

    # a Laplacian of weak links on 4 cells; cells 0, 1 form one group, 2, 3 another
    w = np.array([[0, 1, 2, 0], [1, 0, 3, 4], [2, 3, 0, 5], [0, 4, 5, 0]], float)
    links = sp.csr_matrix(np.diag(w.sum(axis=1)) - w)
    out = _cross_links(links, np.array([0, 0, 1, 1])).toarray()
    # the links inside a group (0-1 and 2-3) are gone, the others are kept
    cross = w * np.array([[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_array_equal(out, np.diag(cross.sum(axis=1)) - cross)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_separated_dark_regions_converge(seed):
    # two dark bands split by white; the bands' masses differ from the point counts
    # by 0.1 %, so the cells form two groups that Newton balances separately
    v = np.zeros((96, 96))
    v[:, :40] = 1.002
    v[:, 56:] = 1.0
    rng = np.random.default_rng(seed)
    pts = np.concatenate(
        [rng.random((60, 2)) * [96, 40], rng.random((60, 2)) * [96, 40] + [0, 56]]
    )
    res = rq.solve_ot(v, pts, tol=1e-2, multiscale=False)
    _check_converged(res, 1e-2, 120)


@pytest.mark.parametrize(("gap", "n", "seed"), [(8, 800, 0), (16, 400, 0), (4, 800, 1)])
def test_zero_density_newton_converges_quadratically(gap, n, seed):
    # a dark disc in a dark frame, with a white ring between them: the cells of one
    # side must reach across the ring. Floor links that stayed at full strength once
    # the cells are linked by positive density bent Newton's direction: the
    # convergence was then only linear (each error about 1/200 of the one before)
    yy, xx = np.mgrid[:96, :96]
    r2 = (yy - 48) ** 2 + (xx - 48) ** 2
    v = ((r2 < 20**2) | (r2 > (20 + gap) ** 2)).astype(float)
    dens = rq.Density.from_array(v)
    res = rq.solve_ot(dens, rq.sample_points(dens, n, seed=seed), tol=1e-10)
    _check_converged(res, 1e-10, n)
    hist = res.history["max_mass_error"]
    pairs = [(a, b) for a, b in itertools.pairwise(hist) if 1e-8 <= a <= 1e-2]
    assert pairs
    for a, b in pairs:
        # quadratic down to the rounding floor of the masses (sums of pixel pieces or
        # of polygon edges: about 1e-13 to 1e-12 relative); linear convergence at
        # 1/200 would leave b >= 5e-11 here
        assert b <= 100 * a * a + 2e-12, hist


@pytest.mark.parametrize(
    ("size", "n", "seed"), [(256, 2400, 0), (384, 2500, 2), (384, 3500, 2)]
)
def test_cold_solve_on_a_white_background_converges(size, n, seed):
    # the portrait with its white background at zero density (stipple's default),
    # points drawn from it: zero weights left Newton stalled at a max error of 0.7
    # to 4.9 on these three; the start levels now see the zero pixels at a floor
    from PIL import Image, ImageFilter

    img = Image.open(DATA / "portrait.png").convert("L")
    img = img.resize((size, size), Image.BICUBIC).filter(ImageFilter.GaussianBlur(1))
    dens = rq.Density.from_luminance(np.asarray(img, dtype=float) / 255.0)
    assert (dens.values == 0).mean() > 0.5
    res = rq.solve_ot(dens, rq.sample_points(dens, n, seed=seed), tol=1e-3)
    _check_converged(res, 1e-3, n)
    assert res.coarse_levels >= 1


def test_cold_solve_retries_from_the_plain_start():
    # here the start that sees the white pixels at a floor leads Newton to stall
    # (max error 0.72); the plain coarse-to-fine start converges, and is kept
    dens = rq.Density.from_image(DATA / "portrait.png")
    res = rq.solve_ot(dens, rq.sample_points(dens, 2400, seed=5), tol=1e-3)
    _check_converged(res, 1e-3, 2400)


def test_empty_cells_error_names_points_on_zero_density():
    # a dark disc in a white square, and points spread over the whole square: most
    # cells cannot get mass; the repair gives up once it stops making progress, and
    # says that the points lie where the density is zero
    yy, xx = np.mgrid[:64, :64]
    dens = rq.Density.from_array((((yy - 32) ** 2 + (xx - 32) ** 2) < 64).astype(float))
    pts = rq.sample_points(dens, 150, method="uniform", seed=0)
    with pytest.raises(rq.EmptyCellError, match="no progress") as info:
        rq.solve_ot(dens, pts, tol=1e-2)
    msg = str(info.value)
    assert "on a zero-density pixel (142 of the 150 points are)" in msg
    assert "--floor" in msg and "\n" not in msg
    assert len(info.value.empty) > 100


def test_preconditioned_cg_reuses_a_nearby_factorisation(rng, monkeypatch):
    import scipy.sparse as sp

    from rasterquant.ot._jacobian import preconditioned_cg, solve_newton_system

    n = 60
    rows = rng.integers(0, n, 400)
    cols = rng.integers(0, n, 400)
    keep = rows != cols
    path = np.arange(n - 1)  # a path keeps the graph connected

    def laplacian(vals):
        r = np.concatenate([rows[keep], path])
        c = np.concatenate([cols[keep], path + 1])
        w = sp.coo_matrix((vals, (r, c)), shape=(n, n)).tocsr()
        w = w + w.T
        return (sp.diags(np.asarray(w.sum(axis=1)).ravel()) - w).tocsr()

    m = keep.sum() + n - 1
    base = rng.random(m) + 0.5
    old = laplacian(base)
    new = laplacian(base * (1 + 0.2 * rng.standard_normal(m)).clip(0.3))
    rhs = rng.standard_normal(n)
    rhs -= rhs.mean()
    _, solver = solve_newton_system(old, rhs, method="direct", want_solver=True)
    exact = solve_newton_system(new, rhs, method="direct")
    x = preconditioned_cg(new, rhs, solver, 1e-10, 60)
    assert x is not None and abs(x.mean()) < 1e-12
    np.testing.assert_allclose(x, exact, atol=1e-8 * np.abs(exact).max())
    # too few iterations for the tolerance: no answer, never a wrong one
    assert preconditioned_cg(new, rhs, solver, 1e-12, 1) is None
    # a first guess: the solution itself needs no iteration (the guess comes back
    # in the mean-zero gauge), a nearby one fewer than none
    calls = []

    def counted(r):
        calls.append(1)
        return solver(r)

    x = preconditioned_cg(new, rhs, counted, 1e-8, 60, exact + 3.0)
    assert not calls
    np.testing.assert_allclose(x, exact, atol=1e-12 * np.abs(exact).max())
    near = exact * (1 + 1e-3 * rng.standard_normal(n))
    preconditioned_cg(new, rhs, counted, 1e-8, 60, near)
    with_guess = len(calls)
    calls.clear()
    preconditioned_cg(new, rhs, counted, 1e-8, 60)
    assert with_guess < len(calls)
    # through solve_newton_system: the old solver is kept when CG reaches rtol in
    # PCG_MAX_ITER iterations, else the new system is factorised
    delta, s2 = solve_newton_system(
        new, rhs, method="direct", want_solver=True, precond=solver, precond_rtol=1e-2
    )
    assert s2 is solver
    assert np.linalg.norm(new @ delta - rhs) <= 1e-2 * np.linalg.norm(rhs)
    delta, s3 = solve_newton_system(
        new,
        rhs,
        method="direct",
        want_solver=True,
        precond=solver,
        precond_rtol=1e-14,
        pcg_max_iter=2,
    )
    assert s3 is not solver
    np.testing.assert_allclose(delta, exact, atol=1e-9 * np.abs(exact).max())
