"""``rasterquant experiment <study>``: the numerical studies (rates, unstable, ...)."""

from __future__ import annotations

import argparse
import logging
import time

from ._common import add_common, nonneg_int, positive_int, tol_float

logger = logging.getLogger("rasterquant")

STUDIES = ("rates", "unstable", "limits", "compare")


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


def _name_list(text):
    return [v for v in text.replace(" ", "").split(",") if v]


def _nonneg_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return v


def add_parser(sub):
    """Register the sub-command."""
    p = sub.add_parser(
        "experiment",
        help="run a numerical study (rates, unstable, limits, compare)",
        description="Run one of the numerical studies of Lloyd-type algorithms and "
        "write its CSV, JSON and PNG pictures (PNG needs matplotlib) into --out-dir. "
        "rates: F_N, one uniform Lloyd step and separation against N, with log-log "
        "slopes; unstable: uniform Lloyd from the 10x10 grid on [-pi,pi]^2; limits: "
        "uniform Lloyd to convergence from random clouds; compare: classic against "
        "uniform Lloyd.",
    )
    p.add_argument("study", choices=STUDIES, help="the study to run")
    p.add_argument(
        "--resolution",
        type=positive_int,
        default=None,
        help="pixels per axis (default per study; rounded so that grid "
        "clouds are pixel-aligned)",
    )
    p.add_argument(
        "--n-list",
        type=_int_list,
        default=None,
        help="comma-separated N (rates, limits; compare uses the first)",
    )
    p.add_argument(
        "--out-dir", default="experiments", help="output folder (default ./experiments)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--iterations",
        type=nonneg_int,
        default=None,
        help="Lloyd iterations (unstable: K, default 200; limits: maximum; "
        "compare: per method)",
    )
    p.add_argument(
        "--epsilon",
        type=_nonneg_float,
        default=0.0,
        help="unstable: perturbation, a fraction of the cell side "
        "(default 0: numerical error alone)",
    )
    p.add_argument(
        "--dim",
        type=int,
        choices=(2, 3),
        default=2,
        help="dimension of rates/limits (3: unit cube)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument(
        "--densities",
        type=_name_list,
        default=None,
        help="rates/limits: subset of uniform,gaussian,tightness; compare: the first",
    )
    p.add_argument(
        "--clouds",
        type=_name_list,
        default=None,
        help="rates: subset of random,grid,jittered,separated,koch,tightness-grid",
    )
    p.add_argument(
        "--beta",
        type=float,
        default=None,
        help="rates: separated cloud exponent (min distance c0 N^(-1/beta); default d)",
    )
    p.add_argument(
        "--c0",
        type=float,
        default=0.5,
        help="rates: separated cloud constant (default 0.5)",
    )
    p.add_argument(
        "--tol",
        type=tol_float,
        default=None,
        help="relative mass tolerance of the OT solves (default: the "
        "finest the raster resolves, max(0.01, (pixels per cell)^(-1/d)))",
    )
    p.add_argument(
        "--quadrature",
        default=None,
        help="quadrature of the OT solves (default: the library's)",
    )
    p.add_argument(
        "--snapshots",
        type=_int_list_or_zero,
        default=None,
        help="unstable: iterations to snapshot (default 0,1,10,50,100,200)",
    )
    p.add_argument(
        "--no-plot", dest="plot", action="store_false", help="do not write PNG pictures"
    )
    add_common(p)
    p.set_defaults(func=run)
    return p


def _int_list_or_zero(text):
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of integers, got {text!r}"
        ) from None


def run(args):
    """Execute ``experiment``; returns the exit code."""
    from .. import experiments

    t0 = time.perf_counter()
    if not args.quiet:
        logging.getLogger("rasterquant.experiments").setLevel(logging.INFO)
    common = {
        "seed": args.seed,
        "tol": args.tol,
        "quadrature": args.quadrature,
        "out_dir": args.out_dir,
        "quick": args.quick,
        "force": args.force,
        "plot": args.plot,
        "resolution": args.resolution,
    }
    if args.study == "rates":
        res = experiments.run_rates(
            n_list=args.n_list,
            dim=args.dim,
            densities=args.densities,
            clouds=args.clouds,
            beta=args.beta,
            c0=args.c0,
            **common,
        )
        for key, s in res.summary["slopes"].items():
            logger.info(
                "rates: slope %-26s F_N %6.3f  bary %6.3f  sep %6.3f  (N=%s)",
                key,
                s["energy"],
                s["barycenter_energy"],
                s["min_separation"],
                ",".join(str(n) for n in s["n"]),
            )
        ppc = sorted({round(r["pixels_per_cell"], 1) for r in res.rows})
        logger.info("rates: pixels per cell used: %s", ", ".join(map(str, ppc)))
    elif args.study == "unstable":
        res = experiments.run_unstable(
            iterations=args.iterations,
            epsilon=args.epsilon,
            snapshots=args.snapshots,
            **common,
        )
        s = res.summary
        logger.info(
            "unstable: pixels per cell used: %.1f; grid %s",
            s["pixels_per_cell"],
            f"left at iteration {s['left_at_iteration']}"
            if s["left_grid"]
            else "was not left",
        )
    elif args.study == "limits":
        res = experiments.run_limits(
            n_list=args.n_list,
            dim=args.dim,
            iterations=args.iterations,
            **({"densities": args.densities} if args.densities else {}),
            **common,
        )
        ppc = sorted({round(r["pixels_per_cell"], 1) for r in res.rows})
        logger.info("limits: pixels per cell used: %s", ", ".join(map(str, ppc)))
    else:
        res = experiments.run_compare(
            n=args.n_list[0] if args.n_list else None,
            iterations=args.iterations,
            density=args.densities[0] if args.densities else "uniform",
            **common,
        )
        logger.info(
            "compare: pixels per cell used: %.1f", res.summary["pixels_per_cell"]
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
            ", ".join(res.outputs),
        )
    return 0
