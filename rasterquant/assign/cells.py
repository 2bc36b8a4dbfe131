"""Power (Laguerre) cells on a raster.

Labels, masses, barycenters, energies and the Jacobian.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .. import _config
from .._validation import check_density, check_memory, check_points, check_weights
from ..candidates import build_candidates
from . import _fractional, _kernels, _polygons
from ._laguerre import laguerre_cells

#: quadrature rules: "center" (a pixel belongs to the cell of its centre) or
#: "fractional" (boundary pixels split exactly among the cells crossing them)
QUADRATURES = ("center", "fractional")

__all__ = [
    "Cells",
    "CrowdedPixelsError",
    "QuadratureSpec",
    "assign_cells",
    "mass_jacobian",
]


class CrowdedPixelsError(RuntimeError):
    """A pixel meets more cells than this raster allows (``_Raster.crowd_limit``).

    Raised only on the coarse rasters of a multiscale start, which are then skipped:
    a raster that puts many cells into one pixel is too coarse for these points.
    """


@dataclass(frozen=True)
class QuadratureSpec:
    """A quadrature rule with the switches of its fast paths.

    Wherever a ``quadrature`` name is accepted, a ``QuadratureSpec`` may be given
    instead. The switches change the cost, not the results (up to rounding): tests
    and benchmarks turn them off to compare the paths.

    Attributes
    ----------
    name : {"fractional", "center"}
        The rule (see :func:`assign_cells`).
    polygon_cells : bool
        2D split-pixel passes build the cells as polygons once an earlier Jacobian
        gave their adjacency, when the areas certify them (``_polygons``).
    step_limits : bool
        Newton's line search in 2D follows the cells that fall below the mass floor
        along the step, instead of halving it (``_limits``).
    brute_candidates_max : float
        Candidate lists test every (tile, site) pair, instead of kd-tree range
        queries, up to this many pairs.
    """

    name: str = _config.DEFAULT_QUADRATURE
    polygon_cells: bool = True
    step_limits: bool = True
    brute_candidates_max: float = _config.BRUTE_CANDIDATES_MAX

    @property
    def continuous(self) -> bool:
        """Tell whether the masses are continuous in the weights (split pixels).

        Centre quadrature moves masses in whole pixels: tolerances finer than a
        boundary pixel's share of a cell cannot be met.
        """
        return self.name != "center"


def quadrature_spec(quadrature):
    """Return ``quadrature`` (None, a name or a QuadratureSpec) as a QuadratureSpec.

    None means the default rule, ``_config.DEFAULT_QUADRATURE``. Raises ValueError
    for an unknown name.
    """
    if quadrature is None:
        return QuadratureSpec()
    spec = quadrature
    if not isinstance(spec, QuadratureSpec):
        spec = QuadratureSpec(name=quadrature)
    if not isinstance(spec.name, str) or spec.name not in QUADRATURES:
        raise ValueError(f"quadrature must be one of {QUADRATURES}, got {spec.name!r}")
    return spec


@dataclass(frozen=True)
class Cells:
    """Power cells of points on a raster.

    Attributes
    ----------
    labels : ndarray of int32, shape of the grid
        Index of the cell owning each pixel (centre quadrature).
    masses : (N,) ndarray of float64
        ``rho(Lag_i)``.
    barycenters : (N, d) ndarray of float64
        Barycenters of the cells (inside the box; the site itself for an empty cell).
    energies : (N,) ndarray of float64
        ``int_{Lag_i} |x - y_i|^2 d rho`` including each pixel's own extent.
    energy : float
        Sum of ``energies``.
    points : (N, d) ndarray of float64
    weights : (N,) ndarray of float64
    """

    labels: np.ndarray
    masses: np.ndarray
    barycenters: np.ndarray
    energies: np.ndarray
    energy: float
    points: np.ndarray
    weights: np.ndarray

    @property
    def n_empty(self) -> int:
        """Number of cells without mass."""
        return int(np.count_nonzero(self.masses <= 0))


def polygon_buffer_bytes(density, n, quadrature=None):
    """Return the bytes that polygon passes over ``n`` cells of ``density`` keep.

    2D without periodic axes (and polygon cells on): the raster's two sets of result
    buffers; else 0.
    """
    grid = density.grid
    if grid.ndim != 2 or grid.any_periodic:
        return 0
    if not quadrature_spec(quadrature).polygon_cells:
        return 0
    return 2 * _polygons.buffer_bytes(n)


class _Deferred:
    """A value computed on first call, then kept.

    A Jacobian a rejected step never needs is never assembled.
    """

    def __init__(self, make):
        self._make = make
        self._value = None

    def __call__(self):
        if self._value is None:
            self._value = self._make()
            self._make = None
        return self._value


class _Raster:
    """A density prepared for the kernels, with the points of one problem.

    Private: the solvers call it in their loops after validating once.
    """

    def __init__(self, density, points, quadrature="center"):
        self.spec = spec = quadrature_spec(quadrature)
        self.quadrature = quadrature = spec.name
        self.density = density
        self.grid = grid = density.grid
        self.values3, self.umass = density.kernel_arrays()
        shape3, spacing3, origin3, periodic3 = grid.as_3d()
        self.shape3 = np.array(shape3, dtype=np.int64)
        self.spacing3 = np.array(spacing3, dtype=np.float64)
        self.origin3 = np.array(origin3, dtype=np.float64)
        self.periodic3 = np.array(periodic3, dtype=np.bool_)
        self.lengths3 = self.shape3 * self.spacing3
        self.n_chunks = _config.N_CHUNKS
        self._jac_cap = 1024
        self.truncated = False
        self._maxa = _fractional.MAXA  # active cells a pixel keeps (grows)
        #: the most cells a pixel may meet before the masses are approximate (a
        #: coarse level of a multiscale start sets it lower, and is skipped beyond)
        planar = grid.ndim == 2
        self._maxa_limit = (
            _fractional.MAXA_LIMIT_2D if planar else _fractional.MAXA_LIMIT_3D
        )
        self.crowd_limit = self._maxa_limit
        self.jacobian_floor = 0.0
        self.has_zeros = False
        if self.umass < 0:
            v = density.values
            nnz = np.count_nonzero(v)
            self.jacobian_floor = 1e-3 * float(v.sum() / max(nnz, 1))
            self.has_zeros = nnz < v.size
        self.pixel_extent = float(np.sum(np.array(grid.spacing) ** 2) / 12.0)
        #: exact power cells of a uniform 3D density come from geometry, not voxels
        #: (in 2D pixels are cheap, and coarse rasters give the start, see solve_ot)
        self.geometric = (
            quadrature == "fractional" and self.umass >= 0 and grid.ndim == 3
        )
        if self.geometric:
            lo = np.array(grid.origin, dtype=np.float64)
            self._box = (
                lo,
                lo + np.array(grid.lengths, dtype=np.float64),
                np.array(grid.periodic, dtype=bool),
            )
            self._rho = self.umass / float(np.prod(grid.spacing))
        #: slack of candidate lists built on demand (from the last pass's ``slack``
        #: argument, see ``quadrature.Quadrature.evaluate``)
        self.slack_hint = 0.0
        #: extra slack of new candidate lists, room for the next site moves (Lloyd)
        self.move_slack = 0.0
        self._cand = None
        #: (weights, rows, cols, vals, pixel, jacobian()) of the last fractional
        #: Jacobian's facet pieces (the Jacobian assembled on call)
        self.facets = None
        #: the cells' adjacency (indptr, indices) of the last assembled Jacobian: the
        #: candidates of polygon passes (see ``_polygons``)
        self.graph = None
        self._poly_data = None
        #: ring depth the next polygon pass starts with: 3 for long (damped) Newton
        #: steps, whose cells meet neighbours from further away (from the last
        #: pass's ``damped`` argument, see ``quadrature.Quadrature.evaluate``)
        self.poly_depth = 2
        #: result arrays of polygon passes, used in turn: the last pass's results
        #: (its deferred Jacobian, links and facets) stay valid during the next one
        self._poly_pool = []
        #: (weights, pixel boxes of the cells, links or None) of the last polygon
        #: passes, the newest first (only it keeps its links: they live in the pool)
        self._poly_boxes = []
        self.set_points(points)
        # facet pieces of a first Jacobian pass: at most about 10 n sqrt(pixels per
        # cell) / chunks per chunk in 2D, 24 n (voxels per cell)^(2/3) / chunks in 3D
        # (uneven chunks included); room for them saves rerunning overflowing chunks
        d = grid.ndim
        ppc = grid.n_pixels / max(self.n, 1)
        est = (10.0 if d == 2 else 24.0) * self.n * ppc ** ((d - 1) / d)
        # and at most 4 (2D: cells of a few pixels, split among 3+ cells) or 2 (3D)
        # per pixel of an average chunk
        per_pixel = 4 if d == 2 else 2
        self._jac_cap = max(
            1024,
            min(
                int(est / self.n_chunks),
                per_pixel * grid.n_pixels // self.n_chunks + 16,
            ),
        )

    def set_points(self, points):
        """Move the sites; candidate lists are kept while their move bound holds."""
        self.facets = None
        self._poly_boxes = []
        if len(points) != getattr(self, "n", -1):
            self._poly_pool = []  # (kept while the number of sites holds)
        self._moved = None
        self.points = points
        self.n = len(points)
        if self.grid.ndim == 3:
            self.points3 = np.ascontiguousarray(points)
        else:
            self.points3 = np.ascontiguousarray(
                np.column_stack([np.full(self.n, 0.5), points])
            )

    def plan(self, weights, slack):
        """Build candidate lists valid for all weights within ``slack`` of these."""
        whole = self.quadrature == "fractional"
        slack = float(slack) + self.move_slack
        cl = build_candidates(
            self.grid,
            self.points,
            weights,
            whole_pixels=whole,
            slack=slack,
            brute_max=self.spec.brute_candidates_max,
        )
        self._cand = (
            np.array(weights, dtype=np.float64),
            slack,
            cl,
            self.points3.copy(),
        )
        self._moved = cl

    def expect_moves(self, distance):
        """Give new candidate lists room for site moves of about ``distance`` each.

        Lists built with slack ``E + D^2 + D H`` stay exact for moves up to ``D``
        (``H`` from the last lists); room for about three moves saves rebuilding them
        after every Lloyd step.
        """
        gain = self._cand[2].move_gain if self._cand is not None else 0.0
        self.move_slack = 3.0 * (distance * gain + distance * distance)

    def covers(self, weights, reach=0.0):
        """Tell whether the cached candidate lists hold for weights within ``reach``."""
        if self._cand is None:
            return False
        ref, slack, cl, ref_points = self._cand
        e = float(np.max(np.abs(weights - ref))) + reach
        dz = self._site_moves(ref_points)
        d = 0.0 if dz is None else float(np.sqrt((dz * dz).sum(axis=1).max()))
        return e + d * d + d * cl.move_gain <= slack

    def _site_moves(self, ref_points):
        """Return site moves (N, 3) since ``ref_points`` (minimum image), or None."""
        if ref_points is self.points3 or np.array_equal(ref_points, self.points3):
            return None
        dz = self.points3 - ref_points
        if self.periodic3.any():
            dz = np.where(
                self.periodic3, dz - self.lengths3 * np.round(dz / self.lengths3), dz
            )
        return dz

    def candidates(self, weights):
        """Candidate lists for ``weights``: cached ones if still valid, else new.

        New lists get the slack ``slack_hint``, so that the next Newton steps can
        reuse them.
        """
        if not self.covers(weights):
            self.plan(weights, self.slack_hint)
        if self._moved is None:
            # the lists hold for the moved sites: move their copies along
            _, _, cl, ref_points = self._cand
            dz = self._site_moves(ref_points)
            self._moved = (
                cl
                if dz is None
                else dataclasses.replace(
                    cl, sites=np.ascontiguousarray(cl.sites + dz[cl.owner])
                )
            )
        return self._moved

    def labels_masses(self, weights, labels=None):
        """Labels (D, H, W) int32 and masses (N,) for the given weights."""
        if labels is None:
            labels = np.empty(tuple(self.shape3), dtype=np.int32)
        if self.geometric:
            self._centre_labels(weights, labels)
            return labels, self._geometric(weights, False, False)[0][:, 0]
        if self.quadrature == "fractional":
            out, _ = self._fractional(weights, labels, False, False)
            return labels, out[:, :, 0].sum(axis=0)
        out = self._centre_labels(weights, labels)
        return labels, out[:, :, 0].sum(axis=0)

    def _kernel_inputs(self, cl, weights):
        """Return the kernels' ``(tiling, geom, cands)`` tuples for lists ``cl``.

        ``tiling = (shape3, tile, n_tiles, sub)`` (int64), ``geom = (spacing3,
        origin3)``, ``cands = (sites, site weights, owner, cand_ptr, cand_idx)``.
        """
        tiling = (
            self.shape3,
            np.array(cl.tile, dtype=np.int64),
            np.array(cl.n_tiles, dtype=np.int64),
            np.array(cl.sub, dtype=np.int64),
        )
        site_w = np.ascontiguousarray(weights[cl.owner])
        cands = (cl.sites, site_w, cl.owner, cl.cand_ptr, cl.cand_idx)
        return tiling, (self.spacing3, self.origin3), cands

    def _centre_labels(self, weights, labels, n_sums=1):
        """Label every pixel with the cell of its centre.

        Returns the per-chunk masses (n_chunks, N, 1), or with ``n_sums=5`` the masses
        and moments about the owning site copy (n_chunks, N, 5).
        """
        cl = self.candidates(weights)
        tiling, geom, cands = self._kernel_inputs(cl, weights)
        dens = (self.values3, self.umass)
        return _kernels._assign_tiles(
            tiling, geom, cands, dens, self.n, self.n_chunks, labels, n_sums
        )

    def _geometric(self, weights, want_moments, want_jac):
        """Exact cells of the uniform density: (out (N, 5), Jacobian or None)."""
        lo, hi, periodic = self._box
        out, rows, cols, vals = laguerre_cells(
            self.points, weights, lo, hi, periodic, want_moments, want_jac
        )
        out *= self._rho
        jac = self._assemble(rows, cols, vals * self._rho) if want_jac else None
        return out, jac

    def _fractional(self, weights, labels3, want_moments, want_jac, floor=0.0):
        """One fractional pass; returns (per-chunk sums, Jacobian callable or None)."""
        cl = self.candidates(weights)
        tiling, geom, cands = self._kernel_inputs(cl, weights)
        cap = self._jac_cap if want_jac else 1
        redo = np.ones(self.n_chunks, dtype=np.bool_)
        parts = [None] * self.n_chunks  # per chunk: (rows, cols, vals, pix)
        out = None
        sweep = (
            _fractional._fractional_tiles_2d
            if self.grid.ndim == 2
            else _fractional._fractional_tiles_3d
        )
        peak = 0  # the most split-pixel pairs of a chunk
        while True:
            cap, rows, cols, vals, pix = self._triplet_buffers(cap)
            out_r, counts, status = sweep(
                tiling,
                geom,
                cands,
                (self.values3, self.umass),
                self.pixel_extent,
                self.n,
                self.n_chunks,
                labels3,
                (want_moments, want_jac, floor, cap, self._maxa),
                (rows, cols, vals, pix),
                redo,
            )
            if out is None:
                out = out_r
            else:
                out[redo] = out_r[redo]
            peak = max(peak, int(counts.max()))
            crowded = redo & ((status & 1) != 0)
            lowered = self.crowd_limit < self._maxa_limit
            if crowded.any() and lowered and self._maxa >= self.crowd_limit:
                raise CrowdedPixelsError(
                    f"a pixel meets more than {self._maxa} cells on this raster"
                )
            if crowded.any() and self._maxa < self._maxa_limit:
                # a pixel met more cells than the scratch holds: rerun its chunks
                # with room for more (kept for the later passes)
                self._maxa = min(4 * self._maxa, self._maxa_limit)
                if want_jac:
                    fits = redo & ~crowded & (counts <= cap)
                    for c in np.flatnonzero(fits):
                        k = counts[c]
                        parts[c] = (rows[c, :k], cols[c, :k], vals[c, :k], pix[c, :k])
                    redo = redo & ~fits
                    cap = max(cap, int(counts[redo].max() * 1.25) + 16)
                else:
                    redo = crowded
                continue
            if (status != 0).any() and not self.truncated:
                self.truncated = True
                what = (
                    f"a pixel meets more than {self._maxa} cells that none of the "
                    "others dominates"
                    if crowded.any()
                    else "the clipper failed on a voxel (rounding)"
                )
                warnings.warn(
                    f"fractional quadrature: {what}; the masses there are "
                    f"approximate (expected at most {self._maxa} cells a pixel: "
                    "use fewer points per pixel)",
                    RuntimeWarning,
                    stacklevel=4,
                )
            if not want_jac:
                # counts are the split pixels' pairs: the Jacobian pass needs at most
                # that many triplets per chunk
                self._jac_cap = max(int(peak * 1.25) + 64, 64)
                break
            fits = redo & (counts <= cap)
            for c in np.flatnonzero(fits):
                k = counts[c]
                parts[c] = (rows[c, :k], cols[c, :k], vals[c, :k], pix[c, :k])
            redo = redo & ~fits
            if not redo.any():
                break
            # rerun only the chunks whose triplets overflowed, with room for them
            cap = int(counts[redo].max() * 1.25) + 16
            self._jac_cap = cap
        jac = None
        if want_jac:
            r, cc, v, pieces = (np.concatenate([p[a] for p in parts]) for a in range(4))
            seg = np.concatenate([[0], np.cumsum([len(p[0]) for p in parts])])
            jac = _Deferred(
                lambda: self._assemble(r, cc, v, seg.astype(np.int64), adjacency=True)
            )
            # the facet pieces, for the first-order effect of moving the sites
            self.facets = (np.array(weights, dtype=np.float64), r, cc, v, pieces, jac)
        return out, jac

    def _triplet_buffers(self, cap):
        """Return per-chunk Jacobian triplet buffers with room for ``cap``.

        Returns ``(cap, rows, cols, vals, pixels)``; the buffers are kept between
        passes (their pages are not faulted in again), so ``cap`` may be larger than
        asked. A rerun after an overflow always asks for more than any kept buffer.
        """
        kept = getattr(self, "_buffers", None)
        if kept is not None and kept[0] >= cap:
            return kept
        shape = (self.n_chunks, cap)
        kept = (
            cap,
            np.empty(shape, np.int64),
            np.empty(shape, np.int64),
            np.empty(shape),
            np.empty(shape, np.int64),
        )
        if cap > 1:
            self._buffers = kept
        return kept

    def _assemble(self, rows, cols, vals, segments=None, adjacency=False):
        """Build the (N, N) CSR Laplacian of facet pieces ``(rows, cols, vals)``.

        With ``segments`` (the chunks of a pass), the pieces of each facet are first
        summed within their chunk (several times fewer entries to assemble). With
        ``adjacency`` (the exact Jacobian of a fractional pass), its pattern becomes
        the cells' adjacency graph (the candidates of polygon passes).
        """
        n = self.n
        if segments is not None:
            rows, cols, vals = _kernels._merge_pairs(rows, cols, vals, segments, n)
        indptr, indices, data = _kernels._laplacian_csr(rows, cols, vals, n)
        jac = sp.csr_matrix((data, indices, indptr), shape=(n, n))
        jac.has_sorted_indices = True
        if adjacency:
            self.graph = (indptr.copy(), indices.copy())
        return jac

    def polygon_ready(self):
        """Tell whether a pass can build the cells as polygons (see ``_polygons``).

        2D fractional rasters without periodic axes, once an earlier Jacobian gave the
        cells' adjacency.
        """
        return (
            self.spec.polygon_cells
            and self.graph is not None
            and self.quadrature == "fractional"
            and self.grid.ndim == 2
            and not self.grid.any_periodic
            and len(self.graph[0]) == self.n + 1
        )

    def poly_data(self):
        """Return ``(rho, rhol, lo, hi, spacing)`` for polygon passes (made once).

        ``rho`` the density per unit area (H, W), ``rhol`` the floor density of the
        zero pixels (or None), the box's corners and the pixel size.
        """
        if self._poly_data is None:
            hy, hx = self.grid.spacing
            v = (
                np.full(self.grid.shape, self.umass)
                if self.umass >= 0
                else self.density.values
            )
            rho = np.ascontiguousarray(v / (hy * hx), dtype=np.float64)
            lo = np.array(self.grid.origin, dtype=np.float64)
            # the floor density of zero pixels: the weak links (see floor_links)
            rhol = None
            if self.has_zeros:
                rhol = np.where(rho > 0, 0.0, self.jacobian_floor / (hy * hx))
            self._poly_data = (
                rho,
                rhol,
                lo,
                lo + np.array(self.grid.lengths, dtype=np.float64),
                np.array(self.grid.spacing, dtype=np.float64),
            )
        return self._poly_data

    def _polygon(self, weights, want_jac, want_moments=False, floor=None):
        """Polygon cells: ``(masses, out, jacobian, exact)``, or None.

        ``out`` (N, 5) as a pixel pass's sums (mass, moments about the site, second
        moment) or None; the Jacobian deferred, or None. None if the pass is not
        certified, except with a ``floor`` that it bounds some mass below: then
        ``(upper bounds of the masses, None, None, False)``.
        """
        rho, rhol, lo, hi, spacing = self.poly_data()
        res = _polygons.polygon_cells(
            np.ascontiguousarray(self.points, dtype=np.float64),
            np.ascontiguousarray(weights, dtype=np.float64),
            self.graph,
            lo,
            hi,
            lo,
            spacing,
            rho,
            rhol,
            want_jac,
            self.n_chunks,
            self.poly_depth,
            want_moments,
            self._poly_buffers(),
            floor,
        )
        if res is None:
            return None
        if res.upper_bound:
            return res.masses.copy(), None, None, False
        w = np.array(weights, dtype=np.float64)
        # the cells' windows for the step limits (which would read them from labels),
        # and the weak links through zero pixels
        older = [(w_, b_, None) for w_, b_, _ in self._poly_boxes[: self.POLY_KEEP - 1]]
        entry = (w, res.boxes.copy(), (res.rows, res.cols, res.lvals))
        self._poly_boxes = [entry, *older]
        out = None
        if want_moments:
            out = np.zeros((self.n, 5))
            out[:, 0] = res.masses
            out[:, 2:5] = res.moments
        jac = None
        if want_jac:
            rows, cols, vals = res.rows, res.cols, res.vals
            jac = _Deferred(lambda: self._assemble(rows, cols, vals, adjacency=True))
            # the facets with their centres, for the first-order effect of moving
            # the sites (lloyd)
            self.facets = (w, rows, cols, vals, res.centres, jac)
        # (the masses outlive the pool: the solver keeps its best iterate)
        return res.masses.copy(), out, jac, True

    #: polygon passes whose boxes are kept (for the step limits)
    POLY_KEEP = 3

    def _poly_buffers(self):
        """Return the next of the pool's two sets of buffers.

        The other set holds the results of the last pass.
        """
        pool = self._poly_pool
        if len(pool) < 2:
            pool.append(_polygons.new_buffers(self.n))
            return pool[-1]
        bufs = pool.pop(0)
        pool.append(bufs)
        return bufs

    def cell_boxes(self, weights):
        """Pixels each cell meets (N, 4) at ``weights``, or None.

        First and last row, first and last column, from one of the last polygon passes
        (None if none was at these weights).
        """
        for w, boxes, _ in self._poly_boxes:
            if np.array_equal(w, weights):
                return boxes
        return None

    def centre_labels(self, weights):
        """Labels (D, H, W) int32 of the pixel centres (no masses)."""
        labels = np.empty(tuple(self.shape3), dtype=np.int32)
        self._centre_labels(weights, labels)
        return labels

    def evaluate(self, weights, labels=None, want_moments=False, want_jac=False):
        """Labels, masses, and optionally moments and the exact Jacobian, in one pass.

        Fractional quadrature computes all of them in a single sweep; centre quadrature
        runs the separate passes. Returns ``(labels, masses, moments, jacobian)``, with
        ``moments = (masses, barycenters, energies)`` or None, and the Jacobian (no
        floor) or None.
        """
        labels, m, mom, jac = self.evaluate_deferred(
            weights, labels, want_moments, want_jac
        )
        return labels, m, mom, None if jac is None else jac()

    def evaluate_deferred(
        self, weights, labels=None, want_moments=False, want_jac=False, floor=None
    ):
        """As :meth:`evaluate`, with the Jacobian as a callable (or None).

        The callable assembles the Jacobian on its first call: a Newton trial step
        that is rejected never pays for it. With a mass ``floor``, a polygon pass
        that is not certified but whose cells (supersets of the true ones) prove some
        mass below the floor returns those upper bounds of the masses, no moments and
        no Jacobian: enough to reject a Newton trial, without a pixel pass.
        """
        if self.quadrature != "fractional":
            labels, m = self.labels_masses(weights, labels)
            mom = self.moments(labels) if want_moments else None
            jac = self.jacobian(labels, 0.0, weights) if want_jac else None
            return labels, m, mom, None if jac is None else _Deferred(lambda: jac)
        if self.geometric:
            # no pixels: the labels are left to whoever needs them (None)
            out, jac = self._geometric(weights, want_moments, want_jac)
            mom = self._finish_moments(out, 0.0) if want_moments else None
            return (
                None,
                np.ascontiguousarray(out[:, 0]),
                mom,
                None if jac is None else _Deferred(lambda: jac),
            )
        if self.polygon_ready():
            # built as polygons, no labels (None)
            res = self._polygon(weights, want_jac, want_moments, floor)
            if res is not None:
                m, out, jac, exact = res
                if not exact:
                    return None, m, None, None  # upper bounds below the floor
                mom = self._finish_moments(out, 0.0) if want_moments else None
                return None, m, mom, jac
        if labels is None:
            labels = np.empty(tuple(self.shape3), dtype=np.int32)
        out, jac = self._fractional(weights, labels, want_moments, want_jac)
        out = out.sum(axis=0)
        mom = self._finish_moments(out, 0.0) if want_moments else None
        return labels, np.ascontiguousarray(out[:, 0]), mom, jac

    def moments(self, labels3, weights=None):
        """Masses (N,), barycenters (N, d) and energies (N,) of the cells.

        Centre quadrature sums over the labelled pixels; fractional quadrature needs the
        ``weights`` and integrates the pieces of the boundary pixels exactly.
        """
        if self.quadrature == "fractional":
            if weights is None:
                raise ValueError("fractional moments need the weights")
            if self.geometric:
                out = self._geometric(weights, True, False)[0]
            else:
                if labels3 is None:
                    labels3 = np.empty(tuple(self.shape3), dtype=np.int32)
                out = self._fractional(weights, labels3, True, False)[0].sum(axis=0)
            extent = 0.0
        else:
            out = _kernels._cell_moments(
                labels3,
                self.values3,
                self.umass,
                self.points3,
                self.spacing3,
                self.origin3,
                self.lengths3,
                self.periodic3,
                self.n_chunks,
            ).sum(axis=0)
            extent = self.pixel_extent
        return self._finish_moments(out, extent)

    def _finish_moments(self, out, extent):
        masses = out[:, 0]
        safe = np.where(masses > 0, masses, 1.0)
        shift = out[:, 1:4] / safe[:, None]
        bary3 = self.points3 + shift
        bary = bary3 if self.grid.ndim == 3 else bary3[:, 1:]
        if self.grid.any_periodic:
            bary = self.grid.wrap(bary)
        energies = out[:, 4] + masses * extent
        return masses, np.ascontiguousarray(bary), energies

    def jacobian(self, labels3, floor=0.0, weights=None):
        """Sparse symmetric ``dm/dpsi`` (CSR) from the discrete boundary sums.

        ``floor`` is a pixel mass below which faces count as if their pixels had that
        mass: the solver uses a tiny floor to keep cells separated by zero density
        connected. Fractional quadrature needs the ``weights`` and returns the exact
        derivative of its masses.
        """
        if self.quadrature == "fractional":
            if weights is None:
                raise ValueError("the fractional Jacobian needs the weights")
            if self.geometric:
                return self._geometric(weights, False, True)[1]
            _, jac = self._fractional(weights, labels3, False, True, floor)
            return jac()
        return self._face_jacobian(labels3, floor, False)

    def floor_links(self, labels3, weights=None):
        """Laplacian of the faces between zero-density pixels, with the floor mass.

        Added to the exact Jacobian, it keeps cells that meet only where the density
        is zero weakly connected (a regulariser of the Newton systems; None when the
        density has no zero pixel). Without labels (after a polygon pass at
        ``weights``), the facets through zero pixels at the floor density. Links made
        from labels also join the adjacency graph: a pixel pass lists no facet
        where the density is zero.
        """
        if not self.has_zeros:
            return None
        if labels3 is None:
            for w, _, links in self._poly_boxes:
                if links is not None and np.array_equal(w, weights):
                    return self._assemble(*links)
            labels3 = self.centre_labels(weights)
        links = self._face_jacobian(labels3, self.jacobian_floor, True)
        self._extend_graph(links)
        return links

    def _extend_graph(self, links):
        """Add the pattern of ``links`` (weak links) to the adjacency graph."""
        if self.graph is None:
            return
        n = self.n
        ones = np.ones(len(self.graph[1]))
        g = sp.csr_matrix((ones, self.graph[1], self.graph[0]), shape=(n, n))
        u = (g + abs(links)).tocsr()
        u.sort_indices()
        self.graph = (u.indptr.astype(np.int64), u.indices.astype(np.int64))

    def _face_jacobian(self, labels3, floor, zero_only):
        geometry = (self.spacing3, self.origin3, self.lengths3, self.periodic3)
        common = (
            labels3,
            self.values3,
            self.umass,
            floor,
            self.points3,
            geometry,
            self.n_chunks,
        )
        dummy_i = np.zeros(1, np.int64)
        dummy = (np.zeros(self.n_chunks, np.int64), dummy_i, dummy_i, np.zeros(1))
        counts = _kernels._face_sums(*common, True, dummy, zero_only)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        total = int(counts.sum())
        rows = np.empty(max(total, 1), np.int64)
        cols = np.empty(max(total, 1), np.int64)
        vals = np.empty(max(total, 1))
        _kernels._face_sums(*common, False, (offsets, rows, cols, vals), zero_only)
        # the faces of one chunk repeat each pair many times: merge them per chunk
        segments = np.append(offsets, total).astype(np.int64)
        return self._assemble(rows[:total], cols[:total], vals[:total], segments)

    def boundary_pixel_mass(self, labels3):
        """Largest pixel mass on the boundary of each cell, (N,)."""
        return _kernels._boundary_pixel_mass(
            labels3, self.values3, self.umass, self.n, self.n_chunks
        ).max(axis=0)

    def cells(self, weights, labels3=None):
        if labels3 is None and self.geometric:
            labels3 = np.empty(tuple(self.shape3), dtype=np.int32)
            self._centre_labels(weights, labels3)
        elif labels3 is None and self.quadrature == "fractional":
            # the moments pass writes the labels too: one sweep, not two
            labels3 = np.empty(tuple(self.shape3), dtype=np.int32)
        elif labels3 is None and not self.grid.any_periodic:
            # centre quadrature: the sweep sums the moments too (one pass)
            labels3 = np.empty(tuple(self.shape3), dtype=np.int32)
            out = self._centre_labels(weights, labels3, 5).sum(axis=0)
            return self._cells(
                weights, labels3, self._finish_moments(out, self.pixel_extent)
            )
        elif labels3 is None:
            labels3, _ = self.labels_masses(weights)
        return self._cells(weights, labels3, self.moments(labels3, weights))

    def _cells(self, weights, labels3, moments):
        masses, bary, energies = moments
        labels = labels3 if self.grid.ndim == 3 else labels3[0]
        return Cells(
            labels=labels,
            masses=masses,
            barycenters=bary,
            energies=energies,
            energy=float(energies.sum()),
            points=self.points,
            weights=weights,
        )


def assign_cells(
    density, points, weights=None, *, quadrature=_config.DEFAULT_QUADRATURE
) -> Cells:
    """Power cells of weighted points on a raster density (centre quadrature).

    Parameters
    ----------
    density : Density or (H, W) / (D, H, W) array_like of float
        The density; arrays are normalised to sum 1 on a unit-spacing grid.
    points : (N, d) array_like of float
        Sites in physical coordinates, array axis order.
    weights : (N,) array_like of float, optional
        Power weights ``psi``; zero (Voronoi cells) by default.
    quadrature : {"center", "fractional"}
        ``"fractional"`` (default): pixels crossed by cell boundaries are split
        exactly among the cells (masses, barycenters and energies are exact integrals
        of the piecewise-constant density); labels stay the centre owners.
        ``"center"``: each pixel belongs wholly to the cell owning its centre.

    Returns
    -------
    Cells
        Labels (int32), masses, barycenters and energies.

    Raises
    ------
    ValueError
        For NaN/inf, points outside the grid, duplicate points or wrong shapes.

    Notes
    -----
    ``L_i = {x : |x - y_i|^2 - psi_i <= |x - y_j|^2 - psi_j for all j}``; a pixel
    belongs to the cell of its centre, the lowest index winning exact ties. The sweep
    costs O(pixels x candidates per pixel) with exact per-tile candidate lists.

    Examples
    --------
    >>> import numpy as np
    >>> cells = assign_cells(np.ones((4, 4)), [[2.0, 1.0], [2.0, 3.0]])
    >>> cells.masses.tolist()
    [0.5, 0.5]
    """
    density = check_density(density)
    pts = check_points(points, density.grid)
    w = check_weights(weights, len(pts))
    check_memory(
        density.grid.n_pixels,
        len(pts),
        uniform=density.is_uniform,
        n_label_arrays=1,
        what="assign_cells",
    )
    return _Raster(density, pts, quadrature).cells(w)


def mass_jacobian(
    density,
    points,
    weights=None,
    *,
    labels=None,
    quadrature=_config.DEFAULT_QUADRATURE,
):
    """Sparse Jacobian ``dm_i/dpsi_j`` of cell masses (CSR, symmetric, zero row sums).

    Off-diagonal entries are ``-(1 / (2|y_i - y_j|)) int_{facet} rho`` estimated by the
    discrete boundary sums with the staircase correction ``|n_k|`` (DESIGN §3).
    """
    density = check_density(density)
    pts = check_points(points, density.grid)
    w = check_weights(weights, len(pts))
    r = _Raster(density, pts, quadrature)
    if quadrature == "fractional":
        labels3, _ = r.labels_masses(w)
        return r.jacobian(labels3, 0.0, w)
    if labels is None:
        labels3, _ = r.labels_masses(w)
    else:
        labels3 = np.ascontiguousarray(labels, dtype=np.int32).reshape(tuple(r.shape3))
    return r.jacobian(labels3)
