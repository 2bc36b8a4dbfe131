"""The quadrature seam: how the cells of a raster density are integrated.

Consumers (Newton, Lloyd, stipple, microstructures) ask a quadrature object for
cells and never for how they are integrated. The object is chosen once, by
:func:`make_quadrature`, from the density and the user's ``quadrature``:

- :class:`CentrePixels` (``"center"``): a pixel belongs wholly to the cell of its
  centre; masses move in whole pixels (piecewise constant in the weights).
- :class:`SplitPixels` (``"fractional"``, 3D or periodic rasters): boundary pixels are
  split exactly among the cells crossing them; masses are continuous and every pass
  also gives the exact Jacobian.
- :class:`PolygonCells` (``"fractional"``, 2D without periodic axes): as split pixels,
  and once a Jacobian gave the cells' adjacency, passes build the cells as polygons
  (no pixel sweep) where their areas certify them.
- :class:`GeometricCells` (``"fractional"`` on a uniform 3D density): the exact power
  cells from geometry (``_laguerre``), no voxels at all.

Every family answers :meth:`Quadrature.evaluate` with a :class:`CellPass`, plus
:meth:`Quadrature.move_rates` (first-order mass change of moving the sites, for
Lloyd's weight predictor) and :meth:`Quadrature.step_limits` (Newton's line-search
limits). The pixel work itself is done by the private engine ``cells._Raster`` and
the kernels under it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from . import _fractional, _kernels
from ._limits import crushed_cells, step_limit
from .cells import CrowdedPixelsError, _Raster, quadrature_spec

__all__ = [
    "CellPass",
    "CentrePixels",
    "CrowdedPixelsError",
    "GeometricCells",
    "PolygonCells",
    "Quadrature",
    "SplitPixels",
    "make_quadrature",
]


@dataclass(frozen=True)
class CellPass:
    """The cells at one set of weights, as one pass integrated them.

    Attributes
    ----------
    weights : (N,) ndarray of float64
    labels : (D, H, W) ndarray of int32 or None
        Cell of each pixel centre (2D rasters as (1, H, W)); None when the pass
        built the cells without pixels (polygon and geometric cells).
    masses : (N,) ndarray of float64
        Cell masses; for a pass that stopped early at a ``floor`` (see
        :meth:`Quadrature.evaluate`), upper bounds of them, one below the floor.
    moments : tuple or None
        ``(masses, barycenters (N, d), energies (N,))`` when asked for.
    facets : tuple or None
        ``(weights, rows, cols, vals, where, jacobian)``: the Jacobian's facet pieces
        and where each lies (a pixel index, or a point for polygon cells), when the
        pass computed the Jacobian; read by :meth:`Quadrature.move_rates`.
    boxes : (N, 4) ndarray of int64 or None
        Pixels each cell meets (first and last row, first and last column) when the
        pass knows them without labels (polygon cells).
    """

    weights: np.ndarray
    labels: np.ndarray | None
    masses: np.ndarray
    moments: tuple | None = None
    facets: tuple | None = field(default=None, repr=False)
    boxes: np.ndarray | None = field(default=None, repr=False)
    _jacobian: object = field(default=None, repr=False, compare=False)

    @property
    def has_jacobian(self) -> bool:
        """Tell whether the pass can give the Jacobian (assembled on first use)."""
        return self._jacobian is not None

    @property
    def jacobian(self):
        """Sparse ``dm/dpsi`` (CSR) at ``weights``, assembled on first use, or None."""
        return None if self._jacobian is None else self._jacobian()


class Quadrature:
    """One way of integrating the power cells of points over a raster density.

    Made by :func:`make_quadrature`; one object serves every pass of a problem (its
    candidate lists and adjacency are reused while they hold).
    """

    #: masses continuous in the weights: every pass gives the exact Jacobian
    continuous = True
    #: coarser rasters of the same box give a close start (multiscale)
    coarsens = True
    #: Lloyd may retry a failed solve from the centre-quadrature solution
    centre_fallback = True
    #: the multiscale start ends with the exact solution on this raster
    exact_start = False

    def __init__(self, raster):
        self.raster = raster
        self.spec = raster.spec
        #: the problem: density, its grid, whether it has zero pixels, and the mass
        #: of every pixel of a uniform density (else -1)
        self.density = raster.density
        self.grid = raster.grid
        self.has_zeros = raster.has_zeros
        self.pixel_mass = raster.umass

    @property
    def points(self):
        """The sites (N, d) (they move with :meth:`set_points`)."""
        return self.raster.points

    @property
    def n(self):
        """Number of sites."""
        return self.raster.n

    @property
    def adjacency(self):
        """The cells' adjacency ``(indptr, indices)`` of the last Jacobian, or None."""
        return self.raster.graph

    @adjacency.setter
    def adjacency(self, graph):
        self.raster.graph = graph

    def set_points(self, points):
        """Move the sites; candidate lists are kept while their move bound holds."""
        self.raster.set_points(points)

    def expect_moves(self, distance):
        """Give new candidate lists room for site moves of about ``distance``."""
        self.raster.expect_moves(distance)

    def centre_on(self, density):
        """Return centre pixels on ``density`` (a raster of the same box)."""
        spec = dataclasses.replace(self.spec, name="center")
        return make_quadrature(density, self.points, spec)

    def exact_on(self, density, coarse=False):
        """Return the exact (split-pixel) family on ``density``, same switches.

        ``coarse``: a level of a multiscale start. A pass on which a pixel meets more
        cells than a pass holds at first raises :class:`CrowdedPixelsError` (the
        raster is too coarse for these points; a crowded pixel costs the square of
        its cells).
        """
        spec = dataclasses.replace(self.spec, name="fractional")
        quad = make_quadrature(density, self.points, spec)
        if coarse:
            quad.raster.crowd_limit = _fractional.MAXA
        return quad

    # -- passes
    def evaluate(
        self,
        weights,
        *,
        moments=False,
        jacobian=False,
        floor=None,
        labels=None,
        slack=0.0,
        damped=False,
    ) -> CellPass:
        """Masses, and optionally moments and the Jacobian, at ``weights``.

        Parameters
        ----------
        weights : (N,) ndarray of float64
        moments, jacobian : bool
            Also compute the moments; make the Jacobian available (assembled when
            first read; continuous families compute it in the same pass).
        floor : float, optional
            A mass floor: a polygon pass that cannot certify its cells but proves
            some mass below the floor returns upper bounds of the masses, no moments
            and no Jacobian (enough to reject a Newton trial).
        labels : (D, H, W) ndarray of int32, optional
            A buffer for the labels.
        slack : float
            Room in the weights of candidate lists built for this pass (the next
            Newton steps reuse them).
        damped : bool
            The weights come from a damped Newton step: cells moved far, polygon
            passes look further for their neighbours.
        """
        r = self.raster
        r.slack_hint = slack
        r.poly_depth = 3 if damped else 2
        labels, m, mom, jac = r.evaluate_deferred(
            weights, labels, moments, jacobian, floor=floor
        )
        return self._pass(weights, labels, m, mom, jac)

    def _pass(self, weights, labels, masses, moments, jac):
        r = self.raster
        return CellPass(
            weights=np.array(weights, dtype=np.float64),
            labels=labels,
            masses=masses,
            moments=moments,
            facets=r.facets if jac is not None else None,
            boxes=r.cell_boxes(weights) if labels is None else None,
            _jacobian=jac,
        )

    def labels_masses(self, weights, labels=None, slack=0.0):
        """Centre labels (D, H, W) int32 and masses (N,): the cheapest full pass."""
        self.raster.slack_hint = slack
        return self.raster.labels_masses(weights, labels)

    def moments(self, labels, weights):
        """Masses, barycenters and energies of the cells at ``weights``."""
        return self.raster.moments(labels, weights)

    def cells(self, weights, labels=None):
        """Return the :class:`~rasterquant.assign.Cells` at ``weights``."""
        return self.raster.cells(weights, labels)

    def jacobian(self, labels, weights):
        """Sparse ``dm/dpsi`` at ``weights`` (``labels`` of the same weights)."""
        return self.raster.jacobian(labels, 0.0, weights)

    def floor_links(self, labels, weights):
        """Weak links through zero pixels (a Laplacian), or None; see ``_Raster``."""
        return self.raster.floor_links(labels, weights)

    def voronoi_moments(self, weights):
        """Masses, barycenters and energies for a Lloyd (Voronoi) step at ``weights``.

        Continuous families take one pass, whose Jacobian in 2D primes the cells'
        adjacency (the next pass may then build them as polygons).
        """
        r = self.raster
        labels, _, moments, jac = r.evaluate_deferred(
            weights, None, True, r.grid.ndim == 2
        )
        if jac is not None:
            jac()
            if labels is not None:
                # a pixel pass: its floor links add the facets through zero pixels
                # to the adjacency
                r.floor_links(labels)
        return moments

    def granularity(self, labels, alpha):
        """Largest boundary pixel mass relative to the target, or None.

        Only for families whose masses move in whole pixels (centre pixels).
        """
        return None

    # -- Newton's line search
    def prepare_steps(self, weights, reach, slack):
        """Candidate lists valid for every trial ``weights + tau delta``, ``tau <= 1``.

        ``reach`` is ``max |delta|``; new lists get ``slack`` (room for the next,
        shorter steps).
        """
        r = self.raster
        if not r.covers(weights, reach):
            r.plan(weights, slack)

    def max_weight_step(self):
        """Largest change of a weight in one Newton trial (a trust region), or inf."""
        return np.inf

    def step_limits(self, weights, labels, jac):
        """Line-search limits of a Newton step from ``weights``, or None.

        ``labels`` (or None) and ``jac`` (its pattern gives the competitors of a
        cell) belong to ``weights``. Returns ``limit(delta, tau, low, eps0, m_start,
        m_end=None)``: the largest step in ``(0, tau)`` keeping the ``low`` cells
        above the floor ``eps0``, or None where it cannot tell. None when the family
        has no limits.
        """
        return None

    def crushed_cells(self, jac, masses, delta, tau):
        """Cells worth following with the step limits before a trial step.

        The few cells that the step ``tau delta`` closes in on most (``jac`` gives
        their neighbours); none when the family has no limits.
        """
        return np.zeros(0, np.int64)

    # -- Lloyd's weight predictor
    def move_rates(self, weights, moves):
        """First-order mass change of moving the sites by ``moves``, or None.

        From the facet pieces of the last pass with a Jacobian, if it was at
        ``weights`` (up to the gauge). Returns ``(dm (N,), jacobian callable)``.
        """
        return None


