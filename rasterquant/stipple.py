"""Stippling: approximate an image by N dots (uniform OT Lloyd or weighted Voronoi).

Dot radii. With "uniform" every cell holds ``1/n`` of the ink, so the tone radii
``sqrt(ink_i / pi)`` are all equal where the cap does not bind: the cell area is
``1 / (n rho)`` and the covered fraction is proportional to ``rho``. Where the ink is
dense the dots are closer than twice that radius, and the cap keeps them apart (the
darkest tones then print lighter than they are).

Stray dots. A cell of a Lloyd fixed point can hold ink in separate pieces (two shapes
with white between them): its barycenter, where the dot sits, is then on white, away
from any ink. After the iterations, each such stray dot (on a zero-density pixel,
farther than one pixel and than half its cell's spacing from ink) is moved to the
barycenter of the heaviest connected piece of ink of its cell (or that piece's pixel
nearest to it), and the OT weights are solved again from the last ones (or from scratch
if that fails), so that every cell keeps its mass (``result.n_moved`` counts the moves;
the moved dots are not iterated further).
"""

from __future__ import annotations

import numbers
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _config
from .assign import quadrature_spec
from .density import Density

__all__ = ["StippleResult", "stipple", "stipple_diagnostics", "write_stipple"]

_METHODS = ("uniform", "voronoi")
_INITS = ("stratified", "density", "uniform", "grid", "jittered-grid")
#: smallest automatic OT tolerance, and pixels-per-cell factor of the resolution floor
_AUTO_TOL_MIN = _config.DEFAULT_TOL
_AUTO_TOL_PIXELS = 3.0
#: no computed radius exceeds this fraction of the distance to the nearest dot, so
#: two dots i, j keep r_i + r_j <= 0.9 |y_i - y_j| (a gap of a tenth of their distance)
MAX_RADIUS_FRACTION = 0.45
#: a dot is stray when it sits on white (zero density) farther than this fraction of
#: its cell's spacing (sqrt of its inked pixels) and than one pixel from any ink
_STRAY_SPACING_FRACTION = 0.5


@dataclass(frozen=True)
class StippleResult:
    """Result of :func:`stipple`.

    Attributes
    ----------
    points : (N, 2) ndarray of float64
        Dot centres in pixel units of the (resampled) image, array axis order
        ``(row, col)``: pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``.
    radii : (N,) ndarray of float64
        Dot radii in pixels of the (resampled) image (see ``dot_size`` in
        :func:`stipple` for how they are chosen).
    colors : (N, 3) ndarray of float64 or None
        RGB in [0, 1] of each dot (density-weighted mean colour of its cell) when
        ``color=True``, else None.
    shape : tuple of int
        ``(H, W)`` of the (resampled) image.
    energy : float
        Final quantization energy (F_N for "uniform", G_N for "voronoi").
    history : dict of list
        Per Lloyd iteration, as :attr:`LloydResult.history`.
    max_mass_error : float
        Final ``max_i |m_i - 1/N| N`` of the OT cells ("uniform"); NaN for "voronoi".
    ot_tol : float
        The OT tolerance used (resolved when ``ot_tol=None``).
    pixels_per_cell : float
        Positive pixels per dot.
    n_iter : int
        Lloyd iterations done.
    warnings : tuple of str
        Distinct messages of the warnings raised by the solvers (collected, not
        re-emitted).
    weights : (N,) ndarray of float64 or None
        Power weights of the final cells ("uniform"; zeros for "voronoi"): the cell
        of dot ``i`` is ``{x : |x - y_i|^2 - w_i <= |x - y_j|^2 - w_j}``, as
        :func:`assign_cells` computes it from ``points`` and ``weights``.
    n_moved : int
        Stray dots moved onto ink after the Lloyd iterations (see Notes of
        :func:`stipple`); ``energy``, ``max_mass_error`` and ``weights`` are then
        those of the moved dots (``history`` ends before the move).
    """

    points: np.ndarray
    radii: np.ndarray
    colors: np.ndarray | None
    shape: tuple
    energy: float
    history: dict = field(repr=False)
    max_mass_error: float = float("nan")
    ot_tol: float = _config.DEFAULT_TOL
    pixels_per_cell: float = 0.0
    n_iter: int = 0
    warnings: tuple = ()
    weights: np.ndarray | None = field(default=None, repr=False)
    n_moved: int = 0

    @property
    def n(self) -> int:
        """Number of dots."""
        return int(self.points.shape[0])


