"""Exact power cells of a 2D raster density, built as polygons (no pixel sweep).

Where cells are only a few pixels wide, most pixels are split among several cells, and
a pixel sweep spends its time clipping pixels. Here each cell is built once, as the
box clipped by the half-planes ``pd_i <= pd_j`` of its candidate neighbours, and the
piecewise-constant density is integrated over the polygon by Green's theorem:

    int_P rho dA = oint_dP F dy,   F(x, y) = int^x rho(s, y) ds (a row prefix sum),

which, on each piece of an edge inside one pixel, is linear along the piece (exact by
the midpoint rule; the moments' integrands are at most cubic there: exact by
Simpson's rule). A facet's Jacobian entry is ``int rho ds / (2 |y_i - y_j|)`` along
it (on a pixel border, the mean of the two pixels, as in the pixel sweep). The cost
grows with the cells' perimeters in pixels, not with their areas.

Candidates: the rings (2 or 3 deep) of each cell in a neighbour graph (the cells'
adjacency at nearby weights). A polygon clipped by fewer half-planes than all
contains the true cell, so the polygons tile the box exactly if and only if their
areas sum to the box's area, and every facet then has one length seen from both of
its cells. Both are checked (the second catches slivers below the rounding of the
first): they certify the pass. The caller falls back to the pixel sweep when they do
not hold; the masses of a pass that is not certified are still upper bounds.
"""

from dataclasses import dataclass

import numpy as np
from numba import prange

from .._jit import kernel
from ._clip import _clip_2d

__all__ = [
    "PolygonPass",
    "buffer_bytes",
    "cell_masses_at",
    "new_buffers",
    "polygon_cells",
]

#: vertices of a cell polygon
MAXV = 64
#: the areas certify a pass when their sum is the box's to this relative error (their
#: rounding is about 1e-15; a missed neighbour that overlaps less than this leaves
#: mass errors below CERTIFY_RTOL * N relative)
CERTIFY_RTOL = 1e-13
#: a pass whose areas exceed the box by more than this fraction is not retried with
#: 3-rings
RETRY_EXCESS = 1e-3
#: the lengths of a facet seen from its two cells agree to this, relative to the mean
#: cell size (else a neighbour is missing from a candidate list); so does the facet
#: check (see ``_polygon_pass``), whose rounding is about 1e-15 sqrt(facets)
LENGTH_RTOL = 1e-9
#: candidates of a cell
MAXC = 512
#: room for the row prefixes over a cell's box (grown for larger boxes)
LOCAL_PREFIX = 1 << 14
#: facet triplets per cell (to neighbours of higher index)
MAX_FACETS = 24


@kernel(parallel=False)
def _prefix_at(lp, q, c, rho_rc, xl, x, moments):
    """Return the row prefixes ``(F0, F1, F2)`` at ``x`` in column ``c``.

    The integrals of ``rho``, ``rho s``, ``rho s^2`` from the start of the row's
    prefixes ``lp`` (offset ``q``; 3 values per column border with ``moments``, else
    ``F0`` alone); ``xl`` is the column's left border, ``x`` and ``xl`` relative to
    the site.
    """
    if not moments:
        return lp[q + c] + rho_rc * (x - xl), 0.0, 0.0
    f0 = lp[q + 3 * c] + rho_rc * (x - xl)
    f1 = lp[q + 3 * c + 1] + rho_rc * (x * x - xl * xl) / 2.0
    f2 = lp[q + 3 * c + 2] + rho_rc * (x * x * x - xl * xl * xl) / 3.0
    return f0, f1, f2


@kernel(parallel=False)
def _first_border(p0, d, o, h):
    """Return ``(step, index, t)``: the first grid line ``o + index h`` crossed.

    The segment is ``p0 + t d``, ``t`` in (0, 1]; ``t = 2``: none.
    """
    if d > 0.0:
        k = np.floor((p0 - o) / h) + 1.0
        return 1.0, k, (o + k * h - p0) / d
    if d < 0.0:
        k = np.ceil((p0 - o) / h) - 1.0
        return -1.0, k, (o + k * h - p0) / d
    return 0.0, 0.0, 2.0


