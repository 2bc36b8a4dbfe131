"""``rasterquant quantize``: approximate a density file by N points."""

from __future__ import annotations

import logging
import os
import time
import warnings

from ._common import (
    add_common,
    add_image_options,
    add_progress,
    add_quadrature,
    check_outputs,
    json_sidecar,
    nonneg_int,
    positive_int,
    resolved_quadrature,
    show_progress,
    sidecar_path,
    step_float,
    tol_float,
)

logger = logging.getLogger("rasterquant")

POINT_SUFFIXES = (".csv", ".npy", ".txt", ".xyz")


def add_parser(sub):
    """Register the sub-command."""
    p = sub.add_parser(
        "quantize",
        help="approximate a density image/volume by N points "
        "(Lloyd + optimal transport)",
        description="Approximate a density (png/jpg/tif/npy) by N points. Dark is "
        "dense for images. Writes the points (csv/npy/txt/xyz: columns row, col "
        "- or layer, row, col in 3D - in physical units, then weight and mass) and "
        "a JSON sidecar named after the first output (points.csv -> "
        "points.csv.json).",
    )
    p.add_argument("input", help="density file: .png .jpg .tif (2D or multi-page) .npy")
    p.add_argument(
        "-n",
        "--n-points",
        dest="n",
        type=positive_int,
        required=True,
        help="number of points (required)",
    )
    p.add_argument(
        "-o",
        "--output",
        action="append",
        required=True,
        help="output file(s): .csv .npy .txt .xyz (repeatable); columns row, col "
        "(layer, row, col in 3D), weight, mass; .csv starts with a header row, "
        ".txt/.xyz with a '# row col ...' line",
    )
    p.add_argument(
        "--method",
        choices=["uniform", "voronoi"],
        default="uniform",
        help="uniform: OT cells of equal mass (default); voronoi: classic Lloyd",
    )
    p.add_argument(
        "--iterations",
        type=nonneg_int,
        default=20,
        help="Lloyd iterations (default 20)",
    )
    p.add_argument(
        "--init",
        choices=["stratified", "density", "uniform", "grid", "jittered-grid"],
        default="stratified",
        help="initial points: 'stratified' spreads them over the image in "
        "proportion to its mass, region by region; 'density' draws "
        "them independently (default: stratified)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--tol",
        type=tol_float,
        default=0.02,
        help="relative mass tolerance of each OT solve, in (0, 1) (default 0.02)",
    )
    p.add_argument(
        "--step",
        type=step_float,
        default=1.0,
        help="relaxed Lloyd step in (0, 1] (default 1)",
    )
    p.add_argument(
        "--periodic",
        action="store_true",
        help="periodic (torus) domain on every axis (default: a box with walls)",
    )
    add_image_options(p)
    add_progress(p)
    add_quadrature(p)
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args):
    """Execute ``quantize``; returns the exit code."""
    from ..density import read_density
    from ..io.atomic import atomic_write_json
    from ..io.points import point_columns, write_points
    from ..lloyd import lloyd
    from ..sampling import sample_points

    t0 = time.perf_counter()
    for o in args.output:
        if os.path.splitext(o)[1].lower() not in POINT_SUFFIXES:
            raise ValueError(
                f"output {o!r} has an unsupported suffix; expected one of "
                f"{', '.join(POINT_SUFFIXES)}"
            )
    outputs = list(args.output)
    sidecar = sidecar_path(outputs[0])
    check_outputs([*outputs, sidecar], args.force)
    density = read_density(
        args.input,
        invert=args.invert,
        gamma=args.gamma,
        floor=args.floor,
        periodic=args.periodic,
    )
    n_pos = density.n_positive()
    if args.n > n_pos:
        raise ValueError(
            f"-n {args.n} points but {args.input} has only {n_pos} positive pixels; "
            "expected N <= positive pixels"
        )
    quadrature = resolved_quadrature(args)
    init = sample_points(density, args.n, method=args.init, seed=args.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lloyd(
            density,
            init,
            method=args.method,
            n_iter=args.iterations,
            step=args.step,
            ot_tol=args.tol,
            progress=show_progress(args),
            quadrature=quadrature,
        )
    for w in caught:
        logger.warning("%s", w.message)
    err = res.history["max_mass_error"][-1]
    for o in outputs:
        write_points(o, res.points, weight=res.weights, mass=res.masses)
    diagnostics = {
        "energy": res.energy,
        "iterations": res.n_iter,
        "max_mass_error": None if err != err else err,
        "requested_tol": args.tol,
        "mass_tol_met": bool(err <= args.tol) if err == err else None,
        "pixels_per_cell": n_pos / args.n,
        "energy_history": res.history["energy"],
    }
    params = {
        "input": os.path.abspath(args.input),
        "n": args.n,
        "method": args.method,
        "iterations": args.iterations,
        "init": args.init,
        "seed": args.seed,
        "tol": args.tol,
        "step": args.step,
        "periodic": args.periodic,
        "quadrature": quadrature,
        "invert": args.invert,
        "gamma": args.gamma,
        "floor": args.floor,
        "shape": list(density.grid.shape),
    }
    columns = point_columns(density.grid.ndim, ["weight", "mass"])
    atomic_write_json(
        sidecar,
        json_sidecar(
            "quantize", args, params, diagnostics, outputs, t0, columns=columns
        ),
    )
    if not args.quiet:
        mass = "n/a (voronoi)" if err != err else f"{err:.3g} (requested {args.tol:g})"
        logger.info(
            "quantize: %d points, %d iterations, energy %.6g, max mass error %s, "
            "%.2f s -> %s",
            args.n,
            res.n_iter,
            res.energy,
            mass,
            time.perf_counter() - t0,
            ", ".join(outputs),
        )
    return 0
