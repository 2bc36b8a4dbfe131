"""The polygon and polyhedron clippers shared by the passes that clip (issue 18).

2D: one primitive, :func:`_clip_2d`, clips a convex polygon by a half-plane for the
passes that build cells as polygons (``_polygons``, the windowed cells of
``_limits``, the geometric cells of ``_laguerre``). A polygon lives in three rows of
a float array ``poly``: ``r`` (first coordinate), ``r + 1`` (second) and ``r + 2``
(the tag of the edge leaving each vertex, as a float: the neighbour across it, -1 on
the box). The caller writes the signed values of the vertices against the line into a
row of ``sl`` and the clipper writes the part inside to rows ``o`` to ``o + 2`` (so
several polygons, and both copies of each, share one array).

3D: a polyhedron is held in one of two buffers: ``vf[b, v]`` the coordinates of
vertex ``v`` (and, in the last column, its signed value against the plane being cut),
``fi[b]`` the faces (vertex runs ``fi[b, 0, fi[b, 1, f]:fi[b, 1, f + 1]]``, tags
``fi[b, 2, f]``). The caller classifies the vertices against the half-space
(``sc[0, v]`` -1 inside, 1 outside; the values in ``vf[b, v, -1]``) and the clipper
writes the part inside into the other buffer, vertices shared between faces, the new
face tagged as asked.
"""

from .._jit import kernel

# results of a 3D clip
_CLIP_CUT = 0
_CLIP_OVERFLOW = 1
_CLIP_BROKEN = 2


@kernel(parallel=False)
def _init_box_2d(blo, bhi, poly):
    """Write the rectangle ``[blo, bhi]`` (2,) into rows 0 to 2 of ``poly``.

    Corners ``(blo0, blo1), (bhi0, blo1), (bhi0, bhi1), (blo0, bhi1)``, the 4 edges
    untagged (-1). Returns 4.
    """
    poly[0, 0] = blo[0]
    poly[1, 0] = blo[1]
    poly[0, 1] = bhi[0]
    poly[1, 1] = blo[1]
    poly[0, 2] = bhi[0]
    poly[1, 2] = bhi[1]
    poly[0, 3] = blo[0]
    poly[1, 3] = bhi[1]
    for k in range(4):
        poly[2, k] = -1.0
    return 4


@kernel(parallel=False)
def _init_box_3d(blo, bhi, vf, fi):
    """Write the box ``[blo, bhi]`` (3,) into buffer 0: 8 vertices, 6 untagged faces.

    Vertex ``v`` has coordinate ``bhi[a]`` on axis ``a`` if bit ``a`` of ``v`` is set,
    else ``blo[a]``. Faces are counter-clockwise seen from outside.
    """
    for v in range(8):
        for a in range(3):
            vf[0, v, a] = bhi[a] if (v >> a) & 1 else blo[a]
    ne = 0
    f = 0
    for a in range(3):
        a1 = (a + 1) % 3
        a2 = (a + 2) % 3  # e_a1 x e_a2 = e_a
        for side in range(2):
            base = side << a
            c10 = base | (1 << a1)
            c11 = base | (1 << a1) | (1 << a2)
            c01 = base | (1 << a2)
            fi[0, 1, f] = ne
            fi[0, 0, ne] = base
            # outward +e_a: counter-clockwise in (a1, a2); outward -e_a: clockwise
            fi[0, 0, ne + 1] = c10 if side == 1 else c01
            fi[0, 0, ne + 2] = c11
            fi[0, 0, ne + 3] = c01 if side == 1 else c10
            fi[0, 2, f] = -1
            ne += 4
            f += 1
    fi[0, 1, 6] = ne
    return 8, 6


@kernel(parallel=False)
def _clip_2d(poly, r, nv, sl, srow, lim, tag, o):
    """Clip the polygon in rows ``r`` to ``r + 2`` of ``poly`` by a half-plane.

    Parameters
    ----------
    poly : (R, M) float64
        Polygons, three rows each (module docstring): vertex ``k`` at
        ``(poly[r, k], poly[r + 1, k])``, the edge from ``k`` to ``k + 1`` tagged
        ``poly[r + 2, k]``. Rows ``o`` to ``o + 2`` are written (``o != r``).
    r, nv : int
        First row and vertex count of the input.
    sl : (S, M) float64
        ``sl[srow, k]``: the value ``s_k`` of the cut at vertex ``k``.
    srow : int
    lim : float
        The part where ``s <= lim`` is kept (0, or a rounding tolerance).
    tag : float
        Tag of the new edge along the cut, and of an input edge lying on it (both
        ends at ``s == lim``).
    o : int
        First row of the output.

    Returns
    -------
    int
        The output's vertex count: ``nv + 1`` at most for a convex polygon, ``2 nv``
        whatever the rounding (the caller checks the capacity). A crossing lies at
        ``p_k + t (p_k2 - p_k)``, ``t = s_k / (s_k - s_k2)``; leaving the half-plane
        starts the new edge.

    Notes
    -----
    Rows of one array rather than separate arrays: array views passed to a compiled
    call cost (reference counting) several times the clip itself.
    """
    no = 0
    for k in range(nv):
        k2 = k + 1 if k + 1 < nv else 0
        sp = sl[srow, k]
        sq = sl[srow, k2]
        if sp <= lim:
            poly[o, no] = poly[r, k]
            poly[o + 1, no] = poly[r + 1, k]
            # an edge lying on the cut (a facet on a pixel's border) takes its tag
            poly[o + 2, no] = tag if (sp == lim and sq == lim) else poly[r + 2, k]
            no += 1
            if sq > lim:
                t = sp / (sp - sq)
                poly[o, no] = poly[r, k] + t * (poly[r, k2] - poly[r, k])
                pv = poly[r + 1, k]
                poly[o + 1, no] = pv + t * (poly[r + 1, k2] - pv)
                poly[o + 2, no] = tag
                no += 1
        elif sq <= lim:
            t = sp / (sp - sq)
            poly[o, no] = poly[r, k] + t * (poly[r, k2] - poly[r, k])
            pv = poly[r + 1, k]
            poly[o + 1, no] = pv + t * (poly[r + 1, k2] - pv)
            poly[o + 2, no] = poly[r + 2, k]
            no += 1
    return no


