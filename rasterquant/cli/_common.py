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
    "ArgumentParser",
    "UsageError",
    "add_common",
    "add_image_options",
    "add_threads",
    "begin_run",
    "check_outputs",
    "end_run",
    "floor_float",
    "is_tty",
    "json_sidecar",
    "positive_float",
    "positive_int",
    "sidecar_path",
    "step_float",
    "thread_count",
    "tol_float",
]


class UserError(ValueError):
    """A problem with the user's input, reported in one line (exit code 1)."""


class UsageError(Exception):
    """A bad combination of arguments found after parsing (exit code 2).

    Raised by a sub-command's ``check_args(args)`` (set with ``set_defaults``);
    :class:`ArgumentParser` reports it like any other argument error.
    """


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit code 2.

    ``rasterquant quantize: error: argument -n/--n-points: expected an integer >=
    1, got -5 (see 'rasterquant quantize --help')``: no usage block. Used for the
    main parser and, through ``parser_class``, for every sub-command. After
    parsing, a sub-command's ``check_args(args)`` default (if any) checks the
    options that depend on each other; a :class:`UsageError` from it is reported
    the same way.
    """

    def error(self, message):
        """Print ``prog: error: message (see 'prog --help')`` and exit 2."""
        text = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")

    def _command_parser(self, namespace):
        """Return the parser of the sub-command chosen in ``namespace`` (else self)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = getattr(namespace, action.dest, None)
                return action.choices.get(chosen, self)
        return self

    def parse_args(self, args=None, namespace=None):
        """Parse like argparse; errors name the sub-command whose options failed."""
        namespace, extras = self.parse_known_args(args, namespace)
        target = self._command_parser(namespace)
        if extras:
            target.error(f"unrecognized arguments: {' '.join(extras)}")
        check = getattr(namespace, "check_args", None)
        if check is not None:
            try:
                check(namespace)
            except UsageError as exc:
                target.error(str(exc))
        return namespace


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


def step_float(text):
    """Parse a relaxation step in (0, 1] (argparse type)."""
    v = positive_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"expected a step in (0, 1], got {text}")
    return v


def floor_float(text):
    """Parse a density floor in [0, 1) (argparse type)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (np.isfinite(v) and 0 <= v < 1):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return v


def thread_count(text):
    """Parse a thread count in 1..NUMBA_NUM_THREADS (argparse type)."""
    import numba

    top = int(numba.config.NUMBA_NUM_THREADS)
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer in 1..{top}, got {text!r}"
        ) from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {v}")
    if v > top:
        raise argparse.ArgumentTypeError(
            f"expected an integer in 1..{top} (numba's NUMBA_NUM_THREADS on this "
            f"machine), got {v}"
        )
    return v


def add_threads(parser):
    """Add ``--threads N`` (numba threads, 1..NUMBA_NUM_THREADS)."""
    parser.add_argument(
        "--threads",
        type=thread_count,
        default=None,
        metavar="N",
        help="numba threads, 1 to NUMBA_NUM_THREADS (default: NUMBA_NUM_THREADS, "
        "all the cores numba sees)",
    )


def add_common(parser):
    """Options every sub-command has: --threads, --quiet, --debug, --force."""
    add_threads(parser)
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar and no summary"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logging"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite existing outputs"
    )


def add_image_options(p):
    """``--invert``/``--no-invert``, ``--gamma``, ``--floor``: image to density."""
    p.add_argument(
        "--invert",
        dest="invert",
        action="store_true",
        default=True,
        help="dark is dense (default; images only)",
    )
    p.add_argument(
        "--no-invert",
        dest="invert",
        action="store_false",
        help="bright is dense (images only)",
    )
    p.add_argument(
        "--gamma",
        type=positive_float,
        default=1.0,
        metavar="G",
        help="images: density = max(v, F) ** G, with v in [0, 1] the darkness "
        "(brightness with --no-invert) and F the --floor; G > 0, above 1 "
        "concentrates points where v is high (default 1)",
    )
    p.add_argument(
        "--floor",
        type=floor_float,
        default=0.0,
        metavar="F",
        help="images: F in [0, 1), the smallest v before --gamma, so that "
        "empty (white) areas keep some density (default 0)",
    )


def add_progress(parser):
    """Add ``--progress`` / ``--no-progress`` (force the progress bar on or off)."""
    parser.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show the progress bar even when stderr is not a terminal (default: "
        "shown on a terminal, unless --quiet)",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="never show the progress bar",
    )


def add_quadrature(parser, default="fractional"):
    """Add the ``--quadrature`` option of the commands that solve OT problems.

    ``default`` is the text of the help's default (the value stays None: the
    library decides).
    """
    parser.add_argument(
        "--quadrature",
        choices=["fractional", "center"],
        default=None,
        help="pixel quadrature of the cells: 'fractional' splits boundary pixels "
        "exactly (masses continuous in the weights, any tolerance); 'center' "
        f"gives each pixel to the cell of its centre (default: {default})",
    )


def resolved_quadrature(args) -> str:
    """Return the quadrature a run uses: ``--quadrature``, else the default."""
    from .._config import DEFAULT_QUADRATURE

    return args.quadrature if args.quadrature is not None else DEFAULT_QUADRATURE


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
    """Apply --threads (numba.set_num_threads); the parser checked its range."""
    if getattr(args, "threads", None):
        import numba

        numba.set_num_threads(args.threads)


def sidecar_path(output):
    """Name the JSON sidecar of an output: ``points.csv`` -> ``points.csv.json``.

    Named after the whole file name, suffix included, so that outputs of the same
    stem (``a.png`` then ``a.csv``) never share a sidecar.
    """
    return os.fspath(output) + ".json"


#: sub-commands whose outputs form one unit: a run that fails or is interrupted
#: removes the outputs it created (batch keeps finished items so that a rerun resumes;
#: experiment stages its own outputs and moves them into place at the end)
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


def json_sidecar(command, args, params, diagnostics, outputs, t0, *, columns=None):
    """Build the JSON sidecar: inputs, parameters, seed, version, diagnostics.

    ``columns`` (the column names of the point files, see
    :func:`rasterquant.io.points.point_columns`) is recorded when given.
    """
    import numba

    meta = {
        "command": command,
        "rasterquant_version": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": int(numba.get_num_threads()),
        "parameters": params,
        "outputs": [os.fspath(o) for o in outputs],
    }
    if columns is not None:
        meta["columns"] = list(columns)
    meta.update(
        diagnostics=diagnostics,
        seconds=round(time.perf_counter() - t0, 4),
        complete=True,
    )
    return meta
