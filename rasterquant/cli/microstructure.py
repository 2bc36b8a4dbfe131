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

Crystal orientations (``--orientations random|FILE``, or ``--texture`` / ``--texture2``
with ``--scatter``) add: a DAMASK ``material.yaml`` (``-o x.yaml``; without it, next to
the first ``.vti`` as ``<stem>.material.yaml``: material ``i`` is grain ``i``, the value
``i`` of the ``.vti`` cell array ``material``), a Neper ``.ori`` file (``-o x.ori``;
without it, next to each ``.tesr`` as ``<stem>.ori``, Bunge angles in degrees, line
``i`` = tesr cell ``i`` = grain ``i - 1``) and the same angles in the ``.tesr``
(``*ori``), Euler angles and quaternions in the grain table, and grain-boundary
misorientation statistics in the sidecar (``diagnostics.misorientation``). Asking for
a ``.yaml`` or ``.ori`` output without orientation options uses random orientations.
Two phases: ``--phase-fraction F`` (volume fraction of phase 1) and ``--size-ratio R``
(mean grain volume of phase 1 over phase 0); ``--texture2`` is the texture of phase 1.
Orientation conventions: see :mod:`rasterquant.microstructure.orientations`.

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

OUTPUT_SUFFIXES = (".vti", ".tesr", ".npy", ".png", ".yaml", ".ori")
#: the outputs that need crystal orientations (random ones unless asked otherwise)
_ORIENTATION_SUFFIXES = (".yaml", ".ori")
#: Neper *crysym of --symmetry
_CRYSYM = {"cubic": "cubic", "none": "triclinic"}
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


def scatter_float(text):
    """Parse a scatter angle in degrees in [0, 60] (argparse type)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an angle in degrees, got {text!r}"
        ) from None
    if not (np.isfinite(v) and 0 <= v <= 60):
        raise argparse.ArgumentTypeError(
            f"expected an angle in degrees in [0, 60], got {text}"
        )
    return v


def fraction_float(text):
    """Parse a phase fraction in (0, 1) (argparse type)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (np.isfinite(v) and 0 < v < 1):
        raise argparse.ArgumentTypeError(
            f"expected a volume fraction in (0, 1), got {text}"
        )
    return v


