"""Grain-map previews (``grain_slices_png``): labelled planes, neighbours' colours.

Issue #17 item 14: the PNG of the mid-slices did not say which plane is which, and
neighbouring grains could get almost the same (random) colour.
"""

import numpy as np
import pytest
from PIL import Image

from rasterquant.io.render import grain_slices_png

#: least RGB distance (0-255, Euclidean) between the colours of neighbouring grains
MIN_SEPARATION = 100.0


@pytest.fixture
def rng():
    return np.random.default_rng(20261217)


def voronoi_map(rng, shape, n):
    """Grain ids of the nearest of ``n`` random seeds at the voxel centres."""
    seeds = rng.random((n, len(shape))) * np.array(shape)
    axes = [np.arange(s) + 0.5 for s in shape]
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    dist = ((centres[..., None, :] - seeds) ** 2).sum(axis=-1)
    return dist.argmin(axis=-1)


def face_pairs(gm):
    """Set of (i, j), i < j, of grains sharing a voxel face (no wrap, no void)."""
    out = set()
    for axis in range(gm.ndim):
        a = np.moveaxis(gm, axis, 0)
        lo, hi = a[:-1].ravel(), a[1:].ravel()
        m = (lo != hi) & (lo >= 0) & (hi >= 0)
        i, j = np.minimum(lo, hi)[m].tolist(), np.maximum(lo, hi)[m].tolist()
        out |= set(zip(i, j, strict=True))
    return out


def read_panels(path, slices):
    """Read the PNG back: (label band, [(x0, x1)], [(H, W, 3) colours per slice]).

    Only what the docstring promises is assumed: panels side by side from the left,
    top-aligned under a band of labels, separated by white, each slice enlarged by
    one integer factor (nearest neighbour).
    """
    with Image.open(path) as im:
        img = np.asarray(im.convert("RGB")).astype(np.int64)
    white = (img == 255).all(axis=-1)
    # the first panel starts at column 0 and is the tallest: it ends at the bottom
    run = np.flatnonzero(white[::-1, 0])
    tall = int(run[0]) if run.size else img.shape[0]
    factor = tall // max(s.shape[0] for s in slices)
    assert factor >= 1 and tall == factor * max(s.shape[0] for s in slices)
    top = img.shape[0] - tall
    used = ~white[top:].all(axis=0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], used.astype(int), [0]])))
    spans = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
    assert len(spans) == len(slices)
    cells = []
    for (x0, x1), s in zip(spans, slices, strict=True):
        h, w = s.shape
        assert x1 - x0 == w * factor
        block = img[top : top + h * factor, x0:x1]
        small = block[::factor, ::factor]
        # nearest-neighbour enlargement: every factor x factor block is one colour
        big = np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)
        np.testing.assert_array_equal(block, big)
        cells.append(small)
    return img[:top], spans, cells


def check_colours(gm, slices, cells):
    """One colour per grain; void black; neighbours (over the whole map) apart."""
    colour = {}
    for s, c in zip(slices, cells, strict=True):
        for g, rgb in zip(s.ravel().tolist(), c.reshape(-1, 3).tolist(), strict=True):
            if g < 0:
                assert rgb == [0, 0, 0]
                continue
            assert colour.setdefault(g, rgb) == rgb, f"grain {g} has two colours"
    assert len(colour) > 10
    pairs = [(i, j) for i, j in face_pairs(gm) if i in colour and j in colour]
    assert len(pairs) > 20
    gaps = [np.linalg.norm(np.subtract(colour[i], colour[j])) for i, j in pairs]
    assert min(gaps) >= MIN_SEPARATION
    # and within the pictures themselves: face-adjacent pixels of two grains differ
    for s, c in zip(slices, cells, strict=True):
        for axis in (0, 1):
            ids = np.moveaxis(s, axis, 0)
            rgb = np.moveaxis(c, axis, 0)
            diff = (ids[:-1] != ids[1:]) & (ids[:-1] >= 0) & (ids[1:] >= 0)
            dist = np.linalg.norm(rgb[:-1] - rgb[1:], axis=-1)
            assert (dist[diff] >= MIN_SEPARATION).all()


def test_3d_slices_labelled_and_neighbours_coloured_apart(tmp_path, rng):
    gm = voronoi_map(rng, (16, 20, 24), 70)
    gm[:2, :3, :4] = -1  # some void
    path = tmp_path / "g.png"
    grain_slices_png(path, gm, min_height=120)
    d, h, w = gm.shape
    slices = [gm[d // 2], gm[:, h // 2, :], gm[:, :, w // 2]]
    band, spans, cells = read_panels(path, slices)
    check_colours(gm, slices, cells)
    # each panel has its own label above it, drawn in dark ink
    assert band.shape[0] > 0
    ink = band.max(axis=-1) < 128
    labels = [ink[:, x0:x1] for x0, x1 in spans]
    assert all(lab.sum() > 30 for lab in labels)
    assert not np.array_equal(labels[0], labels[1])
    assert not np.array_equal(labels[1], labels[2])
    # deterministic: the same map gives the same picture, whatever the seed
    grain_slices_png(tmp_path / "h.png", gm, seed=5, min_height=120)
    assert (tmp_path / "h.png").read_bytes() == path.read_bytes()


def test_2d_map_labelled_and_neighbours_coloured_apart(tmp_path, rng):
    gm = voronoi_map(rng, (30, 45), 80)
    path = tmp_path / "flat.png"
    grain_slices_png(path, gm)
    band, _, cells = read_panels(path, [gm])
    check_colours(gm, [gm], cells)
    assert (band.max(axis=-1) < 128).sum() > 30
    assert cells[0].shape[:2] == gm.shape
