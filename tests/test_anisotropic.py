"""Anisotropic power diagrams: exact labels, Jacobian, Newton, microstructures."""

import numba
import numpy as np
import pytest
import reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rasterquant.density import Density
from rasterquant.errors import ResolutionWarning
from rasterquant.microstructure.anisotropic import (
    aspect_metric,
    generate_anisotropic_microstructure,
    grain_second_moments,
)
from rasterquant.ot.anisotropic import (
    _Pass,
    assign_anisotropic,
    check_metrics,
    solve_anisotropic,
)


def random_spd(rng, n, d, cond=20.0):
    """``n`` random SPD matrices with condition number ``cond`` and random scale."""
    out = []
    for _ in range(n):
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        lam = np.exp(rng.uniform(0.0, np.log(cond), d))
        lam[0], lam[-1] = 1.0, cond
        out.append(q @ np.diag(lam * rng.uniform(0.3, 3.0)) @ q.T)
    return np.array(out)


CASES = [
    ((23, 31), False, 1.0),
    ((23, 31), True, 1.0),
    ((30, 17), (True, False), (0.5, 2.0)),
    ((7, 11, 9), False, 1.0),
    ((7, 11, 9), True, (1.0, 0.7, 1.3)),
    ((6, 9, 13), (False, True, True), 1.0),
]


@pytest.mark.parametrize(("shape", "periodic", "spacing"), CASES)
def test_labels_match_reference(rng, shape, periodic, spacing):
    d = len(shape)
    n = 11
    grid_len = np.array(shape) * np.broadcast_to(spacing, (d,))
    pts = rng.random((n, d)) * grid_len
    a = random_spd(rng, n, d)
    w = rng.normal(scale=float(grid_len.mean()) ** 2 / 8, size=n)
    dens = Density.uniform(
        shape, extent=[(0.0, float(x)) for x in grid_len], periodic=periodic
    )
    cells = assign_anisotropic(dens, pts, a, w)
    ref = reference.anisotropic_labels_reference(pts, w, a, shape, spacing, periodic)
    np.testing.assert_array_equal(cells.labels, ref)
    counts = np.bincount(ref.ravel(), minlength=n)
    np.testing.assert_allclose(cells.masses, counts / ref.size, rtol=1e-12, atol=0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 9),
    dims=st.sampled_from([(13, 10), (9, 14), (5, 6, 7)]),
    periodic=st.booleans(),
    wscale=st.sampled_from([0.0, 1.0, 30.0]),
)
def test_labels_match_reference_hypothesis(seed, n, dims, periodic, wscale):
    rng = np.random.default_rng(seed)
    d = len(dims)
    pts = rng.random((n, d)) * dims
    a = random_spd(rng, n, d)
    w = rng.normal(scale=wscale, size=n)
    cells = assign_anisotropic(dims, pts, a, w, periodic=periodic)
    ref = reference.anisotropic_labels_reference(pts, w, a, dims, 1.0, periodic)
    np.testing.assert_array_equal(cells.labels, ref)


def test_masses_and_centroids_with_a_density(rng):
    shape, n = (19, 23), 7
    values = rng.random(shape) + 0.1
    dens = Density.from_array(values, periodic=True)
    pts = rng.random((n, 2)) * shape
    a = random_spd(rng, n, 2, cond=5.0)
    w = rng.normal(scale=10.0, size=n)
    cells = assign_anisotropic(dens, pts, a, w)
    ref = reference.anisotropic_labels_reference(pts, w, a, shape, 1.0, True)
    np.testing.assert_array_equal(cells.labels, ref)
    expected = np.bincount(ref.ravel(), weights=dens.values.ravel(), minlength=n)
    np.testing.assert_allclose(cells.masses, expected, rtol=1e-12)
    np.testing.assert_allclose(cells.masses.sum(), 1.0, rtol=1e-12)
    assert np.all((cells.centroids >= 0) & (cells.centroids <= shape))


