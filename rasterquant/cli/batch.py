"""``rasterquant batch``: stipple or quantize every image of a folder."""

from __future__ import annotations

import logging

from ._common import (
    add_common,
    add_progress,
    positive_float,
    positive_int,
    show_progress,
)
from .stipple import add_stipple_options, stipple_options

logger = logging.getLogger("rasterquant")


def add_parser(sub):
    """Register the sub-command."""
    p = sub.add_parser(
        "batch",
        help="stipple or quantize every image of a folder (local pool or Dask)",
        description="Run stipple (or quantize) on every file of IN_DIR matching "
        "--pattern. Outputs are named after the input stem in OUT_DIR, with one JSON "
        "sidecar each and OUT_DIR/manifest.json. Reruns skip finished inputs "
        "(--force redoes them). Exit code 1 if any input failed.",
    )
    p.add_argument("in_dir", help="input folder")
    p.add_argument("out_dir", help="output folder (shared path for --scheduler)")
    p.add_argument("--pattern", default="*.png", help="file name glob (default *.png)")
    p.add_argument("--task", choices=["stipple", "quantize"], default="stipple")
    p.add_argument(
        "-f",
        "--format",
        dest="formats",
        action="append",
        default=None,
        help="output suffix per input, repeatable: svg png pdf csv npy "
        "(default: svg and png for stipple, csv for quantize)",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=positive_int,
        default=1,
        help="local worker processes (default 1)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Dask scheduler address, e.g. tcp://host:8786",
    )
    p.add_argument(
        "--step",
        type=positive_float,
        default=1.0,
        help="relaxed Lloyd step in (0, 1] (quantize)",
    )
    add_stipple_options(p)
    add_progress(p)
    add_common(p)
    p.set_defaults(func=run, iterations=None)
    return p


def run(args):
    """Execute ``batch``; returns 1 if any input failed."""
    from ..batch import run_batch

    if args.n is None:
        raise ValueError("-n/--n-points is required: the number of points per image")
    opts = stipple_options(args)
    if args.task == "quantize":
        opts = {
            k: opts[k]
            for k in (
                "n",
                "method",
                "iterations",
                "init",
                "seed",
                "invert",
                "gamma",
                "floor",
                "quadrature",
            )
        }
        opts["iterations"] = 20 if args.iterations is None else args.iterations
        opts["tol"] = args.tol if args.tol is not None else 0.02
        if args.step > 1:
            raise ValueError(f"--step must be in (0, 1], got {args.step}")
        opts["step"] = args.step
    elif opts["iterations"] is None:
        opts["iterations"] = 50
    try:
        manifest = run_batch(
            args.in_dir,
            args.out_dir,
            pattern=args.pattern,
            task=args.task,
            options=opts,
            outputs=args.formats,
            jobs=args.jobs,
            scheduler=args.scheduler,
            threads=args.threads,
            force=args.force,
            progress=show_progress(args),
        )
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    c = manifest["counts"]
    if not args.quiet:
        logger.info(
            "batch %s: %d ok, %d failed, %d skipped -> %s/manifest.json",
            args.task,
            c["ok"],
            c["failed"],
            c["skipped"],
            args.out_dir,
        )
    return 1 if c["failed"] else 0
