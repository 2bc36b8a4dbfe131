"""The ``unstable`` study: uniform Lloyd from the regular grid on [-pi, pi]^2."""

from __future__ import annotations

import functools
import logging
import math
import time

import numpy as np

from ..density import Density
from ..grid import Grid
from ..io.atomic import atomic_write
from ..sampling import sample_points
from ._common import (
    auto_tol,
    check_run_options,
    draw_cells,
    finish,
    is_finite_real,
    is_int,
    previous_run,
    progress_bar,
    save_figure,
    uniform_lloyd,
)

logger = logging.getLogger("rasterquant.experiments")

DEFAULT_SNAPSHOTS = (0, 1, 10, 50, 100, 200)
#: default perturbation, a fraction of the cell side: small enough that the start is
#: still "on the grid" (below the leave threshold), large enough that the iterates
#: leave it within a few tens of iterations
DEFAULT_EPSILON = 0.01
DEFAULT_ITERATIONS = 200
QUICK_ITERATIONS = 30
DEFAULT_RESOLUTION = 500
QUICK_RESOLUTION = 100
COLUMNS = (
    "iteration",
    "energy",
    "residual",
    "deviation",
    "max_mass_error",
    "status",
    "newton_iterations",
    "seconds",
)


def run_unstable(
    *,
    resolution=None,
    n_side=10,
    iterations=None,
    epsilon=DEFAULT_EPSILON,
    seed=0,
    snapshots=None,
    tol=None,
    quadrature=None,
    leave_threshold=0.05,
    out_dir=None,
    quick=False,
    force=True,
    plot=True,
    progress=False,
):
    """Uniform Lloyd from the regular ``n_side x n_side`` grid of cell centres.

    The density is uniform on ``[-pi, pi]^2`` (not periodic). The grid is a critical
    point of ``F_N``; this study asks whether Lloyd's uniform algorithm leaves it,
    from numerical error alone (``epsilon = 0``: on the pixel-aligned raster the
    iterates do not move) or after a small perturbation (the default: the
    iterates leave the grid and ``F_N`` drops below the grid's energy).

    Parameters
    ----------
    resolution : int, optional
        Pixels per axis, default 500 (``quick``: 100); rounded to a multiple of
        ``n_side`` so that the grid cells are pixel-aligned (masses exact at zero
        weights, residual exactly zero at the start when ``epsilon = 0``).
    n_side : int
        Points per axis (N = n_side^2).
    iterations : int, optional
        Lloyd iterations K, default 200 (``quick``: 30).
    epsilon : float
        Perturbation amplitude, a fraction of the cell side ``h = 2 pi / n_side``:
        each point moves by ``epsilon h U`` with ``U`` uniform in ``[-1, 1]^2``
        (default 0.01).
    seed : int
        Seed (>= 0) of the perturbation.
    snapshots : sequence of int, optional
        Iterations (0 to K) whose points and cell labels are kept (default 0, 1,
        10, 50, 100, 200, those <= K); K is always kept.
    tol : float, optional
        Mass tolerance of the OT solves (default :func:`auto_tol`).
    quadrature : str, optional
        Forwarded to :func:`rasterquant.solve_ot` when given.
    leave_threshold : float
        The grid counts as left once a point is farther than ``leave_threshold * h``
        from its starting grid position.
    out_dir : str, optional
        Where to write ``unstable.csv``, ``unstable.json``, ``unstable_snapshots.npz``,
        ``unstable.png`` and ``unstable_snapshots.png``, all together when the study
        succeeds (nothing when it fails).
    quick : bool
        Small defaults for smoke tests.
    force, plot, progress : bool
        As in :func:`run_rates` (the bar runs over the iterations).

    Returns
    -------
    StudyResult
        One row per iterate; ``summary["left_grid"]`` and
        ``summary["left_at_iteration"]`` (None if never); ``extra["snapshots"]``
        maps the iteration to ``(points, labels)``.
    """
    t0 = time.perf_counter()
    check_run_options(
        seed=seed,
        tol=tol,
        quadrature=quadrature,
        resolution=resolution,
        out_dir=out_dir,
    )
    if resolution is None:
        resolution = QUICK_RESOLUTION if quick else DEFAULT_RESOLUTION
    if iterations is None:
        iterations = QUICK_ITERATIONS if quick else DEFAULT_ITERATIONS
    _check(n_side, iterations, epsilon, leave_threshold)
    snaps = _snapshots(snapshots, iterations)
    params = {
        "resolution": resolution,
        "n_side": n_side,
        "iterations": iterations,
        "epsilon": epsilon,
        "seed": seed,
        "snapshots": snaps,
        "tol": tol,
        "quadrature": quadrature,
        "leave_threshold": leave_threshold,
        "quick": bool(quick),
        "plot": bool(plot),
    }
    names = ["unstable.csv", "unstable.json", *_NAMES]
    earlier = previous_run(out_dir, "unstable", "unstable", names, params, force)
    if earlier is not None:
        return earlier
    density, records, kept, summary = _run_study(params, progress)

    def _plot(plt, path):
        _pictures(plt, path, density, records, kept, summary, leave_threshold)

    return finish(
        "unstable",
        records,
        summary,
        params,
        out_dir,
        columns=COLUMNS,
        names=names,
        plot=_plot if plot else None,
        files=functools.partial(_write_snapshots, kept),
        extra={"snapshots": kept},
        t0=t0,
    )