def test_ties_go_to_lowest_index():
    # two sites placed symmetrically about a column of voxel centres
    pts = np.array([[4.5, 2.5], [4.5, 6.5]])
    cells = assign_anisotropic((9, 9), pts, np.eye(2))
    ref = reference.anisotropic_labels_reference(
        pts, np.zeros(2), np.stack([np.eye(2)] * 2), (9, 9), 1.0, False
    )
    np.testing.assert_array_equal(cells.labels, ref)
    assert (cells.labels[:, 4] == 0).all()


def test_constant_weight_shift_keeps_labels(rng):
    pts = rng.random((8, 2)) * 20
    a = random_spd(rng, 8, 2)
    w = rng.normal(size=8)
    la = assign_anisotropic((20, 20), pts, a, w, periodic=True).labels
    lb = assign_anisotropic((20, 20), pts, a, w + 3.0, periodic=True).labels
    np.testing.assert_array_equal(la, lb)


def test_common_diagonal_metric_is_scaled_isotropic(rng):
    # x' = sqrt(a) x: the anisotropic diagram is the isotropic one on the raster
    # with spacing sqrt(diag A); compare labels of both paths with the brute force
    from rasterquant import assign_cells

    shape, n = (24, 30), 9
    s = np.array([2.0, 0.5])
    pts = rng.random((n, 2)) * shape
    w = rng.normal(scale=5.0, size=n)
    a = np.diag(s**2)
    ref = reference.anisotropic_labels_reference(
        pts, w, np.stack([a] * n), shape, 1.0, True
    )
    general = assign_anisotropic(shape, pts, a, w, periodic=True).labels
    scaled = Density.uniform(
        shape, extent=[(0.0, shape[0] * s[0]), (0.0, shape[1] * s[1])], periodic=True
    )
    fast = assign_cells(scaled, pts * s, w).labels
    np.testing.assert_array_equal(general, ref)
    np.testing.assert_array_equal(fast, ref)


def _pass(rng, shape, n, periodic=True):
    dens = Density.uniform(shape, extent=[(0.0, 1.0)] * len(shape), periodic=periodic)
    pts = rng.random((n, len(shape)))
    a = check_metrics(random_spd(rng, n, len(shape), cond=8.0), n, len(shape))
    return _Pass(dens, pts, a)


def test_jacobian_symmetric_zero_rows(rng):
    p = _pass(rng, (9, 10, 11), 12)
    copies, cands, _ = p.evaluate(np.zeros(12))
    jac, status = p.jacobian(copies, cands)
    jac = jac.toarray()
    assert status == 0
    np.testing.assert_allclose(jac, jac.T, rtol=0, atol=1e-14)
    np.testing.assert_allclose(jac.sum(axis=1), 0.0, atol=1e-12)
    off = jac - np.diag(np.diag(jac))
    assert (off <= 0).all()


