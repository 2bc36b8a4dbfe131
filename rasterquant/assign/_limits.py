"""Step limits of the damped Newton line search (2D fractional quadrature).

A Newton trial step ``psi + tau delta`` is rejected when some cells fall below the mass
floor ``eps0``. Halving ``tau`` costs a full pass per halving. Instead, the masses of
only those cells are followed along the step, each on a small window of pixels around
it with its neighbours as the only competitors, and the largest step that keeps them
above the floor is found by bisection. The next trial (a full pass, which alone decides
acceptance) takes a little less than that step.

Which cells? Those that fell below the floor on a rejected trial, and, before any
trial, the few that the step closes in on most (:func:`crushed_cells`): a single
crushed cell limits the whole step, and finding it first saves the rejected pass.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import prange

from .._jit import kernel
from ._clip import _clip_2d
from ._fractional import MAXV, _cut_value, _moments_rows
from ._fractional import _square_rows as _square
from ._polygons import cell_masses_at

#: each cell's limit is found to tau / 2^BISECTIONS
BISECTIONS = 8
#: ... or to this fraction of the limit, whichever is coarser
LIMIT_RTOL = 0.02
#: cells watched before a trial step: at most this many, whose facets the step closes
#: in by more than CRUSH_RATIO of their half-width (:func:`crushed_cells`)
CRUSH_WATCH = 256
CRUSH_RATIO = 1.0
#: pixels added around a cell's bounding box at the start of the step, beyond the
#: largest move of its facets over the step (at most MAX_PAD pixels)
WINDOW_PAD = 2
MAX_PAD = 12


@kernel(parallel=True)
def _cell_masses(
    cells, t, boxes, nbr_ptr, nbr_idx, pts, psi, delta, density, umass, origin, spacing
):
    """Return the masses of ``cells`` at the weights ``psi + t[k] delta`` (one t each).

    Cell ``cells[k]`` is integrated over the pixel window ``boxes[k]`` (rows
    ``[b0, b1)``, columns ``[b2, b3)``), with ``nbr_idx[nbr_ptr[k]:nbr_ptr[k + 1]]``
    as its only competitors: each pixel square is clipped exactly by the half-planes
    ``pd_i <= pd_j``. ``density`` is (H, W) (unread when ``umass >= 0``).
    """
    m = np.zeros(len(cells))
    hy = spacing[0]
    hx = spacing[1]
    full = hy * hx
    for k in prange(len(cells)):
        i = cells[k]
        poly = np.empty((6, MAXV))
        sl = np.empty((1, MAXV))
        wi = psi[i] + t[k] * delta[i]
        acc = 0.0
        for r in range(boxes[k, 0], boxes[k, 1]):
            yc = origin[0] + (r + 0.5) * hy
            for c in range(boxes[k, 2], boxes[k, 3]):
                rho = umass if umass >= 0 else density[r, c]
                if rho <= 0.0:
                    continue
                xc = origin[1] + (c + 0.5) * hx
                dyi = yc - pts[i, 0]
                dxi = xc - pts[i, 1]
                di = dyi * dyi + dxi * dxi - wi
                nv = _square(hy, hx, poly, 0)
                p = 0
                for q in range(nbr_ptr[k], nbr_ptr[k + 1]):
                    j = nbr_idx[q]
                    dyj = yc - pts[j, 0]
                    dxj = xc - pts[j, 1]
                    dj = dyj * dyj + dxj * dxj - (psi[j] + t[k] * delta[j])
                    # pd_i <= pd_j  <=>  2 u.(y_j - y_i) <= d_j - d_i  (u = x - c)
                    cu = 2.0 * (pts[j, 0] - pts[i, 0])
                    cv = 2.0 * (pts[j, 1] - pts[i, 1])
                    rhs = dj - di
                    reach = 0.5 * (abs(cu) * hy + abs(cv) * hx)
                    if rhs >= reach:
                        continue  # j never beats i in this pixel
                    if rhs < -reach:
                        nv = 0  # j beats i on the whole pixel
                        break
                    for v in range(nv):
                        sl[0, v] = _cut_value(
                            cu, cv, rhs, poly[3 * p, v], poly[3 * p + 1, v], hy, hx
                        )
                    nv = _clip_2d(poly, 3 * p, nv, sl, 0, 0.0, 0.0, 3 * (1 - p))
                    p = 1 - p
                    if nv == 0:
                        break
                if nv >= 3:
                    area = _moments_rows(poly, 3 * p, nv)[0]
                    acc += rho * area / full
        m[k] = acc
    return m


@kernel(parallel=False)
def _closing_ratios(indptr, indices, pts, delta, tau, out):
    """Write to ``out`` how far the step closes each cell in, per its half-width.

    Along the step ``tau delta`` the facet between cells ``i`` and ``j`` (neighbours
    in the CSR pattern ``indptr, indices``) moves towards ``y_i`` by
    ``tau (delta_j - delta_i) / (2 |y_j - y_i|)``. The least-squares affine part of
    ``delta`` around ``y_i`` only translates the cell; ``out[i]`` is the largest move
    left, over half the distance to the nearest neighbour (0 without neighbours).
    """
    n = indptr.shape[0] - 1
    for i in range(n):
        # pass 0: the gradient of delta over the neighbours (normal equations);
        # pass 1: the largest move beyond it
        g00 = g01 = g11 = b0 = b1 = 0.0
        gy = gx = 0.0
        near = np.inf
        move = 0.0
        for sweep in range(2):
            for q in range(indptr[i], indptr[i + 1]):
                j = indices[q]
                ey = pts[j, 0] - pts[i, 0]
                ex = pts[j, 1] - pts[i, 1]
                length = np.sqrt(ey * ey + ex * ex)
                if j == i or length == 0.0:
                    continue
                dd = delta[j] - delta[i]
                if sweep == 1:
                    move = max(move, tau * (dd - gy * ey - gx * ex) / (2.0 * length))
                    continue
                g00 += ey * ey
                g01 += ey * ex
                g11 += ex * ex
                b0 += ey * dd
                b1 += ex * dd
                near = min(near, length)
            if near == np.inf:
                break
            # (a tiny ridge keeps a collinear neighbourhood solvable)
            ridge = 1e-9 * (g00 + g11)
            det = (g00 + ridge) * (g11 + ridge) - g01 * g01
            gy = ((g11 + ridge) * b0 - g01 * b1) / det
            gx = ((g00 + ridge) * b1 - g01 * b0) / det
        out[i] = 0.0 if near == np.inf else move / (0.5 * near)


def crushed_cells(points, jac, masses, delta, tau):
    """Cells the step ``tau delta`` may crush below the floor (2D, not periodic).

    The step closes a cell in when its facets move towards its site by more than a
    translation (see :func:`_closing_ratios`); those closed in by more than
    ``CRUSH_RATIO`` of their half-width, the ``CRUSH_WATCH`` worst of them, are worth
    following on windows before a trial pass. Empty cells are left out (they have no
    window). Returns their indices (int64), sorted, possibly none.
    """
    a = jac.tocsr()
    ratio = np.empty(a.shape[0])
    _closing_ratios(
        a.indptr.astype(np.int64),
        a.indices.astype(np.int64),
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(delta, dtype=np.float64),
        float(tau),
        ratio,
    )
    ratio[masses <= 0] = 0.0
    cand = np.flatnonzero(ratio > CRUSH_RATIO)
    if cand.size > CRUSH_WATCH:
        cand = cand[np.argpartition(ratio[cand], -CRUSH_WATCH)[-CRUSH_WATCH:]]
    return np.sort(cand).astype(np.int64)


def _subset(sel, boxes, nbr_ptr, nbr_idx):
    """Windows and competitor lists of the cells ``sel`` (indices into the lists)."""
    lens = (nbr_ptr[1:] - nbr_ptr[:-1])[sel]
    ptr = np.zeros(len(sel) + 1, np.int64)
    np.cumsum(lens, out=ptr[1:])
    starts = np.repeat(nbr_ptr[:-1][sel] - ptr[:-1], lens)
    idx = nbr_idx[starts + np.arange(ptr[-1])]
    return boxes[sel], ptr, idx


def _label_bounds(lab, cells, n):
    """First and last row and column of the pixels labelled with each of ``cells``.

    Returns four (len(cells),) int64 arrays; a cell without pixels gets rows
    ``(H, -1)`` and columns ``(W, -1)``. One serial sweep of the labels
    (``tests/reference.label_bounds`` is the numpy reference).
    """
    h, w = lab.shape
    k = len(cells)
    slot = np.full(n, -1, np.int64)
    slot[cells] = np.arange(k)
    bounds = np.empty((4, k), np.int64)
    bounds[0] = h
    bounds[1] = -1
    bounds[2] = w
    bounds[3] = -1
    _label_bounds_sweep(lab, slot, bounds)
    return bounds[0], bounds[1], bounds[2], bounds[3]


@kernel(parallel=False)
def _label_bounds_sweep(lab, slot, bounds):
    """Widen ``bounds`` (rows lo_r, hi_r, lo_c, hi_c) by each labelled pixel's slot."""
    for r in range(lab.shape[0]):
        for c in range(lab.shape[1]):
            k = slot[lab[r, c]]
            if k < 0:
                continue
            if r < bounds[0, k]:
                bounds[0, k] = r
            if r > bounds[1, k]:
                bounds[1, k] = r
            if c < bounds[2, k]:
                bounds[2, k] = c
            if c > bounds[3, k]:
                bounds[3, k] = c