def texture_spec(text):
    """Parse a texture mix like ``cube:0.5,goss:0.5`` (argparse type)."""
    from ..microstructure.orientations import parse_texture

    try:
        parse_texture(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_parser(sub):
    """Register the sub-command."""
    p = sub.add_parser(
        "microstructure",
        help="polycrystalline microstructure: Laguerre grains of prescribed volumes",
        description="Generate a voxel microstructure whose grain volumes follow a law "
        "(Bourne, Kok, Roper, Spanjer 2020): optimal-transport Laguerre cells with a "
        "few Lloyd steps. Writes .vti (ParaView, DAMASK), .tesr (Neper), .npy, .png, "
        "a CSV grain table and a JSON sidecar. With crystal orientations "
        "(--orientations, --texture, --texture2, or a .yaml/.ori output, which "
        "alone means random orientations) it also writes a DAMASK material.yaml "
        "(-o x.yaml, else <stem>.material.yaml next to the first .vti; material i "
        "is grain i, the .vti 'material' value i), a Neper .ori (-o x.ori, else "
        "<stem>.ori next to each .tesr, Bunge angles in degrees; the .tesr gets "
        "them too), orientations in the grain table and grain-boundary "
        "misorientation statistics in the sidecar.",
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
        help="output file(s): .vti .tesr .npy .png .yaml (DAMASK material.yaml) "
        ".ori (Neper orientations) (repeatable); the grain table and the JSON "
        "sidecar are named after the first (g.vti -> g.vti.grains.csv, "
        "g.vti.json)",
    )
    _add_orientation_options(p)
    p.add_argument(
        "--aspect",
        type=positive_float,
        nargs="+",
        default=None,
        metavar="A",
        help="elongated grains (anisotropic power cells): relative grain lengths "
        "along the axes in array order, one per axis of --shape, e.g. --aspect 3 1 "
        "0.5 for rolled grains 3x longer along the layers than across the rows "
        "(default: equiaxed grains)",
    )
    p.add_argument(
        "--rotation",
        type=float,
        nargs="+",
        default=None,
        metavar="DEG",
        help="with --aspect: turn the grain shape by Bunge Euler angles phi1 Phi "
        "phi2 in degrees (3D) or by one angle (2D) (default: aligned with the axes)",
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


def _add_orientation_options(p):
    """Add the options of crystal orientations and phases."""
    ori = p.add_argument_group(
        "crystal orientations and phases",
        "orientations add a DAMASK material.yaml, a Neper .ori and misorientation "
        "statistics (see above)",
    )
    ori.add_argument(
        "--orientations",
        default=None,
        metavar="random|FILE",
        help="crystal orientations: 'random' (uniform on SO(3), seeded by --seed) "
        "or a text file with one grain per line: 4 columns 'w x y z' (unit "
        "quaternion, scalar first) or 3 columns 'phi1 Phi phi2' (Bunge Euler "
        "angles in degrees); '#' starts a comment (not with --texture)",
    )
    ori.add_argument(
        "--texture",
        type=texture_spec,
        default=None,
        metavar="SPEC",
        help="textured orientations of phase 0 (and of phase 1 unless --texture2): "
        "components cube, goss, brass, copper, s, random with volume fractions "
        "(of the phase), e.g. 'cube:0.5,goss:0.5' or 'copper:0.4,s:0.4' (the rest "
        "random)",
    )
    ori.add_argument(
        "--texture2",
        type=texture_spec,
        default=None,
        metavar="SPEC",
        help="texture of phase 1 (same syntax as --texture; needs two phases: "
        "--phase-fraction, a dual-phase --volumes law or a volumes file with "
        "phases); phase 0 is random unless --texture is given",
    )
    ori.add_argument(
        "--scatter",
        type=scatter_float,
        default=None,
        metavar="DEG",
        help="mean misorientation in degrees of textured grains from their ideal "
        "component, 0 to 60 (default 5; Gaussian rotation vectors, see "
        "rasterquant.microstructure.texture_orientations)",
    )
    ori.add_argument(
        "--symmetry",
        choices=["cubic", "none"],
        default="cubic",
        help="crystal symmetry of the misorientation statistics and of the .tesr "
        "*crysym: cubic (24 rotations, disorientation <= 62.8 deg; default) or "
        "none",
    )
    ori.add_argument(
        "--phase-fraction",
        type=fraction_float,
        default=None,
        metavar="F",
        help="two phases: volume fraction F in (0, 1) of phase 1 (met exactly by "
        "the target volumes); --volumes may then only be constant or "
        "lognormal:SIGMA (the spread within each phase)",
    )
    ori.add_argument(
        "--size-ratio",
        type=positive_float,
        default=None,
        metavar="R",
        help="mean grain volume of phase 1 over that of phase 0 (default 1; needs "
        "--phase-fraction; met as closely as whole grains allow)",
    )
    ori.add_argument(
        "--phase-names",
        nargs="+",
        default=None,
        metavar="NAME",
        help="DAMASK phase names in material.yaml, one per phase (default phase_0, "
        "phase_1)",
    )


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
    _check_orientation_args(args)
    _check_aspect_args(args, ndim)
    if args.n is None and not os.path.isfile(args.volumes):
        from ..microstructure.generate import VOLUME_LAWS

        law = args.volumes.partition(":")[0].strip().lower()
        if law in {name.partition(":")[0] for name in VOLUME_LAWS}:
            raise UsageError(
                f"the following arguments are required: -n/--n-grains (with the "
                f"volume law {args.volumes!r})"
            )


def _check_aspect_args(args, ndim):
    """--aspect and --rotation against --shape (UsageError: exit 2)."""
    aspect, rotation = getattr(args, "aspect", None), getattr(args, "rotation", None)
    if aspect is not None and len(aspect) != ndim:
        raise UsageError(
            f"argument --aspect: expected {ndim} numbers (one per axis of --shape), "
            f"got {len(aspect)}"
        )
    if rotation is not None:
        if aspect is None:
            raise UsageError("argument --rotation: only with --aspect")
        want = 3 if ndim == 3 else 1
        if len(rotation) != want:
            raise UsageError(
                f"argument --rotation: expected {want} angle(s) in degrees in {ndim}D, "
                f"got {len(rotation)}"
            )
    if aspect is not None and getattr(args, "phase_fraction", None) is not None:
        raise UsageError("argument --aspect: not with --phase-fraction (one phase)")


def _check_orientation_args(args):
    """Orientation and phase options against each other (UsageError: exit 2)."""
    textured = args.texture is not None or args.texture2 is not None
    if args.orientations is not None and textured:
        raise UsageError(
            "argument --orientations: not allowed with --texture/--texture2 (give "
            "either orientations or a texture)"
        )
    if args.scatter is not None and not textured:
        raise UsageError(
            "argument --scatter: applies to --texture/--texture2, which are not given"
        )
    if args.size_ratio is not None and args.phase_fraction is None:
        raise UsageError(
            "argument --size-ratio: needs --phase-fraction (the volume fraction of "
            "phase 1)"
        )
    if args.phase_fraction is not None:
        law = args.volumes.partition(":")[0].strip().lower()
        if law not in ("constant", "lognormal"):
            raise UsageError(
                f"argument --phase-fraction: sets the grain volumes itself; --volumes "
                f"may only be constant or lognormal:SIGMA (spread within each phase), "
                f"got {args.volumes!r}"
            )
        if args.n is None:
            raise UsageError(
                "the following arguments are required: -n/--n-grains (with "
                "--phase-fraction)"
            )
    if args.texture2 is not None and args.phase_fraction is None:
        law = args.volumes.partition(":")[0].strip().lower()
        if law not in ("dual-phase", "dualphase") and not os.path.isfile(args.volumes):
            raise UsageError(
                "argument --texture2: the texture of phase 1 needs two phases "
                "(--phase-fraction, a dual-phase:F,R --volumes law or a volumes file "
                "with a phase column)"
            )


def _periodic(args, ndim):
    if args.periodic_axes is None:
        return bool(args.periodic)
    flags = [False] * ndim
    for a in args.periodic_axes:
        flags[a] = True
    return tuple(flags)


def _grain_table(ms, ori=None, mis=None):
    """CSV text: one row per grain (coordinates in array axis order).

    With orientations: Bunge angles ``phi1, Phi, phi2`` (degrees), the quaternion
    ``q_w, q_x, q_y, q_z`` and the mean misorientation to same-phase neighbours
    (degrees, empty for none).
    """
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
    if ori is not None:
        cols += ["phi1", "Phi", "phi2", "q_w", "q_x", "q_y", "q_z"]
        data += [ori.euler_deg[:, k] for k in range(3)]
        data += [ori.quaternions[:, k] for k in range(4)]
    if mis is not None:
        cols.append("mean_misorientation")
        data.append(mis.per_grain_mean(ms.n_grains))

    def fmt(v):
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        return repr(float(v)) if np.isfinite(v) else ""

    lines = [",".join(cols)]
    for row in zip(*data, strict=True):
        lines.append(",".join(fmt(v) for v in row))
    return "\n".join(lines) + "\n"


def _wants_orientations(args, outputs):
    """Tell whether the run makes orientations (options, or a .yaml/.ori output)."""
    return (
        args.orientations is not None
        or args.texture is not None
        or args.texture2 is not None
        or any(os.path.splitext(o)[1].lower() in _ORIENTATION_SUFFIXES for o in outputs)
    )


def _orientation_outputs(outputs):
    """Automatic orientation files: material.yaml by the first .vti, .ori by .tesr.

    ``g.vti`` -> ``g.material.yaml`` unless a ``.yaml`` output is given; ``g.tesr``
    -> ``g.ori`` for each ``.tesr`` unless a ``.ori`` output is given.
    """
    suffixes = [os.path.splitext(o)[1].lower() for o in outputs]
    extra = []
    if ".yaml" not in suffixes and ".vti" in suffixes:
        vti = outputs[suffixes.index(".vti")]
        extra.append(os.path.splitext(vti)[0] + ".material.yaml")
    if ".ori" not in suffixes:
        extra += [
            os.path.splitext(o)[0] + ".ori"
            for o, s in zip(outputs, suffixes, strict=True)
            if s == ".tesr"
        ]
    return extra


def _scatter(args):
    return 5.0 if args.scatter is None else args.scatter


def _volumes_and_phases(args):
    """``(volumes, phases, PhaseVolumes or None)`` for generate_microstructure."""
    if args.phase_fraction is None:
        return args.volumes, None, None
    from ..microstructure.orientations import dual_phase_volumes

    law, _, arg = args.volumes.partition(":")
    sigma = 0.0
    if law.strip().lower() == "lognormal":
        try:
            sigma = float(arg)
        except ValueError:
            sigma = -1.0
        if not (np.isfinite(sigma) and sigma >= 0):
            raise ValueError(
                f"--volumes {args.volumes!r}: expected lognormal:SIGMA with SIGMA >= 0 "
                "(the spread within each phase)"
            )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pv = dual_phase_volumes(
            args.n,
            args.phase_fraction,
            1.0 if args.size_ratio is None else args.size_ratio,
            sigma=sigma,
            seed=args.seed,
        )
    for w in caught:
        logger.warning("warning: --size-ratio: %s", w.message)
    return pv.volumes, pv.phases, pv


def _orientations(args, ms, ori_file):
    """Orientations of the grains of ``ms`` from the options."""
    from ..microstructure.orientations import (
        assign_orientations,
        random_orientations,
    )

    if ori_file is not None:
        if ori_file.n_grains != ms.n_grains:
            raise ValueError(
                f"--orientations {args.orientations!r} has {ori_file.n_grains} "
                f"orientations; expected {ms.n_grains} (one per grain)"
            )
        return ori_file.with_phases(ms.phases)
    if args.texture is None and args.texture2 is None:
        return random_orientations(ms.n_grains, seed=args.seed, phases=ms.phases)
    if args.texture2 is not None and not (ms.phases == 1).any():
        raise ValueError(
            "--texture2 is the texture of phase 1, but no grain has phase 1; expected "
            "two phases (--phase-fraction, a dual-phase law or a volumes file with "
            "phases)"
        )
    n_phases = int(ms.phases.max()) + 1
    first = args.texture or "random"
    second = args.texture2 or first
    textures = [first, second] + [first] * max(0, n_phases - 2)
    return assign_orientations(
        ms.phases,
        textures[:n_phases],
        scatter=_scatter(args),
        seed=args.seed,
        volumes=ms.target_volumes,
    )


def _phase_diagnostics(ms):
    """Achieved phase volume fractions and mean grain volumes from the voxels."""
    vol = ms.stats.volume
    total = float(vol.sum())
    out = {"n_per_phase": [], "volume_fraction": [], "mean_grain_volume": []}
    for p in range(int(ms.phases.max()) + 1):
        m = ms.phases == p
        out["n_per_phase"].append(int(m.sum()))
        out["volume_fraction"].append(float(vol[m].sum() / total))
        out["mean_grain_volume"].append(float(vol[m].mean()) if m.any() else None)
    means = out["mean_grain_volume"]
    if len(means) >= 2 and means[0] and means[1]:
        out["size_ratio"] = means[1] / means[0]
    return out


def _write_outputs(ms, outputs, ori=None, symmetry="cubic", phase_names=None):
    from ..io.atomic import atomic_save_npy
    from ..io.damask import write_material_yaml
    from ..io.neper import write_ori
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
            # (elongated grains: the weights belong to their metrics, which Neper's
            # power cells do not have; the grain map alone)
            aniso = getattr(ms, "metrics", None) is not None
            w = np.sqrt(ms.weights - ms.weights.min())
            write_tesr(
                o,
                gm,
                spacing=ms.spacing,
                seeds=None if aniso else ms.seeds,
                weights=None if aniso else w,
                orientations=ori,
                crysym=None if ori is None else _CRYSYM[symmetry],
            )
        elif suffix == ".npy":
            atomic_save_npy(o, gm)
        elif suffix == ".yaml":
            write_material_yaml(o, ori, phase_names=phase_names)
        elif suffix == ".ori":
            write_ori(o, ori)
        else:
            grain_slices_png(o, gm, seed=0)


def _diagnostics(ms, shape, caught, mis, tol):
    """Return the sidecar's diagnostics: achieved errors beside the requested tol."""
    diagnostics = {
        "n_grains": ms.n_grains,
        "max_volume_error": ms.max_volume_error,
        "mean_volume_error": ms.mean_volume_error,
        "volume_measure": ms.volume_measure,
        "max_voxel_volume_error": ms.max_voxel_volume_error,
        "requested_tol": tol,
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
    if int(ms.phases.max()) >= 1:
        diagnostics["phases"] = _phase_diagnostics(ms)
    if mis is not None:
        diagnostics["misorientation"] = mis.summary()
    return diagnostics


def _params(args, ms, shape, lloyd_tol, table, pv, ori, written):
    """Return the sidecar's parameters, with the conventions of every output."""
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
    if args.aspect is not None:
        params["aspect"] = list(args.aspect)
        params["rotation"] = args.rotation
        params["aspect_convention"] = (
            "relative grain lengths along the axes in array order; cells "
            "argmin_i (x - y_i)^T A (x - y_i) - w_i with A = diag(1/aspect^2) "
            "(det 1), turned by the Bunge rotation"
        )
        params["fast_path"] = bool(getattr(ms, "fast_path", False))
    if pv is not None:
        params["volumes"] = (
            f"dual phase: phase-1 volume fraction {args.phase_fraction:g}, mean "
            f"size ratio {args.size_ratio or 1.0:g} (by grain counts "
            f"{pv.n_per_phase[0]} + {pv.n_per_phase[1]}: {pv.size_ratio:.6g}), "
            f"within phases {args.volumes}"
        )
        params["phase_fraction"] = args.phase_fraction
        params["size_ratio"] = args.size_ratio or 1.0
    if ori is not None:
        params["orientations"] = ori.description
        params["texture"] = args.texture
        params["texture2"] = args.texture2
        params["scatter_deg"] = _scatter(args)
        params["symmetry"] = args.symmetry
        params["orientation_convention"] = (
            "Bunge Euler angles (phi1, Phi, phi2) in degrees, ZXZ, passive "
            "(sample -> crystal); quaternions scalar-first (w, x, y, z), w >= 0, "
            "= scipy Rotation.from_euler('ZXZ', angles, degrees=True) = DAMASK's "
            "quaternion; material.yaml entry i = .vti material i = grain i; .ori "
            "line i = .tesr cell i = grain i - 1"
        )
        params["orientation_outputs"] = [
            o
            for o in written
            if os.path.splitext(o)[1].lower() in (".yaml", ".ori", ".tesr")
        ]
    return params


def _report(args, ms, shape, mis, t0, written):
    """Log the achieved volume error beside the requested one, and the outputs."""
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
            ", ".join(written),
        )
        if mis is not None:
            logger.info(
                "misorientation (%s symmetry): %d boundaries, mean %.1f deg, median "
                "%.1f deg, %.1f%% below %g deg",
                mis.symmetry,
                mis.n_pairs,
                mis.mean,
                mis.median,
                100 * mis.low_angle_fraction,
                mis.low_angle,
            )


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
    wants_ori = _wants_orientations(args, outputs)
    extra = _orientation_outputs(outputs) if wants_ori else []
    table, sidecar = outputs[0] + ".grains.csv", sidecar_path(outputs[0])
    check_outputs([*outputs, *extra, table, sidecar], args.force)
    periodic = _periodic(args, ndim)
    ori_file = None
    if args.orientations is not None and args.orientations != "random":
        from ..microstructure.orientations import read_orientations

        ori_file = read_orientations(args.orientations, args.n)  # fail early
    volumes, phases, pv = _volumes_and_phases(args)
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
        if args.aspect is not None:
            from ..microstructure.anisotropic import generate_anisotropic_microstructure

            rotation = args.rotation
            if rotation is not None:
                rotation = rotation[0] if ndim == 2 else tuple(rotation)
            ms = generate_anisotropic_microstructure(
                shape,
                args.n,
                aspect=tuple(args.aspect),
                rotation=rotation,
                volumes=volumes,
                spacing=spacing,
                periodic=periodic,
                lloyd_iterations=args.lloyd,
                tol=args.tol,
                seed=args.seed,
                progress=show_progress(args),
            )
        else:
            ms = generate_microstructure(
                shape,
                args.n,
                volumes=volumes,
                phases=phases,
                spacing=spacing,
                periodic=periodic,
                lloyd_iterations=args.lloyd,
                tol=args.tol,
                lloyd_tol=lloyd_tol,
                seed=args.seed,
                progress=show_progress(args),
                quadrature=args.quadrature,
                # --quadrature given: that quadrature alone, without the voxel polish
                polish=args.quadrature is None,
            )
    for w in caught:
        logger.warning("warning: %s", w.message)
    ori = _orientations(args, ms, ori_file) if wants_ori else None
    mis = None
    if ori is not None:
        from ..microstructure.stats import misorientation_statistics

        mis = misorientation_statistics(ms.stats, ori, symmetry=args.symmetry)
    _write_outputs(ms, [*outputs, *extra], ori, args.symmetry, args.phase_names)
    atomic_write_text(table, _grain_table(ms, ori, mis))
    diagnostics = _diagnostics(ms, shape, caught, mis, args.tol)
    params = _params(args, ms, shape, lloyd_tol, table, pv, ori, [*outputs, *extra])
    atomic_write_json(
        sidecar,
        json_sidecar(
            "microstructure",
            args,
            params,
            diagnostics,
            [*outputs, *extra, table],
            t0,
        ),
    )
    _report(args, ms, shape, mis, t0, [*outputs, *extra, table, sidecar])
    if args.strict and not ms.converged:
        logger.error(
            "error: --strict and tol %g not met (achieved %.3g)",
            args.tol,
            ms.max_volume_error,
        )
        return 1
    return 0
