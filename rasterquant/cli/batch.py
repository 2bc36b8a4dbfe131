"""``rasterquant batch``: stipple or quantize every image of a folder."""

from __future__ import annotations

import logging
import os

from ._common import (
    UsageError,
    add_common,
    add_progress,
    positive_int,
    resolved_quadrature,
    show_progress,
    step_float,
)
from .stipple import add_stipple_options, stipple_options

logger = logging.getLogger("rasterquant")


def add_parser(sub):
    """Register the sub-command."""
    from ..batch import OUTPUT_SUFFIXES

    p = sub.add_parser(
        "batch",
        help="stipple or quantize every image of a folder (local pool or Dask)",
        description="Run stipple (or quantize) on every file of IN_DIR matching "
        "--pattern. Outputs are named after the input stem in OUT_DIR, with one JSON "
        "sidecar each (failed inputs get one too, with the error) and "
        "OUT_DIR/manifest.json. Reruns skip finished inputs (--force redoes them). "
        "OUT_DIR may be IN_DIR or lie inside it only if no output name (STEM.FORMAT, "
        "STEM.json, manifest.json) matches --pattern. Ctrl-C stops the workers at "
        "once; the manifest then lists what is finished. Exit code 1 if any input "
        "failed.",
    )
    p.add_argument("in_dir", metavar="IN_DIR", help="input folder")
    p.add_argument(
        "out_dir",
        metavar="OUT_DIR",
        help="output folder (shared path for --scheduler); outside IN_DIR unless no "
        "output name matches --pattern",
    )
    p.add_argument("--pattern", default="*.png", help="file name glob (default *.png)")
    p.add_argument(
        "--task",
        choices=["stipple", "quantize"],
        default="stipple",
        help="what to run on each input: stipple (default) or quantize",
    )
    p.add_argument(
        "-f",
        "--format",
        dest="formats",
        action="append",
        default=None,
        metavar="FORMAT",
        help="output format per input, repeatable: "
        + " ".join(x.lstrip(".") for x in OUTPUT_SUFFIXES["stipple"])
        + " for --task stipple (default svg and png); "
        + " ".join(x.lstrip(".") for x in OUTPUT_SUFFIXES["quantize"])
        + " for --task quantize (default csv)",
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
        type=step_float,
        default=1.0,
        help="relaxed Lloyd step in (0, 1] (quantize)",
    )
    add_stipple_options(p)
    add_progress(p)
    add_common(p)
    p.set_defaults(func=run, check_args=check_args, iterations=None)
    return p


def check_args(args):
    """Check options against each other after parsing (UsageError: exit 2).

    Each ``-f/--format`` must be an output of ``--task``.
    """
    from ..batch import OUTPUT_SUFFIXES

    allowed = OUTPUT_SUFFIXES[args.task]
    for f in args.formats or ():
        if "." + f.lower().lstrip(".") not in allowed:
            raise UsageError(
                f"argument -f/--format: {f!r} is not an output of --task "
                f"{args.task}; expected one of "
                f"{' '.join(x.lstrip('.') for x in allowed)}"
            )


def run(args):
    """Execute ``batch``; returns 1 if any input failed."""
    from ..batch import run_batch

    check_args(args)  # done by the parser too; run() may be called directly
    opts = stipple_options(args)
    opts["quadrature"] = resolved_quadrature(args)  # recorded as used, not null
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
            "batch %s: %d ok, %d failed, %d skipped -> %s",
            args.task,
            c["ok"],
            c["failed"],
            c["skipped"],
            os.path.join(os.path.normpath(args.out_dir), "manifest.json"),
        )
    return 1 if c["failed"] else 0