def test_jacobian_matches_finite_differences(rng):
    # a fine raster: voxel counts are close to smooth in w
    n = 5
    p = _pass(rng, (320, 320), n)
    w = np.zeros(n)
    copies, cands, _ = p.evaluate(w)
    jac = p.jacobian(copies, cands)[0].toarray()
    eps = 3e-3
    fd = np.zeros((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = eps
        fd[:, j] = (p.evaluate(w + e)[2][:, 0] - p.evaluate(w - e)[2][:, 0]) / (2 * eps)
    scale = np.abs(jac).max()
    np.testing.assert_allclose(jac, fd, rtol=0, atol=0.03 * scale)


def test_newton_meets_tol(rng):
    shape, n = (64, 64), 10
    pts = rng.random((n, 2)) * shape
    a = random_spd(rng, n, 2, cond=6.0)
    alpha = rng.uniform(1.0, 2.0, n)
    alpha /= alpha.sum()
    res = solve_anisotropic(shape, pts, a, alpha, tol=0.02, periodic=True)
    achieved = np.bincount(res.labels.ravel(), minlength=n) / res.labels.size
    err = np.max(np.abs(achieved - alpha) / alpha)
    assert res.converged
    assert res.status == "converged"
    np.testing.assert_allclose(res.masses, achieved, rtol=1e-12)
    assert err <= 0.02
    assert res.max_error == pytest.approx(err, rel=1e-12)
    assert abs(res.weights.mean()) < 1e-9


def test_reused_candidate_lists_stay_exact(rng):
    # lists built with a slack serve every weight change of spread up to it (any
    # constant shift too): labels stay the brute-force argmin, with no new build
    shape, n = (12, 18, 22), 40
    pts = rng.random((n, 3)) * shape
    a = random_spd(rng, n, 3, cond=2.0)
    w = rng.normal(scale=3.0, size=n)
    p = _Pass(Density.uniform(shape, periodic=True), pts, check_metrics(a, n, 3))
    # a slack far above the default: these changes leave the exact lists of w (a
    # list built without the slack misses owners of about 200 voxels here)
    p.slack *= 20.0
    c, k, _ = p.evaluate(w)
    start = p.labels(c, k)
    assert p.n_builds == 1
    moved = 0
    for shift in (0.0, 5.0, -40.0):
        d = np.full(n, shift)
        d[rng.choice(n, n // 10, replace=False)] += p.slack * (1.0 - 1e-9)
        c, k, mom = p.evaluate(w + d)
        ref = reference.anisotropic_labels_reference(pts, w + d, a, shape, 1.0, True)
        np.testing.assert_array_equal(p.labels(c, k), ref)
        counts = np.bincount(ref.ravel(), minlength=n)
        np.testing.assert_allclose(mom[:, 0], counts / ref.size, rtol=1e-12)
        moved += int((ref != start).sum())
    assert p.n_builds == 1
    assert moved > 0  # the weight changes did move voxels between cells
    # a spread beyond the slack needs new lists
    w2 = w + np.linspace(0.0, 1.5 * p.slack, n)
    c, k, _ = p.evaluate(w2)
    assert p.n_builds == 2
    ref = reference.anisotropic_labels_reference(pts, w2, a, shape, 1.0, True)
    np.testing.assert_array_equal(p.labels(c, k), ref)


def _handover_problem():
    # Newton on these voxel masses gives way to the polish before tol
    rng = np.random.default_rng(8)
    shape, n = (40, 40), 12
    pts = rng.random((n, 2)) * shape
    a = random_spd(rng, n, 2, cond=6.0)
    alpha = rng.uniform(1.0, 2.0, n)
    return shape, pts, a, alpha / alpha.sum()


def _assert_meets(res, alpha, tol):
    n = len(alpha)
    achieved = np.bincount(res.labels.ravel(), minlength=n) / res.labels.size
    assert res.converged
    assert np.max(np.abs(achieved - alpha) / alpha) <= tol


def test_newton_hands_over_to_the_polish():
    shape, pts, a, alpha = _handover_problem()
    res = solve_anisotropic(shape, pts, a, alpha, tol=0.02, periodic=True)
    _assert_meets(res, alpha, 0.02)
    assert len(res.history["polish_sweeps"]) == 1
    assert len(res.history["max_mass_error"]) == res.n_iter


def test_newton_continues_when_the_polish_misses(monkeypatch):
    # a polish that moves nothing: Newton takes over again and meets tol itself
    import rasterquant.ot.anisotropic as oa

    shape, pts, a, alpha = _handover_problem()
    first = solve_anisotropic(shape, pts, a, alpha, tol=0.02, periodic=True)
    monkeypatch.setattr(oa, "_polish", lambda pass_, alpha, best, tol: (best, 0))
    res = solve_anisotropic(shape, pts, a, alpha, tol=0.02, periodic=True)
    _assert_meets(res, alpha, 0.02)
    assert res.n_iter > first.n_iter
    assert len(res.history["max_mass_error"]) == res.n_iter


def test_polish_thresholds_without_entries():
    # cells to grow that no voxel borders (empty cells): no change, no error
    from rasterquant.ot.anisotropic import _thresholds

    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
    out = _thresholds(empty_i, empty_i, empty_f, empty_f, np.array([0.1]), [3])
    np.testing.assert_array_equal(out, [0.0])


def test_newton_reports_resolution(rng):
    # cells of ~40 voxels cannot meet 0.1 %
    shape, n = (20, 20), 10
    pts = rng.random((n, 2)) * shape
    a = random_spd(rng, n, 2, cond=4.0)
    with pytest.warns(ResolutionWarning, match="voxel"):
        res = solve_anisotropic(shape, pts, a, tol=1e-3, periodic=True)
    assert not res.converged
    assert res.status in ("resolution",)
    achieved = np.bincount(res.labels.ravel(), minlength=n) / res.labels.size
    assert res.max_error == pytest.approx(np.max(np.abs(achieved * n - 1)), rel=1e-9)


def test_same_result_for_one_and_two_threads(rng):
    shape, n = (12, 20, 16), 14
    pts = rng.random((n, 3)) * shape
    a = random_spd(rng, n, 3, cond=5.0)
    old = numba.get_num_threads()
    out = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            res = solve_anisotropic(shape, pts, a, tol=0.05, periodic=True, max_iter=5)
            p = _Pass(
                Density.uniform(shape, periodic=True), pts, check_metrics(a, n, 3)
            )
            c, k, _ = p.evaluate(res.weights)
            jac = p.jacobian(c, k)[0]
            out.append((res.weights, res.labels, res.masses, jac.toarray()))
    finally:
        numba.set_num_threads(old)
    for x, y in zip(out[0], out[1], strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    ("metrics", "match"),
    [
        (np.diag([1.0, -1.0]), "positive definite"),
        (np.array([[1.0, 0.5], [0.0, 1.0]]), "not symmetric"),
        (np.eye(3), r"shape \(2, 2\) or \(4, 2, 2\)"),
        (np.full((4, 2, 2), np.nan), "NaN"),
        (np.zeros((3, 2, 2)), r"shape \(2, 2\) or \(4, 2, 2\)"),
    ],
)
def test_bad_metrics(metrics, match):
    with pytest.raises(ValueError, match=match):
        assign_anisotropic(
            (8, 8), [[1.0, 1.0], [2.0, 3.0], [5.0, 2.0], [6.0, 6.0]], metrics
        )


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"points must have shape \(N, 2\)"):
        assign_anisotropic((8, 8), np.ones((3, 3)), np.eye(2))
    with pytest.raises(ValueError, match=r"weights must have shape \(2,\)"):
        assign_anisotropic((8, 8), [[1.0, 1.0], [5.0, 5.0]], np.eye(2), np.zeros(3))
    with pytest.raises(ValueError, match="tol must be in"):
        solve_anisotropic((8, 8), [[1.0, 1.0], [5.0, 5.0]], np.eye(2), tol=2.0)
    with pytest.raises(ValueError, match="aspect must be 3 positive"):
        generate_anisotropic_microstructure((8, 8, 8), 2, aspect=(1, 0, 1))
    with pytest.raises(ValueError, match="rotation must be one angle"):
        generate_anisotropic_microstructure((8, 8), 2, aspect=(1, 2), rotation=(1, 2))
    with pytest.raises(ValueError, match="metrics must be an"):
        generate_anisotropic_microstructure((8, 8), 2, aspect=(1, 2), metrics="x")


def test_aspect_metric_axes():
    # aspect (3, 1, 0.5) in array order: long along z, short along x
    a = aspect_metric((3.0, 1.0, 0.5))
    np.testing.assert_allclose(np.linalg.det(a), 1.0, rtol=1e-12)
    assert a[0, 0] < a[1, 1] < a[2, 2]
    # a Bunge rotation of 90 degrees about Z swaps the grain's x and y axes
    r = aspect_metric((3.0, 1.0, 0.5), rotation=(90.0, 0.0, 0.0))
    np.testing.assert_allclose(np.diag(r), np.diag(a)[[0, 2, 1]], atol=1e-12)


def _aspect_along_metric(ms, min_voxels=500):
    counts, cov = grain_second_moments(
        ms.grain_map, ms.seeds, spacing=ms.spacing, periodic=ms.periodic
    )
    big = counts >= min_voxels
    _, vec = np.linalg.eigh(ms.metrics[big])  # ascending: longest axis first
    s = np.einsum("kai,kab,kbi->ki", vec, cov[big], vec)
    return big.sum(), np.sqrt(s[:, :-1] / s[:, 1:]).mean(axis=0)


@pytest.mark.parametrize("rotation", [None, 30.0])
def test_microstructure_aspect_2d(rotation):
    ms = generate_anisotropic_microstructure(
        (256, 256), 40, aspect=(3, 1), rotation=rotation, seed=1, lloyd_iterations=6
    )
    assert ms.converged
    assert ms.fast_path == (rotation is None)
    n_big, ratio = _aspect_along_metric(ms)
    assert n_big >= 30
    np.testing.assert_allclose(ratio, [3.0], rtol=0.10)
    np.testing.assert_allclose(ms.stats.volume.sum(), 256 * 256, rtol=1e-12)


@pytest.mark.parametrize("tol", [0.3, 0.01])
def test_fast_path_labels_are_the_anisotropic_argmin(tol):
    # loose tol: the isotropic solver's map on the rescaled raster; tight tol: the
    # voxel counts are then brought to tol by the anisotropic solver
    ms = generate_anisotropic_microstructure(
        (40, 48), 6, aspect=(2.0, 1.0), seed=3, tol=tol, lloyd_iterations=1
    )
    assert ms.fast_path
    assert ("voxels" in ms.history["stage"]) == (tol == 0.01)
    ref = reference.anisotropic_labels_reference(
        ms.seeds, ms.weights, ms.metrics, (40, 48), 1.0, True
    )
    np.testing.assert_array_equal(ms.grain_map, ref)
    assert ms.converged
    assert ms.max_volume_error <= tol


@pytest.mark.slow
@pytest.mark.parametrize("rotation", [None, (30.0, 40.0, 10.0)])
def test_microstructure_aspect_3d(rotation):
    ms = generate_anisotropic_microstructure(
        (48, 48, 48),
        30,
        aspect=(3, 1, 0.5),
        rotation=rotation,
        seed=0,
        lloyd_iterations=6,
    )
    assert ms.converged
    n_big, ratio = _aspect_along_metric(ms)
    assert n_big >= 20
    np.testing.assert_allclose(ratio, [3.0, 2.0], rtol=0.10)


def test_cli_aspect_writes_elongated_grains(tmp_path):
    """`microstructure --aspect`: grains longer along the first axis (sidecar too)."""
    import json

    from rasterquant.cli.main import main

    out = tmp_path / "g.npy"
    code = main(
        ["microstructure", "--shape", "96", "48", "-n", "12", "--aspect", "3", "1",
         "--seed", "1", "--quiet", "-o", str(out), "-o", str(tmp_path / "g.tesr")]
    )  # fmt: skip
    assert code == 0
    side = json.loads((tmp_path / "g.npy.json").read_text())
    assert side["parameters"]["aspect"] == [3.0, 1.0]
    gm = np.load(out)
    assert gm.shape == (96, 48) and (tmp_path / "g.tesr").exists()
    ratios = []
    for g in np.unique(gm):
        rows, cols = np.nonzero(gm == g)
        if rows.size >= 150 and np.ptp(rows) < 90 and np.ptp(cols) < 45:  # unwrapped
            ratios.append(rows.std() / max(cols.std(), 1e-9))
    assert ratios and np.median(ratios) > 2.0, ratios


@pytest.mark.parametrize(
    "extra",
    [["--aspect", "3", "1", "1"], ["--rotation", "10"], ["--aspect", "2", "1",
     "--rotation", "1", "2", "3"]],
)  # fmt: skip
def test_cli_aspect_usage_errors_exit_2(tmp_path, extra):
    from rasterquant.cli.main import main

    argv = ["microstructure", "--shape", "32", "32", "-n", "8", "-o"]
    assert main([*argv, str(tmp_path / "g.npy"), *extra]) == 2
