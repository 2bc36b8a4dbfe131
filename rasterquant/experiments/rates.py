"""The ``rates`` study: F_N, one uniform Lloyd step and separation against N."""

from __future__ import annotations

import logging
import os
import time
import zlib

import numpy as np

from ._common import (
    CLOUDS,
    DENSITIES_2D,
    auto_tol,
    check_out_dir,
    cloud_sizes,
    finish,
    loglog_slope,
    make_cloud,
    make_density,
    min_sep,
    save_figure,
    solve,
)

logger = logging.getLogger("rasterquant.experiments")

DEFAULT_N_2D = (400, 961, 1600, 2500)
DEFAULT_N_3D = (216, 512, 1000, 1728)
QUICK_N_2D = (16, 36, 64)
QUICK_N_3D = (8, 27, 64)

COLUMNS = (
    "density",
    "cloud",
    "n",
    "resolution",
    "pixels_per_cell",
    "tol",
    "energy",
    "energy_mass_error",
    "energy_status",
    "energy_newton_iterations",
    "barycenter_energy",
    "barycenter_mass_error",
    "barycenter_status",
    "barycenter_newton_iterations",
    "min_separation",
    "barycenter_min_separation",
    "n_scaled_energy",
    "seconds",
    "error",
)


def _seed(seed, *parts):
    return np.random.default_rng(
        [int(seed), *(zlib.crc32(str(p).encode()) for p in parts)]
    )


def run_rates(
    *,
    resolution=None,
    n_list=None,
    dim=2,
    densities=None,
    clouds=None,
    seed=0,
    tol=None,
    quadrature=None,
    beta=None,
    c0=0.5,
    jitter=0.5,
    sigma=0.5,
    out_dir=None,
    quick=False,
    force=True,
    plot=True,
):
    """Convergence rates of ``F_N(Y)`` and of one uniform Lloyd step, against ``N``.

    For each density, cloud and ``N``: ``F_N(Y) = W2^2((1/N) sum delta_{y_i}, rho)``,
    then ``W2^2((1/N) sum delta_{b_i}, rho)`` for the barycenters ``b_i`` of the OT
    cells of ``Y`` (one step of Lloyd's uniform algorithm), then the minimum
    separation of ``Y``; finally the least-squares slopes of ``log`` of each against
    ``log N``.

    Parameters
    ----------
    resolution : int, optional
        Pixels per axis (default 1024 in 2D, 96 in 3D; 128 / 32 with ``quick``); for
        each ``N`` it is rounded to the nearest multiple of the period that makes the
        grid cloud pixel-aligned (see :func:`make_density`).
    n_list : sequence of int, optional
        Default 400, 961, 1600, 2500 (2D) or 216, 512, 1000, 1728 (3D). The grid
        clouds use the ``d``-th powers of the list, the Koch cloud the ``4^k + 1``
        nearest to each ``N``.
    dim : {2, 3}
        2: uniform on ``[0,1]^2``, Gaussian on the unit disc, tightness on
        ``[-1,1]^2``; 3: the same on the unit cube, ball and ``[-1,1]^3`` (no Koch).
    densities, clouds : sequence of str, optional
        Subsets of ("uniform", "gaussian", "tightness") and ("random", "grid",
        "jittered", "separated", "koch", "tightness-grid"); "tightness-grid" runs on
        the tightness density only.
    seed : int
        Seed of the random clouds (each row derives its own stream).
    tol : float, optional
        Relative mass tolerance of the OT solves; default :func:`auto_tol` of the
        pixels per cell.
    quadrature : str, optional
        Forwarded to :func:`rasterquant.solve_ot` when given.
    beta, c0 : float
        Separated cloud: minimum distance ``c0 N^(-1/beta)`` (``beta`` defaults to d).
    jitter : float
        Jittered grid amplitude, a fraction of the cell.
    sigma : float
        Standard deviation of the Gaussian.
    out_dir : str, optional
        Where to write ``rates.csv``, ``rates.json`` and ``rates.png`` (``rates_3d.*``
        in 3D).
    quick : bool
        Small defaults for smoke tests.
    force : bool
        Overwrite existing files.
    plot : bool
        Write the PNG (when matplotlib is installed).

    Returns
    -------
    StudyResult
        ``rows`` as in the CSV; ``summary["slopes"]`` maps ``density/cloud`` to the
        slopes of ``energy``, ``barycenter_energy`` and ``min_separation``.
    """
    t0 = time.perf_counter()
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    if resolution is None:
        resolution = (128 if quick else 1024) if dim == 2 else (32 if quick else 96)
    if n_list is None:
        n_list = {
            (2, False): DEFAULT_N_2D,
            (3, False): DEFAULT_N_3D,
            (2, True): QUICK_N_2D,
            (3, True): QUICK_N_3D,
        }[(dim, bool(quick))]
    n_list = sorted({int(n) for n in n_list})
    if not n_list or n_list[0] < 2:
        raise ValueError(f"n_list must hold integers >= 2, got {n_list}")
    densities = tuple(densities or DENSITIES_2D)
    clouds = tuple(
        clouds or (CLOUDS if dim == 2 else tuple(c for c in CLOUDS if c != "koch"))
    )
    for name in densities:
        if name not in DENSITIES_2D:
            raise ValueError(f"density must be one of {DENSITIES_2D}, got {name!r}")
    for name in clouds:
        if name not in CLOUDS:
            raise ValueError(f"cloud must be one of {CLOUDS}, got {name!r}")
    stem = "rates" if dim == 2 else "rates_3d"
    check_out_dir(out_dir, stem, force)
    rows = []
    cache = {}
    for dname in densities:
        for cloud in clouds:
            if cloud == "tightness-grid" and dname != "tightness":
                continue
            sizes = cloud_sizes(cloud, n_list, dim)
            if dname == "tightness":  # its density exists for N = n^d only
                sizes = [n for n in sizes if n in n_list and _is_power(n, dim)]
            for n in sizes:
                rows.append(
                    _one_row(
                        dname,
                        cloud,
                        n,
                        dim,
                        resolution,
                        seed,
                        tol,
                        quadrature,
                        beta,
                        c0,
                        jitter,
                        sigma,
                        cache,
                    )
                )
    summary = {"slopes": _slopes(rows), "n_list": n_list}
    summary["pixels_per_cell"] = {
        f"{r['density']}/{r['cloud']}/{r['n']}": r["pixels_per_cell"] for r in rows
    }
    params = {
        "resolution": resolution,
        "n_list": n_list,
        "dim": dim,
        "densities": list(densities),
        "clouds": list(clouds),
        "seed": seed,
        "tol": tol,
        "quadrature": quadrature,
        "beta": beta,
        "c0": c0,
        "jitter": jitter,
        "sigma": sigma,
        "quick": bool(quick),
    }
    return finish(
        "rates",
        rows,
        summary,
        params,
        out_dir,
        columns=COLUMNS,
        stem=stem,
        plot=_plot if plot else None,
        t0=t0,
    )


