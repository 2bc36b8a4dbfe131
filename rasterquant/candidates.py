"""Tile candidate lists for the power-cell sweep, from a kd-tree on lifted points.

The power distance ``|x - y_j|^2 - psi_j`` equals ``|(x, 0) - (y_j, l_j)|^2 - M`` with
the lift ``l_j = sqrt(M - psi_j)`` and ``M = max psi``. For a tile whose pixel centres
lie within ``r`` of the tile centre ``c``, let ``d*`` be the lifted distance from
``(c, 0)`` to its nearest lifted site. Every pixel ``x`` of the tile has a site within
lifted distance ``d* + r``, so its owner lies within ``d* + 2r`` of ``(c, 0)``: that
ball is an exact candidate set. The kernel prunes it further with exact box bounds.

Periodic axes: sites are copied (ghosts) by whole periods whenever the copy lies within
a margin of the box; the margin is grown until it covers every tile's query radius,
which makes the candidate sets exact on the torus too. The margin never needs to exceed
half a period: the minimum image of a site seen from a pixel of the box lies within half
a period of that pixel, so copies farther out can never own a pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import prange
from scipy.spatial import cKDTree

from ._jit import kernel

__all__ = ["CandidateLists", "build_candidates", "tile_layout"]


@dataclass(frozen=True)
class CandidateLists:
    """Sites (originals then ghosts) and per-tile candidate indices into them."""

    sites: np.ndarray  # (M, 3) float64 positions, 3D layout
    site_weights: np.ndarray  # (M,) float64
    owner: np.ndarray  # (M,) int64: index of the original point
    cand_ptr: np.ndarray  # (T + 1,) int64: tile t's candidates are
    cand_idx: np.ndarray  # cand_idx[cand_ptr[t]:cand_ptr[t + 1]], indices into sites
    tile: tuple  # (tz, ty, tx) query tiles
    sub: tuple  # sub-tiles on which the kernel prunes
    n_tiles: tuple  # tiles per axis
    #: H of the move bound: the lists stay exact for site moves up to D and weight
    #: changes up to E while E + D^2 + D H <= slack (see build_candidates)
    move_gain: float = 0.0


def tile_layout(shape3, tile):
    """Return the number of tiles per axis for a (D, H, W) raster."""
    return tuple(-(-s // t) for s, t in zip(shape3, tile, strict=True))


def _tile_geometry(shape3, spacing3, origin3, tile, pad=(0.0, 0.0, 0.0)):
    """Centres (T, 3) and half extents (T, 3) of the tiles' boxes of pixel centres.

    ``pad`` is added to the half extents (half a pixel for whole-pixel boxes).
    """
    nt = tile_layout(shape3, tile)
    mids, halves = [], []
    for a in range(3):
        starts = np.arange(nt[a]) * tile[a]
        stops = np.minimum(starts + tile[a], shape3[a])
        h, o = spacing3[a], origin3[a]
        mids.append(o + (starts + stops) / 2.0 * h)
        halves.append((stops - starts - 1) / 2.0 * h + pad[a])
    centres = np.stack([g.ravel() for g in np.meshgrid(*mids, indexing="ij")], axis=1)
    half = np.stack([g.ravel() for g in np.meshgrid(*halves, indexing="ij")], axis=1)
    return centres, half


def _ghosts(points3, weights, lengths3, origin3, periodic3, margin):
    """Copy the points by whole periods; keep copies within ``margin`` of the box.

    ``margin`` is capped per periodic axis at half a period (plus rounding slack).
    """
    caps = np.array(
        [min(margin, 0.5 * lengths3[a] * (1 + 1e-9) + 1e-9) for a in range(3)]
    )
    n = points3.shape[0]
    pos, w, own = [points3], [weights], [np.arange(n, dtype=np.int64)]
    axes = [a for a in range(3) if periodic3[a]]
    if not axes:
        return points3, weights, own[0]
    shifts_per_axis = []
    for a in range(3):
        if periodic3[a]:
            s = math.ceil(caps[a] / lengths3[a])
            shifts_per_axis.append(range(-s, s + 1))
        else:
            shifts_per_axis.append(range(0, 1))
    lo = np.array(origin3)
    hi = lo + np.array(lengths3)
    for sz in shifts_per_axis[0]:
        for sy in shifts_per_axis[1]:
            for sx in shifts_per_axis[2]:
                if sz == 0 and sy == 0 and sx == 0:
                    continue
                shift = np.array([sz, sy, sx]) * np.array(lengths3)
                p = points3 + shift
                keep = np.all((p >= lo - caps) & (p <= hi + caps), axis=1)
                if keep.any():
                    pos.append(p[keep])
                    w.append(weights[keep])
                    own.append(np.flatnonzero(keep).astype(np.int64))
    return np.concatenate(pos), np.concatenate(w), np.concatenate(own)


def build_candidates(
    grid, points, weights, tile=None, *, whole_pixels=False, slack=0.0, brute_max=None
) -> CandidateLists:
    """Exact per-tile candidate lists for the power diagram of ``(points, weights)``.

    Parameters
    ----------
    grid : Grid
    points : (N, d) ndarray of float64
        Inside the box (wrapped on periodic axes).
    weights : (N,) ndarray of float64
    tile : tuple of 3 int, optional
        Tile shape (z, y, x); defaults from ``_config``.
    whole_pixels : bool
        Candidates for every point of the pixels (fractional quadrature), not only
        for the pixel centres.
    slack : float
        Room in the weights: the lists hold for all weights within ``slack``.
    brute_max : float, optional
        Test every (tile, site) pair instead of kd-tree range queries up to this
        many pairs (default ``_config.BRUTE_CANDIDATES_MAX``); the lists are the same
        sets either way.

    Returns
    -------
    CandidateLists

    Notes
    -----
    For each tile, the best site ``s`` at the tile centre comes from a kd-tree on the
    lifted points. Every pixel ``x`` of the tile then has power distance at most
    ``U = max_x |x - y_s|^2 - psi_s`` to its owner, so a site ``j`` can only own ``x``
    if ``|x - y_j|^2 <= U + psi_j``, i.e. ``|c - y_j| <= sqrt(U + psi_j) + r``. Sites
    are split into groups of similar weight, each with its own spatial kd-tree, so that
    the radius ``sqrt(U + max psi in group) + r`` stays tight.
    """
    from . import _config

    if brute_max is None:
        brute_max = _config.BRUTE_CANDIDATES_MAX
    shape3, spacing3, origin3, periodic3 = grid.as_3d()
    if tile is None:
        tile = _config.TILE_2D if grid.ndim == 2 else _config.TILE_3D
    if whole_pixels:
        sub = _config.SUB_2D_FRACTIONAL if grid.ndim == 2 else _config.SUB_3D_FRACTIONAL
    else:
        sub = _config.SUB_2D if grid.ndim == 2 else _config.SUB_3D
    tile = tuple(min(t, s) for t, s in zip(tile, shape3, strict=True))
    sub = tuple(min(t, s) for t, s in zip(sub, tile, strict=True))
    pts3 = (
        points
        if grid.ndim == 3
        else np.column_stack([np.full(len(points), 0.5), points])
    )
    pts3 = np.ascontiguousarray(pts3, dtype=np.float64)
    lengths3 = tuple(float(s * h) for s, h in zip(shape3, spacing3, strict=True))
    pad = (0.0, 0.0, 0.0)
    if whole_pixels:
        pad = tuple(
            0.0 if (a == 0 and grid.ndim == 2) else spacing3[a] / 2 for a in range(3)
        )
    centres, half = _tile_geometry(shape3, spacing3, origin3, tile, pad)
    radii = np.sqrt((half**2).sum(axis=1))
    axes = [1, 2] if grid.ndim == 2 else [0, 1, 2]
    weights = np.asarray(weights, dtype=np.float64)
    n = len(points)
    cell_area = grid.volume / n
    wmax = float(weights.max())
    margin = 0.0
    if any(periodic3):
        cell = cell_area ** (1.0 / grid.ndim)
        margin = (
            2.0 * cell
            + 2.0 * float(radii.max())
            + math.sqrt(max(wmax - float(weights.min()), 0.0))
        )
    while True:
        sites, site_w, owner = _ghosts(
            pts3, weights, lengths3, origin3, periodic3, margin
        )
        brute = len(centres) * len(sites) <= brute_max
        if brute:
            # few tiles times sites: exact lists by testing every pair (per site
            # bound, tighter than the weight groups'), cheaper than building trees
            pos = np.ascontiguousarray(sites[:, axes])
            tc = np.ascontiguousarray(centres[:, axes])
            bins = _site_bins(pos, site_w)
            best = _brute_best(pos, site_w, tc, bins)
        else:
            lift = np.sqrt(np.maximum(wmax - site_w, 0.0))
            ltree = cKDTree(np.column_stack([sites[:, axes], lift]))
            q = np.column_stack([centres[:, axes], np.zeros(len(centres))])
            _, best = ltree.query(q, k=1, workers=1)
        # largest power distance of the best site over the tile's pixel centres
        far = np.abs(centres - sites[best]) + half
        upper = (far[:, axes] ** 2).sum(axis=1) - site_w[best]
        if brute:
            cand_ptr, cand_idx, rmax = _brute_lists(
                pos, site_w, tc, radii, upper + 2.0 * slack, bins
            )
        else:
            cand_ptr, cand_idx, rmax = _grouped_query(
                sites[:, axes],
                site_w,
                centres[:, axes],
                radii,
                upper + 2.0 * slack,
                cell_area,
            )
        capped = all(margin >= 0.5 * lengths3[a] for a in range(3) if periodic3[a])
        if not any(periodic3) or rmax <= margin or capped:
            break
        margin = 1.5 * rmax
    # moves: a site j missing from tile t's list is farther from its centre than
    # sqrt(U_t + 2 slack + psi_j) + r. After moves of at most D and weight changes of
    # at most E, the owner o of a pixel x of the tile has
    # |x - y_o| <= D + sqrt(U_t + 2 F_t D + D^2 + 2 E + psi_o), F_t = max |x - y_best|,
    # so the lists stay exact while 2 slack >= 2 E + 2 D^2 + 2 D (F_t + S_t) with
    # S_t = sqrt(U_t + 2 slack + max psi): that is E + D^2 + D H <= slack.
    reach_best = np.sqrt((far[:, axes] ** 2).sum(axis=1))
    move_gain = float(
        np.max(reach_best + np.sqrt(np.maximum(upper + 2.0 * slack + wmax, 0.0)))
    )
    return CandidateLists(
        sites=sites,
        site_weights=site_w,
        owner=owner,
        cand_ptr=cand_ptr,
        cand_idx=cand_idx,
        tile=tile,
        sub=sub,
        n_tiles=tile_layout(shape3, tile),
        move_gain=move_gain,
    )


def _site_bins(pos, w):
    """Bucket the sites on the last two axes of ``pos`` (about 8 sites per bin).

    Returns ``(order, bin_ptr, lo, size, nb, box, wmax)``: the sites of bin
    ``b = b0 * nb[1] + b1`` are ``order[bin_ptr[b]:bin_ptr[b + 1]]``; a site lies in
    the bin ``floor((p - lo) / size)``, clipped to the grid of bins. ``box[b]`` is
    the bounding box ``(lo0, hi0, lo1, hi1)`` of the bin's sites and ``wmax[b]`` their
    largest weight (-inf for an empty bin).
    """
    xy = pos[:, -2:]
    lo = xy.min(axis=0)
    ext = np.maximum(xy.max(axis=0) - lo, 1e-12 * (1.0 + np.abs(lo)))
    # about len(pos) / 8 bins, as square as the sites' box allows (a line of sites
    # gets one row of bins)
    n_bins = max(1, len(pos) // 8)
    nb0 = int(min(max(round(math.sqrt(n_bins * float(ext[0] / ext[1]))), 1), n_bins))
    nb = np.array([nb0, max(n_bins // nb0, 1)], dtype=np.int64)
    size = ext / nb
    b = np.clip(np.floor((xy - lo) / size), 0, nb - 1).astype(np.int64)
    key = b[:, 0] * nb[1] + b[:, 1]
    order, bin_ptr, box, wmax = _bin_sites(
        np.ascontiguousarray(xy), w, key, nb[0] * nb[1]
    )
    return order, bin_ptr, lo, size, nb, box, wmax


@kernel(parallel=False)
def _bin_sites(xy, w, key, n_b):
    """Sites in bin order (stable), bin pointers, boxes (B, 4), largest weights."""
    bin_ptr = np.zeros(n_b + 1, np.int64)
    for j in range(key.shape[0]):
        bin_ptr[key[j] + 1] += 1
    for b in range(n_b):
        bin_ptr[b + 1] += bin_ptr[b]
    order = np.empty(key.shape[0], np.int64)
    fill = bin_ptr[:-1].copy()
    for j in range(key.shape[0]):
        order[fill[key[j]]] = j
        fill[key[j]] += 1
    box = np.empty((n_b, 4))
    wmax = np.full(n_b, -np.inf)
    for b in range(n_b):
        box[b, 0] = np.inf
        box[b, 1] = -np.inf
        box[b, 2] = np.inf
        box[b, 3] = -np.inf
        for q in range(bin_ptr[b], bin_ptr[b + 1]):
            j = order[q]
            box[b, 0] = min(box[b, 0], xy[j, 0])
            box[b, 1] = max(box[b, 1], xy[j, 0])
            box[b, 2] = min(box[b, 2], xy[j, 1])
            box[b, 3] = max(box[b, 3], xy[j, 1])
            wmax[b] = max(wmax[b], w[j])
    return order, bin_ptr, box, wmax


@kernel(parallel=False)
def _bin_range(c, r, lo, size, nb):
    """First and last bin (clipped) that the interval ``[c - r, c + r]`` meets."""
    b0 = min(max((c - r - lo) / size, 0.0), nb - 1.0)
    b1 = min(max((c + r - lo) / size, 0.0), nb - 1.0)
    return np.int64(b0), np.int64(b1)


@kernel(parallel=False)
def _scan_best(pos, w, centres, t, r, bins, bd, bj):
    """Improve ``(bd, bj)`` with the sites of the bins within ``r`` of tile ``t``.

    Ties go to the lowest site index (as a scan of all sites in order).
    """
    order, bin_ptr, lo, size, nb = bins[:5]
    na = pos.shape[1]
    y0, y1 = _bin_range(centres[t, na - 2], r, lo[0], size[0], nb[0])
    x0, x1 = _bin_range(centres[t, na - 1], r, lo[1], size[1], nb[1])
    for by in range(y0, y1 + 1):
        for q in range(bin_ptr[by * nb[1] + x0], bin_ptr[by * nb[1] + x1 + 1]):
            j = order[q]
            d = -w[j]
            for a in range(na):
                e = centres[t, a] - pos[j, a]
                d += e * e
            if d < bd or (d == bd and j < bj):
                bd = d
                bj = j
    return bd, bj


@kernel(parallel=True)
def _brute_best(pos, w, centres, bins):
    """Index of the site of least power distance at each tile centre.

    The same site as a scan of all sites (lowest index on ties), from the binned
    sites: a site can beat the best found ``bd`` only within ``sqrt(bd + max psi)``.
    """
    n_t = centres.shape[0]
    size = bins[3]
    wmax = w.max()
    best = np.zeros(n_t, np.int64)
    for t in prange(n_t):
        r = max(size[0], size[1])
        bd = np.inf
        bj = np.int64(-1)
        while bj < 0:
            bd, bj = _scan_best(pos, w, centres, t, r, bins, bd, bj)
            r *= 2.0
        reach = np.sqrt(max(bd + wmax, 0.0))
        reach = reach * (1 + 1e-9) + 1e-9 * (1.0 + reach)
        bd, bj = _scan_best(pos, w, centres, t, reach, bins, bd, bj)
        best[t] = bj
    return best


@kernel(parallel=False)
def _pair_bound(up, wj, r):
    """Reach of a site of weight ``wj`` from a tile (as in ``_grouped_query``)."""
    b = np.sqrt(max(up + wj, 0.0)) + r
    return b * (1 + 1e-9) + 1e-9 * (1.0 + b)


@kernel(parallel=False)
def _listed(pos, w, centres, radii, upper, t, j):
    """Whether tile ``t`` lists site ``j``: within the site's reach of its centre."""
    b = _pair_bound(upper[t], w[j], radii[t])
    d = 0.0
    for a in range(pos.shape[1]):
        e = centres[t, a] - pos[j, a]
        d += e * e
    return d <= b * b


