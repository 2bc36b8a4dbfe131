"""Quantization energies and diagnostics of point clouds.

Every function here works on the raster: its result carries the raster's quadrature
error, which each docstring states in terms of the pixels per cell
``P = (positive pixels) / N`` and of the mass tolerance ``tol`` of the OT solves.
The functions that solve OT never return a number from a solve that missed ``tol``
unless asked to (``on_failure="warn"``): by default they raise
:class:`~rasterquant.errors.ConvergenceError`.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial import cKDTree

from . import _config
from ._validation import check_density, check_points
from .assign.quadrature import make_quadrature
from .errors import ConvergenceError
from .ot.newton import solve_ot

__all__ = [
    "barycenter_energy",
    "critical_residual",
    "min_separation",
    "quantization_energy",
    "voronoi_energy",
]


_ON_FAILURE = ("raise", "warn")

#: what to try when an OT solve ended with this status
_FAILURE_HINTS = {
    "resolution": "use quadrature='fractional', refine the raster or loosen tol",
    "max_iter": "loosen tol, or pass weights= from a nearby converged solve",
    "stalled": (
        "loosen tol, pass weights= from a nearby converged solve, or check for "
        "near-duplicate points"
    ),
}


def _check_on_failure(on_failure):
    """Validate the ``on_failure`` option of the energy functions."""
    if not isinstance(on_failure, str) or on_failure not in _ON_FAILURE:
        raise ValueError(f"on_failure must be one of {_ON_FAILURE}, got {on_failure!r}")
    return on_failure


def _solve_ot(
    density,
    points,
    masses=None,
    *,
    tol,
    weights=None,
    quadrature=_config.DEFAULT_QUADRATURE,
    on_failure="raise",
    what="the OT solve",
    stacklevel=3,
):
    """``solve_ot``, with the outcome checked.

    Warnings of the solver are re-issued with ``stacklevel`` so that they point at the
    user's call of the public function, not at this module. A solve that misses
    ``tol`` raises :class:`ConvergenceError` (naming ``what``) unless ``on_failure``
    is ``"warn"``; its own warnings are then dropped (the error says it all).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = solve_ot(
            density, points, masses, tol=tol, weights=weights, quadrature=quadrature
        )
    if on_failure == "raise" and not res.converged:
        hint = _FAILURE_HINTS.get(res.status, "loosen tol")
        raise ConvergenceError(
            f"{what} ended {res.status} at max relative mass error "
            f"{res.max_error:.3g} > tol={res.tol:g} after {res.n_iter} Newton "
            f"iterations, so its result would be wrong: {hint}; or pass "
            "on_failure='warn' to get the number anyway",
            result=res,
        )
    for w in caught:
        warnings.warn(w.message, stacklevel=stacklevel)
    return res


def quantization_energy(
    density,
    points,
    masses=None,
    *,
    tol=_config.DEFAULT_TOL,
    weights=None,
    quadrature=_config.DEFAULT_QUADRATURE,
    on_failure: str = "raise",
) -> float:
    """Uniform quantization energy ``F_N(Y) = W2^2(sum_i alpha_i delta_{y_i}, rho)``.

    Parameters
    ----------
    density : Density or array_like
        The raster density.
    points : (N, d) array_like of float
        Distinct points inside the grid.
    masses : (N,) array_like of float, optional
        Target masses ``alpha`` (uniform ``1/N`` by default).
    tol : float
        Relative mass tolerance of the OT solve (see :func:`solve_ot`).
    weights : (N,) array_like of float, optional
        Starting weights of the OT solve (warm start).
    quadrature : str, optional
        Quadrature of the OT solve; ``None`` uses the library default.
    on_failure : {"raise", "warn"}
        What to do when an OT solve misses ``tol``: ``"raise"`` (default) raises
        :class:`ConvergenceError`; ``"warn"`` returns the number computed from the
        best iterate, with the solver's warning.

    Returns
    -------
    float
        The transport cost of the power cells, each pixel's own extent included.

    Raises
    ------
    ConvergenceError
        If the OT solve misses ``tol`` (``on_failure="raise"``); it carries the
        failed :class:`OTResult` as ``result``.
    ValueError
        If ``on_failure`` is not "raise" or "warn".

    Warns
    -----
    ResolutionWarning, ConvergenceWarning
        From :func:`solve_ot` when ``tol`` is not met and ``on_failure="warn"``.

    Notes
    -----
    Raster error. The density is taken as piecewise constant on the pixels, and the
    moment of a pixel includes its extent, so when every cell is a union of whole
    pixels (e.g. a pixel-aligned grid cloud on a uniform density) the result is exact
    to rounding. Otherwise centre quadrature puts each boundary pixel wholly in one
    cell: with ``P`` pixels per cell there are ``~P^((d-1)/d)`` boundary pixels per
    cell, whose signed errors largely cancel; the relative energy error is at most of
    order ``P^(-1/d)`` and in practice much smaller, plus a term linear in the mass
    error (``dF/dalpha_i = psi_i``), of relative order ``tol``. With centre
    quadrature ``tol`` cannot go below about ``2 / P`` (one boundary pixel), and for
    facets aligned with the raster axes not below about ``P^(-1/d)`` (a whole row).
    """
    on_failure = _check_on_failure(on_failure)
    res = _solve_ot(
        density,
        points,
        masses,
        tol=tol,
        weights=weights,
        quadrature=quadrature,
        on_failure=on_failure,
        what="quantization_energy: the OT solve",
    )
    return res.energy


