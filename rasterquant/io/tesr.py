"""Neper raster tessellation files (``.tesr``, format 2.1, ASCII data).

The layout follows Neper's file-format documentation ("Raster Tessellation File")
and the writer ``neut_tesr_fprintf``::

    ***tesr
     **format
       2.1
     **general
       <dimension>
       <size_x> <size_y> [<size_z>]
       <voxsize_x> <voxsize_y> [<voxsize_z>]
      *origin                                  (only when not zero)
       <origin_x> <origin_y> [<origin_z>]
     **cell                                    (only when there are cells)
       <number_of_cells>
      *seed                                    (only when seeds are given)
       <id> <seed_x> <seed_y> [<seed_z>] <seed_weight>
       ...
     **data
       ascii
       <vox1_cell> <vox2_cell> ...             (x fastest, then y, then z)
    ***end

Cell ids in the data start from 1 and 0 marks void voxels. rasterquant's grain
maps are 0-based with -1 for void, in array axis order ``(z, y, x)``: the C-order
ravel of such a map is exactly Neper's x-fastest voxel order. Coordinates
(spacing, origin, seeds) are given in array axis order and written as
``x y [z]``.
"""

from __future__ import annotations

import re
import warnings

import numpy as np

from .atomic import atomic_write
from .images import _check_file

__all__ = ["read_tesr", "write_tesr"]

_PER_LINE = 24  # voxel ids per line in the data section
_TO_XYZ = slice(None, None, -1)  # array axis order -> x y z


def _per_axis(value, ndim, name, *, positive=False):
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    if arr.shape != (ndim,) or not np.isfinite(arr).all():
        raise ValueError(
            f"{name} must be a finite scalar or {ndim} numbers in array axis order, "
            f"got {value!r}"
        )
    if positive and (arr <= 0).any():
        raise ValueError(f"{name} must be > 0 on every axis, got {value!r}")
    return arr


def _num(v) -> str:
    return repr(float(v))