# ----------------------------------------------------------------------------- input


def _to_unit(arr):
    from .io.images import _to_unit as to_unit

    return to_unit(np.asarray(arr))


def _split_channels(img, name):
    """(H, W[, C]) in [0, 1] -> luminance (H, W), alpha or None, rgb (H, W, 3)."""
    alpha = None
    if img.ndim == 3:
        ch = img.shape[-1]
        if ch not in (1, 2, 3, 4):
            raise ValueError(
                f"{name} has shape {img.shape}; expected (H, W), (H, W, 3) RGB or "
                "(H, W, 4) RGBA"
            )
        if ch in (2, 4):
            alpha = img[..., -1]
            img = img[..., :-1]
            ch -= 1
        if ch == 3:
            rgb = img
            lum = img @ np.array([0.299, 0.587, 0.114])
        else:
            lum = img[..., 0]
            rgb = np.repeat(lum[..., None], 3, axis=2)
    elif img.ndim == 2:
        lum = img
        rgb = None
    else:
        raise ValueError(
            f"{name} has shape {img.shape}; expected a 2D image (H, W), (H, W, 3) or "
            "(H, W, 4)"
        )
    if lum.size == 0 or min(lum.shape) < 1:
        raise ValueError(f"{name} is empty (shape {img.shape}); expected pixels")
    return np.ascontiguousarray(lum), alpha, rgb


def _load(image, color):
    """Image path or array -> (luminance, alpha, rgb or None, name)."""
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        from .io.images import read_image

        path = os.fsdecode(image)
        lum, alpha = read_image(path)
        rgb = None
        if color:
            import imageio.v3 as iio

            raw = _to_unit(iio.imread(path))
            _, _, rgb = _split_channels(raw, path)
        return lum, alpha, rgb, path
    try:
        arr = np.asarray(image)
    except Exception:
        raise TypeError(
            f"image must be a file path, an array or a Density, got "
            f"{type(image).__name__}"
        ) from None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"image must be a numeric array, got dtype {arr.dtype}")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError("image contains NaN or inf; expected finite pixel values")
    if arr.size and np.issubdtype(arr.dtype, np.floating) and (arr < 0).any():
        raise ValueError(
            f"image has negative values (min {arr.min():.3g}); expected values in "
            "[0, 1] (or integers)"
        )
    lum, alpha, rgb = _split_channels(_to_unit(arr), "image")
    return lum, alpha, rgb, "image"


def _target_shape(shape, scale, resolution):
    h, w = shape
    if scale is not None and resolution is not None:
        raise ValueError("give either scale or resolution, not both")
    if scale is not None:
        if (
            isinstance(scale, bool)
            or not isinstance(scale, numbers.Real)
            or not (np.isfinite(scale) and scale > 0)
        ):
            raise ValueError(f"scale must be a number > 0, got {scale!r}")
        return max(round(h * scale), 1), max(round(w * scale), 1)
    if resolution is not None:
        if isinstance(resolution, numbers.Integral) and not isinstance(
            resolution, bool
        ):
            if resolution < 1:
                raise ValueError(f"resolution must be >= 1, got {resolution}")
            f = resolution / max(h, w)
            return max(round(h * f), 1), max(round(w * f), 1)
        try:
            rh, rw = (int(v) for v in resolution)
        except (TypeError, ValueError):
            raise ValueError(
                "resolution must be an int (pixels on the longer side) or (H, W), "
                f"got {resolution!r}"
            ) from None
        if rh < 1 or rw < 1:
            raise ValueError(f"resolution must be positive, got {resolution!r}")
        return rh, rw
    return h, w


