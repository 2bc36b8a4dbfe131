"""Exact geometric power cells of a uniform density (rasterquant.assign._laguerre)."""

import itertools

import numba
import numpy as np
import pytest
import reference

import rasterquant as rq
from rasterquant.assign import _laguerre
from rasterquant.assign._laguerre import laguerre_cells
from rasterquant.grid import Grid


def _random_case(rng, n, lengths, periodic, weight_scale=0.2):
    """Points in a box with a random origin, weights ~ weight_scale * cell size^2."""
    lengths = np.asarray(lengths, dtype=float)
    d = len(lengths)
    lo = rng.normal(size=d)
    pts = lo + rng.random((n, d)) * lengths
    scale = (np.prod(lengths) / n) ** (2.0 / d)
    weights = rng.normal(scale=weight_scale * scale, size=n)
    return pts, weights, lo, lo + lengths, np.broadcast_to(periodic, (d,)).copy()


def _jacobian(rows, cols, vals, n):
    """Dense d volume / d psi from the triplets: diag(A 1) - A, A symmetric."""
    a = np.zeros((n, n))
    np.add.at(a, (rows, cols), vals)
    a = a + a.T
    return np.diag(a.sum(axis=1)) - a


@pytest.mark.parametrize(
    ("shape", "spacing", "periodic", "n"),
    [
        ((12, 14), (0.1, 0.08), False, 25),
        ((6, 7, 5), (0.2, 0.15, 0.2), False, 15),
        ((2, 3), (0.5, 0.4), True, 12),
        ((3, 2), (0.4, 0.5), (True, False), 12),
        ((2, 2, 2), (0.5, 0.4, 0.3), True, 8),
        ((2, 2, 2), (0.5, 0.4, 0.3), (False, True, True), 8),
    ],
)
def test_matches_polytope_reference(rng, shape, spacing, periodic, n):
    d = len(shape)
    grid = Grid(shape, spacing=spacing, origin=rng.normal(size=d), periodic=periodic)
    lo = np.array(grid.origin)
    pts = lo + rng.random((n, d)) * grid.lengths
    box_volume = np.prod(grid.lengths)
    weights = rng.normal(scale=0.2 * (box_volume / n) ** (2 / d), size=n)
    uniform = np.full(shape, 1.0 / np.prod(shape))
    ref_mass, ref_bary = reference.fractional_moments(grid, uniform, pts, weights)
    out, _, _, _ = laguerre_cells(pts, weights, lo, lo + grid.lengths, grid.periodic)
    np.testing.assert_allclose(out[:, 0] / box_volume, ref_mass, rtol=1e-10, atol=1e-15)
    full = out[:, 0] > 0
    assert full.sum() >= n - 3  # the weights leave most cells non-empty
    bary = grid.wrap(pts[full] + out[full, 4 - d : 4] / out[full, :1])
    np.testing.assert_allclose(
        grid.min_image(bary - ref_bary[full]), 0.0, atol=1e-12 * grid.lengths.max()
    )


@pytest.mark.parametrize(
    ("lengths", "periodic", "n"),
    [
        ((1.0, 1.3), False, 14),
        ((1.0, 0.8, 1.2), False, 12),
        ((1.0, 1.3), True, 3),
        ((1.0, 0.8, 1.2), (True, False, True), 10),
    ],
)
def test_jacobian_matches_finite_differences(rng, lengths, periodic, n):
    pts, weights, lo, hi, per = _random_case(rng, n, lengths, periodic)
    _, rows, cols, vals = laguerre_cells(pts, weights, lo, hi, per)
    assert (rows < cols).all()
    jac = _jacobian(rows, cols, vals, n)
    step = 1e-5 * (np.prod(lengths) / n) ** (2.0 / len(lengths))
    fd = np.empty((n, n))
    for j in range(n):
        dw = np.zeros(n)
        dw[j] = step
        up = laguerre_cells(pts, weights + dw, lo, hi, per, False, False)[0][:, 0]
        down = laguerre_cells(pts, weights - dw, lo, hi, per, False, False)[0][:, 0]
        fd[:, j] = (up - down) / (2 * step)
    np.testing.assert_allclose(jac, fd, rtol=1e-5, atol=1e-5 * np.abs(jac).max())
    np.testing.assert_allclose(fd, fd.T, atol=1e-5 * np.abs(jac).max())
    np.testing.assert_allclose(jac.sum(axis=1), 0.0, atol=1e-12 * np.abs(jac).max())
    assert (vals > 0).all()


