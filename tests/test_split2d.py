"""Closed-form cut and incremental split of a pixel (2D fractional quadrature) against
a plain polygon clipper: every piece clipped by all of its half-planes."""

import numpy as np
import pytest
import reference

from rasterquant.assign import _fractional as fr

MAXA, MAXV = fr.MAXA, fr.MAXV


def _square(hy, hx):
    """The pixel as (u, v, tag) vertices, edges untagged (-1)."""
    return [
        (-hy / 2, -hx / 2, -1),
        (-hy / 2, hx / 2, -1),
        (hy / 2, hx / 2, -1),
        (hy / 2, -hx / 2, -1),
    ]


def _clip(poly, cu, cv, b, tag):
    """Keep ``cu u + cv v <= b``; new edges and edges on the line get ``tag``."""
    out = []
    n = len(poly)
    for k in range(n):
        pu, pv, pt = poly[k]
        qu, qv, _ = poly[(k + 1) % n]
        sp = cu * pu + cv * pv - b
        sq = cu * qu + cv * qv - b
        if sp <= 0.0:
            out.append((pu, pv, tag if (sp == 0.0 and sq == 0.0) else pt))
            if sq > 0.0:
                t = sp / (sp - sq)
                out.append((pu + t * (qu - pu), pv + t * (qv - pv), tag))
        elif sq <= 0.0:
            t = sp / (sp - sq)
            out.append((pu + t * (qu - pu), pv + t * (qv - pv), pt))
    return out


def _moments(poly):
    """Area, int u, int v, int |u|^2 of a polygon of either orientation."""
    a = mu = mv = m2 = 0.0
    n = len(poly)
    for k in range(n):
        x0, y0, _ = poly[k]
        x1, y1, _ = poly[(k + 1) % n]
        cr = x0 * y1 - x1 * y0
        a += cr
        mu += cr * (x0 + x1)
        mv += cr * (y0 + y1)
        m2 += cr * (x0 * x0 + x0 * x1 + x1 * x1 + y0 * y0 + y0 * y1 + y1 * y1)
    s = -1.0 if a < 0 else 1.0
    return s * a / 2, s * mu / 6, s * mv / 6, s * m2 / 12


def _reference_split(hy, hx, dcen, sy, sx):
    """Pieces (nact, 5) and facet lengths (nact, nact) by clipping each slot's square
    by all nact - 1 half-planes (facets half from each non-degenerate side)."""
    nact = len(dcen)
    piece = np.zeros((nact, 5))
    flen = np.zeros((nact, nact))
    for a in range(nact):
        poly = _square(hy, hx)
        for b in range(nact):
            if b == a or not poly:
                continue
            _, cu, cv, rhs = fr._snap(
                0.0,
                2.0 * (sy[b] - sy[a]),
                2.0 * (sx[b] - sx[a]),
                dcen[b] - dcen[a],
                1.0,
                hy,
                hx,
            )
            poly = _clip(poly, cu, cv, rhs, b)
        if len(poly) < 3:
            continue
        ar, mu, mv, m2 = _moments(poly)
        piece[a] = ar, 0.0, mu, mv, m2
        if ar <= 1e-12 * hy * hx:
            continue
        for k, (pu, pv, t) in enumerate(poly):
            if t >= 0 and t != a:
                qu, qv, _ = poly[(k + 1) % len(poly)]
                flen[min(a, t), max(a, t)] += 0.5 * np.hypot(qu - pu, qv - pv)
    return piece, flen


def _split(hy, hx, dcen, sy, sx, want_facets=True):
    nact = len(dcen)
    sl = np.zeros((8, MAXV))
    sl[0, :nact] = dcen
    sl[1, :nact] = sy
    sl[2, :nact] = sx
    piece = np.full((MAXA, 5), np.nan)
    flen = np.full((MAXA, MAXA), np.nan)
    fr._split_pixel_2d(
        hy,
        hx,
        nact,
        sl,
        piece,
        flen,
        want_facets,
        np.empty((6 * MAXA, MAXV)),
        np.empty(4 * MAXA, np.int64),
    )
    return piece[:nact], flen[:nact, :nact]


def _sites(rng, kind, nact, hy, hx):
    """Sites around a pixel centred at 0 and their centre power distances."""
    if kind == "random":
        pts = rng.normal(scale=1.5, size=(nact, 2)) * (hy, hx)
        w = rng.normal(scale=0.5 * hy * hx, size=nact)
    elif kind == "lattice":
        # half-pixel lattice and zero weights: bisectors through corners, along the
        # pixel's edges and its diagonals
        pts = rng.integers(-4, 5, size=(nact, 2)) * (hy / 2, hx / 2) + (hy / 2, hx / 2)
        pts = np.unique(pts, axis=0)
        w = np.zeros(len(pts))
    else:  # "close": nearly coincident sites, tiny pieces and short facets
        pts = rng.normal(scale=1e-6, size=(nact, 2)) * (hy, hx) + rng.normal(size=2)
        w = rng.normal(scale=1e-6, size=nact)
    d = (pts**2).sum(axis=1) - w
    return d, pts[:, 0], pts[:, 1]


