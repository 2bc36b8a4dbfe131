"""Fractional (exact sub-pixel) quadrature: boundary pixels split among the cells.

The density is constant on each pixel. A pixel whose square lies in one power cell
(tested exactly: the affine function ``pd_j - pd_i`` is positive on the whole square for
every competitor ``j``) goes wholly to that cell. Any other pixel is clipped exactly: in
2D the square is clipped by the half-planes ``pd_i <= pd_j`` of its active competitors
(a convex polygon clipper), in 3D the cube by the corresponding half-spaces (a convex
polyhedron clipper). The clipped pieces give the exact mass, first and second moments of
each cell, and the clip edges (faces) tagged by the competitor give the exact facet
length (area) inside the pixel, hence the exact Jacobian
``dm_i/dpsi_j = -rho_p |facet_ij ∩ p| / (2|y_i - y_j|)``.

Coordinates inside a pixel are relative to its centre ``c``: the constraint
``pd_i(c + u) <= pd_j(c + u)`` reads ``2 u . (y_j - y_i) <= pd_j(c) - pd_i(c)``.
"""

import numpy as np
from numba import prange

from .._jit import kernel
from ._clip import _CLIP_CUT, _clip_2d, _clip_3d, _init_box_3d
from ._kernels import _bound_site, _prune, _spread, _tile_ranges

#: capacity of the fixed-size clip buffers
MAXV = 64  # polygon vertices (2D)
MAXA = 24  # active candidates in one pixel, to start with (see ``opts``)
#: the most active candidates a pass grows to (``cells._Raster._fractional``), 2D
#: and 3D (the 2D scratch holds two polygons of ``maxa + 8`` vertices a slot)
MAXA_LIMIT_2D = 384
MAXA_LIMIT_3D = 1536
#: 2D boxes (rows, columns) between tiles and sub-boxes, pruned from the tile's list
MID_2D = (16, 16)
#: 3D boxes (z, y, x) inside the sub-boxes, pruned from the sub-box's list
MINI_3D = (4, 4, 4)


@kernel(parallel=False)
def _add_edge(acc, x0, y0, x1, y1):
    """Add the edge ``(x0, y0) -> (x1, y1)`` to the shoelace sums ``acc`` (4,)."""
    cr = x0 * y1 - x1 * y0
    return (
        acc[0] + cr,
        acc[1] + cr * (x0 + x1),
        acc[2] + cr * (y0 + y1),
        acc[3] + cr * (x0 * x0 + x0 * x1 + x1 * x1 + y0 * y0 + y0 * y1 + y1 * y1),
    )


@kernel(parallel=False)
def _shoelace_totals(acc):
    """Area, int u, int v, int u^2 + v^2 from the sums of ``_add_edge``.

    The polygon may be oriented either way.
    """
    a, mu, mv, m2 = acc
    if a < 0.0:
        return -a / 2.0, -mu / 6.0, -mv / 6.0, -m2 / 12.0
    return a / 2.0, mu / 6.0, mv / 6.0, m2 / 12.0


@kernel(parallel=False)
def _polygon_moments(px, py, nv):
    """Area, integral of u, of v and of u^2 + v^2 over a polygon (CCW or CW)."""
    acc = (0.0, 0.0, 0.0, 0.0)
    for k in range(nv):
        k2 = k + 1 if k + 1 < nv else 0
        acc = _add_edge(acc, px[k], py[k], px[k2], py[k2])
    return _shoelace_totals(acc)


@kernel(parallel=False)
def _plane_value(nz, ny, nx, b, z, y, x, tol):
    """``n . u - b`` at ``u = (z, y, x)``, zero when within ``tol`` (see _cut_value)."""
    s = nz * z + ny * y + nx * x - b
    if abs(s) <= tol:
        return 0.0
    return s


@kernel(parallel=False)
def _tetra_moments(az, ay, ax, bz, by, bx, cz, cy, cx):
    """Signed volume, integral of u (3 comps) and of |u|^2 over a tetrahedron.

    The tetrahedron is (0, a, b, c).
    """
    det = az * (by * cx - bx * cy) - ay * (bz * cx - bx * cz) + ax * (bz * cy - by * cz)
    v = det / 6.0
    q = (
        v
        / 10.0
        * (
            az * az
            + ay * ay
            + ax * ax
            + bz * bz
            + by * by
            + bx * bx
            + cz * cz
            + cy * cy
            + cx * cx
            + az * bz
            + ay * by
            + ax * bx
            + az * cz
            + ay * cy
            + ax * cx
            + bz * cz
            + by * cy
            + bx * cx
        )
    )
    return (
        v,
        v * (az + bz + cz) / 4.0,
        v * (ay + by + cy) / 4.0,
        v * (ax + bx + cx) / 4.0,
        q,
    )


@kernel(parallel=False)
def _add_cross(sz, sy, sx, a, b):
    """Return ``(sz, sy, sx) + a x b`` for points ``a``, ``b`` (z, y, x first)."""
    return (
        sz + (a[1] * b[2] - a[2] * b[1]),
        sy + (a[2] * b[0] - a[0] * b[2]),
        sx + (a[0] * b[1] - a[1] * b[0]),
    )


@kernel(parallel=False)
def _unclipped_slot(nact, dcen, piece, flen):
    """Clear the facet areas and return the slot that is not clipped (its piece zeroed).

    The slot farthest (in power distance) at the centre is not clipped: its piece is
    the voxel minus the others, and its facets are counted in full from the other side
    (it is usually the smallest piece, often a degenerate one).
    """
    for a in range(nact):
        for b2 in range(nact):
            flen[a, b2] = 0.0
    last = 0
    for a in range(1, nact):
        if dcen[a] > dcen[last]:
            last = a
    for c in range(5):
        piece[last, c] = 0.0
    return last


#: capacities of the shared-vertex voxel clipper: vertices, face-vertex incidences
#: (a voxel cut by MAXA - 1 planes has at most 6 + MAXA - 1 faces F, 2 F - 4 vertices
#: and 6 F - 12 incidences; the clipper asks for room for one crossing per edge and
#: twice a face's size); for MAXA slots, grown in proportion with the slots of a pass.
#: A slot whose clip fails anyway (out of room, or rounding broke the face structure)
#: is retried with its cuts in reverse order, then left empty (see _split_voxel_3d)
MAXVV = 128
MAXE = 512
#: codes of ``_vclip``
_VC_CUT = 0  # the output is in the other buffer
_VC_WHOLE = 1  # the plane leaves the polyhedron whole (faces on it retagged in place)
_VC_EMPTY = 2  # the plane removes the polyhedron
_VC_FAIL = 3  # out of room, or an inconsistent face structure


@kernel(parallel=False)
def _vbox(hz, hy, hx, vf, fi):
    """Write the voxel ``[-h/2, h/2]^3`` into buffer 0 of ``(vf, fi)``; return (8, 6).

    ``vf`` (2, MAXVV, 4): vertices (z, y, x) and a scratch column (plane values);
    ``fi`` (2, 3, MAXE) int64: rows vertex loops of the faces, face offsets, face tags
    (-1: the voxel's own faces); see :func:`._clip._init_box_3d`.
    """
    half = (hz / 2, hy / 2, hx / 2)
    return _init_box_3d((-half[0], -half[1], -half[2]), half, vf, fi)


@kernel(parallel=False)
def _vclip(vf, fi, sc, src, nv, nf, nz, ny, nx, b, tag):
    """Clip the polyhedron in buffer ``src`` by the half-space ``n . u <= b``.

    Plane values within rounding of zero are zero; a vertex is inside when its value
    is <= 0; a face whose vertices all lie on the plane becomes a facet tagged
    ``tag``. Polyhedra share their vertices between faces: an edge crossing the
    plane gets one new vertex, shared by its two faces, and the new face (tag
    ``tag``) is chained from the crossings (no angular sort; the clipper of
    :mod:`._clip`). ``sc`` (7, MAXVV) int64 is scratch:
    0 inside (-1) or outside (1), 1 new index of a kept vertex, 2 visited flag, 3 next
    vertex on the new face, 4-6 crossing edges (ends, new vertex).

    Returns ``(code, nv_out, nf_out)``; with ``_VC_CUT`` the output is in buffer
    ``1 - src``, with ``_VC_WHOLE`` it stays in ``src``.
    """
    ext = 0.0
    for v in range(nv):
        ext = max(ext, abs(vf[src, v, 0]), abs(vf[src, v, 1]), abs(vf[src, v, 2]))
    tol = 2e-13 * (abs(nz) + abs(ny) + abs(nx)) * ext
    smax = -np.inf
    smin = np.inf
    for v in range(nv):
        s = _plane_value(
            nz, ny, nx, b, vf[src, v, 0], vf[src, v, 1], vf[src, v, 2], tol
        )
        vf[src, v, 3] = s
        smax = max(smax, s)
        smin = min(smin, s)
    if smax < 0.0:
        return _VC_WHOLE, nv, nf
    if smin > 0.0:
        return _VC_EMPTY, 0, 0
    if smax == 0.0:
        # nothing outside: faces lying on the plane become facets
        for f in range(nf):
            on = True
            for p in range(fi[src, 1, f], fi[src, 1, f + 1]):
                if vf[src, fi[src, 0, p], 3] != 0.0:
                    on = False
                    break
            if on:
                fi[src, 2, f] = tag
        return _VC_WHOLE, nv, nf
    for v in range(nv):
        sc[0, v] = -1 if vf[src, v, 3] <= 0.0 else 1
    code, nw, nfo = _clip_3d(vf, fi, sc, src, nv, nf, tag, True)
    return (_VC_CUT if code == _CLIP_CUT else _VC_FAIL), nw, nfo


