"""Energies and diagnostics: closed forms on pixel-aligned clouds."""

import warnings

import numpy as np
import pytest

import rasterquant as rq
from rasterquant import energy as energy_mod
from rasterquant.energy import (
    barycenter_energy,
    critical_residual,
    min_separation,
    quantization_energy,
    voronoi_energy,
)
from rasterquant.errors import ResolutionWarning
from rasterquant.sampling import sample_points, tightness_density


def _unit_box(k, px_per_cell, d=2):
    res = k * px_per_cell
    density = rq.Density.uniform((res,) * d, [(0.0, 1.0)] * d)
    return density, sample_points(density, k**d, method="grid")


@pytest.mark.parametrize(("k", "px"), [(4, 8), (5, 6), (8, 4), (7, 10)])
def test_grid_cloud_energy_is_the_square_closed_form(k, px):
    """Uniform density on [0,1]^2, k x k grid of centres, raster a multiple of k.

    Each cell is a square of side s = 1/k and mass 1/N = s^2, so
    int_cell |x - c|^2 drho = (1/N) * (s^2/12 + s^2/12) = (1/N) s^2/6 and
    F_N = N * (1/N) s^2/6 = s^2/6 = 1/(6 k^2). The cells are unions of whole pixels and
    each pixel's moment includes its extent h^2/12 per axis, so the raster value is
    exact to rounding.
    """
    density, pts = _unit_box(k, px)
    exact = 1.0 / (6 * k**2)
    np.testing.assert_allclose(quantization_energy(density, pts), exact, rtol=1e-12)
    np.testing.assert_allclose(voronoi_energy(density, pts), exact, rtol=1e-12)
    # a fixed point of uniform Lloyd: the barycenters are the points
    np.testing.assert_allclose(barycenter_energy(density, pts), exact, rtol=1e-12)
    assert critical_residual(density, pts) <= 1e-12


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize(
    ("k", "res", "offset"),
    [(4, 37, 0.0), (5, 40, 0.0137), (3, 29, 0.5), (8, 64, 0.123456789), (6, 61, 0.3)],
)
def test_grid_cloud_energy_any_offset_fractional(k, res, offset, periodic):
    """F_N = s^2/6 for squares of side s = 1/k with fractional quadrature, for any
    position of the cells against the pixels: a raster that is not a multiple of k
    (non-periodic) or the cloud shifted by ``offset`` cells on the torus."""
    density = rq.Density.uniform((res, res), [(0.0, 1.0)] * 2, periodic=periodic)
    pts = sample_points(density, k * k, method="grid")
    if periodic:
        pts = density.grid.wrap(pts + offset / k)
    exact = 1.0 / (6 * k**2)
    np.testing.assert_allclose(
        voronoi_energy(density, pts, quadrature="fractional"), exact, rtol=1e-9
    )
    cells = rq.assign_cells(density, pts, quadrature="fractional")
    np.testing.assert_allclose(cells.masses, 1.0 / k**2, rtol=1e-9)
    np.testing.assert_allclose(
        quantization_energy(density, pts, tol=1e-9, quadrature="fractional"),
        exact,
        rtol=1e-9,
    )
    assert critical_residual(density, pts, tol=1e-9, quadrature="fractional") <= 1e-9


def test_grid_cloud_energy_3d():
    """Cube of side s: int |x - c|^2 = (1/N) * 3 s^2 / 12, so F_N = s^2 / 4."""
    density, pts = _unit_box(3, 4, d=3)
    np.testing.assert_allclose(
        quantization_energy(density, pts), (1 / 3) ** 2 / 4, rtol=1e-12
    )
    assert critical_residual(density, pts) <= 1e-12


def _tightness_weights(n, d):
    """Exact power weights of the tightness grid (see test below), per axis summed."""
    phi = np.r_[0.0, np.full(n - 1, 1 / (4 * (n - 1) ** 2) - 0.25)]
    grids = np.meshgrid(*([phi] * d), indexing="ij")
    return sum(g.ravel() for g in grids)


@pytest.mark.parametrize(
    ("n", "res", "d"),
    [(3, 8, 2), (4, 12, 2), (6, 40, 2), (11, 40, 2), (3, 8, 3), (4, 12, 3)],
)
def test_tightness_grid_is_a_fixed_point_with_exact_energy(n, res, d):
    """The tightness grid is a fixed point of uniform Lloyd with F_N = d / (12 (n-1)).

    Derivation. rho = prod_a r_n(x_a) with r_n = 1/n on [-1, 0) and 1 - 1/n on [0, 1].
    On each axis the cloud has -1/2 and the centres c_j of the n-1 intervals
    I_j = [j/(n-1), (j+1)/(n-1)]. Power weights that are sums of per-axis weights,
    psi = sum_a phi(y_a), make the power cells products of 1D power cells. Choose
    phi = 0 at -1/2 and phi_1 = 1/(4 (n-1)^2) - 1/4 at every c_j: the 1D boundary
    between -1/2 and c_0 is at 0 ((0 + 1/2)^2 - 0 = (0 - c_0)^2 - phi_1) and the
    others at the midpoints j/(n-1). So the 1D cells are [-1, 0] (mass 1/n) and the
    I_j (mass (1 - 1/n)/(n-1) = 1/n): every product cell has mass 1/n^d = 1/N, these
    are the OT cells, and each point is its cell's barycenter (rho is constant on
    each cell): a fixed point of Lloyd's uniform algorithm. Per cell
    int |x - y|^2 drho = sum_a V_a * prod_{b != a} m_b with m = 1/n per axis and V the
    1D second moment; summing over all cells gives F_N = d * sum_I V_I, where
    V([-1, 0]) = (1/n)/12 and sum_j V(I_j) = (n-1) * (1 - 1/n) (n-1)^-3 / 12
    = 1/(12 n (n-1)). Hence F_N = d/(12 n) * (1 + 1/(n-1)) = d / (12 (n-1)).
    On a raster with res/2 a multiple of n-1 the cells are unions of whole pixels and
    the raster energy is exact.
    """
    rho = tightness_density(n, res, d)
    pts = sample_points(rho, n**d, method="tightness-grid")
    exact = d / (12 * (n - 1))
    psi = _tightness_weights(n, d)
    res_ot = rq.solve_ot(rho, pts, weights=psi, tol=1e-9)
    assert res_ot.converged and res_ot.n_iter == 0
    np.testing.assert_allclose(res_ot.energy, exact, rtol=1e-12)
    np.testing.assert_allclose(
        quantization_energy(rho, pts, weights=psi, tol=1e-9), exact, rtol=1e-12
    )
    assert critical_residual(rho, pts, weights=psi, tol=1e-9) <= 1e-12
    np.testing.assert_allclose(
        barycenter_energy(rho, pts, weights=psi, tol=1e-9), exact, rtol=1e-12
    )


