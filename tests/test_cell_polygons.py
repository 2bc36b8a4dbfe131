"""Exact 2D power cells as polygons (rasterquant.assign.cell_polygons)."""

import numpy as np
import pytest

from rasterquant.assign import cell_polygons
from rasterquant.assign._laguerre import laguerre_cells


def _signed_area(p):
    """Shoelace area of a polygon (row, col) in (x, y) = (col, row)."""
    if len(p) == 0:
        return 0.0
    x, y = p[:, 1], p[:, 0]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _case(rng, n, weight_scale):
    lo = rng.normal(size=2)
    lengths = np.array([3.0, 5.0])
    pts = lo + rng.random((n, 2)) * lengths
    scale = np.prod(lengths) / n
    return pts, rng.normal(scale=weight_scale * scale, size=n), lo, lo + lengths


@pytest.mark.parametrize(("n", "weight_scale"), [(1, 0.0), (40, 0.0), (200, 0.5)])
def test_polygons_are_the_power_cells(rng, n, weight_scale):
    pts, w, lo, hi = _case(rng, n, weight_scale)
    polys = cell_polygons(pts, w, lo, hi)
    assert len(polys) == n
    out = laguerre_cells(pts, w, lo, hi, False, False, False)[0]
    areas = np.array([_signed_area(p) for p in polys])
    np.testing.assert_allclose(areas, out[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(areas.sum(), np.prod(hi - lo), rtol=1e-12)
    scale = float(np.max(np.abs(hi - lo))) ** 2
    for i, p in enumerate(polys):
        assert p.dtype == np.float64 and p.ndim == 2 and p.shape[1] == 2
        if len(p) == 0:
            continue
        # inside the box, and in cell i: |x - y_i|^2 - w_i <= |x - y_j|^2 - w_j
        assert (p >= lo - 1e-12).all() and (p <= hi + 1e-12).all()
        power = ((p[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2) - w[None, :]
        assert (power[:, i] <= power.min(axis=1) + 1e-9 * scale).all()
        # convex and counter-clockwise: every turn is a left turn in (col, row)
        e = np.roll(p, -1, axis=0) - p
        turn = (
            e[:, 1] * np.roll(e, -1, axis=0)[:, 0]
            - e[:, 0] * np.roll(e, -1, axis=0)[:, 1]
        )
        assert (turn >= -1e-9 * scale).all()


def test_brute_force_owners_fall_in_their_polygon(rng):
    pts, w, lo, hi = _case(rng, 30, 0.3)
    polys = cell_polygons(pts, w, lo, hi)
    x = lo + rng.random((2000, 2)) * (hi - lo)
    owner = np.argmin(((x[:, None] - pts[None]) ** 2).sum(axis=2) - w[None], axis=1)
    for i, p in enumerate(polys):
        inside = owner == i
        if not inside.any():
            continue
        assert len(p) >= 3
        # left of (or on) every edge, counter-clockwise in (col, row)
        e = np.roll(p, -1, axis=0) - p
        rel = x[inside][:, None, :] - p[None]
        cross = e[None, :, 1] * rel[..., 0] - e[None, :, 0] * rel[..., 1]
        assert (cross >= -1e-9).all()


def test_empty_cells_are_empty_arrays():
    # a heavy middle site swallows the whole box
    polys = cell_polygons(
        [[0.5, 0.2], [0.5, 0.5], [0.5, 0.8]], [0.0, 10.0, 0.0], [0, 0], [1, 1]
    )
    assert polys[0].shape == (0, 2) and polys[2].shape == (0, 2)
    np.testing.assert_allclose(_signed_area(polys[1]), 1.0, rtol=1e-12)


def test_two_cells_closed_form():
    polys = cell_polygons([[0.5, 0.25], [0.5, 0.75]], [0.1, 0.0], [0, 0], [1, 1])
    # the boundary moves by (w1 - w2) / (2 |p1 - p2|) = 0.1 towards the second site
    np.testing.assert_allclose(_signed_area(polys[0]), 0.6, rtol=1e-12)
    np.testing.assert_allclose(polys[0][:, 1].max(), 0.6, rtol=1e-12)


@pytest.mark.parametrize(
    ("points", "weights", "lo", "hi", "match"),
    [
        ([[0.5, 0.5, 0.5]], [0.0], [0, 0, 0], [1, 1, 1], "shape"),
        ([[0.5, 0.5]], [0.0, 1.0], [0, 0], [1, 1], "weights must have shape"),
        ([[1.5, 0.5]], [0.0], [0, 0], [1, 1], "points must lie in the box"),
        ([[0.5, 0.5], [0.5, 0.5]], [0.0, 0.0], [0, 0], [1, 1], "distinct"),
        ([[0.5, 0.5]], [0.0], [0, 0], [1, 0], "hi must exceed lo"),
    ],
)
def test_bad_inputs(points, weights, lo, hi, match):
    with pytest.raises(ValueError, match=match):
        cell_polygons(points, weights, lo, hi)