def _resample(channel, shape):
    """Resample a float (H, W) channel with Pillow (box filter down, bicubic up)."""
    from PIL import Image

    h, w = channel.shape
    if (h, w) == tuple(shape):
        return channel
    down = shape[0] <= h and shape[1] <= w
    method = Image.Resampling.BOX if down else Image.Resampling.BICUBIC
    img = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32), mode="F")
    out = np.asarray(img.resize((shape[1], shape[0]), method), dtype=np.float64)
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------- stipple


def stipple(
    image,
    n: int,
    *,
    method: str = "uniform",
    iterations: int = 50,
    seed: int = 0,
    init: str = "stratified",
    invert: bool = True,
    gamma: float = 1.0,
    floor: float = 0.0,
    scale: float | None = None,
    resolution=None,
    dot_size: float | None = None,
    dot_size_range=None,
    color: bool = False,
    ot_tol: float | None = None,
    progress: bool = False,
    callback=None,
    quadrature: str = _config.DEFAULT_QUADRATURE,
) -> StippleResult:
    """Approximate an image by ``n`` dots (stippling).

    Parameters
    ----------
    image : str or os.PathLike or array_like or Density
        An image file (png/jpg/tif/bmp...), or an image array: ``(H, W)`` gray,
        ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, floats in [0, 1] or integers
        scaled by their dtype range. An alpha channel is a mask (transparent pixels
        get no dots). A :class:`Density` is used as it is (no inversion, gamma,
        resampling or colour).
    n : int
        Number of dots, at most the number of positive-density pixels.
    method : {"uniform", "voronoi"}
        "uniform": cells of equal mass (optimal transport, uniform Lloyd);
        "voronoi": classic weighted-Voronoi stippling (Lloyd on Voronoi cells).
    iterations : int
        Lloyd iterations (>= 0).
    seed : int
        Seed of the initial points.
    init : {"stratified", "density", "uniform", "grid", "jittered-grid"}
        Initial points, see :func:`sample_points` (the grids need a square ``n``).
    invert : bool
        Dark is dense (default); False makes bright dense.
    gamma, floor : float
        Density ``max(v, floor) ** gamma`` with ``v = 1 - luminance`` (inverted).
    scale : float, optional
        Resample the image by this factor first (Pillow: box filter down, bicubic
        up).
    resolution : int or (int, int), optional
        Resample to this size first: the longer side in pixels, or ``(H, W)``.
    dot_size : float, optional
        Constant dot radius in pixels (of the resampled image), used as given (dots
        may then overlap). Default: each dot's radius reproduces the tone of its own
        cell, ``r_i = sqrt(ink_i / pi)`` with ``ink_i`` the summed darkness ``v`` of
        the cell's pixels (a dot covers the cell's fraction of ink), capped at
        ``0.45 d_i``, ``d_i`` the distance to the nearest other dot: neighbouring
        dots never overlap (``r_i + r_j <= 0.9 |y_i - y_j|``), so dark areas show
        separate dots rather than solid black.
    dot_size_range : (float, float), optional
        ``(min, max)`` radii, linear in tone: ``r_i = min + (max - min) v_i``, with
        ``v_i`` in [0, 1] the mean darkness of the inked (positive-density) pixels of
        the dot's cell (white areas a cell reaches into do not count), capped at
        ``0.45 d_i`` as above (the cap may take a radius below ``min`` where dots are
        closer than ``min / 0.45``). Overrides ``dot_size``.
    color : bool
        Give each dot the density-weighted mean RGB colour of its cell.
    ot_tol : float, optional
        Relative mass tolerance of each OT solve ("uniform"). Default: 0.01 with the
        (default) fractional quadrature, ``max(0.02, 3 / pixels_per_cell)`` with
        centre quadrature, which moves masses in whole pixels.
    progress : bool
        tqdm bar over the iterations (energy and mass error).
    callback : callable, optional
        Passed to :func:`lloyd`, called with a dict after each iteration.
    quadrature : {"fractional", "center"}
        Pixel quadrature of the cells (see :func:`solve_ot`); None means the
        default, fractional.

    Returns
    -------
    StippleResult

    Raises
    ------
    ValueError
        On unreadable or empty images, a zero density, ``n`` larger than the
        positive pixels, or options out of range.
    TypeError
        If ``image`` is not a path, array or Density.

    Warns
    -----
    Nothing: the solvers' warnings (ResolutionWarning, ConvergenceWarning) are
    collected in ``result.warnings`` (one entry per distinct message).

    See Also
    --------
    lloyd, sample_points, rasterquant.io.render.write_svg

    Notes
    -----
    Dot radii with "uniform", and stray dots (on white between pieces of their cell's
    ink, moved onto the ink after the iterations): see the module docstring.

    Each iteration costs one warm-started OT solve (a few sweeps and sparse solves)
    for "uniform", one sweep and a moment pass for "voronoi"; the radii and colours
    one more assignment pass and a k-d tree of the dots.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.linspace(0.0, 1.0, 32 * 32).reshape(32, 32)
    >>> res = stipple(img, 20, method="voronoi", iterations=5)
    >>> res.points.shape, res.radii.shape, res.shape
    ((20, 2), (20,), (32, 32))
    """
    n, iterations, radius_range = _check_options(
        n, method, init, iterations, dot_size, dot_size_range
    )
    # --- density (and darkness in [0, 1], colours) on the resampled raster
    density, darkness, rgb = _prepare(
        image, color, scale, resolution, invert, gamma, floor
    )
    ppc, ot_tol = _tolerance(density, n, ot_tol, quadrature)
    # --- Lloyd, with the solvers' warnings collected; then stray dots onto ink
    res, points, weights, cells, energy, err, stray, messages = _run(
        density, n, init, seed, method, iterations, ot_tol, quadrature, callback,
        progress,
    )  # fmt: skip
    # --- dots: radii from the cells' ink (capped by the spacing), colours
    radii, colors = _dots(
        density, points, cells.labels.ravel(), darkness, rgb, radius_range, dot_size
    )
    return StippleResult(
        points=points,
        radii=radii,
        colors=colors,
        shape=tuple(int(s) for s in density.shape),
        energy=float(energy),
        history=res.history,
        max_mass_error=float(err),
        ot_tol=float(ot_tol),
        pixels_per_cell=float(ppc),
        n_iter=int(res.n_iter),
        warnings=messages,
        weights=np.array(weights),
        n_moved=int(stray.size),
    )