@kernel(parallel=False)
def _walk(y0, x0, y1, x1, yi, xi, geo, rho, rhol, lp, stride, box, flags, acc):
    """Add integrals along the segment (y0, x0) -> (y1, x1) to ``acc``.

    ``geo``: the raster's origin and pixel size ``(oy, ox, hy, hx)``; ``(yi, xi)``
    the cell's site.

    ``acc[0] += int F0 dy`` with ``F0`` the row prefix of ``rho`` from the left border
    of column ``c0`` (a function of the row alone, whose integral over a closed curve
    vanishes, is left out: the terms, and their rounding, stay the size of the cell's
    own mass). ``lp`` holds the prefixes of the rows of the cell's ``box`` (first and
    last row, first and last column) from its first column ``c0``:
    ``F0, F1, F2`` (integrals of ``rho``, ``rho (x - xi)``, ``rho (x - xi)^2``) at
    each column's left border, row ``r`` at ``(r - box[0]) * stride``. ``flags``: bit 1,
    the facet integrals ``acc[1] += int rho ds``, ``acc[6:8] += int rho (y, x) ds``;
    bit 2, ``acc[2] += int rhol ds`` (the floor density of zero pixels, for the weak
    links); on a pixel border they take the mean of the two pixels. Bit 4, the
    moments ``acc[3] += int (y - yi) F0 dy``, ``acc[4] += int F1 dy``,
    ``acc[5] += int (F2 + (y - yi)^2 F0) dy`` (Simpson's rule: exact, the integrands
    are cubic along each piece).
    """
    oy, ox, hy, hx = geo[0], geo[1], geo[2], geo[3]
    want_s = (flags & 1) != 0
    want_l = (flags & 2) != 0
    want_m = (flags & 4) != 0
    h_rows = rho.shape[0]
    w_cols = rho.shape[1]
    dy = y1 - y0
    dx = x1 - x0
    length = np.sqrt(dy * dy + dx * dx)
    # next row / column border along the segment, as a parameter t in (0, 1]
    sy, ky, tr = _first_border(y0, dy, oy, hy)
    sx, kx, tc = _first_border(x0, dx, ox, hx)
    g0 = g1 = g2 = g3 = g4 = g5 = g6 = g7 = 0.0
    ta = 0.0
    while True:
        tb = min(tr, tc, 1.0)
        if tb > ta:
            tm = 0.5 * (ta + tb)
            ym = y0 + tm * dy
            xm = x0 + tm * dx
            fr = (ym - oy) / hy
            fc = (xm - ox) / hx
            r = min(max(int(np.floor(fr)), 0), h_rows - 1)
            c = min(max(int(np.floor(fc)), 0), w_cols - 1)
            if dy != 0.0:
                # the cell's box holds the piece (a rounding step past its border,
                # on a piece of length ~0, stays in it)
                r = min(max(r, box[0]), box[1])
                c = min(max(c, box[2]), box[3])
                c0 = box[2]
                q = (r - box[0]) * stride
                rc = rho[r, c]
                xl = ox + c * hx - xi
                cc = c - c0
                wdy = (tb - ta) * dy
                f0, f1, f2 = _prefix_at(lp, q, cc, rc, xl, xm - xi, want_m)
                g0 += f0 * wdy
                if want_m:
                    ya = y0 + ta * dy - yi
                    yb = y0 + tb * dy - yi
                    yc = ym - yi
                    xa = x0 + ta * dx - xi
                    xb = x0 + tb * dx - xi
                    a0, a1, a2 = _prefix_at(lp, q, cc, rc, xl, xa, want_m)
                    b0, b1, b2 = _prefix_at(lp, q, cc, rc, xl, xb, want_m)
                    w6 = wdy / 6.0
                    g3 += w6 * (ya * a0 + 4.0 * yc * f0 + yb * b0)
                    g4 += w6 * (a1 + 4.0 * f1 + b1)
                    g5 += w6 * (
                        a2
                        + ya * ya * a0
                        + 4.0 * (f2 + yc * yc * f0)
                        + b2
                        + yb * yb * b0
                    )
            if want_s:
                # on a pixel border: the mean of the pixels on its two sides
                r2 = r
                c2 = c
                if dy == 0.0:
                    k = np.round(fr)
                    if abs(fr - k) < 1e-9 and 0 < k < h_rows:
                        r = int(k) - 1
                        r2 = int(k)
                elif dx == 0.0:
                    k = np.round(fc)
                    if abs(fc - k) < 1e-9 and 0 < k < w_cols:
                        c = int(k) - 1
                        c2 = int(k)
                ds = (tb - ta) * length
                rs = 0.5 * (rho[r, c] + rho[r2, c2]) * ds
                g1 += rs
                g6 += rs * ym
                g7 += rs * xm
                if want_l:
                    g2 += 0.5 * (rhol[r, c] + rhol[r2, c2]) * ds
        if tb >= 1.0:
            break
        if tr <= tb:
            ky += sy
            tr = (oy + ky * hy - y0) / dy
        if tc <= tb:
            kx += sx
            tc = (ox + kx * hx - x0) / dx
        ta = tb
    # (sums in locals: stores to acc in the loop could alias lp and stay in memory)
    acc[0] += g0
    acc[1] += g1
    acc[2] += g2
    acc[3] += g3
    acc[4] += g4
    acc[5] += g5
    acc[6] += g6
    acc[7] += g7


