"""``rasterquant stipple``: approximate an image by N dots (SVG/PNG/PDF/CSV/NPY)."""

from __future__ import annotations

import argparse
import logging
import os
import time

from ._common import (
    add_common,
    add_image_options,
    add_progress,
    add_quadrature,
    check_outputs,
    json_sidecar,
    nonneg_int,
    positive_float,
    positive_int,
    show_progress,
    sidecar_path,
    tol_float,
)

logger = logging.getLogger("rasterquant")


class _RadiusRange(argparse.Action):
    """``--dot-size-range MIN MAX``: two radii > 0 with MIN <= MAX."""

    def __call__(self, parser, namespace, values, option_string=None):
        lo, hi = values
        if lo > hi:
            raise argparse.ArgumentError(
                self, f"expected MIN <= MAX, got MIN = {lo:g} > MAX = {hi:g}"
            )
        setattr(namespace, self.dest, [lo, hi])


def add_stipple_options(p):
    """Options shared by ``stipple`` and ``batch`` (both tasks)."""
    p.add_argument(
        "-n",
        "--n-points",
        dest="n",
        type=positive_int,
        required=True,
        help="number of dots (points per image for batch; required)",
    )
    p.add_argument(
        "--method",
        choices=["uniform", "voronoi"],
        default="uniform",
        help="uniform: OT cells of equal mass (default); voronoi: classic "
        "weighted-Voronoi stippling",
    )
    p.add_argument(
        "--iterations",
        type=nonneg_int,
        default=50,
        help="Lloyd iterations (default 50; batch --task quantize: 20)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--init",
        choices=["stratified", "density", "uniform", "grid", "jittered-grid"],
        default="stratified",
        help="initial points: 'stratified' spreads them over the image in "
        "proportion to its mass, region by region; 'density' draws "
        "them independently (default: stratified)",
    )
    add_image_options(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--scale",
        type=positive_float,
        default=None,
        help="resample the image by this factor first (default: no resampling)",
    )
    g.add_argument(
        "--resolution",
        type=positive_int,
        default=None,
        help="resample so that the longer side has this many pixels (default: no "
        "resampling)",
    )
    p.add_argument(
        "--dot-size",
        type=positive_float,
        default=None,
        help="constant dot radius in pixels, used as given (dots may overlap); "
        "default: each dot's radius reproduces the tone of its own cell, "
        "sqrt(ink / pi), capped at 0.45x the distance to its nearest dot so that "
        "dots never overlap",
    )
    p.add_argument(
        "--dot-size-range",
        type=positive_float,
        nargs=2,
        default=None,
        action=_RadiusRange,
        metavar=("MIN", "MAX"),
        help="dot radii linear in tone: radius = MIN + (MAX - MIN) x the mean "
        "darkness (0 white, 1 black) of the inked pixels of the dot's cell, capped "
        "at 0.45x the distance to the nearest dot so that dots never overlap "
        "(0 < MIN <= MAX; default: off, see --dot-size)",
    )
    p.add_argument(
        "--color",
        action="store_true",
        help="keep the mean colour of each cell (default: black dots)",
    )
    p.add_argument(
        "--tol",
        type=tol_float,
        default=None,
        help="relative mass tolerance of each OT solve, in (0, 1) (default: 0.01; "
        "with --quadrature center max(0.01, 3 / pixels per dot), at most 0.5; "
        "batch --task quantize: 0.02)",
    )
    p.add_argument(
        "--render-scale",
        type=positive_float,
        default=1.0,
        help="PNG/PDF pixels per image pixel (default 1)",
    )
    p.add_argument(
        "--background",
        default="white",
        help="background colour of SVG/PNG/PDF (default white)",
    )
    add_quadrature(p)


def stipple_options(args) -> dict:
    """Keyword arguments of :func:`rasterquant.stipple.stipple` from parsed args."""
    return {
        "n": args.n,
        "method": args.method,
        "iterations": args.iterations,
        "seed": args.seed,
        "init": args.init,
        "invert": args.invert,
        "gamma": args.gamma,
        "floor": args.floor,
        "scale": args.scale,
        "resolution": args.resolution,
        "dot_size": args.dot_size,
        "dot_size_range": list(args.dot_size_range) if args.dot_size_range else None,
        "color": args.color,
        "ot_tol": args.tol,
        "quadrature": args.quadrature,
        "render_scale": args.render_scale,
        "background": args.background,
    }