def write_tesr(
    path,
    grain_map,
    spacing=1.0,
    origin=0.0,
    seeds=None,
    weights=None,
    *,
    orientations=None,
    crysym=None,
) -> None:
    """Write a grain map as a Neper raster tessellation (``.tesr``) file.

    Parameters
    ----------
    path : str or os.PathLike
        The output file, normally ending in ``.tesr``. Written atomically.
    grain_map : (D, H, W) or (H, W) array_like of int
        0-based grain id of every voxel, ``-1`` for void. Written as
        ``id + 1`` (void as 0).
    spacing : float or sequence of float
        Voxel size per array axis (``(hz, hy, hx)`` or ``(hy, hx)``), > 0.
    origin : float or sequence of float
        Physical coordinate of the corner of voxel ``(0, ..., 0)``, array axis
        order.
    seeds : (N, d) array_like of float, optional
        Seed of each grain in array axis order and physical units; row ``i``
        belongs to grain ``i``. ``N`` must be at least ``grain_map.max() + 1``
        (extra seeds are grains without voxels).
    weights : (N,) array_like of float, optional
        Seed weights; zeros when ``seeds`` is given without them. Requires
        ``seeds``.
    orientations : (N, 3) array_like of float or Orientations, optional
        Crystal orientation of each grain as Bunge Euler angles ``(phi1, Phi,
        phi2)`` in degrees (an ``Orientations`` gives its ``euler_deg``), written
        as the ``*ori`` field of ``**cell`` with descriptor ``e`` (with ``*id``
        ``1 .. N``, which older Neper versions require before ``*ori``).
    crysym : {"cubic", "hexagonal", "triclinic"}, optional
        Crystal symmetry, written as ``*crysym`` when given.

    Raises
    ------
    ValueError
        If ``grain_map`` is not a 2D/3D integer array with ids >= -1, spacing
        or origin are malformed, ``seeds``/``weights`` have the wrong shape or
        hold NaN/inf, ``weights`` come without ``seeds``, ``orientations`` are not
        ``(N, 3)`` finite angles, ``crysym`` is unknown, or the output directory
        is not writable.

    See Also
    --------
    read_tesr : the inverse.
    write_vti : the same map for ParaView and DAMASK.

    Notes
    -----
    Neper's Laguerre tessellations use a seed weight as a radius ``w``, with
    the power distance ``|x - s|^2 - w^2``; rasterquant's weights ``psi`` enter
    as ``|x - y|^2 - psi``. The numbers are written unchanged: to hand
    rasterquant's power cells to Neper, pass ``sqrt(psi - psi.min())``.
    The data section is ASCII with 24 ids per line. The orientation
    descriptor ``e`` (Bunge Euler angles in degrees, Neper's default "active"
    convention, which for Euler angles is the usual Bunge triplet) is read by
    every Neper version; Neper 4 writes the same field as ``euler-bunge:active``.
    """
    gm = _check_grain_map(grain_map)
    ndim = gm.ndim
    spacing = _per_axis(spacing, ndim, "spacing", positive=True)
    origin = _per_axis(origin, ndim, "origin")
    n_cells = int(gm.max()) + 1
    seeds, weights, n_cells = _check_seeds(seeds, weights, ndim, n_cells)
    euler, n_cells = _check_orientations(orientations, seeds, n_cells)
    if crysym is not None and crysym not in ("cubic", "hexagonal", "triclinic"):
        raise ValueError(
            f"crysym must be 'cubic', 'hexagonal' or 'triclinic', got {crysym!r}"
        )
    lines = _general_lines(gm.shape, spacing, origin)
    if n_cells > 0:
        lines += _cell_lines(n_cells, seeds, weights, euler, crysym)
    lines += [" **data", "   ascii"]
    ids = (gm.astype(np.int64) + 1).ravel()
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
        n_full = ids.size // _PER_LINE * _PER_LINE
        if n_full:
            np.savetxt(fh, ids[:n_full].reshape(-1, _PER_LINE), fmt="%d")
        if ids.size > n_full:
            fh.write(" ".join(str(v) for v in ids[n_full:].tolist()) + "\n")
        fh.write("***end\n")


def _check_grain_map(grain_map):
    """Return ``grain_map`` as an array, checked: 2D/3D integer ids >= -1."""
    gm = np.asarray(grain_map)
    if gm.dtype == bool or not np.issubdtype(gm.dtype, np.integer):
        raise ValueError(
            f"grain_map must be an integer array of grain ids, got dtype {gm.dtype}"
        )
    if gm.ndim not in (2, 3) or gm.size == 0:
        raise ValueError(
            f"grain_map must have shape (H, W) or (D, H, W) with at least one "
            f"voxel, got {gm.shape}"
        )
    if gm.min() < -1:
        raise ValueError(
            f"grain_map ids must be >= 0 (or -1 for void), got minimum {gm.min()}"
        )
    return gm


def _check_seeds(seeds, weights, ndim, n_cells):
    """Return the checked ``(seeds, weights, n_cells)`` (seeds may add cells)."""
    if weights is not None and seeds is None:
        raise ValueError("weights were given without seeds; pass seeds as well")
    if seeds is not None:
        seeds = np.asarray(seeds, dtype=np.float64)
        if seeds.ndim != 2 or seeds.shape[1] != ndim or seeds.shape[0] < n_cells:
            raise ValueError(
                f"seeds must have shape (N, {ndim}) with N >= {n_cells} (the number "
                f"of grains in grain_map), got {seeds.shape}"
            )
        if not np.isfinite(seeds).all():
            raise ValueError("seeds contains NaN or inf; expected finite coordinates")
        n_cells = seeds.shape[0]
        if weights is None:
            weights = np.zeros(n_cells)
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (n_cells,):
            raise ValueError(
                f"weights must have shape ({n_cells},) like seeds, got {weights.shape}"
            )
        if not np.isfinite(weights).all():
            raise ValueError("weights contains NaN or inf; expected finite values")
    return seeds, weights, n_cells