@pytest.mark.parametrize(
    ("lengths", "periodic"),
    [
        ((1.0, 2.0), False),
        ((1.0, 2.0), (False, True)),
        ((1.0, 0.7, 1.5), False),
        ((1.0, 0.7, 1.5), True),
    ],
)
def test_volumes_sum_and_weight_shift(rng, lengths, periodic):
    pts, weights, lo, hi, per = _random_case(rng, 400, lengths, periodic)
    out, rows, cols, vals = laguerre_cells(pts, weights, lo, hi, per)
    np.testing.assert_allclose(out[:, 0].sum(), np.prod(lengths), rtol=1e-12)
    shifted = laguerre_cells(pts, weights + 3.7, lo, hi, per)
    np.testing.assert_allclose(shifted[0], out, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(shifted[1], rows)
    np.testing.assert_array_equal(shifted[2], cols)
    np.testing.assert_allclose(shifted[3], vals, rtol=1e-9)


def test_flags_leave_volumes_unchanged(rng):
    pts, weights, lo, hi, per = _random_case(rng, 60, (1.0, 1.0, 1.0), True)
    out, rows, _, _ = laguerre_cells(pts, weights, lo, hi, per)
    bare, r2, c2, v2 = laguerre_cells(pts, weights, lo, hi, per, False, False)
    np.testing.assert_array_equal(bare[:, 0], out[:, 0])
    np.testing.assert_array_equal(bare[:, 1:], 0.0)
    assert len(rows) > 0 and r2.size == c2.size == v2.size == 0
    assert r2.dtype == c2.dtype == np.int64 and v2.dtype == np.float64


def test_same_result_for_one_and_two_threads(rng):
    pts, weights, lo, hi, per = _random_case(rng, 3000, (1.0, 1.0, 1.0), True)
    prev = numba.get_num_threads()
    results = []
    try:
        for k in (1, 2):
            numba.set_num_threads(min(k, numba.config.NUMBA_NUM_THREADS))
            results.append(laguerre_cells(pts, weights, lo, hi, per))
    finally:
        numba.set_num_threads(prev)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("counts", "periodic"),
    [
        ((4, 5), False),
        ((3, 2), True),
        ((3, 4, 2), False),
        ((3, 2, 4), (True, True, False)),
    ],
)
def test_grid_cloud_closed_form(counts, periodic):
    d = len(counts)
    counts = np.array(counts)
    lo = np.array([0.3, -1.0, 0.25][:d])
    h = np.array([0.5, 0.3, 0.7][:d])
    per = np.broadcast_to(periodic, (d,))
    idx = np.array(list(itertools.product(*[range(k) for k in counts])))
    pts = lo + (idx + 0.5) * h
    out, rows, cols, vals = laguerre_cells(
        pts, np.zeros(len(pts)), lo, lo + counts * h, per
    )
    vol = np.prod(h)
    np.testing.assert_allclose(out[:, 0], vol, rtol=1e-12)
    np.testing.assert_allclose(out[:, 1:4], 0.0, atol=1e-14)
    np.testing.assert_allclose(out[:, 4], vol * (h**2).sum() / 12, rtol=1e-12)
    # one facet per face-adjacent pair (two on a periodic axis of two sites)
    flat = {tuple(t): k for k, t in enumerate(idx)}
    expected = []
    for t in idx:
        for a in range(d):
            u = t.copy()
            u[a] += 1
            if per[a]:
                u[a] %= counts[a]
            if u[a] == counts[a] or (u == t).all():
                continue
            i, j = flat[tuple(t)], flat[tuple(u)]
            expected.append((min(i, j), max(i, j), vol / h[a] / (2 * h[a])))
    expected.sort()
    assert list(zip(rows, cols, strict=True)) == [e[:2] for e in expected]
    np.testing.assert_allclose(vals, [e[2] for e in expected], rtol=1e-12)


@pytest.mark.parametrize(("d", "periodic"), [(2, False), (3, False), (3, True)])
def test_lattice_subset_has_no_degenerate_facets(rng, d, periodic):
    # sites on a coarse lattice: many co-circular / co-spherical sites, so planes pass
    # through cell vertices; contacts at a vertex or an edge must give no triplet
    pts = np.unique(rng.integers(0, 8, size=(250, d)), axis=0) + 0.5
    lo, hi = np.zeros(d), np.full(d, 8.0)
    out, rows, cols, vals = laguerre_cells(pts, np.zeros(len(pts)), lo, hi, periodic)
    np.testing.assert_allclose(out[:, 0].sum(), 8.0**d, rtol=1e-12)
    assert vals.min() > 1e-6
    pairs = set(zip(rows.tolist(), cols.tolist(), strict=True))
    # face-adjacent lattice sites always share a facet of the lattice cell's face area
    for i, j in itertools.combinations(range(len(pts)), 2):
        if np.abs(pts[i] - pts[j]).sum() == 1.0:
            assert (i, j) in pairs


