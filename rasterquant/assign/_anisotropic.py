"""Compiled passes for anisotropic power diagrams on the raster.

Site ``i`` has a position ``y_i``, a weight ``w_i`` and a symmetric positive
definite metric ``A_i``; voxel ``x`` belongs to the site minimising
``f_i(x) = (x - y_i)^T A_i (x - y_i) - w_i`` (ties: the lowest index). On periodic
axes a site is present through its copies ``y_i + k L`` (ghosts, one row each of
``pos`` with ``owner`` the original index), and ``f_i`` is the minimum over the
copies: the minimum image under the metric ``A_i``.

Conventions
-----------
All kernels work on (D, H, W) rasters (2D is (1, H, W), the dummy axis has no
extent and zero metric) in physical coordinates: voxel ``(k, j, i)`` has centre
``origin + ((k, j, i) + 0.5) * spacing``. A metric is stored as the six
coefficients ``c = (A00, A11, A22, 2 A01, 2 A02, 2 A12)`` and the quadratic form
is evaluated in one fixed order (:func:`_qform`), which ``tests/reference.py``
repeats operation for operation, so labels match the brute force bit for bit.

Exact candidate lists
---------------------
Let ``T`` be a box (a tile or sub-tile of voxel centres) with centre ``c`` and
half extents ``e``. For a copy ``g`` of site ``i`` and ``x`` in ``T`` write
``u = c - y_g`` and ``x - y_g = u + t`` with ``|t_a| <= e_a``. Two lower bounds
of ``q(x) = (x - y_g)^T A_i (x - y_g)`` hold on ``T``:

- ``q(x) >= lmin(A_i) |x - y_g|^2 >= lmin(A_i) dist(y_g, T)^2``;
- ``q(x) = u^T A u + 2 (A u)^T t + t^T A t >= u^T A u - 2 sum_a |(A u)_a| e_a``
  since ``t^T A t >= 0``;
- ``q(x) >= max_a dist_a(y_g, T)^2 / (A_i^-1)_aa`` (axial): for any ``z``,
  ``z_a = (A^-1/2 e_a)^T (A^1/2 z) <= sqrt((A^-1)_aa) sqrt(z^T A z)`` by
  Cauchy-Schwarz, and ``|z_a| >= dist_a`` (the distance along axis ``a`` from
  ``y_g`` to the interval of ``T``);

and two upper bounds: ``q(x) <= lmax(A_i) maxdist(y_g, T)^2`` and
``q(x) <= u^T A u + 2 sum_a |(A u)_a| e_a + sum_ab |A_ab| e_a e_b``. Let ``lb_g``
be the largest lower bound minus ``w_i`` and ``ub_g`` the smaller upper bound minus
``w_i``, and ``U = min_g ub_g``. For every ``x`` in ``T`` the owner's value is
``f*(x) <= f_g(x) <= ub_g`` for every ``g``, so ``f*(x) <= U``; a copy with
``lb_g > U`` has ``f_g(x) >= lb_g > U >= f*(x)`` everywhere on ``T``: it never
attains the minimum, not even in a tie. The copies with ``lb_g <= U`` are
therefore an exact candidate set of ``T``, and the per-voxel argmin over them is
the argmin over all copies. The bounds are computed in floating point; the test
keeps a copy when ``lb_g <= U + 1e-9 (|U| + |lb_g| + 1)``, a margin far above
their rounding, and extra candidates never change an exact argmin. ``lmin`` and
``lmax`` (numpy's ``eigvalsh``) enter shrunk/grown by a relative ``1e-9`` for the
same reason. The tile lists use this test with the tile's box; the sweep repeats
it on sub-tiles with the tile's survivors (a subset argument: the owner of a
voxel of the sub-tile is in the tile's list).

The tile lists scan only copies that pass the axial bound against an upper bound
``U' >= U`` (``U'`` from the copies binned near the tile): a copy failing it has
``lb_g > U' >= U``. The copy attaining ``U`` has ``lb_g <= ub_g = U <= U'``, so it
is scanned, and the least upper bound over the scanned copies is ``U`` itself.

Reusing candidate lists
-----------------------
Lists built at weights ``w`` with the test ``lb_g - w_i <= U + S`` (``S >= 0``
the slack) stay exact for new weights ``w' = w + d`` whenever
``max(d) - min(d) <= S``: the new least upper bound is
``U' <= ub_h - w_h - d_h = U - d_h`` for the copy ``h`` attaining ``U``, so a
copy with ``lb_g - w'_g <= U'`` has ``lb_g - w_g <= U + d_g - d_h <= U + S``. The
sweep prunes every sub-tile again with the weights it is given, so a list that
holds every possible owner is all it needs; copies farther than
``sqrt(max_T U_T + S + w_i) sqrt((A_i^-1)_aa)`` from the box along some axis are
never needed either. Only differences of weight changes enter, so the test is
blind to the gauge (a constant added to all weights).

Sums indexed by a label go to per-chunk buffers reduced by the caller in a fixed
order, so results do not depend on the thread count. ``umass >= 0`` means a
uniform density of that voxel mass (``density`` is then a dummy). Kernels return
status codes instead of raising: ``0`` fine, ``1`` a degenerate face (equal
gradients of two different sites at a face centre; its term is skipped).
"""

