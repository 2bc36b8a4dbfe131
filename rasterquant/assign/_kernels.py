"""Compiled passes over the raster: labels (+ masses), moments and face sums.

All kernels work on (D, H, W) arrays (2D rasters are (1, H, W)) in physical coordinates:
pixel ``(k, j, i)`` has centre ``origin + ((k, j, i) + 0.5) * spacing``. Sums indexed by
a label go to per-chunk buffers reduced by the caller in a fixed order, so results do
not depend on the thread count. ``umass >= 0`` means a uniform density of that pixel
mass (``density`` is then a dummy and is not read).
"""

import numpy as np
from numba import prange

from .._jit import kernel


@kernel(parallel=False)
def _spread(k, n):
    """Chunk run as the ``k``-th iteration of ``prange(n)``: ``k`` bit-reversed.

    ``prange`` hands each thread a contiguous run of iterations; chunks are contiguous
    runs of tiles, so a thread would get one region of the image (the face of a
    portrait, say) and the others would wait for it. Bit reversal (``n`` a power of
    two, else the identity) gives each thread chunks spread over the whole image.
    """
    k = np.int64(k)
    n = np.int64(n)
    if n & (n - 1) != 0:
        return k
    c = np.int64(0)
    m = n >> 1
    while m > 0:
        c = (c << 1) | (k & 1)
        k >>= 1
        m >>= 1
    return c