def voronoi_energy(density, points, *, quadrature=_config.DEFAULT_QUADRATURE) -> float:
    """Free-mass quantization energy ``G_N(Y) = sum_i int_{Vor_i} |x - y_i|^2 d rho``.

    Parameters
    ----------
    density : Density or array_like
        The raster density.
    points : (N, d) array_like of float
        Distinct points inside the grid.
    quadrature : {"fractional", "center"}, optional
        Pixel quadrature; the library default (fractional) when None.

    Returns
    -------
    float

    Notes
    -----
    No OT solve: one pass with zero weights. With fractional quadrature the result is
    the exact energy of the piecewise-constant density (to rounding). With centre
    quadrature each boundary pixel goes wholly to the cell of its centre, a relative
    error of at most order ``P^(-1/d)`` with ``P`` pixels per cell (signed errors
    mostly cancel); it is exact when the Voronoi cells are unions of whole pixels.
    """
    density = check_density(density)
    pts = check_points(points, density.grid)
    quad = make_quadrature(density, pts, quadrature)
    zero = np.zeros(len(pts))
    labels3, _ = quad.labels_masses(zero)
    _, _, energies = quad.moments(labels3, zero)
    return float(energies.sum())


def barycenter_energy(
    density,
    points,
    masses=None,
    *,
    tol=_config.DEFAULT_TOL,
    weights=None,
    quadrature=_config.DEFAULT_QUADRATURE,
    on_failure: str = "raise",
) -> float:
    """Energy ``W2^2((1/N) sum_i delta_{b_i(Y)}, rho)`` after one uniform Lloyd step.

    ``b_i(Y)`` is the barycenter of the OT (power) cell of ``y_i`` with mass
    ``alpha_i``; the energy of the barycenters takes a second OT solve, with the
    barycenters as the points, warm-started from the weights of the first.

    Parameters
    ----------
    density : Density or array_like
        The raster density.
    points : (N, d) array_like of float
        Distinct points inside the grid.
    masses : (N,) array_like of float, optional
        Target masses ``alpha`` of both solves (uniform ``1/N`` by default).
    tol : float
        Relative mass tolerance of both OT solves.
    weights : (N,) array_like of float, optional
        Starting weights of the first solve.
    quadrature : str, optional
        Quadrature of the OT solves; ``None`` uses the library default.
    on_failure : {"raise", "warn"}
        What to do when either OT solve misses ``tol``: ``"raise"`` (default) raises
        :class:`ConvergenceError`; ``"warn"`` returns the number computed from the
        best iterate, with the solver's warning.

    Returns
    -------
    float

    Raises
    ------
    ConvergenceError
        If either OT solve misses ``tol`` (``on_failure="raise"``); it carries the
        failed :class:`OTResult` as ``result``.
    ValueError
        If two barycenters coincide (two cells with the same barycenter cannot be
        transported to separately); this needs degenerate cells. If ``on_failure``
        is not "raise" or "warn".

    Warns
    -----
    ResolutionWarning, ConvergenceWarning
        From either OT solve when ``tol`` is not met and ``on_failure="warn"``.

    Notes
    -----
    Raster error. The barycenters inherit the quadrature error of the cells of ``Y``:
    a displacement of order ``tol`` times the cell diameter from the mass mismatch,
    and from the boundary pixels at most about one pixel (usually far less, the signed
    errors cancel); then the second solve adds the error of
    :func:`quantization_energy`. Because ``b`` is close to optimal the energy is small
    and its relative raster error larger than that of ``F_N(Y)``: use ``P >= 100``
    pixels per cell for a few per cent.
    """
    on_failure = _check_on_failure(on_failure)
    first = _solve_ot(
        density,
        points,
        masses,
        tol=tol,
        weights=weights,
        quadrature=quadrature,
        on_failure=on_failure,
        what="barycenter_energy: the OT solve at the points",
    )
    second = _solve_ot(
        density,
        first.cells.barycenters,
        masses,
        tol=tol,
        weights=first.weights,
        quadrature=quadrature,
        on_failure=on_failure,
        what="barycenter_energy: the OT solve at the barycenters",
    )
    return second.energy


