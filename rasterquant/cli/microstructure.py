"""``rasterquant microstructure``: Laguerre grains of prescribed volumes (RVEs).

Outputs by suffix of ``-o`` (repeatable): ``.vti`` (VTK ImageData with cell arrays
``grain_id`` and ``material``, both 0-based grain ids, and ``phase``), ``.tesr`` (Neper
raster tessellation, ids from 1, seeds and weights in ``**cell``), ``.npy`` (int32
grain map, array axis order) and ``.png`` (three mid-slices). Next to the first output
go a CSV grain table (``<first output>.grains.csv``, coordinates in array axis order:
``centroid_layer, centroid_row, centroid_col``...) and a JSON sidecar (``<first
output>.json``, e.g. ``g.vti.json``).

Axes are given in array order everywhere: ``--shape D H W``, ``--spacing``, and
``--periodic-axes 0 2`` (axis indices, 0 = the first axis of ``--shape``).

If the raster cannot resolve ``--tol`` (centre quadrature: about 2/tol voxels per grain
are needed), the outputs are still written, the achieved error is printed as a warning
and recorded in the sidecar (``tol_met: false``), and the exit code is 0 — or 1 with
``--strict``.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings

import numpy as np

from ._common import (
    UsageError,
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

OUTPUT_SUFFIXES = (".vti", ".tesr", ".npy", ".png")
#: the older letters of --periodic-axes, for the error message that translates them
_LETTERS = {"x": "the last axis", "y": "the second to last", "z": "the first (3D)"}
#: what --quadrature means when it is not given
_DEFAULT_QUADRATURE = "fractional solves, then center to polish the voxel counts"


def axis_index(text):
    """Parse an axis index >= 0 of ``--periodic-axes`` (argparse type)."""
    try:
        v = int(text)
    except ValueError:
        hint = ""
        if text and set(text.lower()) <= set(_LETTERS) | {","}:
            meaning = ", ".join(f"{c} = {_LETTERS[c]}" for c in "xyz")
            hint = f" (the older letters meant {meaning})"
        raise argparse.ArgumentTypeError(
            f"expected axis indices in array order like --shape (0 = first axis), "
            f"got {text!r}{hint}"
        ) from None
    if v < 0:
        raise argparse.ArgumentTypeError(
            f"expected axis indices >= 0 in array order like --shape, got {v}"
        )
    return v


def add_parser(sub):
    """Register the sub-command."""
    p = sub.add_parser(
        "microstructure",
        help="polycrystalline microstructure: Laguerre grains of prescribed volumes",
        description="Generate a voxel microstructure whose grain volumes follow a law "
        "(Bourne, Kok, Roper, Spanjer 2020): optimal-transport Laguerre cells with a "
        "few Lloyd steps. Writes .vti (ParaView, DAMASK), .tesr (Neper), .npy, .png, "
        "a CSV grain table and a JSON sidecar.",
    )
    p.add_argument(
        "--shape",
        type=positive_int,
        nargs="+",
        required=True,
        metavar="N",
        help="voxels per axis in array order: D H W (3D) or "
        "H W (2D); one number means a cube (required)",
    )
    p.add_argument(
        "-n",
        "--n-grains",
        dest="n",
        type=positive_int,
        default=None,
        help="number of grains (required with a volume law; optional with a "
        "volumes file, whose length is the default)",
    )
    p.add_argument(
        "--volumes",
        default="constant",
        help="volume law: constant (default), lognormal:SIGMA, "
        "lognormal-diameter:MEAN,SD, uniform:A,B, dual-phase:FRACTION,RATIO, "
        "or a CSV file (one volume per line, or a 'volume' column and an "
        "optional 'phase' column)",
    )
    per = p.add_mutually_exclusive_group()
    per.add_argument(
        "--periodic",
        dest="periodic",
        action="store_true",
        default=True,
        help="periodic on every axis (default)",
    )
    per.add_argument(
        "--no-periodic", dest="periodic", action="store_false", help="a box with walls"
    )
    per.add_argument(
        "--periodic-axes",
        type=axis_index,
        nargs="+",
        default=None,
        metavar="AXIS",
        help="periodic only along these axes, given as indices in array order like "
        "--shape and --spacing: 0 is the first axis (D in 3D, H in 2D), "
        "e.g. '--periodic-axes 1 2' (3D: periodic in H and W, walls in D)",
    )
    p.add_argument(
        "--lloyd",
        type=nonneg_int,
        default=5,
        help="Lloyd steps before the final solve (default 5)",
    )
    p.add_argument(
        "--tol",
        type=tol_float,
        default=0.01,
        help="max relative volume error per grain (default 0.01)",
    )
    p.add_argument(
        "--lloyd-tol",
        type=tol_float,
        default=None,
        help="tolerance of the Lloyd-step solves (default max(tol, 0.05))",
    )
    p.add_argument(
        "--spacing",
        type=positive_float,
        nargs="+",
        default=[1.0],
        help="voxel size, one number or one per axis in array order like --shape "
        "(default 1)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "-o",
        "--output",
        action="append",
        required=True,
        help="output file(s): .vti .tesr .npy .png (repeatable); the grain table "
        "and the JSON sidecar are named after the first (g.vti -> "
        "g.vti.grains.csv, g.vti.json)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if the achieved volume error exceeds --tol",
    )
    add_progress(p)
    add_quadrature(p, default=_DEFAULT_QUADRATURE)
    add_common(p)
    p.set_defaults(func=run, check_args=check_args)
    return p


def _shape(args):
    shape = tuple(args.shape)
    return shape * 3 if len(shape) == 1 else shape


def check_args(args):
    """Check options against each other after parsing (UsageError: exit 2)."""
    shape = _shape(args)
    if len(shape) not in (2, 3):
        raise UsageError(
            f"argument --shape: expected 1, 2 or 3 numbers, got {len(shape)}"
        )
    ndim = len(shape)
    if len(args.spacing) not in (1, ndim):
        raise UsageError(
            f"argument --spacing: expected 1 or {ndim} numbers (one per axis of "
            f"--shape), got {len(args.spacing)}"
        )
    if args.periodic_axes is not None:
        bad = [a for a in args.periodic_axes if a >= ndim]
        if bad:
            raise UsageError(
                f"argument --periodic-axes: expected axis indices 0..{ndim - 1} "
                f"(array order, like --shape), got {bad[0]}"
            )
    if args.n is None and not os.path.isfile(args.volumes):
        from ..microstructure.generate import VOLUME_LAWS

        law = args.volumes.partition(":")[0].strip().lower()
        if law in {name.partition(":")[0] for name in VOLUME_LAWS}:
            raise UsageError(
                f"the following arguments are required: -n/--n-grains (with the "
                f"volume law {args.volumes!r})"
            )


def _periodic(args, ndim):
    if args.periodic_axes is None:
        return bool(args.periodic)
    flags = [False] * ndim
    for a in args.periodic_axes:
        flags[a] = True
    return tuple(flags)


def _grain_table(ms):
    """CSV text: one row per grain (coordinates in array axis order)."""
    from ..io.points import COORDINATE_NAMES

    st = ms.stats
    d = ms.seeds.shape[1]
    names = COORDINATE_NAMES[d]
    cols = [
        "grain_id",
        "phase",
        "target_volume",
        "volume",
        "relative_error",
        "equivalent_diameter",
        *[f"centroid_{c}" for c in names],
        *[f"seed_{c}" for c in names],
        "weight",
        "n_neighbours",
        "surface_area",
    ]
    rel = (ms.volumes - ms.target_volumes) / ms.target_volumes
    data = [
        np.arange(ms.n_grains),
        ms.phases,
        ms.target_volumes,
        ms.volumes,
        rel,
        st.equivalent_diameter,
        *[st.centroid[:, k] for k in range(d)],
        *[ms.seeds[:, k] for k in range(d)],
        ms.weights,
        st.n_neighbours,
        st.surface_area,
    ]
    lines = [",".join(cols)]
    for row in zip(*data, strict=True):
        lines.append(
            ",".join(
                str(int(v)) if isinstance(v, (int, np.integer)) else repr(float(v))
                for v in row
            )
        )
    return "\n".join(lines) + "\n"


def _write_outputs(ms, outputs):
    from ..io.atomic import atomic_save_npy
    from ..io.render import grain_slices_png
    from ..io.tesr import write_tesr
    from ..io.vtk import write_vti

    gm = ms.grain_map
    for o in outputs:
        suffix = os.path.splitext(o)[1].lower()
        if suffix == ".vti":
            write_vti(
                o,
                {"grain_id": gm, "material": gm, "phase": ms.phases[gm]},
                spacing=ms.spacing,
            )
        elif suffix == ".tesr":
            # Neper's power distance is |x - s|^2 - w^2: w = sqrt(psi - min psi) gives
            # the same cells as rasterquant's |x - y|^2 - psi
            w = np.sqrt(ms.weights - ms.weights.min())
            write_tesr(o, gm, spacing=ms.spacing, seeds=ms.seeds, weights=w)
        elif suffix == ".npy":
            atomic_save_npy(o, gm)
        else:
            grain_slices_png(o, gm, seed=0)


def run(args):
    """Execute ``microstructure``; returns the exit code."""
    from ..io.atomic import atomic_write_json, atomic_write_text
    from ..microstructure import generate_microstructure
    from ..microstructure.generate import LLOYD_TOL, VOLUME_LAWS

    t0 = time.perf_counter()
    check_args(args)  # done by the parser too; run() may be called directly
    shape = _shape(args)
    ndim = len(shape)
    spacing = args.spacing
    spacing = spacing[0] if len(spacing) == 1 else tuple(spacing)
    outputs = list(args.output)
    for o in outputs:
        if os.path.splitext(o)[1].lower() not in OUTPUT_SUFFIXES:
            raise ValueError(
                f"output {o!r} has an unsupported suffix; expected one of "
                f"{', '.join(OUTPUT_SUFFIXES)}"
            )
    table, sidecar = outputs[0] + ".grains.csv", sidecar_path(outputs[0])
    check_outputs([*outputs, table, sidecar], args.force)
    periodic = _periodic(args, ndim)
    if args.n is None and not os.path.isfile(args.volumes):
        raise ValueError(
            f"--volumes {args.volumes!r} is not an existing file, and without "
            f"-n/--n-grains it must be one; expected a volumes file, or -n with a "
            f"volume law ({', '.join(VOLUME_LAWS)})"
        )
    lloyd_tol = args.lloyd_tol
    if lloyd_tol is None:
        lloyd_tol = max(args.tol, LLOYD_TOL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ms = generate_microstructure(
            shape,
            args.n,
            volumes=args.volumes,
            spacing=spacing,
            periodic=periodic,
            lloyd_iterations=args.lloyd,
            tol=args.tol,
            lloyd_tol=lloyd_tol,
            seed=args.seed,
            progress=show_progress(args),
            quadrature=args.quadrature,
        )
    for w in caught:
        logger.warning("warning: %s", w.message)
    _write_outputs(ms, outputs)
    atomic_write_text(table, _grain_table(ms))
    diagnostics = {
        "n_grains": ms.n_grains,
        "max_volume_error": ms.max_volume_error,
        "mean_volume_error": ms.mean_volume_error,
        "volume_measure": ms.volume_measure,
        "max_voxel_volume_error": ms.max_voxel_volume_error,
        "requested_tol": args.tol,
        "tol_met": bool(ms.converged),
        "status": ms.status,
        "voxels_per_grain": float(np.prod(shape)) / ms.n_grains,
        "n_repairs": ms.n_repairs,
        "newton_iterations": ms.history["newton_iterations"],
        "history": ms.history,
        "energy": ms.history["energy"][-1],
        "generate_seconds": ms.elapsed,
        "mean_neighbours": float(ms.stats.n_neighbours.mean()),
        "warnings": [str(w.message) for w in caught],
    }
    params = {
        "shape": list(shape),
        "n_grains": ms.n_grains,
        "volumes": ms.volume_law,
        "periodic": list(ms.periodic),
        "lloyd": args.lloyd,
        "tol": args.tol,
        "lloyd_tol": lloyd_tol,
        "quadrature": args.quadrature or _DEFAULT_QUADRATURE,
        "spacing": list(ms.spacing),
        "seed": args.seed,
        "axis_order": "array order (layer, row, col) in --shape, --spacing, "
        "--periodic-axes, .npy and the grain table; .vti and .tesr store col "
        "fastest",
        "grain_ids": "0-based in .npy, .vti (grain_id, material) and the CSV table; "
        "1-based in .tesr",
        "tesr_weights": "sqrt(psi - min(psi)) (Neper power distance |x-s|^2 - w^2)",
        "table": table,
    }
    atomic_write_json(
        sidecar,
        json_sidecar(
            "microstructure", args, params, diagnostics, [*outputs, table], t0
        ),
    )
    if not ms.converged:
        logger.warning(
            "warning: requested tol %g NOT met: achieved max relative volume error "
            "%.3g (status %s, %.0f voxels per grain; about %.0f are needed)",
            args.tol,
            ms.max_volume_error,
            ms.status,
            float(np.prod(shape)) / ms.n_grains,
            2.0 / args.tol,
        )
    if not args.quiet:
        logger.info(
            "microstructure: %d grains on %s%s, max volume error %.3g%% (requested "
            "%g%%; %s), mean %.3g%%, voxel counts within %.3g%%, %d Lloyd steps, %d "
            "Newton iterations, %d empty-grain repairs (warm starts that left a "
            "grain without volume, fixed by raising its weight), %.2f s -> %s",
            ms.n_grains,
            "x".join(map(str, shape)),
            " (periodic)" if all(ms.periodic) else "",
            100 * ms.max_volume_error,
            100 * args.tol,
            "voxel counts" if ms.volume_measure == "voxels" else "exact cell volumes",
            100 * ms.mean_volume_error,
            100 * ms.max_voxel_volume_error,
            args.lloyd,
            sum(ms.history["newton_iterations"]),
            ms.n_repairs,
            time.perf_counter() - t0,
            ", ".join([*outputs, table, sidecar]),
        )
    if args.strict and not ms.converged:
        logger.error(
            "error: --strict and tol %g not met (achieved %.3g)",
            args.tol,
            ms.max_volume_error,
        )
        return 1
    return 0
