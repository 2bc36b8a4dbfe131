"""The ``limits`` study: uniform Lloyd to convergence from random clouds."""

from __future__ import annotations

import logging
import os
import time
import zlib

import numpy as np

from ._common import (
    auto_tol,
    check_out_dir,
    draw_cells,
    finish,
    loglog_slope,
    make_cloud,
    make_density,
    min_sep,
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
        Seed of the random starts (i.i.d. from the density).
    tol, quadrature
        As in :func:`run_rates`.
    out_dir : str, optional
        Where to write ``limits.csv``, ``limits.json``, ``limits.png``.

    Returns
    -------
    StudyResult
        One row per (density, N) with ``n_scaled_energy = N^(2/d) F_N`` of the limit;
        ``extra["points"]`` maps ``density/N`` to the final points.
    """
    t0 = time.perf_counter()
    if resolution is None:
        resolution = (96 if quick else 512) if dim == 2 else (24 if quick else 64)
    if n_list is None:
        n_list = (16, 36) if quick else (100, 400, 1000)
    if iterations is None:
        iterations = 15 if quick else 200
    check_out_dir(out_dir, "limits", force)
    rows, finals = [], {}
    for dname in densities:
        if dname not in ("uniform", "gaussian"):
            raise ValueError(f"density must be 'uniform' or 'gaussian', got {dname!r}")
        density, res = make_density(dname, resolution, dim, None, sigma=sigma)
        for n in sorted({int(n) for n in n_list}):
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
            rows.append(
                {
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
            )
            finals[f"{dname}/{n}"] = (pts, np.array(last.result.cells.labels), density)
            logger.info(
                "limits: %-8s N=%5d %.1f px/cell: %d iterations, converged=%s,"
                " N^(2/d) F_N = %.5f (mass err %.2g)",
                dname,
                n,
                ppc,
                fin["iteration"],
                rows[-1]["converged"],
                rows[-1]["n_scaled_energy"],
                fin["max_mass_error"],
            )
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
    }

    def _plot(plt, out_dir, stem):
        if dim != 2:
            return []
        keys = list(finals)
        fig, axes = plt.subplots(
            1, len(keys), figsize=(3 * len(keys), 3.2), squeeze=False
        )
        for ax, key in zip(axes[0], keys, strict=True):
            pts, lab, dens = finals[key]
            r = next(r for r in rows if f"{r['density']}/{r['n']}" == key)
            draw_cells(ax, dens, lab, pts, f"{key}: N F_N={r['n_scaled_energy']:.4f}")
        fig.tight_layout()
        path = os.path.join(out_dir, f"{stem}.png")
        save_figure(fig, path)
        return [path]

    extra = {"points": {k: v[0] for k, v in finals.items()}}
    return finish(
        "limits",
        rows,
        summary,
        params,
        out_dir,
        columns=COLUMNS,
        plot=_plot if plot else None,
        extra=extra,
        t0=t0,
    )
