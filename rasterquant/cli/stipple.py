"""``rasterquant stipple``: approximate an image by N dots (SVG/PNG/PDF/CSV/NPY)."""

from __future__ import annotations

import logging
import os
import time

from ._common import (
    add_common,
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


def add_stipple_options(p):
    """Options shared by ``stipple`` and ``batch --task stipple``."""
    p.add_argument(
        "-n",
        "--n-points",
        dest="n",
        type=positive_int,
        default=None,
        help="number of dots",
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
        help="Lloyd iterations (default 50)",
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
    p.add_argument(
        "--invert",
        dest="invert",
        action="store_true",
        default=True,
        help="dark is dense (default)",
    )
    p.add_argument(
        "--no-invert", dest="invert", action="store_false", help="bright is dense"
    )
    p.add_argument("--gamma", type=positive_float, default=1.0)
    p.add_argument(
        "--floor",
        type=float,
        default=0.0,
        help="minimum density value in [0, 1) before gamma",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--scale",
        type=positive_float,
        default=None,
        help="resample the image by this factor first",
    )
    g.add_argument(
        "--resolution",
        type=positive_int,
        default=None,
        help="resample so that the longer side has this many pixels",
    )
    p.add_argument(
        "--dot-size",
        type=positive_float,
        default=None,
        help="constant dot radius in pixels (default: matches the tone)",
    )
    p.add_argument(
        "--dot-size-range",
        type=positive_float,
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help="dot radii from MIN to MAX following the local density",
    )
    p.add_argument(
        "--color", action="store_true", help="keep the mean colour of each cell"
    )
    p.add_argument(
        "--tol",
        type=tol_float,
        default=None,
        help="relative mass tolerance of each OT solve (default: what the "
        "raster resolves, max(0.02, 3 / pixels per dot))",
    )
    p.add_argument(
        "--render-scale",
        type=positive_float,
        default=1.0,
        help="PNG/PDF pixels per image pixel (default 1)",
    )
    p.add_argument("--background", default="white", help="background colour")
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
        "follows the suffix of each -o; a JSON sidecar is written next to the first.",
    )
    p.add_argument("input", help="image file (png, jpg, tif, bmp...)")
    add_stipple_options(p)
    p.add_argument(
        "-o",
        "--output",
        action="append",
        required=True,
        help="output file(s): .svg .png .pdf .csv .npy (repeatable)",
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
    """Stipple one file, write its outputs and sidecar; returns (result, sidecar)."""
    from ..io.atomic import atomic_write_json
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
    atomic_write_json(
        sidecar,
        json_sidecar("stipple", None, params, stipple_diagnostics(res), outputs, t0),
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
