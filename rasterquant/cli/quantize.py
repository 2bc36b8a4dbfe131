"""``rasterquant quantize``: approximate a density file by N points."""

from __future__ import annotations

import logging
import os
import time
import warnings

from ._common import (
    add_common,
    add_progress,
    add_quadrature,
    check_outputs,
    json_sidecar,
    nonneg_int,
    positive_float,
    positive_int,
    quadrature_kwargs,
    show_progress,
    sidecar_path,
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
        "dense for images. Writes the points (csv/npy) and a JSON sidecar.",
    )
    p.add_argument("input", help="density file: .png .jpg .tif (2D or multi-page) .npy")
    p.add_argument(
        "-n",
        "--n-points",
        dest="n",
        type=positive_int,
        required=True,
        help="number of points",
    )
    p.add_argument(
        "-o",
        "--output",
        action="append",
        required=True,
        help="output file(s): .csv .npy .txt (repeatable)",
    )
    p.add_argument(
        "--method",
        choices=["uniform", "voronoi"],
        default="uniform",
        help="uniform: OT cells of equal mass; voronoi: classic Lloyd",
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
        help="relative mass tolerance of each OT solve (default 0.02)",
    )
    p.add_argument(
        "--step",
        type=positive_float,
        default=1.0,
        help="relaxed Lloyd step in (0, 1] (default 1)",
    )
    p.add_argument("--periodic", action="store_true", help="periodic (torus) domain")
    p.add_argument(
        "--no-invert",
        dest="invert",
        action="store_false",
        help="bright is dense (images)",
    )
    p.add_argument("--gamma", type=positive_float, default=1.0)
    p.add_argument("--floor", type=float, default=0.0)
    add_progress(p)
    add_quadrature(p)
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args):
    """Execute ``quantize``; returns the exit code."""
    from ..density import read_density
    from ..io.atomic import atomic_write_json
    from ..io.points import write_points
    from ..lloyd import lloyd
    from ..sampling import sample_points

    t0 = time.perf_counter()
    for o in args.output:
        if os.path.splitext(o)[1].lower() not in POINT_SUFFIXES:
            raise ValueError(
                f"output {o!r} has an unsupported suffix; expected one of "
                f"{', '.join(POINT_SUFFIXES)}"
            )
    if args.step > 1:
        raise ValueError(f"--step must be in (0, 1], got {args.step}")
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
            **quadrature_kwargs(args),
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
        "quadrature": args.quadrature,
        "invert": args.invert,
        "gamma": args.gamma,
        "floor": args.floor,
        "shape": list(density.grid.shape),
    }
    atomic_write_json(
        sidecar, json_sidecar("quantize", args, params, diagnostics, outputs, t0)
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
