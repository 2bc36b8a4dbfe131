"""Polygon passes (``assign/_polygons.py``): cells built from the adjacency graph."""

import numba
import numpy as np
import pytest
import reference
import scipy.sparse as sp

import rasterquant as rq
from rasterquant.assign import _polygons
from rasterquant.assign.cells import QuadratureSpec, _Raster


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


def _spy_polygon_passes(monkeypatch, moments=False):
    """Record, for every polygon pass (with moments, if ``moments``), whether it was
    certified."""
    calls = []
    orig = _Raster._polygon

    def spy(self, weights, want_jac, want_moments=False, floor=None):
        res = orig(self, weights, want_jac, want_moments, floor)
        if want_moments or not moments:
            calls.append(res is not None)
        return res

    monkeypatch.setattr(_Raster, "_polygon", spy)
    return calls


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
    return m, jac, res[0], res[2]()


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
    _, _, jac, _ = r._polygon(w, True)
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
        m1, _, j1, _ = r._polygon(w, True)
        j1 = j1()
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        r.evaluate(w, None, False, True)  # same graph again
        m2, _, j2, _ = r._polygon(w, True)
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
    calls = _spy_polygon_passes(monkeypatch)
    a = rq.solve_ot(density, pts, tol=1e-8)
    assert any(calls), "no polygon pass was used"
    calls.clear()
    pixels = QuadratureSpec("fractional", polygon_cells=False)
    b = rq.solve_ot(density, pts, tol=1e-8, quadrature=pixels)
    assert not calls
    assert a.converged and b.converged
    assert a.max_error <= 1e-8
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-6 * np.ptp(b.weights))
    np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize("zeros", [False, True])