class CentrePixels(Quadrature):
    """Each pixel belongs wholly to the cell of its centre."""

    continuous = False
    centre_fallback = False
    exact_start = True

    def granularity(self, labels, alpha):
        """Largest boundary pixel mass relative to the target (N,) max."""
        bpm = self.raster.boundary_pixel_mass(labels)
        return float(np.max(bpm / alpha))

    def voronoi_moments(self, weights):
        """Masses, barycenters and energies from the centre labels."""
        labels, _ = self.raster.labels_masses(weights)
        return self.raster.moments(labels, weights)


class SplitPixels(Quadrature):
    """Boundary pixels split exactly among the cells that cross them."""

    def step_limits(self, weights, labels, jac):
        """Line-search limits (2D): low cells followed on windows of pixels.

        The windows come from ``labels``, or else from the boxes of the polygon pass
        at ``weights``, or else from centre labels computed once per step.
        """
        if not self.spec.step_limits:
            return None
        r = self.raster
        cache = [labels, None]

        def limit(delta, tau, low, eps0, m_start, m_end=None):
            if cache[0] is None and cache[1] is None:
                cache[1] = r.cell_boxes(weights)
                if cache[1] is None:
                    cache[0] = r.centre_labels(weights)
            return step_limit(
                r,
                weights,
                delta,
                tau,
                low,
                cache[0],
                jac,
                eps0,
                m_start,
                m_end,
                boxes=cache[1],
            )

        return limit

    def crushed_cells(self, jac, masses, delta, tau):
        """Cells the step closes in on most (see ``_limits.crushed_cells``)."""
        return crushed_cells(self.raster.points, jac, masses, delta, tau)

    def move_rates(self, weights, moves):
        """``dm`` from the facet pieces at their pixels' (or polygons') centres."""
        r = self.raster
        if r.facets is None:
            return None
        w_f, rows, cols, vals, where, jac = r.facets
        gauge = np.abs(w_f - w_f.mean() - weights).max()
        if gauge > 1e-9 * (1.0 + np.abs(weights).max()):
            return None
        if where.ndim == 2:
            # a polygon pass: each facet at its density-weighted centre
            dm = _kernels._facet_move_rates_at(
                rows,
                cols,
                vals,
                where,
                np.ascontiguousarray(r.points),
                np.ascontiguousarray(moves),
                r.n,
            )
            return dm, jac
        d3 = moves if r.grid.ndim == 3 else np.column_stack([np.zeros(r.n), moves])
        dm = _kernels._facet_move_rates(
            rows,
            cols,
            vals,
            where,
            r.points3,
            np.ascontiguousarray(d3),
            r.shape3,
            r.spacing3,
            r.origin3,
            r.lengths3,
            r.periodic3,
            r.n,
        )
        return dm, jac