def _is_power(n, d):
    from ._common import integer_root

    return integer_root(n, d) is not None and integer_root(n, d) >= 2


def _one_row(
    dname,
    cloud,
    n,
    dim,
    resolution,
    seed,
    tol,
    quadrature,
    beta,
    c0,
    jitter,
    sigma,
    cache,
):
    t = time.perf_counter()
    key = (dname, n)
    if key not in cache:
        cache.clear()  # one raster alive at a time
        cache[key] = make_density(dname, resolution, dim, n, sigma=sigma)
    density, res = cache[key]
    ppc = density.n_positive() / n
    row_tol = tol if tol is not None else auto_tol(ppc, dim, quadrature)
    row = {
        "density": dname,
        "cloud": cloud,
        "n": n,
        "resolution": res,
        "pixels_per_cell": ppc,
        "tol": row_tol,
        "error": "",
    }
    try:
        rng = seed if cloud == "separated" else _seed(seed, dname, cloud, n)
        pts = make_cloud(cloud, density, n, rng, beta=beta, c0=c0, jitter=jitter)
        if len(pts) != n:  # grid clouds restricted to the support
            n = len(pts)
            ppc = density.n_positive() / n
            row.update(n=n, pixels_per_cell=ppc)
        first = solve(density, pts, tol=row_tol, quadrature=quadrature)
        bary = first.result.cells.barycenters
        second = solve(
            density,
            bary,
            tol=row_tol,
            weights=first.result.weights,
            quadrature=quadrature,
        )
        row.update(
            energy=first.result.energy,
            energy_mass_error=first.max_error,
            energy_status=first.status,
            energy_newton_iterations=first.result.n_iter,
            barycenter_energy=second.result.energy,
            barycenter_mass_error=second.max_error,
            barycenter_status=second.status,
            barycenter_newton_iterations=second.result.n_iter,
            min_separation=min_sep(pts),
            barycenter_min_separation=min_sep(bary),
            n_scaled_energy=first.result.energy * n ** (2.0 / dim),
        )
    except ValueError as exc:  # e.g. a cloud that does not fit; keep going
        row["error"] = str(exc).splitlines()[0]
        logger.warning("rates: %s/%s N=%d failed: %s", dname, cloud, n, row["error"])
    for c in COLUMNS:
        row.setdefault(c, float("nan"))
    row["seconds"] = time.perf_counter() - t
    logger.info(
        "rates: %-9s %-14s N=%5d res=%4d px/cell=%7.1f F_N=%.4e (mass err %.2g %s) "
        "bary=%.4e (mass err %.2g) sep=%.3g  %.1fs",
        dname,
        cloud,
        n,
        res,
        ppc,
        row["energy"],
        row["energy_mass_error"],
        row["energy_status"],
        row["barycenter_energy"],
        row["barycenter_mass_error"],
        row["min_separation"],
        row["seconds"],
    )
    return row