def add_parser(sub):
    """Register the sub-command."""
    p = sub.add_parser(
        "stipple",
        help="approximate an image by N dots (SVG, PNG, PDF, CSV, NPY)",
        description="Stipple an image: N dots placed by optimal-transport Lloyd "
        "(uniform) or weighted-Voronoi Lloyd. Dark is dense. The output format "
        "follows the suffix of each -o; a JSON sidecar is written next to the first, "
        "named after it (a.png -> a.png.json).",
    )
    p.add_argument("input", help="image file (png, jpg, tif, bmp...)")
    add_stipple_options(p)
    p.add_argument(
        "-o",
        "--output",
        action="append",
        required=True,
        help="output file(s): .svg .png .pdf .csv .npy (repeatable); .csv/.npy "
        "columns row, col (pixel units), radius, then r, g, b with --color",
    )
    add_progress(p)
    add_common(p)
    p.set_defaults(func=run)
    return p


def check_output_suffixes(outputs):
    """Refuse outputs whose suffix :func:`write_stipple` does not know."""
    from ..stipple import OUTPUT_SUFFIXES

    for o in outputs:
        if os.path.splitext(o)[1].lower() not in OUTPUT_SUFFIXES:
            raise ValueError(
                f"output {o!r} has an unsupported suffix; expected one of "
                f"{', '.join(OUTPUT_SUFFIXES)}"
            )


def run_stipple(input_path, outputs, options, *, progress=False, force=True):
    """Stipple one file, write its outputs and sidecar; returns (result, sidecar).

    The sidecar records the values used, defaults resolved: ``ot_tol`` (the
    tolerance the solves used), ``quadrature``, and ``dot_size`` when the dots
    have one constant radius.
    """
    from .._config import DEFAULT_QUADRATURE
    from ..io.atomic import atomic_write_json
    from ..io.points import point_columns
    from ..stipple import stipple, stipple_diagnostics, write_stipple

    t0 = time.perf_counter()
    opts = dict(options)
    render_scale = opts.pop("render_scale", 1.0)
    background = opts.pop("background", "white")
    n = opts.pop("n")
    if n is None:
        raise ValueError("-n/--n-points is required: the number of dots")
    if opts.get("dot_size_range") is not None:
        opts["dot_size_range"] = tuple(opts["dot_size_range"])
    sidecar = sidecar_path(outputs[0])
    check_outputs([*outputs, sidecar], force)
    res = stipple(input_path, n, progress=progress, **opts)
    for o in outputs:
        write_stipple(o, res, render_scale=render_scale, background=background)
    params = {"input": os.path.abspath(input_path), **options}
    params["ot_tol"] = res.ot_tol
    if params.get("quadrature") is None:
        params["quadrature"] = DEFAULT_QUADRATURE
    radii = res.radii
    if params.get("dot_size") is None and radii.size and (radii == radii[0]).all():
        params["dot_size"] = float(radii[0])
    extra = ["radius"] if res.colors is None else ["radius", "r", "g", "b"]
    atomic_write_json(
        sidecar,
        json_sidecar(
            "stipple",
            None,
            params,
            stipple_diagnostics(res),
            outputs,
            t0,
            columns=point_columns(res.points.shape[1], extra),
        ),
    )
    return res, sidecar


def run(args):
    """Execute ``stipple``; returns the exit code."""
    t0 = time.perf_counter()
    outputs = list(args.output)
    check_output_suffixes(outputs)
    res, _ = run_stipple(
        args.input,
        outputs,
        stipple_options(args),
        progress=show_progress(args),
        force=args.force,
    )
    for msg in res.warnings:
        logger.warning("warning: %s", msg)
    if not args.quiet:
        err = res.max_mass_error
        mass = "n/a (voronoi)" if err != err else f"{err:.3g} (tol {res.ot_tol:.3g})"
        logger.info(
            "stipple: %d dots on %dx%d, %d iterations, energy %.6g, max mass error "
            "%s, %.2f s -> %s",
            res.n,
            res.shape[1],
            res.shape[0],
            res.n_iter,
            res.energy,
            mass,
            time.perf_counter() - t0,
            ", ".join(outputs),
        )
    return 0
