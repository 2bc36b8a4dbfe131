"""``rasterquant info``: versions, numba threading layer and thread count."""

from __future__ import annotations

import platform
import sys

from ._common import add_threads


def add_parser(sub):
    """Register the sub-command."""
    p = sub.add_parser(
        "info",
        help="print versions, numba threading layer and threads",
        description="Print the versions of rasterquant and its dependencies, the "
        "numba threading layer and the thread count (to stdout).",
    )
    p.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logging"
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="accepted like in the other commands; the report is printed anyway",
    )
    add_threads(p)
    p.set_defaults(func=run)
    return p


def _version(mod):
    try:
        m = __import__(mod)
        return getattr(m, "__version__", "installed")
    except ImportError:
        return "not installed"


def run(args):
    """Print the environment; returns 0."""
    import numba
    import numpy as np

    from .. import __version__
    from ..assign.cells import assign_cells

    # run one tiny kernel so that the threading layer is chosen
    assign_cells(np.ones((8, 8)), [[2.0, 2.0], [6.0, 6.0]])
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialised"
    lines = [
        f"rasterquant {__version__}",
        f"python {platform.python_version()} ({sys.executable})",
        f"platform {platform.platform()}",
        f"numpy {np.__version__}",
        f"scipy {_version('scipy')}",
        f"numba {numba.__version__}",
        f"numba threading layer {layer}",
        f"numba threads {numba.get_num_threads()} "
        f"(max {numba.config.NUMBA_NUM_THREADS})",
        f"imageio {_version('imageio')}",
        f"tqdm {_version('tqdm')}",
        f"matplotlib {_version('matplotlib')}",
        f"dask {_version('dask')}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
