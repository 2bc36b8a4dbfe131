"""The single ``kernel`` decorator: nothing else in rasterquant compiles code."""

import numba

from ._config import FASTMATH


def kernel(parallel=False):
    """Compile a private kernel with the project-wide numba options.

    Parameters
    ----------
    parallel : bool
        Whether the kernel uses ``numba.prange`` over its outermost loop.
    """

    def wrap(func):
        return numba.njit(
            cache=True, nogil=True, parallel=parallel, fastmath=set(FASTMATH)
        )(func)

    return wrap
