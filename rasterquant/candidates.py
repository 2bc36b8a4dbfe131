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
    grid, points, weights, tile=None, *, whole_pixels=False, slack=0.0
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
        brute = len(centres) * len(sites) <= _config.BRUTE_CANDIDATES_MAX
        if brute:
            # few tiles times sites: exact lists by testing every pair (per site
            # bound, tighter than the weight groups'), cheaper than building trees
            pos = np.ascontiguousarray(sites[:, axes])
            tc = np.ascontiguousarray(centres[:, axes])
            best = _brute_best(pos, site_w, tc)
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
                pos, site_w, tc, radii, upper + 2.0 * slack
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


@kernel(parallel=True)
def _brute_best(pos, w, centres):
    """Index of the site of least power distance at each tile centre (brute force)."""
    n_t = centres.shape[0]
    best = np.zeros(n_t, np.int64)
    for t in prange(n_t):
        bd = np.inf
        for j in range(pos.shape[0]):
            d = -w[j]
            for a in range(pos.shape[1]):
                e = centres[t, a] - pos[j, a]
                d += e * e
            if d < bd:
                bd = d
                best[t] = j
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


def _brute_lists(pos, w, centres, radii, upper):
    """``_grouped_query`` by testing (tile, site) pairs with the site's own weight.

    Only the sites within a tile's largest reach along the first axis are tested
    (sites sorted along it). Returns ``(cand_ptr, cand_idx, largest radius)``.
    """
    # the sort and the range searches in numpy: numba compiles its own sort and
    # searchsorted for ~3 s on the first run, longer than they take on any problem
    order = np.argsort(pos[:, 0], kind="stable")
    key = pos[order, 0]
    reach = np.sqrt(np.maximum(upper + float(w.max()), 0.0)) + radii
    reach = reach * (1 + 1e-9) + 1e-9 * (1.0 + reach)  # as _pair_bound
    first = np.searchsorted(key, centres[:, 0] - reach, side="left").astype(np.int64)
    last = np.searchsorted(key, centres[:, 0] + reach, side="right").astype(np.int64)
    ptr, idx = _brute_pairs(pos, w, centres, radii, upper, order, first, last)
    return ptr, idx, float(reach.max()) if len(reach) else 0.0


@kernel(parallel=True)
def _brute_pairs(pos, w, centres, radii, upper, order, first, last):
    """Candidate lists in CSR layout: ``(cand_ptr (T + 1,), cand_idx)``.

    Tile ``t`` tests the sites ``order[first[t]:last[t]]`` (see :func:`_brute_lists`).
    """
    n_t = centres.shape[0]
    counts = np.zeros(n_t, np.int64)
    for t in prange(n_t):
        c = 0
        for jj in range(first[t], last[t]):
            if _listed(pos, w, centres, radii, upper, t, order[jj]):
                c += 1
        counts[t] = c
    ptr = np.zeros(n_t + 1, np.int64)
    for t in range(n_t):
        ptr[t + 1] = ptr[t] + counts[t]
    idx = np.empty(ptr[n_t], np.int64)
    for t in prange(n_t):
        c = ptr[t]
        for jj in range(first[t], last[t]):
            j = order[jj]
            if _listed(pos, w, centres, radii, upper, t, j):
                idx[c] = j
                c += 1
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
