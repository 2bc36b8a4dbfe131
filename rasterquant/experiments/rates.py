"""The ``rates`` study: F_N, one uniform Lloyd step and separation against N."""

from __future__ import annotations

import itertools
import logging
import math
import time
import zlib

import numpy as np

from ._common import (
    CLOUDS,
    DENSITIES_2D,
    auto_tol,
    check_run_options,
    cloud_sizes,
    finish,
    is_finite_real,
    loglog_slope,
    make_cloud,
    make_density,
    min_sep,
    previous_run,
    progress_bar,
    save_figure,
    solve,
)

logger = logging.getLogger("rasterquant.experiments")

DEFAULT_N_2D = (400, 961, 1600, 2500)
DEFAULT_N_3D = (216, 512, 1000, 1728)
QUICK_N_2D = (16, 36, 64)
#: the Koch cloud of the full 2D study: the seed's own sizes 4^k + 1 (issue 15)
KOCH_N_2D = (257, 1025, 4097, 16385)
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
    progress=False,
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
        Default 400, 961, 1600, 2500 (2D) or 216, 512, 1000, 1728 (3D); with
        ``quick`` 16, 36, 64 (2D) or 8, 27, 64 (3D). The grid clouds use the
        ``d``-th powers of the list, the Koch cloud the ``4^k + 1`` nearest to each
        ``N``, the tightness density the ``d``-th powers.
    dim : {2, 3}
        2: uniform on ``[0,1]^2``, Gaussian on the unit disc, tightness on
        ``[-1,1]^2``; 3: the same on the unit cube, ball and ``[-1,1]^3`` (no Koch).
    densities, clouds : sequence of str, optional
        Subsets of ("uniform", "gaussian", "tightness") and ("random", "grid",
        "jittered", "separated", "koch", "tightness-grid"); "tightness-grid" runs on
        the tightness density only. Default: all (3D: all clouds but "koch").
    seed : int
        Seed (>= 0) of the random clouds (each row derives its own stream).
    tol : float, optional
        Relative mass tolerance of the OT solves; default :func:`auto_tol` of the
        pixels per cell.
    quadrature : {"fractional", "center"}, optional
        Forwarded to :func:`rasterquant.solve_ot` when given.
    beta, c0 : float
        Separated cloud: minimum distance ``c0 N^(-1/beta)`` (``beta`` defaults to d).
    jitter : float
        Jittered grid amplitude, a fraction of the cell.
    sigma : float
        Standard deviation of the Gaussian.
    out_dir : str, optional
        Where to write ``rates.csv``, ``rates.json`` and ``rates.png`` (``rates_3d.*``
        in 3D). The files appear together when the study succeeds; a study that
        fails writes nothing.
    quick : bool
        Small defaults for smoke tests.
    force : bool
        Recompute and overwrite existing files. When False, an ``out_dir`` holding
        a complete run with the same parameters is returned as is (``reused``), and
        one holding files of another or an incomplete run raises ValueError.
    plot : bool
        Write the PNG (when matplotlib is installed).
    progress : bool
        A tqdm bar on stderr over the cases (the per-case log lines then go to
        DEBUG).

    Returns
    -------
    StudyResult
        ``rows`` as in the CSV; ``summary["slopes"]`` maps ``density/cloud`` to the
        slopes of ``energy``, ``barycenter_energy`` and ``min_separation``;
        ``summary["failed_cases"]`` lists the cases that failed (their row has an
        ``error`` and NaN values).

    Raises
    ------
    ValueError
        For a bad argument (before any work), when the arguments leave no case to
        run, when every case fails, or for files of another run in ``out_dir``.
    """
    t0 = time.perf_counter()
    resolution, n_list, densities, clouds, cases = _checked_options(
        dim, quick, resolution, n_list, densities, clouds,
        (seed, tol, quadrature, out_dir), (beta, c0, sigma, jitter),
    )  # fmt: skip
    stem = "rates" if dim == 2 else "rates_3d"
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
        "plot": bool(plot),
    }
    names = [f"{stem}.csv", f"{stem}.json", f"{stem}.png"]
    earlier = previous_run(out_dir, "rates", stem, names, params, force)
    if earlier is not None:
        return earlier
    rows, failed = _run_cases(
        cases,
        progress,
        (dim, resolution, seed, tol, quadrature, beta, c0, jitter, sigma),
    )
    summary = {"slopes": _slopes(rows), "n_list": n_list, "failed_cases": failed}
    summary["pixels_per_cell"] = {
        f"{r['density']}/{r['cloud']}/{r['n']}": r["pixels_per_cell"] for r in rows
    }

    def _plot(plt, path):
        fig = _figure(plt, rows, n_list)
        save_figure(fig, path(f"{stem}.png"))

    return finish(
        "rates",
        rows,
        summary,
        params,
        out_dir,
        columns=COLUMNS,
        names=names,
        stem=stem,
        plot=_plot if plot else None,
        t0=t0,
    )


def _checked_options(dim, quick, resolution, n_list, densities, clouds, run, law):
    """Validate the options of :func:`run_rates` and fill in their defaults.

    ``run`` is ``(seed, tol, quadrature, out_dir)``, ``law`` ``(beta, c0, sigma,
    jitter)``. Returns ``(resolution, n_list, densities, clouds, cases)``; raises
    ValueError naming the option otherwise, or when no case is left to run.
    """
    seed, tol, quadrature, out_dir = run
    beta, c0, sigma, jitter = law
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
        resolution = (128 if quick else 1024) if dim == 2 else (32 if quick else 96)
    koch = KOCH_N_2D if (n_list is None and not quick and dim == 2) else None
    if n_list is None:
        n_list = {
            (2, False): DEFAULT_N_2D,
            (3, False): DEFAULT_N_3D,
            (2, True): QUICK_N_2D,
            (3, True): QUICK_N_3D,
        }[(dim, bool(quick))]
    if isinstance(n_list, (str, bytes)) or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in n_list
    ):
        raise ValueError(f"n_list must hold integers >= 2, got {n_list!r}")
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
    if dim == 3 and "koch" in clouds:
        raise ValueError("cloud 'koch' exists in 2D only; got it with dim=3")
    if beta is not None and not (is_finite_real(beta) and beta > 0):
        raise ValueError(f"beta must be None or a number > 0, got {beta!r}")
    for name, value in (("c0", c0), ("sigma", sigma)):
        if not (is_finite_real(value) and value > 0):
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if not (is_finite_real(jitter) and 0 <= jitter <= 1):
        raise ValueError(f"jitter must be a number in [0, 1], got {jitter!r}")
    cases = _cases(densities, clouds, n_list, dim, koch)
    if not cases:
        raise ValueError(
            f"no case to run: densities {','.join(densities)} with clouds "
            f"{','.join(clouds)} and n_list {','.join(map(str, n_list))} (dim {dim}) "
            "leave none; the tightness density and the grid clouds need N = n^d"
        )
    return resolution, n_list, densities, clouds, cases


def _run_cases(cases, progress, options):
    """Run every (density, cloud, N) case; returns ``(rows, failed case messages)``.

    ``options`` is ``(dim, resolution, seed, tol, quadrature, beta, c0, jitter,
    sigma)``. Raises ValueError when every case failed.
    """
    dim, resolution, seed, tol, quadrature, beta, c0, jitter, sigma = options
    rows = []
    cache = {}
    log = logger.debug if progress else logger.info
    with progress_bar(progress, len(cases), "experiment rates", "case") as bar:
        for dname, cloud, n in cases:
            bar.set_postfix_str(f"{dname}/{cloud} N={n}")
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
                    log,
                )
            )
            bar.update(1)
    failed = [
        f"{r['density']}/{r['cloud']} N={r['n']}: {r['error']}"
        for r in rows
        if r["error"]
    ]
    if len(failed) == len(rows):
        raise ValueError(
            f"rates: all {len(rows)} cases failed, nothing written; the first: "
            f"{failed[0]}"
        )
    return rows, failed


def _cases(densities, clouds, n_list, dim, koch=None):
    """List the (density, cloud, N) of the study, in order.

    ``koch``: the sizes of the Koch cloud, instead of the ``4^k + 1`` nearest to
    ``n_list`` (the full 2D study takes the seed's, up to 16,385 points).
    """
    cases = []
    for dname in densities:
        for cloud in clouds:
            if cloud == "tightness-grid" and dname != "tightness":
                continue
            sizes = cloud_sizes(cloud, n_list, dim)
            if cloud == "koch" and koch is not None:
                sizes = list(koch)
            if dname == "tightness":  # its density exists for N = n^d only
                sizes = [n for n in sizes if n in n_list and _is_power(n, dim)]
            cases.extend((dname, cloud, n) for n in sizes)
    return cases


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
    log,
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
    log(
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


CLOUD_COLORS = dict(zip(CLOUDS, ("C0", "C1", "C2", "C3", "C4", "C5"), strict=True))
#: marker, line style of the fit, filled marker
STYLES = {
    "energy": ("o", "-", True),
    "barycenter_energy": ("s", "--", False),
    "min_separation": ("^", "-", True),
}


def _values(rows, q):
    """Column ``q`` as floats, NaN where missing, failed or not positive (log axes)."""
    out = []
    for r in rows:
        try:
            v = float(r[q])
        except (TypeError, ValueError):
            v = float("nan")
        out.append(v if math.isfinite(v) and v > 0 else float("nan"))
    return np.array(out)


def compact_number(x):
    """Short tick label of a count: 961, 1.6k, 2.5k, 12k, 1.2M."""
    x = float(x)
    if abs(x) < 1e3:
        return f"{x:g}"
    if abs(x) < 1e6:
        return f"{x / 1e3:.3g}k"
    return f"{x / 1e6:.3g}M"


def n_axis(ax, n_list, n_data=()):
    """Log x axis with ticks at the values of ``n_list``, labelled compactly."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([float(n) for n in n_list]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: compact_number(x)))
    ax.xaxis.set_minor_locator(NullLocator())
    every = [float(n) for n in (*n_list, *n_data)]
    ax.set_xlim(min(every) / 1.2, max(every) * 1.2)
    ax.set_xlabel("N (number of points)")


def unclutter_ticks(fig):
    """Rotate the x tick labels of the axes where they overlap (needs a draw)."""
    fig.canvas.draw()
    for ax in fig.axes:
        boxes = sorted(
            (t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()),
            key=lambda b: b.x0,
        )
        if any(a.x1 + 2 > b.x0 for a, b in itertools.pairwise(boxes)):
            for t in ax.get_xticklabels():
                t.set_rotation(45)
                t.set_horizontalalignment("right")
                t.set_rotation_mode("anchor")


def _slope_text(slope):
    return f"{slope:.2f}" if math.isfinite(slope) else "n/a"


def _figure(plt, rows, n_list):
    """Draw the rates figure; returns it.

    Energies (top) and separations (bottom) against N, one column per density,
    log-log with fitted lines; the legends are outside the axes.
    """
    from matplotlib.legend_handler import HandlerTuple
    from matplotlib.lines import Line2D

    dens = list(dict.fromkeys(r["density"] for r in rows))
    fig, axes = plt.subplots(
        2,
        len(dens),
        figsize=(5.6 * len(dens), 8.4),
        squeeze=False,
        layout="constrained",
    )
    unconverged = False
    for j, dn in enumerate(dens):
        top, bottom = axes[0, j], axes[1, j]
        legends = {top: ([], []), bottom: ([], [])}
        n_data = []
        for cloud in dict.fromkeys(r["cloud"] for r in rows if r["density"] == dn):
            rs = [r for r in rows if r["density"] == dn and r["cloud"] == cloud]
            n = np.array([float(r["n"]) for r in rs])
            n_data.extend(n)
            col = CLOUD_COLORS.get(cloud, "k")
            slopes = {}
            for q, ax in (
                ("energy", top),
                ("barycenter_energy", top),
                ("min_separation", bottom),
            ):
                marker, ls, filled = STYLES[q]
                v = _values(rs, q)
                ok = np.isfinite(v)
                if ok.any():
                    ax.plot(
                        n[ok],
                        v[ok],
                        marker,
                        ls="none",
                        color=col,
                        ms=5,
                        mfc=col if filled else "none",
                    )
                slope, icpt = loglog_slope(n, v)
                slopes[q] = slope
                if math.isfinite(slope):
                    nn = np.geomspace(n[ok].min(), n[ok].max(), 20)
                    ax.plot(nn, np.exp(icpt) * nn**slope, ls, color=col, lw=0.9)
            flag = ""
            if any(
                str(r.get(k)) != "converged"
                for r in rs
                for k in ("energy_status", "barycenter_status")
            ):
                flag, unconverged = " *", True
            handle = {
                q: Line2D(
                    [],
                    [],
                    color=col,
                    ls=STYLES[q][1],
                    marker=STYLES[q][0],
                    mfc=col if STYLES[q][2] else "none",
                )
                for q in STYLES
            }
            legends[top][0].append((handle["energy"], handle["barycenter_energy"]))
            legends[top][1].append(
                f"{cloud}: {_slope_text(slopes['energy'])} → "
                f"{_slope_text(slopes['barycenter_energy'])}{flag}"
            )
            legends[bottom][0].append(handle["min_separation"])
            legends[bottom][1].append(
                f"{cloud}: {_slope_text(slopes['min_separation'])}"
            )
        top.set_title(f"{dn} density: energy against N", fontsize=10)
        top.set_ylabel("quantization energy F_N")
        bottom.set_title(f"{dn} density: separation against N", fontsize=10)
        bottom.set_ylabel("minimum distance between points")
        for ax, title in (
            (top, "cloud: slope of F_N(Y) → of F_N(b(Y))"),
            (bottom, "cloud: slope"),
        ):
            n_axis(ax, n_list, n_data)
            if any(np.isfinite(line.get_ydata()).any() for line in ax.lines):
                ax.set_yscale("log")
            else:
                ax.text(
                    0.5,
                    0.5,
                    "no successful case",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                )
            ax.grid(True, which="major", lw=0.3, alpha=0.5)
            handles, labels = legends[ax]
            ax.legend(
                handles,
                labels,
                handler_map={tuple: HandlerTuple(ndivide=None)},
                loc="upper left",
                bbox_to_anchor=(1.02, 1.0),
                borderaxespad=0.0,
                fontsize=7.5,
                title=title,
                title_fontsize=7.5,
                frameon=False,
            )
    key = [
        Line2D([], [], color="k", ls="-", marker="o"),
        Line2D([], [], color="k", ls="--", marker="s", mfc="none"),
        Line2D([], [], color="k", ls="-", marker="^"),
    ]
    key_labels = [
        "F_N(Y): energy of the initial cloud Y",
        "F_N(b(Y)): energy of its barycenters after one uniform Lloyd step",
        "minimum distance between the points of Y",
    ]
    note = "lines: least-squares fits of log value against log N; slopes in the legends"
    if unconverged:
        note += "; * some OT solves did not reach the tolerance (see the CSV)"
    fig.legend(
        key,
        key_labels,
        loc="outside lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
        title=note,
        title_fontsize=8,
    )
    fig.suptitle("rates: energies and separation against N (log-log)", fontsize=11)
    unclutter_ticks(fig)
    return fig