class PolygonCells(SplitPixels):
    """Split pixels, with cells built as polygons once their adjacency is known."""

    def prepare_steps(self, weights, reach, slack):
        """Candidate lists for the trials, unless polygon passes will need none."""
        if not self.raster.polygon_ready():
            super().prepare_steps(weights, reach, slack)


class GeometricCells(Quadrature):
    """Exact power cells of a uniform density from geometry (no pixels)."""

    coarsens = False
    centre_fallback = False

    def prepare_steps(self, weights, reach, slack):
        """No candidate lists: the cells come from geometry."""

    def max_weight_step(self):
        """Return a few squared cell sizes (huge steps give cells spanning the box)."""
        from .. import _config

        grid = self.grid
        return _config.GEOMETRIC_MAX_STEP * (grid.volume / self.n) ** (2.0 / grid.ndim)

    def voronoi_moments(self, weights):
        """Masses, barycenters and energies of the exact cells."""
        return self.raster.evaluate_deferred(weights, None, True, False)[2]


def make_quadrature(density, points, quadrature=None) -> Quadrature:
    """Choose the quadrature family for ``density`` and the user's ``quadrature``.

    Parameters
    ----------
    density : Density
    points : (N, d) ndarray of float64
        Validated sites.
    quadrature : None, {"fractional", "center"} or QuadratureSpec
        None means the default rule; a ``QuadratureSpec`` also carries the switches
        of the fast paths (polygon cells, step limits, brute candidate lists).
    """
    raster = _Raster(density, points, quadrature_spec(quadrature))
    grid = density.grid
    if raster.quadrature == "center":
        cls = CentrePixels
    elif raster.geometric:
        cls = GeometricCells
    elif grid.ndim == 2 and not grid.any_periodic and raster.spec.polygon_cells:
        cls = PolygonCells
    else:
        cls = SplitPixels
    return cls(raster)
