"""Reading and writing point sets (CSV, whitespace text, NumPy ``.npy``).

One convention for every format, the same as the Python API: coordinates are
physical, in **array axis order**, followed by the extra columns in the order they
were given. The coordinate columns are named

=====  ==========================  ================================
dim    coordinate columns           array axis
=====  ==========================  ================================
2D     ``row, col``                 ``points[:, 0]``, ``points[:, 1]``
3D     ``layer, row, col``          ``points[:, 0]`` .. ``points[:, 2]``
=====  ==========================  ================================

====================  ==============================================================
suffix                layout
====================  ==============================================================
``.csv``              header row ``row,col[,name...]`` (3D ``layer,row,col,...``),
                      then one row per point
``.txt``, ``.xyz``    a first comment line ``# row col [name...]``, then rows
                      separated by spaces
``.npy``              float64 ``(N, d + k)``, the same column order; no names (the
                      command line records them as ``"columns"`` in its JSON sidecar)
====================  ==============================================================

:func:`read_points` reads back what :func:`write_points` writes, in every format.
It also reads files with the older ``x, y[, z]`` names (CSV header, or a ``# x y``
first comment line) by name: ``x`` is ``col`` (the last axis), ``y`` is ``row``,
``z`` is ``layer``, whatever the order of the columns. Text files without a header
line are read in array axis order, like ``.npy``; they cannot tell a 3D point set
from a 2D one with one extra column, so :func:`read_points` takes their columns as
coordinates unless ``ndim`` says otherwise. Floats are written with 17 significant
digits (or NumPy's binary format), so a round trip is exact.
"""

from __future__ import annotations

import os
import re

import numpy as np

from .atomic import atomic_save_npy, atomic_write
from .images import _check_file

__all__ = ["COORDINATE_NAMES", "point_columns", "read_points", "write_points"]

_TEXT_SUFFIXES = (".txt", ".xyz")
_SUFFIXES = (".csv", ".npy", *_TEXT_SUFFIXES)
#: names of the coordinate columns, in array axis order
COORDINATE_NAMES = {2: ("row", "col"), 3: ("layer", "row", "col")}
#: older names, read for compatibility: the array axis they stand for, from the end
_LEGACY_AXES = {"x": -1, "y": -2, "z": -3}
_RESERVED = frozenset({"row", "col", "layer", *_LEGACY_AXES})
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def point_columns(ndim, names=()) -> list:
    """Column names of a point file: the coordinates, then ``names``.

    Parameters
    ----------
    ndim : {2, 3}
        Number of coordinates.
    names : sequence of str
        Names of the extra columns, in order.

    Returns
    -------
    list of str
        For example ``["row", "col", "weight"]``.

    Examples
    --------
    >>> point_columns(3, ["radius"])
    ['layer', 'row', 'col', 'radius']
    """
    if ndim not in COORDINATE_NAMES:
        raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
    return [*COORDINATE_NAMES[ndim], *names]


def _suffix(path, what):
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in _SUFFIXES:
        raise ValueError(
            f"{what} {os.fspath(path)!r} has unsupported suffix {suffix!r}; expected "
            f"one of {', '.join(_SUFFIXES)}"
        )
    return suffix


def _check_columns(columns, n):
    out = {}
    for name, values in columns.items():
        if not _NAME_RE.match(name):
            raise ValueError(
                f"column name {name!r} is not valid; expected letters, digits and "
                "underscores, not starting with a digit"
            )
        if name.lower() in _RESERVED:
            raise ValueError(
                f"column name {name!r} is reserved for the coordinates "
                f"({', '.join(sorted(_RESERVED))}); choose another name"
            )
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"column {name!r} must be numbers, got {type(values).__name__}"
            ) from None
        if arr.shape != (n,):
            hint = (
                "; pass one column per component (e.g. r=..., g=..., b=...)"
                if arr.ndim == 2 and arr.shape[0] == n
                else ""
            )
            raise ValueError(
                f"column {name!r} must have shape ({n},) (one value per point), "
                f"got {arr.shape}{hint}"
            )
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise ValueError(
                f"column {name!r} contains NaN or inf (first at point {bad}); "
                "expected finite values"
            )
        out[name] = arr
    return out


