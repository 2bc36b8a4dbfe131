"""``rasterquant microstructure``: Laguerre grains of prescribed volumes (RVEs).

Outputs by suffix of ``-o`` (repeatable): ``.vti`` (VTK ImageData with cell arrays
``grain_id`` and ``material``, both 0-based grain ids, and ``phase``), ``.tesr`` (Neper
raster tessellation, ids from 1, seeds and weights in ``**cell``), ``.npy`` (int32
grain map, array axis order) and ``.png`` (three mid-slices). Next to the first output
go a CSV grain table (``<stem>.csv``) and a JSON sidecar (``<stem>.json``).

If the raster cannot resolve ``--tol`` (centre quadrature: about 2/tol voxels per grain
are needed), the outputs are still written, the achieved error is printed as a warning
and recorded in the sidecar (``tol_met: false``), and the exit code is 0 — or 1 with
``--strict``.
"""

from __future__ import annotations

import logging
import os
import time
import warnings

import numpy as np

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

OUTPUT_SUFFIXES = (".vti", ".tesr", ".npy", ".png")
_AXES = {"x": -1, "y": -2, "z": -3}


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
        "H W (2D); one number means a cube",
    )
    p.add_argument(
        "-n",
        "--n-grains",
        dest="n",
        type=positive_int,
        default=None,
        help="number of grains (optional with a volumes file)",
    )
    p.add_argument(
        "--volumes",
        default="constant",
        help="volume law: constant, lognormal:SIGMA, "
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
        default=None,
        metavar="AXES",
        help="periodic only along these axes, e.g. 'xy' (x is the last "
        "array axis, z the first)",
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
        help="voxel size, one number or one per axis (array order)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "-o",
        "--output",
        action="append",
        required=True,
        help="output file(s): .vti .tesr .npy .png (repeatable)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if the achieved volume error exceeds --tol",
    )
    add_progress(p)
    add_quadrature(p)
    add_common(p)
    p.set_defaults(func=run)
    return p


def _periodic(args, ndim):
    if args.periodic_axes is None:
        return bool(args.periodic)
    text = args.periodic_axes.replace(",", "").replace(" ", "").lower()
    bad = set(text) - set(_AXES) or (ndim == 2 and "z" in text)
    if not text or bad:
        raise ValueError(
            f"--periodic-axes {args.periodic_axes!r}: expected letters from "
            f"{'xyz' if ndim == 3 else 'xy'} (x = last array axis)"
        )
    flags = [False] * ndim
    for c in text:
        flags[ndim + _AXES[c]] = True
    return tuple(flags)


def _grain_table(ms):
    """CSV text: one row per grain (coordinates in x, y[, z] order)."""
    st = ms.stats
    d = ms.seeds.shape[1]
    names = "xyz"[:d]
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
        *[st.centroid[:, -1 - k] for k in range(d)],
        *[ms.seeds[:, -1 - k] for k in range(d)],
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

    t0 = time.perf_counter()
    shape = tuple(args.shape)
    if len(shape) == 1:
        shape = shape * 3
    if len(shape) not in (2, 3):
        raise ValueError(f"--shape takes 1, 2 or 3 numbers, got {len(shape)}")
    ndim = len(shape)
    spacing = args.spacing
    if len(spacing) not in (1, ndim):
        raise ValueError(f"--spacing takes 1 or {ndim} numbers, got {len(spacing)}")
    spacing = spacing[0] if len(spacing) == 1 else tuple(spacing)
    outputs = list(args.output)
    for o in outputs:
        if os.path.splitext(o)[1].lower() not in OUTPUT_SUFFIXES:
            raise ValueError(
                f"output {o!r} has an unsupported suffix; expected one of "
                f"{', '.join(OUTPUT_SUFFIXES)}"
            )
    root = os.path.splitext(outputs[0])[0]
    table, sidecar = root + ".csv", sidecar_path(outputs[0])
    check_outputs([*outputs, table, sidecar], args.force)
    periodic = _periodic(args, ndim)
    if args.n is None and not os.path.isfile(args.volumes):
        raise ValueError("-n/--n-grains is required unless --volumes is a file")
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
            lloyd_tol=args.lloyd_tol,
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
        "lloyd_tol": args.lloyd_tol,
        "spacing": list(ms.spacing),
        "seed": args.seed,
        "axis_order": "array order (z, y, x); files use x fastest",
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
            "Newton iterations, %d repairs, %.2f s -> %s",
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
