"""Sanity tests of the slow reference implementations in ``reference.py``."""

import numpy as np
import pytest
import reference

from rasterquant.grid import Grid


def _random_case(rng, shape, n, periodic=False, spacing=1.0):
    grid = Grid(shape, spacing=spacing, periodic=periodic)
    values = rng.random(shape)
    values /= values.sum()
    lo = np.array([e[0] for e in grid.extent])
    points = lo + rng.random((n, len(shape))) * grid.lengths
    weights = rng.normal(scale=0.5 * grid.lengths.min(), size=n)
    return grid, values, points, weights


@pytest.mark.parametrize(
    ("shape", "periodic"),
    [((17, 23), False), ((17, 23), True), ((5, 9, 11), (True, False, True))],
)
def test_labels_match_per_pixel_loop(rng, shape, periodic):
    grid, _, points, weights = _random_case(rng, shape, 7, periodic)
    labels = reference.assign_labels(grid, points, weights)
    assert labels.shape == shape
    length = grid.lengths
    for k, x in enumerate(grid.pixel_centres()):
        cost = []
        for y, w in zip(points, weights, strict=True):
            d = x - y
            for a in range(grid.ndim):
                if grid.periodic[a]:
                    d[a] -= length[a] * round(d[a] / length[a])
            cost.append(float(d @ d) - w)
        assert labels.ravel()[k] == int(np.argmin(cost))


def test_blocks_do_not_change_labels(rng, monkeypatch):
    grid, _, points, weights = _random_case(rng, (31, 29), 9, periodic=True)
    whole = reference.assign_labels(grid, points, weights)
    monkeypatch.setattr(reference, "_BLOCK_PAIRS", 50)
    np.testing.assert_array_equal(reference.assign_labels(grid, points, weights), whole)


def test_labels_invariant_under_constant_shift_of_weights(rng):
    grid, _, points, weights = _random_case(rng, (40, 30), 10)
    np.testing.assert_array_equal(
        reference.assign_labels(grid, points, weights + 8.0),
        reference.assign_labels(grid, points, weights),
    )


def test_ties_go_to_lowest_index():
    grid = Grid((2, 4))
    points = np.array([[1.0, 3.0], [1.0, 1.0]])  # column centre 2.0 is equidistant
    labels = reference.assign_labels(grid, points, np.zeros(2))
    np.testing.assert_array_equal(labels, [[1, 1, 0, 0], [1, 1, 0, 0]])


@pytest.mark.parametrize("periodic", [False, True])
def test_masses_sum_to_one(rng, periodic):
    grid, values, points, weights = _random_case(rng, (6, 20, 15), 11, periodic)
    m = reference.masses(grid, values, points, weights)
    assert m.shape == (11,)
    assert (m >= 0).all()
    np.testing.assert_allclose(m.sum(), 1.0, rtol=1e-12)


def test_two_points_boundary_moves_by_weight_difference():
    # Uniform density, points at columns 50 and 150: the bisector x = 100 moves to
    # 100 + (w1 - w2) / (2 * 100).
    grid = Grid((4, 200), spacing=1.0)
    values = np.full(grid.shape, 1.0 / grid.n_pixels)
    points = np.array([[2.0, 50.0], [2.0, 150.0]])
    shift = 10.3
    weights = np.array([2 * 100 * shift, 0.0])
    labels = reference.assign_labels(grid, points, weights)
    # column centres 0.5 .. 109.5 lie left of 110.3
    assert (labels[:, :110] == 0).all()
    assert (labels[:, 110:] == 1).all()
    np.testing.assert_allclose(
        reference.masses(grid, values, points, weights), [0.55, 0.45], rtol=1e-12
    )
    # Jacobian: facet of length 4, density 1/800 per unit area, |y1 - y2| = 100.
    jac = reference.jacobian_dense(grid, values, labels, points)
    c = 4 * (1 / 800) / (2 * 100)
    np.testing.assert_allclose(jac, [[c, -c], [-c, c]], rtol=1e-12)


def test_two_points_with_spacing_and_origin():
    grid = Grid((3, 50), spacing=(0.5, 0.1), origin=(-1.0, 2.0))
    values = np.full(grid.shape, 1.0 / grid.n_pixels)
    points = np.array([[-0.25, 3.0], [-0.25, 6.0]])
    shift = 0.62  # boundary from 4.5 to 5.12: centres 2.05 .. 5.05 go to point 0
    labels = reference.assign_labels(grid, points, np.array([2 * 3.0 * shift, 0.0]))
    assert (labels[:, :31] == 0).all()
    assert (labels[:, 31:] == 1).all()
    jac = reference.jacobian_dense(grid, values, labels, points)
    c = 1.5 * (1 / grid.volume) / (2 * 3.0)  # facet length 1.5, rho = 1/area
    np.testing.assert_allclose(jac, [[c, -c], [-c, c]], rtol=1e-12)


