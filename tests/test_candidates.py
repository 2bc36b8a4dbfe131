"""Tile candidate lists: the brute-force and the kd-tree builders are both exact.

Small problems use the brute-force builder (every tile against the sites near it), large
ones the kd-tree range queries; both must list every pixel's owner for its tile, and
the brute-force lists (each site with its own weight) must be subsets of the kd-tree
lists (weight groups).
"""

import numpy as np
import pytest
import reference

import rasterquant as rq
from rasterquant.assign.cells import QuadratureSpec
from rasterquant.candidates import _tile_geometry, build_candidates


def _lists(cl, t):
    return cl.cand_idx[cl.cand_ptr[t] : cl.cand_ptr[t + 1]]


def _build(monkeypatch, brute, *args, **kwargs):
    return build_candidates(*args, brute_max=np.inf if brute else -1.0, **kwargs)


CASES = [
    ((60, 44), False, 40, 1.0),
    ((60, 44), True, 40, 10.0),
    ((50, 50), (True, False), 200, 0.1),
    ((14, 12, 10), False, 30, 1.0),
    ((14, 12, 10), (True, False, True), 30, 3.0),
]


@pytest.mark.parametrize(("shape", "periodic", "n", "scale"), CASES)
@pytest.mark.parametrize("whole_pixels", [False, True])
def test_both_builders_list_every_owner(
    monkeypatch, rng, shape, periodic, n, scale, whole_pixels
):
    grid = rq.Grid(shape, spacing=0.7, origin=-3.0, periodic=periodic)
    pts = np.array(grid.origin) + rng.random((n, grid.ndim)) * grid.lengths
    cell2 = (grid.volume / n) ** (2.0 / grid.ndim)
    w = rng.normal(scale=scale * cell2, size=n)
    labels = reference.assign_labels(grid, pts, w)
    shape3, _, _, _ = grid.as_3d()
    lab3 = labels.reshape(shape3)
    lists = {}
    for brute in (True, False):
        cl = _build(monkeypatch, brute, grid, pts, w, whole_pixels=whole_pixels)
        ntz, nty, ntx = cl.n_tiles
        tz, ty, tx = cl.tile
        for t in range(ntz * nty * ntx):
            k, j, i = t // (nty * ntx), (t // ntx) % nty, t % ntx
            block = lab3[
                k * tz : (k + 1) * tz, j * ty : (j + 1) * ty, i * tx : (i + 1) * tx
            ]
            owners = set(cl.owner[_lists(cl, t)].tolist())
            assert set(np.unique(block).tolist()) <= owners, (brute, t)
        lists[brute] = cl
    a, b = lists[True], lists[False]
    np.testing.assert_array_equal(a.sites, b.sites)  # same ghosts
    for t in range(len(a.cand_ptr) - 1):
        assert set(_lists(a, t).tolist()) <= set(_lists(b, t).tolist())


@pytest.mark.parametrize(("shape", "periodic", "n", "scale"), CASES)
def test_fractional_masses_do_not_depend_on_the_builder(
    monkeypatch, rng, shape, periodic, n, scale
):
    grid = rq.Grid(shape, periodic=periodic)
    density = rq.Density.from_array(rng.random(shape) + 0.05, grid)
    pts = rng.random((n, grid.ndim)) * grid.lengths
    cell2 = (grid.volume / n) ** (2.0 / grid.ndim)
    w = rng.normal(scale=scale * cell2, size=n)
    out = []
    for brute in (True, False):
        spec = QuadratureSpec(
            "fractional", brute_candidates_max=np.inf if brute else -1
        )
        out.append(rq.assign_cells(density, pts, w, quadrature=spec))
    np.testing.assert_array_equal(out[0].labels, out[1].labels)
    np.testing.assert_allclose(out[0].masses, out[1].masses, rtol=0, atol=1e-14)


@pytest.mark.parametrize(("shape", "periodic", "n", "scale"), CASES)
def test_brute_lists_are_the_documented_sets(
    monkeypatch, rng, shape, periodic, n, scale
):
    """Tile t lists site j iff |c_t - y_j| <= sqrt(U_t + psi_j) + r_t (to rounding).

    ``U_t`` is the largest power distance over the tile of the best site at its centre,
    ``r_t`` the tile's radius.
    """
    grid = rq.Grid(shape, spacing=0.7, origin=-3.0, periodic=periodic)
    pts = np.array(grid.origin) + rng.random((n, grid.ndim)) * grid.lengths
    cell2 = (grid.volume / n) ** (2.0 / grid.ndim)
    w = rng.normal(scale=scale * cell2, size=n)
    cl = _build(monkeypatch, True, grid, pts, w, whole_pixels=True)
    shape3, spacing3, origin3, _ = grid.as_3d()
    pad = tuple(
        0.0 if (a == 0 and grid.ndim == 2) else spacing3[a] / 2 for a in range(3)
    )
    centres, half = _tile_geometry(shape3, spacing3, origin3, cl.tile, pad)
    axes = [1, 2] if grid.ndim == 2 else [0, 1, 2]
    pos = cl.sites[:, axes]
    for t in range(len(centres)):
        c = centres[t, axes]
        d2 = ((pos - c) ** 2).sum(axis=1)
        best = np.argmin(d2 - cl.site_weights)
        far = np.abs(c - pos[best]) + half[t, axes]
        upper = (far**2).sum() - cl.site_weights[best]
        r = np.sqrt((half[t] ** 2).sum())
        b2 = (np.sqrt(np.maximum(upper + cl.site_weights, 0.0)) + r) ** 2
        got = set(_lists(cl, t).tolist())
        assert set(np.flatnonzero(d2 <= b2 * (1 - 1e-6)).tolist()) <= got
        assert got <= set(np.flatnonzero(d2 <= b2 * (1 + 1e-6)).tolist())