def _check_options(n, method, init, iterations, dot_size, dot_size_range):
    """Validate the options of :func:`stipple`.

    Returns ``(n, iterations, radius range or None)``; raises TypeError or
    ValueError naming the option otherwise.
    """
    from ._validation import check_positive_int

    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an integer number of dots, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if init not in _INITS:
        raise ValueError(f"init must be one of {_INITS}, got {init!r}")
    iterations = check_positive_int(iterations, "iterations", minimum=0)
    return int(n), iterations, _check_dot_options(dot_size, dot_size_range)


def _tolerance(density, n, ot_tol, quadrature):
    """Pixels per dot and the OT tolerance (``ot_tol``, or its default).

    Raises ValueError when there are more dots than positive-density pixels.
    """
    n_pos = density.n_positive()
    if n > n_pos:
        raise ValueError(
            f"n = {n} dots but the image has only {n_pos} positive-density pixels; "
            "expected n <= positive pixels (use fewer dots or a larger resolution)"
        )
    ppc = n_pos / n
    if ot_tol is None:
        if quadrature_spec(quadrature).continuous:
            ot_tol = 0.01
        else:
            ot_tol = min(max(_AUTO_TOL_MIN, _AUTO_TOL_PIXELS / ppc), 0.5)
    return ppc, ot_tol


def _run(
    density, n, init, seed, method, iterations, ot_tol, quadrature, callback, progress
):
    """Lloyd from sampled dots, then stray dots onto ink.

    Returns ``(lloyd result, points, weights, cells, energy, max_mass_error, indices
    of the moved dots, messages of the warnings caught)``.
    """
    from .lloyd import lloyd
    from .sampling import sample_points

    start = sample_points(density, n, method=init, seed=seed)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = lloyd(
            density,
            start,
            method=method,
            n_iter=iterations,
            ot_tol=ot_tol,
            callback=callback,
            progress=progress,
            quadrature=quadrature,
        )
    caught = list(rec)
    points, weights = res.points, res.weights
    energy, err = float(res.energy), res.history["max_mass_error"][-1]
    cells = _cells(density, points, weights)
    stray = np.zeros(0, np.int64)
    if iterations > 0:
        stray = _stray_dots(density, points, cells.labels)
    if stray.size:
        points, weights, stray = _onto_ink(
            density, points, weights, cells.labels, stray
        )
    if stray.size:
        cells, weights, energy, err = _resolve(
            density, points, weights, method, ot_tol, quadrature, caught
        )
    messages = tuple(dict.fromkeys(str(w.message) for w in caught))
    return res, points, weights, cells, energy, err, stray, messages