def _sliver_windows(raster, lab, nb, empty, site, bounds):
    """Windows of the cells ``empty`` that own no pixel centre (slivers), in place.

    Such a cell need not lie near its site: its window spans its site and the pixels
    of its neighbours (``nb``, the rows of ``empty`` in the cell graph), between
    which it lies. ``bounds`` is ``(lo_r, hi_r, lo_c, hi_c)`` of all the low cells.
    """
    lo_r, hi_r, lo_c, hi_c = bounds
    cells = np.unique(nb.indices)
    slot2 = np.full(raster.n, -1, np.int64)
    slot2[cells] = np.arange(len(cells))
    box2 = _label_bounds(lab, cells, raster.n)
    for e, k in enumerate(empty):
        lo_r[k], hi_r[k] = site[k, 0], site[k, 0]
        lo_c[k], hi_c[k] = site[k, 1], site[k, 1]
        own = slot2[nb.indices[nb.indptr[e] : nb.indptr[e + 1]]]
        own = own[box2[1][own] >= 0]
        if own.size:
            lo_r[k] = min(lo_r[k], box2[0][own].min())
            hi_r[k] = max(hi_r[k], box2[1][own].max())
            lo_c[k] = min(lo_c[k], box2[2][own].min())
            hi_c[k] = max(hi_c[k], box2[3][own].max())


