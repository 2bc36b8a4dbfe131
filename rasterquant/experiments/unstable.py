"""The ``unstable`` study: uniform Lloyd from the regular grid on [-pi, pi]^2."""

from __future__ import annotations

import logging
import math
import os
import time

import numpy as np

from ..density import Density
from ..grid import Grid
from ..io.atomic import atomic_write
from ..sampling import sample_points
from ._common import (
    auto_tol,
    check_out_dir,
    draw_cells,
    finish,
    save_figure,
    uniform_lloyd,
)

logger = logging.getLogger("rasterquant.experiments")

DEFAULT_SNAPSHOTS = (0, 1, 10, 50, 100, 200)
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
    epsilon=0.0,
    seed=0,
    snapshots=None,
    tol=None,
    quadrature=None,
    leave_threshold=0.05,
    out_dir=None,
    quick=False,
    force=True,
    plot=True,
):
    """Uniform Lloyd from the regular ``n_side x n_side`` grid of cell centres.

    The density is uniform on ``[-pi, pi]^2`` (not periodic). The grid is a critical
    point of ``F_N``; this study asks whether Lloyd's uniform algorithm leaves it,
    from numerical error alone (``epsilon = 0``) or after a perturbation.

    Parameters
    ----------
    resolution : int, optional
        Pixels per axis, default 500 (``quick``: 100); rounded to a multiple of
        ``n_side`` so that the grid cells are pixel-aligned (masses exact at zero
        weights, residual exactly zero at the start when ``epsilon = 0``).
    n_side : int
        Points per axis (N = n_side^2).
    iterations : int, optional
        Lloyd iterations K, default 200 (``quick``: 10).
    epsilon : float
        Perturbation amplitude, a fraction of the cell side ``h = 2 pi / n_side``:
        each point moves by ``epsilon h U`` with ``U`` uniform in ``[-1, 1]^2``.
    seed : int
        Seed of the perturbation.
    snapshots : sequence of int, optional
        Iterations whose points and cell labels are kept (default 0, 1, 10, 50, 100,
        200, those <= K).
    tol : float, optional
        Mass tolerance of the OT solves (default :func:`auto_tol`).
    quadrature : str, optional
        Forwarded to :func:`rasterquant.solve_ot` when given.
    leave_threshold : float
        The grid counts as left once a point is farther than ``leave_threshold * h``
        from its starting grid position.
    out_dir : str, optional
        Where to write ``unstable.csv``, ``unstable.json``, ``unstable_snapshots.npz``
        and ``unstable.png``.

    Returns
    -------
    StudyResult
        One row per iterate; ``summary["left_grid"]`` and
        ``summary["left_at_iteration"]`` (None if never); ``extra["snapshots"]``
        maps the iteration to ``(points, labels)``.
    """
    t0 = time.perf_counter()
    if resolution is None:
        resolution = 100 if quick else 500
    if iterations is None:
        iterations = 10 if quick else 200
    if not (isinstance(n_side, int) and n_side >= 2):
        raise ValueError(f"n_side must be an integer >= 2, got {n_side!r}")
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    check_out_dir(out_dir, "unstable", force)
    res = n_side * max(1, round(resolution / n_side))
    extent = [(-math.pi, math.pi)] * 2
    density = Density.uniform((res, res), extent)
    n = n_side * n_side
    h = 2 * math.pi / n_side
    grid_pts = sample_points(
        Grid((res, res), spacing=2 * math.pi / res, origin=-math.pi), n, method="grid"
    )
    rng = np.random.default_rng(seed)
    start = grid_pts + epsilon * h * (2.0 * rng.random(grid_pts.shape) - 1.0)
    lo, hi = -math.pi, math.pi
    start = np.clip(start, lo, np.nextafter(hi, lo))
    ppc = density.n_positive() / n
    row_tol = tol if tol is not None else auto_tol(ppc, 2, quadrature)
    logger.info(
        "unstable: N=%d, resolution %d, %.1f pixels per cell, tol %.3g",
        n,
        res,
        ppc,
        row_tol,
    )
    if snapshots is None:
        snapshots = DEFAULT_SNAPSHOTS
    snaps = sorted(
        {int(s) for s in snapshots if 0 <= int(s) <= iterations} | {iterations}
    )
    kept = {}
    deviations = []

    def on_iterate(k, pts, s):
        deviations.append(float(np.sqrt(((pts - grid_pts) ** 2).sum(1)).max()))
        if k in snaps:
            kept[k] = (pts.copy(), np.array(s.result.cells.labels))

    _, records, _ = uniform_lloyd(
        density,
        start,
        iterations=iterations,
        tol=row_tol,
        quadrature=quadrature,
        on_iterate=on_iterate,
    )
    left_at = None
    for rec, dev in zip(records, deviations, strict=True):
        rec["deviation"] = dev
        if left_at is None and dev > leave_threshold * h:
            left_at = rec["iteration"]
    summary = {
        "n": n,
        "resolution": res,
        "pixels_per_cell": ppc,
        "tol": row_tol,
        "left_grid": left_at is not None,
        "left_at_iteration": left_at,
        "leave_threshold_distance": leave_threshold * h,
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
    }

    def _plot(plt, out_dir, stem):
        return _pictures(plt, out_dir, stem, density, records, kept, left_at)

    result = finish(
        "unstable",
        records,
        summary,
        params,
        out_dir,
        columns=COLUMNS,
        plot=_plot if plot else None,
        extra={"snapshots": kept},
        t0=t0,
    )
    if out_dir is not None:
        path = os.path.join(out_dir, "unstable_snapshots.npz")
        arrays = {}
        for k, (p, lab) in kept.items():
            arrays[f"points_{k}"] = p
            arrays[f"labels_{k}"] = lab
        with atomic_write(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        result.outputs.append(path)
    return result


def _pictures(plt, out_dir, stem, density, records, kept, left_at):
    it = [r["iteration"] for r in records]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(it, [r["energy"] for r in records])
    a1.set_xlabel("iteration")
    a1.set_ylabel("F_N")
    a2.semilogy(it, [max(r["residual"], 1e-17) for r in records], label="residual")
    a2.semilogy(it, [max(r["deviation"], 1e-17) for r in records], label="deviation")
    if left_at is not None:
        for a in (a1, a2):
            a.axvline(left_at, color="r", lw=0.8, ls="--")
    a2.set_xlabel("iteration")
    a2.legend(fontsize=7)
    fig.tight_layout()
    p1 = os.path.join(out_dir, f"{stem}.png")
    save_figure(fig, p1)
    ks = sorted(kept)
    fig, axes = plt.subplots(1, len(ks), figsize=(2.6 * len(ks), 2.8), squeeze=False)
    for ax, k in zip(axes[0], ks, strict=True):
        pts, lab = kept[k]
        draw_cells(ax, density, lab, pts, f"iteration {k}")
    fig.tight_layout()
    p2 = os.path.join(out_dir, f"{stem}_snapshots.png")
    save_figure(fig, p2)
    return [p1, p2]