def _prepare(image, color, scale, resolution, invert, gamma, floor):
    """Density, darkness in [0, 1] and colours (or None) on the resampled raster."""
    if isinstance(image, Density):
        if image.ndim != 2:
            raise ValueError(f"stipple needs a 2D density, got shape {image.shape}")
        if color:
            raise ValueError("color=True needs an image, not a Density")
        density = image
        darkness = image.values / image.values.max()
        rgb = None
    else:
        lum, alpha, rgb, name = _load(image, color)
        shape = _target_shape(lum.shape, scale, resolution)
        lum = _resample(lum, shape)
        if alpha is not None:
            alpha = _resample(alpha, shape)
            alpha = np.where(alpha < 0.5 / 255, 0.0, alpha)
        if rgb is not None:
            rgb = np.stack([_resample(rgb[..., c], shape) for c in range(3)], axis=-1)
        elif color:
            rgb = np.repeat(lum[..., None], 3, axis=2)
        density = Density.from_luminance(
            lum, alpha, invert=invert, gamma=gamma, floor=floor, name=name
        )
        v = 1.0 - lum if invert else lum
        darkness = np.maximum(v, floor) ** gamma
        if alpha is not None:
            darkness = darkness * (alpha > 0)
    return density, darkness, rgb


def _dots(density, points, labels, darkness, rgb, radius_range, dot_size):
    """Radii from the cells' ink (capped by the spacing), and colours (or None)."""
    n = len(points)
    if radius_range is not None or dot_size is None:
        radii = _tone_radii(density, points, labels, darkness, radius_range)
    else:
        radii = np.full(n, float(dot_size))
    colors = None
    if rgb is not None:
        area = np.bincount(labels, minlength=n).astype(np.float64)
        w = density.values.ravel()
        wsum = np.bincount(labels, weights=w, minlength=n)
        colors = np.empty((n, 3))
        for c in range(3):
            ch = rgb[..., c].ravel()
            num = np.bincount(labels, weights=w * ch, minlength=n)
            plain = np.bincount(labels, weights=ch, minlength=n)
            colors[:, c] = np.where(
                wsum > 0,
                num / np.where(wsum > 0, wsum, 1.0),
                plain / np.maximum(area, 1.0),
            )
        colors = np.clip(colors, 0.0, 1.0)
    return radii, colors


def _cells(density, points, weights, quadrature=_config.DEFAULT_QUADRATURE):
    """Assign the dots' cells (centre labels), warnings silenced."""
    from .assign.cells import assign_cells

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return assign_cells(density, points, weights, quadrature=quadrature)


def _resolve(density, points, weights, method, ot_tol, quadrature, caught):
    """Cells of moved dots: for "uniform" the OT weights solved again.

    From ``weights`` first, else (that solve not converged) from scratch; the better
    of the two is kept. Returns ``(cells, weights, energy, max_mass_error)``;
    warnings go to ``caught``.
    """
    from .ot.newton import solve_ot

    if method != "uniform":
        cells = _cells(density, points, None, quadrature)
        return cells, np.zeros(len(points)), float(cells.energy), float("nan")
    best, rec_best = None, []
    for start in (weights, None):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            res = solve_ot(
                density, points, weights=start, tol=ot_tol, quadrature=quadrature
            )
        if best is None or res.max_error < best.max_error:
            best, rec_best = res, rec
        if best.converged:
            break
    caught += rec_best
    return best.cells, best.weights, float(best.energy), float(best.max_error)


