"""Empty-cell repair finds the nearest positive pixels without a global kd-tree."""

import numpy as np
import pytest

import rasterquant as rq
from rasterquant.assign.quadrature import make_quadrature
from rasterquant.ot.newton import _nearest_pixels


@pytest.mark.parametrize("ndim", [2, 3])
def test_nearest_pixels_match_brute_force(rng, ndim):
    for trial in range(20):
        shape = tuple(int(s) for s in rng.integers(4, 16, ndim))
        periodic = tuple(bool(b) for b in rng.integers(0, 2, ndim))
        spacing = tuple(float(x) for x in rng.uniform(0.5, 2.0, ndim))
        values = rng.random(shape)
        values[values < 0.4] = 0.0  # zero pixels are never candidates
        if trial % 3 == 0:
            extent = [(0.0, s * h) for s, h in zip(shape, spacing, strict=True)]
            density = rq.Density.uniform(shape, extent=extent, periodic=periodic)
            values = np.ones(shape)
        else:
            density = rq.Density.from_array(values, spacing=spacing, periodic=periodic)
        pts = rng.random((3, ndim)) * np.array(shape) * np.array(spacing)
        quad = make_quadrature(density, pts, "fractional")
        flat = np.flatnonzero(values.ravel() > 0)
        centres = (np.stack(np.unravel_index(flat, shape), 1) + 0.5) * spacing
        for y in pts:
            k = int(rng.integers(1, 2 * len(flat)))  # also more than there are
            d2 = (density.grid.min_image(centres - y) ** 2).sum(axis=1)
            want = flat[np.lexsort((flat, d2))[:k]]  # nearest first, ties by index
            np.testing.assert_array_equal(_nearest_pixels(quad, y, k), want)


def test_repair_fills_empty_cells_on_a_large_uniform_box():
    # 80^3 voxels, one site right beside another: its cell starts empty; the repair
    # looks only around the site
    d = rq.Density.uniform((80, 80, 80), periodic=True)
    rng = np.random.default_rng(0)
    pts = rng.random((200, 3)) * 80
    pts[1] = pts[0] + 1e-3
    res = rq.solve_ot(d, pts, weights=np.r_[10.0, -10.0, np.zeros(198)], tol=1e-3)
    assert res.converged and res.n_repairs >= 1


def test_many_empty_cells_on_a_small_raster_use_one_tree():
    # clustered sites on a coarse raster: many cells start empty; the repair (one
    # kd-tree of the pixels then) fills them all
    rng = np.random.default_rng(1)
    d = rq.Density.from_array(rng.random((24, 24)) + 0.2)
    pts = np.vstack([rng.normal(12.0, 1.5, (150, 2)), rng.random((50, 2)) * 24])
    pts = np.clip(pts, 0.01, 23.99)
    w = rng.normal(scale=30.0, size=len(pts))  # warm weights that empty many cells
    res = rq.solve_ot(d, pts, weights=w, tol=1e-6)
    assert res.converged and res.n_repairs >= 1
