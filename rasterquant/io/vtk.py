"""VTK XML ImageData (``.vti``) files with cell data, for ParaView and DAMASK.

A raster of shape ``(D, H, W)`` becomes an image of ``W x H x D`` cells: VTK's x
is the last array axis (column), y the row axis and z the first axis, so the
C-order ravel of the array is VTK's x-fastest order. 2D rasters ``(H, W)`` are
written as a single z-slice. Spacing and origin are given in array axis order
and written in VTK's ``x y z`` order. Arrays are stored inline, base64-encoded
(``format="binary"``, ``header_type="UInt64"``, little-endian), optionally
zlib-compressed: the layout ``vtkXMLImageDataWriter`` writes and every VTK-based
reader (ParaView, ``damask.Grid.load``, PyVista) reads. DAMASK wants an integer
cell array named ``material`` (0-based grain ids).
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
import zlib

import numpy as np

from .atomic import atomic_write
from .images import _check_file

__all__ = ["read_vti", "write_vti"]

_BLOCK = 1 << 15  # uncompressed bytes per zlib block, as VTK writes them
_VTK_TYPES = {
    "Int8": "<i1",
    "UInt8": "<u1",
    "Int16": "<i2",
    "UInt16": "<u2",
    "Int32": "<i4",
    "UInt32": "<u4",
    "Int64": "<i8",
    "UInt64": "<u8",
    "Float32": "<f4",
    "Float64": "<f8",
}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _per_axis(value, ndim, name):
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(ndim, float(arr))
    if arr.shape != (ndim,) or not np.isfinite(arr).all():
        raise ValueError(
            f"{name} must be a finite scalar or {ndim} numbers in array axis order, "
            f"got {value!r}"
        )
    return arr


def _vtk_array(name, values, shape):
    """Validate one cell array: (little-endian array, VTK type, components)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"cell_data name {name!r} is not valid; expected letters, digits, "
            "'_', '.', '-', starting with a letter or '_'"
        )
    arr = np.asarray(values)
    max_ndim = 4 if len(shape) == 3 else 2
    if arr.shape[: len(shape)] != shape or arr.ndim > max_ndim:
        expected = f"{shape} or {(*shape, 'k')}" if max_ndim == 4 else f"{shape}"
        raise ValueError(
            f"cell_data[{name!r}] has shape {arr.shape}; expected {expected} like "
            "the other arrays (multi-component arrays need a 3D raster: use "
            "(1, H, W, k) for 2D)"
        )
    ncomp = 1 if arr.ndim == len(shape) else arr.shape[-1]
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        i32 = np.iinfo(np.int32)
        vtype = "Int32" if i32.min <= lo and hi <= i32.max else "Int64"
    elif arr.dtype == np.float32:
        vtype = "Float32"
    elif np.issubdtype(arr.dtype, np.floating):
        vtype = "Float64"
    else:
        raise ValueError(
            f"cell_data[{name!r}] has dtype {arr.dtype}; expected integers, bools "
            "or floats"
        )
    if vtype.startswith("Float") and not np.isfinite(arr).all():
        raise ValueError(
            f"cell_data[{name!r}] contains NaN or inf; expected finite values"
        )
    return np.ascontiguousarray(arr, dtype=_VTK_TYPES[vtype]), vtype, ncomp


def _encode(data: bytes, compress: bool) -> str:
    """Inline binary payload with a UInt64 header, as VTK writes it."""
    if not compress:
        header = np.array([len(data)], dtype="<u8").tobytes()
        return base64.b64encode(header + data).decode("ascii")
    blocks = [data[i : i + _BLOCK] for i in range(0, len(data), _BLOCK)] or [b""]
    packed = [zlib.compress(b) for b in blocks]
    last = len(blocks[-1]) if len(blocks[-1]) < _BLOCK else 0
    header = np.array(
        [len(blocks), _BLOCK, last, *[len(p) for p in packed]], dtype="<u8"
    ).tobytes()
    return base64.b64encode(header).decode("ascii") + base64.b64encode(
        b"".join(packed)
    ).decode("ascii")


def _fmt(values):
    return " ".join(repr(float(v)) for v in values)


def _num(value):
    """Format an int or float scalar as text."""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(float(value))