def _check_points(points):
    try:
        pts = np.array(points, dtype=np.float64, order="C")
    except (TypeError, ValueError):
        raise ValueError(
            f"points must be an (N, 2) or (N, 3) array of numbers, got "
            f"{type(points).__name__}"
        ) from None
    if pts.ndim != 2 or pts.shape[1] not in (2, 3):
        raise ValueError(f"points must have shape (N, 2) or (N, 3), got {pts.shape}")
    if pts.shape[0] == 0:
        raise ValueError("points is empty (0 rows); expected at least one point")
    if not np.isfinite(pts).all():
        bad = int(np.flatnonzero(~np.isfinite(pts).all(axis=1))[0])
        raise ValueError(
            f"points contains NaN or inf (first at row {bad}); remove or clip those "
            "rows"
        )
    return pts


def _format_rows(table, sep):
    """Rows of floats as text with the shortest repr that round-trips exactly."""
    return "".join(sep.join(map(repr, row)) + "\n" for row in table.tolist())


def write_points(path, points, **columns) -> None:
    """Write a point set, with optional per-point columns, to a file.

    The format follows the suffix of ``path`` (see the module documentation). Every
    format has the same columns in the same order: the coordinates in array axis
    order (``row, col`` or ``layer, row, col``), then ``columns``. ``.csv`` starts
    with a header row naming them, ``.txt``/``.xyz`` with a ``#`` comment line
    naming them; ``.npy`` holds the numbers only. The file is written atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The output file: ``.csv``, ``.txt``, ``.xyz`` or ``.npy``.
    points : (N, d) array_like of float
        Coordinates in array axis order, ``d`` is 2 or 3.
    **columns : (N,) array_like of float
        Extra columns, written after the coordinates in the given order (for
        example ``radius=...`` or ``r=..., g=..., b=...``). Names are
        identifiers other than ``row``, ``col``, ``layer``, ``x``, ``y``, ``z``.

    Raises
    ------
    ValueError
        If the suffix is not supported, ``points`` is not ``(N, 2)`` or
        ``(N, 3)``, is empty or holds NaN/inf, a column has the wrong length,
        holds NaN/inf or has an invalid name, or the output directory is missing
        or not writable.

    See Also
    --------
    read_points : the inverse.
    point_columns : the column names written.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "p.csv")
    >>> write_points(path, [[1.0, 2.0], [3.5, 4.0]], radius=[0.5, 0.25])
    >>> print(open(path).read(), end="")
    row,col,radius
    1.0,2.0,0.5
    3.5,4.0,0.25
    """
    suffix = _suffix(path, "points file")
    pts = _check_points(points)
    cols = _check_columns(columns, pts.shape[0])
    table = np.column_stack([pts, *cols.values()])
    if suffix == ".npy":
        atomic_save_npy(path, table)
        return
    names = point_columns(pts.shape[1], cols)
    if suffix == ".csv":
        text = ",".join(names) + "\n" + _format_rows(table, ",")
    else:
        text = "# " + " ".join(names) + "\n" + _format_rows(table, " ")
    with atomic_write(path, "w") as fh:
        fh.write(text)


def _scan_rows(lines, sep, path, first_line):
    """Slow, line-by-line parse that pinpoints the first bad row."""
    rows, width = [], None
    for lineno, line in enumerate(lines, start=first_line):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = [f.strip() for f in text.split(sep)] if sep else text.split()
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise ValueError(
                f"points file {path!r} line {lineno} has {len(fields)} fields; "
                f"expected {width} like the lines before it (ragged rows)"
            )
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            raise ValueError(
                f"points file {path!r} line {lineno} is not all numbers: {text[:80]!r}"
            ) from None
    return np.array(rows, dtype=np.float64).reshape(len(rows), width or 0)