def critical_residual(
    density,
    points,
    masses=None,
    *,
    tol=_config.DEFAULT_TOL,
    weights=None,
    quadrature=_config.DEFAULT_QUADRATURE,
    on_failure: str = "raise",
) -> float:
    """``max_i |y_i - b_i(Y)|``: zero exactly at a critical point of ``F_N``.

    ``b_i(Y)`` is the barycenter of the OT cell of ``y_i``; on periodic axes the
    difference is the minimum image. Since ``grad_{y_i} F_N = 2 alpha_i (y_i - b_i)``
    this is the largest gradient component divided by ``2 alpha_i``, and it is the
    displacement of the next uniform Lloyd step.

    Parameters
    ----------
    density : Density or array_like
        The raster density.
    points : (N, d) array_like of float
        Distinct points inside the grid.
    masses : (N,) array_like of float, optional
        Target masses (uniform ``1/N`` by default).
    tol : float
        Relative mass tolerance of the OT solve.
    weights : (N,) array_like of float, optional
        Starting weights (warm start; e.g. the known weights of a fixed point).
    quadrature : str, optional
        Quadrature of the OT solve; ``None`` uses the library default.
    on_failure : {"raise", "warn"}
        What to do when an OT solve misses ``tol``: ``"raise"`` (default) raises
        :class:`ConvergenceError`; ``"warn"`` returns the number computed from the
        best iterate, with the solver's warning.

    Returns
    -------
    float
        In physical units.

    Raises
    ------
    ConvergenceError
        If the OT solve misses ``tol`` (``on_failure="raise"``); it carries the
        failed :class:`OTResult` as ``result``.
    ValueError
        If ``on_failure`` is not "raise" or "warn".

    Warns
    -----
    ResolutionWarning, ConvergenceWarning
        From :func:`solve_ot` when ``tol`` is not met and ``on_failure="warn"``.

    Notes
    -----
    Raster error. On a raster aligned with the cells of a fixed point the residual is
    zero to rounding. In general it has a floor: the mass mismatch ``tol`` moves a
    cell boundary by about ``tol`` times the cell diameter ``D`` and the barycenter by
    a fraction of that, and centre quadrature moves barycenters by at most about a
    pixel ``h = D P^(-1/d)`` (typically much less). Residuals below
    ``max(tol D, h)`` do not distinguish a critical point.
    """
    on_failure = _check_on_failure(on_failure)
    density = check_density(density)
    pts = check_points(points, density.grid)
    res = _solve_ot(
        density,
        pts,
        masses,
        tol=tol,
        weights=weights,
        quadrature=quadrature,
        on_failure=on_failure,
        what="critical_residual: the OT solve",
    )
    delta = density.grid.min_image(res.cells.barycenters - pts)
    return float(np.sqrt((delta**2).sum(axis=1)).max())


def min_separation(points, *, periodic=None) -> float:
    """Smallest distance between two distinct points, ``min_{i != j} |y_i - y_j|``.

    Parameters
    ----------
    points : (N, d) array_like
    periodic : Grid, optional
        A grid whose periodic axes define minimum-image distances.

    Returns
    -------
    float
        Exact (no raster involved), through a kd-tree in O(N log N).
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or len(pts) < 2:
        raise ValueError(f"points must have shape (N, d) with N >= 2, got {pts.shape}")
    boxsize = None
    if periodic is not None and periodic.any_periodic:
        boxsize = np.where(periodic.periodic, periodic.lengths, 0.0)
        pts = pts - np.array(periodic.origin)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = cKDTree(pts, boxsize=boxsize)
    d, _ = tree.query(pts, k=2)
    return float(d[:, 1].min())