def test_two_sites_split_box_at_the_power_bisector():
    lo, hi = np.zeros(3), np.array([1.0, 2.0, 3.0])
    y = np.array([[0.3, 1.0, 1.5], [0.7, 1.0, 1.5]])
    w = np.array([0.01, -0.02])
    out, rows, cols, vals = laguerre_cells(y, w, lo, hi, False)
    t = 0.5 + (w[0] - w[1]) / (2 * 0.4)  # boundary moved by (w1 - w2) / (2 |y1 - y2|)
    np.testing.assert_allclose(out[:, 0], [6 * t, 6 * (1 - t)], rtol=1e-13)
    np.testing.assert_allclose(
        out[0, 1:4], [6 * (t**2 / 2 - 0.3 * t), 0, 0], atol=1e-14
    )
    m2 = 2 * ((t - 0.3) ** 3 + 0.3**3) + t * (3 * 2 / 3 + 2 * 2.25)
    np.testing.assert_allclose(out[0, 4], m2, rtol=1e-13)
    assert (rows.tolist(), cols.tolist()) == ([0], [1])
    np.testing.assert_allclose(vals, 6 / (2 * 0.4), rtol=1e-13)


def test_two_sites_on_a_periodic_axis_share_two_facets():
    lo, hi = np.array([0.0, 0.0]), np.array([1.0, 0.5])
    y = np.array([[0.3, 0.2], [0.7, 0.2]])
    w = np.array([0.01, -0.02])
    out, rows, cols, vals = laguerre_cells(y, w, lo, hi, [True, False])
    right = 0.5 + (w[0] - w[1]) / (2 * 0.4)  # bisector with y2
    left = 0.0 - (w[0] - w[1]) / (2 * 0.6)  # bisector with the image y2 - (1, 0)
    np.testing.assert_allclose(
        out[:, 0], [0.5 * (right - left), 0.5 * (1 - right + left)], rtol=1e-13
    )
    assert (rows.tolist(), cols.tolist()) == ([0, 0], [1, 1])
    np.testing.assert_allclose(sorted(vals), [0.5 / 1.2, 0.5 / 0.8], rtol=1e-13)


@pytest.mark.parametrize(
    ("site", "periodic", "first", "second"),
    [
        ([0.2, 0.9, 0.4], True, [0, 0, 0], 0.25),
        ([0.25, 0.5], False, [0.5 - 0.25, 0], (0.25**3 + 0.75**3) / 3 + 1 / 12),
    ],
)
def test_single_site_owns_the_box(site, periodic, first, second):
    d = len(site)
    out, rows, _, _ = laguerre_cells([site], [0.3], np.zeros(d), np.ones(d), periodic)
    np.testing.assert_allclose(
        out[0], [1, *([0] * (3 - d)), *first, second], atol=1e-15
    )
    assert rows.size == 0