@kernel(parallel=False)
def _vface_area(vf, fi, src, f):
    """Area of the planar face ``f`` of the polyhedron in buffer ``src``."""
    sz = 0.0
    sy = 0.0
    sx = 0.0
    p0 = fi[src, 1, f]
    p1 = fi[src, 1, f + 1]
    for p in range(p0, p1):
        a = fi[src, 0, p]
        c = fi[src, 0, p + 1 if p + 1 < p1 else p0]
        sz, sy, sx = _add_cross(sz, sy, sx, vf[src, a], vf[src, c])
    return 0.5 * np.sqrt(sz * sz + sy * sy + sx * sx)


@kernel(parallel=False)
def _von_voxel_border(vf, fi, src, f, hz, hy, hx):
    """Tell whether face ``f`` lies on one face of the voxel ``[-h/2, h/2]^3``."""
    h = (hz / 2, hy / 2, hx / 2)
    for k in range(3):
        for sgn in (-1.0, 1.0):
            on = True
            for p in range(fi[src, 1, f], fi[src, 1, f + 1]):
                if vf[src, fi[src, 0, p], k] != sgn * h[k]:
                    on = False
                    break
            if on:
                return True
    return False


@kernel(parallel=False)
def _vmoments(vf, fi, src, nf, piece, a):
    """Volume, int u (3 comps), int |u|^2 of the polyhedron in ``src`` to ``piece[a]``.

    Tetrahedra between the voxel centre and the fan triangles of every face (the
    faces are oriented outward).
    """
    vol = 0.0
    m0 = 0.0
    m1 = 0.0
    m2 = 0.0
    q = 0.0
    for f in range(nf):
        p0 = fi[src, 1, f]
        i0 = fi[src, 0, p0]
        az, ay, ax = vf[src, i0, 0], vf[src, i0, 1], vf[src, i0, 2]
        for p in range(p0 + 1, fi[src, 1, f + 1] - 1):
            i1 = fi[src, 0, p]
            i2 = fi[src, 0, p + 1]
            v, t0, t1, t2, tq = _tetra_moments(
                az, ay, ax,
                vf[src, i1, 0], vf[src, i1, 1], vf[src, i1, 2],
                vf[src, i2, 0], vf[src, i2, 1], vf[src, i2, 2],
            )  # fmt: skip
            vol += v
            m0 += t0
            m1 += t1
            m2 += t2
            q += tq
    piece[a, 0] = vol
    piece[a, 1] = m0
    piece[a, 2] = m1
    piece[a, 3] = m2
    piece[a, 4] = q


@kernel(parallel=False)
def _clip_slot(hz, hy, hx, a, nact, order, backward, dcen, rel, vb):
    """Clip the voxel by the cuts of slot ``a`` against the others (``_vclip``).

    The cuts come in the order ``order[:nact]``, or the reverse with ``backward``.
    Returns ``(code, src, nf)``: ``_VC_CUT`` with the piece in buffer ``src`` of
    ``vb`` (``nf`` faces; fewer than 4: empty), ``_VC_EMPTY``, or ``_VC_FAIL``.
    """
    sz, sy, sx = rel
    vf, fi, sc = vb
    nv, nf = _vbox(hz, hy, hx, vf, fi)
    src = 0
    for ib in range(nact):
        b2 = order[nact - 1 - ib] if backward else order[ib]
        if b2 == a:
            continue
        cz, cy, cx, rhs = _snap(
            2.0 * (sz[b2] - sz[a]),
            2.0 * (sy[b2] - sy[a]),
            2.0 * (sx[b2] - sx[a]),
            dcen[b2] - dcen[a],
            hz,
            hy,
            hx,
        )
        code, nv2, nf2 = _vclip(vf, fi, sc, src, nv, nf, cz, cy, cx, rhs, b2)
        if code == _VC_CUT:
            src = 1 - src
            nv = nv2
            nf = nf2
        elif code == _VC_EMPTY or code == _VC_FAIL:
            return code, src, 0
    return _VC_CUT, src, nf


@kernel(parallel=False)
def _split_voxel_3d(hz, hy, hx, nact, dcen, rel, piece, flen, want_facets, vb):
    """Exact pieces of one voxel among its ``nact`` active slots (3D).

    ``piece`` (maxa, 5): volume, int u_z, int u_y, int u_x, int |u|^2 (u about the
    voxel centre); ``flen`` (maxa, maxa), when ``want_facets``: facet area between
    active slots a < b. The slot farthest at the centre (``_unclipped_slot``) is the
    rest of the voxel, its facets counted from the other side. ``rel`` is
    ``(sz, sy, sx)``, the sites relative to the voxel centre; ``vb = (vf, fi, sc)``
    the buffers of :func:`_vclip`.

    A slot whose clip fails is clipped again with its cuts in reverse order; if that
    fails too, its piece is left empty (the rest of the voxel goes to the last slot)
    and the status is 2 (approximate). Returns 0 when the pieces are exact.

    A crowded voxel (more than MAXA slots, most of them with empty pieces) cuts each
    slot by the others in the order of their power distance at the centre: the
    strongest competitors come first, and an empty piece stops after a few cuts.
    """
    vf, fi, _ = vb
    status = 0
    last = _unclipped_slot(nact, dcen, piece, flen)
    full = hz * hy * hx
    order = np.argsort(dcen[:nact]) if nact > MAXA else np.arange(nact)
    for a in range(nact):
        if a == last:
            continue
        code, src, nf = _clip_slot(hz, hy, hx, a, nact, order, False, dcen, rel, vb)
        if code == _VC_FAIL:
            code, src, nf = _clip_slot(hz, hy, hx, a, nact, order, True, dcen, rel, vb)
            if code == _VC_FAIL:
                status = 2
        if code != _VC_CUT or nf < 4:
            for c in range(5):
                piece[a, c] = 0.0
            continue
        _vmoments(vf, fi, src, nf, piece, a)
        if not want_facets or piece[a, 0] <= 1e-12 * full:
            continue  # degenerate piece (a face or an edge of the voxel)
        for f in range(nf):
            t = fi[src, 2, f]
            if t >= 0 and t != a:
                ar = 0.5 * _vface_area(vf, fi, src, f)
                if t == last and not _von_voxel_border(vf, fi, src, f, hz, hy, hx):
                    ar *= 2.0  # the last slot does not see this facet from its side
                if t > a:
                    flen[a, t] += ar
                else:
                    flen[t, a] += ar
    piece[last, 0] = full
    piece[last, 4] = full * (hz * hz + hy * hy + hx * hx) / 12.0
    for a in range(nact):
        if a != last:
            for c in range(5):
                piece[last, c] -= piece[a, c]
    if piece[last, 0] <= 1e-12 * full:
        for c in range(5):
            piece[last, c] = 0.0
    return status


@kernel(parallel=False)
def _snap(cz, cy, cx, b, hz, hy, hx):
    """Snap a cut ``c . u = b`` lying on a pixel face up to rounding onto it exactly.

    Components of ``c`` below 1e-10 of its norm are zeroed; an axis-aligned cut within
    1e-10 (relative) of a face of the pixel is moved onto that face, so that facets on
    pixel borders are recognised exactly (each of the two pixels then counts half).
    """
    nn = abs(cz) + abs(cy) + abs(cx)
    tiny = 1e-10 * nn
    if abs(cz) < tiny:
        cz = 0.0
    if abs(cy) < tiny:
        cy = 0.0
    if abs(cx) < tiny:
        cx = 0.0
    if (cz != 0.0) + (cy != 0.0) + (cx != 0.0) == 1:
        if cz != 0.0:
            face = abs(cz) * hz / 2
        elif cy != 0.0:
            face = abs(cy) * hy / 2
        else:
            face = abs(cx) * hx / 2
        if abs(abs(b) - face) <= 1e-10 * face:
            b = face if b > 0 else -face
    return cz, cy, cx, b


@kernel(parallel=False)
def _border_facet(is2d, hz, hy, hx, cz, cy, cx, b):
    """Half the border face of the pixel when the cut ``c . u = b`` lies on it, else 0.

    The pixel on the other side of that face contributes the other half, which gives
    the facet the mean density of the two pixels.
    """
    if is2d:
        cz = 0.0
    nzc = (cz != 0.0) + (cy != 0.0) + (cx != 0.0)
    if nzc != 1:
        return 0.0
    if cz != 0.0:
        if abs(b) == abs(cz) * hz / 2:
            return 0.5 * hy * hx
    elif cy != 0.0:
        if abs(b) == abs(cy) * hy / 2:
            return 0.5 * (hx if is2d else hz * hx)
    elif abs(b) == abs(cx) * hx / 2:
        return 0.5 * (hy if is2d else hz * hy)
    return 0.0