import numpy as np
from numba import prange

from .._jit import kernel

#: status codes of the kernels
OK = 0
DEGENERATE_FACE = 1


@kernel(parallel=False)
def _qform(c, d0, d1, d2):
    """``d^T A d`` from the coefficients ``c`` (6,), in the fixed order."""
    t0 = d0 * (c[0] * d0 + c[3] * d1 + c[4] * d2)
    t1 = d1 * (c[1] * d1 + c[5] * d2)
    return t0 + t1 + d2 * (c[2] * d2)


@kernel(parallel=False)
def _bounds(c, lmin, lmax, invd, p, lo, hi):
    """Lower and upper bound of ``(x - p)^T A (x - p)`` for ``x`` in ``[lo, hi]``.

    ``invd`` (3,) is the diagonal of ``A^-1`` (any positive number on the dummy
    axis of 2D rasters, where ``p`` and the box have no extent).
    """
    g0 = max(lo[0] - p[0], 0.0, p[0] - hi[0])
    g1 = max(lo[1] - p[1], 0.0, p[1] - hi[1])
    g2 = max(lo[2] - p[2], 0.0, p[2] - hi[2])
    f0 = max(abs(p[0] - lo[0]), abs(p[0] - hi[0]))
    f1 = max(abs(p[1] - lo[1]), abs(p[1] - hi[1]))
    f2 = max(abs(p[2] - lo[2]), abs(p[2] - hi[2]))
    u0 = 0.5 * (lo[0] + hi[0]) - p[0]
    u1 = 0.5 * (lo[1] + hi[1]) - p[1]
    u2 = 0.5 * (lo[2] + hi[2]) - p[2]
    e0 = 0.5 * (hi[0] - lo[0])
    e1 = 0.5 * (hi[1] - lo[1])
    e2 = 0.5 * (hi[2] - lo[2])
    a00, a11, a22 = c[0], c[1], c[2]
    a01, a02, a12 = 0.5 * c[3], 0.5 * c[4], 0.5 * c[5]
    au0 = a00 * u0 + a01 * u1 + a02 * u2
    au1 = a01 * u0 + a11 * u1 + a12 * u2
    au2 = a02 * u0 + a12 * u1 + a22 * u2
    q0 = u0 * au0 + u1 * au1 + u2 * au2
    lin = abs(au0) * e0 + abs(au1) * e1 + abs(au2) * e2
    quad = (
        a00 * e0 * e0
        + a11 * e1 * e1
        + a22 * e2 * e2
        + 2.0 * (abs(a01) * e0 * e1 + abs(a02) * e0 * e2 + abs(a12) * e1 * e2)
    )
    far = lmax * (f0 * f0 + f1 * f1 + f2 * f2)
    # rounding allowance of both bounds (cancellation in q0 - 2 lin)
    slack = 1e-12 * (abs(q0) + 2.0 * lin + quad + far)
    axial = max(g0 * g0 / invd[0], g1 * g1 / invd[1], g2 * g2 / invd[2])
    lower = max(lmin * (g0 * g0 + g1 * g1 + g2 * g2), q0 - 2.0 * lin, axial) - slack
    upper = min(far, q0 + 2.0 * lin + quad) + slack
    return lower, upper


