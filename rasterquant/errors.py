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
