"""The single ``kernel`` decorator: nothing else in rasterquant compiles code.

It also tells a user what happens while the kernels compile (the first run after
an install: numba writes them to its cache, later runs load them from there).
"""

import contextlib
import time

import numba
from numba.core import event

from ._config import FASTMATH


def kernel(parallel=False, inline=False):
    """Compile a private kernel with the project-wide numba options.

    Parameters
    ----------
    parallel : bool
        Whether the kernel uses ``numba.prange`` over its outermost loop.
    inline : bool
        Inline the kernel into its callers at numba's IR level (``inline="always"``),
        for small helpers of hot loops, where LLVM's own inlining leaves a call.
    """

    def wrap(func):
        return numba.njit(
            cache=True,
            nogil=True,
            parallel=_parallel(parallel),
            fastmath=set(FASTMATH),
            inline="always" if inline else "never",
        )(func)

    return wrap


def _parallel(parallel):
    """Return numba's parallel options: ``prange`` loops only, or False.

    Kernels parallelise their outermost loop with ``prange`` and nothing else
    (STYLE.md), so the passes that look for implicit parallelism (array
    expressions, reductions, fusion...) have nothing to find, but they still cost
    first-run compile time (benchmarks/first_run.py).
    A fresh dict each time: numba consumes it.
    """
    if not parallel:
        return False
    return {
        "prange": True,
        "comprehension": False,
        "numpy": False,
        "reduction": False,
        "setitem": False,
        "stencil": False,
        "fusion": False,
        "inplace_binop": False,
    }


class _CompileNotice(event.Listener):
    """Reports numba compilations: a message at the first, then a counter.

    numba fires ``numba:compile`` only for a real compilation (a signature that is
    neither in memory nor in the on-disk cache), so nothing is shown on a run that
    loads every kernel from the cache.
    """

    def __init__(self, log, bar, first):
        self.log = log
        self.bar = bar
        self.first = first
        self.count = 0
        self.seconds = 0.0
        self._depth = 0
        self._t0 = None
        self._tqdm = None

    def on_start(self, ev):
        self._depth += 1
        if self._depth == 1:
            self._t0 = time.perf_counter()
        if self.count or self._depth > 1:
            return
        if self.first is not None:
            self.first()
            self.first = None
        self.log(
            "compiling numba kernels (first run only: later runs load them from "
            "the cache)..."
        )
        if self.bar:
            from tqdm.auto import tqdm

            self._tqdm = tqdm(desc="compiling kernels", unit=" kernels", leave=False)

    def on_end(self, ev):
        self.count += 1
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._t0
        if self._tqdm is not None:
            self._tqdm.update(1)

    def close(self):
        if self._tqdm is not None:
            self._tqdm.close()
        if self.count:
            self.log(f"compiled {self.count} kernels in {self.seconds:.1f} s")


@contextlib.contextmanager
def compile_notice(log, *, bar=False, first=None):
    """Report numba compilation while the block runs.

    Parameters
    ----------
    log : callable
        Called with one line of text when the first kernel starts to compile, and
        once more at the end with the number of kernels compiled.
    bar : bool
        Also show a tqdm counter of the compiled kernels on stderr.
    first : callable, optional
        Called once, when the first kernel starts to compile (the command line
        starts the compile helper of ``_warmup`` there).

    Yields
    ------
    _CompileNotice
        Its ``count`` is the number of compilations seen so far.
    """
    notice = _CompileNotice(log, bar, first)
    event.register("numba:compile", notice)
    try:
        yield notice
    finally:
        event.unregister("numba:compile", notice)
        notice.close()
