import sys
import types

import numpy as np
import pytest
from scipy.spatial import cKDTree

from rasterquant.density import Density
from rasterquant.grid import Grid
from rasterquant.sampling import (
    METHODS,
    curve_order,
    koch_curve,
    sample_points,
    tightness_density,
)

SQRT3 = np.sqrt(3.0)


@pytest.fixture
def samp_rng():
    return np.random.default_rng(7)


@pytest.fixture
def density2d(samp_rng):
    return Density.from_array(
        samp_rng.random((12, 20)), spacing=(0.5, 0.25), origin=(-1.0, 3.0)
    )


def _assert_inside(points, grid):
    lo = np.array([e[0] for e in grid.extent])
    hi = np.array([e[1] for e in grid.extent])
    assert points.dtype == np.float64
    assert points.flags.c_contiguous
    assert np.isfinite(points).all()
    assert (points >= lo).all()
    assert (points < hi).all()


# ------------------------------------------------------------------ shapes, boxes


@pytest.mark.parametrize(
    ("method", "n"),
    [
        ("uniform", 50),
        ("density", 50),
        ("grid", 49),
        ("jittered-grid", 64),
        ("separated", 40),
        ("tightness-grid", 25),
        ("koch", 17),
    ],
)
def test_shape_and_inside_anisotropic_2d(density2d, method, n):
    pts = sample_points(density2d, n, method=method, seed=3)
    assert pts.shape == (n, 2)
    _assert_inside(pts, density2d.grid)


@pytest.mark.parametrize(
    ("method", "n"),
    [
        ("uniform", 30),
        ("density", 30),
        ("grid", 27),
        ("jittered-grid", 64),
        ("separated", 30),
        ("tightness-grid", 8),
    ],
)
def test_shape_and_inside_3d(samp_rng, method, n):
    density = Density.from_array(
        samp_rng.random((4, 5, 6)), spacing=(2.0, 0.5, 1.0), origin=(1.0, -2.0, 0.0)
    )
    pts = sample_points(density, n, method=method, seed=1)
    assert pts.shape == (n, 3)
    _assert_inside(pts, density.grid)


@pytest.mark.parametrize("method", ["uniform", "grid", "jittered-grid", "separated"])
def test_grid_input_and_periodic_box(method):
    grid = Grid((8, 8), spacing=0.125, periodic=True)
    pts = sample_points(grid, 16, method=method, seed=0)
    assert pts.shape == (16, 2)
    _assert_inside(pts, grid)


def test_never_on_upper_bound():
    # Beyond 2**53 floats are 2 apart: without clipping, about half the points
    # drawn in the last pixel would round up onto the upper bound.
    values = np.zeros((3, 3))
    values[2, 2] = 1.0
    density = Density.from_array(values, origin=2.0**53)
    for method in ("density", "uniform", "jittered-grid"):
        pts = sample_points(density, 9, method=method, seed=0)
        _assert_inside(pts, density.grid)


