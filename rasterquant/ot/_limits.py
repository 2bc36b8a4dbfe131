"""Step limits of the damped Newton line search (2D fractional quadrature).

A Newton trial step ``psi + tau delta`` is rejected when some cells fall below the mass
floor ``eps0``. Halving ``tau`` costs a full pass per halving. Instead, the masses of
only those cells are followed along the step, each on a small window of pixels around
it with its neighbours as the only competitors, and the largest step that keeps them
above the floor is found by bisection. The next trial (a full pass, which alone decides
acceptance) takes a little less than that step.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import kernel
from ..assign._fractional import MAXV, _clip_rows, _cut_value, _moments_rows
from ..assign._fractional import _square_rows as _square

#: bisection steps of each cell's limit
BISECTIONS = 8
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
                    nv = _clip_rows(poly, 3 * p, nv, sl, 0, 0.0, 3 * (1 - p))
                    p = 1 - p
                    if nv == 0:
                        break
                if nv >= 3:
                    area = _moments_rows(poly, 3 * p, nv)[0]
                    acc += rho * area / full
        m[k] = acc
    return m


def step_limit(raster, psi, delta, tau, low, labels3, jac, eps0):
    """Largest step in ``(0, tau)`` keeping the ``low`` cells above ``eps0``, or None.

    ``labels3`` and ``jac`` belong to ``psi`` (the start of the step): the labels give
    each cell's window, the Jacobian's 2-ring its competitors. Returns None where the
    limits do not apply (3D, periodic axes, or no window for a cell).
    """
    grid = raster.grid
    if grid.ndim != 2 or grid.any_periodic or labels3 is None or jac is None:
        return None
    lab = labels3[0]
    h, w = lab.shape
    low = np.asarray(low, dtype=np.int64)
    # windows: the cells' bounding boxes at the start of the step, padded
    hit = np.isin(lab, low)
    rr, cc = np.nonzero(hit)
    owners = lab[rr, cc]
    pos = np.searchsorted(np.sort(low), owners)
    order = np.argsort(low)
    boxes = np.empty((len(low), 4), np.int64)
    lo_r = np.full(len(low), h)
    hi_r = np.full(len(low), -1)
    lo_c = np.full(len(low), w)
    hi_c = np.full(len(low), -1)
    np.minimum.at(lo_r, order[pos], rr)
    np.maximum.at(hi_r, order[pos], rr)
    np.minimum.at(lo_c, order[pos], cc)
    np.maximum.at(hi_c, order[pos], cc)
    spacing = np.array(grid.spacing, dtype=np.float64)
    origin = np.array(grid.origin, dtype=np.float64)
    pts = raster.points
    site = np.floor((pts[low] - origin) / spacing).astype(np.int64)
    empty = hi_r < 0
    lo_r[empty] = site[empty, 0]
    hi_r[empty] = site[empty, 0]
    lo_c[empty] = site[empty, 1]
    hi_c[empty] = site[empty, 1]
    # competitors: the 2-ring of the cell graph at the start of the step; windows
    # padded by how far the step moves the cell's facets (up to MAX_PAD pixels)
    a = jac.tocsr()
    ptr = [0]
    idx = []
    pads = np.empty(len(low), np.int64)
    hmin = float(spacing.min())
    for k, i in enumerate(low):
        ring1 = a.indices[a.indptr[i] : a.indptr[i + 1]]
        ring1 = ring1[ring1 != i]
        if len(ring1):
            ring2 = np.unique(
                np.concatenate(
                    [a.indices[a.indptr[j] : a.indptr[j + 1]] for j in ring1]
                )
            )
        else:
            ring2 = ring1
        nb = ring2[ring2 != i]
        idx.append(nb)
        ptr.append(ptr[-1] + len(nb))
        shift = 0.0
        if len(ring1):
            dist = np.sqrt(((pts[ring1] - pts[i]) ** 2).sum(axis=1))
            shift = float(
                np.max(
                    np.abs(delta[i] - delta[ring1])
                    * tau
                    / (2.0 * np.maximum(dist, 1e-300))
                )
            )
        pads[k] = WINDOW_PAD + min(int(np.ceil(shift / hmin)), MAX_PAD)
    boxes[:, 0] = np.clip(lo_r - pads, 0, h)
    boxes[:, 1] = np.clip(hi_r + pads + 1, 0, h)
    boxes[:, 2] = np.clip(lo_c - pads, 0, w)
    boxes[:, 3] = np.clip(hi_c + pads + 1, 0, w)
    nbr_ptr = np.array(ptr, dtype=np.int64)
    nbr_idx = np.concatenate(idx).astype(np.int64) if idx else np.zeros(0, np.int64)
    dens = raster.values3[0] if raster.umass < 0 else np.zeros((1, 1))
    args = (
        boxes,
        nbr_ptr,
        nbr_idx,
        np.ascontiguousarray(pts),
        psi,
        delta,
        dens,
        raster.umass,
        origin,
        spacing,
    )
    lo = np.zeros(len(low))
    hi = np.full(len(low), float(tau))
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        ok = _cell_masses(low, mid, *args) >= eps0
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return float(lo.min())