def _pixel_of(density, points):
    """(N, 2) int64 pixel indices of points (physical units) in ``density``."""
    idx = np.floor(density.grid.to_index(points)).astype(np.int64)
    return np.clip(idx, 0, np.array(density.shape) - 1)


def _stray_dots(density, points, labels):
    """Find the dots on white, far from ink (their indices).

    A dot is stray when its pixel has zero density and the nearest positive pixel
    is farther than one pixel and than ``_STRAY_SPACING_FRACTION`` of the cell's
    spacing ``sqrt(inked pixels of its cell)`` (index units).
    """
    from scipy import ndimage

    positive = density.values > 0
    if positive.all():
        return np.zeros(0, np.int64)
    dist = ndimage.distance_transform_edt(~positive)
    ij = _pixel_of(density, points)
    d = dist[ij[:, 0], ij[:, 1]]
    inked = np.bincount(labels[positive].ravel(), minlength=len(points))
    far = d > np.maximum(1.0, _STRAY_SPACING_FRACTION * np.sqrt(inked))
    return np.flatnonzero(far)


def _onto_ink(density, points, weights, labels, stray):
    """Move each stray dot onto the heaviest connected piece of ink of its cell.

    The new place is the piece's density barycenter, or the piece's pixel centre
    nearest to it when the barycenter falls outside the piece. A moved dot takes the
    weight of the dot nearest to its new place (a cell of the local size: the next
    OT solve starts close). Returns copies ``(points, weights)`` and the indices of
    the dots moved.
    """
    from scipy import ndimage
    from scipy.spatial import cKDTree

    rho = density.values
    grid = density.grid
    out = np.array(points, dtype=np.float64)
    taken = {tuple(p) for p in out.tolist()}
    moved = []
    for i in stray.tolist():
        rows, cols = np.nonzero(labels == i)
        if rows.size == 0:
            continue
        r0, c0 = rows.min(), cols.min()
        window = (slice(r0, rows.max() + 1), slice(c0, cols.max() + 1))
        ink = (labels[window] == i) & (rho[window] > 0)
        pieces, count = ndimage.label(ink, structure=np.ones((3, 3)))
        if count == 0:
            continue
        mass = ndimage.sum_labels(rho[window], pieces, index=np.arange(1, count + 1))
        best = int(np.argmax(mass)) + 1
        pr, pc = np.nonzero(pieces == best)
        w = rho[window][pr, pc]
        bary = np.array([np.dot(w, pr + 0.5), np.dot(w, pc + 0.5)]) / w.sum()
        k = int(np.floor(bary[0])), int(np.floor(bary[1]))
        inside = 0 <= k[0] < ink.shape[0] and 0 <= k[1] < ink.shape[1]
        if not (inside and pieces[k] == best):
            j = int(np.argmin((pr + 0.5 - bary[0]) ** 2 + (pc + 0.5 - bary[1]) ** 2))
            bary = np.array([pr[j] + 0.5, pc[j] + 0.5])
        new = grid.to_physical(bary + np.array([r0, c0]))
        if tuple(new.tolist()) in taken:  # another dot sits exactly there
            continue
        taken.add(tuple(new.tolist()))
        out[i] = new
        moved.append(i)
    moved = np.array(moved, dtype=np.int64)
    psi = np.array(weights, dtype=np.float64)
    if moved.size and len(out) > 1:
        _, near = cKDTree(out).query(out[moved], k=2)
        psi[moved] = psi[near[:, 1]]
    return out, psi, moved


def _tone_radii(density, points, labels, darkness, radius_range):
    """Dot radii from the ink of each cell, capped by the nearest-dot distance.

    ``radius_range`` None: ``sqrt(ink_i / pi)``; ``(lo, hi)``: ``lo + (hi - lo) v_i``
    with ``v_i`` the mean darkness of the cell's positive pixels. Both capped at
    ``MAX_RADIUS_FRACTION`` times the distance to the nearest other dot (index units
    of the raster).
    """
    from scipy.spatial import cKDTree

    n = len(points)
    dark = darkness.ravel()
    ink = np.bincount(labels, weights=dark, minlength=n)
    if radius_range is None:
        radii = np.sqrt(ink / np.pi)
    else:
        inked = density.values.ravel() > 0
        count = np.bincount(labels[inked], minlength=n)
        tone = np.bincount(labels[inked], weights=dark[inked], minlength=n)
        v = np.clip(tone / np.maximum(count, 1), 0.0, 1.0)
        lo, hi = radius_range
        radii = lo + (hi - lo) * v
    if n > 1:
        idx = density.grid.to_index(points)
        dist, _ = cKDTree(idx).query(idx, k=2)
        radii = np.minimum(radii, MAX_RADIUS_FRACTION * dist[:, 1])
    return radii