@pytest.mark.parametrize(
    ("method", "n"),
    [
        ("uniform", 20),
        ("density", 20),
        ("jittered-grid", 16),
        ("separated", 20),
    ],
)
def test_same_seed_same_points(density2d, method, n):
    a = sample_points(density2d, n, method=method, seed=42)
    b = sample_points(density2d, n, method=method, seed=42)
    c = sample_points(density2d, n, method=method, seed=43)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generator_seed_is_used(density2d):
    a = sample_points(density2d, 10, seed=np.random.default_rng(5))
    b = sample_points(density2d, 10, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ grids


def test_grid_exact_values():
    grid = Grid((4, 6), spacing=(0.5, 1.0), origin=(1.0, -3.0))  # box 2 x 6
    pts = sample_points(grid, 9, method="grid")
    rows = 1.0 + np.array([1, 3, 5]) / 3.0
    cols = -3.0 + np.array([1.0, 3.0, 5.0])
    expected = np.array([[r, c] for r in rows for c in cols])
    np.testing.assert_allclose(pts, expected, rtol=0, atol=1e-14)


def test_grid_3d_exact_values():
    pts = sample_points(Grid((2, 2, 2)), 8, method="grid")
    expected = np.array(
        [[z, y, x] for z in (0.5, 1.5) for y in (0.5, 1.5) for x in (0.5, 1.5)]
    )
    np.testing.assert_array_equal(pts, expected)


def test_jittered_grid_stays_in_cells(samp_rng):
    grid = Grid((10, 10), spacing=0.1)
    centres = sample_points(grid, 25, method="grid")
    for jitter in (0.0, 0.2, 0.5):
        pts = sample_points(
            grid, 25, method="jittered-grid", jitter=jitter, seed=samp_rng
        )
        assert np.abs(pts - centres).max() <= jitter * 0.2 + 1e-15
    pts = sample_points(grid, 25, method="jittered-grid", jitter=0.0, seed=1)
    np.testing.assert_array_equal(pts, centres)


# ------------------------------------------------------------------ density


def test_density_respects_zero_mass():
    values = np.ones((10, 20))
    values[:, :10] = 0.0  # left half empty
    density = Density.from_array(values, spacing=0.1)
    pts = sample_points(density, 2000, seed=0)
    assert (pts[:, 1] >= 1.0).all()


def test_density_follows_mass(samp_rng):
    values = np.ones((8, 8))
    values[:4] = 3.0  # top half holds 3/4 of the mass
    density = Density.from_array(values)
    pts = sample_points(density, 20000, seed=samp_rng)
    frac_top = np.mean(pts[:, 0] < 4.0)
    np.testing.assert_allclose(frac_top, 0.75, atol=0.015)
    # uniform inside the pixels: the fractional parts are spread over [0, 1)
    frac = pts - np.floor(pts)
    np.testing.assert_allclose(frac.mean(axis=0), 0.5, atol=0.01)


def test_uniform_density_matches_box():
    density = Density.uniform((4, 4), extent=[(0, 1), (2, 3)])
    pts = sample_points(density, 5000, seed=0)
    _assert_inside(pts, density.grid)
    np.testing.assert_allclose(pts.mean(axis=0), [0.5, 2.5], atol=0.02)


def test_density_method_needs_density():
    with pytest.raises(TypeError, match="needs a Density"):
        sample_points(Grid((4, 4)), 3, method="density")


# ------------------------------------------------------------------ separated


@pytest.mark.parametrize(("shape", "n"), [((32, 32), 200), ((8, 8, 8), 150)])
def test_separated_min_distance(shape, n):
    grid = Grid(shape, spacing=1.0 / shape[0])  # the unit cube
    d = len(shape)
    pts = sample_points(grid, n, method="separated", c0=0.6, seed=2)
    dist, _ = cKDTree(pts).query(pts, k=2)
    assert dist[:, 1].min() >= 0.6 * n ** (-1.0 / d)


def test_separated_min_distance_physical_units():
    grid = Grid((20, 40), spacing=0.5)  # box 10 x 20
    pts = sample_points(grid, 100, method="separated", min_distance=1.0, seed=4)
    _assert_inside(pts, grid)
    dist, _ = cKDTree(pts).query(pts, k=2)
    assert dist[:, 1].min() >= 1.0


def test_separated_beta():
    grid = Grid((16, 16), spacing=1.0 / 16)
    pts = sample_points(grid, 50, method="separated", c0=0.3, beta=3.0, seed=0)
    dist, _ = cKDTree(pts).query(pts, k=2)
    assert dist[:, 1].min() >= 0.3 * 50 ** (-1.0 / 3.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_separated_covers_the_whole_box(seed):
    # PoissonDisk.random(n) alone gave a clump: quadrant counts [47, 18, 239, 96]
    n = 400
    pts = sample_points(
        Grid((32, 32), spacing=1.0 / 32), n, method="separated", seed=seed
    )
    quadrant = 2 * (pts[:, 0] >= 0.5) + (pts[:, 1] >= 0.5)
    counts = np.bincount(quadrant, minlength=4)
    assert counts.min() >= 0.15 * n, counts
    dist, _ = cKDTree(pts).query(pts, k=2)
    assert dist[:, 1].min() >= 0.5 * n**-0.5


def test_separated_sparse_uses_darts_and_covers_the_box():
    # a tiny min_distance: filling the box would take minutes
    grid = Grid((10, 10))
    pts = sample_points(grid, 400, method="separated", min_distance=0.01, seed=3)
    _assert_inside(pts, grid)
    dist, _ = cKDTree(pts).query(pts, k=2)
    assert dist[:, 1].min() >= 0.01
    quadrant = 2 * (pts[:, 0] >= 5.0) + (pts[:, 1] >= 5.0)
    assert np.bincount(quadrant, minlength=4).min() >= 0.15 * 400


def test_separated_radius_too_large():
    with pytest.raises(ValueError, match=r"too large for n = 100 points.*smaller c0"):
        sample_points(Grid((10, 10)), 100, method="separated", c0=2.0, seed=0)
    with pytest.raises(ValueError, match="smaller min_distance"):
        sample_points(Grid((10, 10)), 100, method="separated", min_distance=5.0)


# ------------------------------------------------------------------ koch


def test_koch_curve_level1():
    expected = np.array(
        [[0.0, 0.0], [1 / 3, 0.0], [0.5, SQRT3 / 6], [2 / 3, 0.0], [1.0, 0.0]]
    )
    np.testing.assert_allclose(koch_curve(1), expected, rtol=0, atol=1e-15)


def test_koch_curve_levels():
    for k in range(5):
        xy = koch_curve(k)
        assert xy.shape == (4**k + 1, 2)
        seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        np.testing.assert_allclose(seg, 3.0**-k, rtol=1e-12)
        assert xy[:, 1].min() >= -1e-15
        assert xy[:, 1].max() <= SQRT3 / 6 + 1e-15
    # each level keeps the previous vertices
    np.testing.assert_allclose(koch_curve(3)[::4], koch_curve(2), atol=1e-15)


def test_koch_points_in_box():
    grid = Grid((100, 100))
    pts = sample_points(grid, 5, method="koch")
    h = 7.5 * SQRT3  # 90 * (sqrt(3)/6) / 2
    expected = np.array(
        [[50 + h, 5.0], [50 + h, 35.0], [50 - h, 50.0], [50 + h, 65.0], [50 + h, 95.0]]
    )
    np.testing.assert_allclose(pts, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(
        sample_points(grid, None, method="koch", level=1), pts
    )


def test_koch_flat_box_fits():
    grid = Grid((10, 200), origin=(5.0, 0.0))
    pts = sample_points(grid, 65, method="koch")
    _assert_inside(pts, grid)
    assert np.ptp(pts[:, 0]) == pytest.approx(9.0)


def test_koch_bad_inputs():
    with pytest.raises(ValueError, match=r"n = 4\*\*level \+ 1, got n = 6.*5 and 17"):
        sample_points(Grid((10, 10)), 6, method="koch")
    with pytest.raises(ValueError, match="2D only"):
        sample_points(Grid((4, 4, 4)), 5, method="koch")
    with pytest.raises(ValueError, match="level = 2 gives 17 points"):
        sample_points(Grid((10, 10)), 5, method="koch", level=2)
    with pytest.raises(ValueError, match="level must be in"):
        koch_curve(-1)


# ------------------------------------------------------------------ tightness


def test_tightness_grid_coordinates():
    density = tightness_density(3, 8)
    pts = sample_points(density, 9, method="tightness-grid")
    axis = np.array([-0.5, 0.25, 0.75])
    expected = np.array([[a, b] for a in axis for b in axis])
    np.testing.assert_allclose(pts, expected, rtol=0, atol=1e-15)


def test_tightness_grid_3d_and_affine_box():
    pts = sample_points(tightness_density(2, 4, d=3), 8, method="tightness-grid")
    expected = np.array(
        [[a, b, c] for a in (-0.5, 0.5) for b in (-0.5, 0.5) for c in (-0.5, 0.5)]
    )
    np.testing.assert_allclose(pts, expected, atol=1e-15)
    pts = sample_points(Grid((4, 4)), 4, method="tightness-grid")  # box [0, 4]^2
    np.testing.assert_allclose(pts, [[1, 1], [1, 3], [3, 1], [3, 3]], atol=1e-14)


@pytest.mark.parametrize("n_axis", [1, 2, 5])
@pytest.mark.parametrize("resolution", [6, 7])
def test_tightness_density_masses(n_axis, resolution):
    density = tightness_density(n_axis, resolution)
    grid = density.grid
    assert grid.shape == (resolution, resolution)
    assert grid.extent == ((-1.0, 1.0), (-1.0, 1.0))
    assert grid.periodic == (False, False)
    v = density.values
    np.testing.assert_allclose(v.sum(), 1.0, rtol=1e-14)
    # exact 1D marginal: pixel [a, b] gets |[a,b]∩[-1,0]|/n + |[a,b]∩[0,1]|(1-1/n)
    edges = np.linspace(-1, 1, resolution + 1)
    a, b = edges[:-1], edges[1:]
    marginal = np.clip(np.minimum(b, 0) - a, 0, None) / n_axis + np.clip(
        b - np.maximum(a, 0), 0, None
    ) * (1 - 1 / n_axis)
    np.testing.assert_allclose(v.sum(axis=1), marginal, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(v, np.outer(marginal, marginal), rtol=1e-12, atol=1e-15)


def test_tightness_density_quadrants():
    n = 4
    v = tightness_density(n, 8).values
    np.testing.assert_allclose(v[:4, :4].sum(), 1 / n**2, rtol=1e-12)
    np.testing.assert_allclose(v[4:, 4:].sum(), (1 - 1 / n) ** 2, rtol=1e-12)
    np.testing.assert_allclose(v[:4, 4:].sum(), (1 - 1 / n) / n, rtol=1e-12)
    # odd resolution: the middle pixel [-0.2, 0.2] straddles 0
    m = tightness_density(n, 5).values.sum(axis=1)
    np.testing.assert_allclose(m[2], 0.2 / n + 0.2 * (1 - 1 / n), rtol=1e-12)
    v3 = tightness_density(n, 4, d=3).values
    np.testing.assert_allclose(v3[:2, :2, :2].sum(), 1 / n**3, rtol=1e-12)


def test_tightness_density_bad_inputs():
    with pytest.raises(ValueError, match="n_axis must be >= 1"):
        tightness_density(0, 8)
    with pytest.raises(ValueError, match="resolution must be >= 1"):
        tightness_density(3, 0)
    with pytest.raises(ValueError, match="d must be 2 or 3"):
        tightness_density(3, 8, d=4)
    with pytest.raises(TypeError, match="resolution must be an integer"):
        tightness_density(3, 8.0)


# ------------------------------------------------------------------ file


def test_file_method(monkeypatch, tmp_path):
    grid = Grid((10, 10))
    stored = np.array([[1.0, 2.0], [3.5, 9.0], [0.0, 10.0]])

    def read_points(path, *, ndim=None):
        assert str(path) == str(tmp_path / "pts.csv")
        assert ndim in (2, 3)
        return stored.copy(), {}

    fake = types.ModuleType("rasterquant.io.points")
    fake.read_points = read_points
    monkeypatch.setitem(sys.modules, "rasterquant.io.points", fake)
    path = tmp_path / "pts.csv"
    pts = sample_points(grid, None, method="file", path=path)
    assert pts.shape == (3, 2)
    _assert_inside(pts, grid)  # the point on the upper bound is moved inside
    np.testing.assert_array_equal(pts[:2], stored[:2])
    np.testing.assert_array_equal(sample_points(grid, 3, method="file", path=path), pts)
    with pytest.raises(ValueError, match="holds 3 points but n = 4"):
        sample_points(grid, 4, method="file", path=path)
    with pytest.raises(ValueError, match="method='file' needs path"):
        sample_points(grid, 3, method="file")
    stored[0] = [11.0, 2.0]
    with pytest.raises(ValueError, match="outside the grid on axis 0"):
        sample_points(grid, 3, method="file", path=path)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        sample_points(Grid((4, 4, 4)), 3, method="file", path=path)


# ------------------------------------------------------------------ bad inputs


def test_bad_n():
    grid = Grid((4, 4))
    with pytest.raises(TypeError, match="n must be an integer"):
        sample_points(grid, 3.0, method="uniform")
    with pytest.raises(TypeError, match="n must be an integer"):
        sample_points(grid, True, method="uniform")
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        sample_points(grid, 0, method="uniform")
    with pytest.raises(TypeError, match="n must be an integer"):
        sample_points(grid, None, method="uniform")
    assert sample_points(grid, np.int64(3), method="uniform").shape == (3, 2)


def test_bad_method():
    with pytest.raises(ValueError, match=r"method must be one of 'uniform'.*'koch'"):
        sample_points(Grid((4, 4)), 4, method="random")
    assert len(METHODS) == 9


def test_bad_container():
    with pytest.raises(TypeError, match="Density or Grid"):
        sample_points(np.ones((4, 4)), 4)


@pytest.mark.parametrize("method", ["grid", "jittered-grid", "tightness-grid"])
def test_grid_needs_perfect_power(method):
    with pytest.raises(
        ValueError, match="got n = 10; nearest valid values are 9 and 16"
    ):
        sample_points(Grid((8, 8)), 10, method=method)
    with pytest.raises(ValueError, match=r"perfect cube.*got n = 9;.*8 and 27"):
        sample_points(Grid((4, 4, 4)), 9, method=method)


def test_bad_seed():
    grid = Grid((4, 4))
    with pytest.raises(
        TypeError,
        match=r"seed must be an int >= 0, a numpy\.random"
        r"\.Generator or None, got str",
    ):
        sample_points(grid, 3, method="uniform", seed="x")
    with pytest.raises(TypeError, match=r"seed must be .* got float"):
        sample_points(grid, 3, method="uniform", seed=1.5)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        sample_points(grid, 3, method="uniform", seed=-1)
    np.testing.assert_array_equal(
        sample_points(grid, 3, method="uniform", seed=np.int64(4)),
        sample_points(grid, 3, method="uniform", seed=4),
    )


def test_bad_options():
    grid = Grid((4, 4))
    with pytest.raises(ValueError, match=r"jitter must be in \[0, 0.5\], got 0.7"):
        sample_points(grid, 4, method="jittered-grid", jitter=0.7)
    with pytest.raises(ValueError, match="c0 must be > 0"):
        sample_points(grid, 4, method="separated", c0=-1.0)
    with pytest.raises(ValueError, match="beta must be > 0"):
        sample_points(grid, 4, method="separated", beta=0.0)
    with pytest.raises(ValueError, match="min_distance must be > 0"):
        sample_points(grid, 4, method="separated", min_distance=0.0)
    with pytest.raises(ValueError, match="min_distance must be finite"):
        sample_points(grid, 4, method="separated", min_distance=np.nan)


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_file_round_trip(tmp_path, suffix):
    from rasterquant.io.points import write_points

    grid = Grid((6, 8, 10), spacing=0.5)
    pts = sample_points(grid, 20, method="uniform", seed=9)
    path = tmp_path / f"pts{suffix}"
    write_points(path, pts, size=np.arange(20.0))
    back = sample_points(grid, 20, method="file", path=path)
    np.testing.assert_allclose(back, pts, rtol=1e-15, atol=0)


@pytest.mark.parametrize("shape", [(8, 8), (64, 64), (5, 7), (33, 20)])
def test_curve_order_2d_is_a_hilbert_path(shape):
    order = curve_order(shape)
    assert np.array_equal(np.sort(order), np.arange(np.prod(shape)))
    if shape[0] == shape[1] and shape[0] & (shape[0] - 1) == 0:
        # on a power-of-two square every step moves to a 4-neighbour
        c = np.array(np.unravel_index(order, shape)).T
        assert (np.abs(np.diff(c, axis=0)).sum(axis=1) == 1).all()


def test_curve_order_3d_is_a_permutation():
    order = curve_order((4, 6, 5))
    assert np.array_equal(np.sort(order), np.arange(120))
    c = np.array(np.unravel_index(order[:8], (4, 6, 5))).T
    # Morton order visits the first 2x2x2 block first
    assert (c <= 1).all()


def test_stratified_balances_every_region():
    # four separate dark squares of different mass, white around them
    values = np.zeros((64, 64))
    values[2:20, 3:25] = 1.0
    values[30:60, 5:12] = 2.5
    values[40:62, 30:62] = 0.7
    values[5:25, 40:50] = 4.0
    density = Density.from_array(values)
    n = 997
    for seed in range(5):
        pts = sample_points(density, n, method="stratified", seed=seed)
        ij = np.floor(pts).astype(int)
        assert (values[ij[:, 0], ij[:, 1]] > 0).all()
        for sl in [
            (slice(2, 20), slice(3, 25)),
            (slice(30, 60), slice(5, 12)),
            (slice(40, 62), slice(30, 62)),
            (slice(5, 25), slice(40, 50)),
        ]:
            inside = (
                (pts[:, 0] >= sl[0].start)
                & (pts[:, 0] < sl[0].stop)
                & (pts[:, 1] >= sl[1].start)
                & (pts[:, 1] < sl[1].stop)
            )
            expect = n * values[sl].sum() / values.sum()
            # a region is a few runs of the curve: each run is off by at most one
            assert abs(inside.sum() - expect) <= 4, (seed, inside.sum(), expect)
    # i.i.d. sampling misses by about sqrt(expect) instead
    quadrant = Density.from_array(np.ones((64, 64)))
    pts = sample_points(quadrant, 4000, method="stratified", seed=1)
    counts = np.histogram2d(pts[:, 0], pts[:, 1], bins=2, range=[[0, 64], [0, 64]])[0]
    assert np.abs(counts - 1000).max() <= 1
