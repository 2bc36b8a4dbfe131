"""Polygon passes (``assign/_polygons.py``): cells built from the adjacency graph."""

import numba
import numpy as np
import pytest
import reference
import scipy.sparse as sp

import rasterquant as rq
from rasterquant import _config
from rasterquant.assign import _polygons
from rasterquant.assign.cells import _Raster


def _problem(rng, shape, n, uniform=False, weight_scale=0.5):
    if uniform:
        density = rq.Density.uniform(shape)
    else:
        density = rq.Density.from_array(
            rng.random(shape) + 0.1,
            spacing=rng.uniform(0.7, 1.4, 2),
            origin=rng.normal(size=2),
        )
    g = density.grid
    lo = np.array([e[0] for e in g.extent])
    hi = np.array([e[1] for e in g.extent])
    pts = lo + rng.random((n, 2)) * (hi - lo)
    w = rng.normal(scale=weight_scale, size=n)
    return density, pts, w


def _pixel_and_polygon(density, pts, w, graph_weights=None):
    """Masses and Jacobian of a pixel pass, and of a polygon pass (or None)."""
    r = _Raster(density, pts, "fractional")
    gw = w if graph_weights is None else graph_weights
    # the pixel pass: its Jacobian gives the graph (an empty cell has no neighbours
    # there, and its polygon would be the box: such passes are declined, see below)
    m_graph = r.evaluate(gw, None, False, True)[1]
    assert graph_weights is not None or (m_graph > 0).all()
    assert r.graph is not None
    graph = r.graph
    r.graph = None
    _, m, _, jac = r.evaluate(w, None, False, True)
    r.graph = graph
    res = r._polygon(w, True)
    if res is None:
        return m, jac, None, None
    return m, jac, res[0], res[1]()


@pytest.mark.parametrize(
    ("shape", "n", "uniform", "scale"),
    [
        ((9, 11), 6, False, 0.5),
        ((16, 13), 25, False, 0.5),
        ((40, 37), 120, True, 0.0),
    ],
)
def test_polygon_masses_match_pixel_pass_and_reference(rng, shape, n, uniform, scale):
    """Same masses as the pixel pass (1e-11) and as the half-space reference."""
    density, pts, w = _problem(rng, shape, n, uniform, scale)
    m, jac, pm, pjac = _pixel_and_polygon(density, pts, w)
    assert pm is not None, "the areas of exact cells must certify the pass"
    np.testing.assert_allclose(pm, m, rtol=1e-11, atol=1e-13 * m.sum())
    scale = abs(jac).max()
    assert abs(pjac - jac).max() <= 1e-11 * scale
    if n <= 25:
        ref_m, _ = reference.fractional_moments(density.grid, density.values, pts, w)
        np.testing.assert_allclose(pm, ref_m, rtol=1e-7, atol=1e-12)


def test_polygon_jacobian_is_the_derivative_of_its_masses(rng):
    """Central differences of polygon masses agree with its Jacobian (1e-4)."""
    density, pts, w = _problem(rng, (24, 20), 30)
    r = _Raster(density, pts, "fractional")
    r.evaluate(w, None, False, True)
    _, jac = r._polygon(w, True)
    jac = jac().toarray()
    h = 1e-6
    for i in rng.choice(len(pts), 6, replace=False):
        e = np.zeros(len(pts))
        e[i] = h
        mp = r._polygon(w + e, False)[0]
        mm = r._polygon(w - e, False)[0]
        fd = (mp - mm) / (2 * h)
        np.testing.assert_allclose(fd, jac[:, i], rtol=1e-4, atol=1e-6 * abs(jac).max())


def test_polygon_pass_is_certified_or_declined(rng):
    """A graph from far-away weights misses neighbours: the pass declines (None)
    rather than return masses of cells that overlap; from near weights it holds."""
    density, pts, w = _problem(rng, (30, 30), 60, uniform=True, weight_scale=1.0)
    far = rng.normal(scale=60.0, size=len(pts))
    m, _, pm, _ = _pixel_and_polygon(density, pts, w, graph_weights=far)
    if pm is not None:
        np.testing.assert_allclose(pm, m, rtol=1e-11, atol=1e-13 * m.sum())
    # an empty graph: every candidate list is empty, every polygon is the box
    r = _Raster(density, pts, "fractional")
    r.graph = (np.zeros(len(pts) + 1, np.int64), np.zeros(0, np.int64))
    assert r._polygon(w, True) is None
    # the raster falls back to the pixel pass: masses still exact
    labels, m2, _, _ = r.evaluate(w, None, False, True)
    assert labels is not None
    np.testing.assert_allclose(m2, m, rtol=1e-12)


def test_polygon_certificate_catches_a_missing_neighbour(rng):
    """Removing one edge from both ends of the graph leaves two cells whose 2-rings
    may still hold each other; removing every edge of one cell makes its polygon too
    big, which the area sum must catch."""
    density, pts, w = _problem(rng, (30, 30), 40, uniform=True, weight_scale=1.0)
    r = _Raster(density, pts, "fractional")
    r.evaluate(w, None, False, True)
    indptr, indices = r.graph
    a = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(40, 40))
    a = a.tolil()
    # isolate cell 0 from the graph: no cell lists it, it lists none
    a[0, :] = 0
    a[:, 0] = 0
    a = a.tocsr()
    a.eliminate_zeros()
    r.graph = (a.indptr.astype(np.int64), a.indices.astype(np.int64))
    assert r._polygon(w, True) is None


