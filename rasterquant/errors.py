"""Warning and error classes of rasterquant (see docs/errors.md)."""


class RasterquantWarning(UserWarning):
    """Base class of every warning rasterquant emits."""


class ConvergenceWarning(RasterquantWarning):
    """An iterative solver stopped before it met its tolerance."""


class ResolutionWarning(RasterquantWarning):
    """The raster is too coarse to resolve the requested tolerance."""


class EmptyCellError(ValueError):
    """A cell stayed empty: the result would be meaningless.

    Attributes
    ----------
    weights : ndarray or None
        The last weights tried.
    empty : ndarray or None
        Indices of the empty cells.
    """

    def __init__(self, message, weights=None, empty=None):
        super().__init__(message)
        self.weights = weights
        self.empty = empty


class ConvergenceError(ValueError):
    """A solve missed its tolerance and a number computed from it was asked for.

    Raised by the energy functions (by default) instead of returning an energy from an
    OT solve that did not converge. It is a ``ValueError``, so the command line reports
    it as a one-line user error.

    Attributes
    ----------
    result : OTResult or None
        The failed solve: its best iterate (``weights``, ``masses``) and ``history``.
    max_error : float or None
        Achieved maximum relative mass error.
    tol : float or None
        Requested tolerance.
    n_iter : int or None
        Newton iterations taken.
    status : str or None
        How the solve ended: "max_iter", "stalled" or "resolution".
    """

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result
        self.max_error = getattr(result, "max_error", None)
        self.tol = getattr(result, "tol", None)
        self.n_iter = getattr(result, "n_iter", None)
        self.status = getattr(result, "status", None)


class InsufficientMemoryError(ValueError, MemoryError):
    """A raster x N problem would need more memory than the machine has.

    Raised before anything is allocated. It is a ``ValueError`` (bad input size) and a
    ``MemoryError``, so either ``except`` catches it.

    Attributes
    ----------
    needed : int or None
        Estimated bytes.
    available : int or None
        Bytes available when checked.
    """

    def __init__(self, message, needed=None, available=None):
        super().__init__(message)
        self.needed = needed
        self.available = available
