"""Exact power cells of a 2D raster density, built as polygons (no pixel sweep).

Where cells are only a few pixels wide, most pixels are split among several cells, and
a pixel sweep spends its time clipping pixels. Here each cell is built once, as the
box clipped by the half-planes ``pd_i <= pd_j`` of its candidate neighbours, and the
piecewise-constant density is integrated over the polygon by Green's theorem:

    int_P rho dA = oint_dP F dy,   F(x, y) = int^x rho(s, y) ds (a row prefix sum),

which, on each piece of an edge inside one pixel, is linear along the piece (exact by
the midpoint rule). A facet's Jacobian entry is ``int rho ds / (2 |y_i - y_j|)`` along
it (on a pixel border, the mean of the two pixels, as in the pixel sweep). The cost
grows with the cells' perimeters in pixels, not with their areas.

Candidates: the 2-ring of each cell in a neighbour graph (the cells' adjacency at
nearby weights). A polygon clipped by fewer half-planes than all contains the true
cell, so the polygons tile the box exactly if and only if their areas sum to the
box's area: that sum certifies the whole pass. The caller falls back to the pixel
sweep when it does not hold.
"""

import numpy as np
from numba import prange

from .._jit import kernel

__all__ = ["polygon_cells", "row_prefix"]

#: vertices of a cell polygon
MAXV = 64
#: the areas certify a pass when their sum is the box's to this relative error
CERTIFY_RTOL = 1e-10
#: a pass whose areas exceed the box by more than this fraction is not retried
RETRY_EXCESS = 1e-3
#: candidates of a cell
MAXC = 512
#: facet triplets per cell (to neighbours of higher index)
MAX_FACETS = 24


def row_prefix(rho, hx):
    """Return ``P[r, c] = hx * sum(rho[r, :c])``, shape (H, W + 1)."""
    p = np.zeros((rho.shape[0], rho.shape[1] + 1))
    np.cumsum(rho * hx, axis=1, out=p[:, 1:])
    return p


@kernel(parallel=False)
def _walk(y0, x0, y1, x1, oy, ox, hy, hx, rho, rhoj, prefix, cref, want_s):
    """Integrals along the segment (y0, x0) -> (y1, x1) through the pixels.

    Returns ``(int (F - F_cref) dy, int rhoj ds)`` with ``F`` the row prefix of
    ``rho`` and ``F_cref`` its value at the left border of column ``cref`` (a function
    of the row alone, whose integral over a closed curve vanishes: it only lessens
    cancellation). The second integral is computed when ``want_s``; on a pixel border
    it takes the mean of the two pixels.
    """
    h_rows = rho.shape[0]
    w_cols = rho.shape[1]
    dy = y1 - y0
    dx = x1 - x0
    length = np.sqrt(dy * dy + dx * dx)
    # next row / column border along the segment, as a parameter t in (0, 1]
    sy = 0.0
    ky = 0.0
    tr = 2.0
    if dy > 0.0:
        sy = 1.0
        ky = np.floor((y0 - oy) / hy) + 1.0
        tr = (oy + ky * hy - y0) / dy
    elif dy < 0.0:
        sy = -1.0
        ky = np.ceil((y0 - oy) / hy) - 1.0
        tr = (oy + ky * hy - y0) / dy
    sx = 0.0
    kx = 0.0
    tc = 2.0
    if dx > 0.0:
        sx = 1.0
        kx = np.floor((x0 - ox) / hx) + 1.0
        tc = (ox + kx * hx - x0) / dx
    elif dx < 0.0:
        sx = -1.0
        kx = np.ceil((x0 - ox) / hx) - 1.0
        tc = (ox + kx * hx - x0) / dx
    accf = 0.0
    accs = 0.0
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
                f = prefix[r, c] - prefix[r, cref] + rho[r, c] * (xm - (ox + c * hx))
                accf += f * (tb - ta) * dy
            if want_s:
                rj = rhoj[r, c]
                if dy == 0.0:
                    k = np.round(fr)
                    if abs(fr - k) < 1e-9 and 0 < k < h_rows:
                        rj = 0.5 * (rhoj[int(k) - 1, c] + rhoj[int(k), c])
                elif dx == 0.0:
                    k = np.round(fc)
                    if abs(fc - k) < 1e-9 and 0 < k < w_cols:
                        rj = 0.5 * (rhoj[r, int(k) - 1] + rhoj[r, int(k)])
                accs += rj * (tb - ta) * length
        if tb >= 1.0:
            break
        if tr <= tb:
            ky += sy
            tr = (oy + ky * hy - y0) / dy
        if tc <= tb:
            kx += sx
            tc = (ox + kx * hx - x0) / dx
        ta = tb
    return accf, accs