@kernel(parallel=False)
def _keep(lower, upper):
    """Return the exactness test of the module docstring (with its rounding margin)."""
    return lower <= upper + 1e-9 * (abs(upper) + abs(lower) + 1.0)


@kernel(parallel=False)
def _bin_copies(pos, w_copy, sroot, group, n_groups, grid):
    """Bucket the copies by weight group, then by the tile grid.

    ``w_copy`` (M,) weights, ``sroot`` (M, 3) ``sqrt(diag A^-1)`` and ``group``
    (M,) weight group of each copy's site; ``grid = (origin, size, nb)``, outside
    copies go to the border bins. Bin ``b = g * B + (bz * nb1 + by) * nb2 + bx``
    (``B`` bins per group). Returns ``(order, bin_ptr, box (G B, 6) lo/hi of the
    members, wmax (G B,), smax (G B, 3), gw (G,), gs (G, 3))``, ``gw``/``gs`` the
    largest weight and ``sroot`` of each group.
    """
    origin, size, nb = grid
    m = pos.shape[0]
    n_b = nb[0] * nb[1] * nb[2]
    n_all = n_b * n_groups
    key = np.empty(m, np.int64)
    gw = np.full(n_groups, -np.inf)
    gs = np.zeros((n_groups, 3))
    for g in range(m):
        b = np.int64(0)
        for a in range(3):
            k = np.int64(min(max((pos[g, a] - origin[a]) / size[a], 0.0), nb[a] - 1.0))
            b = b * nb[a] + k
        key[g] = group[g] * n_b + b
        gw[group[g]] = max(gw[group[g]], w_copy[g])
        for a in range(3):
            gs[group[g], a] = max(gs[group[g], a], sroot[g, a])
    bin_ptr = np.zeros(n_all + 1, np.int64)
    for g in range(m):
        bin_ptr[key[g] + 1] += 1
    for b in range(n_all):
        bin_ptr[b + 1] += bin_ptr[b]
    order = np.empty(m, np.int64)
    fill = bin_ptr[:-1].copy()
    for g in range(m):
        order[fill[key[g]]] = g
        fill[key[g]] += 1
    box = np.empty((n_all, 6))
    wmax = np.full(n_all, -np.inf)
    smax = np.zeros((n_all, 3))
    for b in range(n_all):
        for a in range(3):
            box[b, a] = np.inf
            box[b, 3 + a] = -np.inf
        for q in range(bin_ptr[b], bin_ptr[b + 1]):
            g = order[q]
            wmax[b] = max(wmax[b], w_copy[g])
            for a in range(3):
                box[b, a] = min(box[b, a], pos[g, a])
                box[b, 3 + a] = max(box[b, 3 + a], pos[g, a])
                smax[b, a] = max(smax[b, a], sroot[g, a])
    return order, bin_ptr, box, wmax, smax, gw, gs


@kernel(parallel=False)
def _bin_range(lo, hi, reach, origin, size, nb, a):
    """First and last bin along axis ``a`` meeting ``[lo - reach, hi + reach]``."""
    b0 = min(max((lo - reach - origin[a]) / size[a], 0.0), nb[a] - 1.0)
    b1 = min(max((hi + reach - origin[a]) / size[a], 0.0), nb[a] - 1.0)
    return np.int64(b0), np.int64(b1)


@kernel(parallel=False)
def _ring_upper(sites, bins, grid, lo, hi, ring):
    """Least upper bound over the copies of the bins within ``ring`` of the box."""
    pos, owner, coef, lmin, lmax, w, invd = sites
    order, bin_ptr = bins[0], bins[1]
    origin, size, nb = grid
    r = np.empty(3, np.int64)
    s = np.empty(3, np.int64)
    for a in range(3):
        c = 0.5 * (lo[a] + hi[a])
        k = np.int64(min(max((c - origin[a]) / size[a], 0.0), nb[a] - 1.0))
        r[a] = max(k - ring, 0)
        s[a] = min(k + ring, nb[a] - 1)
    best = np.inf
    n_b = nb[0] * nb[1] * nb[2]
    n_groups = (bin_ptr.shape[0] - 1) // n_b
    for gb in range(n_groups * (s[0] - r[0] + 1)):
        gi = gb // (s[0] - r[0] + 1)
        bz = r[0] + gb % (s[0] - r[0] + 1)
        for by in range(r[1], s[1] + 1):
            for bx in range(r[2], s[2] + 1):
                b = gi * n_b + (bz * nb[1] + by) * nb[2] + bx
                for q in range(bin_ptr[b], bin_ptr[b + 1]):
                    g = order[q]
                    o = owner[g]
                    _, up = _bounds(coef[o], lmin[o], lmax[o], invd[o], pos[g], lo, hi)
                    best = min(best, up - w[o])
    return best