def _check_dot_options(dot_size, dot_size_range):
    def real(v, name):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
        return float(v)

    if dot_size is not None and real(dot_size, "dot_size") <= 0:
        raise ValueError(f"dot_size must be a radius > 0 in pixels, got {dot_size!r}")
    if dot_size_range is None:
        return None
    try:
        lo, hi = dot_size_range
    except (TypeError, ValueError):
        raise ValueError(
            f"dot_size_range must be (min, max) radii, got {dot_size_range!r}"
        ) from None
    lo, hi = real(lo, "dot_size_range[0]"), real(hi, "dot_size_range[1]")
    if not 0 <= lo <= hi or hi <= 0:
        raise ValueError(
            f"dot_size_range must be (min, max) with 0 <= min <= max, max > 0, got "
            f"{dot_size_range!r}"
        )
    return lo, hi


#: output suffixes understood by :func:`write_stipple`
OUTPUT_SUFFIXES = (".svg", ".png", ".pdf", ".csv", ".npy")


def write_stipple(path, result, *, render_scale=1.0, background="white") -> None:
    """Write a :class:`StippleResult` to a file chosen by its suffix (atomically).

    Parameters
    ----------
    path : str or os.PathLike
        ``.svg`` (circles, viewBox in pixel units), ``.png`` (anti-aliased dots at
        ``render_scale``), ``.pdf`` (the PNG rendering as a one-page PDF), ``.csv``
        or ``.npy`` (x, y, radius and r, g, b when the result has colours; ``.npy``
        keeps the array axis order, see :func:`write_points`).
    result : StippleResult
    render_scale : float
        Output pixels per image pixel for PNG/PDF.
    background : str
        Background colour of SVG/PNG/PDF.

    Raises
    ------
    ValueError
        On an unsupported suffix or an unwritable directory.
    """
    from .io.points import write_points
    from .io.render import render_png, write_pdf, write_png, write_svg

    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(
            f"output {os.fspath(path)!r} has an unsupported suffix {suffix!r}; "
            f"expected one of {', '.join(OUTPUT_SUFFIXES)}"
        )
    if suffix == ".svg":
        write_svg(
            path,
            result.points,
            result.radii,
            result.shape,
            colors=result.colors,
            background=background,
        )
    elif suffix in (".png", ".pdf"):
        img = render_png(
            result.points,
            result.radii,
            result.shape,
            scale=render_scale,
            colors=result.colors,
            background=background,
        )
        if suffix == ".png":
            write_png(path, img)
        else:
            write_pdf(path, img, dpi=72.0 * render_scale)
    else:
        columns = {"radius": result.radii}
        if result.colors is not None:
            columns.update(
                r=result.colors[:, 0], g=result.colors[:, 1], b=result.colors[:, 2]
            )
        write_points(path, result.points, **columns)


def stipple_diagnostics(result) -> dict:
    """JSON-ready diagnostics of a :class:`StippleResult` (for sidecars)."""
    err = result.max_mass_error
    return {
        "n": result.n,
        "shape": list(result.shape),
        "energy": result.energy,
        "iterations": result.n_iter,
        "max_mass_error": None if err != err else err,
        "ot_tol": result.ot_tol,
        "mass_tol_met": None if err != err else bool(err <= result.ot_tol),
        "pixels_per_cell": result.pixels_per_cell,
        "radius_min": float(result.radii.min()),
        "radius_max": float(result.radii.max()),
        "stray_dots_moved": result.n_moved,
        "warnings": list(result.warnings),
        "energy_history": result.history["energy"],
    }