@kernel(parallel=False)
def _emit_facets(
    want_jac, nact, act, keep, flen, owner, sites, rhoj, pix, c, cnt, cap, jac
):
    """Append the Jacobian triplets of one split pixel; return the new count.

    Without ``want_jac`` only the pairs are counted (an upper bound on the triplets),
    so that the caller can size the buffers of a later Jacobian pass.

    One triplet per pair of active slots ``a < b`` with a facet piece
    (``flen[a, b] > 0``) between different owners: ``rhoj * flen / (2 |y_a - y_b|)``
    at row ``c``, position ``cnt`` of ``rows``, ``cols``, ``vals`` and ``pixs`` (the
    flat pixel index ``pix``). Past ``cap`` only the count grows (the caller reruns
    with more room).
    """
    rows, cols, vals, pixs = jac
    if not want_jac:
        return cnt + nact * (nact - 1) // 2
    for a in range(nact):
        sa = keep[act[a]]
        for b2 in range(a + 1, nact):
            fl = flen[a, b2]
            if fl <= 0.0:
                continue
            sb2 = keep[act[b2]]
            oa = owner[sa]
            ob = owner[sb2]
            if oa == ob:
                continue
            dz = sites[sa, 0] - sites[sb2, 0]
            dy = sites[sa, 1] - sites[sb2, 1]
            dx = sites[sa, 2] - sites[sb2, 2]
            dist = np.sqrt(dz * dz + dy * dy + dx * dx)
            if cnt < cap:
                rows[c, cnt] = min(oa, ob)
                cols[c, cnt] = max(oa, ob)
                vals[c, cnt] = rhoj * fl / (2.0 * dist)
                pixs[c, cnt] = pix
            cnt += 1
    return cnt


@kernel(parallel=False)
def _pass_outputs(n_tiles, cand_ptr, want_moments, n_points, n_chunks):
    """Tile count, longest candidate list and the zeroed outputs of a fractional pass.

    Returns ``(n_t, kmax, out (n_chunks, N, 5 or 1), counts, status)``.
    """
    n_t = n_tiles[0] * n_tiles[1] * n_tiles[2]
    kmax = 1
    for t in range(n_t):
        kmax = max(kmax, cand_ptr[t + 1] - cand_ptr[t])
    ncomp = 5 if want_moments else 1
    out = np.zeros((n_chunks, n_points, ncomp))
    counts = np.zeros(n_chunks, np.int64)
    status = np.zeros(n_chunks, np.int64)
    return n_t, kmax, out, counts, status