def _check_orientations(orientations, seeds, n_cells):
    """Return the Euler angles (or None) and the number of cells they imply."""
    euler = None
    if orientations is not None:
        euler = np.asarray(getattr(orientations, "euler_deg", orientations), float)
        n_expected = n_cells if seeds is None else seeds.shape[0]
        if seeds is None and euler.ndim == 2 and len(euler) > n_cells:
            n_expected = len(euler)  # grains without voxels at the end
        if euler.shape != (n_expected, 3) or not np.isfinite(euler).all():
            raise ValueError(
                f"orientations must be finite Bunge angles of shape ({n_expected}, 3)"
                f" (one row per grain), got shape {euler.shape}"
            )
        n_cells = n_expected
    return euler, n_cells


def _general_lines(shape, spacing, origin):
    """Header lines up to ``**general`` and the optional ``*origin``."""
    lines = [
        "***tesr",
        " **format",
        "   2.1",
        " **general",
        f"   {len(shape)}",
        "   " + " ".join(str(s) for s in shape[_TO_XYZ]),
        "   " + " ".join(_num(h) for h in spacing[_TO_XYZ]),
    ]
    if (origin != 0).any():
        lines += ["  *origin", "   " + " ".join(_num(o) for o in origin[_TO_XYZ])]
    return lines


def _cell_lines(n_cells, seeds, weights, euler, crysym):
    """Lines of the ``**cell`` section: count, ids, seeds, orientations, symmetry."""
    lines = [" **cell", f"   {n_cells}"]
    if euler is not None:
        ids = np.arange(1, n_cells + 1)
        lines.append("  *id")
        lines += [
            "   " + " ".join(map(str, ids[k : k + _PER_LINE].tolist()))
            for k in range(0, n_cells, _PER_LINE)
        ]
    if seeds is not None:
        lines.append("  *seed")
        for i in range(n_cells):
            coords = " ".join(_num(c) for c in seeds[i, _TO_XYZ])
            lines.append(f" {i + 1:3d} {coords} {_num(weights[i])}")
    if euler is not None:
        lines.append("  *ori")
        lines.append("   e")
        lines += ["   " + " ".join(_num(a) for a in row) for row in euler]
    if crysym is not None:
        lines += ["  *crysym", f"   {crysym}"]
    return lines


def _floats(tokens, pos, count, path, what):
    try:
        values = [float(t) for t in tokens[pos : pos + count]]
    except ValueError:
        raise ValueError(
            f"tesr file {path!r}: {what} must be {count} numbers, got "
            f"{tokens[pos : pos + count]}"
        ) from None
    if len(values) != count:
        raise ValueError(f"tesr file {path!r} ends inside {what}")
    return values, pos + count


