"""The ``rasterquant`` command line: build_parser() and main()."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from .. import __version__

logger = logging.getLogger("rasterquant")

#: sub-command modules, each with add_parser(subparsers)
_COMMANDS = ("quantize", "stipple", "microstructure", "batch", "experiment", "info")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available sub-command."""
    import importlib

    from ._common import ArgumentParser

    parser = ArgumentParser(
        prog="rasterquant",
        description="Approximate a raster density (image or volume) by points, fast. "
        "Exit codes: 0 success, 1 a user error found while running (missing file, "
        "unreadable image, too many points...), 2 bad arguments, 130/143 "
        "interrupted; every error is one line on stderr.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"rasterquant {__version__}",
        help="print the version and exit",
    )
    sub = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        parser_class=ArgumentParser,
        help="what to do; 'rasterquant COMMAND --help' lists its options",
    )
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


class _StderrHandler(logging.StreamHandler):
    """One-line messages to the *current* ``sys.stderr`` (pytest's capsys swaps it).

    The class marks the handler as the CLI's own, so setting up twice replaces it
    instead of adding a second one (which would print every line twice).
    """

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; always use stderr
        pass


def _setup_logging(debug, quiet):
    """Send "rasterquant" records to stderr as bare lines; returns the old state.

    Other handlers and propagation are left alone: records still reach handlers of
    the root logger (pytest's caplog, an embedding application's configuration); in
    a plain ``rasterquant`` process the root logger has none, so each message is
    printed once.
    """
    root = logging.getLogger("rasterquant")
    saved = (list(root.handlers), root.level)
    for h in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(h)
    root.addHandler(_StderrHandler())
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    root.setLevel(level)
    return saved


def _restore_logging(saved):
    """Undo :func:`_setup_logging`, so that ``main()`` leaves logging as it found it."""
    if saved is None:
        return
    root = logging.getLogger("rasterquant")
    handlers, level = saved
    root.handlers[:] = handlers
    root.setLevel(level)


class Terminated(KeyboardInterrupt):
    """SIGTERM received: unwinds like Ctrl-C (temporary files are removed)."""


#: exit codes: 128 + signal number, as shells report them
_SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


#: the last signal received during a run (a signal that lands while a compiled kernel
#: runs surfaces as a SystemError without its KeyboardInterrupt attached)
_LAST_SIGNAL = []
#: timers that send a deferred signal again (cancelled when the run ends)
_PENDING = []


def _in_compiler(frame):
    """Tell whether ``frame`` runs inside numba or llvmlite (compiling or loading).

    An exception raised there may land in a callback from C (llvmlite's object cache
    hook), which swallows it and can leave the compiler half-done (a crash at exit).
    """
    marks = (f"{os.sep}numba{os.sep}", f"{os.sep}llvmlite{os.sep}")
    while frame is not None:
        name = frame.f_code.co_filename
        if any(m in name for m in marks):
            return True
        frame = frame.f_back
    return False


def _deliver(signum, frame, exc_type, name):
    _LAST_SIGNAL.append(name)
    if _in_compiler(frame):
        # not now: send the signal again shortly, when the compiler is done
        import threading

        timer = threading.Timer(0.05, os.kill, (os.getpid(), signum))
        timer.daemon = True
        _PENDING.append(timer)
        timer.start()
        return
    raise exc_type()


def _raise_terminated(signum, frame):  # pragma: no cover - runs in signal context
    _deliver(signum, frame, Terminated, "SIGTERM")


def _raise_interrupt(signum, frame):  # pragma: no cover - runs in signal context
    _deliver(signum, frame, KeyboardInterrupt, "SIGINT")


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
    _LAST_SIGNAL.clear()
    for signum, handler in (
        (signal.SIGINT, _raise_interrupt),
        (signal.SIGTERM, _raise_terminated),
    ):
        try:
            current = signal.getsignal(signum)
            if current in (signal.SIG_DFL, None, signal.default_int_handler):
                previous[signum] = current
                signal.signal(signum, handler)
        except (ValueError, OSError):  # pragma: no cover - exotic platforms
            pass
    return previous


def _restore_signal_handlers(previous):
    while _PENDING:
        _PENDING.pop().cancel()
    for signum, handler in previous.items():
        try:
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        except (ValueError, OSError):  # pragma: no cover
            pass


def _stop_helper(helper):
    from .._warmup import stop

    stop(helper)


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
    saved = []
    try:
        return _main(argv, saved)
    except KeyboardInterrupt as exc:  # before the sub-command started (or after)
        name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        logger.error("interrupted (%s)", name)
        return _SIGNAL_EXIT[name]
    finally:
        _restore_logging(saved[0] if saved else None)


def _main(argv, saved):
    from . import _common

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # one line and 2 on bad arguments, 0 for --help
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 2
    debug = getattr(args, "debug", False)
    saved.append(_setup_logging(debug, getattr(args, "quiet", False)))
    command = getattr(args, "command", None)
    previous = _install_signal_handlers()
    _common.begin_run()
    ok = False
    helpers = []
    try:
        _common.set_threads(args)
        from .. import _warmup
        from .._jit import compile_notice

        # the first run after an install compiles the kernels: say so, with a
        # counter, and compile on a second core too (see rasterquant/_warmup.py)
        def warm():
            helpers.append(_warmup.start(command))

        with compile_notice(logger.info, bar=_common.show_progress(args), first=warm):
            code = int(args.func(args) or 0)
        if _LAST_SIGNAL:
            # the signal landed in a callback from C (numba loading a compiled
            # kernel), which swallows exceptions: honour it now; the outputs of
            # this run are removed as for any interrupt
            name = _LAST_SIGNAL[-1]
            logger.error("interrupted (%s); no partial output was left behind", name)
            return _SIGNAL_EXIT[name]
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
    except SystemError as exc:
        # a signal raised inside a compiled kernel surfaces as a SystemError whose
        # cause is the KeyboardInterrupt (or Terminated)
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, KeyboardInterrupt) or _LAST_SIGNAL:
            if isinstance(cause, KeyboardInterrupt):
                name = "SIGTERM" if isinstance(cause, Terminated) else "SIGINT"
            else:
                name = _LAST_SIGNAL[-1]
            logger.error("interrupted (%s); no partial output was left behind", name)
            return _SIGNAL_EXIT[name]
        if debug:
            raise
        logger.error(
            "internal error: SystemError: %s (rerun with --debug for the "
            "traceback and report it)",
            _one_line(exc),
        )
        return 1
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        if debug:
            raise
        logger.error(
            "internal error: %s: %s (rerun with --debug for the traceback and report "
            "it)",
            type(exc).__name__,
            _one_line(exc),
        )
        return 1
    finally:
        for helper in helpers:
            _stop_helper(helper)
        removed = _common.end_run(ok, command)
        for path in removed:
            logger.debug("removed incomplete output %s", path)
        _restore_signal_handlers(previous)


def _entry():  # pragma: no cover - console script wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _entry()
