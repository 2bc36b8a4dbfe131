"""The ``limits`` study: uniform Lloyd to convergence from random clouds."""

from __future__ import annotations

import logging
import time
import zlib

import numpy as np

from ._common import (
    auto_tol,
    check_run_options,
    draw_cells,
    finish,
    is_finite_real,
    is_int,
    loglog_slope,
    make_cloud,
    make_density,
    min_sep,
    previous_run,
    progress_bar,
    save_figure,
    uniform_lloyd,
)

logger = logging.getLogger("rasterquant.experiments")

COLUMNS = (
    "density",
    "n",
    "dim",
    "resolution",
    "pixels_per_cell",
    "tol",
    "iterations",
    "converged",
    "initial_energy",
    "energy",
    "n_scaled_energy",
    "residual",
    "residual_tol",
    "max_mass_error",
    "status",
    "min_separation",
    "seconds",
)


def run_limits(
    *,
    resolution=None,
    n_list=None,
    dim=2,
    densities=("uniform", "gaussian"),
    iterations=None,
    residual_tol=0.02,
    seed=0,
    tol=None,
    quadrature=None,
    sigma=0.5,
    out_dir=None,
    quick=False,
    force=True,
    plot=True,
    progress=False,
):
    """Run Lloyd's uniform algorithm to convergence from i.i.d. clouds.

    Parameters
    ----------
    resolution : int, optional
        Pixels per axis (default 512 in 2D, 64 in 3D; ``quick``: 96 / 24).
    n_list : sequence of int, optional
        Default 100, 400, 1000 (``quick``: 16, 36).
    dim : {2, 3}
    densities : sequence of str
        Among "uniform" (``[0,1]^d``) and "gaussian" (restricted to the unit ball).
    iterations : int, optional
        Maximum iterations (default 200; ``quick``: 15).
    residual_tol : float
        Converged when the critical residual ``max_i |y_i - b_i|`` is below
        ``residual_tol`` times the typical cell size ``(|support| / N)^(1/d)``.
    seed : int
        Seed (>= 0) of the random starts (i.i.d. from the density).
    tol, quadrature, sigma
        As in :func:`run_rates`.
    out_dir : str, optional
        Where to write ``limits.csv``, ``limits.json``, ``limits.png`` (together,
        when the study succeeds).
    quick : bool
        Small defaults for smoke tests.
    force, plot, progress : bool
        As in :func:`run_rates` (the bar runs over the (density, N) cases).

    Returns
    -------
    StudyResult
        One row per (density, N) with ``n_scaled_energy = N^(2/d) F_N`` of the limit;
        ``extra["points"]`` maps ``density/N`` to the final points.
    """
    t0 = time.perf_counter()
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")
    check_run_options(
        seed=seed,
        tol=tol,
        quadrature=quadrature,
        resolution=resolution,
        out_dir=out_dir,
    )
    if resolution is None:
        resolution = (96 if quick else 512) if dim == 2 else (24 if quick else 64)
    if n_list is None:
        n_list = (16, 36) if quick else (100, 400, 1000)
    if iterations is None:
        iterations = 15 if quick else 200
    _check(n_list, iterations, densities, residual_tol, sigma)
    params = {
        "resolution": resolution,
        "n_list": list(n_list),
        "dim": dim,
        "densities": list(densities),
        "iterations": iterations,
        "residual_tol": residual_tol,
        "seed": seed,
        "tol": tol,
        "quadrature": quadrature,
        "sigma": sigma,
        "quick": bool(quick),
        "plot": bool(plot),
    }
    names = ["limits.csv", "limits.json", "limits.png"]
    earlier = previous_run(out_dir, "limits", "limits", names, params, force)
    if earlier is not None:
        return earlier
    rows, finals = _run_cases(
        densities,
        n_list,
        progress,
        (dim, resolution, sigma, seed, tol, quadrature, iterations, residual_tol),
    )
    summary = _summary(rows, densities)

    def _plot(plt, path):
        _pictures(plt, path, rows, finals, dim)

    extra = {"points": {k: v[0] for k, v in finals.items()}}
    return finish(
        "limits",
        rows,
        summary,
        params,
        out_dir,
        columns=COLUMNS,
        names=names,
        plot=_plot if plot else None,
        extra=extra,
        t0=t0,
    )