@kernel(parallel=False)
def _box_prefixes(poly, r, nv, yi, xi, geo, rho, want_moments, lp, box):
    """Return the polygon's area, and the pixels it meets with their row prefixes.

    The polygon is in rows ``r`` (y) and ``r + 1`` (x) of ``poly``, relative to the
    site ``(yi, xi)``. Writes ``box`` (first and last row, first and last column)
    and the prefixes ``F0`` (and ``F1, F2`` with ``want_moments``) at each column's
    left border of each row of the box to ``lp`` (grown if needed). Returns
    ``(signed area, row stride of lp, lp)``.
    """
    oy, ox, hy, hx = geo[0], geo[1], geo[2], geo[3]
    h_rows = rho.shape[0]
    w_cols = rho.shape[1]
    area = 0.0
    xmin = np.inf
    xmax = -np.inf
    ymin = np.inf
    ymax = -np.inf
    for k in range(nv):
        k2 = k + 1 if k + 1 < nv else 0
        area += poly[r + 1, k] * poly[r, k2] - poly[r + 1, k2] * poly[r, k]
        xmin = min(xmin, poly[r + 1, k])
        xmax = max(xmax, poly[r + 1, k])
        ymin = min(ymin, poly[r, k])
        ymax = max(ymax, poly[r, k])
    area *= 0.5
    # the pixels the cell meets (rows, then columns; inclusive)
    box[0] = min(max(int(np.floor((ymin + yi - oy) / hy)), 0), h_rows - 1)
    box[1] = min(max(int(np.floor((ymax + yi - oy) / hy)), 0), h_rows - 1)
    box[2] = min(max(int(np.floor((xmin + xi - ox) / hx)), 0), w_cols - 1)
    box[3] = min(max(int(np.floor((xmax + xi - ox) / hx)), 0), w_cols - 1)
    # row prefixes over the cell's box: F0 (F1, F2) at each column's left
    # border (x relative to the site)
    width = 3 if want_moments else 1
    r0 = box[0]
    c0 = box[2]
    ncol = box[3] - c0 + 1
    stride = width * (ncol + 1)
    need = (box[1] - r0 + 1) * stride
    if need > lp.size:
        lp = np.empty(2 * need)
    for rr in range(box[1] - r0 + 1):
        q = rr * stride
        p0 = 0.0
        p1 = 0.0
        p2 = 0.0
        for j in range(width):
            lp[q + j] = 0.0
        for cc in range(ncol):
            rc = rho[r0 + rr, c0 + cc]
            p0 += rc * hx
            q2 = q + width * (cc + 1)
            lp[q2] = p0
            if want_moments:
                xl = ox + (c0 + cc) * hx - xi
                xr = xl + hx
                p1 += rc * (xr * xr - xl * xl) / 2.0
                p2 += rc * (xr * xr * xr - xl * xl * xl) / 3.0
                lp[q2 + 1] = p1
                lp[q2 + 2] = p2
    return area, stride, lp