def _check(n_side, iterations, epsilon, leave_threshold):
    """Validate the study's own arguments (ValueError naming the first bad one)."""
    if not (is_int(n_side) and n_side >= 2):
        raise ValueError(f"n_side must be an integer >= 2, got {n_side!r}")
    if not (is_int(iterations) and iterations >= 0):
        raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
    if not (is_finite_real(epsilon) and epsilon >= 0):
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    if not (is_finite_real(leave_threshold) and leave_threshold > 0):
        raise ValueError(
            f"leave_threshold must be a finite number > 0, got {leave_threshold!r}"
        )


def _snapshots(snapshots, iterations):
    """Return the snapshot iterations: the given ones (checked) or the defaults, + K."""
    if snapshots is None:
        snaps = [int(s) for s in DEFAULT_SNAPSHOTS if s <= iterations]
    else:
        if isinstance(snapshots, (str, bytes)) or not all(is_int(k) for k in snapshots):
            raise ValueError(f"snapshots must hold integers, got {snapshots!r}")
        bad = [int(k) for k in snapshots if not 0 <= k <= iterations]
        if bad:
            raise ValueError(
                f"snapshots must be iterations from 0 to {iterations} (the number of "
                f"iterations), got {', '.join(map(str, bad))}"
            )
        snaps = [int(k) for k in snapshots]
    return sorted({*snaps, int(iterations)})


#: outputs besides the CSV and the JSON
_NAMES = ("unstable.png", "unstable_snapshots.png", "unstable_snapshots.npz")


def _pictures(plt, path, density, records, kept, summary, leave_threshold):
    """``unstable.png`` (energy and distances per iteration) and the snapshots."""
    it = [r["iteration"] for r in records]
    left_at = summary["left_at_iteration"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.6), layout="constrained")
    a1.plot(it, [r["energy"] for r in records], color="C0", label="F_N of the iterate")
    a1.axhline(
        summary["grid_energy_exact"],
        color="0.35",
        ls=":",
        label="F_N of the regular grid (2 h²/12)",
    )
    a1.ticklabel_format(axis="y", useOffset=False)
    a1.set_title("energy of the iterates", fontsize=10)
    a1.set_ylabel("quantization energy F_N")
    floor = 1e-17  # exact zeros on a log axis
    a2.semilogy(
        it,
        [max(r["deviation"], floor) for r in records],
        color="C1",
        label="distance from the grid (max over the points)",
    )
    a2.semilogy(
        it,
        [max(r["residual"], floor) for r in records],
        color="C2",
        label="critical residual max |y_i - b_i|",
    )
    a2.axhline(
        summary["leave_threshold_distance"],
        color="0.35",
        ls=":",
        label=f"grid counts as left above {leave_threshold:g} h",
    )
    a2.set_title("distances from the grid and to the barycenters", fontsize=10)
    a2.set_ylabel("distance (max over the points)")
    if left_at is not None:
        for a in (a1, a2):
            a.axvline(
                left_at,
                color="r",
                lw=0.8,
                ls="--",
                label=f"grid left at iteration {left_at}" if a is a2 else None,
            )
    for a in (a1, a2):
        a.set_xlabel("Lloyd iteration")
        a.grid(True, lw=0.3, alpha=0.5)
    handles, labels = [], []
    for a in (a1, a2):
        h, lab = a.get_legend_handles_labels()
        handles += h
        labels += lab
    fig.legend(
        handles, labels, loc="outside lower center", ncol=3, fontsize=8, frameon=False
    )
    k = round(math.sqrt(summary["n"]))
    fig.suptitle(
        f"unstable: uniform Lloyd from the {k}x{k} grid (ε = {summary['epsilon']:g} h)",
        fontsize=11,
    )
    save_figure(fig, path("unstable.png"))
    ks = sorted(kept)
    fig, axes = plt.subplots(
        1, len(ks), figsize=(2.6 * len(ks), 2.9), squeeze=False, layout="constrained"
    )
    for ax, k in zip(axes[0], ks, strict=True):
        pts, lab = kept[k]
        draw_cells(ax, density, lab, pts, f"iteration {k}")
    save_figure(fig, path("unstable_snapshots.png"))


