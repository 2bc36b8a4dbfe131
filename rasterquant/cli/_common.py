"""Helpers shared by the sub-commands: options, sidecars, progress and signals."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from .. import __version__

__all__ = [
    "add_common",
    "is_tty",
    "json_sidecar",
    "positive_float",
    "positive_int",
    "sidecar_path",
    "tol_float",
]


class UserError(ValueError):
    """A problem with the user's input, reported in one line (exit code 1)."""


def positive_int(text):
    """argparse type: integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return v


def nonneg_int(text):
    """argparse type: integer >= 0."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def positive_float(text):
    """argparse type: finite float > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return v


def tol_float(text):
    """argparse type: float in (0, 1)."""
    v = positive_float(text)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"expected a tolerance in (0, 1), got {text}")
    return v


def add_common(parser):
    """Options every sub-command has."""
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="numba threads (default: all cores)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no summary")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and debug logging")
    parser.add_argument("--force", action="store_true",
                        help="overwrite existing outputs")


def is_tty():
    """True when stderr is a terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def show_progress(args):
    """Progress bars: on a TTY unless --quiet, or forced with --progress."""
    if getattr(args, "quiet", False):
        return False
    forced = getattr(args, "progress", None)
    if forced is not None:
        return bool(forced)
    return is_tty()


def set_threads(args):
    """Apply --threads (numba.set_num_threads)."""
    if getattr(args, "threads", None):
        import numba

        n = min(args.threads, numba.config.NUMBA_NUM_THREADS)
        numba.set_num_threads(n)


def sidecar_path(output):
    """``points.csv`` -> ``points.json``."""
    root, _ = os.path.splitext(os.fspath(output))
    return root + ".json"


def check_outputs(paths, force):
    """Refuse to overwrite existing outputs without --force; check directories."""
    from ..io.atomic import check_output

    for p in paths:
        check_output(p, overwrite=force)


def json_sidecar(command, args, params, diagnostics, outputs, t0):
    """The JSON sidecar: inputs, parameters, seed, version, diagnostics."""
    import numba

    return {
        "command": command,
        "rasterquant_version": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": int(numba.get_num_threads()),
        "parameters": params,
        "outputs": [os.fspath(o) for o in outputs],
        "diagnostics": diagnostics,
        "seconds": round(time.perf_counter() - t0, 4),
        "complete": True,
    }
