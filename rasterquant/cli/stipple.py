"""``rasterquant stipple``: approximate an image by N dots (SVG/PNG/PDF/CSV/NPY)."""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np

from ._common import (
    UsageError,
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
        help="output file(s): .svg .png .pdf .csv .npy .gcode (repeatable); "
        ".csv/.npy columns row, col (pixel units), radius, then r, g, b with "
        "--color; .gcode plots one stroke per dot (see the G-code options); "
        "with --layers .csv/.npy/.gcode give one file per ink, <stem>_<ink>"
        "<suffix>",
    )
    add_pen_options(p)
    add_progress(p)
    add_common(p)
    p.set_defaults(func=run, check_args=check_args)
    return p


#: output suffixes of the stipple command (write_stipple's, plus G-code)
GCODE_SUFFIX = ".gcode"


def layers_arg(text):
    """Parse ``--layers``: cmyk, rgb, k (any case) or a readable palette file."""
    from ..stipple_layers import INK_SETS, read_palette

    if text.lower() in INK_SETS:
        return text.lower()
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(
            f"expected cmyk, rgb, k or a palette file ('name #rrggbb' per line), "
            f"got {text!r} (no such file)"
        )
    try:
        read_palette(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_pen_options(p):
    """Colour layers, drawing order, cells and G-code options of ``stipple``."""
    p.add_argument(
        "--layers",
        type=layers_arg,
        default=None,
        metavar="INKS",
        help="colour separations, one layer of dots per ink: 'cmyk' (cyan, "
        "magenta, yellow, black on white), 'rgb' (red, green, blue inks on black "
        "paper, adding light), 'k' (black only) or a palette file with one "
        "'name #rrggbb' ink per line ('#' comments); dots are shared among the "
        "inks in proportion to their ink. Outputs: .svg one Inkscape layer per "
        "ink, .png/.pdf the composite print, .csv/.npy/.gcode one file per ink "
        "named <stem>_<ink><suffix> (default: off, one black layer)",
    )
    p.add_argument(
        "--order",
        choices=["tsp", "nearest", "none"],
        default="none",
        help="drawing order of the dots (of each layer): 'tsp' a short pen path "
        "(nearest neighbour improved by 2-opt/Or-opt), 'nearest' the greedy "
        "nearest-neighbour path, 'none' as stippled; every output lists the dots "
        "in this order and the sidecar records the path lengths (default: none)",
    )
    p.add_argument(
        "--svg-style",
        choices=["dots", "path"],
        default="dots",
        help="what an .svg output draws: 'dots' filled circles; 'path' the pen "
        "path through the dots in drawing order (see --order), one <path> per "
        "layer (default: dots)",
    )
    p.add_argument(
        "--cells",
        action="store_true",
        help="also write the final power cells as SVG polygons (thin outlines, "
        "no fill, with the dots) to <stem>_cells.svg beside the first -o "
        "(<stem>_<ink>_cells.svg per ink with --layers); with --method voronoi "
        "the cells are Voronoi cells (default: off)",
    )
    g = p.add_argument_group("G-code (-o NAME.gcode: one stroke per dot)")
    g.add_argument(
        "--pen-up",
        default="G0 Z5",
        metavar="CMD",
        help="G-code line that lifts the pen (default: 'G0 Z5')",
    )
    g.add_argument(
        "--pen-down",
        default="G0 Z0",
        metavar="CMD",
        help="G-code line that lowers the pen (default: 'G0 Z0'); e.g. 'M3 S30' "
        "for a servo",
    )
    g.add_argument(
        "--feed",
        type=positive_float,
        default=None,
        metavar="MM_PER_MIN",
        help="feed rate in mm/min of the moves from dot to dot (then 'G1 ... F'); "
        "default: rapid G0 moves",
    )
    g.add_argument(
        "--size-mm",
        type=positive_float,
        default=None,
        metavar="WIDTH",
        help="width of the drawing in mm, the height following the image's "
        "aspect (default: 0.1 mm per image pixel)",
    )


def check_args(args):
    """Options of ``stipple`` that exclude each other (exit 2)."""
    if args.layers is not None:
        if args.color:
            raise UsageError(
                "--color cannot be combined with --layers (each layer has its ink "
                "colour); drop one of them"
            )
        if not args.invert:
            raise UsageError(
                "--no-invert cannot be combined with --layers (inks always print "
                "the image's colours); drop one of them"
            )
    suffixes = {os.path.splitext(o)[1].lower() for o in args.output or []}
    for option, value in (("--pen-up", args.pen_up), ("--pen-down", args.pen_down)):
        if not value.strip() or "\n" in value or "\r" in value:
            raise UsageError(
                f"argument {option}: expected one G-code line, got {value!r}"
            )
    if args.pen_up.strip() == args.pen_down.strip():
        raise UsageError(
            f"--pen-up and --pen-down must differ, both are {args.pen_up!r}"
        )
    if args.svg_style == "path" and ".svg" not in suffixes:
        raise UsageError("--svg-style path needs an .svg output (-o NAME.svg)")


def _allowed_suffixes(layers):
    from ..stipple import OUTPUT_SUFFIXES
    from ..stipple_layers import LAYER_OUTPUT_SUFFIXES

    return LAYER_OUTPUT_SUFFIXES if layers else (*OUTPUT_SUFFIXES, GCODE_SUFFIX)


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


def _needs_pen(args):
    outputs = [os.path.splitext(o)[1].lower() for o in args.output]
    return (
        args.order != "none"
        or GCODE_SUFFIX in outputs
        or (args.svg_style == "path" and ".svg" in outputs)
    )


def _require(args):
    """Fail early (exit 1) when an optional part this run needs is missing."""
    if _needs_pen(args):
        try:
            from .. import pen  # noqa: F401
        except ImportError:
            raise ValueError(
                "--order, --svg-style path and .gcode outputs need rasterquant.pen, "
                "which this installation lacks"
            ) from None
    if args.cells:
        try:
            from ..assign import cell_polygons  # noqa: F401
        except ImportError:
            raise ValueError(
                "--cells needs rasterquant.assign.cell_polygons, which this "
                "installation lacks"
            ) from None


def cells_path(first_output, ink=None):
    """``<stem>_cells.svg`` (``<stem>_<ink>_cells.svg``) beside the first output."""
    stem = os.path.splitext(os.fspath(first_output))[0]
    return f"{stem}_{ink}_cells.svg" if ink else f"{stem}_cells.svg"


def _gcode_options(args):
    return {
        "size_mm": args.size_mm,
        "feed": args.feed if args.feed is not None else 3000.0,
        "travel_feed": args.feed,
        "pen_up": args.pen_up,
        "pen_down": args.pen_down,
    }


def _write_cells(path, points, weights, radii, shape):
    from ..assign import cell_polygons
    from ..io.render import write_cells_svg

    h, w = shape
    polygons = cell_polygons(
        points, weights, np.zeros(2), np.array([float(h), float(w)])
    )
    write_cells_svg(path, polygons, shape=shape, points=points, radii=radii)


def _order_info(method, tour_length, nearest_length, seconds):
    return {
        "method": method,
        "tour_length": tour_length,
        "nearest_length": nearest_length,
        "seconds": seconds,
    }


def run_pen(args, outputs, progress):
    """One black layer with a drawing order, G-code, a pen path or cells."""
    from dataclasses import replace

    from .._config import DEFAULT_QUADRATURE
    from ..io.atomic import atomic_write_json
    from ..io.points import point_columns
    from ..stipple import stipple, stipple_diagnostics, write_stipple

    t0 = time.perf_counter()
    options = stipple_options(args)
    opts = dict(options)
    render_scale, background = opts.pop("render_scale"), opts.pop("background")
    n = opts.pop("n")
    if opts.get("dot_size_range") is not None:
        opts["dot_size_range"] = tuple(opts["dot_size_range"])
    sidecar = sidecar_path(outputs[0])
    extra = [cells_path(outputs[0])] if args.cells else []
    check_outputs([*outputs, *extra, sidecar], args.force)
    res = stipple(args.input, n, progress=progress, **opts)
    t1 = time.perf_counter()
    if args.order != "none":
        from ..pen import order_dots

        tour = order_dots(res.points, method=args.order, seed=abs(args.seed))
        perm = np.asarray(tour.order, dtype=np.int64)
        info = _order_info(args.order, tour.length, tour.nearest_length, tour.time)
    else:
        perm = np.arange(res.n, dtype=np.int64)
        steps = np.diff(res.points, axis=0)
        length = float(np.sqrt((steps**2).sum(axis=1)).sum())
        info = _order_info("none", length, None, 0.0)
    if args.order != "none":
        res = replace(
            res,
            points=res.points[perm],
            radii=res.radii[perm],
            colors=None if res.colors is None else res.colors[perm],
            weights=None if res.weights is None else res.weights[perm],
        )
    for o in outputs:
        suffix = os.path.splitext(o)[1].lower()
        if suffix == GCODE_SUFFIX:
            from ..pen import write_gcode

            write_gcode(
                o,
                res.points,
                np.arange(res.n, dtype=np.int64),
                shape=res.shape,
                **_gcode_options(args),
            )
        elif suffix == ".svg" and args.svg_style == "path":
            from ..pen import write_path_svg

            write_path_svg(
                o, [("dots", res.points)], shape=res.shape, size_mm=args.size_mm
            )
        else:
            write_stipple(o, res, render_scale=render_scale, background=background)
    if args.cells:
        _write_cells(extra[0], res.points, res.weights, res.radii, res.shape)
    params = {"input": os.path.abspath(args.input), **options}
    params.update(
        ot_tol=res.ot_tol,
        quadrature=params.get("quadrature") or DEFAULT_QUADRATURE,
        order=args.order,
        svg_style=args.svg_style,
        cells=args.cells,
        gcode=_gcode_options(args),
    )
    diagnostics = stipple_diagnostics(res)
    diagnostics["order"] = dict(info, total_seconds=time.perf_counter() - t1)
    diagnostics["counts"] = {"dots": res.n}
    atomic_write_json(
        sidecar,
        json_sidecar(
            "stipple",
            None,
            params,
            diagnostics,
            [*outputs, *extra],
            t0,
            columns=point_columns(
                2, ["radius"] if res.colors is None else ["radius", "r", "g", "b"]
            ),
        ),
    )
    return res


def run_layers(args, outputs, progress):
    """Colour separations (``--layers``): stipple_layers, per-ink outputs."""
    from .._config import DEFAULT_QUADRATURE
    from ..io.atomic import atomic_write_json
    from ..io.points import point_columns
    from ..stipple_layers import (
        layer_output_paths,
        layered_diagnostics,
        resolve_inks,
        stipple_layers,
        write_layers,
    )

    t0 = time.perf_counter()
    options = stipple_options(args)
    opts = dict(options)
    render_scale = opts.pop("render_scale")
    for key in ("background", "color", "invert"):
        opts.pop(key)
    n = opts.pop("n")
    if opts.get("dot_size_range") is not None:
        opts["dot_size_range"] = tuple(opts["dot_size_range"])
    _, inks, _, _ = resolve_inks(args.layers)
    names = [name for name, _ in inks]
    files = [f for o in outputs for f in layer_output_paths(o, names)]
    cells = [cells_path(outputs[0], name) for name in names] if args.cells else []
    sidecar = sidecar_path(outputs[0])
    check_outputs([*files, *cells, sidecar], args.force)
    res = stipple_layers(
        args.input,
        n,
        layers=args.layers,
        order=args.order,
        progress=progress,
        **opts,
    )
    written = []
    for o in outputs:
        written += write_layers(
            o,
            res,
            render_scale=render_scale,
            svg_style=args.svg_style,
            gcode_options=_gcode_options(args),
        )
    for path, layer in zip(cells, res.layers if cells else [], strict=True):
        idx = layer.order
        _write_cells(
            path, layer.points[idx], layer.weights[idx], layer.radii[idx], res.shape
        )
        written.append(path)
    params = {"input": os.path.abspath(args.input), **options}
    params.update(
        layers=args.layers,
        quadrature=params.get("quadrature") or DEFAULT_QUADRATURE,
        order=args.order,
        svg_style=args.svg_style,
        cells=args.cells,
        gcode=_gcode_options(args),
    )
    for key in ("background", "color", "invert"):
        params.pop(key, None)
    diagnostics = layered_diagnostics(res)
    atomic_write_json(
        sidecar,
        json_sidecar(
            "stipple",
            None,
            params,
            diagnostics,
            written,
            t0,
            columns=point_columns(2, ["radius"]),
        ),
    )
    return res, diagnostics


def run(args):
    """Execute ``stipple``; returns the exit code."""
    t0 = time.perf_counter()
    outputs = list(args.output)
    check_output_suffixes_for(outputs, args.layers is not None)
    _require(args)
    progress = show_progress(args)
    if args.layers is not None:
        res, diag = run_layers(args, outputs, progress)
        for layer in res.layers:
            for msg in layer.warnings:
                logger.warning("warning: %s: %s", layer.name, msg)
        if not args.quiet:
            counts = ", ".join(f"{k} {v}" for k, v in res.counts.items())
            logger.info(
                "stipple: %d dots on %dx%d in %d layers (%s), order %s, path %.1f "
                "px, %.2f s -> %s",
                res.n,
                res.shape[1],
                res.shape[0],
                len(res.layers),
                counts,
                res.order_method,
                diag["tour_length"],
                time.perf_counter() - t0,
                ", ".join(outputs),
            )
        return 0
    if args.cells or _needs_pen(args):
        res = run_pen(args, outputs, progress)
    else:
        res, _ = run_stipple(
            args.input,
            outputs,
            stipple_options(args),
            progress=progress,
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


def check_output_suffixes_for(outputs, layers):
    """Refuse outputs whose suffix the chosen writers do not know."""
    allowed = _allowed_suffixes(layers)
    for o in outputs:
        if os.path.splitext(o)[1].lower() not in allowed:
            raise ValueError(
                f"output {o!r} has an unsupported suffix; expected one of "
                f"{', '.join(allowed)}"
            )