def test_polygon_moments_match_pixel_pass_and_reference(rng, zeros):
    """Barycenters and energies of polygon cells (Green's theorem with Simpson's rule
    on each piece) equal the pixel pass's and the half-space reference's."""
    density, pts, w = _problem(rng, (21, 17), 12)
    if zeros:
        v = density.values.copy()
        v[5:12, 3:9] = 0.0
        density = rq.Density.from_array(v, density.grid)
    r = _Raster(density, pts, "fractional")
    _, _, (m_ref, bary, energy), _ = r.evaluate(w, None, True, True)
    if zeros:
        r.floor_links(r.centre_labels(w))  # (their links join the adjacency)
    labels, _, mom, _ = r.evaluate(w, None, True, True)
    assert labels is None, "expected a polygon pass"
    np.testing.assert_allclose(mom[0], m_ref, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(mom[1], bary, rtol=0, atol=1e-10)
    np.testing.assert_allclose(mom[2], energy, rtol=1e-10, atol=1e-13)
    ref_m, ref_b = reference.fractional_moments(density.grid, density.values, pts, w)
    np.testing.assert_allclose(mom[0], ref_m, rtol=1e-7, atol=1e-12)
    ok = ref_m > 0
    np.testing.assert_allclose(mom[1][ok], ref_b[ok], atol=1e-7)


def test_facet_move_rates_at_centres_agree_with_pixel_centres(rng):
    """The predictor's rates from facet centres (polygon passes) are the exact first
    order of the masses in the site moves (the error of a move of size s shrinks as
    s); the pixel pass's pieces at pixel centres agree to a fraction of a pixel."""
    from rasterquant.assign._kernels import _facet_move_rates, _facet_move_rates_at

    density, pts, w = _problem(rng, (30, 26), 25)
    r = _Raster(density, pts, "fractional")
    r.evaluate(w, None, False, True)
    res = r._polygon(w, True)
    _, rows, cols, vals, centres, _ = r.facets
    n = len(pts)
    direction = rng.normal(size=(n, 2))
    errors = []
    for scale in (1e-4, 1e-5):
        d3 = np.column_stack([np.zeros(n), scale * direction])
        dm = _facet_move_rates_at(rows, cols, vals, centres, pts, scale * direction, n)
        moved = _Raster(density, pts + scale * direction, "fractional")
        _, m1, _, _ = moved.evaluate(w, None, False, False)
        errors.append(np.abs(m1 - res[0] - dm).max() / np.abs(dm).max())
    assert errors[1] <= 1e-3 and errors[1] <= errors[0] / 5, errors
    # the pixel pass's pieces at pixel centres
    r.graph = None
    r.evaluate(w, None, False, True)
    _, *pieces, _ = r.facets
    geometry = (r.shape3, r.spacing3, r.origin3, r.lengths3, r.periodic3)
    dmp = _facet_move_rates(*pieces, r.points3, d3, *geometry, n)
    np.testing.assert_allclose(dmp, dm, atol=0.05 * np.abs(dm).max())


def test_uncertified_pass_bounds_masses_from_above(rng):
    """A pass that the areas do not certify still bounds every mass from above (each
    polygon contains its cell): with a floor that some bound is below, a Newton trial
    is rejected from it, without a pixel pass."""
    density, pts, w = _problem(rng, (40, 40), 80, weight_scale=0.3)
    r = _Raster(density, pts, "fractional")
    r.evaluate(w, None, False, True)  # the adjacency at w
    far = w + rng.normal(scale=40.0, size=len(pts))
    exact = _Raster(density, pts, "fractional").evaluate(far, None, False, False)[1]
    assert exact.min() == 0.0  # some cells are empty there
    floor = 0.5 * exact[exact > 0].min()
    labels, m, _, jac = r.evaluate_deferred(far, None, False, True, floor=floor)
    assert labels is None and jac is None  # (the bound path, for this case)
    if labels is None and jac is None:
        # the upper bounds
        assert (m >= exact - 1e-12).all() and m.min() < floor
    else:
        np.testing.assert_allclose(m, exact, rtol=1e-11, atol=1e-14)
    # without a floor: exact masses (certified polygons or the pixel pass)
    _, m2, _, _ = r.evaluate_deferred(far, None, False, True)
    np.testing.assert_allclose(m2, exact, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("method", ["voronoi", "uniform"])
def test_lloyd_with_polygon_passes_matches_pixel_passes(rng, monkeypatch, method):
    """Lloyd iterations take polygon passes (moments, and the facet centres for the
    weights' predictor): the same points and energies as with pixel passes."""
    lum = rng.random((48, 56))
    density = rq.Density.from_luminance(lum, floor=0.1)
    pts = rq.sample_points(density, 150, seed=2)
    calls = _spy_polygon_passes(monkeypatch, moments=True)
    a = rq.lloyd(density, pts, method=method, n_iter=4, ot_tol=1e-9)
    assert any(calls), "no polygon pass with moments was used"
    pixels = QuadratureSpec("fractional", polygon_cells=False)
    b = rq.lloyd(density, pts, method=method, n_iter=4, ot_tol=1e-9, quadrature=pixels)
    np.testing.assert_allclose(a.points, b.points, atol=1e-6)
    np.testing.assert_allclose(a.history["energy"], b.history["energy"], rtol=1e-8)


@pytest.mark.parametrize("offset", [0.0, 0.25, 0.5, 1.0 / 3.0])
def test_polygon_grid_cloud_closed_forms(offset):
    """A grid cloud on a uniform density: cells are squares of 4 x 4 pixels, shifted
    by ``offset`` pixels against the pixels (facets on pixel borders at 0). Masses,
    energies and the Jacobian equal the closed forms; the pass is the polygon one."""
    density = rq.Density.uniform((32, 32))
    g = (np.arange(8) + 0.5) * 4.0
    pts = np.array([(y, x) for y in g for x in g]) + offset
    pts = np.clip(pts, 0.01, 31.99)
    w = np.zeros(len(pts))
    r = _Raster(density, pts, "fractional")
    r.evaluate(w, None, False, True)
    labels, _, (masses, bary, energy), jac = r.evaluate(w, None, True, True)
    assert labels is None, "expected a polygon pass"
    k = np.arange(64)
    inner = (k // 8 >= 1) & (k // 8 <= 6) & (k % 8 >= 1) & (k % 8 <= 6)
    # interior cells (not in the first or last row or column of the grid): 4 x 4
    # squares centred on their sites
    np.testing.assert_allclose(masses[inner], 16 / 1024, rtol=1e-12)
    np.testing.assert_allclose(bary[inner], pts[inner], atol=1e-12)
    np.testing.assert_allclose(energy[inner], 16 * (16 + 16) / 12 / 1024, rtol=1e-12)
    # facets of interior neighbours: length 4, sites 4 apart, density 1/1024
    a = jac.toarray()
    i = int(np.flatnonzero(inner)[0])
    j = int(np.flatnonzero(np.abs(pts - pts[i] - [0, 4]).sum(axis=1) < 1e-9)[0])
    assert abs(a[i, j] + 4 / (2 * 4) / 1024) <= 1e-15
    np.testing.assert_allclose(masses.sum(), 1.0, rtol=1e-13)


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
    rho, _, lo, hi, spacing = r.poly_data()
    bufs = _polygons.new_buffers(n)
    args = ((lo, hi, lo, spacing), rho, np.zeros((1, 1)), (True, False, False), 1, 8)
    overflow, check = _polygons._polygon_pass(pts, w, graph, *args, bufs)
    tol = _polygons.LENGTH_RTOL * np.sqrt(density.grid.volume / n)
    assert overflow == 0
    assert abs(check) > tol
    # with the full graph the 1-rings are exact: the check holds
    overflow, check = _polygons._polygon_pass(pts, w, r.graph, *args, bufs)
    assert overflow == 0
    assert abs(check) <= tol
    res = _polygons.polygon_cells(
        pts, w, graph, lo, hi, lo, spacing, rho, None, True, 8, depth=1
    )
    assert res is not None and res.depth >= 2
    np.testing.assert_allclose(res.masses, m, rtol=1e-11, atol=1e-13 * m.sum())


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
    r.floor_links(labels)  # (its links join the adjacency)
    res = r._polygon(w, True)
    assert res is not None
    np.testing.assert_allclose(res[0], m, rtol=1e-11, atol=1e-13 * m.sum())
    assert abs(res[2]() - jac).max() <= 1e-11 * abs(jac).max()
    poly_links = r.floor_links(None, w)
    assert poly_links is not None and poly_links.nnz > 0
    assert abs(poly_links - poly_links.T).max() <= 1e-15 * abs(poly_links).max()
    np.testing.assert_allclose(
        np.asarray(poly_links.sum(axis=1)).ravel(), 0, atol=1e-12
    )


@pytest.mark.parametrize(("shape", "periodic"), [((12, 14), True), ((6, 7, 8), False)])
def test_periodic_and_3d_rasters_keep_pixel_passes(rng, shape, periodic):
    """Polygon passes are 2D without periodic axes: the others keep the pixel
    passes (labels returned), which tests/reference.py checks in 2D, 3D and
    periodic cases (tests/test_assign.py)."""
    density = rq.Density.from_array(rng.random(shape) + 0.1, periodic=periodic)
    pts = rng.random((8, len(shape))) * (np.array(shape) - 1) + 0.5
    r = _Raster(density, pts, "fractional")
    w = np.zeros(len(pts))
    r.evaluate(w, None, False, True)
    assert not r.polygon_ready()
    labels, m, _, _ = r.evaluate(w, None, False, True)
    assert labels is not None
    ref_m, _ = reference.fractional_moments(density.grid, density.values, pts, w)
    np.testing.assert_allclose(m, ref_m, rtol=1e-7, atol=1e-12)


def test_cell_masses_at_match_reference(rng):
    """The step limits' polygon masses equal the half-space reference at the trial
    weights."""
    density, pts, w = _problem(rng, (14, 12), 10)
    n = len(pts)
    delta = rng.normal(scale=0.5, size=n)
    r = _Raster(density, pts, "fractional")
    rho, _, lo, hi, spacing = r.poly_data()
    geo = np.array([*density.grid.origin, *spacing])
    cells = np.arange(n, dtype=np.int64)
    nbr_idx = np.concatenate([np.delete(np.arange(n), i) for i in range(n)])
    nbr_ptr = np.arange(0, n * (n - 1) + 1, n - 1, dtype=np.int64)
    for t in (0.0, 0.7):
        m, ok = _polygons.cell_masses_at(
            cells,
            np.full(n, t),
            nbr_ptr,
            nbr_idx.astype(np.int64),
            pts,
            w,
            delta,
            lo,
            hi,
            geo,
            rho,
        )
        assert ok
        ref, _ = reference.fractional_moments(
            density.grid, density.values, pts, w + t * delta
        )
        np.testing.assert_allclose(m, ref, rtol=1e-7, atol=1e-12)