def write_vti(path, cell_data, spacing=1.0, origin=0.0, *, compress=True) -> None:
    """Write cell arrays on a regular raster as a VTK XML ImageData file.

    Parameters
    ----------
    path : str or os.PathLike
        The output file, normally ending in ``.vti``. Written atomically.
    cell_data : dict of str to (D, H, W) or (H, W) array_like
        One value per cell, or ``k`` components as a ``(D, H, W, k)`` array
        (use ``D = 1`` for a 2D raster); all arrays share one raster shape.
        Integers and bools are stored as Int32 (Int64 if they do not fit),
        float32 as Float32, other floats as Float64. For DAMASK, include
        ``"material"`` with 0-based grain ids.
    spacing : float or sequence of float
        Cell size per array axis, ``(hz, hy, hx)`` or ``(hy, hx)``. For 2D
        input the single z-slice gets thickness ``hx``.
    origin : float or sequence of float
        Physical coordinate of the corner of cell ``(0, 0, 0)``, array axis
        order. For 2D input the z origin is 0.
    compress : bool
        zlib-compress the arrays (as DAMASK and ParaView do by default).

    Raises
    ------
    ValueError
        If ``cell_data`` is empty, arrays differ in shape or are not 2D/3D,
        names are invalid, dtypes are not numeric, floats hold NaN/inf,
        ``spacing`` is not positive, or the output directory is not writable.

    See Also
    --------
    read_vti : the inverse (for files written here, or by VTK without
        appended data).

    Notes
    -----
    ``WholeExtent`` is ``0 W 0 H 0 D`` in point indices: the image has
    ``(W + 1) x (H + 1) x (D + 1)`` points and ``W x H x D`` cells.
    """
    if not isinstance(cell_data, dict) or not cell_data:
        raise ValueError(
            "cell_data must be a non-empty dict of name -> array, got "
            f"{type(cell_data).__name__} {cell_data!r:.60}"
        )
    first_name, first = next(iter(cell_data.items()))
    shape = np.shape(first)
    if len(shape) == 4:  # a multi-component first array (D, H, W, k)
        shape = shape[:3]
    if len(shape) not in (2, 3) or min(shape, default=0) < 1:
        raise ValueError(
            f"cell_data[{first_name!r}] has shape {np.shape(first)}; expected "
            "(D, H, W) or (H, W) with at least one cell per axis"
        )
    ndim = len(shape)
    spacing = _per_axis(spacing, ndim, "spacing")
    origin = _per_axis(origin, ndim, "origin")
    if (spacing <= 0).any():
        raise ValueError(f"spacing must be > 0 on every axis, got {tuple(spacing)}")
    arrays = {name: _vtk_array(name, v, shape) for name, v in cell_data.items()}
    if ndim == 2:
        shape = (1, *shape)
        spacing = np.array([spacing[1], *spacing])
        origin = np.array([0.0, *origin])
    d, h, w = shape
    extent = f"0 {w} 0 {h} 0 {d}"
    lines = [
        '<?xml version="1.0"?>',
        '<VTKFile type="ImageData" version="1.0" byte_order="LittleEndian" '
        'header_type="UInt64"'
        + (' compressor="vtkZLibDataCompressor"' if compress else "")
        + ">",
        f'  <ImageData WholeExtent="{extent}" Origin="{_fmt(origin[::-1])}" '
        f'Spacing="{_fmt(spacing[::-1])}" Direction="1 0 0 0 1 0 0 0 1">',
        f'    <Piece Extent="{extent}">',
        "      <PointData>",
        "      </PointData>",
        f'      <CellData Scalars="{next(iter(arrays))}">',
    ]
    for name, (arr, vtype, ncomp) in arrays.items():
        if ncomp > 1:  # VTK stores the range of the vector magnitude
            norms = np.sqrt((arr.astype(np.float64) ** 2).sum(axis=-1))
            lo, hi = norms.min(), norms.max()
        else:
            lo, hi = arr.min(), arr.max()
        lines.append(
            f'        <DataArray type="{vtype}" Name="{name}" '
            f'NumberOfComponents="{ncomp}" format="binary" '
            f'RangeMin="{_num(lo)}" RangeMax="{_num(hi)}">'
        )
        lines.append("          " + _encode(arr.tobytes(), compress))
        lines.append("        </DataArray>")
    lines += [
        "      </CellData>",
        "    </Piece>",
        "  </ImageData>",
        "</VTKFile>",
        "",
    ]
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(lines))