@kernel(parallel=False)
def _clip_3d(vf, fi, sc, src, nv, nf, tag, tag_on=False):
    """Clip the polyhedron in buffer ``src`` into buffer ``1 - src``.

    The caller has classified the vertices (module docstring). Faces with a vertex
    inside are kept and clipped: an edge crossing the plane gets one new vertex, shared
    by the edge's two faces, where one face leaves the half-space and the other enters
    it. Each face's run outside the half-space becomes an edge from the leaving to the
    entering crossing; traversed backwards, these edges chain the crossings into the new
    face(s), tagged ``tag`` (one loop for a convex polyhedron; rounding on degenerate
    input may split it, and every loop is kept). Scratch rows of ``sc``: 1 new index
    of each kept vertex, 2 visited flag and 3 next vertex on the new face (by new
    index), 4-6 crossing edges (ends, new vertex). With ``tag_on``, a kept face whose
    vertices all lie on the plane (value exactly 0) becomes a facet tagged ``tag``.

    Returns
    -------
    code : int
        ``_CLIP_CUT``, ``_CLIP_OVERFLOW`` or ``_CLIP_BROKEN`` (a crossing without a
        successor on the new face: the face structure was inconsistent).
    nv_out, nf_out : int
        Vertex and face counts of the output.
    """
    dst = 1 - src
    maxv = vf.shape[1]
    maxe = fi.shape[2]
    nw = 0
    for v in range(nv):
        if sc[0, v] < 0:
            sc[1, v] = nw
            for m in range(3):
                vf[dst, nw, m] = vf[src, v, m]
            nw += 1
    ncross = 0
    ne = 0
    nfo = 0
    for f in range(nf):
        p0 = fi[src, 1, f]
        sz = fi[src, 1, f + 1] - p0
        k0 = -1  # first vertex inside
        touch = False  # a vertex outside
        on = tag_on  # every vertex on the plane
        for k in range(sz):
            v = fi[src, 0, p0 + k]
            if sc[0, v] < 0:
                if k0 < 0:
                    k0 = k
            else:
                touch = True
            if vf[src, v, 3] != 0.0:
                on = False
        if k0 < 0:
            continue
        if ne + 2 * sz > maxe or nfo + 2 > maxe:
            return _CLIP_OVERFLOW, 0, 0
        start = ne
        if not touch:  # wholly inside
            for k in range(sz):
                fi[dst, 0, ne] = sc[1, fi[src, 0, p0 + k]]
                ne += 1
        else:
            leave = -1
            kc = k0
            for _ in range(sz):
                a = fi[src, 0, p0 + kc]
                kc = kc + 1 if kc + 1 < sz else 0
                c = fi[src, 0, p0 + kc]
                inside = sc[0, a] < 0
                if inside:
                    fi[dst, 0, ne] = sc[1, a]
                    ne += 1
                if sc[0, c] == sc[0, a]:
                    continue
                lo = min(a, c)
                hi = max(a, c)
                w = -1
                for q in range(ncross):
                    if sc[4, q] == lo and sc[5, q] == hi:
                        w = sc[6, q]
                        break
                if w < 0:
                    if nw >= maxv or ncross >= sc.shape[1]:
                        return _CLIP_OVERFLOW, 0, 0
                    ia = a if inside else c
                    ib = c if inside else a
                    t = vf[src, ia, 3] / (vf[src, ia, 3] - vf[src, ib, 3])
                    for m in range(3):
                        vf[dst, nw, m] = vf[src, ia, m] + t * (
                            vf[src, ib, m] - vf[src, ia, m]
                        )
                    sc[2, nw] = 0
                    sc[3, nw] = -1
                    sc[4, ncross] = lo
                    sc[5, ncross] = hi
                    sc[6, ncross] = nw
                    ncross += 1
                    w = nw
                    nw += 1
                fi[dst, 0, ne] = w
                ne += 1
                if inside:
                    leave = w
                else:
                    sc[3, w] = leave  # the new face runs from here to the leaving one
        fi[dst, 1, nfo] = start
        fi[dst, 2, nfo] = tag if on else fi[src, 2, f]
        nfo += 1
    for q in range(ncross):
        w = sc[6, q]
        if sc[2, w]:
            continue
        if ne + ncross > maxe or nfo + 2 > maxe:
            return _CLIP_OVERFLOW, 0, 0
        start = ne
        cur = w
        while True:
            if cur < 0 or sc[2, cur]:
                return _CLIP_BROKEN, 0, 0
            sc[2, cur] = 1
            fi[dst, 0, ne] = cur
            ne += 1
            cur = sc[3, cur]
            if cur == w:
                break
        fi[dst, 1, nfo] = start
        fi[dst, 2, nfo] = tag
        nfo += 1
    fi[dst, 1, nfo] = ne
    return _CLIP_CUT, nw, nfo