def step_limit(
    raster,
    psi,
    delta,
    tau,
    low,
    labels3,
    jac,
    eps0,
    m_start=None,
    m_end=None,
    boxes=None,
):
    """Largest step in ``(0, tau)`` keeping the ``low`` cells above ``eps0``, or None.

    ``labels3`` and ``jac`` belong to ``psi`` (the start of the step): the labels give
    each cell's window, the Jacobian's 2-ring its competitors. Instead of the labels,
    ``boxes`` (N, 4) may give the pixels each cell meets (first and last row, first
    and last column; from a polygon pass). ``m_start`` and
    ``m_end`` are the masses of the ``low`` cells at the start and at ``tau`` (from the
    full passes; computed on the windows when not given). Returns None where the
    limits do not apply (3D, periodic axes, or no window for a cell).

    Each cell's crossing of the floor is bracketed by ``[0, tau]`` and narrowed by the
    Illinois variant of regula falsi (bisection when that stalls) to ``tau / 2^8``.
    A window must reproduce the cell's mass at the start (``m_start``, when given):
    otherwise it misses part of the cell (a sliver that owns no pixel centre and lies
    away from its site) and the cell's limit is unknown; it then limits nothing, or
    halves the step if the full pass saw it low at ``tau``.
    Only the cells that can still hold the smallest limit are followed: a cell whose
    lower end is past another cell's upper end is dropped. The result is a step at
    which every low cell was seen at or above the floor.
    """
    grid = raster.grid
    if grid.ndim != 2 or grid.any_periodic or jac is None:
        return None
    if labels3 is None and boxes is None:
        return None
    h, w = grid.shape
    low = np.asarray(low, dtype=np.int64)
    nlow = len(low)
    # windows: the cells' bounding boxes at the start of the step, padded
    if labels3 is None:
        lo_r, hi_r, lo_c, hi_c = (boxes[low, a].copy() for a in range(4))
        if (hi_r < lo_r).any():
            return None  # an empty cell: no window (labels would place it)
    else:
        lab = labels3[0]
        lo_r, hi_r, lo_c, hi_c = _label_bounds(lab, low, raster.n)
    spacing = np.array(grid.spacing, dtype=np.float64)
    origin = np.array(grid.origin, dtype=np.float64)
    pts = np.ascontiguousarray(raster.points)
    site = np.floor((pts[low] - origin) / spacing).astype(np.int64)
    site[:, 0] = np.clip(site[:, 0], 0, h - 1)
    site[:, 1] = np.clip(site[:, 1], 0, w - 1)
    # competitors: the 2-ring of the cell graph at the start of the step (one sparse
    # product of the pattern); windows padded by how far the step moves the cell's
    # facets (up to MAX_PAD pixels)
    a = jac.tocsr()
    pat = sp.csr_matrix((np.ones(len(a.indices)), a.indices, a.indptr), shape=a.shape)
    ring1 = pat[low]
    empty = np.flatnonzero(hi_r < 0)
    if empty.size:
        _sliver_windows(
            raster, lab, ring1[empty], empty, site, (lo_r, hi_r, lo_c, hi_c)
        )
    ring2 = (ring1 @ pat).tocsr()
    ring2.sort_indices()
    row2 = np.repeat(np.arange(nlow), np.diff(ring2.indptr))
    keep2 = ring2.indices != low[row2]
    nbr_idx = np.ascontiguousarray(ring2.indices[keep2], dtype=np.int64)
    nbr_ptr = np.zeros(nlow + 1, np.int64)
    np.cumsum(np.bincount(row2[keep2], minlength=nlow), out=nbr_ptr[1:])
    row1 = np.repeat(np.arange(nlow), np.diff(ring1.indptr))
    j1 = ring1.indices
    i1 = low[row1]
    dist = np.sqrt(((pts[j1] - pts[i1]) ** 2).sum(axis=1))
    move = np.where(
        j1 != i1,
        np.abs(delta[i1] - delta[j1]) * tau / (2.0 * np.maximum(dist, 1e-300)),
        0.0,
    )
    shift = np.zeros(nlow)
    np.maximum.at(shift, row1, move)
    hmin = float(spacing.min())
    pads = WINDOW_PAD + np.minimum(np.ceil(shift / hmin), MAX_PAD).astype(np.int64)
    boxes = np.empty((nlow, 4), np.int64)
    boxes[:, 0] = np.clip(lo_r - pads, 0, h)
    boxes[:, 1] = np.clip(hi_r + pads + 1, 0, h)
    boxes[:, 2] = np.clip(lo_c - pads, 0, w)
    boxes[:, 3] = np.clip(hi_c + pads + 1, 0, w)
    dens = raster.values3[0] if raster.umass < 0 else np.zeros((1, 1))
    rest = (pts, psi, delta, dens, raster.umass, origin, spacing)

    polygons = raster.polygon_ready()
    if polygons:
        rho, _, lo_box, hi_box, _ = raster.poly_data()
        geo = np.array([*origin, *spacing])

    def floor_gap(sel, t, win=boxes):
        b, ptr, idx = _subset(sel, win, nbr_ptr, nbr_idx)
        ok = False
        if polygons:
            # each cell as a polygon from its 2-ring (no pixel clipping)
            m, ok = cell_masses_at(
                low[sel], t, ptr, idx, pts, psi, delta, lo_box, hi_box, geo, rho
            )
        if not ok:
            m = _cell_masses(low[sel], t, b, ptr, idx, *rest)
        return m - eps0

    everyone = np.arange(nlow)
    # at the start the cells have not moved: the unpadded windows suffice
    still = boxes.copy()
    still[:, 0] = np.clip(lo_r - WINDOW_PAD, 0, h)
    still[:, 1] = np.clip(hi_r + WINDOW_PAD + 1, 0, h)
    still[:, 2] = np.clip(lo_c - WINDOW_PAD, 0, w)
    still[:, 3] = np.clip(hi_c + WINDOW_PAD + 1, 0, w)
    f_lo = floor_gap(everyone, np.zeros(nlow), still)
    if m_start is not None:
        # a window that misses part of its cell (or a competitor beyond the 2-ring)
        # shows at the start: that cell's limit is not known, and the full pass will
        # judge it instead
        m0 = np.asarray(m_start, dtype=np.float64)
        blind = np.abs(f_lo + eps0 - m0) > 1e-9 * (m0 + eps0)
        f_lo = m0 - eps0
    f_hi = (
        floor_gap(everyone, np.full(nlow, float(tau)))
        if m_end is None
        else np.asarray(m_end, dtype=np.float64) - eps0
    )
    lo = np.zeros(nlow)
    hi = np.full(nlow, float(tau))
    # a cell already at or above the floor at tau (or below it at 0) has no crossing
    # to find: it cannot limit the step (or limits it to 0)
    lo[f_hi >= 0.0] = tau
    hi[f_lo < 0.0] = 0.0
    if m_start is not None:
        # blind cells do not limit the step, unless the full pass saw them low at
        # tau: then they halve it (the line search's rule without limits)
        lo[blind] = np.where(f_hi[blind] < 0.0, 0.5 * tau, tau)
        hi[blind] = lo[blind]
    return _narrow(floor_gap, lo, hi, f_lo, f_hi, tau)


