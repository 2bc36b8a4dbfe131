"""Step limits of the damped Newton line search (2D): windowed masses of single cells
against full fractional passes, and the limit keeps the cells above the floor."""

import numpy as np
import pytest
import scipy.sparse as sp

import rasterquant as rq
from rasterquant.assign._limits import (
    CRUSH_RATIO,
    CRUSH_WATCH,
    _cell_masses,
    _closing_ratios,
    _label_bounds,
    crushed_cells,
    step_limit,
)
from rasterquant.assign._polygons import cell_masses_at
from rasterquant.assign.cells import _Raster
from rasterquant.ot._jacobian import solve_newton_system


def _problem(rng, shape=(40, 52), n=30, uniform=False):
    if uniform:
        dens = rq.Density.uniform(shape)
    else:
        dens = rq.Density.from_array(rng.random(shape) + 0.1)
    pts = rng.random((n, 2)) * (np.array(shape) - 1) + 0.5
    return dens, pts


def _clustered(rng):
    """Clustered points on 64 x 64, uniform targets: a cold Newton step from zero
    weights empties some cells. Returns ``(density, points, alpha, raster, psi)``."""
    dens, _ = _problem(rng, shape=(64, 64))
    pts = np.vstack([rng.normal([20, 20], 4.0, (40, 2)), rng.random((40, 2)) * 63])
    pts = np.clip(pts, 0.5, 63.5)
    n = len(pts)
    return dens, pts, np.full(n, 1 / n), _Raster(dens, pts, "fractional"), np.zeros(n)


@pytest.mark.parametrize("uniform", [False, True])
def test_cell_masses_equal_a_full_pass(rng, uniform):
    dens, pts = _problem(rng, uniform=uniform)
    n = len(pts)
    raster = _Raster(dens, pts, "fractional")
    psi = rng.normal(scale=3.0, size=n)
    delta = rng.normal(scale=3.0, size=n)
    cells = np.arange(n, dtype=np.int64)
    h, w = dens.grid.shape
    boxes = np.tile(np.array([0, h, 0, w], np.int64), (n, 1))  # whole raster
    nbr_idx = np.concatenate([np.delete(np.arange(n), i) for i in range(n)])
    nbr_idx = nbr_idx.astype(np.int64)
    nbr_ptr = np.arange(0, n * (n - 1) + 1, n - 1, dtype=np.int64)
    values = raster.values3[0] if raster.umass < 0 else np.zeros((1, 1))
    for t in (0.0, 0.3, 1.0):
        got = _cell_masses(
            cells,
            np.full(n, t),
            boxes,
            nbr_ptr,
            nbr_idx.astype(np.int64),
            pts,
            psi,
            delta,
            values,
            raster.umass,
            np.zeros(2),
            np.ones(2),
        )
        _, want = raster.labels_masses(psi + t * delta)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
        # the same cells as polygons (every other site a candidate)
        rho, _, lo, hi, spacing = raster.poly_data()
        geo = np.array([*dens.grid.origin, *spacing])
        poly, ok = cell_masses_at(
            cells, np.full(n, t), nbr_ptr, nbr_idx, pts, psi, delta, lo, hi, geo, rho
        )
        assert ok
        np.testing.assert_allclose(poly, want, rtol=1e-11, atol=1e-14)


def _cold_step(rng):
    """The cold Newton step on clustered points (its full step empties some cells).

    Returns ``(raster, psi, labels3, m, jac, eps0, delta, low)``: ``low`` the cells
    below the floor ``eps0`` at the full step.
    """
    _, _, alpha, raster, psi = _clustered(rng)
    labels3, m, _, jac = raster.evaluate(psi, None, False, True)
    eps0 = 0.5 * min(alpha.min(), m.min())
    delta = solve_newton_system(jac, alpha - m)
    _, mn = raster.labels_masses(psi + delta)
    return raster, psi, labels3, m, jac, eps0, delta, np.flatnonzero(mn < eps0)


def test_step_limit_keeps_the_low_cells_above_the_floor(rng):
    raster, psi, labels3, _, jac, eps0, delta, low = _cold_step(rng)
    assert low.size > 0  # the full step is too long
    t = step_limit(raster, psi, delta, 1.0, low, labels3, jac, eps0)
    assert 0.0 < t < 1.0
    _, mt = raster.labels_masses(psi + t * delta)
    assert mt[low].min() >= eps0 * (1 - 1e-9)
    # and it is nearly the largest such step: a little further, some cell is low
    _, mf = raster.labels_masses(psi + min(1.0, t + 2.0**-7) * delta)
    assert mf[low].min() < eps0


def test_step_limit_from_polygon_boxes(rng):
    """After a polygon pass (no labels) the windows come from the pixels each cell
    meets: the same limit, to the bisection's resolution."""
    _, _, alpha, raster, psi = _clustered(rng)
    labels3, m, _, jac = raster.evaluate(psi, None, False, True)
    # the second pass at psi is a polygon pass (the first gave the adjacency)
    lab2, m2, _, _ = raster.evaluate(psi, None, False, True)
    assert lab2 is None
    np.testing.assert_allclose(m2, m, rtol=1e-11)
    boxes = raster.cell_boxes(psi)
    assert boxes is not None
    assert raster.cell_boxes(psi + 1.0) is None
    # every pixel centre of a cell lies in its box
    rows, cols = np.indices(raster.grid.shape)
    lab = labels3[0]
    assert (boxes[lab, 0] <= rows).all() and (rows <= boxes[lab, 1]).all()
    assert (boxes[lab, 2] <= cols).all() and (cols <= boxes[lab, 3]).all()
    eps0 = 0.5 * min(alpha.min(), m.min())
    delta = solve_newton_system(jac, alpha - m)
    _, mn = raster.labels_masses(psi + delta)
    low = np.flatnonzero(mn < eps0)
    assert low.size > 0
    t_lab = step_limit(raster, psi, delta, 1.0, low, labels3, jac, eps0)
    t_box = step_limit(raster, psi, delta, 1.0, low, None, jac, eps0, boxes=boxes)
    assert t_box is not None and abs(t_box - t_lab) <= 2.0**-7
    _, mt = raster.labels_masses(psi + t_box * delta)
    assert mt[low].min() >= eps0 * (1 - 1e-9)
    assert step_limit(raster, psi, delta, 1.0, low, None, jac, eps0) is None