def _decode(text, dtype, header_dtype, compressed, path, name):
    """Decode an inline base64 DataArray payload into a flat array."""
    text = "".join(text.split())
    hsize = np.dtype(header_dtype).itemsize
    try:
        if not compressed:
            raw = base64.b64decode(text)
            nbytes = int(np.frombuffer(raw[:hsize], dtype=header_dtype)[0])
            head_chars = 4 * -(-hsize // 3)
            if text[:head_chars].endswith("="):  # header encoded on its own
                raw = base64.b64decode(text[head_chars:])
            else:
                raw = raw[hsize:]
            data = raw[:nbytes]
        else:
            first = base64.b64decode(text[: 4 * -(-hsize // 3)])
            nblocks = int(np.frombuffer(first[:hsize], header_dtype)[0])
            head_len = hsize * (3 + nblocks)
            head_chars = 4 * -(-head_len // 3)
            header = np.frombuffer(
                base64.b64decode(text[:head_chars])[:head_len], header_dtype
            ).astype(np.int64)
            sizes = header[3:]
            payload = base64.b64decode(text[head_chars:])
            chunks, pos = [], 0
            for size in sizes:
                chunks.append(zlib.decompress(payload[pos : pos + size]))
                pos += size
            data = b"".join(chunks)
    except (ValueError, zlib.error, IndexError) as exc:
        raise ValueError(
            f"cannot decode array {name!r} in {path!r}: {exc}; the file is damaged "
            "or not a VTK XML file"
        ) from None
    if len(data) % np.dtype(dtype).itemsize:
        raise ValueError(
            f"array {name!r} in {path!r} has {len(data)} bytes, not a multiple of "
            f"its item size {np.dtype(dtype).itemsize}"
        )
    return np.frombuffer(data, dtype=dtype)


def read_vti(path):
    """Read the cell arrays of a VTK XML ImageData (``.vti``) file.

    Reads files written by :func:`write_vti` and by VTK with inline data
    (``format="binary"``, raw or zlib-compressed, or ``format="ascii"``).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.vti`` file.

    Returns
    -------
    cell_data : dict of str to ndarray
        Arrays of shape ``(D, H, W)`` (or ``(D, H, W, k)`` for ``k``
        components), in the file's dtype. 2D rasters come back with ``D = 1``.
    spacing : (3,) tuple of float
        Cell size in array axis order ``(hz, hy, hx)``.
    origin : (3,) tuple of float
        Corner of cell ``(0, 0, 0)`` in array axis order.

    Raises
    ------
    ValueError
        If the file is missing, is not VTK ImageData, uses appended data or an
        unsupported compressor, or an array has the wrong length.
    """
    path = _check_file(path, "VTK image")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(
            f"VTK image {path!r} is not valid XML: {exc}; expected a .vti file"
        ) from None
    if root.tag != "VTKFile" or root.get("type") != "ImageData":
        raise ValueError(
            f"VTK image {path!r} has root <{root.tag} type={root.get('type')!r}>; "
            "expected <VTKFile type='ImageData'>"
        )
    if root.get("byte_order", "LittleEndian") != "LittleEndian":
        raise ValueError(f"VTK image {path!r} is big-endian; expected LittleEndian")
    header_type = root.get("header_type", "UInt32")
    if header_type not in ("UInt32", "UInt64"):
        raise ValueError(
            f"VTK image {path!r} has header_type {header_type!r}; expected UInt32 "
            "or UInt64"
        )
    compressor = root.get("compressor")
    if compressor not in (None, "vtkZLibDataCompressor"):
        raise ValueError(
            f"VTK image {path!r} uses compressor {compressor!r}; only zlib "
            "(vtkZLibDataCompressor) or none is supported"
        )
    image = root.find("ImageData")
    piece = image.find("Piece") if image is not None else None
    if image is None or piece is None:
        raise ValueError(f"VTK image {path!r} has no <ImageData><Piece> element")
    try:
        ext = [int(v) for v in image.get("WholeExtent").split()]
        spacing = [float(v) for v in image.get("Spacing", "1 1 1").split()]
        origin = [float(v) for v in image.get("Origin", "0 0 0").split()]
    except (AttributeError, ValueError):
        raise ValueError(
            f"VTK image {path!r} has a malformed WholeExtent, Spacing or Origin"
        ) from None
    if len(ext) != 6 or len(spacing) != 3 or len(origin) != 3:
        raise ValueError(
            f"VTK image {path!r} has WholeExtent {ext}, Spacing {spacing}, Origin "
            f"{origin}; expected 6, 3 and 3 numbers"
        )
    w, h, d = (max(ext[1] - ext[0], 1), max(ext[3] - ext[2], 1), ext[5] - ext[4])
    d = max(d, 1)
    origin_xyz = np.array(origin) + np.array(ext[0::2]) * np.array(spacing)
    cell_data = {}
    cells = piece.find("CellData")
    for arr in cells if cells is not None else []:
        name = arr.get("Name", f"array{len(cell_data)}")
        vtype = arr.get("type")
        if vtype not in _VTK_TYPES:
            raise ValueError(
                f"array {name!r} in {path!r} has type {vtype!r}; expected one of "
                f"{', '.join(_VTK_TYPES)}"
            )
        fmt = arr.get("format", "ascii")
        ncomp = int(arr.get("NumberOfComponents", "1"))
        if fmt == "ascii":
            values = np.array((arr.text or "").split(), dtype=_VTK_TYPES[vtype])
        elif fmt == "binary":
            values = _decode(
                arr.text or "",
                _VTK_TYPES[vtype],
                "<u4" if header_type == "UInt32" else "<u8",
                compressor is not None,
                path,
                name,
            )
        else:
            raise ValueError(
                f"array {name!r} in {path!r} has format {fmt!r}; only inline "
                "'binary' and 'ascii' data are supported (not appended)"
            )
        if values.size != d * h * w * ncomp:
            raise ValueError(
                f"array {name!r} in {path!r} has {values.size} values; expected "
                f"{d * h * w * ncomp} for {w} x {h} x {d} cells x {ncomp} components"
            )
        shape = (d, h, w) if ncomp == 1 else (d, h, w, ncomp)
        cell_data[name] = values.reshape(shape).astype(values.dtype.newbyteorder("="))
    return (
        cell_data,
        tuple(float(v) for v in spacing[::-1]),
        tuple(float(v) for v in origin_xyz[::-1]),
    )