@pytest.mark.parametrize("kind", ["random", "lattice", "close"])
@pytest.mark.parametrize("h", [(1.0, 1.0), (0.5, 2.0), (1 / 30, 1 / 30), (0.7, 0.3)])
def test_split_matches_clipping_each_piece(rng, kind, h):
    hy, hx = h
    full = hy * hx
    for _ in range(300):
        nact = int(rng.integers(3, 10))
        d, sy, sx = _sites(rng, kind, nact, hy, hx)
        if len(d) < 3:
            continue
        piece, flen = _split(hy, hx, d, sy, sx)
        ref_piece, ref_flen = _reference_split(hy, hx, d, sy, sx)
        scale = np.array([full, 1.0, full * hy, full * hx, full * (hy**2 + hx**2)])
        np.testing.assert_allclose(piece / scale, ref_piece / scale, rtol=0, atol=1e-12)
        np.testing.assert_allclose(piece[:, 0].sum(), full, rtol=1e-12)
        np.testing.assert_allclose(
            np.triu(flen, 1), ref_flen, rtol=0, atol=1e-12 * (hy + hx)
        )
        # without facets, the same pieces
        np.testing.assert_array_equal(_split(hy, hx, d, sy, sx, False)[0], piece)


def test_split_areas_match_polytope_reference(rng):
    """Piece areas and centroids from scipy's half-space intersection."""
    hy, hx = 1.0, 1.5
    for _ in range(20):
        nact = int(rng.integers(3, 7))
        d, sy, sx = _sites(rng, "random", nact, hy, hx)
        piece, _ = _split(hy, hx, d, sy, sx)
        box = np.array(
            [[1, 0, -hy / 2], [0, 1, -hx / 2], [-1, 0, -hy / 2], [0, -1, -hx / 2]],
            dtype=float,
        )
        for a in range(nact):
            rows = [
                [2 * (sy[b] - sy[a]), 2 * (sx[b] - sx[a]), -(d[b] - d[a])]
                for b in range(nact)
                if b != a
            ]
            vol, first = reference._polytope_moments(np.vstack([box, rows]), 2)
            np.testing.assert_allclose(piece[a, 0], vol, atol=1e-9)
            np.testing.assert_allclose(piece[a, 2:4], first, atol=1e-9)


def _reference_cut(hy, hx, cu, cv, b):
    poly = _clip(_square(hy, hx), cu, cv, b, 1)
    if len(poly) < 3:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    length = sum(
        np.hypot(poly[(k + 1) % len(poly)][0] - pu, poly[(k + 1) % len(poly)][1] - pv)
        for k, (pu, pv, t) in enumerate(poly)
        if t == 1
    )
    return (*_moments(poly), length)


def test_cut_square_matches_clipper(rng):
    hy, hx = 0.75, 1.25
    full = hy * hx
    corners = np.array(
        [(-hy / 2, -hx / 2), (-hy / 2, hx / 2), (hy / 2, hx / 2), (hy / 2, -hx / 2)]
    )
    cases = []
    for _ in range(400):
        cu, cv = rng.normal(size=2)
        cases.append((cu, cv, rng.normal(scale=0.6)))
        # through a corner, through two corners, tiny pieces at a corner
        c = corners[rng.integers(4)]
        cases.append((cu, cv, cu * c[0] + cv * c[1]))
        cases.append((cu, cv, cu * c[0] + cv * c[1] + rng.choice([-1, 1]) * 1e-13))
    for c0, c1 in ((0, 2), (1, 3)):
        n = corners[c1] - corners[c0]
        cases.append((-n[1], n[0], -n[1] * corners[c0][0] + n[0] * corners[c0][1]))
    # lines on the pixel's edges and parallel to them
    for s in (-1.0, 1.0):
        for frac in (-0.5, -0.2, 0.0, 0.3, 0.5):
            cases += [(s, 0.0, s * frac * hy), (0.0, s, s * frac * hx)]
    for cu, cv, b in cases:
        got = fr._cut_square_2d(hy, hx, cu, cv, b)
        ref = _reference_cut(hy, hx, cu, cv, b)
        np.testing.assert_allclose(got[:4], ref[:4], rtol=0, atol=1e-14)
        if 1e-12 * full < ref[0] < full * (1 - 1e-12):
            # (the length is used only when the cut crosses the interior)
            np.testing.assert_allclose(got[4], ref[4], rtol=1e-12, atol=1e-14)


def test_facets_on_pixel_edges_where_four_cells_meet_at_a_corner():
    """A 6 x 6 grid cloud on a 60 x 60 raster of [-1, 1]^2 (the "tightness-grid" case
    of the rates experiment): the pixel at the corner of its 10 x 10 block has two
    facets on its edges and a fourth cell touching its corner only. A fused
    multiply-add once left the vertex values at rounding error instead of zero, and
    the edges lost their facets."""
    h = 2.0 / 60.0
    c = np.array([-1 + 47.5 * h, -1 + 47.5 * h])
    sites = np.array([[0.5, 0.5], [0.5, 0.7], [0.7, 0.5], [0.7, 0.7]])
    d = ((sites - c) ** 2).sum(axis=1)
    for sub in ([0, 1, 3], [0, 2, 3], [0, 1, 2], [0, 1, 2, 3]):
        s = np.array(sub)
        piece, flen = _split(h, h, d[s], sites[s, 0] - c[0], sites[s, 1] - c[1])
        ref_piece, ref_flen = _reference_split(
            h, h, d[s], sites[s, 0] - c[0], sites[s, 1] - c[1]
        )
        np.testing.assert_allclose(piece[:, 0], ref_piece[:, 0], atol=1e-15)
        np.testing.assert_allclose(np.triu(flen, 1), ref_flen, atol=1e-15)
        assert ref_flen.sum() > 0.4 * h  # the edges carry facets
