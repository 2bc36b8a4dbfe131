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
    """The argument parser with every available sub-command."""
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
    root.setLevel(logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO))


def main(argv=None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 user error, 2 usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on bad arguments, 0 for --help
        return int(exc.code) if exc.code is not None else 0
    debug = getattr(args, "debug", False)
    _setup_logging(debug, getattr(args, "quiet", False))
    from ._common import set_threads

    try:
        set_threads(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        logger.error("interrupted; no partial output was left behind")
        return 130
    except (ValueError, OSError, TypeError, MemoryError) as exc:
        if debug:
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        logger.error("error: %s", msg)
        return 1


def _entry():  # pragma: no cover - console script wrapper
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _entry()
