"""Reading and writing point sets (CSV, whitespace text, NumPy ``.npy``).

Points are held in the array axis order of the package, ``(row, col)`` in 2D and
``(z, row, col)`` in 3D. Text files use the ``x, y[, z]`` order that other tools
(spreadsheets, Neper's ``coo:file(...)``, ParaView's CSV reader) expect:

====================  =====================================  =====================
suffix                layout                                 extra columns
====================  =====================================  =====================
``.csv``              header ``x,y[,z],name,...`` then rows  named in the header
``.txt``, ``.xyz``    rows ``x y [z] v1 ...``, no header     unnamed: ``column0``..
``.npy``              float64 ``(N, d + k)``, array order    unnamed: ``column0``..
====================  =====================================  =====================

with ``x = points[:, -1]`` (column), ``y = points[:, -2]`` (row) and, in 3D,
``z = points[:, 0]``. In ``.npy`` files the first ``d`` columns are the
coordinates in array axis order (no conversion), followed by the extra columns
in the order they were given. Files without a header cannot tell a 3D point set
from a 2D one with one extra column: :func:`read_points` takes their columns as
coordinates unless ``ndim`` says otherwise. Floats are written with 17
significant digits (or NumPy's binary format), so a round trip is exact.
"""

from __future__ import annotations

import os
import re

import numpy as np

from .atomic import atomic_save_npy, atomic_write
from .images import _check_file

__all__ = ["read_points", "write_points"]

_TEXT_SUFFIXES = (".txt", ".xyz")
_SUFFIXES = (".csv", ".npy", *_TEXT_SUFFIXES)
_COORD_NAMES = {2: ("x", "y"), 3: ("x", "y", "z")}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _suffix(path, what):
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in _SUFFIXES:
        raise ValueError(
            f"{what} {os.fspath(path)!r} has unsupported suffix {suffix!r}; expected "
            f"one of {', '.join(_SUFFIXES)}"
        )
    return suffix


def _to_xyz(points):
    """Array axis order -> (x, y[, z]) column order (reverse the axes)."""
    return points[:, ::-1]


def _check_columns(columns, n):
    out = {}
    for name, values in columns.items():
        if not _NAME_RE.match(name):
            raise ValueError(
                f"column name {name!r} is not valid; expected letters, digits and "
                "underscores, not starting with a digit"
            )
        if name.lower() in ("x", "y", "z"):
            raise ValueError(
                f"column name {name!r} is reserved for the coordinates; choose "
                "another name"
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

    The format follows the suffix of ``path`` (see the module documentation):
    ``.csv`` (header ``x,y[,z],<columns>``), ``.txt``/``.xyz`` (whitespace
    separated, no header) or ``.npy`` (coordinates in array axis order then the
    columns). The file is written atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    points : (N, d) array_like of float
        Coordinates in array axis order, ``d`` is 2 or 3.
    **columns : (N,) array_like of float
        Extra columns, written after the coordinates in the given order (for
        example ``radius=...`` or ``r=..., g=..., b=...``). Names are
        identifiers other than ``x``, ``y``, ``z``.

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

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "p.csv")
    >>> write_points(path, [[1.0, 2.0], [3.5, 4.0]], radius=[0.5, 0.25])
    >>> print(open(path).read(), end="")
    x,y,radius
    2.0,1.0,0.5
    4.0,3.5,0.25
    """
    suffix = _suffix(path, "points file")
    pts = _check_points(points)
    cols = _check_columns(columns, pts.shape[0])
    extra = [cols[name] for name in cols]
    if suffix == ".npy":
        atomic_save_npy(path, np.column_stack([pts, *extra]))
        return
    table = np.column_stack([_to_xyz(pts), *extra])
    if suffix == ".csv":
        header = ",".join([*_COORD_NAMES[pts.shape[1]], *cols])
        text = header + "\n" + _format_rows(table, ",")
    else:
        text = _format_rows(table, " ")
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


def _read_csv(path, ndim):
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    header = [h.strip() for h in lines[0].split(",")]
    lowered = [h.lower() for h in header]
    d = 3 if lowered[:3] == ["x", "y", "z"] else 2
    if lowered[:2] != ["x", "y"]:
        raise ValueError(
            f"points file {path!r} has header {lines[0][:80]!r}; expected a first "
            "line naming the columns, starting with 'x,y' (2D) or 'x,y,z' (3D)"
        )
    names = header[d:]
    for name in names:
        if not _NAME_RE.match(name) or name.lower() in ("x", "y", "z"):
            raise ValueError(
                f"points file {path!r} has an invalid column name {name!r} in its "
                "header; expected identifiers other than x, y, z"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"points file {path!r} repeats a column name: {names}")
    if ndim is not None and ndim != d:
        raise ValueError(
            f"points file {path!r} holds {d}D points (header {lines[0][:80]!r}); "
            f"expected ndim={ndim}"
        )
    table = _parse_table(lines[1:], ",", path, 2)
    if table.shape[1] != len(header):
        raise ValueError(
            f"points file {path!r} has {table.shape[1]} values per row; expected "
            f"{len(header)} to match its header"
        )
    points = np.ascontiguousarray(table[:, d - 1 :: -1])
    extra = {name: table[:, d + j].copy() for j, name in enumerate(names)}
    return points, extra


def read_points(path, *, ndim=None):
    """Read a point set written by :func:`write_points` (or a compatible file).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv``, ``.txt``, ``.xyz`` or ``.npy`` file.
    ndim : {None, 2, 3}
        Number of coordinate columns. Only needed for files without a header
        (``.txt``, ``.xyz``, ``.npy``) that hold extra columns; by default
        such a file must have 2 or 3 columns, all coordinates. For ``.csv``
        the header decides and ``ndim``, if given, must agree.

    Returns
    -------
    points : (N, d) ndarray of float64
        Coordinates in array axis order (``(row, col)`` or ``(z, row, col)``).
    columns : dict of str to (N,) ndarray of float64
        The extra columns: named from the CSV header, ``column0``, ``column1``,
        ... for files without a header.

    Raises
    ------
    ValueError
        If the file is missing or empty, the suffix is not supported, the CSV
        header is malformed, rows are ragged or not numeric, a value is NaN or
        inf, or the number of columns does not fit ``ndim``.

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
    if suffix == ".npy":
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
                f"points file {path!r} has NaN or inf on row {bad}; expected "
                "finite numbers"
            )
        return _split(table, ndim, path)
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    table = _parse_table(lines, None, path, 1)
    points, extra = _split(table, ndim, path)
    return np.ascontiguousarray(points[:, ::-1]), extra