def _check(n_list, iterations, densities, residual_tol, sigma):
    """Validate the study's own arguments (ValueError naming the first bad one)."""
    if (
        isinstance(n_list, (str, bytes))
        or not n_list
        or not all(is_int(n) and n >= 2 for n in n_list)
    ):
        raise ValueError(f"n_list must hold integers >= 2, got {n_list!r}")
    if not (is_int(iterations) and iterations >= 0):
        raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
    if isinstance(densities, str) or not densities:
        raise ValueError(
            f"densities must be a non-empty sequence of names, got {densities!r}"
        )
    for dname in densities:
        if dname not in ("uniform", "gaussian"):
            raise ValueError(f"density must be 'uniform' or 'gaussian', got {dname!r}")
    for name, value in (("residual_tol", residual_tol), ("sigma", sigma)):
        if not (is_finite_real(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _one_case(
    density, dname, res, n, dim, *, seed, tol, quadrature, iterations, residual_tol
):
    """Run uniform Lloyd from one random cloud; returns its row and final state."""
    t = time.perf_counter()
    ppc = density.n_positive() / n
    row_tol = tol if tol is not None else auto_tol(ppc, dim, quadrature)
    support = density.n_positive() * density.grid.pixel_volume
    rtol = residual_tol * (support / n) ** (1.0 / dim)
    rng = np.random.default_rng([seed, zlib.crc32(dname.encode()), n])
    start = make_cloud("random", density, n, rng)
    pts, recs, last = uniform_lloyd(
        density,
        start,
        iterations=iterations,
        tol=row_tol,
        quadrature=quadrature,
        residual_tol=rtol,
    )
    fin = recs[-1]
    row = {
        "density": dname,
        "n": n,
        "dim": dim,
        "resolution": res,
        "pixels_per_cell": ppc,
        "tol": row_tol,
        "iterations": fin["iteration"],
        "converged": fin["residual"] <= rtol,
        "initial_energy": recs[0]["energy"],
        "energy": fin["energy"],
        "n_scaled_energy": fin["energy"] * n ** (2.0 / dim),
        "residual": fin["residual"],
        "residual_tol": rtol,
        "max_mass_error": fin["max_mass_error"],
        "status": fin["status"],
        "min_separation": min_sep(pts),
        "seconds": time.perf_counter() - t,
    }
    return row, (pts, np.array(last.result.cells.labels), density)


def _run_cases(densities, n_list, progress, options):
    """Run every (density, N) case; returns the rows and the final state of each.

    ``options`` is ``(dim, resolution, sigma, seed, tol, quadrature, iterations,
    residual_tol)``.
    """
    dim, resolution, sigma, seed, tol, quadrature, iterations, residual_tol = options
    rows, finals = [], {}
    sizes = sorted({int(n) for n in n_list})
    log = logger.debug if progress else logger.info
    with progress_bar(
        progress, len(densities) * len(sizes), "experiment limits", "case"
    ) as bar:
        for dname in densities:
            density, res = make_density(dname, resolution, dim, None, sigma=sigma)
            for n in sizes:
                bar.set_postfix_str(f"{dname} N={n}")
                row, final = _one_case(
                    density,
                    dname,
                    res,
                    n,
                    dim,
                    seed=seed,
                    tol=tol,
                    quadrature=quadrature,
                    iterations=iterations,
                    residual_tol=residual_tol,
                )
                rows.append(row)
                finals[f"{dname}/{n}"] = final
                bar.update(1)
                log(
                    "limits: %-8s N=%5d %.1f px/cell: %d iterations, converged=%s,"
                    " N^(2/d) F_N = %.5f (mass err %.2g)",
                    dname,
                    n,
                    row["pixels_per_cell"],
                    row["iterations"],
                    row["converged"],
                    row["n_scaled_energy"],
                    row["max_mass_error"],
                )
    return rows, finals


def _summary(rows, densities):
    """Return the scaled energies by case and the energy slope of each density."""
    summary = {
        "n_scaled_energy": {
            f"{r['density']}/{r['n']}": r["n_scaled_energy"] for r in rows
        }
    }
    for dname in densities:
        rs = [r for r in rows if r["density"] == dname]
        summary[f"slope_{dname}"] = loglog_slope(
            [r["n"] for r in rs], [r["energy"] for r in rs]
        )[0]
    return summary


def _pictures(plt, path, rows, finals, dim):
    """Write ``limits.png``: the final cells of every case (2D only)."""
    if dim != 2:
        return
    keys = list(finals)
    fig, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        pts, lab, dens = finals[key]
        r = next(r for r in rows if f"{r['density']}/{r['n']}" == key)
        draw_cells(ax, dens, lab, pts, f"{key}: N F_N={r['n_scaled_energy']:.4f}")
    fig.tight_layout()
    save_figure(fig, path("limits.png"))