@kernel(parallel=True)
def _tile_upper(sites, bins, grid, boxes):
    """Bound every tile's least upper bound from above (from its nearby bins)."""
    lo, hi = boxes
    nb = grid[2]
    n_t = lo.shape[0]
    out = np.empty(n_t)
    for t in prange(n_t):
        ring = 1
        best = _ring_upper(sites, bins, grid, lo[t], hi[t], ring)
        while best == np.inf and ring < max(nb[0], nb[1], nb[2]):
            ring *= 2
            best = _ring_upper(sites, bins, grid, lo[t], hi[t], ring)
        out[t] = best
    return out


@kernel(parallel=False)
def _visit(sites, bins, grid, lo, hi, upper, idx, start, mode):
    """Scan the bins that may hold candidates of the box ``[lo, hi]``.

    ``upper`` bounds the box's least upper bound ``U`` from above. Each weight
    group is scanned within its axial reach ``sqrt(upper + max w) * max
    sqrt(diag A^-1)`` (the axial lower bound), then bins and copies are tested
    with their own bounds. Returns ``(U, count)``. ``mode`` 0: ``U`` is the least
    upper bound over the copies that pass (they include the copy attaining it),
    ``count`` their number; 1: ``count`` copies with ``lb <= upper`` are written
    from ``idx[start]``.
    """
    pos, owner, coef, lmin, lmax, w, invd = sites
    order, bin_ptr, box, wmax, smax, gw, gs = bins
    origin, size, nb = grid
    n_b = nb[0] * nb[1] * nb[2]
    r0 = np.empty(3, np.int64)
    r1 = np.empty(3, np.int64)
    best = np.inf
    c = start
    for gi in range(gw.shape[0]):
        if upper + gw[gi] < 0.0:
            continue
        for a in range(3):
            r = np.sqrt(upper + gw[gi]) * gs[gi, a]
            r = r * (1.0 + 1e-9) + 1e-9 * (1.0 + r)
            r0[a], r1[a] = _bin_range(lo[a], hi[a], r, origin, size, nb, a)
        for bz in range(r0[0], r1[0] + 1):
            for by in range(r0[1], r1[1] + 1):
                for bx in range(r0[2], r1[2] + 1):
                    b = gi * n_b + (bz * nb[1] + by) * nb[2] + bx
                    if bin_ptr[b] == bin_ptr[b + 1]:
                        continue
                    if _far(box[b, :3], box[b, 3:], wmax[b], smax[b], lo, hi, upper):
                        continue
                    for q in range(bin_ptr[b], bin_ptr[b + 1]):
                        g = order[q]
                        o = owner[g]
                        if _far(pos[g], pos[g], w[o], invd[o], lo, hi, upper, True):
                            continue
                        low, up = _bounds(
                            coef[o], lmin[o], lmax[o], invd[o], pos[g], lo, hi
                        )
                        if mode == 0:
                            best = min(best, up - w[o])
                            c += 1
                        elif _keep(low - w[o], upper):
                            idx[c] = g
                            c += 1
    return best, c - start


@kernel(parallel=False)
def _far(blo, bhi, wtop, s, lo, hi, upper, squared=False):
    """Axial bound: no site in the box ``[blo, bhi]`` can be listed for ``[lo, hi]``.

    ``wtop`` bounds the sites' weights and ``s`` (3,) their ``sqrt(diag A^-1)``
    (with ``squared``: ``diag A^-1`` itself).
    """
    rb = upper + wtop
    if rb < 0.0:
        return True
    for a in range(3):
        gap = max(blo[a] - hi[a], 0.0, lo[a] - bhi[a])
        lim = rb * s[a] if squared else rb * s[a] * s[a]
        if gap * gap > lim * (1.0 + 1e-9) + 1e-9 * (1.0 + lim):
            return True
    return False