def test_single_cell_moments_match_box_integrals():
    # One point owns the whole box: barycenter = box centre, and with each pixel's
    # own extent the energy is the exact integral of |x - y|^2 for a uniform density.
    grid = Grid((12, 20, 8), spacing=(0.5, 0.25, 1.0), origin=(1.0, -2.0, 0.0))
    values = np.full(grid.shape, 1.0 / grid.n_pixels)
    y = np.array([[2.0, 0.3, 7.5]])
    labels = reference.assign_labels(grid, y, np.zeros(1))
    m, b, e = reference.cell_moments(grid, values, labels, y)
    lo = np.array([x[0] for x in grid.extent])
    centre = lo + grid.lengths / 2
    np.testing.assert_allclose(m, [1.0], rtol=1e-12)
    np.testing.assert_allclose(b, [centre], rtol=1e-12)
    exact = np.sum(grid.lengths**2 / 12 + (centre - y[0]) ** 2)
    np.testing.assert_allclose(e, [exact], rtol=1e-12)
    np.testing.assert_allclose(
        reference.power_energy(grid, values, y, np.zeros(1)), exact, rtol=1e-12
    )


def test_empty_cell_barycenter_is_its_point():
    grid = Grid((10, 10))
    values = np.full(grid.shape, 0.01)
    points = np.array([[5.0, 5.0], [2.0, 2.0]])
    weights = np.array([1000.0, 0.0])  # point 0 swallows everything
    labels = reference.assign_labels(grid, points, weights)
    m, b, e = reference.cell_moments(grid, values, labels, points)
    np.testing.assert_allclose(m, [1.0, 0.0], atol=1e-15)
    np.testing.assert_array_equal(b[1], points[1])
    assert e[1] == 0.0


def test_periodic_barycenter_wraps_into_box():
    # Points at columns 99.6 and 49.6 on a 100-wide torus: cell 0 is columns
    # 75..99 and 0..24, whose unwrapped mean is 100, i.e. 0 in the box.
    grid = Grid((2, 100), periodic=True)
    values = np.full(grid.shape, 1.0 / grid.n_pixels)
    points = np.array([[1.0, 99.6], [1.0, 49.6]])
    labels = reference.assign_labels(grid, points, np.zeros(2))
    m, b, _ = reference.cell_moments(grid, values, labels, points)
    np.testing.assert_allclose(m, [0.5, 0.5], rtol=1e-12)
    lo, hi = np.zeros(2), grid.lengths
    assert ((b >= lo) & (b < hi)).all()
    np.testing.assert_allclose(
        grid.min_image(b - [[1.0, 0.0], [1.0, 50.0]]), 0.0, atol=1e-9
    )


def test_moments_decompose_around_barycenter(rng):
    # sum_p m_p |x_p - y|^2 = sum_p m_p |x_p - b|^2 + m |b - y|^2 (non-periodic).
    grid, values, points, weights = _random_case(rng, (25, 31), 6, spacing=0.2)
    labels = reference.assign_labels(grid, points, weights)
    m, b, e = reference.cell_moments(grid, values, labels, points)
    _, _, e_b = reference.cell_moments(grid, values, labels, b)
    np.testing.assert_allclose(
        e, e_b + m * np.sum((b - points) ** 2, axis=1), rtol=1e-10, atol=1e-15
    )


@pytest.mark.parametrize(
    ("shape", "periodic"),
    [((30, 40), False), ((30, 40), True), ((8, 12, 10), (False, True, True))],
)
def test_jacobian_symmetric_zero_row_sums(rng, shape, periodic):
    grid, values, points, weights = _random_case(rng, shape, 9, periodic)
    labels = reference.assign_labels(grid, points, weights)
    jac = reference.jacobian_dense(grid, values, labels, points)
    np.testing.assert_allclose(jac, jac.T, rtol=0, atol=1e-15)
    np.testing.assert_allclose(jac.sum(axis=1), 0.0, atol=1e-15)
    off = jac - np.diag(np.diag(jac))
    assert (off <= 0).all()
    assert (np.diag(jac) >= 0).all()
    assert (np.diag(jac) > 0).sum() >= 2