def _slopes(rows):
    out = {}
    groups = {}
    for r in rows:
        groups.setdefault(f"{r['density']}/{r['cloud']}", []).append(r)
    for key, rs in groups.items():
        n = [r["n"] for r in rs]
        out[key] = {
            q: loglog_slope(n, [r[q] for r in rs])[0]
            for q in ("energy", "barycenter_energy", "min_separation")
        }
        out[key]["n"] = n
        out[key]["all_converged"] = all(
            r["energy_status"] == "converged" and r["barycenter_status"] == "converged"
            for r in rs
        )
        out[key]["max_mass_error"] = max(
            max(r["energy_mass_error"], r["barycenter_mass_error"]) for r in rs
        )
    return out


def _plot(plt, out_dir, stem):
    import csv

    with open(os.path.join(out_dir, f"{stem}.csv")) as fh:
        rows = list(csv.DictReader(fh))
    dens = list(dict.fromkeys(r["density"] for r in rows))
    fig, axes = plt.subplots(
        2, len(dens), figsize=(4.2 * len(dens), 7.5), squeeze=False
    )
    colors = dict(
        zip(
            ("random", "grid", "jittered", "separated", "koch", "tightness-grid"),
            ("C0", "C1", "C2", "C3", "C4", "C5"),
            strict=True,
        )
    )
    for j, dn in enumerate(dens):
        top, bottom = axes[0, j], axes[1, j]
        for cloud in dict.fromkeys(r["cloud"] for r in rows if r["density"] == dn):
            rs = [r for r in rows if r["density"] == dn and r["cloud"] == cloud]
            n = np.array([float(r["n"]) for r in rs])
            col = colors.get(cloud, "k")
            for q, marker, ls, ax in (
                ("energy", "o", "-", top),
                ("barycenter_energy", "s", "--", top),
                ("min_separation", "^", "-", bottom),
            ):
                v = np.array(
                    [float(r[q]) if r[q] not in ("", "nan") else np.nan for r in rs]
                )
                slope, icpt = loglog_slope(n, v)
                short = {"energy": "F_N", "barycenter_energy": "bary"}.get(q, "sep")
                label = f"{cloud} {short}"
                if np.isfinite(slope):
                    label += f" ({slope:.2f})"
                    nn = np.geomspace(n.min(), n.max(), 20)
                    ax.plot(nn, np.exp(icpt) * nn**slope, ls, color=col, lw=0.8)
                ax.plot(
                    n,
                    v,
                    marker,
                    color=col,
                    ms=4,
                    mfc="none" if q == "barycenter_energy" else col,
                    label=label,
                )
        for ax, ylab in (
            (top, "F_N (o) / W2^2 of barycenters (s)"),
            (bottom, "min separation"),
        ):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("N")
            ax.set_ylabel(ylab)
            ax.legend(fontsize=6)
        top.set_title(f"{dn}: log-log slopes in legend", fontsize=9)
    fig.tight_layout()
    path = os.path.join(out_dir, f"{stem}.png")
    save_figure(fig, path)
    return [path]