def _narrow(floor_gap, lo, hi, f_lo, f_hi, tau):
    """Narrow each cell's bracket ``[lo, hi]`` of its floor crossing; the smallest.

    ``floor_gap(sel, t)`` gives the mass above the floor of the cells ``sel`` at
    steps ``t``; ``f_lo``, ``f_hi`` are its values at the bracket ends (modified in
    place, as ``lo`` and ``hi``). Regula falsi, Illinois variant, with bisection when
    a bracket did not halve; only the cells that can still hold the smallest limit
    are followed. Returns the largest step at which every cell was seen at or above
    the floor.
    """
    nlow = len(lo)
    width = np.full(nlow, float(tau))
    side = np.zeros(nlow, np.int64)
    resolution = float(tau) * 2.0**-BISECTIONS
    for _ in range(4 * BISECTIONS):
        # the line search steps to 0.9 of the limit: a bracket within a few per
        # cent of its lower end is as good as a narrower one
        live = (hi - lo > np.maximum(resolution, LIMIT_RTOL * lo)) & (lo < hi.min())
        sel = np.flatnonzero(live)
        if sel.size == 0:
            break
        den = f_lo[sel] - f_hi[sel]
        t = np.where(
            den > 0.0,
            lo[sel] + (hi[sel] - lo[sel]) * f_lo[sel] / np.where(den > 0, den, 1.0),
            0.0,
        )
        # bisection when the bracket did not halve on the last step, and always
        # strictly inside the bracket
        mid = 0.5 * (lo[sel] + hi[sel])
        slow = (hi[sel] - lo[sel]) > 0.5 * width[sel]
        t = np.where(slow | (den <= 0.0), mid, t)
        margin = 0.01 * (hi[sel] - lo[sel])
        t = np.clip(t, lo[sel] + margin, hi[sel] - margin)
        width[sel] = hi[sel] - lo[sel]
        f = floor_gap(sel, t)
        ok = f >= 0.0
        # Illinois: the end kept twice in a row has its value halved
        up = sel[ok]
        lo[up] = t[ok]
        f_lo[up] = f[ok]
        f_hi[up[side[up] == 1]] *= 0.5
        side[up] = 1
        dn = sel[~ok]
        hi[dn] = t[~ok]
        f_hi[dn] = f[~ok]
        f_lo[dn[side[dn] == -1]] *= 0.5
        side[dn] = -1
    return float(lo.min())
