"""Warning and error classes of rasterquant."""


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
