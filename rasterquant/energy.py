"""Quantization energies and diagnostics of point clouds."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial import cKDTree

from . import _config
from ._validation import check_density, check_points
from .assign.cells import _Raster
from .ot.newton import solve_ot

__all__ = ["min_separation", "quantization_energy", "voronoi_energy"]


def quantization_energy(density, points, masses=None, *, tol=_config.DEFAULT_TOL,
                        weights=None) -> float:
    """Uniform quantization energy ``F_N(Y) = W2^2(sum alpha_i delta_{y_i}, rho)``.

    Solved by :func:`solve_ot` to relative mass tolerance ``tol``; the result is the
    transport cost of the power cells, each pixel's own extent included.

    Notes
    -----
    Raster error: with centre quadrature each cell's cost is a sum over whole pixels; the
    cost error is of the order of (boundary pixels x pixel mass x cell diameter^2), i.e.
    relative error ~ (pixels per cell)^(-1/d) plus the mass mismatch ``tol``.
    """
    res = solve_ot(density, points, masses, tol=tol, weights=weights)
    return res.energy


def voronoi_energy(density, points) -> float:
    """Free-mass quantization energy ``G_N(Y) = sum_i int_{Vor_i} |x - y_i|^2 d rho``.

    Notes
    -----
    Exact for the piecewise-constant density up to pixel ownership by centre: relative
    error ~ (pixels per cell)^(-1/d).
    """
    density = check_density(density)
    pts = check_points(points, density.grid)
    r = _Raster(density, pts)
    labels3, _ = r.labels_masses(np.zeros(len(pts)))
    _, _, energies = r.moments(labels3)
    return float(energies.sum())


def min_separation(points, *, periodic=None) -> float:
    """Smallest distance between two distinct points, ``min_{i != j} |y_i - y_j|``.

    Parameters
    ----------
    points : (N, d) array_like
    periodic : Grid, optional
        A grid whose periodic axes define minimum-image distances.
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
