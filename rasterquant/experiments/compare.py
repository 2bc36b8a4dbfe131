"""The ``compare`` study: classic against uniform Lloyd from the same start."""

from __future__ import annotations

import logging
import time

import numpy as np

from ._common import (
    auto_tol,
    check_run_options,
    classic_lloyd_step,
    finish,
    is_finite_real,
    is_int,
    make_cloud,
    make_density,
    previous_run,
    progress_bar,
    save_figure,
    solve,
    uniform_lloyd,
)

logger = logging.getLogger("rasterquant.experiments")

COLUMNS = (
    "method",
    "iteration",
    "voronoi_energy",
    "energy",
    "max_mass_error",
    "status",
    "voronoi_mass_min",
    "voronoi_mass_max",
    "voronoi_mass_std",
    "residual",
)


def run_compare(
    *,
    resolution=None,
    n=None,
    density="uniform",
    iterations=None,
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
    """Classic (Voronoi) against uniform (OT) Lloyd from the same random start.

    At every iterate of both methods it records ``G_N`` (Voronoi energy), ``F_N``
    (an OT solve, warm-started), the achieved OT mass error, and the spread of the
    Voronoi cell masses as multiples of ``1/N`` (min, max, standard deviation): the
    classic method equalises the energy, not the masses, and its masses stay spread;
    the OT cells of the uniform method have mass ``1/N`` up to ``tol``.

    Parameters
    ----------
    resolution : int, optional
        Pixels per axis (default 512; ``quick``: 96).
    n : int, optional
        Points (default 400; ``quick``: 25).
    density : {"uniform", "gaussian"}
    iterations : int, optional
        Iterations of each method (default 50; ``quick``: 5).
    seed, tol, quadrature, sigma
        As in :func:`run_rates`.
    out_dir : str, optional
        Where to write ``compare.csv``, ``compare.json``, ``compare.png`` (together,
        when the study succeeds).
    quick : bool
        Small defaults for smoke tests.
    force, plot, progress : bool
        As in :func:`run_rates` (the bar runs over the iterations of both methods).

    Returns
    -------
    StudyResult
        One row per (method, iteration).
    """
    t0 = time.perf_counter()
    check_run_options(
        seed=seed,
        tol=tol,
        quadrature=quadrature,
        resolution=resolution,
        out_dir=out_dir,
    )
    resolution = resolution or (96 if quick else 512)
    n = n if n is not None else (25 if quick else 400)
    iterations = iterations if iterations is not None else (5 if quick else 50)
    if not (is_int(n) and n >= 2):
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not (is_int(iterations) and iterations >= 0):
        raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
    if density not in ("uniform", "gaussian"):
        raise ValueError(f"density must be 'uniform' or 'gaussian', got {density!r}")
    if not (is_finite_real(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    params = {
        "resolution": resolution,
        "n": n,
        "density": density,
        "iterations": iterations,
        "seed": seed,
        "tol": tol,
        "quadrature": quadrature,
        "sigma": sigma,
        "quick": bool(quick),
        "plot": bool(plot),
    }
    names = ["compare.csv", "compare.json", "compare.png"]
    earlier = previous_run(out_dir, "compare", "compare", names, params, force)
    if earlier is not None:
        return earlier
    dens, res = make_density(density, resolution, 2, None, sigma=sigma)
    ppc = dens.n_positive() / n
    row_tol = tol if tol is not None else auto_tol(ppc, dens.ndim, quadrature)
    logger.info(
        "compare: N=%d, resolution %d, %.1f pixels per cell, tol %.3g",
        n,
        res,
        ppc,
        row_tol,
    )
    start = make_cloud("random", dens, n, np.random.default_rng(seed))
    rows = []

    def spread(cells):
        m = cells.masses * n
        return {
            "voronoi_mass_min": float(m.min()),
            "voronoi_mass_max": float(m.max()),
            "voronoi_mass_std": float(m.std()),
        }

    bar = progress_bar(
        progress, 2 * (iterations + 1), "experiment compare", "iteration"
    )
    try:
        _classic(dens, start, iterations, row_tol, quadrature, rows, spread, bar)
        _uniform(dens, start, iterations, row_tol, quadrature, rows, spread, bar)
    finally:
        bar.close()
    last = {
        m: [r for r in rows if r["method"] == m][-1] for m in ("classic", "uniform")
    }
    summary = {
        "n": n,
        "resolution": res,
        "pixels_per_cell": ppc,
        "tol": row_tol,
        "final": last,
        "classic_lower_G": last["classic"]["voronoi_energy"]
        <= last["uniform"]["voronoi_energy"],
        "uniform_lower_F": last["uniform"]["energy"] <= last["classic"]["energy"],
    }

    def _plot(plt, path):
        _figure(plt, path, rows)

    return finish(
        "compare",
        rows,
        summary,
        params,
        out_dir,
        columns=COLUMNS,
        names=names,
        plot=_plot if plot else None,
        t0=t0,
    )


def _classic(dens, start, iterations, row_tol, quadrature, rows, spread, bar):
    """Classic Lloyd: G_N from the Voronoi cells, F_N by a warm-started OT solve."""
    pts, psi = start.copy(), None
    for k in range(iterations + 1):
        cells = classic_lloyd_step(dens, pts)
        s = solve(dens, pts, tol=row_tol, weights=psi, quadrature=quadrature)
        psi = s.result.weights
        d = dens.grid.min_image(cells.barycenters - pts)
        rows.append(
            {
                "method": "classic",
                "iteration": k,
                "voronoi_energy": cells.energy,
                "energy": s.result.energy,
                "max_mass_error": s.max_error,
                "status": s.status,
                "residual": float(np.sqrt((d**2).sum(1)).max()),
                **spread(cells),
            }
        )
        pts = cells.barycenters
        bar.update(1)


def _uniform(dens, start, iterations, row_tol, quadrature, rows, spread, bar):
    """Uniform Lloyd: F_N from the OT cells, G_N from the Voronoi cells."""
    mine = []

    def on_iterate(k, p, s):
        cells = classic_lloyd_step(dens, p)
        mine.append(
            {
                "method": "uniform",
                "iteration": k,
                "voronoi_energy": cells.energy,
                "energy": s.result.energy,
                "max_mass_error": s.max_error,
                "status": s.status,
                **spread(cells),
            }
        )
        bar.update(1)

    _, recs, _ = uniform_lloyd(
        dens,
        start,
        iterations=iterations,
        tol=row_tol,
        quadrature=quadrature,
        on_iterate=on_iterate,
    )
    for row, rec in zip(mine, recs, strict=True):
        row["residual"] = rec["residual"]
    rows.extend(mine)


def _figure(plt, path, rows):
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.0), layout="constrained")
    for method, ls in (("classic", "-"), ("uniform", "--")):
        rs = [r for r in rows if r["method"] == method]
        it = [r["iteration"] for r in rs]
        axes[0].plot(it, [r["voronoi_energy"] for r in rs], ls, label=method)
        axes[1].plot(it, [r["energy"] for r in rs], ls, label=method)
        axes[2].plot(it, [r["voronoi_mass_max"] for r in rs], ls, label=f"{method} max")
        axes[2].plot(it, [r["voronoi_mass_min"] for r in rs], ls, label=f"{method} min")
    for ax, title, ylabel in zip(
        axes,
        ("Voronoi energy G_N", "quantization energy F_N (OT)", "Voronoi cell masses"),
        ("G_N", "F_N", "cell mass x N (max and min)"),
        strict=True,
    ):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("Lloyd iteration")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, path("compare.png"))