@pytest.mark.parametrize(("n", "res"), [(4, 12), (6, 40)])
def test_tightness_grid_energy_from_zero_weights(n, res):
    """Centre quadrature: whole-pixel cells, the solution is exact to rounding."""
    rho = tightness_density(n, res)
    pts = sample_points(rho, n * n, method="tightness-grid")
    np.testing.assert_allclose(
        quantization_energy(rho, pts, tol=1e-3, quadrature="center"),
        2 / (12 * (n - 1)),
        rtol=1e-12,
    )
    assert critical_residual(rho, pts, tol=1e-3, quadrature="center") <= 1e-12


@pytest.mark.parametrize(("n", "res"), [(4, 12), (6, 40), (11, 40), (5, 20)])
def test_tightness_grid_energy_from_zero_weights_fractional(n, res):
    """Fractional quadrature solves to tol=1e-9 (also (5, 20): 2 px per cell side,
    unresolvable with centre quadrature); the energy is then exact to ~1e-9."""
    rho = tightness_density(n, res)
    pts = sample_points(rho, n * n, method="tightness-grid")
    np.testing.assert_allclose(
        quantization_energy(rho, pts, tol=1e-9, quadrature="fractional"),
        2 / (12 * (n - 1)),
        rtol=1e-8,
    )
    assert critical_residual(rho, pts, tol=1e-9, quadrature="fractional") <= 1e-6


def test_one_lloyd_step_lowers_the_energy(rng):
    density = rq.Density.uniform((256, 256), [(0.0, 1.0)] * 2)
    pts = sample_points(density, 64, method="uniform", seed=rng)
    f = quantization_energy(density, pts, tol=0.02)
    b = barycenter_energy(density, pts, tol=0.02)
    assert b < 0.5 * f
    r = critical_residual(density, pts, tol=0.02)
    assert 0.01 < r < 0.5


def test_critical_residual_uses_the_minimum_image():
    density = rq.Density.uniform((40, 40), [(0.0, 1.0)] * 2, periodic=True)
    # 2 x 2 grid shifted by half a cell: the cells wrap around the box
    pts = sample_points(density, 4, method="grid") + 0.25
    pts = density.grid.wrap(pts)
    assert critical_residual(density, pts) <= 1e-12


def test_unresolvable_tol_warns_at_the_callers_line():
    # 2.5 pixels per cell side; not 16 (2 px): there the exact cells are whole pixels
    # and the multiscale (fractional) start reaches them with centre quadrature too
    rho = tightness_density(5, 20)
    pts = sample_points(rho, 25, method="tightness-grid")
    with pytest.warns(
        ResolutionWarning, match="finer than this raster resolves"
    ) as rec:
        quantization_energy(rho, pts, tol=1e-3, quadrature="center", on_failure="warn")
    assert rec[0].filename == __file__


def test_quadrature_is_forwarded_with_one_default(monkeypatch):
    seen = []
    real = energy_mod.solve_ot

    def fake(density, points, masses=None, **kwargs):
        seen.append(dict(kwargs))
        kwargs.pop("quadrature", None)
        return real(density, points, masses, **kwargs)

    monkeypatch.setattr(energy_mod, "solve_ot", fake)
    density, pts = _unit_box(2, 4)
    quantization_energy(density, pts)
    quantization_energy(density, pts, quadrature="center")
    assert seen[0]["quadrature"] == rq._config.DEFAULT_QUADRATURE
    assert seen[1]["quadrature"] == "center"


def test_min_separation_plain_and_periodic():
    pts = np.array([[0.1, 0.1], [0.1, 0.9], [0.5, 0.5]])
    np.testing.assert_allclose(min_separation(pts), np.hypot(0.4, 0.4), rtol=1e-12)
    grid = rq.Grid((10, 10), spacing=0.1, periodic=True)
    np.testing.assert_allclose(min_separation(pts, periodic=grid), 0.2, rtol=1e-12)
    with pytest.raises(ValueError, match="N >= 2"):
        min_separation(pts[:1])


def test_energies_reject_bad_points():
    density, _ = _unit_box(2, 4)
    with pytest.raises(ValueError, match="NaN"):
        critical_residual(density, [[np.nan, 0.5], [0.5, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError):
            barycenter_energy(density, [[0.5, 0.5], [0.5, 0.5]])
