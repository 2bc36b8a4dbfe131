"""Exact power (Laguerre) cells of a uniform density on a box, computed geometrically.

For a uniform density the masses, moments and Jacobian of the power cells are
quantities of the power diagram restricted to the box, independent of any raster. Each
cell is built on its own as a convex polygon (2D) or polyhedron (3D):

- start from the box on non-periodic axes and from ``[y_i - L/2, y_i + L/2]`` on
  periodic axes (the bisectors with the site's own images, which bound the cell);
- clip by the half-spaces ``2 u . e <= |e|^2 - psi_j + psi_i`` (``u = x - y_i``,
  ``e = y_j - y_i``) of the neighbours ``j`` (periodic images included), nearest first
  in the lifted distance ``D_j = |(y_j, l_j) - (y_i, 0)|``,
  ``l_j = sqrt(max psi - psi_j)`` (the power distance is
  ``|(x, 0) - (y_j, l_j)|^2 - max psi``); every face remembers its neighbour;
- stop at the first neighbour with ``D_j >= R + sqrt(R^2 + l_i^2)``, ``R`` the largest
  distance from ``y_i`` to a vertex of the current cell: for ``x`` in the cell the power
  distance to that neighbour, and to every later one, is at least
  ``(D_j - R)^2 - max psi >= R^2 - psi_i``, which bounds the power distance to ``y_i``.

The neighbours of a cell are the sites (and periodic images) within a Euclidean radius
``r`` of its site, from ``scipy.spatial.cKDTree.query_pairs``; since ``D_j`` is at least
the Euclidean distance, a cell is exact once its stopping distance is ``<= r``. The few
cells that end above ``r`` are rebuilt with ``r`` set to their stopping distance (which
only shrinks as more neighbours clip the cell, so that this round finishes them) or
twice the previous ``r`` if smaller (``scipy.spatial.cKDTree.query_ball_point``).

Each clip classifies every vertex as inside or outside the half-space (a vertex less
than ``EPS_PLANE`` (relative) outside counts as inside, so planes through vertices of
regular point sets do not cut slivers). With that binary classification the face
structure stays consistent whatever the rounding: an edge crossing the plane gets one
new vertex shared by its two faces, and the new 3D face is chained from those crossings
(no angular sort, no tolerance-dependent topology). Volumes and moments come from a
triangle fan (2D) or from the tetrahedra between the site and the fan triangles of
every face (3D); facets below ``EPS_FACET`` (relative) are contacts at a vertex or an
edge and get no Jacobian entry.

Buffers (the layouts of :mod:`._clip`): a polyhedron lives in ``vf`` (2, maxv, 4)
float64 (two copies, ``src`` and ``1 - src``; columns z, y, x and the signed distance
to the current plane) and ``fi`` (2, 3, maxe) int64: rows ``fidx`` (face vertex
loops), ``fptr`` (face offsets) and ``tag`` (the neighbour of each face, -1 for the
box); ``sc`` (7, maxv) int64 is the clipper's scratch. A polygon lives in rows
``3 src`` to ``3 src + 2`` of ``pg`` (7, maxv) float64 (y, x, and the neighbour of
the edge leaving each vertex, -1 for the box), row 6 the signed distances. A cell
that does not fit reports ``_OVERFLOW``; ``laguerre_cells`` rebuilds such cells
with both capacities doubled, up to what a convex cell can need: with ``F`` faces
(at most one per other site or periodic image, plus the ``2 d`` box faces), a
polygon has ``F`` vertices and a polyhedron at most ``2 F - 4`` vertices and
``6 F - 12`` face-vertex incidences, so the clipper (which asks for room for one
crossing per edge, and for twice a face's size) needs ``maxv >= 2 (F + 1)`` and
``maxe >= 8 (F + 1)``; the search stops at twice these.
"""

import itertools

import numba
import numpy as np
from numba import prange
from scipy.spatial import cKDTree

from .._config import N_CHUNKS
from .._jit import kernel
from ._clip import (
    _CLIP_BROKEN,
    _CLIP_OVERFLOW,
    _clip_2d,
    _clip_3d,
    _init_box_2d,
    _init_box_3d,
)
from ._fractional import _polygon_moments, _tetra_moments

__all__ = ["cell_polygons", "laguerre_cells"]

#: starting buffer capacities: vertices of a cell; face-vertex incidences and faces
#: (3D); doubled for the cells that need more
MAXV = 512
MAXE = 2048
#: first-round neighbour radius: the stopping distance of a cell with circumradius
#: RADIUS_SPACINGS * (mean site spacing) and the median lift; it lists all the
#: neighbours that matter for ~98% of the cells of random 3D sets
#: (benchmarks/bench_laguerre.py)
RADIUS_SPACINGS = {2: 1.5, 3: 1.35}
#: room for Jacobian triplets per cell (each facet is written by one of its two cells,
#: so about half the mean face count); more room is made when it runs out
FACETS_PER_CELL = {2: 4, 3: 9}
#: a vertex less than this fraction of |n| R outside a plane n . u = b counts as inside
#: (R: largest distance from the site to a vertex), so that planes through vertices
#: (regular point sets) do not cut slivers
EPS_PLANE = 1e-12
#: facets smaller than this fraction of R (2D) or R^2 (3D) are contacts at a vertex or
#: an edge up to rounding: they get no Jacobian entry
EPS_FACET = 1e-12

