"""Power-cell assignment, moments and Jacobian against the brute-force reference."""

import warnings

import numba
import numpy as np
import pytest
import reference
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import rasterquant as rq
from rasterquant.assign import _fractional
from rasterquant.assign.cells import _Raster


def _problem(
    rng,
    shape,
    n,
    *,
    spacing=1.0,
    origin=0.0,
    periodic=False,
    zero_frac=0.0,
    weight_scale=1.0,
):
    """A random density, distinct points inside the box and weights of both signs."""
    grid = rq.Grid(shape, spacing=spacing, origin=origin, periodic=periodic)
    values = rng.random(shape)
    if zero_frac:
        values[values < zero_frac] = 0.0
    density = rq.Density.from_array(values, grid)
    lo = np.array(grid.origin)
    pts = lo + rng.random((n, grid.ndim)) * grid.lengths
    # weights of the order of (cell size)^2 times weight_scale, both signs
    cell2 = (grid.volume / n) ** (2.0 / grid.ndim)
    w = rng.normal(scale=weight_scale * cell2, size=n)
    return density, pts, w


def _check_against_reference(density, pts, w):
    """Centre quadrature against the reference; fractional labels are the same."""
    cells = rq.assign_cells(density, pts, w, quadrature="center")
    grid = density.grid
    assert cells.labels.dtype == np.int32
    assert cells.labels.shape == grid.shape
    ref = reference.assign_labels(grid, cells.points, w)
    np.testing.assert_array_equal(cells.labels, ref)
    m, b, e = reference.cell_moments(grid, density, ref, cells.points)
    np.testing.assert_allclose(cells.masses, m, rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(cells.energies, e, rtol=1e-10, atol=1e-16)
    # barycenters: compare on the torus (a barycenter on the upper face may be
    # wrapped to the lower one by either side)
    diff = grid.min_image(cells.barycenters - b)
    scale = float(np.max(grid.lengths))
    np.testing.assert_allclose(diff, 0.0, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(cells.masses.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(cells.energy, e.sum(), rtol=1e-10)
    frac = rq.assign_cells(density, pts, w, quadrature="fractional")
    np.testing.assert_array_equal(frac.labels, ref)
    assert (frac.masses >= 0).all()
    np.testing.assert_allclose(frac.masses.sum(), 1.0, rtol=1e-12)
    return cells


@pytest.mark.parametrize(
    ("shape", "n", "kw"),
    [
        ((17, 23), 12, {}),
        ((5, 9, 11), 12, {}),
        ((31, 7), 9, {"spacing": (0.3, 2.5), "origin": (-4.0, 11.0)}),
        ((9, 13, 6), 15, {"spacing": (2.0, 0.5, 1.25), "origin": (1.0, -2.0, 0.5)}),
        ((33, 45), 40, {"periodic": True}),
        ((33, 45), 40, {"periodic": (False, True), "spacing": (0.7, 1.3)}),
        ((10, 12, 9), 25, {"periodic": True, "spacing": (1.0, 0.5, 2.0)}),
        ((10, 12, 9), 25, {"periodic": (True, False, True), "origin": 3.0}),
        ((41, 37), 30, {"zero_frac": 0.6}),
        ((11, 8, 13), 20, {"zero_frac": 0.5, "periodic": (False, True, False)}),
        ((19, 21), 1, {}),
        ((6, 7, 5), 1, {"periodic": True}),
        ((1, 50), 7, {}),
        ((64, 64), 300, {}),
        ((64, 64), 300, {"periodic": True}),
    ],
)
@pytest.mark.parametrize("weight_scale", [0.0, 1.0, 50.0])
def test_labels_and_moments_match_reference(rng, shape, n, kw, weight_scale):
    density, pts, w = _problem(rng, shape, n, weight_scale=weight_scale, **kw)
    _check_against_reference(density, pts, w)


@pytest.mark.parametrize("periodic", [False, True])
def test_large_magnitude_weights(rng, periodic):
    density, pts, w = _problem(rng, (23, 29), 20, periodic=periodic)
    # a huge common offset plus a spread much larger than the box
    w = 1e7 + rng.normal(scale=2e3, size=20)
    _check_against_reference(density, pts, w)


def test_uniform_density_matches_reference(rng):
    density = rq.Density.uniform((37, 29), extent=[(0, 3.7), (-1, 1.9)])
    assert density.is_uniform
    pts = np.column_stack([rng.random(25) * 3.7, -1 + rng.random(25) * 2.9])
    w = rng.normal(scale=0.1, size=25)
    _check_against_reference(density, pts, w)


def test_points_on_box_faces(rng):
    density, pts, w = _problem(rng, (20, 30), 15)
    pts[:5, 0] = 0.0
    pts[5:10, 1] = 30.0
    _check_against_reference(density, pts, w)


def _grids():
    dims = st.integers(2, 3)

    @st.composite
    def problem(draw):
        d = draw(dims)
        shape = tuple(
            draw(st.lists(st.integers(1, 24 if d == 2 else 9), min_size=d, max_size=d))
        )
        spacing = tuple(draw(st.lists(st.floats(0.2, 3.0), min_size=d, max_size=d)))
        origin = tuple(draw(st.lists(st.floats(-20, 20), min_size=d, max_size=d)))
        periodic = tuple(draw(st.lists(st.booleans(), min_size=d, max_size=d)))
        n = draw(st.integers(1, 40))
        scale = draw(st.sampled_from([0.0, 0.1, 1.0, 10.0, 1000.0]))
        seed = draw(st.integers(0, 2**31 - 1))
        return shape, spacing, origin, periodic, n, scale, seed

    return problem()


# a raster of a few pixels with many points (and their periodic images) can crowd
# more than MAXA cells into one pixel: the fractional pass says so; labels stay exact
@pytest.mark.filterwarnings("ignore:fractional quadrature:RuntimeWarning")
@settings(max_examples=25, deadline=None)
@given(_grids())
def test_labels_property_exact(problem):
    shape, spacing, origin, periodic, n, scale, seed = problem
    rng = np.random.default_rng(seed)
    grid = rq.Grid(shape, spacing=spacing, origin=origin, periodic=periodic)
    values = rng.random(shape)
    values[values < 0.3] = 0.0
    values.flat[0] = 1.0
    density = rq.Density.from_array(values, grid)
    pts = np.array(grid.origin) + rng.random((n, grid.ndim)) * grid.lengths
    cell2 = (grid.volume / n) ** (2.0 / grid.ndim)
    w = rng.normal(scale=scale * cell2, size=n) + rng.normal(scale=100.0)
    cells = rq.assign_cells(density, pts, w)
    np.testing.assert_array_equal(
        cells.labels, reference.assign_labels(grid, cells.points, w)
    )
    np.testing.assert_allclose(cells.masses.sum(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("quadrature", ["center", "fractional"])
@pytest.mark.parametrize("shape", [(40, 52), (9, 14, 11)])
def test_constant_shift_of_weights_keeps_labels(rng, shape, quadrature):
    periodic = (True,) + (False,) * (len(shape) - 1)
    density, pts, w = _problem(rng, shape, 30, periodic=periodic)
    a = rq.assign_cells(density, pts, w, quadrature=quadrature)
    # centre masses are sums of the same pixels; fractional splits are recomputed from
    # psi differences that carry the rounding of |c| (~3e4 * 2e-16 on masses of sum 1)
    atol = 0.0 if quadrature == "center" else 1e-12
    for c in (-1234.5, 0.125, 3e4):
        b = rq.assign_cells(density, pts, w + c, quadrature=quadrature)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.masses, b.masses, rtol=1e-12, atol=atol)


def test_inputs_not_modified(rng):
    density, pts, w = _problem(rng, (12, 15), 6, periodic=True)
    pts[0, 0] = 12.0  # on the upper face: wrapped internally
    p0, w0 = pts.copy(), w.copy()
    rq.assign_cells(density, pts, w)
    np.testing.assert_array_equal(pts, p0)
    np.testing.assert_array_equal(w, w0)


def test_assign_rejects_bad_points(rng):
    density = rq.Density.uniform((10, 10))
    with pytest.raises(ValueError, match="outside the grid"):
        rq.assign_cells(density, [[1.0, 11.0]])
    with pytest.raises(ValueError, match="duplicate"):
        rq.assign_cells(density, [[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="NaN"):
        rq.assign_cells(density, [[1.0, np.nan]])
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        rq.assign_cells(density, [[1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="weights"):
        rq.assign_cells(density, [[1.0, 1.0]], weights=[0.0, 1.0])


# ------------------------------------------------------------------------ Jacobian


def _jacobian_case(rng, shape, n, **kw):
    """Centre-quadrature cells and Jacobian (the reference's discrete boundary sums)."""
    density, pts, w = _problem(rng, shape, n, zero_frac=kw.pop("zero_frac", 0.0), **kw)
    cells = rq.assign_cells(density, pts, w, quadrature="center")
    jac = rq.mass_jacobian(density, pts, w, quadrature="center").toarray()
    return density, cells, w, jac


@pytest.mark.parametrize(
    ("shape", "n", "kw"),
    [
        ((30, 41), 15, {}),
        ((30, 41), 15, {"spacing": (0.5, 1.5), "origin": (2.0, -3.0)}),
        ((30, 41), 15, {"periodic": True}),
        ((30, 41), 15, {"periodic": (True, False), "zero_frac": 0.4}),
        ((9, 11, 13), 12, {}),
        (
            (9, 11, 13),
            12,
            {"periodic": (False, True, True), "spacing": (2.0, 1.0, 0.5)},
        ),
    ],
)
def test_jacobian_matches_reference_and_is_laplacian(rng, shape, n, kw):
    density, cells, w, jac = _jacobian_case(rng, shape, n, **kw)
    grid = density.grid
    ref = reference.jacobian_dense(grid, density, cells.labels, cells.points)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(jac, ref, rtol=1e-10, atol=1e-13 * scale)
    np.testing.assert_allclose(jac, jac.T, rtol=0, atol=1e-14 * scale)
    np.testing.assert_allclose(jac.sum(axis=1), 0.0, rtol=0, atol=1e-12 * scale)
    off = jac - np.diag(np.diag(jac))
    assert (off <= 0).all()
    assert (np.diag(jac) >= 0).all()
    # private path with an explicit floor of 0 gives the same matrix
    r = _Raster(density, cells.points, "center")
    labels3, _ = r.labels_masses(w)
    np.testing.assert_allclose(
        r.jacobian(labels3, 0.0).toarray(), jac, rtol=1e-14, atol=0
    )


def test_jacobian_given_labels(rng):
    density, cells, w, jac = _jacobian_case(rng, (20, 25), 8)
    jac2 = rq.mass_jacobian(
        density, cells.points, w, labels=cells.labels, quadrature="center"
    ).toarray()
    np.testing.assert_array_equal(jac, jac2)


@pytest.mark.parametrize("quadrature", ["center", "fractional"])
@pytest.mark.parametrize("periodic", [False, True])
def test_jacobian_agrees_with_finite_differences_fine_raster(rng, periodic, quadrature):
    """On a 400x400 uniform raster the discrete Jacobian matches dm/dpsi to ~few %."""
    shape = (400, 400)
    density = rq.Density.uniform(shape, periodic=periodic)
    pts = np.array([[110.3, 95.7], [120.9, 290.2], [300.4, 180.6], [250.1, 330.8]])
    w = np.array([300.0, -200.0, 150.0, 0.0])
    jac = rq.mass_jacobian(density, pts, w, quadrature=quadrature).toarray()
    # central differences of the masses: a step that moves boundaries by ~4 pixels
    eps = 2000.0
    fd = reference.assign_fd_jacobian(density, pts, w, eps, quadrature=quadrature)
    big = np.abs(fd) > 0.05 * np.abs(fd).max()
    assert big.sum() >= 8
    np.testing.assert_allclose(jac[big], fd[big], rtol=0.05)
    np.testing.assert_allclose(
        jac[~big], fd[~big], rtol=0, atol=0.05 * np.abs(fd).max()
    )


def test_jacobian_agrees_with_reference_fd_small(rng):
    """Same check against reference.fd_jacobian on a 3D case (coarser tolerance)."""
    grid = rq.Grid((60, 60, 60))
    density = rq.Density.uniform((60, 60, 60))
    pts = np.array([[15.2, 20.1, 30.3], [45.7, 30.2, 20.9], [30.1, 45.3, 44.2]])
    w = np.zeros(3)
    jac = rq.mass_jacobian(density, pts, w, quadrature="center").toarray()
    fd = reference.fd_jacobian(grid, density, pts, w, eps=60.0)
    np.testing.assert_allclose(jac, fd, rtol=0.08, atol=0.02 * np.abs(fd).max())


# ------------------------------------------------------------------ thread counts


def _with_threads(k, fn):
    prev = numba.get_num_threads()
    try:
        numba.set_num_threads(min(k, numba.config.NUMBA_NUM_THREADS))
        return fn()
    finally:
        numba.set_num_threads(prev)


@pytest.mark.parametrize("quadrature", ["center", "fractional"])
@pytest.mark.parametrize("shape", [(96, 80), (20, 24, 18)])
def test_results_identical_for_1_and_2_threads(rng, shape, quadrature):
    density, pts, w = _problem(
        rng, shape, 60, zero_frac=0.3, periodic=(False,) * (len(shape) - 1) + (True,)
    )

    def run():
        c = rq.assign_cells(density, pts, w, quadrature=quadrature)
        j = rq.mass_jacobian(density, pts, w, quadrature=quadrature)
        return c, j.toarray()

    c1, j1 = _with_threads(1, run)
    c2, j2 = _with_threads(2, run)
    np.testing.assert_array_equal(c1.labels, c2.labels)
    np.testing.assert_array_equal(c1.masses, c2.masses)
    np.testing.assert_array_equal(c1.barycenters, c2.barycenters)
    np.testing.assert_array_equal(c1.energies, c2.energies)
    np.testing.assert_array_equal(j1, j2)


# ---------------------------------------------------------------------- closed forms


@pytest.mark.parametrize(
    ("shape", "per_axis"),
    [((60, 90), (3, 3)), ((48, 40), (4, 5)), ((24, 30, 18), (2, 3, 3))],
)
def test_regular_tiling_gives_equal_masses(shape, per_axis):
    density = rq.Density.uniform(shape)
    axes = [
        (np.arange(k) + 0.5) * (s / k) for s, k in zip(shape, per_axis, strict=True)
    ]
    pts = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
    n = len(pts)
    cells = rq.assign_cells(density, pts)
    np.testing.assert_allclose(cells.masses, 1.0 / n, rtol=1e-12)
    np.testing.assert_allclose(cells.barycenters, pts, rtol=0, atol=1e-9)
    res = rq.solve_ot(density, pts, tol=1e-6)
    assert res.converged and res.n_iter == 0
    np.testing.assert_array_equal(res.weights, np.zeros(n))


@pytest.mark.parametrize("delta", [0.0, 5.0, 5.25, -7.3, 12.8])
def test_two_points_boundary_shift(delta):
    """Centre: the boundary moves by (w1 - w2) / (2 |p1 - p2|) (whole pixels)."""
    h, wdt = 16, 64
    density = rq.Density.uniform((h, wdt))
    p = np.array([[8.0, 20.0], [8.0, 44.0]])
    dist = 24.0
    w = np.array([2 * dist * delta, 0.0])
    cells = rq.assign_cells(density, p, w, quadrature="center")
    boundary = 32.0 + delta
    cols = np.arange(wdt) + 0.5
    expected = np.where(cols <= boundary, 0, 1)
    np.testing.assert_array_equal(cells.labels, np.broadcast_to(expected, (h, wdt)))
    np.testing.assert_allclose(
        cells.masses[0], np.ceil(boundary - 0.5) / wdt, rtol=1e-12
    )
    # the Jacobian of this straight facet is exact: -len / (2 |p1 - p2|) * rho
    jac = rq.mass_jacobian(density, p, w, quadrature="center").toarray()
    rho = 1.0 / (h * wdt)
    np.testing.assert_allclose(jac[0, 1], -h * rho / (2 * dist), rtol=1e-12)


@pytest.mark.parametrize("delta", [0.0, 5.0, 5.25, -7.3, 12.8, 0.5, 1e-9])
def test_two_points_boundary_shift_fractional(delta):
    """Fractional masses are the exact area fractions: boundary / width."""
    h, wdt = 16, 64
    density = rq.Density.uniform((h, wdt))
    p = np.array([[8.0, 20.0], [8.0, 44.0]])
    dist = 24.0
    w = np.array([2 * dist * delta, 0.0])
    cells = rq.assign_cells(density, p, w, quadrature="fractional")
    boundary = 32.0 + delta
    cols = np.arange(wdt) + 0.5
    # labels stay the centre owners
    expected = np.where(cols <= boundary, 0, 1)
    np.testing.assert_array_equal(cells.labels, np.broadcast_to(expected, (h, wdt)))
    np.testing.assert_allclose(
        cells.masses, [boundary / wdt, 1 - boundary / wdt], rtol=1e-12
    )
    # barycenters of the two rectangles [0, b] and [b, 64] (rows centred on 8)
    np.testing.assert_allclose(
        cells.barycenters,
        [[8.0, boundary / 2], [8.0, (boundary + wdt) / 2]],
        rtol=0,
        atol=1e-10,
    )
    jac = rq.mass_jacobian(density, p, w, quadrature="fractional").toarray()
    rho = 1.0 / (h * wdt)
    c = h * rho / (2 * dist)
    np.testing.assert_allclose(jac, [[c, -c], [-c, c]], rtol=1e-12)


# --------------------------------------------------------- fractional quadrature


@pytest.mark.parametrize(
    ("shape", "n", "kw"),
    [
        ((30, 41), 15, {}),
        ((30, 41), 15, {"spacing": (0.05, 0.13), "origin": (2.0, -3.0)}),
        ((30, 41), 15, {"periodic": True}),
        ((30, 41), 15, {"periodic": (True, False), "zero_frac": 0.4}),
        ((9, 11, 13), 12, {}),
        (
            (9, 11, 13),
            12,
            {"periodic": (False, True, True), "spacing": (2.0, 1.0, 0.5)},
        ),
    ],
)
def test_fractional_jacobian_equals_finite_differences(rng, shape, n, kw):
    """The fractional Jacobian is the exact derivative of the fractional masses."""
    density, pts, w = _problem(rng, shape, n, **kw)
    jac = rq.mass_jacobian(density, pts, w, quadrature="fractional").toarray()
    cell2 = (density.grid.volume / n) ** (2.0 / density.grid.ndim)
    fd = reference.assign_fd_jacobian(density, pts, w, eps=1e-6 * cell2)
    scale = np.abs(fd).max()
    np.testing.assert_allclose(jac, fd, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(jac, jac.T, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(jac.sum(axis=1), 0.0, rtol=0, atol=1e-12 * scale)
    assert (jac - np.diag(np.diag(jac)) <= 0).all()


def _voxel_jacobian_and_fd(density, pts, w, eps):
    """Jacobian and central differences of the masses from the voxel kernel itself
    (a uniform density otherwise takes the exact geometric cells)."""
    r = _Raster(density, pts, "fractional")
    r.geometric = False
    labels, _ = r.labels_masses(w)
    jac = r.jacobian(labels, 0.0, w).toarray()
    fd = np.empty_like(jac)
    for j in range(len(pts)):
        wp, wm = w.copy(), w.copy()
        wp[j] += eps
        wm[j] -= eps
        fd[:, j] = (r.labels_masses(wp)[1] - r.labels_masses(wm)[1]) / (2 * eps)
    return jac, fd


@pytest.mark.parametrize(
    ("shape", "k", "extent", "engine"),
    [
        ((12, 12), 3, None, "voxels"),  # unit pixels: facets exactly on pixel borders
        ((40, 40), 4, [(-1.0, 1.0)] * 2, "voxels"),  # h = 0.05: borders up to rounding
        ((40, 40), 4, [(0.0, 1.0)] * 2, "voxels"),
        ((8, 8, 8), 2, None, "voxels"),  # 3D, unit voxels
        ((12, 12, 12), 3, [(0.0, 1.0)] * 3, "voxels"),
        ((12, 12, 12), 3, [(0.0, 1.0)] * 3, "geometric"),
        ((40, 40), 4, [(-1.0, 1.0)] * 2, "geometric"),
    ],
)
def test_fractional_jacobian_facets_on_pixel_borders(shape, k, extent, engine):
    """Pixel-aligned grid cloud: every facet lies on pixel borders (still smooth)."""
    density = rq.Density.uniform(shape, extent) if extent else rq.Density.uniform(shape)
    g = density.grid
    axes = [
        g.origin[a] + (np.arange(k) + 0.5) * (g.lengths[a] / k) for a in range(g.ndim)
    ]
    pts = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
    w = np.zeros(len(pts))
    eps = 1e-7 * (g.volume / len(pts)) ** (2 / g.ndim)
    if engine == "voxels":
        jac, fd = _voxel_jacobian_and_fd(density, pts, w, eps)
    else:
        jac = rq.mass_jacobian(density, pts, w, quadrature="fractional").toarray()
        fd = reference.assign_fd_jacobian(density, pts, w, eps=eps)
    # closed form: a square/cube facet of side s between neighbours at distance s,
    # rho = 1 / volume: J_ij = -s^(d-1) / (2 s) / volume
    s = g.lengths[0] / k
    off = -(s ** (g.ndim - 1)) / (2 * s) / g.volume
    neighbours = np.isclose(
        np.linalg.norm(pts[:, None] - pts[None], axis=2), s, rtol=1e-9
    )
    np.testing.assert_allclose(fd[neighbours], off, rtol=1e-6)
    np.testing.assert_allclose(jac, fd, rtol=1e-4, atol=1e-4 * np.abs(fd).max())


@pytest.mark.parametrize("shape", [(23, 31), (7, 9, 8)])
def test_fractional_masses_continuous_in_weights(rng, shape):
    """Masses move continuously: a tiny weight step moves them by O(step)."""
    periodic = (True,) + (False,) * (len(shape) - 1)
    density, pts, w = _problem(rng, shape, 12, periodic=periodic)
    cell2 = (density.grid.volume / 12) ** (2.0 / density.grid.ndim)
    base = rq.assign_cells(density, pts, w, quadrature="fractional").masses
    jac_norm = np.abs(rq.mass_jacobian(density, pts, w, quadrature="fractional")).max()
    direction = rng.normal(size=12)
    for t in (1e-3, 1e-5, 1e-7, 1e-9):
        step = t * cell2 * direction
        m = rq.assign_cells(density, pts, w + step, quadrature="fractional").masses
        # a centre-quadrature jump would be a whole boundary pixel (~1/pixels)
        assert np.abs(m - base).max() <= 2 * jac_norm * np.abs(step).sum() + 1e-14
    # and along a path the masses sweep through intermediate values
    path = [
        rq.assign_cells(
            density, pts, w + t * cell2 * direction, quadrature="fractional"
        ).masses
        for t in np.linspace(0.0, 0.05, 11)
    ]
    steps = np.abs(np.diff(path, axis=0)).max()
    assert steps <= 2 * jac_norm * 0.005 * cell2 * np.abs(direction).sum()


@pytest.mark.parametrize(
    ("shape", "n", "kw"),
    [
        ((17, 23), 12, {}),
        ((31, 7), 9, {"spacing": (0.3, 2.5), "origin": (-4.0, 11.0)}),
        ((33, 45), 40, {"periodic": (False, True), "spacing": (0.7, 1.3)}),
        ((5, 9, 11), 12, {}),
        ((10, 12, 9), 25, {"periodic": (True, False, True), "origin": 3.0}),
    ],
)
def test_fractional_moments_invariant_under_refinement(rng, shape, n, kw):
    """Fractional moments are exact integrals of the piecewise-constant density, so
    splitting every pixel into 2^d equal sub-pixels does not change them."""
    density, pts, w = _problem(rng, shape, n, weight_scale=1.0, **kw)
    g = density.grid
    fine_values = density.values
    for a in range(g.ndim):
        fine_values = np.repeat(fine_values, 2, axis=a)
    fine_grid = rq.Grid(
        tuple(2 * s for s in g.shape),
        spacing=tuple(h / 2 for h in g.spacing),
        origin=g.origin,
        periodic=g.periodic,
    )
    fine = rq.Density.from_array(fine_values, fine_grid)
    a = rq.assign_cells(density, pts, w, quadrature="fractional")
    b = rq.assign_cells(fine, pts, w, quadrature="fractional")
    np.testing.assert_allclose(a.masses, b.masses, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(
        g.min_image(a.barycenters - b.barycenters),
        0.0,
        rtol=0,
        atol=1e-9 * float(np.max(g.lengths)),
    )
    np.testing.assert_allclose(a.energies, b.energies, rtol=1e-9, atol=1e-14 * a.energy)
    # the centre quadrature of a much finer raster converges to the same masses
    c = rq.assign_cells(fine, pts, w, quadrature="center")
    assert (
        np.abs(c.masses - a.masses).sum()
        < np.abs(
            rq.assign_cells(density, pts, w, quadrature="center").masses - a.masses
        ).sum()
        + 1e-12
    )


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize(
    ("res", "k", "offset"),
    [(37, 4, 0.0), (40, 4, 0.013), (29, 3, 0.25), (64, 8, 0.1234567)],
)
def test_fractional_grid_cloud_equal_masses_any_offset(res, k, offset, periodic):
    """Uniform density, k x k grid cloud at any offset against the pixels: square
    cells of equal mass (periodic: shifted by ``offset`` cells; otherwise the raster is
    generally not a multiple of k, so cells cut pixels)."""
    density = rq.Density.uniform((res, res), [(0.0, 1.0)] * 2, periodic=periodic)
    c = (np.arange(k) + 0.5) / k
    pts = np.stack([a.ravel() for a in np.meshgrid(c, c, indexing="ij")], axis=1)
    if periodic:
        pts = density.grid.wrap(pts + offset / k)
    cells = rq.assign_cells(density, pts, quadrature="fractional")
    np.testing.assert_allclose(cells.masses, 1.0 / k**2, rtol=1e-9)
    np.testing.assert_allclose(
        density.grid.min_image(cells.barycenters - pts), 0.0, rtol=0, atol=1e-9
    )
    # F_N = s^2 / 6 for squares of side s = 1 / k
    np.testing.assert_allclose(cells.energy, 1.0 / (6 * k**2), rtol=1e-9)


@pytest.mark.slow
def test_periodic_huge_weight_spread_3d():
    """Weight spread >> box^2 on a 3D torus: exact labels, in reasonable time.

    The ghost margin grows with sqrt(max psi - min psi), so the number of ghost
    shifts grows like spread^(3/2): 1e5 on 8^3 takes ~25 s and ~600 MB today.
    """
    density = rq.Density.uniform((8, 8, 8), periodic=True)
    pts = np.array([[2.0, 2.0, 2.0], [6.0, 6.0, 6.0], [2.0, 6.0, 2.0]])
    w = np.array([1e5, 0.0, 0.0])
    cells = rq.assign_cells(density, pts, w)
    np.testing.assert_array_equal(
        cells.labels, reference.assign_labels(density.grid, pts, w)
    )


@pytest.mark.parametrize(
    ("shape", "n", "periodic"),
    [
        ((9, 11), 6, False),
        ((8, 10), 5, True),
        ((5, 6, 4), 5, False),
        ((5, 4, 6), 4, (True, False, True)),
        # one layer of voxels: still 3D (the sites have their own z), not pixels
        ((1, 6, 7), 5, False),
    ],
)
def test_fractional_moments_match_polytope_reference(rng, shape, n, periodic):
    """Fractional masses and barycenters equal exact half-space intersections."""
    density = rq.Density.from_array(
        rng.random(shape) + 0.1,
        spacing=rng.uniform(0.7, 1.4, len(shape)),
        origin=rng.normal(size=len(shape)),
        periodic=periodic,
    )
    g = density.grid
    lo = np.array([e[0] for e in g.extent])
    hi = np.array([e[1] for e in g.extent])
    pts = lo + rng.random((n, len(shape))) * (hi - lo)
    w = rng.normal(scale=2.0, size=n)
    cells = rq.assign_cells(density, pts, w, quadrature="fractional")
    ref_m, ref_b = reference.fractional_moments(g, density.values, pts, w)
    np.testing.assert_allclose(cells.masses, ref_m, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(g.min_image(cells.barycenters - ref_b), 0.0, atol=1e-7)


def _crowded_ring(rng, n=80, close=10):
    """Sites on a ring of radius ~6.6 around (7.5, 7.5); every 8th one (the last
    ``close`` indices) 0.6 closer in. More than MAXA = 24 sites pass the test
    against the centre pixel's owner there, but the inner ones dominate the rest."""
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + 0.01
    inner = np.arange(0, n, n // close)
    ang = ang[np.r_[np.setdiff1d(np.arange(n), inner), inner]]
    r = np.full(n, 6.6)
    r[-close:] = 6.0 + rng.uniform(0, 0.02, close)
    return np.c_[7.5 + r * np.sin(ang), 7.5 + r * np.cos(ang)]


@pytest.mark.parametrize(("dim", "periodic"), [(2, False), (3, False), (2, True)])
def test_fractional_masses_exact_where_many_sites_compete(rng, dim, periodic):
    """A pixel for which more than MAXA candidates pass the test against its owner.

    The kernel kept the first MAXA (by index) and dropped the rest, which here were
    the true owners: masses off by 2.5e-3 (and not continuous in the weights). The
    oracle is the same density on pixels split 4 x 4, where no pixel is crowded.
    """
    ring = _crowded_ring(rng)
    v = 1.0 + rng.random((15, 15))
    if dim == 2:
        pts = ring
        coarse = rq.Density.from_array(v, periodic=periodic)
        fine = rq.Density.from_array(
            np.kron(v, np.ones((4, 4))), spacing=0.25, periodic=periodic
        )
    else:
        pts = np.c_[np.full(len(ring), 1.5), ring]
        v = np.stack([v, v * 0.5, v])
        coarse = rq.Density.from_array(v)
        fine = rq.Density.from_array(
            np.kron(v, np.ones((1, 4, 4))), spacing=(1.0, 0.25, 0.25)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "approximate masses" warning either
        m = rq.assign_cells(coarse, pts, quadrature="fractional").masses
        ref = rq.assign_cells(fine, pts, quadrature="fractional").masses
    np.testing.assert_allclose(m, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("n", "dim"), [(30, 2), (100, 2), (60, 3), (200, 3)])
def test_fractional_masses_exact_when_a_pixel_meets_many_cells(n, dim):
    """More cells meet in one pixel than the pass has room for at first (24).

    Sites on a circle of radius 0.3 px (in 3D a wobbly one, across a voxel): the pass
    reruns the crowded chunks with more room, so the masses are exact, as on pixels
    split 4 x 4 (where the same cells meet in 4 pixels), and nothing is said.
    """
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.c_[4.5 + 0.3 * np.sin(t), 4.5 + 0.3 * np.cos(t)]
    v = 1.0 + np.random.default_rng(0).random((9, 9))
    if dim == 2:
        pts, big, spacing, reps = ring, v, 0.25, (4, 4)
    else:
        pts = np.c_[1.5 + 0.01 * np.sin(3 * t), ring]
        v = np.stack([v, 0.5 * v, v])
        big, spacing, reps = v, (1.0, 0.25, 0.25), (1, 4, 4)
    fine = rq.Density.from_array(np.kron(big, np.ones(reps)), spacing=spacing)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = rq.assign_cells(v, pts, quadrature="fractional").masses
        ref = rq.assign_cells(fine, pts, quadrature="fractional").masses
    np.testing.assert_allclose(m.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(m, ref, rtol=0, atol=1e-11)


def test_fractional_warns_when_a_pixel_meets_too_many_cells():
    # more sites on a circle of radius 0.3 px than the pass ever makes room for
    limit = _fractional.MAXA_LIMIT_2D
    t = np.linspace(0, 2 * np.pi, limit + 16, endpoint=False)
    pts = np.c_[4.5 + 0.3 * np.sin(t), 4.5 + 0.3 * np.cos(t)]
    v = 1.0 + np.random.default_rng(0).random((9, 9))
    with pytest.warns(RuntimeWarning, match=f"more than {limit} cells"):
        c = rq.assign_cells(v, pts, quadrature="fractional")
    np.testing.assert_allclose(c.masses.sum(), 1.0, rtol=1e-9)


def test_fractional_3d_voxel_met_by_400_cells():
    # 400 sites on a wobbly circle of radius 0.3 voxel: hundreds of cells meet in a
    # voxel, whose pieces have many faces; the pass grows its buffers (or says the
    # masses are approximate), never writes past them, and keeps the total
    t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    pts = np.c_[
        1.5 + 0.01 * np.sin(3 * t), 1.5 + 0.3 * np.sin(t), 1.5 + 0.3 * np.cos(t)
    ]
    v = 1.0 + np.random.default_rng(0).random((3, 3, 3))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        c = rq.assign_cells(v, pts, quadrature="fractional")
    np.testing.assert_allclose(c.masses.sum(), 1.0, rtol=1e-9)
    assert np.all(c.masses >= 0.0)


@pytest.mark.parametrize(
    "shape, kw", [((40, 52), {}), ((12, 14, 10), {}), ((40, 52), {"periodic": True})]
)
@pytest.mark.parametrize("quadrature", ["fractional", "center"])
def test_one_pass_evaluate_matches_separate_passes(rng, shape, kw, quadrature):
    values = rng.random(shape)
    values[values < 0.3] = 0.0  # zero-density pixels too
    dens = rq.Density.from_array(values, **kw)
    n = 25
    pts = rng.random((n, len(shape))) * np.array(shape)
    w = rng.normal(scale=4.0, size=n)
    r = _Raster(dens, pts, quadrature)
    labels, m, mom, jac = r.evaluate(w, None, True, True)
    labels2, m2 = r.labels_masses(w)
    np.testing.assert_array_equal(labels, labels2)
    np.testing.assert_allclose(m, m2, rtol=1e-13, atol=1e-16)
    ref = r.moments(labels2, w)
    for a, b in zip(mom, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    j2 = r.jacobian(labels2, 0.0, w)
    np.testing.assert_allclose(jac.toarray(), j2.toarray(), rtol=1e-12, atol=1e-16)
    _, m3, mom3, jac3 = r.evaluate(w)
    assert mom3 is None and jac3 is None
    np.testing.assert_allclose(m3, m2, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize(
    "shape, periodic", [((48, 60), False), ((48, 60), True), ((14, 12, 16), True)]
)
@pytest.mark.parametrize("quadrature", ["center", "fractional"])
def test_candidate_lists_follow_small_moves(rng, shape, periodic, quadrature):
    """Lists built with room for moves stay exact after the sites move; beyond their
    bound they are rebuilt (labels equal the brute-force argmin either way)."""
    values = rng.random(shape) + 0.1
    dens = rq.Density.from_array(values, periodic=periodic)
    n = 30
    pts = rng.random((n, len(shape))) * (np.array(shape) - 1e-9)
    w = rng.normal(scale=5.0, size=n)
    r = _Raster(dens, pts, quadrature)
    r.move_slack = 40.0
    r.plan(w, 1.0)
    lists = r._cand
    for scale, reused in [(0.05, True), (5.0, False)]:
        moved = pts + rng.normal(scale=scale, size=pts.shape)
        moved = (
            dens.grid.wrap(moved)
            if periodic
            else np.clip(moved, 0.0, np.array(shape) - 1e-9)
        )
        r.set_points(moved)
        assert (r.covers(w) is True) == reused
        labels, masses = r.labels_masses(w)
        assert (r._cand is lists) == reused
        ref = reference.assign_labels(dens.grid, moved, w)
        np.testing.assert_array_equal(labels.reshape(ref.shape), ref)
        fresh = _Raster(dens, moved, quadrature).labels_masses(w)[1]
        np.testing.assert_allclose(masses, fresh, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "shape, kw",
    [
        ((30, 36), {}),
        ((30, 36), {"periodic": True}),
        ((10, 12, 9), {"periodic": (True, False, True)}),
    ],
)
def test_floor_links_match_reference(rng, shape, kw):
    values = rng.random(shape)
    values[values < 0.5] = 0.0  # large zero-density areas
    dens = rq.Density.from_array(values, **kw)
    pts = rng.random((20, len(shape))) * np.array(shape)
    r = _Raster(dens, pts, "fractional")
    labels, _ = r.labels_masses(np.zeros(20))
    links = r.floor_links(labels).toarray()
    ref = reference.jacobian_dense(
        dens.grid, dens.values, labels.reshape(shape), pts, zero_floor=r.jacobian_floor
    )
    assert np.abs(ref).max() > 0
    np.testing.assert_allclose(links, ref, rtol=1e-10, atol=1e-14 * np.abs(ref).max())


@pytest.mark.parametrize(
    "shape, kw",
    [((30, 36), {}), ((30, 36), {"periodic": True}), ((10, 12, 9), {"periodic": True})],
)
def test_facet_move_rates_match_reference(rng, shape, kw):
    from rasterquant.assign._kernels import _facet_move_rates

    dens = rq.Density.from_array(rng.random(shape) + 0.1, **kw)
    n = 15
    pts = rng.random((n, len(shape))) * np.array(shape)
    w = rng.normal(scale=3.0, size=n)
    r = _Raster(dens, pts, "fractional")
    r.evaluate(w, None, False, True)
    _, rows, cols, vals, pix, _ = r.facets
    moves = rng.normal(size=pts.shape)
    d3 = moves if len(shape) == 3 else np.column_stack([np.zeros(n), moves])
    dm = _facet_move_rates(
        rows,
        cols,
        vals,
        pix,
        r.points3,
        d3,
        r.shape3,
        r.spacing3,
        r.origin3,
        r.lengths3,
        r.periodic3,
        n,
    )
    ref = reference.facet_move_rates(dens.grid, rows, cols, vals, pix, pts, moves)
    np.testing.assert_allclose(dm, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(dm.sum(), 0.0, atol=1e-12 * np.abs(ref).max())


def test_laplacian_csr_matches_dense(rng):
    from rasterquant.assign._kernels import _laplacian_csr

    n = 40
    rows = rng.integers(0, n, 500)
    cols = rng.integers(0, n, 500)
    vals = rng.random(500)
    dense = np.zeros((n, n))
    for a, b, w in zip(rows, cols, vals, strict=True):
        if a != b:
            dense[a, b] -= w
            dense[b, a] -= w
            dense[a, a] += w
            dense[b, b] += w
    indptr, indices, data = _laplacian_csr(rows, cols, vals, n)
    got = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    np.testing.assert_allclose(got.toarray(), dense, atol=1e-12)
    for i in range(n):  # diagonal present, columns sorted and distinct
        row = indices[indptr[i] : indptr[i + 1]]
        assert i in row and np.all(np.diff(row) > 0)


@pytest.mark.parametrize("shape", [(40, 56), (12, 14, 16)])
def test_jacobian_overflow_reruns_only_what_overflowed(rng, shape):
    from rasterquant.assign.cells import _Raster

    v = rng.random(shape) + 0.2
    dens = rq.Density.from_array(v)
    pts = rng.random((30, len(shape))) * np.array(shape)
    w = rng.normal(scale=2.0, size=30)
    ref = _Raster(dens, pts, "fractional")
    ref._jac_cap = 100_000
    _, m_ref, mom_ref, j_ref = ref.evaluate(w, None, True, True)
    small = _Raster(dens, pts, "fractional")
    small._jac_cap = 3  # every chunk with facet pieces overflows: rerun those
    _, m, mom, j = small.evaluate(w, None, True, True)
    np.testing.assert_allclose(m, m_ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(mom[1], mom_ref[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(j.toarray(), j_ref.toarray(), rtol=0, atol=1e-15)
    assert small._jac_cap > 3


def test_merge_pairs_sums_duplicates_per_segment(rng):
    from rasterquant.assign._kernels import _merge_pairs

    n = 30
    rows = rng.integers(0, n, 700)
    cols = rng.integers(0, n, 700)
    vals = rng.random(700)
    seg = np.array([0, 0, 250, 251, 700], np.int64)  # an empty and a 1-long segment
    r, c, v = _merge_pairs(rows, cols, vals, seg, n)
    want = np.zeros((n, n))
    np.add.at(want, (rows, cols), vals)
    got = np.zeros((n, n))
    np.add.at(got, (r, c), v)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    # within a segment every pair appears once, in order of first appearance
    expected = []
    for a, b in ((0, 250), (250, 251), (251, 700)):
        keys = rows[a:b] * n + cols[a:b]
        _, first = np.unique(keys, return_index=True)
        expected.append(keys[np.sort(first)])
    np.testing.assert_array_equal(r * n + c, np.concatenate(expected))


@pytest.mark.parametrize("n", [1, 2, 6, 32, 64])
def test_chunk_spread_is_a_permutation_that_interleaves(n):
    from rasterquant.assign._kernels import _spread

    order = [int(_spread(k, n)) for k in range(n)]
    assert sorted(order) == list(range(n))
    if n >= 4 and n & (n - 1) == 0:
        # each thread's contiguous run of iterations covers the image evenly: the
        # first half of the iterations runs every other chunk
        assert sorted(order[: n // 2]) == list(range(0, n, 2))
