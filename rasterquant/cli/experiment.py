"""``rasterquant experiment <study>``: the numerical studies (rates, unstable, ...)."""

from __future__ import annotations

import argparse
import logging
import math
import time

from ._common import (
    add_common,
    add_progress,
    add_quadrature,
    nonneg_int,
    positive_float,
    positive_int,
    show_progress,
    tol_float,
)

logger = logging.getLogger("rasterquant")

STUDIES = ("rates", "unstable", "limits", "compare")
DENSITIES = ("uniform", "gaussian", "tightness")
CLOUDS = ("random", "grid", "jittered", "separated", "koch", "tightness-grid")

#: the studies each study-specific option applies to, and its spelling
APPLIES = {
    "n_list": ("--n-list", ("rates", "limits", "compare")),
    "dim": ("--dim", ("rates", "limits")),
    "densities": ("--densities", ("rates", "limits", "compare")),
    "clouds": ("--clouds", ("rates",)),
    "beta": ("--beta", ("rates",)),
    "c0": ("--c0", ("rates",)),
    "iterations": ("--iterations", ("unstable", "limits", "compare")),
    "epsilon": ("--epsilon", ("unstable",)),
    "snapshots": ("--snapshots", ("unstable",)),
}


def _int_list(text):
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of integers, got {text!r}"
        ) from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"expected integers >= 2, got {text!r}")
    return values


def _snapshot_list(text):
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of integers, got {text!r}"
        ) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(
            f"expected iterations (integers >= 0), got {text!r}"
        )
    return values


def _names(allowed):
    def parse(text):
        values = [v for v in text.replace(" ", "").split(",") if v]
        bad = [v for v in values if v not in allowed]
        if not values or bad:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {','.join(allowed)}, "
                f"got {text!r}"
            )
        return list(dict.fromkeys(values))

    return parse


def _nonneg_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return v


def add_parser(sub):
    """Register the sub-command."""
    p = sub.add_parser(
        "experiment",
        help="run a numerical study (rates, unstable, limits, compare)",
        description="Run one of the numerical studies of Lloyd-type algorithms and "
        "write its CSV, JSON and PNG pictures (PNG needs matplotlib) into the "
        "output folder, all together once the study succeeded (a failed or "
        "interrupted run writes nothing). A rerun with the same parameters finds "
        "the study done and exits 0; a run with other parameters refuses to "
        "overwrite it without --force. "
        "rates: F_N, one uniform Lloyd step and separation against N, with log-log "
        "slopes; unstable: uniform Lloyd from the 10x10 grid on [-pi,pi]^2; limits: "
        "uniform Lloyd to convergence from random clouds; compare: classic against "
        "uniform Lloyd. Options marked with a study name apply to that study only.",
    )
    p.add_argument("study", choices=STUDIES, help="the study to run")
    p.add_argument(
        "-o",
        "--out-dir",
        dest="out_dir",
        metavar="DIR",
        default="experiments",
        help="output folder, created when the study succeeds (default: ./experiments)",
    )
    p.add_argument(
        "--resolution",
        type=positive_int,
        default=None,
        metavar="PIXELS",
        help="pixels per axis, rounded so that grid clouds are pixel-aligned "
        "(default: rates 1024 (3D: 96), unstable 500, limits 512 (3D: 64), compare "
        "512; with --quick: rates 128 (3D: 32), unstable 100, limits 96 (3D: 24), "
        "compare 96)",
    )
    p.add_argument(
        "--n-list",
        type=_int_list,
        default=None,
        metavar="N,N,...",
        help="rates, limits: comma-separated numbers of points (default: rates "
        "400,961,1600,2500 (3D: 216,512,1000,1728), limits 100,400,1000; with "
        "--quick: rates 16,36,64 (3D: 8,27,64), limits 16,36); compare: one N "
        "(default 400; --quick 25)",
    )
    p.add_argument(
        "--dim",
        type=int,
        choices=(2, 3),
        default=None,
        help="rates, limits: dimension (default 2; 3: unit cube)",
    )
    p.add_argument(
        "--densities",
        type=_names(DENSITIES),
        default=None,
        metavar="NAME,...",
        help="rates: subset of uniform,gaussian,tightness (default: all three); "
        "limits: subset of uniform,gaussian (default: both); compare: one of "
        "uniform,gaussian (default: uniform)",
    )
    p.add_argument(
        "--clouds",
        type=_names(CLOUDS),
        default=None,
        metavar="NAME,...",
        help="rates: subset of random,grid,jittered,separated,koch,tightness-grid "
        "(default: all; 3D: all but koch)",
    )
    p.add_argument(
        "--beta",
        type=positive_float,
        default=None,
        help="rates: exponent of the separated cloud's minimum distance "
        "c0 N^(-1/beta) (default: the dimension d)",
    )
    p.add_argument(
        "--c0",
        type=positive_float,
        default=None,
        help="rates: constant of the separated cloud's minimum distance (default: 0.5)",
    )
    p.add_argument(
        "--iterations",
        type=nonneg_int,
        default=None,
        help="unstable: Lloyd iterations K (default 200; --quick 30); limits: "
        "maximum iterations (default 200; --quick 15); compare: iterations of each "
        "method (default 50; --quick 5)",
    )
    p.add_argument(
        "--epsilon",
        type=_nonneg_float,
        default=None,
        help="unstable: perturbation of the grid, a fraction of the cell side "
        "(default: 0.01; 0 starts on the exact grid, which then does not move)",
    )
    p.add_argument(
        "--snapshots",
        type=_snapshot_list,
        default=None,
        metavar="K,K,...",
        help="unstable: iterations whose points and cells are kept, from 0 to K "
        "(default: those of 0,1,10,50,100,200 up to K; K is always kept)",
    )
    p.add_argument(
        "--seed", type=nonneg_int, default=0, help="random seed, >= 0 (default: 0)"
    )
    p.add_argument(
        "--tol",
        type=tol_float,
        default=None,
        help="relative mass tolerance of the OT solves (default: 1e-6 with "
        "fractional quadrature; with center quadrature max(0.01, P^(-1/d)), at "
        "most 0.5, P the pixels per cell)",
    )
    add_quadrature(p)
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, for a smoke test (the --quick defaults above)",
    )
    p.add_argument(
        "--no-plot",
        dest="plot",
        action="store_false",
        help="do not write the PNG pictures (default: write them when matplotlib "
        "is installed)",
    )
    add_progress(p)
    add_common(p)
    p.set_defaults(func=run)
    return p