@kernel(parallel=True)
def _candidate_lists(sites, bins, grid, boxes, upper, slack):
    """Candidate lists (CSR) of the tiles: ``(cand_ptr, cand_idx, U (T,))``.

    ``upper`` (T,) bounds each tile's least upper bound from above (from
    :func:`_tile_upper`). The first pass finds the least upper bound ``U`` over
    the scanned copies (exact: the copy attaining it passes every lower-bound
    test) and counts them; the second writes the copies with ``lb <= U + slack``
    into room for that many, and the lists are then compacted. With ``slack =
    0`` the lists are the exact candidate sets; with ``slack >= 0`` they stay
    exact for any weights ``w'`` with ``max(w' - w) - min(w' - w) <= slack``
    (module docstring, "Reusing candidate lists").
    """
    lo, hi = boxes
    n_t = lo.shape[0]
    least = np.empty(n_t)
    room = np.zeros(n_t + 1, np.int64)
    for t in prange(n_t):
        # scanned within the reach of upper + slack >= U + slack: room for all
        # the copies the second pass writes
        least[t], room[t + 1] = _visit(
            sites, bins, grid, lo[t], hi[t], upper[t] + slack, room, 0, 0
        )
    for t in range(n_t):
        room[t + 1] += room[t]
    buf = np.empty(room[n_t], np.int64)
    counts = np.zeros(n_t, np.int64)
    for t in prange(n_t):
        _, counts[t] = _visit(
            sites, bins, grid, lo[t], hi[t], least[t] + slack, buf, room[t], 1
        )
    ptr = np.zeros(n_t + 1, np.int64)
    for t in range(n_t):
        ptr[t + 1] = ptr[t] + counts[t]
    idx = np.empty(ptr[n_t], np.int64)
    for t in prange(n_t):
        for q in range(counts[t]):
            idx[ptr[t] + q] = buf[room[t] + q]
    return ptr, idx, least


@kernel(parallel=False)
def _sub_prune(sites, cands, c0, nc, lo, hi, scratch):
    """Tile candidates ``cands[c0:c0 + nc]`` that survive on the box; their count.

    ``scratch = (keep (>= nc,) int64, lower (>= nc,), packed (>= nc, 10))``: the
    survivors' copy indices go to ``keep`` and their data (position, metric
    coefficients, weight) to ``packed`` rows, for the voxel loop.
    """
    pos, owner, coef, lmin, lmax, w, invd = sites
    keep, lower, packed = scratch
    best = np.inf
    for q in range(nc):
        g = cands[c0 + q]
        o = owner[g]
        low, up = _bounds(coef[o], lmin[o], lmax[o], invd[o], pos[g], lo, hi)
        lower[q] = low - w[o]
        best = min(best, up - w[o])
    nk = 0
    for q in range(nc):
        if _keep(lower[q], best):
            g = cands[c0 + q]
            o = owner[g]
            keep[nk] = g
            for a in range(3):
                packed[nk, a] = pos[g, a]
            for a in range(6):
                packed[nk, 3 + a] = coef[o, a]
            packed[nk, 9] = w[o]
            nk += 1
    return nk


@kernel(parallel=False)
def _sweep_box(owner, geom, scratch, nk, box, out):
    """Per-voxel argmin over the ``nk`` packed survivors; writes copy indices.

    ``box = (k0, k1, j0, j1, i0, i1)`` voxel index ranges.
    """
    keep, packed = scratch[0], scratch[2]
    origin, spacing = geom[0], geom[1]
    for k in range(box[0], box[1]):
        xz = origin[0] + (k + 0.5) * spacing[0]
        for j in range(box[2], box[3]):
            xy = origin[1] + (j + 0.5) * spacing[1]
            for i in range(box[4], box[5]):
                xx = origin[2] + (i + 0.5) * spacing[2]
                bv = np.inf
                bo = np.int64(-1)
                bg = np.int64(-1)
                for q in range(nk):
                    d0 = xz - packed[q, 0]
                    d1 = xy - packed[q, 1]
                    d2 = xx - packed[q, 2]
                    t0 = d0 * (
                        packed[q, 3] * d0 + packed[q, 6] * d1 + packed[q, 7] * d2
                    )
                    t1 = d1 * (packed[q, 4] * d1 + packed[q, 8] * d2)
                    v = t0 + t1 + d2 * (packed[q, 5] * d2)
                    v = v - packed[q, 9]
                    if v <= bv:
                        o = owner[keep[q]]
                        if v < bv or o < bo:
                            bv = v
                            bo = o
                            bg = keep[q]
                out[k, j, i] = bg