@pytest.mark.parametrize(
    ("lengths", "periodic"),
    [((1.0, 1.3), True), ((1.0, 0.8, 1.2), (True, False, True))],
)
def test_neighbour_retries_give_the_same_cells(rng, monkeypatch, lengths, periodic):
    # a tiny first-round radius sends every cell through the retry rounds
    pts, weights, lo, hi, per = _random_case(rng, 60, lengths, periodic)
    expected = laguerre_cells(pts, weights, lo, hi, per)
    out, rows, cols, vals = laguerre_cells(
        pts, weights, lo, hi, per, radius_spacings=0.05
    )
    np.testing.assert_allclose(out, expected[0], rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(rows, expected[1])
    np.testing.assert_array_equal(cols, expected[2])
    np.testing.assert_allclose(vals, expected[3], rtol=1e-10)


@pytest.mark.parametrize(("d", "periodic"), [(2, False), (3, False), (3, True)])
def test_low_weight_site_has_an_empty_cell(rng, d, periodic):
    pts, weights, lo, hi, per = _random_case(rng, 30, np.ones(d), periodic, 0.01)
    # a site 1e-3 from site 0 (towards the box centre) with a far lower weight
    pts = np.vstack([pts, pts[0] + 1e-3 * np.sign((lo + hi) / 2 - pts[0])])
    weights = np.append(weights, -1.0)
    out, rows, cols, _ = laguerre_cells(pts, weights, lo, hi, per)
    assert out[30, 0] == 0.0
    assert 30 not in rows and 30 not in cols
    np.testing.assert_allclose(out[:, 0].sum(), 1.0, rtol=1e-12)


def _helix(n=500):
    """Issue 15: ``n`` points on a helix in the unit cube, axis order (z, row, col)."""
    t = np.linspace(0, 6 * np.pi, n)
    return np.column_stack(
        [0.5 + 0.3 * np.cos(t), 0.5 + 0.3 * np.sin(t), 0.1 + 0.8 * t / (6 * np.pi)]
    )


def _reference_cell(pts, weights, i, lo, hi):
    """Volume and first moment about ``pts[i]`` of power cell ``i`` in a box.

    Non-periodic; from scipy's half-space intersection (``tests/reference.py``).
    """
    d = pts.shape[1]
    box = np.concatenate(
        [np.column_stack([np.eye(d), -hi]), np.column_stack([-np.eye(d), lo])]
    )
    others = np.arange(len(pts)) != i
    t, w = pts[others], weights[others]
    bisectors = np.column_stack(
        [2.0 * (t - pts[i]), -((t**2).sum(1) - (pts[i] ** 2).sum() - w + weights[i])]
    )
    vol, first = reference._polytope_moments(np.concatenate([box, bisectors]), d)
    return vol, first - vol * pts[i]


def _spy_buffers(monkeypatch):
    """Record the buffer capacities ``(maxv, maxe)`` of every ``_laguerre_pass``."""
    seen = []
    kernel = _laguerre._laguerre_pass

    def spy(*args):
        seen.append(args[-2:])
        return kernel(*args)

    monkeypatch.setattr(_laguerre, "_laguerre_pass", spy)
    return seen


def test_helix_cells_outgrow_the_start_buffers(monkeypatch):
    # issue 15: cells of points on a curve have hundreds of faces, more than the
    # starting buffers hold; they are rebuilt with larger buffers, not reported
    pts = _helix()
    args = (pts, np.zeros(len(pts)), np.zeros(3), np.ones(3), False)
    seen = _spy_buffers(monkeypatch)
    out, rows, cols, _ = laguerre_cells(*args)
    assert max(v for v, _ in seen) > _laguerre.MAXV
    np.testing.assert_allclose(out[:, 0].sum(), 1.0, rtol=1e-12)
    np.testing.assert_array_less(0.0, out[:, 0])
    faces = np.bincount(np.concatenate([rows, cols]), minlength=len(pts))
    assert faces.max() > 300
    for i in [92, *np.argsort(faces)[-4:]]:  # the cells with the most faces
        vol, first = _reference_cell(*args[:2], i, *args[2:4])
        np.testing.assert_allclose(out[i, 0], vol, rtol=1e-11)
        np.testing.assert_allclose(out[i, 1:4], first, rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    ("d", "periodic"), [(2, False), (2, True), (3, False), (3, (True, False, True))]
)
def test_start_buffers_do_not_change_the_cells(rng, monkeypatch, d, periodic):
    # buffers too small for any clipped cell: every cell overflows, several times,
    # and must come out exactly as with the default start
    pts, weights, lo, hi, per = _random_case(rng, 300, np.ones(d), periodic)
    expected = laguerre_cells(pts, weights, lo, hi, per)
    seen = _spy_buffers(monkeypatch)
    got = laguerre_cells(pts, weights, lo, hi, per, buffers=(8, 24))
    assert seen[0] == (8, 24) and max(v for v, _ in seen) >= 32  # grew twice
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("d", [2, 3])
def test_cell_with_more_faces_than_the_start_buffers(d):
    # the centre's cell has one facet per surrounding site: more vertices than the
    # starting clip buffers hold (MAXV)
    k = _laguerre.MAXV + 100
    if d == 2:
        t = 2 * np.pi * np.arange(k) / k
        ring = np.column_stack([np.cos(t), np.sin(t)])
    else:  # Fibonacci sphere: about 2 vertices per facet
        z = 1 - (2 * np.arange(k) + 1) / k
        t = np.pi * (3 - np.sqrt(5)) * np.arange(k)
        ring = np.column_stack(
            [z, np.sqrt(1 - z**2) * np.cos(t), np.sqrt(1 - z**2) * np.sin(t)]
        )
    pts = np.vstack([np.full(d, 0.5), 0.5 + 0.3 * ring])
    lo, hi = np.zeros(d), np.ones(d)
    out, rows, cols, vals = laguerre_cells(pts, np.zeros(len(pts)), lo, hi, False)
    np.testing.assert_allclose(out[:, 0].sum(), 1.0, rtol=1e-12)
    # every surrounding site shares a facet with the centre (all are on a circle or
    # a sphere, so all are extreme points of the set)
    np.testing.assert_array_equal(cols[rows == 0], np.arange(1, k + 1))
    if d == 2:  # a regular k-gon of apothem 0.15
        np.testing.assert_allclose(out[0, 0], k * 0.15**2 * np.tan(np.pi / k), 1e-12)
        np.testing.assert_allclose(vals[rows == 0], np.tan(np.pi / k) / 2, 1e-10)
    else:
        vol, first = _reference_cell(pts, np.zeros(len(pts)), 0, lo, hi)
        np.testing.assert_allclose(out[0, 0], vol, rtol=1e-11)
        np.testing.assert_allclose(out[0, 1:4], first, rtol=0, atol=1e-14)


def test_endless_overflow_ends_in_a_one_line_internal_error(monkeypatch):
    # a kernel that always reports overflow: the buffers double until they exceed
    # what any convex cell among the sites can need, then a one-line error
    kernel = _laguerre._laguerre_pass
    seen = []

    def always_overflow(*args):
        seen.append(args[-2:])
        res = kernel(*args)
        return res[0], np.full_like(res[1], _laguerre._OVERFLOW), *res[2:]

    monkeypatch.setattr(_laguerre, "_laguerre_pass", always_overflow)
    pts = [[0.25, 0.5], [0.75, 0.5]]  # 2D, 2 sites: at most 5 edges
    match = (
        r"^cell 0 needs more than 32 vertices or 96 face-vertex incidences, more "
        r"than a convex cell among 2 sites can have \(an internal error of "
        r"rasterquant/assign/_laguerre.py; please report the input\)$"
    )
    with pytest.raises(RuntimeError, match=match):
        laguerre_cells(pts, [0, 0], [0, 0], [1, 1], False, buffers=(8, 24))
    assert seen == [(8, 24), (16, 48), (32, 96)]


def test_helix_solve_ot_converges():
    # issue 15 end to end: solve_ot raised "cell 92 outgrew the clip buffers"
    pts = _helix()
    density = rq.Density.uniform((64, 64, 64), extent=[(0, 1)] * 3)
    res = rq.solve_ot(density, pts, tol=1e-4)
    assert res.converged
    np.testing.assert_allclose(res.masses, 1 / len(pts), rtol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"points": np.zeros(4)}, r"points must have shape \(N, d\).*got \(4,\)"),
        ({"points": np.full((4, 4), 0.5)}, r"d in \(2, 3\), got \(4, 4\)"),
        ({"points": [[0.5, np.nan]] * 4}, "points contains NaN or inf"),
        ({"weights": np.zeros(3)}, r"weights must have shape \(4,\), got \(3,\)"),
        ({"weights": [0, 0, np.inf, 0]}, "weights contains NaN or inf"),
        ({"lo": [0, 0, 0]}, r"lo must have shape \(2,\), got \(3,\)"),
        ({"hi": [1, np.nan]}, "hi contains NaN or inf"),
        ({"hi": [1, 0]}, "hi must exceed lo on every axis"),
        ({"periodic": [True, False, True]}, r"periodic must be a bool or a \(2,\)"),
        (
            {"points": [[0.1, 0.2], [0.3, 1.5], [0.5, 0.5], [0.9, 0.9]]},
            r"points must lie in the box.*row 1",
        ),
        (
            {"points": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.5], [0.3, 0.4]]},
            "points must be distinct, rows 1 and 3",
        ),
        (
            {
                "points": [[0.0, 0.2], [0.3, 0.4], [0.5, 0.5], [1.0, 0.2]],
                "periodic": True,
            },
            "points must be distinct, rows 0 and 3",
        ),
        ({"buffers": (4, 64)}, r"buffers must be two integers.*got \(4, 64\)"),
        ({"buffers": (64, 32)}, r"8 <= maxv <= maxe and maxe >= 24, got \(64, 32\)"),
        ({"buffers": (512.0, 2048)}, r"buffers must be two integers"),
        ({"buffers": 512}, r"buffers must be two integers \(maxv, maxe\).*got 512"),
    ],
)
def test_bad_inputs_raise(kwargs, match):
    args = {
        "points": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.5], [0.9, 0.9]],
        "weights": np.zeros(4),
        "lo": [0, 0],
        "hi": [1, 1],
        "periodic": False,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        laguerre_cells(**args)