# status codes of a cell
_DONE = 0
_MORE_NEIGHBOURS = 1  # sites beyond the listing radius could still clip the cell
_OVERFLOW = 2  # more vertices or faces than the buffers hold
_BROKEN = 3  # a clip met an inconsistent face structure (a bug: never expected)


@kernel(parallel=False)
def _sift_down(hd, hg, k, n):
    """Restore the min-heap ``hd[:n]`` (values ``hg``) below position ``k``."""
    while True:
        c = 2 * k + 1
        if c >= n:
            return
        if c + 1 < n and hd[c + 1] < hd[c]:
            c += 1
        if hd[k] <= hd[c]:
            return
        hd[k], hd[c] = hd[c], hd[k]
        hg[k], hg[c] = hg[c], hg[k]
        k = c


@kernel(parallel=False)
def _chunk_buffers(ptr, r0, r1, maxv, maxe):
    """Scratch for the cells ``r0:r1``: ``(blo, bhi, (hd, hg, vf, fi, sc, pg))``.

    A start box, a heap for the longest neighbour list of these cells (``ptr`` as in
    ``_laguerre_pass``), and cell buffers of capacities ``maxv``, ``maxe``.
    """
    kmax = 1
    for r in range(r0, r1):
        kmax = max(kmax, ptr[r + 1] - ptr[r])
    hd = np.empty(kmax)
    hg = np.empty(kmax, np.int64)
    vf = np.empty((2, maxv, 4))
    fi = np.empty((2, 3, maxe), np.int64)
    sc = np.empty((7, maxv), np.int64)
    pg = np.empty((7, maxv))
    return np.zeros(3), np.zeros(3), (hd, hg, vf, fi, sc, pg)


@kernel(parallel=False)
def _start_box(i, sites, box, blo, bhi):
    """Write the start box of cell ``i``, relative to its site, into ``blo``, ``bhi``.

    ``box`` is ``(lo, hi, period)``: the box on non-periodic axes, half a period
    either side of the site on periodic ones (module docstring).
    """
    lo, hi, period = box
    for a in range(sites.shape[1]):
        if period[a] > 0.0:
            blo[a] = -0.5 * period[a]
            bhi[a] = 0.5 * period[a]
        else:
            blo[a] = lo[a] - sites[i, a]
            bhi[a] = hi[a] - sites[i, a]


@kernel(parallel=False)
def _radius2(ndim, vf, pg, src, nv):
    """Return the largest squared distance from the site to a vertex of the cell."""
    r2 = 0.0
    if ndim == 2:
        for v in range(nv):
            r2 = max(r2, pg[3 * src, v] ** 2 + pg[3 * src + 1, v] ** 2)
    else:
        for v in range(nv):
            r2 = max(r2, vf[src, v, 0] ** 2 + vf[src, v, 1] ** 2 + vf[src, v, 2] ** 2)
    return r2