@kernel(parallel=False)
def _clip_cell(i, pts, w, dw, t, cand, ncand, over, lo, hi, poly, sl):
    """Build cell ``i`` at the weights ``w + t dw``.

    The box, clipped by the half-planes of the candidates ``cand[:ncand]``.

    The polygon is written to rows ``r`` to ``r + 2`` of ``poly`` (6, MAXV): its
    vertices relative to the site and the edge tags (the neighbour across, -1 on the
    box), see :mod:`._clip`; ``sl`` (1, MAXV) is scratch. Returns ``(r, nv, over)``:
    ``nv`` vertices (0: empty), ``over`` if the buffers overflowed (or ``over`` was
    given).
    """
    yi = pts[i, 0]
    xi = pts[i, 1]
    r = 0
    poly[0, 0] = lo[0] - yi
    poly[1, 0] = lo[1] - xi
    poly[0, 1] = lo[0] - yi
    poly[1, 1] = hi[1] - xi
    poly[0, 2] = hi[0] - yi
    poly[1, 2] = hi[1] - xi
    poly[0, 3] = hi[0] - yi
    poly[1, 3] = lo[1] - xi
    for k in range(4):
        poly[2, k] = -1.0  # the box
    nv = 4
    # a disc around the polygon (centre, radius; updated after each cut): a
    # candidate whose half-plane holds the whole disc cannot cut (one test
    # instead of one per vertex: most candidates of the outer rings)
    my = 0.0
    mx = 0.0
    rad = np.inf
    for a in range(ncand):
        if over:
            break
        c = cand[a]
        ey = pts[c, 0] - yi
        ex = pts[c, 1] - xi
        # the weight differences first (exact for close weights), then the step
        b = ey * ey + ex * ex + ((w[i] - w[c]) + t * (dw[i] - dw[c]))
        if 2.0 * (my * ey + mx * ex + rad * np.sqrt(ey * ey + ex * ex)) < b:
            continue
        smax = -np.inf
        smin = np.inf
        for k in range(nv):
            s = 2.0 * (poly[r, k] * ey + poly[r + 1, k] * ex) - b
            sl[0, k] = s
            smax = max(smax, s)
            smin = min(smin, s)
        if smax <= 0.0:
            continue
        if smin > 0.0:
            nv = 0
            break
        o = 3 - r
        nv = _clip_2d(poly, r, nv, sl, 0, 0.0, float(c), o)
        r = o
        if nv > MAXV - 2:
            over = True
        my = 0.0
        mx = 0.0
        for k in range(nv):
            my += poly[r, k]
            mx += poly[r + 1, k]
        my /= max(nv, 1)
        mx /= max(nv, 1)
        rad = 0.0
        for k in range(nv):
            rad = max(rad, (poly[r, k] - my) ** 2 + (poly[r + 1, k] - mx) ** 2)
        rad = np.sqrt(rad) * (1.0 + 1e-12) + 1e-12
    return r, nv, over


@kernel(parallel=True)
def cell_masses_at(cells, t, nbr_ptr, nbr_idx, pts, psi, delta, lo, hi, geo, rho):
    """Return the masses of ``cells`` at the weights ``psi + t[k] delta``, and ok.

    Cell ``cells[k]`` is built as a polygon from the candidates
    ``nbr_idx[nbr_ptr[k]:nbr_ptr[k + 1]]`` (a superset of the cell if a neighbour is
    missing: its mass is then too large). ``geo``: origin and pixel size; ``rho``
    the density per unit area. ``ok`` is False if a polygon overflowed its buffers.
    """
    m = np.zeros(len(cells))
    fail = np.zeros(len(cells), np.bool_)
    for k in prange(len(cells)):
        i = cells[k]
        poly = np.empty((6, MAXV))
        sl = np.empty((1, MAXV))
        cand = nbr_idx[nbr_ptr[k] : nbr_ptr[k + 1]]
        r, nv, over = _clip_cell(
            i, pts, psi, delta, t[k], cand, len(cand), np.bool_(False), lo, hi, poly, sl
        )
        if over:
            fail[k] = True
            continue
        if nv < 3:
            continue
        yi = pts[i, 0]
        xi = pts[i, 1]
        box = np.empty(4, np.int64)
        area, stride, lp = _box_prefixes(
            poly, r, nv, yi, xi, geo, rho, np.bool_(False), np.empty(64), box
        )
        acc = np.zeros(8)
        for e in range(nv):
            e2 = e + 1 if e + 1 < nv else 0
            ay = poly[r, e] + yi
            by = poly[r, e2] + yi
            if ay != by:
                ax = poly[r + 1, e] + xi
                bx = poly[r + 1, e2] + xi
                fl = np.int64(0)  # masses only; not a literal (one compiled _walk)
                _walk(ay, ax, by, bx, yi, xi, geo, rho, rho, lp, stride, box, fl, acc)
        m[k] = acc[0] if area > 0.0 else -acc[0]
    return m, not fail.any()