def test_periodic_jacobian_counts_wrapped_faces():
    # Two vertical bands on a torus share two facets (one across the wrap).
    grid = Grid((4, 20), periodic=(False, True))
    values = np.full(grid.shape, 1.0 / grid.n_pixels)
    points = np.array([[2.0, 5.0], [2.0, 15.0]])
    labels = reference.assign_labels(grid, points, np.zeros(2))
    jac = reference.jacobian_dense(grid, values, labels, points)
    c = 2 * 4 * (1 / 80) / (2 * 10)
    np.testing.assert_allclose(jac, [[c, -c], [-c, c]], rtol=1e-12)
    open_grid = Grid((4, 20))
    jac_open = reference.jacobian_dense(open_grid, values, labels, points)
    np.testing.assert_allclose(jac_open, jac / 2, rtol=1e-12)


@pytest.mark.parametrize("density", ["uniform", "smooth"])
def test_jacobian_matches_finite_differences(rng, density):
    grid = Grid((400, 400), spacing=1.0 / 400)
    x0, x1 = np.meshgrid(grid.axis_centres(0), grid.axis_centres(1), indexing="ij")
    if density == "uniform":
        values = np.ones(grid.shape)
    else:
        values = 1.0 + 0.8 * np.sin(3 * x0 + 1) * np.cos(2 * x1)
    values /= values.sum()
    points = 0.15 + 0.7 * rng.random((3, 2))
    weights = np.zeros(3)
    labels = reference.assign_labels(grid, points, weights)
    jac = reference.jacobian_dense(grid, values, labels, points)
    # eps moves each facet by eps / (2 |y_i - y_j|): about 6 pixels at least
    dist = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    eps = 12.0 * dist[dist > 0].min() / 400
    fd = reference.fd_jacobian(grid, values, points, weights, eps)
    np.testing.assert_allclose(fd, jac, rtol=0.05, atol=0.05 * np.abs(jac).max())


def test_jacobian_matches_finite_differences_periodic(rng):
    grid = Grid((300, 300), spacing=1.0 / 300, periodic=True)
    values = np.full(grid.shape, 1.0 / grid.n_pixels)
    points = rng.random((4, 2))
    labels = reference.assign_labels(grid, points, np.zeros(4))
    jac = reference.jacobian_dense(grid, values, labels, points)
    dist = np.sqrt((grid.min_image(points[:, None] - points[None]) ** 2).sum(-1))
    eps = 12.0 * dist[dist > 0].min() / 300
    fd = reference.fd_jacobian(grid, values, points, np.zeros(4), eps)
    np.testing.assert_allclose(fd, jac, rtol=0.05, atol=0.05 * np.abs(jac).max())


@pytest.mark.parametrize(
    ("shape", "shift"), [((24, 36), (5, -7)), ((10, 12, 14), (3, 11, -4))]
)
def test_periodic_labels_invariant_under_pixel_shift(rng, shape, shift):
    spacing = 0.25
    grid, values, points, weights = _random_case(
        rng, shape, 8, periodic=True, spacing=spacing
    )
    labels = reference.assign_labels(grid, points, weights)
    moved = grid.wrap(points + spacing * np.array(shift))
    labels_moved = reference.assign_labels(grid, moved, weights)
    np.testing.assert_array_equal(
        labels_moved, np.roll(labels, shift, axis=tuple(range(len(shape))))
    )
    rolled = np.roll(values, shift, axis=tuple(range(len(shape))))
    np.testing.assert_allclose(
        reference.masses(grid, rolled, moved, weights),
        reference.masses(grid, values, points, weights),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        reference.jacobian_dense(grid, rolled, labels_moved, moved),
        reference.jacobian_dense(grid, values, labels, points),
        rtol=1e-9,
        atol=1e-15,
    )


def test_power_energy_sums_cell_energies(rng):
    grid, values, points, weights = _random_case(rng, (20, 22), 5, periodic=True)
    labels = reference.assign_labels(grid, points, weights)
    _, _, e = reference.cell_moments(grid, values, labels, points)
    np.testing.assert_allclose(
        reference.power_energy(grid, values, points, weights), e.sum(), rtol=1e-12
    )
    # Voronoi cells minimise the transport cost over all assignments with psi = 0.
    other = rng.integers(0, 5, size=grid.shape)
    _, _, e_other = reference.cell_moments(grid, values, other, points)
    assert reference.power_energy(grid, values, points, np.zeros(5)) <= e_other.sum()