def _brute_lists(pos, w, centres, radii, upper, bins):
    """``_grouped_query`` by testing (tile, site) pairs with the site's own weight.

    Only the sites binned within a tile's largest reach are tested (see
    :func:`_site_bins`). Returns ``(cand_ptr, cand_idx, largest radius)``; each tile's
    candidates are in bin order (the kernels sort the survivors of their pruning).
    """
    reach = np.sqrt(np.maximum(upper + float(w.max()), 0.0)) + radii
    reach = reach * (1 + 1e-9) + 1e-9 * (1.0 + reach)  # as _pair_bound
    ptr, idx = _brute_pairs(pos, w, centres, radii, upper, reach, bins)
    return ptr, idx, float(reach.max()) if len(reach) else 0.0


@kernel(parallel=False)
def _tile_pairs(pos, w, centres, radii, upper, reach, bins, t, idx, start, fill):
    """Count (and with ``fill`` write from ``idx[start]``) the sites tile t lists."""
    order, bin_ptr, lo, size, nb, box, bin_w = bins
    na = pos.shape[1]
    y0, y1 = _bin_range(centres[t, na - 2], reach[t], lo[0], size[0], nb[0])
    x0, x1 = _bin_range(centres[t, na - 1], reach[t], lo[1], size[1], nb[1])
    cy = centres[t, na - 2]
    cx = centres[t, na - 1]
    c = start
    for b in range(y0 * nb[1], (y1 + 1) * nb[1]):
        if b % nb[1] < x0 or b % nb[1] > x1 or bin_ptr[b] == bin_ptr[b + 1]:
            continue
        # no site of the bin is listed if the bin's box lies beyond the reach of
        # its heaviest site (the margin covers rounding of the box distance)
        dy = max(box[b, 0] - cy, 0.0, cy - box[b, 1])
        dx = max(box[b, 2] - cx, 0.0, cx - box[b, 3])
        bb = _pair_bound(upper[t], bin_w[b], radii[t])
        if dy * dy + dx * dx > bb * bb * (1 + 1e-9):
            continue
        for q in range(bin_ptr[b], bin_ptr[b + 1]):
            j = order[q]
            if _listed(pos, w, centres, radii, upper, t, j):
                if fill:
                    idx[c] = j
                c += 1
    return c - start