@kernel(parallel=False)
def _tile_ranges(t, tiling):
    """Voxel ranges ``(k0, k1, j0, j1, i0, i1)`` of tile ``t`` (flat, z-major)."""
    shape3, tile, n_tiles, _ = tiling
    tz = t // (n_tiles[1] * n_tiles[2])
    ty = (t // n_tiles[2]) % n_tiles[1]
    tx = t % n_tiles[2]
    return (
        tz * tile[0],
        min((tz + 1) * tile[0], shape3[0]),
        ty * tile[1],
        min((ty + 1) * tile[1], shape3[1]),
        tx * tile[2],
        min((tx + 1) * tile[2], shape3[2]),
    )


@kernel(parallel=False)
def _bound_site(lb, q, sites, site_w, s, zlo, zhi, ylo, yhi, xlo, xhi, ub):
    """Exact bounds of site ``s``'s power distance over a box; return the new ``ub``.

    The box is ``[zlo, zhi] x [ylo, yhi] x [xlo, xhi]``; ``sites`` (N, 3), ``site_w``
    (N,). Writes the least power distance to ``lb[q]`` and returns the smaller of
    ``ub`` and the greatest one.
    """
    pz = sites[s, 0]
    py = sites[s, 1]
    px = sites[s, 2]
    dz = max(zlo - pz, 0.0, pz - zhi)
    dy = max(ylo - py, 0.0, py - yhi)
    dx = max(xlo - px, 0.0, px - xhi)
    lb[q] = dz * dz + dy * dy + dx * dx - site_w[s]
    fz = max(abs(pz - zlo), abs(pz - zhi))
    fy = max(abs(py - ylo), abs(py - yhi))
    fx = max(abs(px - xlo), abs(px - xhi))
    u = fz * fz + fy * fy + fx * fx - site_w[s]
    if u < ub:
        return u
    return ub


@kernel(parallel=False)
def _prune(
    t, cand_ptr, cand_idx, sites, site_w, owner, zlo, zhi, ylo, yhi, xlo, xhi, lb, keep
):
    """Candidates of tile ``t`` that can own a point of the box; returns their count.

    Exact bounds of each candidate's power distance over the box
    ``[zlo, zhi] x [ylo, yhi] x [xlo, xhi]``: a candidate whose lower bound exceeds the
    smallest upper bound never wins. The survivors are written to ``keep`` sorted by
    owner index (the lowest index wins exact ties); ``lb`` is scratch.
    """
    c0 = cand_ptr[t]
    nc = cand_ptr[t + 1] - c0
    ub = np.inf
    for q in range(nc):
        s = cand_idx[c0 + q]
        ub = _bound_site(lb, q, sites, site_w, s, zlo, zhi, ylo, yhi, xlo, xhi, ub)
    lim = ub + 1e-9 * (abs(ub) + 1.0)
    nk = 0
    for q in range(nc):
        if lb[q] <= lim:
            s = cand_idx[c0 + q]
            p = nk
            while p > 0 and owner[keep[p - 1]] > owner[s]:
                keep[p] = keep[p - 1]
                p -= 1
            keep[p] = s
            nk += 1
    return nk


@kernel(parallel=False)
def _sweep_box(box, t, geom, cands, dens, labels, out_c, scratch):
    """Label the pixels of one box from the candidates of tile ``t``; add masses.

    ``box`` is ``(k0, k1, j0, j1, i0, i1)``, ``geom`` ``(spacing3, origin3)``,
    ``cands`` ``(sites, site_w, owner, cand_ptr, cand_idx)`` and ``dens``
    ``(density, umass)`` as for :func:`_assign_tiles`. ``out_c`` (N, 1) receives the
    masses, or (N, 5) the masses and the moments about the owning site as in
    :func:`_cell_moments`; ``scratch`` is ``(keep, lb, base, cx, cown, best, bestl)``.
    """
    k0, k1, j0, j1, i0, i1 = box
    spacing3, origin3 = geom
    sites, site_w, owner, cand_ptr, cand_idx = cands
    density, umass = dens
    keep, lb, base, cx, cown, best, bestl = scratch
    zlo = origin3[0] + (k0 + 0.5) * spacing3[0]
    zhi = origin3[0] + (k1 - 0.5) * spacing3[0]
    ylo = origin3[1] + (j0 + 0.5) * spacing3[1]
    yhi = origin3[1] + (j1 - 0.5) * spacing3[1]
    xlo = origin3[2] + (i0 + 0.5) * spacing3[2]
    xhi = origin3[2] + (i1 - 0.5) * spacing3[2]
    nk = _prune(
        t,
        cand_ptr,
        cand_idx,
        sites,
        site_w,
        owner,
        zlo,
        zhi,
        ylo,
        yhi,
        xlo,
        xhi,
        lb,
        keep,
    )
    mom = out_c.shape[1] == 5
    if nk == 1 and not mom:
        lab = owner[keep[0]]
        acc = 0.0
        for k in range(k0, k1):
            for j in range(j0, j1):
                for i in range(i0, i1):
                    labels[k, j, i] = lab
                if umass < 0:
                    for i in range(i0, i1):
                        acc += density[k, j, i]
        if umass >= 0:
            acc = umass * (k1 - k0) * (j1 - j0) * (i1 - i0)
        out_c[lab, 0] += acc
        return
    for q in range(nk):
        cx[q] = sites[keep[q], 2]
        cown[q] = owner[keep[q]]
    w = i1 - i0
    for k in range(k0, k1):
        z = origin3[0] + (k + 0.5) * spacing3[0]
        for j in range(j0, j1):
            y = origin3[1] + (j + 0.5) * spacing3[1]
            for q in range(nk):
                s = keep[q]
                dz = z - sites[s, 0]
                dy = y - sites[s, 1]
                base[q] = dz * dz + dy * dy - site_w[s]
            for ii in range(w):
                best[ii] = np.inf
            for q in range(nk):
                bq = base[q]
                xq = cx[q]
                for ii in range(w):
                    x = origin3[2] + (i0 + ii + 0.5) * spacing3[2]
                    d = bq + (x - xq) * (x - xq)
                    if d < best[ii]:
                        best[ii] = d
                        bestl[ii] = q
            ii = 0
            while ii < w:
                # a run of pixels with one owner: sums in registers, one update
                q = bestl[ii]
                lab = cown[q]
                ms = 0.0
                mx = 0.0
                mxx = 0.0
                while ii < w and bestl[ii] == q:
                    labels[k, j, i0 + ii] = lab
                    m = density[k, j, i0 + ii] if umass < 0 else umass
                    ms += m
                    if mom:
                        dx = origin3[2] + (i0 + ii + 0.5) * spacing3[2] - cx[q]
                        mx += m * dx
                        mxx += m * (dx * dx)
                    ii += 1
                out_c[lab, 0] += ms
                if mom:
                    dz = z - sites[keep[q], 0]
                    dy = y - sites[keep[q], 1]
                    out_c[lab, 1] += ms * dz
                    out_c[lab, 2] += ms * dy
                    out_c[lab, 3] += mx
                    out_c[lab, 4] += ms * (dz * dz + dy * dy) + mxx


@kernel(parallel=True)
def _assign_tiles(tiling, geom, cands, dens, n_points, n_chunks, labels, n_sums):
    """Label every pixel with its power cell; per-chunk masses (and moments).

    Parameters
    ----------
    tiling : tuple ``(shape3, tile, n_tiles, sub)`` of (3,) int64 arrays
        Raster shape, query-tile shape, tiles per axis, and the sub-tile shape on which
        the candidates are pruned with exact box bounds.
    geom : tuple ``(spacing3, origin3)`` of (3,) float64 arrays
    cands : tuple ``(sites, site_w, owner, cand_ptr, cand_idx)``
        sites (M, 3) float64, site_w (M,) float64, owner (M,) int64; candidate site
        indices of tile t: ``cand_idx[cand_ptr[t]:cand_ptr[t + 1]]`` (int64).
    dens : tuple ``(density, umass)``
        (D, H, W) float64 pixel masses (ignored when ``umass >= 0``) and the mass of
        every pixel of a uniform density (else -1).
    labels : (D, H, W) int32, written in place.
    n_sums : int
        1 for the masses only, 5 for the masses and the moments about the owning
        site, ``[m, sum m dz, sum m dy, sum m dx, sum m |d|^2]`` (as
        :func:`_cell_moments` without periodic axes: displacements to the owning
        copy of the site).

    Returns
    -------
    sums : (n_chunks, n_points, n_sums) float64
    """
    _, _, n_tiles, sub = tiling
    cand_ptr = cands[3]
    n_t = n_tiles[0] * n_tiles[1] * n_tiles[2]
    kmax = 1
    for t in range(n_t):
        kmax = max(kmax, cand_ptr[t + 1] - cand_ptr[t])
    out = np.zeros((n_chunks, n_points, n_sums))
    for c in prange(n_chunks):
        keep = np.empty(kmax, np.int64)
        lb = np.empty(kmax)
        base = np.empty(kmax)
        cx = np.empty(kmax)
        cown = np.empty(kmax, np.int64)
        best = np.empty(sub[2])
        bestl = np.zeros(sub[2], np.int64)
        scratch = (keep, lb, base, cx, cown, best, bestl)
        out_c = out[c]
        for t in range(c * n_t // n_chunks, (c + 1) * n_t // n_chunks):
            tk0, tk1, tj0, tj1, ti0, ti1 = _tile_ranges(t, tiling)
            for k0 in range(tk0, tk1, sub[0]):
                for j0 in range(tj0, tj1, sub[1]):
                    for i0 in range(ti0, ti1, sub[2]):
                        box = (
                            k0,
                            min(k0 + sub[0], tk1),
                            j0,
                            min(j0 + sub[1], tj1),
                            i0,
                            min(i0 + sub[2], ti1),
                        )
                        _sweep_box(box, t, geom, cands, dens, labels, out_c, scratch)
    return out


@kernel(parallel=True)
def _cell_moments(
    labels, density, umass, points3, spacing3, origin3, lengths3, periodic3, n_chunks
):
    """Per-chunk mass, first moment about the site, and second moment about the site.

    Displacements ``x - y_label`` use the minimum image on periodic axes.

    Returns
    -------
    out : (n_chunks, N, 5) float64
        ``[m, sum m dz, sum m dy, sum m dx, sum m |d|^2]`` (pixel extent not included).
    """
    nz, ny, nx = labels.shape
    n = points3.shape[0]
    out = np.zeros((n_chunks, n, 5))
    rows = nz * ny
    for c in prange(n_chunks):
        for r in range(c * rows // n_chunks, (c + 1) * rows // n_chunks):
            k = r // ny
            j = r % ny
            z = origin3[0] + (k + 0.5) * spacing3[0]
            y = origin3[1] + (j + 0.5) * spacing3[1]
            i = 0
            while i < nx:
                # a run of pixels with one label: sums in registers, one update
                s = labels[k, j, i]
                dz = z - points3[s, 0]
                dy = y - points3[s, 1]
                if periodic3[0]:
                    dz -= lengths3[0] * np.round(dz / lengths3[0])
                if periodic3[1]:
                    dy -= lengths3[1] * np.round(dy / lengths3[1])
                ms = 0.0
                mx = 0.0
                mxx = 0.0
                while i < nx and labels[k, j, i] == s:
                    m = umass if umass >= 0 else density[k, j, i]
                    x = origin3[2] + (i + 0.5) * spacing3[2]
                    dx = x - points3[s, 2]
                    if periodic3[2]:
                        dx -= lengths3[2] * np.round(dx / lengths3[2])
                    ms += m
                    mx += m * dx
                    mxx += m * (dx * dx)
                    i += 1
                out[c, s, 0] += ms
                out[c, s, 1] += ms * dz
                out[c, s, 2] += ms * dy
                out[c, s, 3] += mx
                out[c, s, 4] += ms * (dz * dz + dy * dy) + mxx
    return out


@kernel(parallel=True)
def _face_sums(
    labels,
    density,
    umass,
    floor,
    points3,
    geometry,
    n_chunks,
    count_only,
    out,
    zero_only=False,
):
    """Jacobian facet sums over pixel faces with the staircase correction.

    For face-adjacent pixels p, q along axis a with labels i < j, the contribution is
    ``(m_p + m_q) |D_a| / (4 h_a |D|^2)`` with ``D = y_j - y_i`` (minimum image), i.e.
    ``rho_bar * A_a * |n_a| / (2 |y_i - y_j|)``, between the images of the two sites
    nearest to the face on periodic axes. Consecutive faces of the same pair along
    a row are merged. ``m_p + m_q`` is raised to at least ``2 floor`` so that cells
    separated by zero density stay connected in the Jacobian (``floor = 0`` gives the
    plain formula). With ``zero_only`` only the faces between two zero-density pixels
    count, each with ``m_p + m_q = 2 floor``: the links that the floor adds.

    ``geometry`` is ``(spacing3, origin3, lengths3, periodic3)``, ``out`` is
    ``(offsets, rows, cols, vals)``. With ``count_only`` the kernel returns the number
    of entries per chunk (n_chunks,); otherwise it writes chunk ``c``'s entries at
    ``offsets[c]`` of the output arrays (modified in place).
    """
    spacing3, origin3, lengths3, periodic3 = geometry
    offsets, rows_out, cols_out, vals_out = out
    nz, ny, nx = labels.shape
    rows = nz * ny
    counts = np.zeros(n_chunks, np.int64)
    for c in prange(n_chunks):
        cnt = 0
        pos = 0 if count_only else offsets[c]
        for r in range(c * rows // n_chunks, (c + 1) * rows // n_chunks):
            k = r // ny
            j = r % ny
            for a in range(3):
                last_i = -1
                last_j = -1
                if a == 0:
                    if nz == 1 or (k == nz - 1 and not periodic3[0]):
                        continue
                    kk = (k + 1) % nz
                    jj = j
                elif a == 1:
                    if ny == 1 or (j == ny - 1 and not periodic3[1]):
                        continue
                    kk = k
                    jj = (j + 1) % ny
                else:
                    kk = k
                    jj = j
                    if nx == 1:
                        continue
                imax = nx if (a != 2 or periodic3[2]) else nx - 1
                for i in range(imax):
                    ii = i if a != 2 else (i + 1) % nx
                    p = labels[k, j, i]
                    q = labels[kk, jj, ii]
                    if p == q:
                        last_i = -1
                        continue
                    if umass >= 0:
                        mm = 2.0 * umass
                    else:
                        mm = density[k, j, i] + density[kk, jj, ii]
                    if zero_only:
                        if mm != 0.0:
                            continue
                        mm = 2.0 * floor
                    elif mm < 2.0 * floor:
                        mm = 2.0 * floor
                    if mm == 0.0:
                        continue
                    lo = min(p, q)
                    hi = max(p, q)
                    # images of the two sites nearest to the face centre f
                    f0 = origin3[0] + (k + 0.5) * spacing3[0]
                    f1 = origin3[1] + (j + 0.5) * spacing3[1]
                    f2 = origin3[2] + (i + 0.5) * spacing3[2]
                    if a == 0:
                        f0 += 0.5 * spacing3[0]
                    elif a == 1:
                        f1 += 0.5 * spacing3[1]
                    else:
                        f2 += 0.5 * spacing3[2]
                    e0 = f0 - points3[lo, 0]
                    e1 = f1 - points3[lo, 1]
                    e2 = f2 - points3[lo, 2]
                    g0 = f0 - points3[hi, 0]
                    g1 = f1 - points3[hi, 1]
                    g2 = f2 - points3[hi, 2]
                    if periodic3[0]:
                        e0 -= lengths3[0] * np.round(e0 / lengths3[0])
                        g0 -= lengths3[0] * np.round(g0 / lengths3[0])
                    if periodic3[1]:
                        e1 -= lengths3[1] * np.round(e1 / lengths3[1])
                        g1 -= lengths3[1] * np.round(g1 / lengths3[1])
                    if periodic3[2]:
                        e2 -= lengths3[2] * np.round(e2 / lengths3[2])
                        g2 -= lengths3[2] * np.round(g2 / lengths3[2])
                    d0 = e0 - g0
                    d1 = e1 - g1
                    d2 = e2 - g2
                    dd = d0 * d0 + d1 * d1 + d2 * d2
                    da = abs(d0) if a == 0 else (abs(d1) if a == 1 else abs(d2))
                    v = mm * da / (4.0 * spacing3[a] * dd)
                    if lo == last_i and hi == last_j:
                        if not count_only:
                            vals_out[pos - 1] += v
                        continue
                    last_i = lo
                    last_j = hi
                    cnt += 1
                    if not count_only:
                        rows_out[pos] = lo
                        cols_out[pos] = hi
                        vals_out[pos] = v
                        pos += 1
        counts[c] = cnt
    return counts


@kernel(parallel=True)
def _boundary_pixel_mass(labels, density, umass, n_points, n_chunks):
    """Largest mass of a pixel on each cell's boundary, per chunk: (n_chunks, N)."""
    nz, ny, nx = labels.shape
    rows = nz * ny
    out = np.zeros((n_chunks, n_points))
    for c in prange(n_chunks):
        for r in range(c * rows // n_chunks, (c + 1) * rows // n_chunks):
            k = r // ny
            j = r % ny
            for i in range(nx):
                s = labels[k, j, i]
                edge = False
                if i + 1 < nx and labels[k, j, i + 1] != s:
                    edge = True
                elif i > 0 and labels[k, j, i - 1] != s:
                    edge = True
                elif j + 1 < ny and labels[k, j + 1, i] != s:
                    edge = True
                elif j > 0 and labels[k, j - 1, i] != s:
                    edge = True
                elif k + 1 < nz and labels[k + 1, j, i] != s:
                    edge = True
                elif k > 0 and labels[k - 1, j, i] != s:
                    edge = True
                if edge:
                    m = umass if umass >= 0 else density[k, j, i]
                    if m > out[c, s]:
                        out[c, s] = m
    return out


@kernel(parallel=False)
def _facet_move_rates(
    rows,
    cols,
    vals,
    pix,
    points3,
    moves3,
    shape3,
    spacing3,
    origin3,
    lengths3,
    periodic3,
    n_points,
):
    """First-order mass changes ``dm`` (N,) when the sites move by ``moves3``.

    Each facet piece ``t`` between cells ``i = rows[t]`` and ``j = cols[t]`` with
    Jacobian entry ``w = vals[t]`` lies in the pixel ``pix[t]`` (flat index), whose
    centre ``x`` stands for the piece: ``g = 2 w ((x - y_i).d_i - (x - y_j).d_j)``
    (minimum images on periodic axes) is added to ``dm_i`` and taken from ``dm_j``.
    """
    dm = np.zeros(n_points)
    ny = shape3[1]
    nx = shape3[2]
    for t in range(rows.size):
        p = pix[t]
        k = p // (ny * nx)
        j = (p // nx) % ny
        i = p % nx
        x0 = origin3[0] + (k + 0.5) * spacing3[0]
        x1 = origin3[1] + (j + 0.5) * spacing3[1]
        x2 = origin3[2] + (i + 0.5) * spacing3[2]
        a = rows[t]
        b = cols[t]
        g = 0.0
        for ax in range(3):
            xa = x0 if ax == 0 else (x1 if ax == 1 else x2)
            ra = xa - points3[a, ax]
            rb = xa - points3[b, ax]
            if periodic3[ax]:
                ra -= lengths3[ax] * np.round(ra / lengths3[ax])
                rb -= lengths3[ax] * np.round(rb / lengths3[ax])
            g += ra * moves3[a, ax] - rb * moves3[b, ax]
        g *= 2.0 * vals[t]
        dm[a] += g
        dm[b] -= g
    return dm


@kernel(parallel=False)
def _facet_move_rates_at(rows, cols, vals, centres, points, moves, n_points):
    """As ``_facet_move_rates``, each facet piece at its own point ``centres[t]``.

    2D, no periodic axes: ``centres`` (T, 2) the density-weighted centre of each
    facet (polygon passes), which makes the first order exact; ``points`` and
    ``moves`` (N, 2).
    """
    dm = np.zeros(n_points)
    for t in range(rows.size):
        a = rows[t]
        b = cols[t]
        if a == b:
            continue
        g = 0.0
        for ax in range(2):
            xa = centres[t, ax]
            g += (xa - points[a, ax]) * moves[a, ax] - (xa - points[b, ax]) * moves[
                b, ax
            ]
        g *= 2.0 * vals[t]
        dm[a] += g
        dm[b] -= g
    return dm


@kernel(parallel=False)
def _laplacian_csr(rows, cols, vals, n):
    """Return the CSR arrays of the Laplacian ``L = D - W`` of pair weights.

    The pairs are ``(rows, cols)``, their weights ``vals``. A marker array merges the
    duplicates of each row in one sweep (rows of a face Jacobian repeat each neighbour
    hundreds of times); only the distinct neighbours are sorted.

    Each triplet ``(i, j, w)`` (any order, duplicates summed) adds ``w`` to ``W_ij``
    and ``W_ji``; ``D`` holds the row sums of ``W``; triplets with ``i == j`` add
    nothing. Every row lists its
    diagonal and its distinct neighbours in increasing column order.

    Returns
    -------
    indptr (n + 1,), indices, data : int64, int64, float64
    """
    # bucket the triplets by row, both directions (counting sort)
    start = np.zeros(n + 1, np.int64)
    for t in range(rows.size):
        if rows[t] != cols[t]:
            start[rows[t] + 1] += 1
            start[cols[t] + 1] += 1
    for i in range(n):
        start[i + 1] += start[i]
    fill = start[:-1].copy()
    nb = np.empty(start[n], np.int64)
    wt = np.empty(start[n])
    for t in range(rows.size):
        a = rows[t]
        b = cols[t]
        if a == b:
            continue
        nb[fill[a]] = b
        wt[fill[a]] = vals[t]
        fill[a] += 1
        nb[fill[b]] = a
        wt[fill[b]] = vals[t]
        fill[b] += 1
    # merge duplicates per row (slot of each neighbour), sort, add the diagonal
    slot = np.full(n, -1, np.int64)
    indptr = np.zeros(n + 1, np.int64)
    indices = np.empty(start[n] + n, np.int64)
    data = np.empty(start[n] + n)
    pos = 0
    for i in range(n):
        row0 = pos
        indices[pos] = i
        data[pos] = 0.0
        pos += 1
        diag = 0.0
        for q in range(start[i], start[i + 1]):
            j = nb[q]
            w = wt[q]
            diag += w
            s = slot[j]
            if s < 0:
                slot[j] = pos
                indices[pos] = j
                data[pos] = -w
                pos += 1
            else:
                data[s] -= w
        data[row0] = diag
        # insertion sort of the row by column (rows are short)
        for p in range(row0 + 1, pos):
            c = indices[p]
            v = data[p]
            q = p - 1
            while q >= row0 and indices[q] > c:
                indices[q + 1] = indices[q]
                data[q + 1] = data[q]
                q -= 1
            indices[q + 1] = c
            data[q + 1] = v
        for p in range(row0, pos):
            slot[indices[p]] = -1
        indptr[i + 1] = pos
    return indptr, indices[:pos], data[:pos]


@kernel(parallel=True)
def _merge_pairs(rows, cols, vals, seg, n):
    """Sum duplicate pairs ``(rows, cols)`` within each segment ``[seg[s], seg[s+1])``.

    The segments (one per chunk of a pass) are spatially local, so a small hash table
    per segment merges the facet pieces of one facet cheaply before the global
    assembly. Returns the merged ``(rows, cols, vals)``, segment by segment, each pair
    at its first occurrence (a fixed order for any thread count).
    """
    nseg = len(seg) - 1
    out_r = np.empty(len(rows), np.int64)
    out_c = np.empty(len(rows), np.int64)
    out_v = np.empty(len(rows))
    cnt = np.zeros(nseg, np.int64)
    for s in prange(nseg):
        a = seg[s]
        b = seg[s + 1]
        size = 16
        while size < 2 * (b - a):
            size *= 2
        keys = np.full(size, -1, np.int64)
        slot = np.empty(size, np.int64)
        k = 0
        for t in range(a, b):
            key = rows[t] * n + cols[t]
            h = (key * 2654435761) & (size - 1)
            while keys[h] != -1 and keys[h] != key:
                h = (h + 1) & (size - 1)
            if keys[h] == -1:
                keys[h] = key
                slot[h] = a + k
                out_r[a + k] = rows[t]
                out_c[a + k] = cols[t]
                out_v[a + k] = vals[t]
                k += 1
            else:
                out_v[slot[h]] += vals[t]
        cnt[s] = k
    total = 0
    for s in range(nseg):
        total += cnt[s]
    r = np.empty(total, np.int64)
    c = np.empty(total, np.int64)
    v = np.empty(total)
    pos = 0
    for s in range(nseg):
        for t in range(seg[s], seg[s] + cnt[s]):
            r[pos] = out_r[t]
            c[pos] = out_c[t]
            v[pos] = out_v[t]
            pos += 1
    return r, c, v