def _parse_table(text_lines, sep, path, first_line):
    if not any(line.split("#", 1)[0].strip() for line in text_lines):
        raise ValueError(f"points file {path!r} has no data rows")
    try:
        table = np.loadtxt(
            text_lines, delimiter=sep, dtype=np.float64, ndmin=2, comments="#"
        )
    except ValueError:
        table = _scan_rows(text_lines, sep, path, first_line)
    if table.size == 0:
        raise ValueError(f"points file {path!r} has no data rows")
    bad = ~np.isfinite(table).all(axis=1)
    if bad.any():
        raise ValueError(
            f"points file {path!r} has NaN or inf on data row "
            f"{int(np.flatnonzero(bad)[0])} (0-based); expected finite numbers"
        )
    return table


def _split(table, ndim, path):
    """Split an unnamed table into coordinates (first ``ndim`` columns) and rest."""
    ncols = table.shape[1]
    if ndim is None:
        if ncols not in (2, 3):
            raise ValueError(
                f"points file {path!r} has {ncols} columns and no header; pass "
                "ndim=2 or ndim=3 to say how many are coordinates"
            )
        ndim = ncols
    elif ncols < ndim:
        raise ValueError(
            f"points file {path!r} has {ncols} columns; expected at least "
            f"ndim={ndim} coordinate columns"
        )
    extra = {f"column{j}": table[:, ndim + j].copy() for j in range(ncols - ndim)}
    return np.ascontiguousarray(table[:, :ndim]), extra


def _name_columns(header, path, shown):
    """Map a header's names to columns.

    Returns ``(coord, extra)``: the column index of each coordinate in array axis
    order, and ``(index, name)`` of the other columns in file order. The names
    ``row, col[, layer]`` and the older ``x, y[, z]`` (``x`` = col, ``y`` = row,
    ``z`` = layer) are recognised in any order and any case.
    """
    lowered = [h.lower() for h in header]
    current = [n for n in lowered if n in COORDINATE_NAMES[3]]
    legacy = [n for n in lowered if n in _LEGACY_AXES]
    if not current and not legacy:
        raise ValueError(
            f"points file {path!r} has header {shown!r}; expected a first line naming "
            "the columns: 'row,col' (2D) or 'layer,row,col' (3D), then any others "
            "(the older 'x,y[,z]' names are read too)"
        )
    if current and legacy:
        raise ValueError(
            f"points file {path!r} has header {shown!r}, which mixes the names "
            "row/col/layer with the older x/y/z; expected one naming of the "
            "coordinates"
        )
    for name in header:
        if not _NAME_RE.match(name):
            raise ValueError(
                f"points file {path!r} has an invalid column name {name!r} in its "
                "header; expected identifiers (letters, digits, underscores)"
            )
    if len(set(lowered)) != len(lowered):
        raise ValueError(f"points file {path!r} repeats a column name: {header}")
    if current:
        if not {"row", "col"} <= set(current):
            raise ValueError(
                f"points file {path!r} has header {shown!r}; expected both 'row' and "
                "'col' (and 'layer' in 3D)"
            )
        d = 3 if "layer" in current else 2
        coord = [lowered.index(name) for name in COORDINATE_NAMES[d]]
    else:
        if not {"x", "y"} <= set(legacy):
            raise ValueError(
                f"points file {path!r} has header {shown!r}; expected both 'x' and "
                "'y' (and 'z' in 3D), or the names 'row,col' (2D) or 'layer,row,col' "
                "(3D)"
            )
        d = 3 if "z" in legacy else 2
        by_axis = {d + _LEGACY_AXES[name]: lowered.index(name) for name in legacy}
        coord = [by_axis[a] for a in range(d)]
    extra = [(j, header[j]) for j in range(len(header)) if j not in coord]
    return coord, extra


