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
    "TRANSACTIONAL_COMMANDS",
    "add_common",
    "begin_run",
    "check_outputs",
    "end_run",
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
    """Parse an integer >= 1 (argparse type)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    return v


def nonneg_int(text):
    """Parse an integer >= 0 (argparse type)."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return v


def positive_float(text):
    """Parse a finite float > 0 (argparse type)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return v


def tol_float(text):
    """Parse a float in (0, 1) (argparse type)."""
    v = positive_float(text)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"expected a tolerance in (0, 1), got {text}")
    return v


def add_common(parser):
    """Options every sub-command has."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="numba threads (default: all cores)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar and no summary"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logging"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite existing outputs"
    )


def add_progress(parser):
    """Add ``--progress`` / ``--no-progress`` (force the progress bar on or off)."""
    parser.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="force the progress bar",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def add_quadrature(parser):
    """Add the ``--quadrature`` option of the commands that solve OT problems."""
    parser.add_argument(
        "--quadrature",
        choices=["fractional", "center"],
        default=None,
        help="pixel quadrature of the cells: 'fractional' splits boundary pixels "
        "exactly (masses continuous in the weights, any tolerance); 'center' "
        "gives each pixel to the cell of its centre (default: fractional)",
    )


def quadrature_kwargs(args) -> dict:
    """``{"quadrature": ...}`` when ``--quadrature`` was given, else empty."""
    return {} if args.quadrature is None else {"quadrature": args.quadrature}


def is_tty():
    """Tell whether stderr is a terminal."""
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


#: sub-commands whose outputs form one unit: a run that fails or is interrupted
#: removes the outputs it created (batch and experiment keep finished items so that a
#: rerun resumes)
TRANSACTIONAL_COMMANDS = frozenset({"quantize", "stipple", "microstructure"})

_run_created: list[str] | None = None


def begin_run():
    """Start recording the outputs this run creates (called by ``main``)."""
    global _run_created
    _run_created = []


def end_run(ok, command):
    """Finish a run: on failure, remove the outputs it created; returns those paths.

    Only for :data:`TRANSACTIONAL_COMMANDS`; files that existed before the run
    (replaced with ``--force``) are left as they are.
    """
    global _run_created
    created, _run_created = _run_created or [], None
    if ok or command not in TRANSACTIONAL_COMMANDS:
        return []
    removed = []
    for path in created:
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover - nothing better to do while failing
            pass
    return removed


def check_outputs(paths, force):
    """Refuse to overwrite existing outputs without --force; check directories.

    Also refuses the same output twice and records which outputs are new, so that
    ``main`` can remove them if the run fails or is interrupted.
    """
    from ..io.atomic import check_output

    seen = set()
    for p in paths:
        p = os.fspath(p)
        key = os.path.normcase(os.path.abspath(p))
        if key in seen:
            raise ValueError(
                f"output {p!r} is given twice (outputs and JSON sidecars must have "
                "distinct names); expected distinct output files"
            )
        seen.add(key)
        if os.path.lexists(p) and not os.path.isdir(p) and not force:
            raise ValueError(
                f"output file {p!r} already exists; pass --force to overwrite it, or "
                "choose another name"
            )
        check_output(p, overwrite=True)
        if _run_created is not None and not os.path.lexists(p):
            _run_created.append(os.path.abspath(p))


def json_sidecar(command, args, params, diagnostics, outputs, t0):
    """Build the JSON sidecar: inputs, parameters, seed, version, diagnostics."""
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