def test_polygon_pass_identical_for_one_and_two_threads(rng):
    density, pts, w = _problem(rng, (48, 40), 150)
    r = _Raster(density, pts, "fractional")
    r.evaluate(w, None, False, True)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        m1, j1 = r._polygon(w, True)
        j1 = j1()
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        r.evaluate(w, None, False, True)  # same graph again
        m2, j2 = r._polygon(w, True)
        j2 = j2()
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(m1, m2)
    assert (j1 != j2).nnz == 0


def test_solve_with_polygon_passes_matches_pixel_passes(rng, monkeypatch):
    """solve_ot takes its passes as polygons where it can: same solution."""
    lum = rng.random((64, 72))
    density = rq.Density.from_luminance(lum, floor=0.1)
    pts = rq.sample_points(density, 400, seed=1)
    calls = []
    orig = _Raster._polygon

    def spy(self, weights, want_jac):
        res = orig(self, weights, want_jac)
        calls.append(res is not None)
        return res

    monkeypatch.setattr(_Raster, "_polygon", spy)
    a = rq.solve_ot(density, pts, tol=1e-8)
    assert any(calls), "no polygon pass was used"
    monkeypatch.setattr(_config, "POLYGON_CELLS", False)
    calls.clear()
    b = rq.solve_ot(density, pts, tol=1e-8)
    assert not calls
    assert a.converged and b.converged
    assert a.max_error <= 1e-8
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-6 * np.ptp(b.weights))
    np.testing.assert_array_equal(a.labels, b.labels)


def test_row_prefix():
    rho = np.arange(12.0).reshape(3, 4)
    p = _polygons.row_prefix(rho, 0.5)
    assert p.shape == (3, 5)
    np.testing.assert_allclose(p[:, 0], 0.0)
    np.testing.assert_allclose(p[:, -1], rho.sum(axis=1) * 0.5)


def _without_pair(graph, n, i, k):
    a = sp.csr_matrix((np.ones(len(graph[1])), graph[1], graph[0]), shape=(n, n))
    a = a.tolil()
    a[i, k] = 0
    a[k, i] = 0
    a = a.tocsr()
    a.eliminate_zeros()
    return a.indptr.astype(np.int64), a.indices.astype(np.int64)


def test_facet_check_catches_a_short_missing_facet(rng):
    """Cells built from their 1-ring only, with the shortest facet's pair removed
    from the graph: the two cells overlap their lost neighbour by a sliver, which the
    facet check sees (the facets around it differ in length from the two sides), and
    the pass retries with wider rings."""
    density, pts, w = _problem(rng, (40, 40), 80, weight_scale=0.3)
    r = _Raster(density, pts, "fractional")
    _, m, _, jac = r.evaluate(w, None, False, True)
    n = len(pts)
    off = sp.triu(jac, 1).tocoo()
    k = np.argmax(off.data)  # the least negative entry: the shortest facet
    i, j = int(off.row[k]), int(off.col[k])
    graph = _without_pair(r.graph, n, i, j)
    r._polygon(w, False)  # prepares the raster's prefix sums
    rho, _, prefix, lo, hi, spacing = r._poly_data
    bufs = [np.empty(n), np.empty(n), np.empty((n, 4), np.int64)]
    bufs += [np.empty(n * _polygons.MAX_FACETS, t) for t in (np.int64, np.int64)]
    bufs += [np.empty(n * _polygons.MAX_FACETS) for _ in range(2)]
    args = (pts, w, graph[0], graph[1], lo, hi, lo, spacing, rho, np.zeros((1, 1)))
    overflow, check = _polygons._polygon_pass(*args, prefix, True, False, 1, 8, *bufs)
    tol = _polygons.LENGTH_RTOL * np.sqrt(density.grid.volume / n)
    assert overflow == 0
    assert abs(check) > tol
    # with the full graph the 1-rings are exact: the check holds
    overflow, check = _polygons._polygon_pass(
        pts, w, r.graph[0], r.graph[1], *args[4:], prefix, True, False, 1, 8, *bufs
    )
    assert abs(check) <= tol
    res = _polygons.polygon_cells(
        pts, w, graph, lo, hi, lo, spacing, rho, None, prefix, True, 8, depth=1
    )
    assert res is not None and res[-1] >= 2
    np.testing.assert_allclose(res[0], m, rtol=1e-11, atol=1e-13 * m.sum())


def test_polygon_pass_on_zero_density(rng):
    """Zero pixels: the adjacency of a pixel pass lacks the facets through them, the
    weak links add them; the polygon pass then matches the pixel pass, and its links
    form a Laplacian (symmetric, rows summing to zero)."""
    values = rng.random((48, 40)) + 0.1
    values[10:30, 5:35] = 0.0
    density = rq.Density.from_array(values)
    pts = rq.sample_points(density, 120, seed=3)
    r = _Raster(density, pts, "fractional")
    w = np.zeros(len(pts))
    labels, m, _, jac = r.evaluate(w, None, False, True)
    links = r.floor_links(labels)
    r.extend_graph(links)
    res = r._polygon(w, True)
    assert res is not None
    np.testing.assert_allclose(res[0], m, rtol=1e-11, atol=1e-13 * m.sum())
    assert abs(res[1]() - jac).max() <= 1e-11 * abs(jac).max()
    poly_links = r.floor_links(None, w)
    assert poly_links is not None and poly_links.nnz > 0
    assert abs(poly_links - poly_links.T).max() <= 1e-15 * abs(poly_links).max()
    np.testing.assert_allclose(
        np.asarray(poly_links.sum(axis=1)).ravel(), 0, atol=1e-12
    )