@kernel(parallel=True)
def _fractional_tiles_2d(
    tiling, geom, cands, dens, extent, n_points, n_chunks, labels, opts, jac_out, redo
):
    """Fractional-quadrature pass on a 2D raster, pixels split as squares.

    Every site lies in the pixels' plane. Arguments and results as in
    :func:`_fractional_tiles_3d` (a 3D raster with one layer of voxels is not 2D: its
    sites have their own z, so the cuts of a voxel are planes).
    """
    shape3, tile, n_tiles, sub = tiling
    spacing3, origin3 = geom
    sites, site_w, owner, cand_ptr, cand_idx = cands
    density, umass = dens
    want_moments = opts[0]
    n_t, kmax, out, counts, status = _pass_outputs(
        n_tiles, cand_ptr, want_moments, n_points, n_chunks
    )
    hz = spacing3[0]
    hy = spacing3[1]
    hx = spacing3[2]
    frame = (origin3[0] + 0.5 * hz, origin3[1], origin3[2], hz, hy, hx)
    for k_c in prange(n_chunks):
        c = _spread(k_c, n_chunks)
        if not redo[c]:
            continue
        keep = np.empty(kmax, np.int64)
        keep_mid = np.empty(kmax, np.int64)
        tb = np.empty((3, kmax))
        ti = np.empty(kmax, np.int64)
        mb = np.empty((3, kmax))
        lb = np.empty(kmax)
        maxa = opts[4]
        mv = max(MAXV, maxa + 8)
        piece = np.empty((maxa, 5))
        flen = np.empty((maxa, maxa))
        poly = np.empty((6 * maxa, mv))
        iw = np.empty(4 * maxa, np.int64)
        sl = np.empty((8, mv))
        act2 = np.empty(maxa + sub[2], np.int64)
        # the active candidates of an overflowing pixel
        wide = np.empty(kmax + 1, np.int64)
        dq2 = np.empty((kmax, sub[2]))
        fs = np.empty((7, max(kmax, sub[2])))
        scratch = (dq2, fs, act2, iw, sl, piece, flen, poly, wide)
        cnt = np.int64(0)  # not a literal: callees compile once
        for t in range(c * n_t // n_chunks, (c + 1) * n_t // n_chunks):
            ty = (t // n_tiles[2]) % n_tiles[1]
            tx = t % n_tiles[2]
            tj1 = min((ty + 1) * tile[1], shape3[1])
            ti1 = min((tx + 1) * tile[2], shape3[2])
            # two-level pruning: the tile's list to each mid box, then the mid
            # box's survivors to each sub-box (a tile list is ~8x longer than a
            # sub-box needs; pruning it per sub-box cost more than the sweep). The
            # candidates are gathered once per tile into contiguous rows, so that
            # the prunes read them in order.
            ng = _gather_tile_2d(t, cand_ptr, cand_idx, sites, site_w, tb, ti)
            for jm in range(ty * tile[1], tj1, MID_2D[0]):
                jm1 = min(jm + MID_2D[0], tj1)
                for im in range(tx * tile[2], ti1, MID_2D[1]):
                    im1 = min(im + MID_2D[1], ti1)
                    rect = (jm, jm1, im, im1)
                    nm = _prune_2d(
                        ng, tb, ti, rect, frame, lb, mb, keep_mid, owner, False
                    )
                    for j0 in range(jm, jm1, sub[1]):
                        j1 = min(j0 + sub[1], jm1)
                        for i0 in range(im, im1, sub[2]):
                            i1 = min(i0 + sub[2], im1)
                            rect = (j0, j1, i0, i1)
                            nk = _prune_2d(
                                nm, mb, keep_mid, rect, frame, lb, fs, keep, owner, True
                            )
                            cnt, st = _sweep_box_2d(
                                (j0, j1, i0, i1),
                                nk,
                                keep,
                                frame,
                                (sites, owner),
                                (density, umass, extent),
                                opts,
                                jac_out,
                                out,
                                c,
                                labels,
                                cnt,
                                scratch,
                            )
                            status[c] |= st
        counts[c] = cnt
    return out, counts, status


@kernel(parallel=False)
def _prune_box(t, box, geom, cands, lb, keep):
    """Candidates of tile ``t`` that can own a point of the voxels of ``box``.

    ``box`` is ``(k0, k1, j0, j1, i0, i1)``; pruned on the whole extent of its voxels
    (``_kernels._prune``). Returns their count, in ``keep``.
    """
    k0, k1, j0, j1, i0, i1 = box
    spacing3, origin3 = geom
    sites, site_w, owner, cand_ptr, cand_idx = cands
    hz, hy, hx = spacing3[0], spacing3[1], spacing3[2]
    zlo = origin3[0] + k0 * hz
    zhi = origin3[0] + k1 * hz
    ylo = origin3[1] + j0 * hy
    yhi = origin3[1] + j1 * hy
    xlo = origin3[2] + i0 * hx
    xhi = origin3[2] + i1 * hx
    return _prune(
        t, cand_ptr, cand_idx, sites, site_w, owner, zlo, zhi, ylo, yhi, xlo, xhi, lb,
        keep,
    )  # fmt: skip


@kernel(parallel=False)
def _scratch_3d(kmax, maxa):
    """Scratch of one chunk of a 3D fractional pass (``kmax`` the longest list).

    ``maxa`` is the most active candidates a voxel may keep.

    Returns ``(keep, lb, dq, wide, dcen, (rz, ry, rx), piece, flen, bufs, vb)``;
    ``wide`` has room for all the candidates (active ones), ``bufs`` is the scratch
    of ``_cut_box_3d``, ``vb`` the buffers of ``_split_voxel_3d``.
    """
    # the shared-vertex clipper's room grows with the slots (see MAXVV)
    mvv = MAXVV * max(maxa, MAXA) // MAXA
    me = MAXE * max(maxa, MAXA) // MAXA
    return (
        np.empty(kmax, np.int64),
        np.empty(kmax),
        np.empty(kmax),
        np.empty(kmax + 1, np.int64),
        np.empty(maxa),
        (np.empty(maxa), np.empty(maxa), np.empty(maxa)),
        np.empty((maxa, 5)),
        np.empty((maxa, maxa)),
        np.empty((6, MAXV)),
        (
            np.empty((2, mvv, 4)),
            np.empty((2, 3, me), np.int64),
            np.empty((7, mvv), np.int64),
        ),
    )


@kernel(parallel=False)
def _add_whole_3d(out, c, o, m, centre, sites, sb, extent, want_moments):
    """Add a whole voxel of mass ``m`` to cell ``o`` (moments about site ``sb``)."""
    out[c, o, 0] += m
    if want_moments:
        dz = centre[0] - sites[sb, 0]
        dy = centre[1] - sites[sb, 1]
        dx = centre[2] - sites[sb, 2]
        out[c, o, 1] += m * dz
        out[c, o, 2] += m * dy
        out[c, o, 3] += m * dx
        out[c, o, 4] += m * (dz * dz + dy * dy + dx * dx + extent)


@kernel(parallel=False)
def _pieces_3d(spacing3, nact, dcen, rel, piece, flen, want_jac, bufs, vb):
    """Pieces of a voxel among ``nact >= 2`` active slots (``_split_voxel_3d``).

    Two slots: one plane, cut once, the other piece is the rest (a cut that misses
    the voxel's interior gets the facet on the border). ``rel`` is ``(rz, ry, rx)``;
    facet areas (``flen``) only ``want_jac``. Returns 0, or 2 if the pieces are
    approximate (a slot's clip failed twice, see ``_split_voxel_3d``).
    """
    hz, hy, hx = spacing3[0], spacing3[1], spacing3[2]
    if nact != 2:
        return _split_voxel_3d(hz, hy, hx, nact, dcen, rel, piece, flen, want_jac, vb)
    rz, ry, rx = rel
    full = hz * hy * hx
    cz, cy, cx, rhs = _snap(
        2.0 * (rz[1] - rz[0]),
        2.0 * (ry[1] - ry[0]),
        2.0 * (rx[1] - rx[0]),
        dcen[1] - dcen[0],
        hz,
        hy,
        hx,
    )
    ar, m0, mu, mv, m2, ln = _cut_box_3d(hz, hy, hx, cz, cy, cx, rhs, bufs)
    piece[0, 0] = ar
    piece[0, 1] = m0
    piece[0, 2] = mu
    piece[0, 3] = mv
    piece[0, 4] = m2
    piece[1, 4] = full * (hz * hz + hy * hy + hx * hx) / 12.0 - m2
    if piece[0, 0] <= 1e-12 * full or piece[0, 0] >= full * (1 - 1e-12):
        # the cut misses the voxel's interior
        ln = _border_facet(False, hz, hy, hx, cz, cy, cx, rhs)
    piece[1, 0] = full - piece[0, 0]
    piece[1, 1] = -piece[0, 1]
    piece[1, 2] = -piece[0, 2]
    piece[1, 3] = -piece[0, 3]
    flen[0, 1] = ln
    return 0


@kernel(parallel=False)
def _add_piece(out, c, o, piece, a, rho, oz, oy, ox, want_moments):
    """Add piece ``a`` (mass, and moments about the site) of a pixel to ``out[c, o]``.

    ``(oz, oy, ox)`` is the pixel centre relative to the site (``oz = 0`` in 2D,
    where ``piece[a, 1]`` is 0); ``rho`` the pixel's density.
    """
    ar = piece[a, 0]
    out[c, o, 0] += rho * ar
    if want_moments:
        out[c, o, 1] += rho * (ar * oz + piece[a, 1])
        out[c, o, 2] += rho * (ar * oy + piece[a, 2])
        out[c, o, 3] += rho * (ar * ox + piece[a, 3])
        out[c, o, 4] += rho * (
            ar * (oz * oz + oy * oy + ox * ox)
            + 2.0 * (oz * piece[a, 1] + oy * piece[a, 2] + ox * piece[a, 3])
            + piece[a, 4]
        )


@kernel(parallel=False)
def _add_pieces_3d(out, c, owner, keep, wide, nact, piece, rel, rho, want_moments):
    """Add the pieces' masses (and moments about the sites) to ``out[c]`` (N, 5).

    Slot ``a`` is candidate ``wide[a]``, cell ``owner[keep[wide[a]]]``; ``rel`` is
    ``(rz, ry, rx)``, the sites relative to the voxel centre; ``rho`` its density.
    """
    rz, ry, rx = rel
    for a in range(nact):
        if piece[a, 0] <= 0.0:
            continue
        o = owner[keep[wide[a]]]
        _add_piece(out, c, o, piece, a, rho, -rz[a], -ry[a], -rx[a], want_moments)


@kernel(parallel=False)
def _prune_list_3d(nk, keep, sites, site_w, lo, hi, lb, dst, g):
    """Candidates of ``keep[:nk]`` that can own a point of the box ``[lo, hi]`` (3,).

    Exact bounds as in ``_kernels._prune``; the order of ``keep`` (by owner) is kept.
    Writes the survivors to ``dst`` and their sites and weights to the rows z, y, x, w
    of ``g`` (4, kmax); returns their count.
    """
    ub = np.inf
    for q in range(nk):
        s = keep[q]
        ub = _bound_site(
            lb, q, sites, site_w, s, lo[0], hi[0], lo[1], hi[1], lo[2], hi[2], ub
        )
    lim = ub + 1e-9 * (abs(ub) + 1.0)
    nm = 0
    for q in range(nk):
        if lb[q] <= lim:
            s = keep[q]
            dst[nm] = s
            g[0, nm] = sites[s, 0]
            g[1, nm] = sites[s, 1]
            g[2, nm] = sites[s, 2]
            g[3, nm] = site_w[s]
            nm += 1
    return nm


@kernel(parallel=False)
def _active_3d(best, bd, nk, dq, g, spacing3, wide):
    """Active competitors of a voxel: ``pd_q - pd_best <= 0`` somewhere in it.

    Sites of the candidates in the rows z, y, x of ``g``. Writes them to ``wide``
    (the best first; room for all); returns their count.
    """
    hz, hy, hx = spacing3[0], spacing3[1], spacing3[2]
    bz = g[0, best]
    by = g[1, best]
    bx = g[2, best]
    nact = 1
    wide[0] = best
    for q in range(nk):
        if q == best:
            continue
        marg = hz * abs(g[0, q] - bz) + hy * abs(g[1, q] - by) + hx * abs(g[2, q] - bx)
        if dq[q] - bd <= marg * (1 + 1e-9) + 1e-300:
            wide[nact] = q
            nact += 1
    return nact


@kernel(parallel=False)
def _sweep_box_3d(
    box, nk, keep, g, geom, cells, dens, opts, jac_out, out, c, labels, cnt, scratch
):
    """Label the voxels of one box, add their masses (split when cut) to ``out[c]``.

    ``keep[:nk]`` are the candidates of the box (by owner), ``g`` their sites and
    weights (``_prune_list_3d``); ``cells`` is ``(sites, owner)``, ``dens``
    ``(density, umass, extent)``; ``opts``, ``jac_out``, ``out``, ``labels`` as in
    :func:`_fractional_tiles_3d`. Returns the new triplet count and a status bit.
    """
    k0, k1, j0, j1, i0, i1 = box
    spacing3, origin3 = geom
    sites, owner = cells
    density, umass, extent = dens
    want_moments, want_jac, jac_floor, jac_cap, _ = opts
    dq, wide, dcen, rel, piece, flen, bufs, vb = scratch
    maxa = piece.shape[0]
    rz, ry, rx = rel
    hz = spacing3[0]
    hy = spacing3[1]
    hx = spacing3[2]
    vol = hz * hy * hx
    ny = labels.shape[1]
    nx = labels.shape[2]
    status = 0
    for k in range(k0, k1):
        zc = origin3[0] + (k + 0.5) * hz
        for j in range(j0, j1):
            yc = origin3[1] + (j + 0.5) * hy
            for i in range(i0, i1):
                xc = origin3[2] + (i + 0.5) * hx
                m = umass if umass >= 0 else density[k, j, i]
                # centre owner (lowest index wins ties)
                best = 0
                bd = np.inf
                for q in range(nk):
                    dz = zc - g[0, q]
                    dy = yc - g[1, q]
                    dx = xc - g[2, q]
                    d = dz * dz + dy * dy + dx * dx - g[3, q]
                    dq[q] = d
                    if d < bd:
                        bd = d
                        best = q
                sb = keep[best]
                labels[k, j, i] = owner[sb]
                mj = m
                if want_jac and mj < jac_floor:
                    mj = jac_floor
                if mj == 0.0:
                    continue
                # active competitors: pd_q - pd_best <= 0 somewhere; to ``wide``,
                # which has room for all
                nact = _active_3d(best, bd, nk, dq, g, spacing3, wide)
                if nact > 2:
                    # a competitor that another one beats on the whole voxel owns
                    # none of it (not even a face): fewer slots, often down to the
                    # closed-form two-cell cut
                    nact = _undominated_3d(wide, nact, dq, keep, sites, hz, hy, hx)
                if nact > maxa:
                    # crowded voxel: the caller reruns the chunk with more room
                    status = 1
                    nact = maxa
                if nact == 1:
                    centre = (zc, yc, xc)
                    _add_whole_3d(
                        out, c, owner[sb], m, centre, sites, sb, extent, want_moments
                    )
                    continue
                for a in range(nact):
                    q = wide[a]
                    dcen[a] = dq[q]
                    rz[a] = g[0, q] - zc
                    ry[a] = g[1, q] - yc
                    rx[a] = g[2, q] - xc
                status |= _pieces_3d(
                    spacing3, nact, dcen, rel, piece, flen, want_jac, bufs, vb
                )
                _add_pieces_3d(
                    out, c, owner, keep, wide, nact, piece, rel, m / vol, want_moments
                )
                cnt = _emit_facets(
                    want_jac, nact, wide, keep, flen, owner, sites, mj / vol,
                    (k * ny + j) * nx + i, c, cnt, jac_cap, jac_out,
                )  # fmt: skip
    return cnt, status


@kernel(parallel=True)
def _fractional_tiles_3d(
    tiling, geom, cands, dens, extent, n_points, n_chunks, labels, opts, jac_out, redo
):
    """Fractional-quadrature pass on a 3D raster: labels, masses, moments, Jacobian.

    Each voxel crossed by cell boundaries is split by the planes between its cells.

    Parameters
    ----------
    tiling, geom, cands, dens, n_points, n_chunks, labels
        As in ``_kernels._assign_tiles``; the candidate lists must be built for whole
        pixel extents (not only centres).
    extent : float
        ``sum_a h_a^2 / 12`` over the real axes (the pixel's own second moment).
    opts : tuple ``(want_moments, want_jac, jac_floor, jac_cap, maxa)``
        ``jac_floor`` is the pixel mass below which the Jacobian counts a pixel as
        having this mass (keeps cells separated by zero density connected; masses are
        not affected); ``jac_cap`` the capacity per chunk of the triplet arrays;
        ``maxa`` the most active cells a pixel keeps (a crowded pixel sets the
        status bit; the caller reruns its chunk with a larger ``maxa``).
    jac_out : tuple ``(jac_rows, jac_cols, jac_vals, jac_pix)``
        Jacobian triplet arrays, each (n_chunks, jac_cap), written in place;
        ``jac_pix`` is the flat index of the pixel that holds the facet piece.
    redo : (n_chunks,) bool
        Chunks to compute; the others are skipped (their outputs stay zero). A rerun
        after a Jacobian buffer overflow redoes only the chunks that overflowed.

    Returns
    -------
    out : (n_chunks, N, 5) float64
        mass, first moments about the site (z, y, x), second moment about the site.
    counts : (n_chunks,) int64
        Jacobian triplets per chunk (may exceed jac_cap: then rerun with more room).
    status : (n_chunks,) int64
        Bit 1: a pixel had more than ``maxa`` active cells (truncated); bit 2: a
        voxel's clip failed (its pieces are approximate, see ``_split_voxel_3d``).
    """
    _, _, n_tiles, sub = tiling
    spacing3, origin3 = geom
    sites, site_w, owner, cand_ptr, _ = cands
    density, umass = dens
    n_t, kmax, out, counts, status = _pass_outputs(
        n_tiles, cand_ptr, opts[0], n_points, n_chunks
    )
    hz = spacing3[0]
    hy = spacing3[1]
    hx = spacing3[2]
    for k_c in prange(n_chunks):
        c = _spread(k_c, n_chunks)
        if not redo[c]:
            continue
        scr = _scratch_3d(kmax, opts[4])
        keep, lb, dq, wide, dcen, rel, piece, flen, bufs, vb = scr
        keep2 = np.empty(kmax, np.int64)
        g = np.empty((4, kmax))
        lo = np.empty(3)
        hi = np.empty(3)
        scratch = (dq, wide, dcen, rel, piece, flen, bufs, vb)
        cnt = np.int64(0)  # not a literal: callees compile once
        for t in range(c * n_t // n_chunks, (c + 1) * n_t // n_chunks):
            tk0, tk1, tj0, tj1, ti0, ti1 = _tile_ranges(t, tiling)
            for k0 in range(tk0, tk1, sub[0]):
                k1 = min(k0 + sub[0], tk1)
                for j0 in range(tj0, tj1, sub[1]):
                    j1 = min(j0 + sub[1], tj1)
                    for i0 in range(ti0, ti1, sub[2]):
                        i1 = min(i0 + sub[2], ti1)
                        box = (k0, k1, j0, j1, i0, i1)
                        nk = _prune_box(t, box, geom, cands, lb, keep)
                        # the sub-box's list pruned again to mini boxes: a voxel
                        # tests every candidate left (twice)
                        for km in range(k0, k1, MINI_3D[0]):
                            km1 = min(km + MINI_3D[0], k1)
                            lo[0] = origin3[0] + km * hz
                            hi[0] = origin3[0] + km1 * hz
                            for jm in range(j0, j1, MINI_3D[1]):
                                jm1 = min(jm + MINI_3D[1], j1)
                                lo[1] = origin3[1] + jm * hy
                                hi[1] = origin3[1] + jm1 * hy
                                for im in range(i0, i1, MINI_3D[2]):
                                    im1 = min(im + MINI_3D[2], i1)
                                    lo[2] = origin3[2] + im * hx
                                    hi[2] = origin3[2] + im1 * hx
                                    nm = _prune_list_3d(
                                        nk, keep, sites, site_w, lo, hi, lb, keep2, g
                                    )
                                    cnt, st = _sweep_box_3d(
                                        (km, km1, jm, jm1, im, im1), nm, keep2, g,
                                        geom, (sites, owner),
                                        (density, umass, extent), opts, jac_out,
                                        out, c, labels, cnt, scratch,
                                    )  # fmt: skip
                                    status[c] |= st
        counts[c] = cnt
    return out, counts, status


@kernel(parallel=False)
def _cut_box_3d(hz, hy, hx, nz, ny, nx, b, bufs):
    """Measure the part ``n . u <= b`` of the voxel ``[-h/2, h/2]^3`` (no cap built).

    Moments are taken about the point ``p`` of the cutting plane nearest to the voxel
    centre, by the divergence theorem: a planar face at signed distance ``d`` from
    ``p`` adds ``d / 3`` times its area to the volume, ``d / 4`` times its first moment
    to the first moments and ``d / 5`` times its second moment to the second moment.
    The cap (``d = 0``) adds nothing, so the clipped voxel faces (axis-aligned
    polygons) give the exact integrals; the cap area is the norm of their total
    vector area. ``bufs`` (>= 5, >= 8): scratch (corner values, polygon, sums).

    Returns
    -------
    vol, int u (3 comps), int |u|^2, cap area  (u relative to the voxel centre)
    """
    h = (hz / 2, hy / 2, hx / 2)
    nn2 = nz * nz + ny * ny + nx * nx
    p = (nz * b / nn2, ny * b / nn2, nx * b / nn2)
    sv = bufs[0]
    px = bufs[1]
    py = bufs[2]
    for v in range(8):
        uz = h[0] if v & 1 else -h[0]
        uy = h[1] if v & 2 else -h[1]
        ux = h[2] if v & 4 else -h[2]
        sv[v] = nz * uz + ny * uy + nx * ux - b
    w = bufs[3]  # first moments about p
    va = bufs[4]  # vector area of the voxel faces
    for a in range(3):
        w[a] = 0.0
        va[a] = 0.0
    vol = 0.0
    q = 0.0
    for a in range(3):
        a1 = (a + 1) % 3
        a2 = (a + 2) % 3
        for side in range(2):
            base = side << a
            cyc = (
                base,
                base | (1 << a1),
                base | (1 << a1) | (1 << a2),
                base | (1 << a2),
            )
            no = 0
            for k in range(4):
                v0 = cyc[k]
                v1 = cyc[k + 1 if k < 3 else 0]
                s0 = sv[v0]
                s1 = sv[v1]
                x0 = h[a1] if (v0 >> a1) & 1 else -h[a1]
                y0 = h[a2] if (v0 >> a2) & 1 else -h[a2]
                if s0 <= 0.0:
                    px[no] = x0
                    py[no] = y0
                    no += 1
                if (s0 <= 0.0) != (s1 <= 0.0):
                    x1 = h[a1] if (v1 >> a1) & 1 else -h[a1]
                    y1 = h[a2] if (v1 >> a2) & 1 else -h[a2]
                    t = s0 / (s0 - s1)
                    px[no] = x0 + t * (x1 - x0)
                    py[no] = y0 + t * (y1 - y0)
                    no += 1
            if no < 3:
                continue
            ar, f1, f2, f11 = _polygon_moments(px, py, no)
            sg = 1.0 if side else -1.0
            ca = sg * h[a] - p[a]  # the face's coordinate along a, relative to p
            d = sg * ca
            vol += d * ar / 3.0
            w[a] += d / 4.0 * ca * ar
            w[a1] += d / 4.0 * (f1 - p[a1] * ar)
            w[a2] += d / 4.0 * (f2 - p[a2] * ar)
            q += (
                d
                / 5.0
                * (
                    ca * ca * ar
                    + f11
                    - 2.0 * (p[a1] * f1 + p[a2] * f2)
                    + (p[a1] * p[a1] + p[a2] * p[a2]) * ar
                )
            )
            va[a] += sg * ar
    cap_area = np.sqrt(va[0] * va[0] + va[1] * va[1] + va[2] * va[2])
    # back to moments about the voxel centre: u = w + p
    i0 = w[0] + p[0] * vol
    i1 = w[1] + p[1] * vol
    i2 = w[2] + p[2] * vol
    qq = q + 2.0 * (p[0] * w[0] + p[1] * w[1] + p[2] * w[2])
    qq += (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]) * vol
    return vol, i0, i1, i2, qq, cap_area


@kernel(parallel=False)
def _cut_square_2d(hy, hx, cu, cv, b):
    """Cut the pixel ``[-h/2, h/2]^2`` to ``cu u + cv v <= b``, in closed form.

    Walks the four sides (in the order of ``_square_rows``), clips each to the
    half-plane and adds its shoelace terms, then closes the piece with the cut from the
    exit point to the entry point: no polygon is built.

    Returns
    -------
    area, int u, int v, int |u|^2 (u relative to the centre), length of the cut
    """
    a2 = hy / 2
    b2 = hx / 2
    # corners (u, v) as in _square_rows: (-,-), (-,+), (+,+), (+,-)
    s0 = cu * -a2 + cv * -b2 - b
    s1 = cu * -a2 + cv * b2 - b
    s2 = cu * a2 + cv * b2 - b
    s3 = cu * a2 + cv * -b2 - b
    if s0 <= 0.0 and s1 <= 0.0 and s2 <= 0.0 and s3 <= 0.0:
        full = hy * hx
        return full, 0.0, 0.0, full * (hy * hy + hx * hx) / 12.0, 0.0
    if s0 > 0.0 and s1 > 0.0 and s2 > 0.0 and s3 > 0.0:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    ar = 0.0
    mu = 0.0
    mv = 0.0
    m2 = 0.0
    xu = 0.0
    xv = 0.0
    eu = 0.0
    ev = 0.0
    for k in range(4):
        if k == 0:
            pu, pv, sp, qu, qv, sq = -a2, -b2, s0, -a2, b2, s1
        elif k == 1:
            pu, pv, sp, qu, qv, sq = -a2, b2, s1, a2, b2, s2
        elif k == 2:
            pu, pv, sp, qu, qv, sq = a2, b2, s2, a2, -b2, s3
        else:
            pu, pv, sp, qu, qv, sq = a2, -b2, s3, -a2, -b2, s0
        if sp <= 0.0:
            if sq > 0.0:
                # leaves the half-plane: the side ends at the exit point
                t = sp / (sp - sq)
                qu = pu + t * (qu - pu)
                qv = pv + t * (qv - pv)
                xu = qu
                xv = qv
        elif sq <= 0.0:
            # enters the half-plane: the side starts at the entry point
            t = sp / (sp - sq)
            pu = pu + t * (qu - pu)
            pv = pv + t * (qv - pv)
            eu = pu
            ev = pv
        else:
            continue
        cr = pu * qv - qu * pv
        ar += cr
        mu += cr * (pu + qu)
        mv += cr * (pv + qv)
        m2 += cr * (pu * pu + pu * qu + qu * qu + pv * pv + pv * qv + qv * qv)
    # the cut, from the exit point to the entry point
    cr = xu * ev - eu * xv
    ar += cr
    mu += cr * (xu + eu)
    mv += cr * (xv + ev)
    m2 += cr * (xu * xu + xu * eu + eu * eu + xv * xv + xv * ev + ev * ev)
    du = eu - xu
    dv = ev - xv
    length = np.sqrt(du * du + dv * dv)
    if ar < 0.0:
        return -ar / 2.0, -mu / 6.0, -mv / 6.0, -m2 / 12.0, length
    return ar / 2.0, mu / 6.0, mv / 6.0, m2 / 12.0, length


@kernel(parallel=False)
def _square_rows(hy, hx, poly, r):
    """Write the pixel ``[-h/2, h/2]^2`` into rows ``r`` to ``r + 2`` of ``poly``.

    Rows ``r`` (u), ``r + 1`` (v) and ``r + 2`` (edge tags, all -1); returns 4.
    """
    poly[r, 0] = -hy / 2
    poly[r + 1, 0] = -hx / 2
    poly[r, 1] = -hy / 2
    poly[r + 1, 1] = hx / 2
    poly[r, 2] = hy / 2
    poly[r + 1, 2] = hx / 2
    poly[r, 3] = hy / 2
    poly[r + 1, 3] = -hx / 2
    for k in range(4):
        poly[r + 2, k] = -1.0
    return np.int64(4)


@kernel(parallel=False)
def _moments_rows(poly, r, nv):
    """Return area, int u, int v and int |u|^2 of the polygon in rows ``r``, ``r + 1``.

    As ``_polygon_moments`` (either orientation), on rows of ``poly``.
    """
    a = 0.0
    mu = 0.0
    mv = 0.0
    m2 = 0.0
    for k in range(nv):
        k2 = k + 1 if k + 1 < nv else 0
        x0 = poly[r, k]
        y0 = poly[r + 1, k]
        x1 = poly[r, k2]
        y1 = poly[r + 1, k2]
        cr = x0 * y1 - x1 * y0
        a += cr
        mu += cr * (x0 + x1)
        mv += cr * (y0 + y1)
        m2 += cr * (x0 * x0 + x0 * x1 + x1 * x1 + y0 * y0 + y0 * y1 + y1 * y1)
    if a < 0.0:
        return -a / 2.0, -mu / 6.0, -mv / 6.0, -m2 / 12.0
    return a / 2.0, mu / 6.0, mv / 6.0, m2 / 12.0


@kernel(parallel=False)
def _cut_value(cu, cv, rhs, u, v, hy, hx):
    """``cu u + cv v - rhs``, zero when within rounding of zero.

    A vertex on a cut must test exactly zero: that is how an edge on the cut (a facet on
    the pixel's border, after ``_snap``) keeps its tag. Fused multiply-adds (fastmath
    contraction) leave the product's rounding error instead, so values below 1e-13 of
    the cut's range over the pixel count as zero.
    """
    s = cu * u + cv * v - rhs
    if abs(s) <= 1e-13 * (abs(cu) * hy + abs(cv) * hx):
        return 0.0
    return s


@kernel(parallel=False, inline=True)
def _cut_values(cu, cv, rhs, poly, r, nv, sl, hy, hx):
    """Values of the cut at the vertices of the polygon in rows ``r``, ``r + 1``.

    Writes them (``_cut_value``) to ``sl[7, :nv]``; returns their min and max.
    """
    smax = -np.inf
    smin = np.inf
    for k in range(nv):
        s = _cut_value(cu, cv, rhs, poly[r, k], poly[r + 1, k], hy, hx)
        sl[7, k] = s
        smax = max(smax, s)
        smin = min(smin, s)
    return smin, smax


@kernel(parallel=False)
def _split_pixel_2d(hy, hx, nact, sl, piece, flen, want_facets, poly, iw):
    """Exact pieces of one pixel among its ``nact`` active candidates (2D).

    Parameters
    ----------
    hy, hx, nact : the pixel size; the number of active slots.
    sl : (8, >= ma) float: row 0 the power distances at the centre, rows 1 and 2 the
        site coordinates (row, column) relative to the centre, one column per slot;
        rows 3 to 7 are scratch.
    piece : (ma, 5) out: area, 0, int u, int v, int |u|^2 (u relative to the centre);
        ``ma`` (at least ``nact``) sizes the scratch below.
    flen : (ma, ma) out: facet length between slots a < b (``want_facets``).
    poly, iw : (6 ma, >= ma + 8) scratch, two polygons (u, v, tags) a slot; (4 ma,).

    Notes
    -----
    Incremental construction: the slots are inserted in the order of increasing power
    distance at the centre, the first one owning the whole square. Slot ``n`` is
    compared with each piece ``P_a`` so far: if ``pd_a < pd_n`` at every vertex of
    ``P_a``, the piece stays as it is; otherwise ``P_a`` is clipped by
    ``pd_a <= pd_n``. A competitor that reaches no piece owns nothing (one test per
    vertex of each piece). Otherwise the piece of ``n`` is the square clipped by
    ``pd_n <= pd_a`` for the slots ``a`` with a nonempty piece, those it reaches first
    (slots with empty pieces are beaten everywhere by the owners, so they cannot bound
    ``n``). Keeping the half-planes of the pieces that ``n`` does not reach makes the
    result exact even when rounding misjudges a tie at a vertex (lines through pixel
    corners). Edges carry the slot across them (-1 on the pixel border; an edge lying
    on a cut takes the cut's tag, see ``_clip._clip_2d``).
    """
    full = hy * hx
    ma = piece.shape[0]  # slots (the pass sizes the scratch)
    tiny = 1e-12 * full
    if want_facets:
        for a in range(nact):
            for b2 in range(nact):
                flen[a, b2] = 0.0
    # iw: [0, ma) slots by increasing power distance at the centre, then the vertex
    # counts, the polygon buffer in use, and the constraints of the slot being inserted
    for a in range(nact):
        p = a
        while p > 0 and sl[0, iw[p - 1]] > sl[0, a]:
            iw[p] = iw[p - 1]
            p -= 1
        iw[p] = a
    for a in range(nact):
        iw[ma + a] = 0
        iw[2 * ma + a] = 0
    first = iw[0]
    iw[ma + first] = _square_rows(hy, hx, poly, 6 * first)
    for on in range(1, nact):
        n = iw[on]
        ncon = 0
        nfree = 0
        for ol in range(on):
            a = iw[ol]
            nv = iw[ma + a]
            if nv == 0:
                continue
            # pd_a <= pd_n  <=>  2 u.(y_n - y_a) <= d_n - d_a   (u = x - c)
            _, cu, cv, rhs = _snap(
                0.0,
                2.0 * (sl[1, n] - sl[1, a]),
                2.0 * (sl[2, n] - sl[2, a]),
                sl[0, n] - sl[0, a],
                1.0,
                hy,
                hx,
            )
            r = 6 * a + 3 * iw[2 * ma + a]
            smin, smax = _cut_values(cu, cv, rhs, poly, r, nv, sl, hy, hx)
            if smax < 0.0:
                # a beats n on the whole of its piece: its half-plane still bounds n,
                # after those of the pieces that n reaches (stored from the end)
                nfree += 1
                sl[3, ma - nfree] = -cu
                sl[4, ma - nfree] = -cv
                sl[5, ma - nfree] = -rhs
                iw[4 * ma - nfree] = a
                continue
            sl[3, ncon] = -cu
            sl[4, ncon] = -cv
            sl[5, ncon] = -rhs
            iw[3 * ma + ncon] = a
            ncon += 1
            if smin > 0.0:
                iw[ma + a] = 0  # n takes the whole piece
            else:
                o = 6 * a + 3 * (1 - iw[2 * ma + a])
                iw[ma + a] = _clip_2d(poly, r, nv, sl, 7, 0.0, n, o)
                iw[2 * ma + a] = 1 - iw[2 * ma + a]
        if ncon == 0:
            continue  # n owns no part of the pixel
        p = 0
        nv = _square_rows(hy, hx, poly, 6 * n)
        for jc in range(ncon + nfree):
            ic = jc if jc < ncon else ma - nfree + (jc - ncon)
            cu = sl[3, ic]
            cv = sl[4, ic]
            rhs = sl[5, ic]
            r = 6 * n + 3 * p
            smin, smax = _cut_values(cu, cv, rhs, poly, r, nv, sl, hy, hx)
            if smax < 0.0:
                continue
            if smin > 0.0:
                nv = 0
                break
            nv = _clip_2d(poly, r, nv, sl, 7, 0.0, iw[3 * ma + ic], 6 * n + 3 * (1 - p))
            p = 1 - p
        iw[ma + n] = nv
        iw[2 * ma + n] = p
    for a in range(nact):
        nv = iw[ma + a]
        if nv < 3:
            for c in range(5):
                piece[a, c] = 0.0
            continue
        r = 6 * a + 3 * iw[2 * ma + a]
        ar, mu, mv, m2 = _moments_rows(poly, r, nv)
        piece[a, 0] = ar
        piece[a, 1] = 0.0
        piece[a, 2] = mu
        piece[a, 3] = mv
        piece[a, 4] = m2
        if not want_facets or ar <= tiny:
            continue  # degenerate piece (an edge or a corner of the pixel)
        # every facet edge is seen from both of its cells (or, on the pixel border,
        # from this pixel and its neighbour): count each sighting with weight 1/2
        for k in range(nv):
            t = int(poly[r + 2, k])
            if t >= 0 and t != a:
                k2 = k + 1 if k + 1 < nv else 0
                du = poly[r, k2] - poly[r, k]
                dv = poly[r + 1, k2] - poly[r + 1, k]
                ln = 0.5 * np.sqrt(du * du + dv * dv)
                if t > a:
                    flen[a, t] += ln
                else:
                    flen[t, a] += ln
    return


@kernel(parallel=False)
def _undominated_2d(act, nact, dq, ii, ky, kx, hy, hx):
    """Drop the candidates of ``act[1:nact]`` that another one beats on the pixel.

    Power distances at the centre of pixel ``ii`` are ``dq[:, ii]``, sites ``ky``,
    ``kx``; ``act[0]`` (the centre's owner) stays. Returns the new count.

    Over a pixel, ``pd_q - pd_r`` moves from its centre value by at most
    ``hy |y_q - y_r| + hx |x_q - x_r|``.
    """
    slack = 1 + 1e-9
    k = 1
    for a in range(1, nact):
        q = act[a]
        beaten = False
        for b2 in range(1, nact):
            r = act[b2]
            if r == q:
                continue
            mg = hy * abs(ky[q] - ky[r]) + hx * abs(kx[q] - kx[r])
            if dq[q, ii] - dq[r, ii] > mg * slack + 1e-300:
                beaten = True
                break
        if not beaten:
            act[k] = q
            k += 1
    return k


@kernel(parallel=False)
def _margin_3d(sites, s, t, hz, hy, hx):
    """Return the most ``pd_s - pd_t`` can change over a voxel (``h . |y_s - y_t|``)."""
    return (
        hz * abs(sites[s, 0] - sites[t, 0])
        + hy * abs(sites[s, 1] - sites[t, 1])
        + hx * abs(sites[s, 2] - sites[t, 2])
    )


@kernel(parallel=False)
def _beaten_3d(q, act, nact, dq, keep, sites, hz, hy, hx):
    """Tell whether a candidate of ``act[1:nact]`` beats ``q`` on the whole voxel."""
    s = keep[q]
    for b2 in range(1, nact):
        r = act[b2]
        if r != q:
            mg = _margin_3d(sites, s, keep[r], hz, hy, hx)
            if dq[q] - dq[r] > mg * (1 + 1e-9) + 1e-300:
                return True
    return False


@kernel(parallel=False)
def _undominated_3d(act, nact, dq, keep, sites, hz, hy, hx):
    """Drop the candidates of ``act[1:nact]`` that another one beats on the voxel.

    As :func:`_undominated_2d`, with power distances ``dq[q]`` at the voxel centre
    and sites ``sites[keep[q]]``.
    """
    k = 1
    for a in range(1, nact):
        if not _beaten_3d(act[a], act, nact, dq, keep, sites, hz, hy, hx):
            act[k] = act[a]
            k += 1
    return k


@kernel(parallel=False)
def _gather_tile_2d(t, cand_ptr, cand_idx, sites, site_w, tb, ti):
    """Copy tile ``t``'s candidates to rows y, x, weight of ``tb`` and ``ti`` (site).

    Returns their count. The prunes then read the candidates in order instead of
    gathering each one from ``sites`` again per box.
    """
    c0 = cand_ptr[t]
    nc = cand_ptr[t + 1] - c0
    for q in range(nc):
        s = cand_idx[c0 + q]
        tb[0, q] = sites[s, 1]
        tb[1, q] = sites[s, 2]
        tb[2, q] = site_w[s]
        ti[q] = s
    return nc


@kernel(parallel=False)
def _prune_2d(n, src, srci, rect, frame, lb, dst, dsti, owner, by_owner):
    """2D ``_kernels._prune`` on gathered rows: candidates that can own a box point.

    The box is the pixel rows ``rect[0]:rect[1]`` and columns ``rect[2]:rect[3]``
    (``frame`` as in ``_sweep_box_2d``: origin at index 1, 2, spacing at 4, 5).
    ``src[:, :n]`` holds y, x and the weight of each candidate (site ``srci``). The
    survivors go to ``dst`` and ``dsti`` (same layout), sorted by owner index when
    ``by_owner`` (the lowest index wins exact ties), else in their order. Returns their
    count; ``lb`` is scratch.
    """
    ylo = frame[1] + rect[0] * frame[4]
    yhi = frame[1] + rect[1] * frame[4]
    xlo = frame[2] + rect[2] * frame[5]
    xhi = frame[2] + rect[3] * frame[5]
    ub = np.inf
    for q in range(n):
        py = src[0, q]
        px = src[1, q]
        w = src[2, q]
        dy = max(ylo - py, 0.0, py - yhi)
        dx = max(xlo - px, 0.0, px - xhi)
        lb[q] = dy * dy + dx * dx - w
        fy = max(abs(py - ylo), abs(py - yhi))
        fx = max(abs(px - xlo), abs(px - xhi))
        ub = min(ub, fy * fy + fx * fx - w)
    lim = ub + 1e-9 * (abs(ub) + 1.0)
    nk = 0
    for q in range(n):
        if lb[q] <= lim:
            s = srci[q]
            p = nk
            if by_owner:
                o = owner[s]
                while p > 0 and owner[dsti[p - 1]] > o:
                    dst[0, p] = dst[0, p - 1]
                    dst[1, p] = dst[1, p - 1]
                    dst[2, p] = dst[2, p - 1]
                    dsti[p] = dsti[p - 1]
                    p -= 1
            dst[0, p] = src[0, q]
            dst[1, p] = src[1, q]
            dst[2, p] = src[2, q]
            dsti[p] = s
            nk += 1
    return nk


@kernel(parallel=False)
def _crowded_2d(best, bd, nk, dq, ii, marg, ky, kx, hy, hx, act, wide, maxa):
    """Active slots of a pixel where more than ``maxa`` competitors pass the test.

    Cells with far sites and large weights can crowd a pixel. Collects them all in
    ``wide``, drops the dominated ones, and copies the first ``min(count, maxa)`` to
    ``act``; returns the count left (> maxa: truncated).
    """
    nw = np.int64(1)
    wide[0] = best
    for q in range(nk):
        if dq[q, ii] - bd <= marg[q] and q != best:
            wide[nw] = q
            nw += 1
    nw = _undominated_2d(wide, nw, dq, ii, ky, kx, hy, hx)
    for a in range(min(nw, maxa)):
        act[a] = wide[a]
    return nw


@kernel(parallel=False)
def _pieces_2d(hz, hy, hx, nact, sl, piece, flen, want_jac, poly, iw):
    """Pieces of a pixel among ``nact >= 2`` active slots (``_split_pixel_2d``).

    Two slots: one cut, the other piece is the rest (a cut that misses the pixel's
    interior gets the facet on the border).
    """
    if nact != 2:
        _split_pixel_2d(hy, hx, nact, sl, piece, flen, want_jac, poly, iw)
        return
    full = hy * hx
    _, cu, cv, rhs = _snap(
        0.0,
        2.0 * (sl[1, 1] - sl[1, 0]),
        2.0 * (sl[2, 1] - sl[2, 0]),
        sl[0, 1] - sl[0, 0],
        hz,
        hy,
        hx,
    )
    ar, mu, mv, m2, ln = _cut_square_2d(hy, hx, cu, cv, rhs)
    if ar <= 1e-12 * full or ar >= full * (1 - 1e-12):
        # the cut misses the pixel's interior
        ln = _border_facet(True, hz, hy, hx, 0.0, cu, cv, rhs)
    piece[0, 0] = ar
    piece[0, 1] = 0.0
    piece[0, 2] = mu
    piece[0, 3] = mv
    piece[0, 4] = m2
    piece[1, 0] = full - ar
    piece[1, 1] = 0.0
    piece[1, 2] = -mu
    piece[1, 3] = -mv
    piece[1, 4] = full * (hy * hy + hx * hx) / 12.0 - m2
    flen[0, 1] = ln


@kernel(parallel=False)
def _add_pieces_2d(out, c, owner, keep, act, nact, piece, sl, rho, want_moments):
    """Add the pieces' masses (and moments about the sites) to ``out[c]`` (N, 5).

    Slot ``a`` is candidate ``act[a]``, site ``keep[act[a]]``, cell
    ``owner[keep[act[a]]]``; ``rho`` is the pixel's density (mass per area).
    """
    for a in range(nact):
        ar = piece[a, 0]
        if ar <= 0.0:
            continue
        o = owner[keep[act[a]]]
        out[c, o, 0] += rho * ar
        if want_moments:
            # offsets of the pixel centre from the site (z: 0, as above)
            py_ = -sl[1, a]
            px_ = -sl[2, a]
            out[c, o, 2] += rho * (ar * py_ + piece[a, 2])
            out[c, o, 3] += rho * (ar * px_ + piece[a, 3])
            out[c, o, 4] += rho * (
                ar * (py_ * py_ + px_ * px_)
                + 2.0 * (py_ * piece[a, 2] + px_ * piece[a, 3])
                + piece[a, 4]
            )


@kernel(parallel=False)
def _sweep_box_2d(
    box, nk, keep, frame, cands, dens, opts, jac_out, out, c, labels, cnt, scratch
):
    """Fractional pass over the pixels ``[j0, j1) x [i0, i1)`` of a 2D raster.

    ``box`` is ``(j0, j1, i0, i1)``. ``keep[:nk]`` are the box's candidates (site
    indices, by increasing owner), with their coordinates y, x and weights in rows 0
    to 2 of ``fs``; ``frame`` is ``(zc, oy, ox, hz, hy, hx)``: the centre's z (every
    site's, in 2D), the origin and the spacing. ``cands`` is ``(sites, owner)``,
    ``dens`` ``(density, umass, extent)``; ``opts`` and ``jac_out`` as in
    ``_fractional_tiles_3d``. Adds masses (and moments) to ``out[c]``, writes the
    centre labels, and appends Jacobian triplets at ``cnt`` to row ``c`` of the
    arrays of ``jac_out`` (when ``want_jac``).
    ``scratch`` is ``(dq, fs, act, iw, sl, piece, flen, poly, wide)``: ``dq``
    (kmax, sub_x) and rows 3 to 6 of ``fs`` float, ``act`` (maxa + sub_x) and ``iw``
    (4 maxa) int64, ``sl`` (8, mv), ``piece`` (maxa, 5), ``flen`` (maxa, maxa),
    ``poly`` (6 maxa, mv), ``wide`` (kmax + 1) int64, ``mv >= maxa + 8``. Whole
    arrays are passed, not views: a view passed to a compiled call costs its
    reference counting.

    Per row, the power distances of all candidates at all centres come first
    (candidates outside, pixels inside); the margins of the competitors against the
    centre's owner are reused along the row while the owner stays the same.

    Returns
    -------
    cnt : the new triplet count; status : 1 if a pixel had more than ``maxa`` active
        cells.
    """
    j0, j1, i0, i1 = box
    _, oy, ox, hz, hy, hx = frame
    sites, owner = cands
    density, umass, extent = dens
    want_moments, want_jac, jac_floor, jac_cap, _ = opts
    dq, fs, act, iw, sl, piece, flen, poly, wide = scratch
    maxa = piece.shape[0]
    status = 0
    w = i1 - i0
    ky = fs[0]
    kx = fs[1]
    kw = fs[2]
    rb = fs[3]
    marg = fs[4]
    xcs = fs[5]
    bestd = fs[6]
    bestq = act[maxa:]
    for ii in range(w):
        xcs[ii] = ox + (i0 + ii + 0.5) * hx
    slack = 1 + 1e-9
    for j in range(j0, j1):
        yc = oy + (j + 0.5) * hy
        for q in range(nk):
            dy = yc - ky[q]
            rb[q] = dy * dy
        for ii in range(w):
            bestd[ii] = np.inf
            bestq[ii] = 0
        # power distances at the centres, candidates outside, pixels inside
        for q in range(nk):
            r = rb[q]
            xq = kx[q]
            wq = kw[q]
            for ii in range(w):
                dx = xcs[ii] - xq
                d = r + dx * dx - wq
                dq[q, ii] = d
                if d < bestd[ii]:
                    bestd[ii] = d
                    bestq[ii] = q
        mq = -1
        for ii in range(w):
            i = i0 + ii
            xc = xcs[ii]
            m = umass if umass >= 0 else density[0, j, i]
            best = bestq[ii]
            bd = bestd[ii]
            sb = keep[best]
            labels[0, j, i] = owner[sb]
            mj = m
            if want_jac and mj < jac_floor:
                mj = jac_floor
            if mj == 0.0:
                continue
            if best != mq:
                # margins of the competitors against this best (reused along the row)
                mq = best
                for q in range(nk):
                    mg = hy * abs(ky[q] - ky[best]) + hx * abs(kx[q] - kx[best])
                    marg[q] = mg * slack + 1e-300
            # active competitors: pd_q - pd_best <= 0 somewhere
            nact = np.int64(1)
            act[0] = best
            over = False
            for q in range(nk):
                if dq[q, ii] - bd <= marg[q] and q != best:
                    if nact < maxa:
                        act[nact] = q
                        nact += 1
                    else:
                        over = True
            if over:
                nact = _crowded_2d(
                    best, bd, nk, dq, ii, marg, ky, kx, hy, hx, act, wide, maxa
                )
                if nact > maxa:
                    nact = maxa
                    status = 1
            if nact >= 3:
                # drop the competitors that another one beats on the whole square
                # (the pairwise test against the best alone lists ~1.5x too many
                # where cells are a few pixels wide; each costs the clipper a slot)
                nact = _undominated_2d(act, nact, dq, ii, ky, kx, hy, hx)
            if nact == 1:
                o = owner[sb]
                out[c, o, 0] += m
                if want_moments:
                    # the z moment stays 0: every site lies in the pixels' plane
                    dy = yc - ky[best]
                    dx = xc - kx[best]
                    out[c, o, 2] += m * dy
                    out[c, o, 3] += m * dx
                    out[c, o, 4] += m * (dy * dy + dx * dx + extent)
                continue
            for a in range(nact):
                q = act[a]
                sl[0, a] = dq[q, ii]
                sl[1, a] = ky[q] - yc
                sl[2, a] = kx[q] - xc
            full = hy * hx
            _pieces_2d(hz, hy, hx, nact, sl, piece, flen, want_jac, poly, iw)
            rhoj = mj / full
            rho = m / full
            _add_pieces_2d(out, c, owner, keep, act, nact, piece, sl, rho, want_moments)
            cnt = _emit_facets(
                want_jac,
                nact,
                act,
                keep,
                flen,
                owner,
                sites,
                rhoj,
                j * labels.shape[2] + i,
                c,
                cnt,
                jac_cap,
                jac_out,
            )
    return cnt, status
