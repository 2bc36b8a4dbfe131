"""Neper orientation files (``.ori``): one crystal orientation per cell.

Neper writes ``.ori`` files with ``-format ori`` and reads them with ``-ori
"file(<name>,des=<descriptor>)"``. The plain format (``-oriformat plain``) is the
orientation descriptor of cell 1, 2, ... on successive lines, nothing else. rasterquant
writes Bunge Euler angles in degrees (``phi1 Phi phi2``): read them in Neper with
``-ori "file(g.ori,des=euler-bunge)"`` (the ``des`` is required: Neper's default for
files is ``rodrigues:active``). Under Neper's default "active" convention the triplet is
used as it is, through the Bunge matrix ``g`` of Neper's orientation library
(``ol_e_g``), the same ``g`` as in :mod:`rasterquant.microstructure.orientations`; do
not add ``:passive``, which would invert the rotations.
Line ``i`` is the cell with data id ``i`` in the ``.tesr`` written next to it, i.e.
rasterquant grain ``i - 1``. The same angles also go into the ``.tesr`` itself
(``**cell`` / ``*ori``), see :func:`rasterquant.io.tesr.write_tesr`.
"""

from __future__ import annotations

import numpy as np

from .atomic import atomic_write
from .images import _check_file

__all__ = ["read_ori", "write_ori"]


def write_ori(path, orientations) -> None:
    """Write Bunge Euler angles, one cell per line, as a Neper ``.ori`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (``.ori``); written atomically.
    orientations : Orientations or (N, 3) array_like of float
        An :class:`~rasterquant.microstructure.orientations.Orientations` or Bunge
        angles ``(phi1, Phi, phi2)`` in degrees, row ``i`` for grain ``i``.

    Raises
    ------
    ValueError
        For angles that are not a finite ``(N, 3)`` array, or an unwritable path.

    Notes
    -----
    Read it in Neper with ``-ori "file(<path>,des=euler-bunge)"``. Numbers are
    written with 12 decimals, as Neper does.
    """
    euler = np.asarray(getattr(orientations, "euler_deg", orientations), dtype=float)
    if euler.ndim != 2 or euler.shape[1] != 3 or not np.isfinite(euler).all():
        raise ValueError(
            f"orientations must be finite Bunge angles of shape (N, 3) in degrees, "
            f"got shape {euler.shape}"
        )
    with atomic_write(path, "w") as fh:
        np.savetxt(fh, euler, fmt="%.12f")


def read_ori(path) -> np.ndarray:
    """Read a plain Neper ``.ori`` file of Bunge Euler angles.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`write_ori` or by Neper with ``-oridescriptor
        euler-bunge -oriformat plain``.

    Returns
    -------
    (N, 3) ndarray of float64
        ``(phi1, Phi, phi2)`` in degrees, row ``i`` for cell ``i + 1``.

    Raises
    ------
    ValueError
        If the file is missing, empty, or a line does not hold three numbers.
    """
    path = _check_file(path, "orientation")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            tokens = line.split()
            if not tokens:
                continue
            try:
                values = [float(t) for t in tokens]
            except ValueError:
                values = []
            if len(values) != 3:
                raise ValueError(
                    f"orientation file {path!r} line {lineno}: {line.strip()!r}; "
                    "expected three Bunge angles 'phi1 Phi phi2' in degrees"
                )
            rows.append(values)
    if not rows:
        raise ValueError(
            f"orientation file {path!r} is empty; expected one line per cell"
        )
    return np.array(rows, dtype=np.float64)