def _named_table(table, header, coord, extra, path, shown, ndim):
    """Coordinates (array axis order) and named columns of a table with a header."""
    d = len(coord)
    if ndim is not None and ndim != d:
        raise ValueError(
            f"points file {path!r} holds {d}D points (header {shown!r}); expected "
            f"ndim={ndim}"
        )
    if table.shape[1] != len(header):
        raise ValueError(
            f"points file {path!r} has {table.shape[1]} values per row; expected "
            f"{len(header)} to match its header {shown!r}"
        )
    points = np.ascontiguousarray(table[:, coord])
    return points, {name: table[:, j].copy() for j, name in extra}


def _read_csv(path, ndim):
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    shown = lines[0][:80]
    header = [h.strip() for h in lines[0].split(",")]
    coord, extra = _name_columns(header, path, shown)
    table = _parse_table(lines[1:], ",", path, 2)
    return _named_table(table, header, coord, extra, path, shown, ndim)


def _text_header(lines):
    """Return the names of a ``# row col ...`` first line, or None (no header).

    The first non-blank line is a header when it is a comment whose words are all
    identifiers and include a coordinate name; any other comment is just a comment.
    """
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if not text.startswith("#"):
            return None
        words = text[1:].replace(",", " ").split()
        if (
            words
            and all(_NAME_RE.match(w) for w in words)
            and any(w.lower() in _RESERVED for w in words)
        ):
            return words
        return None
    return None


def _read_text(path, ndim):
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    header = _text_header(lines)
    table = _parse_table(lines, None, path, 1)
    if header is None:
        return _split(table, ndim, path)
    shown = "# " + " ".join(header)
    coord, extra = _name_columns(header, path, shown[:80])
    return _named_table(table, header, coord, extra, path, shown[:80], ndim)


def read_points(path, *, ndim=None):
    """Read a point set written by :func:`write_points` (or a compatible file).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv``, ``.txt``, ``.xyz`` or ``.npy`` file.
    ndim : {None, 2, 3}
        Number of coordinate columns. Only needed for files without names
        (``.npy``, text files without a ``#`` header line) that hold extra
        columns; by default such a file must have 2 or 3 columns, all
        coordinates. When the file names its columns, ``ndim``, if given, must
        agree.

    Returns
    -------
    points : (N, d) ndarray of float64
        Coordinates in array axis order (``(row, col)`` or ``(layer, row, col)``).
        Columns named ``x, y[, z]`` (older files) are mapped by name: ``x`` is
        ``col``, ``y`` is ``row``, ``z`` is ``layer``.
    columns : dict of str to (N,) ndarray of float64
        The extra columns, named from the header; ``column0``, ``column1``, ...
        for files without names.

    Raises
    ------
    ValueError
        If the file is missing or empty, the suffix is not supported, the header
        is malformed (no coordinate names, repeated or invalid names, row/col
        mixed with x/y), rows are ragged or not numeric, a value is NaN or inf,
        or the number of columns does not fit the header or ``ndim``.

    See Also
    --------
    write_points : the inverse.
    """
    if ndim is not None and ndim not in (2, 3):
        raise ValueError(f"ndim must be None, 2 or 3, got {ndim!r}")
    suffix = _suffix(path, "points file")
    path = _check_file(path, "points")
    if suffix == ".csv":
        return _read_csv(path, ndim)
    if suffix in _TEXT_SUFFIXES:
        return _read_text(path, ndim)
    try:
        table = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ValueError(
            f"cannot read points file {path!r}: {str(exc).splitlines()[0]}; "
            "expected a NumPy .npy file"
        ) from None
    if table.ndim != 2 or not np.issubdtype(table.dtype, np.number):
        raise ValueError(
            f"points file {path!r} holds a {table.dtype} array of shape "
            f"{table.shape}; expected a 2D array of numbers (N, d + k)"
        )
    table = table.astype(np.float64)
    if table.shape[0] == 0:
        raise ValueError(f"points file {path!r} has no data rows")
    if not np.isfinite(table).all():
        bad = int(np.flatnonzero(~np.isfinite(table).all(axis=1))[0])
        raise ValueError(
            f"points file {path!r} has NaN or inf on row {bad}; expected finite numbers"
        )
    return _split(table, ndim, path)
