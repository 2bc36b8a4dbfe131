"""Atomic file output: write to a temporary file, then rename it onto the target.

Every writer of rasterquant goes through :func:`atomic_write`, so a reader never
sees a half-written file: either the old content (or no file) or the complete new
one. A failed write (disk full, interrupted run) leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets

import numpy as np

__all__ = [
    "atomic_save_npy",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "check_output",
]


def _check_directory(path):
    """Check that the parent directory of ``path`` exists and is writable."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(
            f"output directory {directory!r} does not exist; create it before "
            f"writing {path!r}"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(
            f"output directory {directory!r} is not writable (permission denied); "
            f"cannot write {path!r}"
        )
    return directory


def check_output(path, overwrite=True) -> str:
    """Check that ``path`` can be written.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    overwrite : bool
        If False, an existing file at ``path`` is an error.

    Returns
    -------
    str
        ``path`` as a string.

    Raises
    ------
    ValueError
        If ``path`` is a directory, if it exists and ``overwrite`` is False, or if
        its parent directory does not exist or is not writable.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"output path {path!r} is a directory; expected a file name")
    if os.path.exists(path) and not overwrite:
        raise ValueError(
            f"output file {path!r} already exists; pass overwrite=True (--force on "
            "the command line) to replace it"
        )
    _check_directory(path)
    return path


@contextlib.contextmanager
def atomic_write(path, mode="wb", *, encoding=None):
    """Open a temporary file that replaces ``path`` when the block succeeds.

    The temporary file ``.{name}.tmp-{pid}-{random}`` is created in the directory
    of ``path`` (so that the final rename stays on one file system), flushed and
    fsynced at the end of the ``with`` block, then renamed onto ``path`` with
    :func:`os.replace`. If the block raises anything (including
    ``KeyboardInterrupt`` or a write error such as a full disk), the temporary
    file is deleted, ``path`` is left untouched and the exception propagates.

    Parameters
    ----------
    path : str or os.PathLike
        The final file.
    mode : {"wb", "w"}
        Binary or text mode.
    encoding : str, optional
        Text encoding for ``mode="w"`` (default UTF-8).

    Yields
    ------
    file object
        The open temporary file.

    Raises
    ------
    ValueError
        If ``mode`` is not ``"wb"`` or ``"w"``, if ``path`` is a directory, or if
        its parent directory does not exist or is not writable.
    OSError
        If writing fails; the message names ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with atomic_write(os.path.join(d, "a.txt"), "w") as f:
    ...     _ = f.write("hello")
    >>> os.listdir(d)
    ['a.txt']
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"output path {path!r} is a directory; expected a file name")
    directory = _check_directory(path)
    name = os.path.basename(path)
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    kwargs = {} if mode == "wb" else {"encoding": encoding or "utf-8", "newline": ""}
    fh = open(tmp, mode, **kwargs)  # closed below on every path
    try:
        try:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fh.close()
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        # errors of the write itself (no file name, or the temporary one) are
        # reported against the target; other OSErrors from the block pass as is
        if isinstance(exc, OSError) and exc.filename in (None, tmp):
            if exc.errno is None:
                raise OSError(f"cannot write {path!r}: {exc}") from exc
            raise OSError(exc.errno, exc.strerror or str(exc), path) from exc
        raise


def atomic_save_npy(path, array) -> None:
    """Save ``array`` to a ``.npy`` file atomically (no pickling).

    Parameters
    ----------
    path : str or os.PathLike
        The output file; NumPy does not append ``.npy`` here.
    array : array_like
        The data.
    """
    arr = np.asarray(array)
    with atomic_write(path, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)


def atomic_write_text(path, text) -> None:
    """Write a string to ``path`` atomically, UTF-8 encoded.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    text : str
        The content.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    with atomic_write(path, "w") as fh:
        fh.write(text)


def _json_default(obj):
    """Convert NumPy scalars and arrays (and paths) for :func:`json.dump`."""
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def _finite(obj):
    """Replace NaN and infinities by None, so that the JSON is standard JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        return None
    return obj


def atomic_write_json(path, obj) -> None:
    """Write ``obj`` as JSON (indent 2, sorted keys) to ``path`` atomically.

    NumPy scalars and arrays are converted to Python numbers and lists; NaN and
    infinities become ``null`` (JSON has no such numbers).

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    obj : object
        Anything :func:`json.dumps` accepts, plus NumPy scalars and arrays.
    """
    text = json.dumps(
        _finite(obj), indent=2, sort_keys=True, default=_json_default, allow_nan=False
    )
    atomic_write_text(path, text + "\n")