@kernel(parallel=True)
def _brute_pairs(pos, w, centres, radii, upper, reach, bins):
    """Candidate lists in CSR layout: ``(cand_ptr (T + 1,), cand_idx)``.

    Tile ``t`` tests the binned sites within ``reach[t]`` (see :func:`_brute_lists`).
    """
    n_t = centres.shape[0]
    counts = np.zeros(n_t, np.int64)
    idx = np.empty(0, np.int64)
    for t in prange(n_t):
        counts[t] = _tile_pairs(
            pos, w, centres, radii, upper, reach, bins, t, idx, 0, False
        )
    ptr = np.zeros(n_t + 1, np.int64)
    for t in range(n_t):
        ptr[t + 1] = ptr[t] + counts[t]
    idx = np.empty(ptr[n_t], np.int64)
    for t in prange(n_t):
        _tile_pairs(pos, w, centres, radii, upper, reach, bins, t, idx, ptr[t], True)
    return ptr, idx


def _grouped_query(pos, w, centres, radii, upper, cell_area):
    """Candidates within ``sqrt(upper + max psi of group) + r`` per weight group.

    Each weight group has its own kd-tree; tiles are bucketed by their query radius and
    each bucket is matched against the group with one dual-tree range search
    (``cKDTree.sparse_distance_matrix``), then filtered by the per-tile radius.

    Returns ``(cand_ptr (T + 1,), cand_idx, largest radius)`` in CSR layout.
    """
    m = len(pos)
    spread = float(w.max() - w.min())
    n_groups = int(min(8, max(1, math.ceil(spread / max(cell_area, 1e-300)))))
    n_groups = min(n_groups, m)
    order = np.argsort(w, kind="stable")
    groups = np.array_split(order, n_groups)
    n_t = len(centres)
    tiles_all, sites_all = [], []
    rmax = 0.0
    for g in groups:
        if g.size == 0:
            continue
        wg = float(w[g].max())
        bound = np.sqrt(np.maximum(upper + wg, 0.0)) + radii
        bound = bound * (1 + 1e-9) + 1e-9 * (1.0 + bound)
        rmax = max(rmax, float(bound.max()))
        gtree = cKDTree(pos[g])
        # buckets of tiles whose radii are within a factor 1.25 of each other
        lo = float(bound.min())
        level = np.floor(np.log(bound / lo) / np.log(1.25)).astype(np.int64)
        for lev in np.unique(level):
            rows = np.flatnonzero(level == lev)
            rb = float(bound[rows].max())
            ttree = cKDTree(centres[rows])
            pairs = ttree.sparse_distance_matrix(gtree, rb, output_type="ndarray")
            ti = rows[pairs["i"]]
            keep = pairs["v"] <= bound[ti]
            tiles_all.append(ti[keep])
            sites_all.append(g[pairs["j"][keep]])
    tiles = np.concatenate(tiles_all)
    sites = np.concatenate(sites_all)
    srt = np.argsort(tiles, kind="stable")
    cand_idx = np.ascontiguousarray(sites[srt], dtype=np.int64)
    counts = np.bincount(tiles, minlength=n_t)
    cand_ptr = np.zeros(n_t + 1, np.int64)
    np.cumsum(counts, out=cand_ptr[1:])
    return cand_ptr, cand_idx, rmax