@kernel(parallel=False)
def _rings(i, nb_ptr, nb_idx, depth, stamp, cand):
    """Candidates of cell ``i``: its ``depth`` rings in the graph, nearest first.

    Writes them to ``cand`` (``stamp`` marks the cells seen, by ``i``); returns
    their count and whether more than MAXC were found (the rest are dropped).
    """
    stamp[i] = i
    ncand = np.int64(0)
    over = False
    for q in range(nb_ptr[i], nb_ptr[i + 1]):
        c = nb_idx[q]
        if stamp[c] != i:
            stamp[c] = i
            cand[ncand] = c
            ncand += 1
    r0 = 0
    for _ in range(1, depth):
        r1 = ncand
        for a in range(r0, r1):
            j = cand[a]
            for q in range(nb_ptr[j], nb_ptr[j + 1]):
                c = nb_idx[q]
                if stamp[c] != i:
                    stamp[c] = i
                    if ncand == MAXC:
                        over = True
                    else:
                        cand[ncand] = c
                        ncand += 1
        r0 = r1
    return ncand, over


@kernel(parallel=False)
def _record_facet(slot, t, d2, sums, seg, facets):
    """Write one facet's triplet at ``slot`` of ``facets = (cols, vals, lvals, fpos)``.

    ``sums`` are the walk's increments over the facet (density, floor density, and
    the density-weighted y and x), ``d2`` twice the distance between the sites,
    ``seg = (ay, ax, by, bx)`` its ends. The centre is density-weighted (for moving
    sites), or the midpoint where the density is zero.
    """
    cols, vals, lvals, fpos = facets
    sj, sl, sy, sx = sums
    cols[slot] = t
    vals[slot] = sj / d2
    lvals[slot] = sl / d2
    if sj > 0.0:
        fpos[slot, 0] = sy / sj
        fpos[slot, 1] = sx / sj
    else:
        fpos[slot, 0] = 0.5 * (seg[0] + seg[2])
        fpos[slot, 1] = 0.5 * (seg[1] + seg[3])


@kernel(parallel=False)
def _facet_length_hash(i, t, ay, ax, by, bx):
    """Return the facet's length times a hash of the pair ``(i, t)``.

    Summed + from its lower cell and - from the other, it vanishes to rounding when
    every facet is seen from both of its cells with one length. A neighbour missing
    from a candidate list cuts a facet short on one side only (an overlap too small
    for the area sum).
    """
    lo_c = min(i, t)
    hi_c = max(i, t)
    hsh = ((lo_c * 73856093) ^ (hi_c * 19349663)) & 1048575
    return (1.0 + hsh / 1048576.0) * np.sqrt((by - ay) ** 2 + (bx - ax) ** 2)


