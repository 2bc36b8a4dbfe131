"""The ``rasterquant`` command line: build_parser() and main()."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from .. import __version__

logger = logging.getLogger("rasterquant")

#: sub-command modules, each with add_parser(subparsers)
_COMMANDS = ("quantize", "stipple", "microstructure", "batch", "experiment", "info")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available sub-command."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="rasterquant",
        description="Approximate a raster density (image or volume) by points, fast.",
    )
    parser.add_argument("--version", action="version",
                        version=f"rasterquant {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMANDS:
        try:
            mod = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f"cli.{name}"):
                continue  # command not available in this build
            raise
        mod.add_parser(sub)
    return parser


def _setup_logging(debug, quiet):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("rasterquant")
    root.handlers[:] = [handler]
    root.propagate = False
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    root.setLevel(level)


class Terminated(KeyboardInterrupt):
    """SIGTERM received: unwinds like Ctrl-C (temporary files are removed)."""


#: exit codes: 128 + signal number, as shells report them
_SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


def _raise_terminated(signum, frame):  # pragma: no cover - runs in signal context
    raise Terminated()


def _install_signal_handlers():
    """Make SIGINT raise KeyboardInterrupt and SIGTERM raise Terminated.

    Python installs the SIGINT handler at start-up only when SIGINT is not ignored;
    a launcher that left it at SIG_DFL (embedding, some process managers) would make
    Ctrl-C kill the process without cleanup. An inherited SIG_IGN (``nohup``,
    background jobs) is respected. Returns the previous handlers, for restoring.
    Only possible in the main thread; elsewhere nothing changes.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum, handler in ((signal.SIGINT, signal.default_int_handler),
                            (signal.SIGTERM, _raise_terminated)):
        try:
            current = signal.getsignal(signum)
            if current in (signal.SIG_DFL, None):
                previous[signum] = current
                signal.signal(signum, handler)
        except (ValueError, OSError):  # pragma: no cover - exotic platforms
            pass
    return previous


def _restore_signal_handlers(previous):
    for signum, handler in previous.items():
        try:
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        except (ValueError, OSError):  # pragma: no cover
            pass


def _one_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv=None) -> int:
    """Run the command line; returns the exit code.

    0 on success, 1 on a user error (one line on stderr, no traceback unless
    ``--debug``), 2 on bad arguments, 130 on Ctrl-C (SIGINT), 143 on SIGTERM. On
    an error or an interrupt, outputs that this run created are removed, so a
    failed run leaves nothing behind (the temporary files of the atomic writers
    are removed as the exception unwinds).
    """
    try:
        return _main(argv)
    except KeyboardInterrupt as exc:  # before the sub-command started (or after)
        name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        logger.error("interrupted (%s)", name)
        return _SIGNAL_EXIT[name]


def _main(argv):
    from . import _common

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on bad arguments, 0 for --help
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 2
    debug = getattr(args, "debug", False)
    _setup_logging(debug, getattr(args, "quiet", False))
    command = getattr(args, "command", None)
    previous = _install_signal_handlers()
    _common.begin_run()
    ok = False
    try:
        _common.set_threads(args)
        code = int(args.func(args) or 0)
        ok = code == 0
        return code
    except KeyboardInterrupt as exc:
        name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        logger.error("interrupted (%s); no partial output was left behind", name)
        return _SIGNAL_EXIT[name]
    except (ValueError, OSError, TypeError, MemoryError) as exc:
        if debug:
            raise
        logger.error("error: %s", _one_line(exc))
        return 1
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        if debug:
            raise
        logger.error(
            "internal error: %s: %s (rerun with --debug for the traceback and report "
            "it)", type(exc).__name__, _one_line(exc)
        )
        return 1
    finally:
        removed = _common.end_run(ok, command)
        for path in removed:
            logger.debug("removed incomplete output %s", path)
        _restore_signal_handlers(previous)


def _entry():  # pragma: no cover - console script wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _entry()