def _usage_error(args):
    """One line naming an option that does not fit the study, or None."""
    study = args.study
    for dest, (flag, studies) in APPLIES.items():
        if getattr(args, dest) is not None and study not in studies:
            where = " and ".join(studies)
            return f"{flag} applies to {where} only, not to {study}"
    if study == "limits" and args.densities and "tightness" in args.densities:
        return "--densities: limits takes uniform and/or gaussian, got tightness"
    if study == "compare":
        if args.densities and (
            len(args.densities) != 1 or args.densities[0] == "tightness"
        ):
            return (
                "--densities: compare takes one density, uniform or gaussian, got "
                + ",".join(args.densities)
            )
        if args.n_list and len(args.n_list) != 1:
            return "--n-list: compare takes one N, got " + ",".join(
                map(str, args.n_list)
            )
    if study == "rates" and args.dim == 3 and args.clouds and "koch" in args.clouds:
        return "--clouds koch exists in 2D only; drop it with --dim 3"
    return None


def _fmt(value, spec="6.3f"):
    """``value`` formatted, or "n/a" for None and NaN (slopes read back from JSON)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def _given(args, *dests):
    """Return the options among ``dests`` that were given, as keyword arguments."""
    return {d: getattr(args, d) for d in dests if getattr(args, d) is not None}


def run(args):
    """Execute ``experiment``; returns the exit code."""
    problem = _usage_error(args)
    if problem is not None:
        logger.error("rasterquant experiment: error: %s", problem)
        return 2
    from .. import experiments

    t0 = time.perf_counter()
    common = {
        "seed": args.seed,
        "tol": args.tol,
        "quadrature": args.quadrature,
        "out_dir": args.out_dir,
        "quick": args.quick,
        "force": args.force,
        "plot": args.plot,
        "resolution": args.resolution,
        "progress": show_progress(args),
    }
    if args.study == "rates":
        res = experiments.run_rates(
            **_given(args, "n_list", "dim", "densities", "clouds", "beta", "c0"),
            **common,
        )
    elif args.study == "unstable":
        res = experiments.run_unstable(
            **_given(args, "iterations", "epsilon", "snapshots"), **common
        )
    elif args.study == "limits":
        res = experiments.run_limits(
            **_given(args, "n_list", "dim", "densities", "iterations"), **common
        )
    else:
        kwargs = _given(args, "iterations")
        if args.n_list:
            kwargs["n"] = args.n_list[0]
        if args.densities:
            kwargs["density"] = args.densities[0]
        res = experiments.run_compare(**kwargs, **common)
    if res.reused:
        logger.info(
            "experiment %s: already done in %s with the same parameters; nothing "
            "recomputed (--force reruns it): %s",
            args.study,
            args.out_dir,
            ", ".join(res.outputs),
        )
        return 0
    if not args.quiet:
        _log_summary(args.study, res)
    failed = res.summary.get("failed_cases") or []
    if failed:
        logger.warning(
            "%s: %d of %d cases failed (their rows carry the error in the CSV); the "
            "first: %s",
            args.study,
            len(failed),
            len(res.rows),
            failed[0],
        )
    if res.pictures_skipped:
        logger.warning(
            "%s: pictures skipped (matplotlib not installed; install "
            "rasterquant[plot])",
            args.study,
        )
    if not args.quiet:
        logger.info(
            "experiment %s: %.1f s -> %s",
            args.study,
            time.perf_counter() - t0,
            ", ".join(res.outputs) or "(no output folder)",
        )
    return 0


def _log_summary(study, res):
    """Log the summary of a study (slopes, pixels per cell, grid left or not)."""
    s = res.summary
    if study == "rates":
        for key, sl in s["slopes"].items():
            logger.info(
                "rates: slope %-26s F_N %6s  bary %6s  sep %6s  (N=%s)",
                key,
                _fmt(sl["energy"]),
                _fmt(sl["barycenter_energy"]),
                _fmt(sl["min_separation"]),
                ",".join(str(n) for n in sl["n"]),
            )
    if study in ("rates", "limits"):
        ppc = sorted(
            {round(r["pixels_per_cell"], 1) for r in res.rows if r["pixels_per_cell"]}
        )
        logger.info("%s: pixels per cell used: %s", study, ", ".join(map(str, ppc)))
    elif study == "unstable":
        logger.info(
            "unstable: pixels per cell used: %.1f; grid %s",
            s["pixels_per_cell"],
            f"left at iteration {s['left_at_iteration']}"
            if s["left_grid"]
            else "was not left",
        )
    else:
        logger.info("compare: pixels per cell used: %.1f", s["pixels_per_cell"])