@kernel(parallel=True)
def _sweep(sites, geom, cands, layout):
    """Copy index owning each voxel centre: (D, H, W) int64.

    ``geom = (origin (3,), spacing (3,))``, ``cands = (cand_ptr, cand_idx)``,
    ``layout = (shape3, tile, sub, n_tiles)`` as int64 arrays (3,). Tiles run in
    parallel; each prunes its list on every sub-tile, then scans the voxels.
    """
    cand_ptr, cand_idx = cands
    shape3, tile, sub, n_tiles = layout
    origin, spacing = geom[0], geom[1]
    owner = sites[1]
    out = np.empty((shape3[0], shape3[1], shape3[2]), np.int64)
    n_t = n_tiles[0] * n_tiles[1] * n_tiles[2]
    for t in prange(n_t):
        tz = t // (n_tiles[1] * n_tiles[2])
        ty = (t // n_tiles[2]) % n_tiles[1]
        tx = t % n_tiles[2]
        c0 = cand_ptr[t]
        nc = cand_ptr[t + 1] - c0
        scratch = (np.empty(nc, np.int64), np.empty(nc), np.empty((nc, 10)))
        lo = np.empty(3)
        hi = np.empty(3)
        box = np.empty(6, np.int64)
        z_end = min((tz + 1) * tile[0], shape3[0])
        y_end = min((ty + 1) * tile[1], shape3[1])
        x_end = min((tx + 1) * tile[2], shape3[2])
        for k0 in range(tz * tile[0], z_end, sub[0]):
            box[0], box[1] = k0, min(k0 + sub[0], z_end)
            for j0 in range(ty * tile[1], y_end, sub[1]):
                box[2], box[3] = j0, min(j0 + sub[1], y_end)
                for i0 in range(tx * tile[2], x_end, sub[2]):
                    box[4], box[5] = i0, min(i0 + sub[2], x_end)
                    for a in range(3):
                        lo[a] = origin[a] + (box[2 * a] + 0.5) * spacing[a]
                        hi[a] = origin[a] + (box[2 * a + 1] - 0.5) * spacing[a]
                    nk = _sub_prune(sites, cand_idx, c0, nc, lo, hi, scratch)
                    _sweep_box(owner, geom, scratch, nk, box, out)
    return out


@kernel(parallel=True)
def _moments(copies, sites, geom, dens, n_chunks):
    """Per-chunk mass and mass-weighted displacement from the owning copy.

    ``copies`` (D, H, W) int64 from :func:`_sweep`; ``dens = (density (D, H, W),
    umass)``. Returns (n_chunks, N, 4): mass, then ``sum m (x - y_g)`` per axis
    (relative to the owning copy, so periodic grains need no unwrapping).
    """
    pos, owner = sites[0], sites[1]
    n = sites[2].shape[0]
    density, umass = dens
    origin, spacing = geom[0], geom[1]
    nz, ny, nx = copies.shape
    out = np.zeros((n_chunks, n, 4))
    for c in prange(n_chunks):
        for r in range(c * nz * ny // n_chunks, (c + 1) * nz * ny // n_chunks):
            k, j = r // ny, r % ny
            xz = origin[0] + (k + 0.5) * spacing[0]
            xy = origin[1] + (j + 0.5) * spacing[1]
            for i in range(nx):
                g = copies[k, j, i]
                o = owner[g]
                m = umass if umass >= 0.0 else density[k, j, i]
                out[c, o, 0] += m
                out[c, o, 1] += m * (xz - pos[g, 0])
                out[c, o, 2] += m * (xy - pos[g, 1])
                out[c, o, 3] += m * (origin[2] + (i + 0.5) * spacing[2] - pos[g, 2])
    return out


@kernel(parallel=False)
def _face_term(sites, geom, dens, p, q, axis, gp, gq):
    """Conductance of the face between voxels ``p`` and ``q = p + e_axis``.

    ``rho_pq A_axis |g_axis| / |g|^2`` with ``g = grad f_i - grad f_j`` at the face
    centre, ``grad f_i(x) = 2 A_i (x - y_gi)``; -1.0 for a degenerate face.
    """
    pos, owner, coef = sites[0], sites[1], sites[2]
    origin, spacing = geom[0], geom[1]
    density, umass = dens
    ci = coef[owner[gp]]
    cj = coef[owner[gq]]
    hz = 0.5 * spacing[axis]
    i0 = origin[0] + (p[0] + 0.5) * spacing[0] - pos[gp, 0] + (hz if axis == 0 else 0.0)
    i1 = origin[1] + (p[1] + 0.5) * spacing[1] - pos[gp, 1] + (hz if axis == 1 else 0.0)
    i2 = origin[2] + (p[2] + 0.5) * spacing[2] - pos[gp, 2] + (hz if axis == 2 else 0.0)
    j0 = origin[0] + (q[0] + 0.5) * spacing[0] - pos[gq, 0] - (hz if axis == 0 else 0.0)
    j1 = origin[1] + (q[1] + 0.5) * spacing[1] - pos[gq, 1] - (hz if axis == 1 else 0.0)
    j2 = origin[2] + (q[2] + 0.5) * spacing[2] - pos[gq, 2] - (hz if axis == 2 else 0.0)
    g0 = (2.0 * ci[0] * i0 + ci[3] * i1 + ci[4] * i2) - (
        2.0 * cj[0] * j0 + cj[3] * j1 + cj[4] * j2
    )
    g1 = (ci[3] * i0 + 2.0 * ci[1] * i1 + ci[5] * i2) - (
        cj[3] * j0 + 2.0 * cj[1] * j1 + cj[5] * j2
    )
    g2 = (ci[4] * i0 + ci[5] * i1 + 2.0 * ci[2] * i2) - (
        cj[4] * j0 + cj[5] * j1 + 2.0 * cj[2] * j2
    )
    gg = g0 * g0 + g1 * g1 + g2 * g2
    if not gg > 0.0:
        return -1.0
    ga = abs(g0) if axis == 0 else (abs(g1) if axis == 1 else abs(g2))
    if umass >= 0.0:
        rho = umass
    else:
        rho = 0.5 * (density[p[0], p[1], p[2]] + density[q[0], q[1], q[2]])
    vol = spacing[0] * spacing[1] * spacing[2]
    return rho / vol * (vol / spacing[axis]) * ga / gg


@kernel(parallel=False)
def _neighbour(p, axis, step, n3, periodic):
    """Return the face neighbour ``p + step e_axis`` of voxel ``p`` (index tuples).

    ``n3`` is the raster's shape; on a periodic axis (``periodic`` nonzero) the
    index wraps around. Beyond a border that is not periodic (or on a periodic axis
    of one voxel) returns ``(-1, -1, -1)``. Indices in tuples, not arrays: an array
    passed to a compiled call costs reference counting, once per face here.
    """
    k = p[axis] + step
    n = n3[axis]
    if k < 0 or k == n:
        if periodic == 0 or n == 1:
            return (-1, -1, -1)
        k = (k + n) % n
    if axis == 0:
        return (k, p[1], p[2])
    if axis == 1:
        return (p[0], k, p[2])
    return (p[0], p[1], k)


@kernel(parallel=False)
def _chunk_faces(copies, sites, geom, dens, periodic3, c, n_chunks, out, start, fill):
    """Count (and with ``fill`` write from ``start``) the cut faces of chunk ``c``.

    ``out = (rows, cols, vals)``: ``rows < cols`` are owner indices. Returns
    ``(count, status)``.
    """
    owner = sites[1]
    rows, cols, vals = out
    nz, ny, nx = copies.shape
    pos = start
    status = 0
    for r in range(c * nz * ny // n_chunks, (c + 1) * nz * ny // n_chunks):
        for i in range(nx):
            p = (r // ny, r % ny, i)
            gp = copies[p]
            for axis in range(3):
                q = _neighbour(p, axis, 1, copies.shape, periodic3[axis])
                if q[0] < 0:
                    continue
                gq = copies[q]
                oi, oj = owner[gp], owner[gq]
                if oi == oj:
                    continue
                if fill:
                    v = _face_term(sites, geom, dens, p, q, axis, gp, gq)
                    if v < 0.0:
                        status = 1
                        v = 0.0
                    rows[pos] = min(oi, oj)
                    cols[pos] = max(oi, oj)
                    vals[pos] = v
                pos += 1
    return pos - start, status


@kernel(parallel=True)
def _faces(copies, sites, geom, dens, periodic3, n_chunks):
    """Facet conductances of all cut voxel faces, in chunk order.

    Returns ``(rows, cols, vals, status)``: one entry per face between voxels of
    owners ``rows < cols``; the caller sums duplicates (in this fixed order).
    """
    counts = np.zeros(n_chunks, np.int64)
    dummy = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    for c in prange(n_chunks):
        counts[c], _ = _chunk_faces(
            copies, sites, geom, dens, periodic3, c, n_chunks, dummy, 0, False
        )
    ptr = np.zeros(n_chunks + 1, np.int64)
    for c in range(n_chunks):
        ptr[c + 1] = ptr[c] + counts[c]
    out = (np.empty(ptr[-1], np.int64), np.empty(ptr[-1], np.int64), np.empty(ptr[-1]))
    stat = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        _, stat[c] = _chunk_faces(
            copies, sites, geom, dens, periodic3, c, n_chunks, out, ptr[c], True
        )
    return out[0], out[1], out[2], stat.max()


@kernel(parallel=False)
def _value(sites, geom, p, g):
    """``f`` of copy ``g`` at the centre of voxel ``p`` (as the sweep computes it)."""
    pos, owner, coef, w = sites[0], sites[1], sites[2], sites[5]
    origin, spacing = geom[0], geom[1]
    o = owner[g]
    d0 = origin[0] + (p[0] + 0.5) * spacing[0] - pos[g, 0]
    d1 = origin[1] + (p[1] + 0.5) * spacing[1] - pos[g, 1]
    d2 = origin[2] + (p[2] + 0.5) * spacing[2] - pos[g, 2]
    return _qform(coef[o], d0, d1, d2) - w[o]


@kernel(parallel=False)
def _chunk_gaps(copies, sites, geom, periodic3, c, n_chunks, out, start, fill):
    """Count (and with ``fill`` write) the boundary entries of chunk ``c``.

    One entry per voxel ``p`` and face-neighbour ``q`` of another owner:
    ``out = (voxel (flat index of p), own, other, gap)`` with
    ``gap = f_other(p) - f_own(p) >= 0`` (the other site's copy that owns ``q``).
    """
    owner = sites[1]
    vox, own, other, gap = out
    nz, ny, nx = copies.shape
    pos = start
    for r in range(c * nz * ny // n_chunks, (c + 1) * nz * ny // n_chunks):
        for i in range(nx):
            p = (r // ny, r % ny, i)
            gp = copies[p]
            for axis in range(3):
                for step in (-1, 1):
                    q = _neighbour(p, axis, step, copies.shape, periodic3[axis])
                    if q[0] < 0:
                        continue
                    gq = copies[q]
                    if owner[gp] == owner[gq]:
                        continue
                    if fill:
                        # the neighbour's copy, moved to the image next to p
                        vox[pos] = (p[0] * ny + p[1]) * nx + p[2]
                        own[pos] = owner[gp]
                        other[pos] = owner[gq]
                        gap[pos] = _value(sites, geom, p, gq) - _value(
                            sites, geom, p, gp
                        )
                    pos += 1
    return pos - start


@kernel(parallel=True)
def _boundary_gaps(copies, sites, geom, periodic3, n_chunks):
    """Boundary entries of all voxels (see :func:`_chunk_gaps`), in chunk order."""
    counts = np.zeros(n_chunks, np.int64)
    dummy = (
        np.empty(0, np.int64),
        np.empty(0, np.int64),
        np.empty(0, np.int64),
        np.empty(0),
    )
    for c in prange(n_chunks):
        counts[c] = _chunk_gaps(
            copies, sites, geom, periodic3, c, n_chunks, dummy, 0, False
        )
    ptr = np.zeros(n_chunks + 1, np.int64)
    for c in range(n_chunks):
        ptr[c + 1] = ptr[c] + counts[c]
    m = ptr[n_chunks]
    out = (
        np.empty(m, np.int64),
        np.empty(m, np.int64),
        np.empty(m, np.int64),
        np.empty(m),
    )
    for c in prange(n_chunks):
        _chunk_gaps(copies, sites, geom, periodic3, c, n_chunks, out, ptr[c], True)
    return out