def read_tesr(path):
    """Read a Neper raster tessellation (``.tesr``) file with ASCII data.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.tesr`` file, format 2.0 or 2.1, with ``ascii`` voxel data in the
        file itself.

    Returns
    -------
    grain_map : (D, H, W) or (H, W) ndarray of int64
        0-based grain ids (data id minus one), ``-1`` for void voxels.
    spacing : tuple of float
        Voxel size in array axis order.
    origin : tuple of float
        Corner of voxel ``(0, ..., 0)`` in array axis order (zeros when the
        file has no ``*origin``).
    seeds : (N, d) ndarray of float64 or None
        Seed coordinates in array axis order, when the file has ``*seed``.
    weights : (N,) ndarray of float64 or None
        Seed weights, when the file has ``*seed``.

    Raises
    ------
    ValueError
        If the file is missing, is not a ``.tesr`` file, uses binary data or
        an external ``*file``, or its data do not match its size.

    Notes
    -----
    An ``*id`` field (actual cell identifiers) is ignored: the grain map holds
    the contiguous data ids. Orientation fields are skipped.
    """
    path = _check_file(path, "tesr")
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    match = re.search(r"(^|\s)\*\*data(\s|$)", text)
    if not text.lstrip().startswith("***tesr") or match is None:
        raise ValueError(
            f"tesr file {path!r} does not start with '***tesr' or has no '**data' "
            "section; expected a Neper raster tessellation file"
        )
    head = text[: match.start()].split()
    tokens = head
    version, fmt, dim = None, "ascii", None
    size = voxsize = None
    origin = None
    seeds = weights = None
    i = 1
    while i < len(tokens):
        tok = tokens[i]
        if tok == "**format":
            version = tokens[i + 1] if i + 1 < len(tokens) else None
            i += 2
            if version == "2.0" and i < len(tokens) and not tokens[i].startswith("*"):
                fmt = tokens[i]  # format 2.0: "2.0 ascii"
                i += 1
        elif tok == "**general":
            try:
                dim = int(tokens[i + 1])
            except (IndexError, ValueError):
                raise ValueError(
                    f"tesr file {path!r}: **general must start with the dimension "
                    "2 or 3"
                ) from None
            if dim not in (2, 3):
                raise ValueError(
                    f"tesr file {path!r} has dimension {dim}; expected 2 or 3"
                )
            size, i = _floats(tokens, i + 2, dim, path, "the raster size")
            voxsize, i = _floats(tokens, i, dim, path, "the voxel size")
        elif tok == "*origin":
            origin, i = _floats(tokens, i + 1, dim or 3, path, "*origin")
        elif tok == "*seed":
            seeds, weights, i = _seed_rows(tokens, i + 1, dim, path)
        else:
            i += 1
    if version not in ("2.0", "2.1") or dim is None:
        raise ValueError(
            f"tesr file {path!r} has format {version!r} and no usable **general "
            "section; expected format 2.0 or 2.1"
        )
    rest = text[match.end() :]
    if version == "2.1":
        parts = [*rest.split(None, 1), "", ""]
        fmt, rest = parts[0], parts[1]
    if fmt != "ascii" or rest.lstrip().startswith("*file"):
        raise ValueError(
            f"tesr file {path!r} stores its data as {fmt!r}"
            + (" in an external *file" if rest.lstrip().startswith("*file") else "")
            + "; only inline ascii data are supported"
        )
    end = re.search(r"(^|\s)\*", rest)
    body = rest[: end.start()] if end else rest
    grain_map = _data_grain_map(body, size, path)
    spacing = tuple(float(v) for v in voxsize[::-1])
    origin = tuple(float(v) for v in (origin or [0.0] * dim)[::-1])
    return grain_map, spacing, origin, seeds, weights


def _seed_rows(tokens, i, dim, path):
    """Parse the ``*seed`` rows from ``tokens[i]``: ``(seeds, weights, next i)``."""
    rows = []
    while i < len(tokens) and not tokens[i].startswith("*"):
        row, i = _floats(tokens, i, (dim or 3) + 2, path, "a *seed line")
        rows.append(row)
    table = np.array(rows, dtype=np.float64).reshape(-1, (dim or 3) + 2)
    order = np.argsort(table[:, 0], kind="stable")
    table = table[order]
    seeds = np.ascontiguousarray(table[:, dim:0:-1])
    weights = table[:, -1].copy()
    return seeds, weights, i


def _data_grain_map(body, size, path):
    """Parse the ``**data`` ids of a ``size`` (x y [z]) raster into a grain map."""
    shape_xyz = [int(s) for s in size]
    n_vox = int(np.prod(shape_xyz))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            ids = np.fromstring(body, dtype=np.int64, sep=" ")
        except (DeprecationWarning, ValueError):
            ids = None
    if ids is None or ids.size != n_vox:
        got = "unparsable values" if ids is None else f"{ids.size} values"
        raise ValueError(
            f"tesr file {path!r} has {got} in **data; expected {n_vox} integer "
            f"cell ids for a {' x '.join(map(str, shape_xyz))} raster"
        )
    grain_map = ids.reshape(shape_xyz[::-1]) - 1
    if grain_map.min() < -1:
        raise ValueError(
            f"tesr file {path!r} has negative cell ids in **data; expected ids >= 0"
        )
    return grain_map