def _run_study(params, progress):
    """Run uniform Lloyd from the perturbed grid that ``params`` describes.

    Returns ``(density, records, kept, summary)``: the records carry the
    ``deviation`` column, ``kept`` maps a snapshot iteration to ``(points, labels)``.
    """
    n_side, epsilon = params["n_side"], params["epsilon"]
    tol, quadrature = params["tol"], params["quadrature"]
    res = n_side * max(1, round(params["resolution"] / n_side))
    extent = [(-math.pi, math.pi)] * 2
    density = Density.uniform((res, res), extent)
    n = n_side * n_side
    h = 2 * math.pi / n_side
    grid_pts, start = _start_cloud(res, n, h, epsilon, params["seed"])
    ppc = density.n_positive() / n
    row_tol = tol if tol is not None else auto_tol(ppc, 2, quadrature)
    logger.info(
        "unstable: N=%d, resolution %d, %.1f pixels per cell, tol %.3g",
        n,
        res,
        ppc,
        row_tol,
    )
    records, kept = _iterate(
        density,
        start,
        grid_pts,
        params["snapshots"],
        params["iterations"],
        row_tol,
        quadrature,
        progress,
    )
    summary = _summary(
        records, kept, n, epsilon, res, ppc, row_tol, params["leave_threshold"] * h, h
    )
    return density, records, kept, summary


def _start_cloud(res, n, h, epsilon, seed):
    """Return the grid of cell centres and the start, moved by up to ``epsilon h``."""
    grid_pts = sample_points(
        Grid((res, res), spacing=2 * math.pi / res, origin=-math.pi), n, method="grid"
    )
    rng = np.random.default_rng(seed)
    start = grid_pts + epsilon * h * (2.0 * rng.random(grid_pts.shape) - 1.0)
    lo, hi = -math.pi, math.pi
    start = np.clip(start, lo, np.nextafter(hi, lo))
    return grid_pts, start


def _iterate(
    density, start, grid_pts, snaps, iterations, row_tol, quadrature, progress
):
    """Run the Lloyd iterations; returns the records (with deviations) and snapshots."""
    kept = {}
    deviations = []

    with progress_bar(
        progress, iterations + 1, "experiment unstable", "iteration"
    ) as bar:

        def on_iterate(k, pts, s):
            deviations.append(float(np.sqrt(((pts - grid_pts) ** 2).sum(1)).max()))
            if k in snaps:
                kept[k] = (pts.copy(), np.array(s.result.cells.labels))
            bar.update(1)

        _, records, _ = uniform_lloyd(
            density,
            start,
            iterations=iterations,
            tol=row_tol,
            quadrature=quadrature,
            on_iterate=on_iterate,
        )
    for rec, dev in zip(records, deviations, strict=True):
        rec["deviation"] = dev
    return records, kept


def _summary(records, kept, n, epsilon, res, ppc, row_tol, leave_distance, h):
    """Return (and log) the study summary: when the grid was left, energies."""
    left_at = None
    for rec in records:
        if left_at is None and rec["deviation"] > leave_distance:
            left_at = rec["iteration"]
    summary = {
        "n": n,
        "epsilon": epsilon,
        "resolution": res,
        "pixels_per_cell": ppc,
        "tol": row_tol,
        "left_grid": left_at is not None,
        "left_at_iteration": left_at,
        "leave_threshold_distance": leave_distance,
        "initial_energy": records[0]["energy"],
        "final_energy": records[-1]["energy"],
        "grid_energy_exact": 2 * h**2 / 12,
        "final_residual": records[-1]["residual"],
        "max_residual": max(r["residual"] for r in records),
        "max_mass_error": max(r["max_mass_error"] for r in records),
        "snapshot_iterations": sorted(kept),
    }
    logger.info(
        "unstable: grid %s; F_N %.6g -> %.6g, final residual %.3g",
        f"left at iteration {left_at}" if left_at is not None else "never left",
        summary["initial_energy"],
        summary["final_energy"],
        summary["final_residual"],
    )
    return summary


def _write_snapshots(kept, path):
    """Write ``unstable_snapshots.npz``: the points and labels of each snapshot."""
    arrays = {}
    for k, (p, lab) in kept.items():
        arrays[f"points_{k}"] = p
        arrays[f"labels_{k}"] = lab
    with atomic_write(path("unstable_snapshots.npz"), "wb") as fh:
        np.savez_compressed(fh, **arrays)