def test_step_limit_declines_periodic_and_3d():
    dens = rq.Density.uniform((16, 16), periodic=True)
    pts = np.array([[4.0, 4.0], [12.0, 12.0], [4.0, 12.0]])
    raster = _Raster(dens, pts, "fractional")
    labels3, _m, _, jac = raster.evaluate(np.zeros(3), None, False, True)
    assert (
        step_limit(raster, np.zeros(3), np.ones(3), 1.0, [0], labels3, jac, 0.1) is None
    )


def test_step_limit_of_a_sliver_away_from_its_site():
    """A cell that owns no pixel centre and lies away from its site gets a window
    around its neighbours, not its site (a window at the site saw mass 0 and
    limited every step to 0: seen on a 256^2 coarse level, where Newton stalled)."""
    dens = rq.Density.from_array(np.ones((20, 30)))
    # sites on row 10, at columns 5, 22 and 25; weights put cell 1 on the strip
    # 14.6 <= x <= 15.4 (no pixel centre), its site inside cell 2
    pts = np.array([[10.0, 5.0], [10.0, 22.0], [10.0, 25.0]])
    psi = np.array([0.0, -37.4, 11.2])
    raster = _Raster(dens, pts, "fractional")
    labels3, m, _, jac = raster.evaluate(psi, None, False, True)
    assert not (labels3 == 1).any()
    np.testing.assert_allclose(m[1], 0.8 * 20 / 600, rtol=1e-12)  # 16 of 600 pixels
    delta = np.array([0.0, -30.0, 0.0])  # shrinks cell 1
    eps0 = 0.25 * m[1]
    low = np.array([1])
    t = step_limit(raster, psi, delta, 1.0, low, labels3, jac, eps0, m[low])
    assert 0.0 < t < 1.0
    _, mt = raster.labels_masses(psi + t * delta)
    assert mt[1] >= eps0 * (1 - 1e-9)
    _, mf = raster.labels_masses(psi + (t + 2.0**-7) * delta)
    assert mf[1] < eps0


def _random_pattern(rng, n, k=5):
    """Symmetric neighbour pattern (CSR, with the diagonal) of ``n`` random points."""
    from scipy.spatial import cKDTree

    pts = rng.random((n, 2)) * 30
    pts[1] = pts[0]  # a repeated site: no length, no move
    _, nn = cKDTree(pts).query(pts, k=k + 1)
    rows = np.repeat(np.arange(n), k + 1)
    a = sp.coo_matrix((np.ones(rows.size), (rows, nn.ravel())), shape=(n, n)).tocsr()
    a = (a + a.T).tocsr()
    a.sort_indices()
    return pts, a


def test_closing_ratios_match_the_reference(rng):
    import reference

    for trial in range(4):
        n = 60
        pts, pattern = _random_pattern(rng, n)
        delta = rng.normal(scale=20.0, size=n)
        if trial == 0:
            # an affine delta only translates the cells: nothing closes in
            delta = pts @ np.array([3.0, -2.0]) + 1.0
        tau = float(rng.uniform(0.1, 1.0))
        got = np.empty(n)
        _closing_ratios(
            pattern.indptr.astype(np.int64),
            pattern.indices.astype(np.int64),
            pts,
            delta,
            tau,
            got,
        )
        nbrs = [
            list(pattern.indices[pattern.indptr[i] : pattern.indptr[i + 1]])
            for i in range(n)
        ]
        want = reference.closing_ratios(pts, nbrs, delta, tau)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
        if trial == 0:
            assert got.max() < 1e-6
        # the watched cells: the largest ratios above the threshold, at most the cap
        watch = crushed_cells(pts, pattern, np.ones(n), delta, tau)
        above = np.flatnonzero(want > CRUSH_RATIO)
        assert set(watch) <= set(above)
        assert len(watch) == min(len(above), CRUSH_WATCH)


def test_crushed_cells_find_a_cell_the_full_step_crushes(rng):
    # the clustered cold step: the cells that fall below the floor at the full step
    # are not known before the trial pass; the watched cells hold one of them
    raster, _, _, m, jac, _, delta, low = _cold_step(rng)
    assert low.size
    watch = crushed_cells(raster.points, jac, m, delta, 1.0)
    assert np.intersect1d(watch, low).size


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (40, 52)])
def test_label_bounds_match_the_reference(rng, shape):
    """Bounding boxes of chosen labels, including cells that own no pixel."""
    from reference import label_bounds

    n = 12
    lab = rng.integers(0, n - 3, size=shape).astype(np.int32)  # 9..11 own none
    cells = rng.permutation(n)[:7]
    got = _label_bounds(lab, cells, n)
    want = label_bounds(lab, cells, n)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
