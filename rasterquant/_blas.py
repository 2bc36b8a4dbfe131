"""One BLAS thread while a solver runs.

The Newton solver calls BLAS (vector norms and dots, SuperLU's dense kernels) on
vectors of N entries, between the numba passes that use every core. Above 10,000
entries OpenBLAS splits such calls over its own threads, which then spin beside
numba's: on a 2-core machine the 50,000-point solve of issue 16 spent 17 ms in each
norm of a 50,000-vector, and the rounding of the reductions depended on the number
of BLAS threads. :func:`one_blas_thread` limits every loaded BLAS to one thread for
the duration of a ``with`` block (threadpoolctl), and restores the caller's limits
after it.
"""

from __future__ import annotations

import contextlib
import functools
import threading

__all__ = ["on_one_blas_thread", "one_blas_thread"]

_lock = threading.Lock()
_controller = None
_depth = threading.local()


def _get_controller():
    """Return the threadpoolctl controller of the loaded BLAS libraries (built once)."""
    global _controller
    with _lock:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            # numpy's and scipy's BLAS are loaded by then (scipy.sparse.linalg is
            # imported by rasterquant.ot): finding the libraries costs ~5 ms, once
            _controller = ThreadpoolController()
        return _controller


@contextlib.contextmanager
def one_blas_thread():
    """Run the ``with`` block with one BLAS thread; nested blocks cost nothing."""
    depth = getattr(_depth, "n", 0)
    if depth:
        _depth.n = depth + 1
        try:
            yield
        finally:
            _depth.n = depth
        return
    _depth.n = 1
    try:
        with _get_controller().limit(limits=1, user_api="blas"):
            yield
    finally:
        _depth.n = 0


def on_one_blas_thread(func):
    """Decorate ``func`` to run inside :func:`one_blas_thread`."""

    @functools.wraps(func)
    def wrapped(*args, **kwargs):
        with one_blas_thread():
            return func(*args, **kwargs)

    return wrapped
