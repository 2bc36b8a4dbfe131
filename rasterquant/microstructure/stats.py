"""Grain statistics of a voxel (or pixel) grain map, periodic-aware.

Everything here is computed from the map alone (plus, optionally, the seeds for the
facet normals), with vectorised NumPy passes over slabs of the first axis so that the
temporary memory stays bounded on large maps (a 400^3 map is processed 16 slices at a
time).

Conventions: ``grain_map`` holds 0-based grain ids in array axis order ``(z, y, x)``
or ``(y, x)``; ``spacing`` and ``origin`` are per array axis; on a periodic axis the
last layer of voxels touches the first one.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "GrainStatistics",
    "MisorientationStatistics",
    "face_adjacency",
    "grain_statistics",
    "misorientation_statistics",
]

#: voxels per slab of the vectorised passes (bounds the temporaries to ~100 MB)
_SLAB_VOXELS = 1 << 22


@dataclass(frozen=True)
class GrainStatistics:
    """Per-grain statistics of a grain map.

    Attributes
    ----------
    volume : (N,) ndarray of float64
        Voxel count times the voxel volume (area in 2D).
    equivalent_diameter : (N,) ndarray of float64
        Diameter of the ball of the same volume: ``(6 V / pi)^(1/3)`` in 3D,
        ``sqrt(4 A / pi)`` in 2D.
    centroid : (N, d) ndarray of float64
        Mean voxel centre, physical units, array axis order. On periodic axes the
        grain is unwrapped around its circular mean first, so a grain that straddles
        a face gets its true centre (wrapped back into the box).
    n_neighbours : (N,) ndarray of int64
        Number of distinct grains sharing at least one voxel face (across wrapped
        faces on periodic axes). The box boundary is not a neighbour.
    surface_area : (N,) ndarray of float64
        Grain-boundary area (perimeter in 2D) from face counts with the staircase
        correction, plus ``boundary_area``.
    boundary_area : (N,) ndarray of float64
        Area of the grain on the faces of the box along non-periodic axes
        (axis-aligned, so counted exactly).
    neighbour_pairs : (M, 2) ndarray of int64
        Adjacent grain pairs ``(i, j)`` with ``i < j``, sorted.
    face_counts : (M, d) ndarray of int64
        Voxel faces between each pair, per axis.
    facet_area : (M,) ndarray of float64
        Staircase-corrected area of each pair's facet.
    misorientation : MisorientationStatistics or None
        Grain-boundary misorientations, when orientations were given to
        :func:`grain_statistics` (else None).
    """

    volume: np.ndarray
    equivalent_diameter: np.ndarray
    centroid: np.ndarray
    n_neighbours: np.ndarray
    surface_area: np.ndarray
    boundary_area: np.ndarray
    neighbour_pairs: np.ndarray = field(repr=False)
    face_counts: np.ndarray = field(repr=False)
    facet_area: np.ndarray = field(repr=False)
    misorientation: MisorientationStatistics | None = field(default=None, repr=False)

    @property
    def n_grains(self) -> int:
        """Number of grains ``N``."""
        return len(self.volume)


def _check_map(grain_map, n_grains):
    gm = np.asarray(grain_map)
    if gm.dtype == bool or not np.issubdtype(gm.dtype, np.integer):
        raise ValueError(
            f"grain_map must be an integer array of grain ids, got dtype {gm.dtype}"
        )
    if gm.ndim not in (2, 3) or gm.size == 0:
        raise ValueError(
            f"grain_map must have shape (H, W) or (D, H, W), got {gm.shape}"
        )
    lo, hi = int(gm.min()), int(gm.max())
    if lo < 0:
        raise ValueError(
            f"grain_map ids must be >= 0 (0-based grain ids, no void), got minimum {lo}"
        )
    if n_grains is None:
        n_grains = hi + 1
    elif hi >= n_grains:
        raise ValueError(
            f"grain_map has id {hi} but n_grains={n_grains}; expected ids < n_grains"
        )
    return gm, int(n_grains)


def _per_axis(value, ndim, name):
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    if arr.shape != (ndim,) or not np.isfinite(arr).all():
        raise ValueError(
            f"{name} must be a finite scalar or {ndim} numbers (array axis order), "
            f"got {value!r}"
        )
    return arr


def _periodic_axes(periodic, ndim):
    if isinstance(periodic, (bool, np.bool_)):
        return (bool(periodic),) * ndim
    p = tuple(bool(v) for v in periodic)
    if len(p) != ndim:
        raise ValueError(f"periodic must be a bool or {ndim} bools, got {periodic!r}")
    return p


def _slab_size(shape):
    per_layer = int(np.prod(shape[1:]))
    return max(1, _SLAB_VOXELS // max(per_layer, 1))


def _merge_pairs(keys, counts):
    """Sum ``counts`` over equal ``keys`` (both lists of arrays)."""
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    k = np.concatenate(keys)
    c = np.concatenate(counts)
    uk, inv = np.unique(k, return_inverse=True)
    return uk, np.bincount(inv, weights=c, minlength=len(uk)).astype(np.int64)


def _face_keys(a, b, n):
    """Return the pair keys ``min * n + max`` of differing labels and their counts."""
    diff = a != b
    if not diff.any():
        return None
    i = a[diff].astype(np.int64)
    j = b[diff].astype(np.int64)
    key = np.minimum(i, j) * n + np.maximum(i, j)
    return np.unique(key, return_counts=True)


def face_adjacency(grain_map, *, periodic=False, n_grains=None):
    """Adjacent grain pairs and the voxel faces between them, per axis.

    Parameters
    ----------
    grain_map : (H, W) or (D, H, W) array_like of int
        0-based grain ids.
    periodic : bool or sequence of bool
        Axes on which the last voxel layer touches the first.
    n_grains : int, optional
        Number of grains (default ``grain_map.max() + 1``).

    Returns
    -------
    pairs : (M, 2) ndarray of int64
        ``(i, j)`` with ``i < j``, sorted lexicographically.
    counts : (M, d) ndarray of int64
        Number of voxel faces between ``i`` and ``j`` normal to each axis.

    Notes
    -----
    The adjacency of a map on a fully periodic box does not change when the map is
    rolled (``np.roll``) by any shift: that is what "seamless" means for a tiling
    voxel map. Cost: one comparison pass per axis plus a sort of the boundary faces.
    """
    gm, n = _check_map(grain_map, n_grains)
    per = _periodic_axes(periodic, gm.ndim)
    ndim = gm.ndim
    step = _slab_size(gm.shape)
    per_axis = []
    for axis in range(ndim):
        keys, cnts = [], []
        for s in range(0, gm.shape[0], step):
            e = min(s + step, gm.shape[0])
            if axis == 0:
                # faces between layer k and k + 1 for k in [s, e); wrap at the end
                hi = min(e, gm.shape[0] - 1)
                parts = []
                if hi > s:
                    parts.append((gm[s:hi], gm[s + 1 : hi + 1]))
                if e == gm.shape[0] and per[0] and gm.shape[0] > 1:
                    parts.append((gm[-1:], gm[:1]))
            else:
                slab = gm[s:e]
                sl_a = [slice(None)] * ndim
                sl_b = [slice(None)] * ndim
                sl_a[axis] = slice(0, -1)
                sl_b[axis] = slice(1, None)
                parts = [(slab[tuple(sl_a)], slab[tuple(sl_b)])]
                if per[axis] and gm.shape[axis] > 1:
                    sl_a[axis] = slice(-1, None)
                    sl_b[axis] = slice(0, 1)
                    parts.append((slab[tuple(sl_a)], slab[tuple(sl_b)]))
            for pa, pb in parts:
                got = _face_keys(pa, pb, n)
                if got is not None:
                    keys.append(got[0])
                    cnts.append(got[1])
        per_axis.append(_merge_pairs(keys, cnts))
    all_keys = np.unique(np.concatenate([k for k, _ in per_axis]))
    counts = np.zeros((len(all_keys), ndim), np.int64)
    for axis, (k, c) in enumerate(per_axis):
        counts[np.searchsorted(all_keys, k), axis] = c
    pairs = np.stack([all_keys // n, all_keys % n], axis=1)
    return pairs, counts


def _slab_bincount(gm, n, step, coord_axis=None, func=None):
    """``bincount`` of labels, optionally weighted by ``func(index along axis)``."""
    out = np.zeros(n)
    for s in range(0, gm.shape[0], step):
        slab = gm[s : s + step]
        if coord_axis is None:
            out += np.bincount(slab.ravel(), minlength=n)
            continue
        idx = np.arange(gm.shape[coord_axis], dtype=np.float64)
        if coord_axis == 0:
            idx = idx[s : s + slab.shape[0]]
        shape = [1] * gm.ndim
        shape[coord_axis] = len(idx)
        w = np.broadcast_to(func(idx.reshape(shape), slab), slab.shape)
        out += np.bincount(slab.ravel(), weights=w.ravel(), minlength=n)
    return out


def _layer_histogram(gm, n, axis, step):
    """``(n, n_axis)`` voxel counts of each grain in each layer normal to ``axis``."""
    na = gm.shape[axis]
    hist = np.zeros(n * na, np.int64)
    for s in range(0, gm.shape[0], step):
        slab = gm[s : s + step]
        k = np.arange(na, dtype=np.int64)
        if axis == 0:
            k = k[s : s + slab.shape[0]]
        shape = [1] * gm.ndim
        shape[axis] = len(k)
        key = slab.astype(np.int64) * na + k.reshape(shape)
        hist += np.bincount(key.ravel(), minlength=n * na)
    return hist.reshape(n, na)


def _unwrapped_mean(hist, k, na, count):
    """Mean layer centre of each row of ``hist`` unwrapped at its largest gap."""
    occ = hist > 0
    occ2 = np.concatenate([occ, occ], axis=1)
    idx = np.where(occ2, np.arange(2 * na), -1)
    last = np.maximum.accumulate(idx, axis=1)  # last occupied <= position
    pos = np.arange(na, 2 * na)
    prev = last[:, pos - 1]  # last occupied before each position of copy 2
    gap = np.where(occ2[:, pos], pos - prev - 1, -1)
    cut = np.argmax(gap, axis=1)  # first layer after the longest empty run
    cut[occ.all(axis=1)] = 0
    unwrapped = k[None, :] + np.where(np.arange(na)[None, :] < cut[:, None], na, 0)
    return np.mod((hist * unwrapped).sum(axis=1) / count, na)


def _centroids(gm, n, count, spacing, origin, per):
    """Voxel-centre means per grain; periodic axes unwrapped at the largest gap.

    On a periodic axis the layers a grain occupies are cut at the end of its longest
    run of empty layers (circularly) and unwrapped from there, which is exact for any
    grain that leaves at least one layer empty (a grain that fills every layer is
    taken as is, without unwrapping).
    """
    step = _slab_size(gm.shape)
    safe = np.where(count > 0, count, 1.0)
    cent = np.zeros((n, gm.ndim))
    for a in range(gm.ndim):
        na = gm.shape[a]
        hist = _layer_histogram(gm, n, a, step).astype(np.float64)
        k = np.arange(na, dtype=np.float64) + 0.5
        if per[a] and na > 1:
            c = np.empty(n)
            rows = max(1, _SLAB_VOXELS // (4 * na))  # bounds the (rows, 2 na) temps
            for r in range(0, n, rows):
                c[r : r + rows] = _unwrapped_mean(
                    hist[r : r + rows], k, na, safe[r : r + rows]
                )
        else:
            c = (hist * k[None, :]).sum(axis=1) / safe
        cent[:, a] = origin[a] + c * spacing[a]
    return cent


def _boundary_counts(gm, n, per):
    """Voxel faces of each grain on the box faces of non-periodic axes, per axis."""
    out = np.zeros((n, gm.ndim), np.int64)
    for a in range(gm.ndim):
        if per[a]:
            continue
        first = np.take(gm, 0, axis=a).ravel()
        last = np.take(gm, gm.shape[a] - 1, axis=a).ravel()
        out[:, a] = np.bincount(first, minlength=n) + np.bincount(last, minlength=n)
    return out


def grain_statistics(
    grain_map,
    *,
    n_grains=None,
    spacing=1.0,
    origin=0.0,
    periodic=False,
    seeds=None,
    orientations=None,
    symmetry="cubic",
) -> GrainStatistics:
    """Volume, equivalent diameter, centroid, neighbours and surface area per grain.

    Parameters
    ----------
    grain_map : (H, W) or (D, H, W) array_like of int
        0-based grain ids (no void).
    n_grains : int, optional
        Number of grains (default ``grain_map.max() + 1``; grains without voxels get
        zero volume and a NaN centroid).
    spacing, origin : float or sequence of float
        Voxel size and corner of voxel ``(0, ...)`` per array axis.
    periodic : bool or sequence of bool
        Periodic axes.
    seeds : (N, d) array_like of float, optional
        Seed (site) of each grain, physical units. The facet between grains ``i``
        and ``j`` is a plane with normal ``n = (y_j - y_i) / |y_j - y_i|``
        (minimum image on periodic axes). Without seeds the centroids are used.
    orientations : Orientations, optional
        Crystal orientation and phase of each grain
        (:class:`~rasterquant.microstructure.orientations.Orientations`): fills
        ``misorientation`` (see :func:`misorientation_statistics`).
    symmetry : {"cubic", "none"}
        Crystal symmetry of the misorientation angles.

    Returns
    -------
    GrainStatistics

    Raises
    ------
    ValueError
        For a non-integer map, negative ids, or malformed spacing/origin/seeds.

    Notes
    -----
    Surface area (DESIGN §3): a planar facet of area ``S`` with unit normal ``n``
    crosses ``S |n_k| / A_k`` voxel faces normal to axis ``k`` (``A_k`` the face
    area), so ``S ~ sum_k c_k A_k |n_k|`` from the face counts ``c_k``, an unbiased
    estimate where the plain face sum ``sum_k c_k A_k`` overestimates by up to
    ``sqrt(d)``. For a Laguerre tessellation the facet normal is exactly the seed
    direction. Cost: about ``2 + 3 d`` vectorised passes over the map.
    """
    gm, n = _check_map(grain_map, n_grains)
    ndim = gm.ndim
    h = _per_axis(spacing, ndim, "spacing")
    if (h <= 0).any():
        raise ValueError(f"spacing must be > 0 on every axis, got {spacing!r}")
    o = _per_axis(origin, ndim, "origin")
    per = _periodic_axes(periodic, ndim)
    step = _slab_size(gm.shape)
    count = _slab_bincount(gm, n, step)
    vox = float(np.prod(h))
    volume = count * vox
    if ndim == 3:
        eqd = np.cbrt(6.0 * volume / math.pi)
    else:
        eqd = np.sqrt(4.0 * volume / math.pi)
    centroid = _centroids(gm, n, count, h, o, per)
    centroid[count == 0] = np.nan
    pairs, counts = face_adjacency(gm, periodic=per, n_grains=n)
    face_area = np.array([np.prod(np.delete(h, a)) for a in range(ndim)])
    if seeds is not None:
        ref = np.asarray(seeds, dtype=np.float64)
        if ref.shape != (n, ndim) or not np.isfinite(ref).all():
            raise ValueError(
                f"seeds must be a finite ({n}, {ndim}) array (one per grain), got "
                f"shape {ref.shape}"
            )
    else:
        ref = centroid
    if len(pairs):
        delta = ref[pairs[:, 1]] - ref[pairs[:, 0]]
        lengths = h * np.array(gm.shape)
        for a in range(ndim):
            if per[a]:
                delta[:, a] -= lengths[a] * np.round(delta[:, a] / lengths[a])
        norm = np.sqrt((delta**2).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            nrm = np.abs(delta) / norm[:, None]
        # a degenerate direction (coincident references): fall back to the face sum
        nrm = np.where(np.isfinite(nrm), nrm, 1.0)
        facet = (counts * face_area * nrm).sum(axis=1)
    else:
        facet = np.zeros(0)
    bcount = _boundary_counts(gm, n, per)
    boundary = (bcount * face_area).sum(axis=1).astype(np.float64)
    surface = (
        (
            np.bincount(pairs[:, 0], weights=facet, minlength=n)
            + np.bincount(pairs[:, 1], weights=facet, minlength=n)
            + boundary
        )
        if len(pairs)
        else boundary.copy()
    )
    n_nb = (
        (
            np.bincount(pairs[:, 0], minlength=n)
            + np.bincount(pairs[:, 1], minlength=n)
        ).astype(np.int64)
        if len(pairs)
        else np.zeros(n, np.int64)
    )
    mis = None
    if orientations is not None:
        if orientations.n_grains != n:
            raise ValueError(
                f"orientations has {orientations.n_grains} grains but the map has "
                f"n_grains={n}; expected one orientation per grain"
            )
        mis = misorientation_statistics(
            pairs, orientations, facet_area=facet, symmetry=symmetry
        )
    return GrainStatistics(
        volume=volume,
        equivalent_diameter=eqd,
        centroid=centroid,
        n_neighbours=n_nb,
        surface_area=surface,
        boundary_area=boundary,
        neighbour_pairs=pairs,
        face_counts=counts,
        facet_area=facet,
        misorientation=mis,
    )


# ----------------------------------------------------------------------------------
# grain-boundary misorientations

#: low-angle grain boundary threshold in degrees (Read-Shockley range)
LOW_ANGLE_DEG = 15.0


@dataclass(frozen=True)
class MisorientationStatistics:
    """Misorientation angles across the grain boundaries of a grain map.

    Attributes
    ----------
    pairs : (M, 2) ndarray of int64
        Neighbouring grains ``(i, j)``, ``i < j`` (``GrainStatistics.neighbour_pairs``).
    angles : (M,) ndarray of float64
        Misorientation angle of each pair in degrees; NaN for a pair of grains of
        different phases (an interphase boundary has no misorientation).
    facet_area : (M,) ndarray of float64 or None
        Boundary area of each pair, when known.
    symmetry : str
        "cubic" (disorientation, at most 62.8 degrees) or "none" (at most 180).
    low_angle : float
        Threshold of low-angle boundaries in degrees.
    bin_edges : (B + 1,) ndarray of float64
        Histogram bin edges in degrees (5-degree bins).
    counts : (B,) ndarray of int64
        Same-phase boundaries per bin.
    n_pairs : int
        Same-phase neighbour pairs (the ones with an angle).
    n_interphase : int
        Neighbour pairs of different phases.
    mean, median : float
        Of the angles of same-phase pairs (NaN if there are none).
    low_angle_fraction : float
        Fraction of same-phase pairs with angle ``< low_angle``.
    low_angle_area_fraction : float
        The same fraction weighted by facet area (NaN without areas).
    """

    pairs: np.ndarray = field(repr=False)
    angles: np.ndarray = field(repr=False)
    facet_area: np.ndarray | None = field(repr=False)
    symmetry: str
    low_angle: float
    bin_edges: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)
    n_pairs: int
    n_interphase: int
    mean: float
    median: float
    low_angle_fraction: float
    low_angle_area_fraction: float

    def per_grain_mean(self, n_grains) -> np.ndarray:
        """Mean misorientation of each grain to its same-phase neighbours.

        Parameters
        ----------
        n_grains : int
            Number of grains ``N``.

        Returns
        -------
        (N,) ndarray of float64
            Degrees; NaN for a grain without same-phase neighbours.
        """
        ok = np.isfinite(self.angles)
        p, a = self.pairs[ok], self.angles[ok]
        total = np.bincount(p[:, 0], weights=a, minlength=n_grains) + np.bincount(
            p[:, 1], weights=a, minlength=n_grains
        )
        count = np.bincount(p[:, 0], minlength=n_grains) + np.bincount(
            p[:, 1], minlength=n_grains
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def summary(self) -> dict:
        """Return the scalar statistics and the histogram as a JSON-ready dict."""
        return {
            "symmetry": self.symmetry,
            "n_pairs": self.n_pairs,
            "n_interphase_pairs": self.n_interphase,
            "mean_deg": self.mean,
            "median_deg": self.median,
            "low_angle_threshold_deg": self.low_angle,
            "low_angle_fraction": self.low_angle_fraction,
            "low_angle_area_fraction": self.low_angle_area_fraction,
            "histogram_edges_deg": self.bin_edges.tolist(),
            "histogram_counts": self.counts.tolist(),
        }


def misorientation_statistics(
    pairs,
    orientations,
    *,
    facet_area=None,
    symmetry="cubic",
    low_angle=LOW_ANGLE_DEG,
) -> MisorientationStatistics:
    """Misorientation angles of neighbouring grains and their statistics.

    Parameters
    ----------
    pairs : (M, 2) array_like of int or GrainStatistics
        Neighbouring grain pairs (``GrainStatistics.neighbour_pairs``); a
        :class:`GrainStatistics` gives its pairs and facet areas.
    orientations : Orientations
        Orientation and phase of every grain
        (:class:`~rasterquant.microstructure.orientations.Orientations`).
    facet_area : (M,) array_like of float, optional
        Boundary area of each pair, for the area-weighted low-angle fraction.
    symmetry : {"cubic", "none"}
        Crystal symmetry (cubic: the 24 proper rotations, disorientation angle).
    low_angle : float
        Low-angle threshold in degrees (default 15).

    Returns
    -------
    MisorientationStatistics

    Raises
    ------
    ValueError
        For pairs that are not ``(M, 2)`` grain ids of ``orientations``, a bad
        symmetry or threshold.

    Notes
    -----
    Only pairs of the same phase get an angle. For uniformly random cubic
    orientations the angles follow Mackenzie's distribution (mean 40.7 degrees,
    maximum 62.8, 2.3 % below 15 degrees). Cost: 24 quaternion products per pair.
    """
    from .orientations import misorientation_angles

    if isinstance(pairs, GrainStatistics):
        if facet_area is None:
            facet_area = pairs.facet_area
        pairs = pairs.neighbour_pairs
    pr = np.asarray(pairs)
    n = orientations.n_grains
    if pr.size == 0:
        pr = np.zeros((0, 2), np.int64)
    if (
        pr.ndim != 2
        or pr.shape[1] != 2
        or not np.issubdtype(pr.dtype, np.integer)
        or (len(pr) and (pr.min() < 0 or pr.max() >= n))
    ):
        raise ValueError(
            f"pairs must be (M, 2) grain ids in [0, {n}) (one orientation per grain), "
            f"got shape {pr.shape}"
            + (f" with ids up to {int(pr.max())}" if pr.size else "")
        )
    pr = pr.astype(np.int64)
    if not (
        isinstance(low_angle, numbers.Real)
        and not isinstance(low_angle, bool)
        and 0 < low_angle <= 180
    ):
        raise ValueError(f"low_angle must be in (0, 180] degrees, got {low_angle!r}")
    area = None
    if facet_area is not None:
        area = np.asarray(facet_area, dtype=np.float64)
        if area.shape != (len(pr),):
            raise ValueError(
                f"facet_area must have shape ({len(pr)},) like pairs, got {area.shape}"
            )
    ph = orientations.phases
    same = ph[pr[:, 0]] == ph[pr[:, 1]]
    angles = np.full(len(pr), np.nan)
    q = orientations.quaternions
    angles[same] = misorientation_angles(
        q[pr[same, 0]], q[pr[same, 1]], symmetry=symmetry
    )
    top = 65.0 if symmetry == "cubic" else 180.0
    edges = np.arange(0.0, top + 1e-9, 5.0)
    a = angles[same]
    counts = np.histogram(np.clip(a, 0, top), bins=edges)[0].astype(np.int64)
    low = a < low_angle
    if len(a):
        mean, median, frac = float(a.mean()), float(np.median(a)), float(low.mean())
    else:
        mean = median = frac = math.nan
    area_frac = math.nan
    if area is not None and len(a) and area[same].sum() > 0:
        area_frac = float(area[same][low].sum() / area[same].sum())
    return MisorientationStatistics(
        pairs=pr,
        angles=angles,
        facet_area=area,
        symmetry=str(symmetry),
        low_angle=float(low_angle),
        bin_edges=edges,
        counts=counts,
        n_pairs=int(same.sum()),
        n_interphase=int((~same).sum()),
        mean=mean,
        median=median,
        low_angle_fraction=frac,
        low_angle_area_fraction=area_frac,
    )