@kernel(parallel=True)
def _polygon_pass(pts, w, graph, frame, rho, rhol, flags, depth, n_chunks, bufs):
    """Build every cell from its 2-ring in the graph ``(nb_ptr, nb_idx)``; see module.

    ``frame`` is ``(lo, hi, origin, spacing)`` (the box and the pixel grid), ``flags``
    ``(want_jac, want_links, want_moments)`` and ``bufs`` the result arrays ``(masses,
    mom, areas, boxes, rows, cols, vals, lvals, fpos)`` (see ``new_buffers``), written
    in place. Writes ``masses``, ``areas`` (N,), the pixels each cell meets ``boxes``
    (N, 4: first and last row, first and last column; empty cells get first > last) and
    the facet triplets of cell ``i`` to ``rows, cols, vals, lvals, fpos[i * MAX_FACETS:
    (i + 1) * MAX_FACETS]`` (each facet once, from its lower index; unused slots are
    ``(i, i)``, their values unset: every reader skips them). Returns the number of
    cells whose buffers overflowed (the pass is then not usable), and the facet check:
    the sum over facets of their lengths times a hash of the pair of cells, + from the
    lower index, - from the higher one (zero to rounding for exact cells).
    """
    nb_ptr, nb_idx = graph
    lo, hi, origin, spacing = frame
    want_jac, want_links, want_moments = flags
    masses, mom, areas, boxes, rows, cols, vals, lvals, fpos = bufs
    n = pts.shape[0]
    oy = origin[0]
    ox = origin[1]
    hy = spacing[0]
    hx = spacing[1]
    h_rows = rho.shape[0]
    w_cols = rho.shape[1]
    bad = np.zeros(n_chunks, np.int64)
    odd = np.zeros(n_chunks)
    for ch in prange(n_chunks):
        stamp = np.full(n, -1, np.int64)
        poly = np.empty((6, MAXV))
        sl = np.empty((1, MAXV))
        cand = np.empty(MAXC, np.int64)
        lp = np.empty(LOCAL_PREFIX)
        acc = np.empty(8)
        geo = np.array([oy, ox, hy, hx])
        for i in range(ch * n // n_chunks, (ch + 1) * n // n_chunks):
            yi = pts[i, 0]
            xi = pts[i, 1]
            ncand, over = _rings(i, nb_ptr, nb_idx, depth, stamp, cand)
            r, nv, over = _clip_cell(
                i, pts, w, w, 0.0, cand, ncand, over, lo, hi, poly, sl
            )
            base = i * MAX_FACETS
            # unused slots: (i, i), which every reader skips
            for f in range(MAX_FACETS):
                rows[base + f] = i
                cols[base + f] = i
            if over:
                bad[ch] += 1
                masses[i] = 0.0
                areas[i] = np.inf
                continue
            if want_moments:
                mom[i, 0] = 0.0
                mom[i, 1] = 0.0
                mom[i, 2] = 0.0
            if nv < 3:
                masses[i] = 0.0
                areas[i] = 0.0
                boxes[i, 0] = h_rows
                boxes[i, 1] = -1
                boxes[i, 2] = w_cols
                boxes[i, 3] = -1
                continue
            area, stride, lp = _box_prefixes(
                poly, r, nv, yi, xi, geo, rho, want_moments, lp, boxes[i]
            )
            for a in range(8):
                acc[a] = 0.0
            nf = 0
            for k in range(nv):
                k2 = k + 1 if k + 1 < nv else 0
                t = np.int64(poly[r + 2, k])
                # every facet is seen from both of its cells: their lengths must
                # agree (see below); its Jacobian entry comes from the lower index
                facet = t >= 0 and t != i
                first = facet and t > i
                ay = poly[r, k] + yi
                ax = poly[r + 1, k] + xi
                by = poly[r, k2] + yi
                bx = poly[r + 1, k2] + xi
                if ay == by and not facet:
                    continue
                flags = 4 if want_moments else 0
                if first and want_jac:
                    flags |= 1
                    if want_links:
                        flags |= 2
                s1 = acc[1]
                s2 = acc[2]
                s6 = acc[6]
                s7 = acc[7]
                _walk(
                    ay,
                    ax,
                    by,
                    bx,
                    yi,
                    xi,
                    geo,
                    rho,
                    rhol,
                    lp,
                    stride,
                    boxes[i],
                    flags,
                    acc,
                )
                if first:
                    # from the lower index only (the Jacobian's assembly makes it
                    # symmetric); also where the density is zero (the adjacency)
                    if nf == MAX_FACETS:
                        over = True
                        continue
                    ey = pts[t, 0] - yi
                    ex = pts[t, 1] - xi
                    d2 = 2.0 * np.sqrt(ey * ey + ex * ex)
                    sums = (acc[1] - s1, acc[2] - s2, acc[6] - s6, acc[7] - s7)
                    facets = (cols, vals, lvals, fpos)
                    _record_facet(base + nf, t, d2, sums, (ay, ax, by, bx), facets)
                    nf += 1
                if facet:
                    g = _facet_length_hash(i, t, ay, ax, by, bx)
                    odd[ch] += g if first else -g
            if over:
                bad[ch] += 1
            # Green's theorem holds for the counter-clockwise orientation in (x, y)
            sgn = 1.0 if area > 0.0 else -1.0
            masses[i] = sgn * acc[0]
            if want_moments:
                mom[i, 0] = sgn * acc[3]
                mom[i, 1] = sgn * acc[4]
                mom[i, 2] = sgn * acc[5]
            areas[i] = abs(area)
    total = 0
    check = 0.0
    for ch in range(n_chunks):
        total += bad[ch]
        check += odd[ch]
    return total, check


@dataclass
class PolygonPass:
    """Results of a certified polygon pass (``polygon_cells``).

    ``masses`` (N,); ``moments`` (N, 3) or None: ``int rho (y - y_i)``,
    ``int rho (x - x_i)`` and ``int rho |x - y_i|^2`` over each cell; the facets, in
    ``MAX_FACETS`` slots per cell, unused ones ``(i, i)``: ``rows``, ``cols``,
    ``vals`` (Jacobian entries, from the lower index of each pair), ``lvals`` (weak
    links through zero pixels), ``centres`` (T, 2; density-weighted, for moving
    sites); ``boxes`` (N, 4) the pixels each cell meets; ``depth`` the rings used.
    ``upper_bound``: the pass is not certified, and ``masses`` are only upper bounds
    (each polygon contains its cell), the other fields unset.
    """

    masses: np.ndarray
    moments: np.ndarray | None
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    lvals: np.ndarray
    centres: np.ndarray
    boxes: np.ndarray
    depth: int
    upper_bound: bool = False


def buffer_bytes(n):
    """Bytes of one set of :func:`new_buffers` for ``n`` cells."""
    return n * (8 + 24 + 8 + 32 + MAX_FACETS * (8 + 8 + 8 + 8 + 16))


def new_buffers(n):
    """Arrays for the results of a polygon pass over ``n`` cells."""
    nf = n * MAX_FACETS
    return (
        np.empty(n),
        np.empty((n, 3)),
        np.empty(n),
        np.empty((n, 4), np.int64),
        np.empty(nf, np.int64),
        np.empty(nf, np.int64),
        np.empty(nf),
        np.empty(nf),
        np.empty((nf, 2)),
    )


def polygon_cells(
    pts,
    weights,
    graph,
    lo,
    hi,
    origin,
    spacing,
    rho,
    rhol,
    want_jac,
    n_chunks,
    depth=2,
    want_moments=False,
    buffers=None,
    floor=None,
):
    """Build all cells as polygons: a :class:`PolygonPass`, or None (not certified).

    ``graph = (indptr, indices)``: each cell's neighbours at nearby weights. The
    candidates of a cell are its rings up to ``depth`` (2 or 3); if the areas do not
    certify the 2-rings but nearly do (a few cells met a neighbour from further away:
    a long Newton step), the 3-rings. ``rhol`` (or None): the floor density of zero
    pixels, whose facet integrals are the weak links (``lvals``) of cells that meet
    only where the density is zero. ``buffers`` (from :func:`new_buffers`) are
    written in place of new arrays (the results then live in them). With a mass
    ``floor``: when the pass is not certified but some polygon, which contains its
    cell, has a mass below the floor, the result holds these upper bounds
    (``upper_bound``).
    """
    n = len(pts)
    if buffers is None:
        buffers = new_buffers(n)
    masses, mom, areas, boxes, rows, cols, vals, lvals, centres = buffers
    if not want_moments:
        mom = mom[:1]
    out = (masses, mom, areas, boxes, rows, cols, vals, lvals, centres)
    # lengths of a facet seen from its two cells agree to rounding (of coordinates of
    # the size of a cell)
    len_tol = LENGTH_RTOL * np.sqrt(np.prod(np.asarray(hi) - np.asarray(lo)) / n)
    links = rhol is not None
    if not links:
        rhol = np.zeros((1, 1))
    box = float(np.prod(np.asarray(hi) - np.asarray(lo)))
    for d in range(depth, 4):
        overflow, check = _polygon_pass(
            pts,
            weights,
            (graph[0], graph[1]),
            (lo, hi, origin, spacing),
            rho,
            rhol,
            (want_jac, want_jac and links, want_moments),
            d,
            n_chunks,
            out,
        )
        excess = float(np.sum(areas)) - box
        exact = abs(excess) <= CERTIFY_RTOL * box and abs(check) <= len_tol
        if not overflow and exact:
            return PolygonPass(
                masses,
                mom if want_moments else None,
                rows,
                cols,
                vals,
                lvals,
                centres,
                boxes,
                d,
            )
        if overflow:
            break
        if floor is not None and masses.min() < floor:
            # each polygon contains its cell: some cell is certainly below the floor
            return PolygonPass(
                masses, None, rows, cols, vals, lvals, centres, boxes, d, True
            )
        if excess > RETRY_EXCESS * box:
            break
    return None