@kernel(parallel=True)
def _polygon_pass(
    pts,
    w,
    nb_ptr,
    nb_idx,
    lo,
    hi,
    origin,
    spacing,
    rho,
    rhoj,
    prefix,
    want_jac,
    depth,
    n_chunks,
    masses,
    areas,
    boxes,
    rows,
    cols,
    vals,
):
    """Build every cell from its 2-ring in the graph ``nb_ptr, nb_idx``; see module.

    Writes ``masses``, ``areas`` (N,), the pixels each cell meets ``boxes`` (N, 4:
    first and last row, first and last column; empty cells get first > last) and the
    facet triplets of cell ``i`` to
    ``rows, cols, vals[i * MAX_FACETS: (i + 1) * MAX_FACETS]`` (unused slots are
    ``(i, i, 0)``, which the Laplacian assembly skips). Returns the number of cells
    whose buffers overflowed (the pass is then not usable).
    """
    n = pts.shape[0]
    oy = origin[0]
    ox = origin[1]
    hy = spacing[0]
    hx = spacing[1]
    h_rows = rho.shape[0]
    w_cols = rho.shape[1]
    bad = np.zeros(n_chunks, np.int64)
    for ch in prange(n_chunks):
        stamp = np.full(n, -1, np.int64)
        py = np.empty((2, MAXV))
        px = np.empty((2, MAXV))
        pt = np.empty((2, MAXV), np.int64)
        sv = np.empty(MAXV)
        cand = np.empty(MAXC, np.int64)
        for i in range(ch * n // n_chunks, (ch + 1) * n // n_chunks):
            yi = pts[i, 0]
            xi = pts[i, 1]
            cur = 0
            py[0, 0] = lo[0] - yi
            px[0, 0] = lo[1] - xi
            py[0, 1] = lo[0] - yi
            px[0, 1] = hi[1] - xi
            py[0, 2] = hi[0] - yi
            px[0, 2] = hi[1] - xi
            py[0, 3] = hi[0] - yi
            px[0, 3] = lo[1] - xi
            for k in range(4):
                pt[0, k] = -1
            nv = 4
            # candidates: the rings of i in the graph, nearest ring first
            stamp[i] = i
            ncand = 0
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
            for a in range(ncand):
                if over:
                    break
                c = cand[a]
                ey = pts[c, 0] - yi
                ex = pts[c, 1] - xi
                b = ey * ey + ex * ex - w[c] + w[i]
                smax = -np.inf
                smin = np.inf
                for k in range(nv):
                    s = 2.0 * (py[cur, k] * ey + px[cur, k] * ex) - b
                    sv[k] = s
                    smax = max(smax, s)
                    smin = min(smin, s)
                if smax <= 0.0:
                    continue
                if smin > 0.0:
                    nv = 0
                    break
                o = 1 - cur
                no = 0
                for k in range(nv):
                    k2 = k + 1 if k + 1 < nv else 0
                    sp = sv[k]
                    sq = sv[k2]
                    if sp <= 0.0:
                        py[o, no] = py[cur, k]
                        px[o, no] = px[cur, k]
                        pt[o, no] = c if (sp == 0.0 and sq == 0.0) else pt[cur, k]
                        no += 1
                        if sq > 0.0:
                            t = sp / (sp - sq)
                            py[o, no] = py[cur, k] + t * (py[cur, k2] - py[cur, k])
                            px[o, no] = px[cur, k] + t * (px[cur, k2] - px[cur, k])
                            pt[o, no] = c
                            no += 1
                    elif sq <= 0.0:
                        t = sp / (sp - sq)
                        py[o, no] = py[cur, k] + t * (py[cur, k2] - py[cur, k])
                        px[o, no] = px[cur, k] + t * (px[cur, k2] - px[cur, k])
                        pt[o, no] = pt[cur, k]
                        no += 1
                cur = o
                nv = no
                if nv > MAXV - 2:
                    over = True
            base = i * MAX_FACETS
            for f in range(MAX_FACETS):
                rows[base + f] = i
                cols[base + f] = i
                vals[base + f] = 0.0
            if over:
                bad[ch] += 1
                masses[i] = 0.0
                areas[i] = np.inf
                continue
            if nv < 3:
                masses[i] = 0.0
                areas[i] = 0.0
                boxes[i, 0] = h_rows
                boxes[i, 1] = -1
                boxes[i, 2] = w_cols
                boxes[i, 3] = -1
                continue
            area = 0.0
            xmin = np.inf
            xmax = -np.inf
            ymin = np.inf
            ymax = -np.inf
            for k in range(nv):
                k2 = k + 1 if k + 1 < nv else 0
                area += px[cur, k] * py[cur, k2] - px[cur, k2] * py[cur, k]
                xmin = min(xmin, px[cur, k])
                xmax = max(xmax, px[cur, k])
                ymin = min(ymin, py[cur, k])
                ymax = max(ymax, py[cur, k])
            area *= 0.5
            # the pixels the cell meets (rows, then columns; inclusive)
            boxes[i, 0] = min(max(int(np.floor((ymin + yi - oy) / hy)), 0), h_rows - 1)
            boxes[i, 1] = min(max(int(np.floor((ymax + yi - oy) / hy)), 0), h_rows - 1)
            boxes[i, 2] = min(max(int(np.floor((xmin + xi - ox) / hx)), 0), w_cols - 1)
            boxes[i, 3] = min(max(int(np.floor((xmax + xi - ox) / hx)), 0), w_cols - 1)
            cref = min(max(int(np.floor((xmin + xi - ox) / hx)), 0), w_cols)
            mass = 0.0
            nf = 0
            for k in range(nv):
                k2 = k + 1 if k + 1 < nv else 0
                t = pt[cur, k]
                facet = want_jac and t > i
                ay = py[cur, k] + yi
                ax = px[cur, k] + xi
                by = py[cur, k2] + yi
                bx = px[cur, k2] + xi
                if ay == by and not facet:
                    continue
                f, s = _walk(
                    ay, ax, by, bx, oy, ox, hy, hx, rho, rhoj, prefix, cref, facet
                )
                mass += f
                if facet and s > 0.0:
                    if nf == MAX_FACETS:
                        over = True
                        continue
                    ey = pts[t, 0] - yi
                    ex = pts[t, 1] - xi
                    cols[base + nf] = t
                    vals[base + nf] = s / (2.0 * np.sqrt(ey * ey + ex * ex))
                    nf += 1
            if over:
                bad[ch] += 1
            # Green's theorem holds for the counter-clockwise orientation in (x, y)
            masses[i] = mass if area > 0.0 else -mass
            areas[i] = abs(area)
    total = 0
    for ch in range(n_chunks):
        total += bad[ch]
    return total


def polygon_cells(
    pts,
    weights,
    graph,
    lo,
    hi,
    origin,
    spacing,
    rho,
    rhoj,
    prefix,
    want_jac,
    n_chunks,
    depth=2,
):
    """Masses and facet triplets of all cells, or None if the pass is not certified.

    ``graph = (indptr, indices)``: each cell's neighbours at nearby weights. The
    candidates of a cell are its rings up to ``depth`` (2 or 3); if the areas do not
    certify the 2-rings but nearly do (a few cells met a neighbour from further away:
    a long Newton step), the 3-rings. Returns ``(masses, rows, cols, vals, boxes,
    depth)``, ``depth`` the one that certified.
    """
    n = len(pts)
    masses = np.empty(n)
    areas = np.empty(n)
    boxes = np.empty((n, 4), np.int64)
    rows = np.empty(n * MAX_FACETS, np.int64)
    cols = np.empty(n * MAX_FACETS, np.int64)
    vals = np.empty(n * MAX_FACETS)
    box = float(np.prod(np.asarray(hi) - np.asarray(lo)))
    for d in range(depth, 4):
        bad = _polygon_pass(
            pts,
            weights,
            graph[0],
            graph[1],
            lo,
            hi,
            origin,
            spacing,
            rho,
            rhoj,
            prefix,
            want_jac,
            d,
            n_chunks,
            masses,
            areas,
            boxes,
            rows,
            cols,
            vals,
        )
        excess = float(np.sum(areas)) - box
        if not bad and abs(excess) <= CERTIFY_RTOL * box:
            return masses, rows, cols, vals, boxes, d
        if bad or excess > RETRY_EXCESS * box:
            break
    return None