@kernel(parallel=False)
def _build_cell(i, ndim, nbrs, sites, owner, h2, blo, bhi, bufs):
    """Clip the start box of cell ``i`` by its neighbours, nearest (lifted) first.

    Parameters
    ----------
    i : int
        Site index (``sites[i]`` is the original site).
    ndim : int
        2 or 3.
    nbrs : (k,) int64
        Neighbour candidates, indices into ``sites`` (any order; own images allowed).
    sites : (M, ndim) float64; owner : (M,) int64; h2 : (M,) float64
        Sites then periodic images, the original of each, ``max psi - psi`` of each.
    blo, bhi : (3,) float64
        Start box relative to the site.
    bufs : tuple ``(hd, hg, vf, fi, sc, pg)``
        Heap scratch ``hd`` (>= k,) float64 and ``hg`` (>= k,) int64, and the cell
        buffers (module docstring; see ``_chunk_buffers``); the cell ends in buffer
        ``src``.

    Returns
    -------
    status : int
        ``_DONE`` (also for an empty cell: then ``nv == 0``), ``_OVERFLOW`` or
        ``_BROKEN``. ``_MORE_NEIGHBOURS`` is for the caller to decide from ``dstop``.
    src, nv, nf : int
        Buffer holding the cell, its vertex and face counts (2D: nf = nv edges).
    dstop : float
        Lifted distance beyond which no site can clip the final cell.
    """
    hd, hg, vf, fi, sc, pg = bufs
    if ndim == 2:
        nv = _init_box_2d(blo, bhi, pg)
        nf = nv
    else:
        nv, nf = _init_box_3d(blo, bhi, vf, fi)
    src = 0
    nh = 0
    for q in range(nbrs.shape[0]):
        g = nbrs[q]
        if owner[g] == i:
            continue
        e2 = 0.0
        for a in range(ndim):
            e = sites[g, a] - sites[i, a]
            e2 += e * e
        hd[nh] = np.sqrt(e2 + h2[g])
        hg[nh] = g
        nh += 1
    for k in range(nh // 2 - 1, -1, -1):
        _sift_down(hd, hg, k, nh)
    r2 = _radius2(ndim, vf, pg, src, nv)
    dstop = np.sqrt(r2) + np.sqrt(r2 + h2[i])
    while nh > 0 and hd[0] < dstop:
        g = hg[0]
        nh -= 1
        hd[0] = hd[nh]
        hg[0] = hg[nh]
        _sift_down(hd, hg, 0, nh)
        n0 = 2.0 * (sites[g, 0] - sites[i, 0])
        n1 = 2.0 * (sites[g, 1] - sites[i, 1])
        n2 = 2.0 * (sites[g, 2] - sites[i, 2]) if ndim == 3 else 0.0
        nn = np.sqrt(n0 * n0 + n1 * n1 + n2 * n2)
        b = 0.25 * nn * nn + h2[g] - h2[i]
        tol = EPS_PLANE * nn * np.sqrt(r2)
        if b - tol > nn * np.sqrt(r2):
            continue  # the plane is farther from the site than every vertex
        n_out = 0
        if ndim == 2:
            for v in range(nv):
                s = n0 * pg[3 * src, v] + n1 * pg[3 * src + 1, v] - b
                pg[6, v] = s
                if s > tol:
                    n_out += 1
        else:
            for v in range(nv):
                s = n0 * vf[src, v, 0] + n1 * vf[src, v, 1] + n2 * vf[src, v, 2] - b
                vf[src, v, 3] = s
                if s > tol:
                    sc[0, v] = 1
                    n_out += 1
                else:
                    sc[0, v] = -1
        if n_out == 0:
            continue
        if n_out == nv:
            return _DONE, src, 0, 0, 0.0
        if ndim == 2:
            if 2 * nv > pg.shape[1]:  # room for one crossing per edge
                return _OVERFLOW, src, nv, nf, dstop
            nv = _clip_2d(pg, 3 * src, nv, pg, 6, tol, float(g), 3 * (1 - src))
            nf = nv
        else:
            code, nv, nf = _clip_3d(vf, fi, sc, src, nv, nf, g)
            if code == _CLIP_OVERFLOW:
                return _OVERFLOW, src, nv, nf, dstop
            if code == _CLIP_BROKEN:
                return _BROKEN, src, nv, nf, dstop
        src = 1 - src
        r2 = _radius2(ndim, vf, pg, src, nv)
        dstop = np.sqrt(r2) + np.sqrt(r2 + h2[i])
    return _DONE, src, nv, nf, dstop


@kernel(parallel=False)
def _polygon_out(i, pg, src, nv, sites, owner, out_row, fac_j, fac_val):
    """Area, moments and facets of the final polygon of cell ``i``.

    Writes ``out_row`` (5,) (area, 0, int u, int v, int |u|^2 about the site) and the
    neighbour and ``length / (2 |e|)`` of each edge created by a neighbour into
    ``fac_j``, ``fac_val`` (edges shorter than ``EPS_FACET R`` are contacts at a vertex
    up to rounding: skipped); returns their count.
    """
    r = 3 * src
    r2 = 0.0
    for k in range(nv):
        r2 = max(r2, pg[r, k] ** 2 + pg[r + 1, k] ** 2)
    ar, mu, mv, m2 = _polygon_moments(pg[r], pg[r + 1], nv)
    out_row[0] = ar
    out_row[1] = 0.0
    out_row[2] = mu
    out_row[3] = mv
    out_row[4] = m2
    nfac = 0
    for k in range(nv):
        g = np.int64(pg[r + 2, k])
        if g < 0:
            continue
        k2 = k + 1 if k + 1 < nv else 0
        du = pg[r, k2] - pg[r, k]
        dv = pg[r + 1, k2] - pg[r + 1, k]
        ln = np.sqrt(du * du + dv * dv)
        if ln > EPS_FACET * np.sqrt(r2):
            e0 = sites[g, 0] - sites[i, 0]
            e1 = sites[g, 1] - sites[i, 1]
            fac_j[nfac] = owner[g]
            fac_val[nfac] = ln / (2.0 * np.sqrt(e0 * e0 + e1 * e1))
            nfac += 1
    return nfac


@kernel(parallel=False)
def _polyhedron_out(i, vf, fi, src, nv, nf, sites, owner, out_row, fac_j, fac_val):
    """Volume, moments and facets of the final polyhedron of cell ``i``.

    Writes ``out_row`` (5,) (volume, int u (3 components), int |u|^2 about the site) and
    the neighbour and ``area / (2 |e|)`` of each face created by a neighbour into
    ``fac_j``, ``fac_val`` (faces smaller than ``EPS_FACET R^2`` are contacts at an
    edge or a vertex up to rounding: skipped); returns their count.
    """
    r2 = 0.0
    for v in range(nv):
        r2 = max(r2, vf[src, v, 0] ** 2 + vf[src, v, 1] ** 2 + vf[src, v, 2] ** 2)
    for m in range(5):
        out_row[m] = 0.0
    nfac = 0
    for f in range(nf):
        p0 = fi[src, 1, f]
        a = fi[src, 0, p0]
        az, ay, ax = vf[src, a, 0], vf[src, a, 1], vf[src, a, 2]
        sz = 0.0
        sy = 0.0
        sx = 0.0
        for p in range(p0 + 1, fi[src, 1, f + 1] - 1):
            b = fi[src, 0, p]
            c = fi[src, 0, p + 1]
            bz, by, bx = vf[src, b, 0], vf[src, b, 1], vf[src, b, 2]
            cz, cy, cx = vf[src, c, 0], vf[src, c, 1], vf[src, c, 2]
            v, t0, t1, t2, tq = _tetra_moments(az, ay, ax, bz, by, bx, cz, cy, cx)
            out_row[0] += v
            out_row[1] += t0
            out_row[2] += t1
            out_row[3] += t2
            out_row[4] += tq
            # vector area of the fan triangle: (b - a) x (c - a) / 2
            u0, u1, u2 = bz - az, by - ay, bx - ax
            w0, w1, w2 = cz - az, cy - ay, cx - ax
            sz += u1 * w2 - u2 * w1
            sy += u2 * w0 - u0 * w2
            sx += u0 * w1 - u1 * w0
        g = fi[src, 2, f]
        if g >= 0:
            area = 0.5 * np.sqrt(sz * sz + sy * sy + sx * sx)
            if area > EPS_FACET * r2:
                e0 = sites[g, 0] - sites[i, 0]
                e1 = sites[g, 1] - sites[i, 1]
                e2 = sites[g, 2] - sites[i, 2]
                fac_j[nfac] = owner[g]
                fac_val[nfac] = area / (2.0 * np.sqrt(e0 * e0 + e1 * e1 + e2 * e2))
                nfac += 1
    return nfac


@kernel(parallel=True)
def _laguerre_pass(
    cells,
    ptr,
    nbrs,
    radius,
    sites,
    owner,
    h2,
    box,
    want_moments,
    want_jac,
    n_chunks,
    jac_cap,
    maxv,
    maxe,
):
    """Power cells of the sites ``cells``, each clipped by its listed neighbours.

    Parameters
    ----------
    cells : (n,) int64
        Cells to build (indices of original sites).
    ptr : (n + 1,) int64; nbrs : (ptr[n],) int64
        Neighbours of ``cells[r]``: ``nbrs[ptr[r]:ptr[r + 1]]``, indices into ``sites``,
        every site and image within Euclidean distance ``radius[r]`` of the site.
    radius : (n,) float64
    sites : (M, d) float64; owner : (M,) int64; h2 : (M,) float64
        Original sites (first), then periodic images; the original of each;
        ``max psi - psi`` of each.
    box : tuple ``(lo, hi, period)`` of (d,) float64
        The box, and the period of each periodic axis (0 on the others).
    want_moments, want_jac : bool
    n_chunks, jac_cap : int
        Fixed number of chunks; room for Jacobian triplets per chunk.
    maxv, maxe : int
        Capacities of the cell buffers: vertices; face-vertex incidences (3D) and
        faces or edges (``8 <= maxv <= maxe``, ``maxe >= 24``).

    Returns
    -------
    out : (n, 5) float64
        Volume, first moments about the site (z, y, x), second moment about the site,
        for the cells whose status is ``_DONE`` (zeros otherwise).
    status : (n,) int64
        ``_DONE``, ``_MORE_NEIGHBOURS``, ``_OVERFLOW`` (the caller retries with larger
        buffers) or ``_BROKEN``.
    dstop : (n,) float64
        Stopping distance of each cell: ``> radius`` means ``_MORE_NEIGHBOURS``.
    rows, cols : (n_chunks, jac_cap) int64; vals : (n_chunks, jac_cap) float64
        Jacobian triplets ``rows < cols`` of the done cells, written up to ``jac_cap``
        per chunk (the caller reruns with more room when ``counts`` exceeds it).
    counts : (n_chunks,) int64
    """
    n = cells.shape[0]
    ndim = sites.shape[1]
    out = np.zeros((n, 5))
    status = np.zeros(n, np.int64)
    dstop = np.zeros(n)
    rows = np.empty((n_chunks, jac_cap), np.int64)
    cols = np.empty((n_chunks, jac_cap), np.int64)
    vals = np.empty((n_chunks, jac_cap))
    counts = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        r0, r1 = c * n // n_chunks, (c + 1) * n // n_chunks
        blo, bhi, bufs = _chunk_buffers(ptr, r0, r1, maxv, maxe)
        vf, fi, pg = bufs[2], bufs[3], bufs[5]
        fac_j = np.empty(maxe, np.int64)  # a face has 3 or more incidences
        fac_val = np.empty(maxe)
        cnt = 0
        for r in range(r0, r1):
            i = cells[r]
            _start_box(i, sites, box, blo, bhi)
            nb = nbrs[ptr[r] : ptr[r + 1]]
            st, src, nv, nf, ds = _build_cell(
                i, ndim, nb, sites, owner, h2, blo, bhi, bufs
            )
            if st == _DONE and ds > radius[r]:
                st = _MORE_NEIGHBOURS
            status[r] = st
            dstop[r] = ds
            if st != _DONE or nv == 0:
                continue
            if ndim == 2:
                nfac = _polygon_out(
                    i, pg, src, nv, sites, owner, out[r], fac_j, fac_val
                )
            else:
                nfac = _polyhedron_out(
                    i, vf, fi, src, nv, nf, sites, owner, out[r], fac_j, fac_val
                )
            if not want_moments:
                for m in range(1, 5):
                    out[r, m] = 0.0
            if want_jac:
                # each facet is written by one of its two cells: the lower index when
                # i + j is odd, the higher one when it is even (balances the chunks)
                for f in range(nfac):
                    j = fac_j[f]
                    if ((i + j) % 2 == 1) != (i < j):
                        continue
                    if cnt < jac_cap:
                        rows[c, cnt] = min(i, j)
                        cols[c, cnt] = max(i, j)
                        vals[c, cnt] = fac_val[f]
                    cnt += 1
        counts[c] = cnt
    return out, status, dstop, rows, cols, vals, counts


@kernel(parallel=True)
def _vertex_pass(cells, ptr, nbrs, radius, sites, owner, h2, box, cap, maxv, maxe):
    """Vertices of the 2D power cells ``cells`` clipped to the box (no periodic axes).

    Arguments as for ``_laguerre_pass`` (``n_chunks`` is ``N_CHUNKS``); ``cap`` is the
    room for vertices per chunk.

    Returns
    -------
    status, dstop : (n,) int64, (n,) float64
        As for ``_laguerre_pass``.
    nvert : (n,) int64
        Vertex count of each done cell (0 for an empty one).
    verts : (n_chunks, cap, 2) float64
        The done cells' vertices (row, col), in the order of ``cells`` within each
        chunk, written up to ``cap`` per chunk.
    counts : (n_chunks,) int64
        Vertices of each chunk (the caller reruns with more room above ``cap``).
    """
    n = cells.shape[0]
    n_chunks = N_CHUNKS
    status = np.zeros(n, np.int64)
    dstop = np.zeros(n)
    nvert = np.zeros(n, np.int64)
    verts = np.empty((n_chunks, cap, 2))
    counts = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        r0, r1 = c * n // n_chunks, (c + 1) * n // n_chunks
        blo, bhi, bufs = _chunk_buffers(ptr, r0, r1, maxv, maxe)
        pg = bufs[5]
        cnt = 0
        for r in range(r0, r1):
            i = cells[r]
            _start_box(i, sites, box, blo, bhi)
            nb = nbrs[ptr[r] : ptr[r + 1]]
            st, src, nv, _, ds = _build_cell(i, 2, nb, sites, owner, h2, blo, bhi, bufs)
            if st == _DONE and ds > radius[r]:
                st = _MORE_NEIGHBOURS
            status[r] = st
            dstop[r] = ds
            if st != _DONE:
                continue
            nvert[r] = nv
            for k in range(nv):
                if cnt < cap:
                    verts[c, cnt, 0] = pg[3 * src, k] + sites[i, 0]
                    verts[c, cnt, 1] = pg[3 * src + 1, k] + sites[i, 1]
                cnt += 1
        counts[c] = cnt
    return status, dstop, nvert, verts, counts


@kernel(parallel=False)
def _neighbour_lists(pairs, n):
    """Neighbour lists of the ``n`` original sites from the pairs ``a < b`` of sites.

    Parameters
    ----------
    pairs : (P, 2) int64
        Pairs of indices into the sites (originals first, then images).
    n : int

    Returns
    -------
    ptr : (n + 1,) int64; nbrs : (ptr[n],) int64
        Neighbours of original ``i``: ``nbrs[ptr[i]:ptr[i + 1]]``.
    """
    ptr = np.zeros(n + 1, np.int64)
    for p in range(pairs.shape[0]):
        if pairs[p, 0] < n:
            ptr[pairs[p, 0] + 1] += 1
        if pairs[p, 1] < n:
            ptr[pairs[p, 1] + 1] += 1
    for i in range(n):
        ptr[i + 1] += ptr[i]
    fill = ptr[:n].copy()
    nbrs = np.empty(ptr[n], np.int64)
    for p in range(pairs.shape[0]):
        a = pairs[p, 0]
        b = pairs[p, 1]
        if a < n:
            nbrs[fill[a]] = b
            fill[a] += 1
        if b < n:
            nbrs[fill[b]] = a
            fill[b] += 1
    return ptr, nbrs


def _check_inputs(points, weights, lo, hi, periodic):
    """Validate and convert the inputs of ``laguerre_cells``.

    Returns float64 copies of ``points``, ``weights``, ``lo``, ``hi`` and a bool array
    ``periodic``; raises ValueError naming the argument otherwise.
    """
    pts = np.array(points, dtype=np.float64, order="C")
    if pts.ndim != 2 or pts.shape[1] not in (2, 3) or pts.shape[0] == 0:
        raise ValueError(
            "points must have shape (N, d) with N >= 1 and d in (2, 3), got "
            f"{pts.shape}"
        )
    n, d = pts.shape
    if not np.isfinite(pts).all():
        raise ValueError("points contains NaN or inf; expected finite coordinates")
    psi = np.array(weights, dtype=np.float64, order="C")
    if psi.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {psi.shape}")
    if not np.isfinite(psi).all():
        raise ValueError("weights contains NaN or inf; expected finite values")
    box = []
    for name, val in (("lo", lo), ("hi", hi)):
        arr = np.array(val, dtype=np.float64)
        if arr.shape != (d,):
            raise ValueError(f"{name} must have shape ({d},), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(
                f"{name} contains NaN or inf: {arr}; expected finite bounds"
            )
        box.append(arr)
    lo, hi = box
    if not (hi > lo).all():
        raise ValueError(f"hi must exceed lo on every axis, got lo={lo}, hi={hi}")
    per = np.asarray(periodic)
    if per.dtype != np.bool_ or per.shape not in ((), (d,)):
        raise ValueError(
            f"periodic must be a bool or a ({d},) bool array, got {per.dtype} array of "
            f"shape {per.shape}"
        )
    per = np.broadcast_to(per, (d,)).copy()
    outside = ((pts < lo) | (pts > hi)).any(axis=1)
    if outside.any():
        r = int(np.argmax(outside))
        raise ValueError(
            f"points must lie in the box [lo, hi] = [{lo}, {hi}], row {r} is {pts[r]}"
        )
    return pts, psi, lo, hi, per


def _check_distinct(pts):
    """Raise ValueError if two rows of ``pts`` (wrapped on periodic axes) coincide."""
    order = np.lexsort(pts.T[::-1])
    same = np.flatnonzero((np.diff(pts[order], axis=0) == 0).all(axis=1))
    if same.size:
        a, b = sorted((int(order[same[0]]), int(order[same[0] + 1])))
        raise ValueError(
            f"points must be distinct, rows {a} and {b} coincide at {pts[a]} (periodic "
            "axes compared modulo the period)"
        )


def _ghosts(pts, lo, hi, period, margin):
    """Sites plus their periodic images within ``margin`` of the box.

    Parameters
    ----------
    pts : (N, d) float64
        Sites, wrapped into ``[lo, hi)`` on periodic axes.
    lo, hi, period : (d,) float64
        The box and the period of each periodic axis (0 elsewhere).
    margin : float
        Images whose coordinates lie in ``[lo - margin, hi + margin]`` on every periodic
        axis are kept: every image within ``margin`` of a point of the box, and all the
        images that can matter (those shifted by at most one period, see
        ``laguerre_cells``) once ``margin`` reaches the period.

    Returns
    -------
    sites : (M, d) float64
        The sites first, then the kept images.
    owner : (M,) int64
        Index of the original site of each row.
    """
    n, d = pts.shape
    per = period > 0
    axes = [(-1, 0, 1) if p else (0,) for p in per]
    shifts = np.array(np.meshgrid(*axes, indexing="ij")).reshape(d, -1).T
    shifts = shifts[np.abs(shifts).sum(axis=1) > 0]
    sites = [pts]
    owner = [np.arange(n, dtype=np.int64)]
    for s in shifts:
        img = pts + s * period
        keep = ((img >= lo - margin) & (img <= hi + margin))[:, per].all(axis=1)
        sites.append(img[keep])
        owner.append(np.flatnonzero(keep).astype(np.int64))
    return np.concatenate(sites), np.concatenate(owner)


def _start_radius(lo, hi, n, h2, spacings):
    """First-round neighbour radius of ``n`` cells (see ``RADIUS_SPACINGS``), (n,)."""
    rc = spacings * (np.prod(hi - lo) / n) ** (1.0 / len(lo))
    return np.full(n, rc + np.sqrt(rc * rc + np.median(h2)))


def _listing(pts, lo, hi, period, radius, todo, first):
    """Neighbour lists of the cells ``todo`` within their ``radius`` (one round).

    The ``first`` round (``todo`` all the sites, one radius) lists every pair at once;
    later rounds query each open cell with its own radius. Returns ``(sites, owner,
    ptr, nbrs)``: sites and periodic images, the original of each, and the lists
    (``nbrs[ptr[r]:ptr[r + 1]]`` for ``todo[r]``).
    """
    n = pts.shape[0]
    sites, owner = _ghosts(pts, lo, hi, period, radius.max())
    tree = cKDTree(sites)
    reach = radius * (1.0 + 1e-9)  # list a little more than the radius
    if first:
        pairs = tree.query_pairs(reach[0], output_type="ndarray")
        ptr, nbrs = _neighbour_lists(np.asarray(pairs, dtype=np.int64), n)
        return sites, owner, ptr, nbrs
    lists = tree.query_ball_point(
        pts[todo], reach, return_sorted=False, workers=numba.get_num_threads()
    )
    ptr = np.zeros(todo.size + 1, np.int64)
    ptr[1:] = np.cumsum([len(x) for x in lists])
    nbrs = np.fromiter(itertools.chain.from_iterable(lists), np.int64, ptr[-1])
    return sites, owner, ptr, nbrs


_STATUS_ERRORS = {
    _OVERFLOW: (
        "cell {i} needs more than {maxv} vertices or {maxe} face-vertex incidences, "
        "more than a convex cell among {n} sites can have (an internal error of "
        "rasterquant/assign/_laguerre.py; please report the input)"
    ),
    _BROKEN: (
        "cell {i}: a clip met an inconsistent face structure (an internal error of "
        "rasterquant/assign/_laguerre.py; please report the input)"
    ),
}


def _run_pass(kernel, args, cap, maxv, maxe):
    """Run a pass ``kernel(*args, cap, maxv, maxe)`` of one round.

    Its last result is the count of output rows per chunk: a chunk that needed more
    than ``cap`` rows makes the pass run again with room for all of them.
    """
    res = kernel(*args, cap, maxv, maxe)
    if res[-1].max() > cap:
        res = kernel(*args, int(res[-1].max()), maxv, maxe)
    return res


def _check_status(status, todo, buffers, caps, n):
    """Raise RuntimeError for a broken cell, or one that outgrew every buffer."""
    can_grow = buffers[0] < caps[0] or buffers[1] < caps[1]
    for code, msg in _STATUS_ERRORS.items():
        bad = np.flatnonzero(status == code)
        if bad.size and not (code == _OVERFLOW and can_grow):
            i = int(todo[bad[0]])
            raise RuntimeError(msg.format(i=i, maxv=buffers[0], maxe=buffers[1], n=n))


def _next_round(status, dstop, radius, todo, maxv, maxe):
    """Cells left for the next round: ``(radius, todo, maxv, maxe)``.

    The stopping distance only shrinks as more neighbours clip a cell: listing
    everything within it (plus rounding room) finishes the cell; the radius at most
    doubles per round, as a cell that the first neighbours left open (its stopping
    distance spans the box) usually closes much sooner. A cell that overflowed keeps
    its radius and is rebuilt with twice the buffer capacities.
    """
    grow = status == _OVERFLOW
    if grow.any():
        maxv, maxe = 2 * maxv, 2 * maxe
    done = status == _DONE
    wider = np.minimum(dstop * (1.0 + 1e-9), 2.0 * radius)
    return np.where(grow, radius, wider)[~done], todo[~done], maxv, maxe


def _check_buffers(buffers):
    """Validate the starting capacities ``(maxv, maxe)``; returns them as ints."""
    b = np.asarray(buffers)
    if b.shape != (2,) or b.dtype.kind not in "iu" or b[0] < 8 or b[1] < max(b[0], 24):
        raise ValueError(
            f"buffers must be two integers (maxv, maxe) with 8 <= maxv <= maxe and "
            f"maxe >= 24, got {buffers!r}"
        )
    return int(b[0]), int(b[1])


def laguerre_cells(
    points,
    weights,
    lo,
    hi,
    periodic,
    want_moments=True,
    want_jac=True,
    *,
    buffers=(MAXV, MAXE),
    radius_spacings=None,
):
    """Exact power cells of a uniform density on a box: volumes, moments, Jacobian.

    Parameters
    ----------
    points : (N, d) array_like of float
        Sites, ``d`` in (2, 3), inside the box ``[lo, hi]``, pairwise distinct (on
        periodic axes, also modulo the period).
    weights : (N,) array_like of float
        Weights ``psi``.
    lo, hi : (d,) array_like of float
        Corners of the box, ``hi > lo``.
    periodic : bool or (d,) array_like of bool
        Periodicity of each axis (period ``hi - lo``).
    want_moments : bool, optional
        Compute the first and second moments (else those columns are zero).
    want_jac : bool, optional
        Compute the Jacobian triplets (else they are empty).
    buffers : (int, int), optional
        Starting capacities of the per-cell clip buffers: vertices, face-vertex
        incidences. Cells that do not fit are rebuilt with both doubled; the results
        do not depend on this (tests start small to exercise the retries).
    radius_spacings : float, optional
        First-round neighbour radius in mean site spacings (default
        ``RADIUS_SPACINGS[d]``); the results do not depend on it (tests start small
        to exercise the retry rounds).

    Returns
    -------
    out : (N, 5) ndarray of float64
        Per cell: volume, first moment about the site ``int (x - y_i) dx`` along
        (z, y, x) -- in 2D the z entry is 0 and (y, x) are the two axes of
        ``points`` --, second moment about the site ``int |x - y_i|^2 dx``.
    rows, cols : (P,) ndarray of int64
        Pairs ``rows < cols`` of cells sharing a facet of positive area, sorted.
    vals : (P,) ndarray of float64
        ``facet_area / (2 |y_i - y_j|)`` with ``y_j`` the image of ``j`` that creates
        the facet. A pair may appear several times on periodic boxes (one triplet per
        facet; sum them).

    Raises
    ------
    ValueError
        Bad shapes, non-finite values, points outside the box or coinciding, ``d`` not
        2 or 3, bad ``buffers``.
    RuntimeError
        Internal errors: a clip met an inconsistent face structure, or a cell needed
        buffers larger than a convex cell among these sites can fill.

    Notes
    -----
    Cell ``i`` is ``{x in box : |x - y_i|^2 - psi_i <= |x - y_j|^2 - psi_j for all j}``
    where on periodic axes ``y_j`` ranges over all images (those of ``y_i`` included).
    The Jacobian of the volumes is ``d vol_i / d psi_j = -vals`` for the pair (i, j)
    (summed over its facets) and ``d vol_i / d psi_i = sum_{j != i} vals_ij``, i.e.
    ``J = diag(A 1) - A`` with ``A`` the symmetric matrix of the summed triplets.
    Each cell is clipped from the box by its neighbours in increasing lifted distance
    until no farther site can cut it (see the module docstring). Neighbours are the
    sites and periodic images within a radius of the site, from a kd-tree
    (``scipy.spatial.cKDTree``), the radius being enlarged for the few cells whose
    stopping test fails. The cells that outgrow the clip buffers (cells with hundreds
    of faces, as for points on a curve) are rebuilt with buffers twice as large, up to
    the size that the most complex convex cell among ``N`` sites (and their periodic
    images) can need. Cost: about 10 microseconds per cell and thread in 3D for
    random points, a few in 2D. Facets smaller than ``EPS_FACET`` times ``R`` (2D) or
    ``R^2`` (3D), ``R`` the distance from the site to its farthest cell vertex, are
    contacts up to rounding and get no triplet. Results do not depend on the number
    of threads.

    Examples
    --------
    >>> import numpy as np
    >>> out, rows, cols, vals = laguerre_cells(
    ...     [[0.5, 0.25], [0.5, 0.75]], [0.0, 0.0], [0, 0], [1, 1], False)
    >>> out[:, 0]
    array([0.5, 0.5])
    >>> rows, cols, vals
    (array([0]), array([1]), array([1.]))
    """
    pts, psi, lo, hi, per = _check_inputs(points, weights, lo, hi, periodic)
    maxv, maxe = _check_buffers(buffers)
    n, d = pts.shape
    # faces of a cell: at most one per other site or image (shifted by at most one
    # period on each periodic axis), plus the box; the capacities that such a cell
    # can need, with a factor 2 for rounding (module docstring)
    faces = n * 3 ** int(per.sum()) - 1 + 2 * d
    maxv_cap, maxe_cap = 4 * (faces + 1), 16 * (faces + 1)
    period = np.where(per, hi - lo, 0.0)
    pts = np.where(per & (pts >= hi), pts - period, pts)
    _check_distinct(pts)
    h2 = psi.max() - psi
    if radius_spacings is None:
        radius_spacings = RADIUS_SPACINGS[d]
    radius = _start_radius(lo, hi, n, h2, radius_spacings)
    out = np.zeros((n, 5))
    trip = []
    todo = np.arange(n, dtype=np.int64)
    first = True
    while todo.size:
        sites, owner, ptr, nbrs = _listing(pts, lo, hi, period, radius, todo, first)
        first = False
        args = (
            todo,
            ptr,
            nbrs,
            radius,
            sites,
            owner,
            h2[owner],
            (lo, hi, period),
            want_moments,
            want_jac,
            N_CHUNKS,
        )
        cap = FACETS_PER_CELL[d] * (-(-todo.size // N_CHUNKS)) + 64
        res, status, dstop, rows, cols, vals, counts = _run_pass(
            _laguerre_pass, args, cap, maxv, maxe
        )
        _check_status(status, todo, (maxv, maxe), (maxv_cap, maxe_cap), n)
        done = status == _DONE
        out[todo[done]] = res[done]
        if want_jac:
            trip.extend(
                (rows[c, : counts[c]], cols[c, : counts[c]], vals[c, : counts[c]])
                for c in range(N_CHUNKS)
            )
        radius, todo, maxv, maxe = _next_round(status, dstop, radius, todo, maxv, maxe)
    if not want_jac or not trip:
        return out, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    rows = np.concatenate([t[0] for t in trip])
    cols = np.concatenate([t[1] for t in trip])
    vals = np.concatenate([t[2] for t in trip])
    order = np.lexsort((cols, rows))
    return out, rows[order], cols[order], vals[order]


def cell_polygons(points, weights, lo, hi):
    """Exact 2D power cells clipped to a box, as polygons.

    Parameters
    ----------
    points : (N, 2) array_like of float
        Sites (row, col), inside the box, pairwise distinct.
    weights : (N,) array_like of float
        Power weights ``psi``.
    lo, hi : (2,) array_like of float
        Corners of the box, ``hi > lo``.

    Returns
    -------
    list of (k_i, 2) ndarray of float64
        The vertices of cell ``i`` in (row, col) order, counter-clockwise in
        ``(x, y) = (col, row)``; an empty cell is a (0, 2) array.

    Raises
    ------
    ValueError
        Bad shapes, non-finite values, points outside the box or coinciding.

    Notes
    -----
    Cell ``i`` is ``{x in box : |x - y_i|^2 - psi_i <= |x - y_j|^2 - psi_j}``, built
    by the clipper of :func:`laguerre_cells` (same neighbour search and rounding
    rules), so that the areas of the polygons are the volumes it returns.

    Examples
    --------
    >>> polys = cell_polygons([[0.5, 0.25], [0.5, 0.75]], [0.0, 0.0], [0, 0], [1, 1])
    >>> [p.shape for p in polys]
    [(4, 2), (4, 2)]
    """
    pts, psi, lo, hi, _ = _check_inputs(points, weights, lo, hi, False)
    n, d = pts.shape
    if d != 2:
        raise ValueError(f"points must have shape (N, 2), got {pts.shape}")
    _check_distinct(pts)
    maxv, maxe = MAXV, MAXE
    caps = (4 * (n + 4), 16 * (n + 4))  # (as laguerre_cells: n - 1 + 4 faces)
    period = np.zeros(2)
    h2 = psi.max() - psi
    radius = _start_radius(lo, hi, n, h2, RADIUS_SPACINGS[d])
    polys = [None] * n
    todo = np.arange(n, dtype=np.int64)
    first = True
    while todo.size:
        sites, owner, ptr, nbrs = _listing(pts, lo, hi, period, radius, todo, first)
        first = False
        args = (todo, ptr, nbrs, radius, sites, owner, h2[owner], (lo, hi, period))
        cap = 8 * (-(-todo.size // N_CHUNKS)) + 64
        status, dstop, nvert, verts, _ = _run_pass(_vertex_pass, args, cap, maxv, maxe)
        _check_status(status, todo, (maxv, maxe), caps, n)
        bounds = np.arange(N_CHUNKS + 1) * todo.size // N_CHUNKS
        for c in range(N_CHUNKS):
            start = 0
            for r in range(bounds[c], bounds[c + 1]):
                k = nvert[r]
                if status[r] == _DONE:
                    # (row, col) counter-clockwise is clockwise in (col, row)
                    polys[todo[r]] = verts[c, start : start + k][::-1].copy()
                start += k
        radius, todo, maxv, maxe = _next_round(status, dstop, radius, todo, maxv, maxe)
    return polys
