"""Colour separations: stipple an image as one layer of dots per ink.

The image is split into per-ink *coverages* ``a_k(x)`` in [0, 1] (the fraction of
pixel ``x`` that ink ``k`` covers), each layer is stippled on its own (uniform OT
Lloyd by default) with a number of dots proportional to its total ink, and each
dot's radius is chosen so that the layer's printed coverage reproduces ``a_k``.

Ink sets (``layers``)
---------------------
``"cmyk"``
    Cyan, magenta, yellow, black on white paper, inks multiplying (subtractive
    mixing): ``K = 1 - max(R, G, B)``, ``C = (1 - R - K) / (1 - K)``,
    ``M = (1 - G - K) / (1 - K)``, ``Y = (1 - B - K) / (1 - K)`` (0 where
    ``K = 1``). With ideal inks this is exact: the reflectance in red is
    ``(1 - C)(1 - K) = R``, and likewise for green and blue.
``"rgb"``
    Red, green and blue inks on **black** paper, inks adding light (screen
    blend, ``1 - (1 - x)(1 - y)``): the coverage of each ink is its channel. This
    is the light-on-dark print (gel or paint pens on black card); each channel
    sees one ink only, so it is exact too.
``"k"``
    Black only, on white: ``K = 1 - L`` with ``L = 0.299 R + 0.587 G + 0.114 B``
    (the luminance :func:`rasterquant.stipple` uses).
a palette
    A list of ``(name, rgb)`` inks (rgb three floats in [0, 1] or ``"#rrggbb"``),
    or a palette file (see :func:`read_palette`), printed on white paper and
    multiplying. Each pixel's colour ``t`` is decomposed into coverages ``a`` in
    ``[0, 1]^K`` minimising ``|prod_k (1 - a_k (1 - q_k)) - t|^2 + 1e-5 sum_k a_k``
    (``q_k`` the ink's colour; the small ink penalty picks the decomposition with
    the least ink when inks are redundant) by projected Levenberg-Marquardt: 60
    steps on a 17^3 lattice of the RGB cube, interpolated (trilinear) to each
    distinct colour of the image quantised to 7 bits per channel, then 12
    polishing steps per distinct colour. Colours outside the inks' gamut get the
    nearest reproducible colour.

Layers do not land on one another: layer ``k`` is stippled from seed
``seed + k``, so layers with the same density (a pure blue gives equal cyan and
magenta) start from, and converge to, different point sets; the expected
composite is then the product of the layers' coverages, which is what the
separation assumes. The few dots of a later layer that still land within
``KEEP_APART`` (0.5 px) of an earlier layer's dot (about 3 % on a photo) are moved
out to that distance (the offsets between layers, :func:`_keep_apart`).
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from .density import Density

__all__ = [
    "INK_SETS",
    "LayeredStipple",
    "StippleLayer",
    "coincident_fraction",
    "layer_output_paths",
    "layered_diagnostics",
    "read_palette",
    "render_composite",
    "resolve_inks",
    "separate_inks",
    "stipple_layers",
    "tone_error",
    "write_layers",
]

#: the named ink sets: name -> ((ink name, (r, g, b)), ...), paper, blend
INK_SETS = {
    "cmyk": (
        (
            ("cyan", (0.0, 1.0, 1.0)),
            ("magenta", (1.0, 0.0, 1.0)),
            ("yellow", (1.0, 1.0, 0.0)),
            ("black", (0.0, 0.0, 0.0)),
        ),
        (1.0, 1.0, 1.0),
        "multiply",
    ),
    "rgb": (
        (
            ("red", (1.0, 0.0, 0.0)),
            ("green", (0.0, 1.0, 0.0)),
            ("blue", (0.0, 0.0, 1.0)),
        ),
        (0.0, 0.0, 0.0),
        "screen",
    ),
    "k": ((("black", (0.0, 0.0, 0.0)),), (1.0, 1.0, 1.0), "multiply"),
}
_ORDERS = ("none", "nearest", "tsp")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_HEX_RE = re.compile(r"^#[0-9A-Fa-f]{6}$")
_LUMA = np.array([0.299, 0.587, 0.114])
#: bits per channel of the colour table of palette separations
_PALETTE_BITS = 7
#: ink penalty of palette separations (prefers the least ink among equal fits)
_PALETTE_INK_PENALTY = 1e-5
_PALETTE_ITERATIONS = 60
#: lattice points per axis of the palette fit's colour table, polishing steps
_LUT_LEVELS = 17
_PALETTE_POLISH = 12
_MAX_INKS = 16
#: coverages below this are no ink (floating-point rounding of white)
_COVERAGE_ZERO = 1e-9
#: relative tolerance and secant steps of the layer coverage match
_COVERAGE_RTOL = 2e-3
_COVERAGE_STEPS = 4
#: stipple options accepted by :func:`stipple_layers`
_PASSED = ("method", "init", "ot_tol", "quadrature")
_OWN = ("gamma", "floor", "scale", "resolution", "dot_size", "dot_size_range")
#: output suffixes of :func:`write_layers`
LAYER_OUTPUT_SUFFIXES = (".svg", ".png", ".pdf", ".csv", ".npy", ".gcode")
_PER_LAYER_SUFFIXES = (".csv", ".npy", ".gcode")


@dataclass(frozen=True)
class StippleLayer:
    """One ink of a :class:`LayeredStipple`.

    Attributes
    ----------
    name : str
        Ink name (``"cyan"``..., or the palette's name).
    ink : tuple of float
        Ink colour ``(r, g, b)`` in [0, 1].
    points : (n, 2) ndarray of float64
        Dot centres, ``(row, col)`` pixel units of the (resampled) image, in the
        order the stippler returned them (see ``order``).
    radii : (n,) ndarray of float64
        Dot radii in pixels; the dots reproduce the layer's coverage (see
        :func:`stipple_layers`).
    order : (n,) ndarray of int64
        Drawing order, a permutation of ``range(n)`` (the identity for
        ``order="none"``): ``points[order]`` is the pen path.
    ink_mass : float
        Total coverage of the layer, in pixels (sum of ``a_k`` over the image).
    max_mass_error : float
        Achieved maximum relative mass error of the final OT cells (NaN for
        "voronoi" or an empty layer).
    ot_tol : float
        Requested OT tolerance (NaN for an empty layer).
    tour_length : float
        Length in pixels of the open path ``points[order]``.
    nearest_length : float
        Length of the greedy nearest-neighbour path (from :func:`order_dots`;
        NaN for ``order="none"``).
    n_iter : int
        Lloyd iterations done.
    energy : float
        Final quantization energy of the layer (NaN for an empty layer).
    weights : (n,) ndarray of float64
        Power weights of the final cells (zeros for "voronoi").
    warnings : tuple of str
        The solvers' warnings for this layer.
    """

    name: str
    ink: tuple
    points: np.ndarray
    radii: np.ndarray
    order: np.ndarray
    ink_mass: float
    max_mass_error: float
    ot_tol: float
    tour_length: float
    nearest_length: float
    n_iter: int
    energy: float
    weights: np.ndarray = field(repr=False)
    warnings: tuple = ()

    @property
    def n(self) -> int:
        """Number of dots of the layer."""
        return int(self.points.shape[0])


@dataclass(frozen=True)
class LayeredStipple:
    """Result of :func:`stipple_layers`.

    Attributes
    ----------
    layers : tuple of StippleLayer
        One per ink, in the order of the ink set.
    shape : tuple of int
        ``(H, W)`` of the (resampled) image.
    mode : str
        ``"cmyk"``, ``"rgb"``, ``"k"`` or ``"palette"``.
    paper : tuple of float
        Paper colour ``(r, g, b)``: white, black for ``"rgb"``.
    blend : str
        ``"multiply"`` (inks on white) or ``"screen"`` (inks adding light).
    image_tone : (3,) ndarray of float64
        Mean RGB of the (resampled) image the layers reproduce.
    order_method : str
        ``"none"``, ``"nearest"`` or ``"tsp"``.
    """

    layers: tuple
    shape: tuple
    mode: str
    paper: tuple
    blend: str
    image_tone: np.ndarray = field(repr=False)
    order_method: str = "none"

    @property
    def n(self) -> int:
        """Total number of dots."""
        return sum(layer.n for layer in self.layers)

    @property
    def counts(self) -> dict:
        """Dots per ink, ``{name: n}``."""
        return {layer.name: layer.n for layer in self.layers}

    @property
    def names(self) -> tuple:
        """Ink names in layer order."""
        return tuple(layer.name for layer in self.layers)


# ----------------------------------------------------------------------------- inks


def _parse_hex(text):
    return tuple(int(text[i : i + 2], 16) / 255.0 for i in (1, 3, 5))


def read_palette(path) -> list:
    """Read a palette file: one ink per line, ``name #rrggbb``.

    Blank lines and lines starting with ``#`` followed by anything other than a
    colour (``# my inks``) are comments, as is anything after the colour that
    starts with ``#``::

        # Pilot G-2 set
        teal   #008080
        orange #ff8000   # fades in sunlight
        black  #000000

    Names are letters, digits, ``_`` and ``-``, starting with a letter (they name
    SVG groups and files), distinct ignoring case; at most 16 inks; white
    (``#ffffff``) is not an ink.

    Parameters
    ----------
    path : str or os.PathLike
        The palette file (UTF-8 text).

    Returns
    -------
    list of (str, tuple of float)
        ``(name, (r, g, b))`` with r, g, b in [0, 1].

    Raises
    ------
    ValueError
        If the file cannot be read or a line is not ``name #rrggbb``; the message
        names the file and the line.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ValueError(
            f"palette file {path!r} cannot be read ({reason}); expected a text file "
            "with one 'name #rrggbb' per line"
        ) from None
    inks = []
    for lineno, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if len(tokens) < 2 or not (tokens[2:] == [] or tokens[2].startswith("#")):
            raise ValueError(
                f"palette file {path!r} line {lineno} is {line.strip()[:60]!r}; "
                "expected 'name #rrggbb' (and an optional '# comment')"
            )
        name, colour = tokens[0], tokens[1]
        if not _HEX_RE.match(colour):
            raise ValueError(
                f"palette file {path!r} line {lineno}: colour {colour!r} of "
                f"{name!r}; expected '#rrggbb' (six hex digits)"
            )
        inks.append((name, _parse_hex(colour)))
    if not inks:
        raise ValueError(
            f"palette file {path!r} has no inks; expected lines 'name #rrggbb'"
        )
    return _check_inks(inks, f"palette file {path!r}")


def _check_inks(inks, what="layers"):
    """Validate a list of (name, colour); colours as floats in [0, 1]."""
    out, seen = [], set()
    for item in inks:
        try:
            name, colour = item
        except (TypeError, ValueError):
            raise ValueError(
                f"{what}: ink {item!r} is not a (name, rgb) pair; expected e.g. "
                "('teal', '#008080') or ('teal', (0, 0.5, 0.5))"
            ) from None
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"{what}: ink name {name!r} is not valid; expected letters, digits, "
                "'_' and '-', starting with a letter"
            )
        if name.lower() in seen:
            raise ValueError(f"{what}: ink name {name!r} is given twice")
        seen.add(name.lower())
        if isinstance(colour, str):
            if not _HEX_RE.match(colour):
                raise ValueError(
                    f"{what}: colour {colour!r} of ink {name!r}; expected '#rrggbb'"
                )
            rgb = _parse_hex(colour)
        else:
            c = np.asarray(colour, dtype=np.float64) if _numeric(colour) else None
            if c is None or c.shape != (3,) or not np.isfinite(c).all():
                raise ValueError(
                    f"{what}: colour {colour!r} of ink {name!r}; expected '#rrggbb' "
                    "or three numbers in [0, 1]"
                )
            if (c < 0).any() or (c > 1).any():
                raise ValueError(
                    f"{what}: colour {colour!r} of ink {name!r} is outside [0, 1]; "
                    "expected three numbers in [0, 1]"
                )
            rgb = tuple(float(v) for v in c)
        if min(rgb) >= 1.0:
            raise ValueError(
                f"{what}: ink {name!r} is white ({colour!r}); white ink on white "
                "paper prints nothing"
            )
        out.append((name, rgb))
    if not out:
        raise ValueError(f"{what}: no inks; expected at least one (name, rgb)")
    if len(out) > _MAX_INKS:
        raise ValueError(f"{what}: {len(out)} inks; expected at most {_MAX_INKS}")
    return out


def _numeric(value):
    try:
        arr = np.asarray(value)
    except Exception:
        return False
    return np.issubdtype(arr.dtype, np.number) and arr.dtype != bool


def resolve_inks(layers):
    """Return ``(mode, inks, paper, blend)`` for a ``layers`` argument.

    Parameters
    ----------
    layers : str or os.PathLike or sequence of (str, rgb)
        ``"cmyk"``, ``"rgb"``, ``"k"`` (any case), a palette file or a list of
        inks.

    Returns
    -------
    tuple
        ``mode`` ("cmyk", "rgb", "k" or "palette"), ``inks`` (list of
        ``(name, (r, g, b))``), ``paper`` ``(r, g, b)``, ``blend``.

    Raises
    ------
    ValueError
        On an unknown name, an unreadable palette file or bad inks.
    """
    if isinstance(layers, str) and layers.lower() in INK_SETS:
        inks, paper, blend = INK_SETS[layers.lower()]
        return layers.lower(), [(n, tuple(c)) for n, c in inks], paper, blend
    if isinstance(layers, (str, os.PathLike)):
        path = os.fspath(layers)
        if not os.path.isfile(path):
            raise ValueError(
                f"layers must be 'cmyk', 'rgb', 'k', a palette file or a list of "
                f"(name, rgb) inks, got {path!r} (no such file)"
            )
        return "palette", read_palette(path), (1.0, 1.0, 1.0), "multiply"
    if isinstance(layers, (list, tuple)):
        return "palette", _check_inks(layers), (1.0, 1.0, 1.0), "multiply"
    raise TypeError(
        "layers must be 'cmyk', 'rgb', 'k', a palette file or a list of "
        f"(name, rgb) inks, got {type(layers).__name__}"
    )


def separate_inks(rgb, layers="cmyk"):
    """Split an RGB image into per-ink coverages.

    Parameters
    ----------
    rgb : (H, W, 3) array_like of float
        Colours in [0, 1] (a gray ``(H, W)`` image is taken as R = G = B).
    layers : str or os.PathLike or sequence of (str, rgb)
        The ink set (see the module documentation).

    Returns
    -------
    inks : list of (str, tuple of float)
        ``(name, (r, g, b))`` of each ink.
    coverage : (K, H, W) ndarray of float64
        Fraction in [0, 1] of each pixel that each ink covers.

    Raises
    ------
    ValueError
        On values outside [0, 1], NaN, a bad shape or a bad ``layers``.

    Examples
    --------
    >>> inks, cov = separate_inks([[[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]])
    >>> [name for name, _ in inks]
    ['cyan', 'magenta', 'yellow', 'black']
    >>> cov[:, 0, :].tolist()  # pure cyan, then black
    [[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.0]]
    """
    mode, inks, _, _ = resolve_inks(layers)
    img = _check_rgb(rgb)
    return inks, _separate(img, mode, inks)


def _check_rgb(rgb):
    img = np.array(rgb, dtype=np.float64)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(
            f"rgb must have shape (H, W, 3) or (H, W), got {np.shape(rgb)}"
        )
    if not np.isfinite(img).all() or (img < 0).any() or (img > 1).any():
        raise ValueError("rgb must hold finite values in [0, 1]")
    return img


def _separate(img, mode, inks):
    """(H, W, 3) in [0, 1] -> (K, H, W) coverages."""
    if mode == "cmyk":
        k = 1.0 - img.max(axis=2)
        room = 1.0 - k
        safe = np.where(room > 0, room, 1.0)
        cmy = np.where(
            room[..., None] > 0, (1.0 - img - k[..., None]) / safe[..., None], 0
        )
        cov = np.concatenate([np.moveaxis(cmy, 2, 0), k[None]], axis=0)
    elif mode == "rgb":
        cov = np.moveaxis(img, 2, 0).copy()
    elif mode == "k":
        cov = (1.0 - img @ _LUMA)[None]
    else:
        cov = _separate_palette(img, np.array([c for _, c in inks]))
    cov = np.clip(cov, 0.0, 1.0)
    cov[cov < _COVERAGE_ZERO] = 0.0  # rounding of white (1 - 0.299 - ...) is no ink
    return np.ascontiguousarray(cov)


def _separate_palette(img, inks):
    """Coverages of ``inks`` (K, 3) reproducing ``img`` under multiply blending.

    The fit is solved on a ``_LUT_LEVELS``^3 lattice of the RGB cube, interpolated
    (trilinear) to each distinct colour of ``img`` quantised to ``_PALETTE_BITS``
    bits, and polished there by ``_PALETTE_POLISH`` more steps.
    """
    from scipy.interpolate import RegularGridInterpolator

    levels = (1 << _PALETTE_BITS) - 1
    q = np.rint(img.reshape(-1, 3) * levels).astype(np.int64)
    code = (q[:, 0] << (2 * _PALETTE_BITS)) | (q[:, 1] << _PALETTE_BITS) | q[:, 2]
    table, inverse = np.unique(code, return_inverse=True)
    mask = levels
    colours = np.stack(
        [table >> (2 * _PALETTE_BITS), (table >> _PALETTE_BITS) & mask, table & mask],
        axis=1,
    ) / float(levels)
    axis = np.linspace(0.0, 1.0, _LUT_LEVELS)
    lattice = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)
    lut = _fit_multiply(lattice.reshape(-1, 3), inks, None, _PALETTE_ITERATIONS)
    lut = lut.reshape(_LUT_LEVELS, _LUT_LEVELS, _LUT_LEVELS, len(inks))
    start = RegularGridInterpolator((axis, axis, axis), lut)(colours)
    a = _fit_multiply(colours, inks, np.clip(start, 0.0, 1.0), _PALETTE_POLISH)
    h, w = img.shape[:2]
    return a[inverse.ravel()].T.reshape(len(inks), h, w)


def _leave_one_out(factors):
    """``prod_{j != k} factors[:, j]`` for each k: (M, K, 3) -> (M, K, 3)."""
    ones = np.ones_like(factors[:, :1])
    left = np.cumprod(np.concatenate([ones, factors[:, :-1]], axis=1), axis=1)
    right = np.cumprod(np.concatenate([ones, factors[:, :0:-1]], axis=1), axis=1)
    return left * right[:, ::-1]


def _fit_multiply(target, inks, start, iterations):
    """Projected Levenberg-Marquardt, vectorised over colours.

    Minimises ``0.5 |f(a) - t|^2 + mu sum(a)`` over ``a`` in ``[0, 1]^K`` with
    ``f_c(a) = prod_k (1 - a_k b_kc)``, ``b = 1 - inks``, from ``start`` (M, K)
    (zeros if None). Returns (M, K).
    """
    b = 1.0 - inks  # (K, 3) absorption
    m, kk = target.shape[0], b.shape[0]
    mu = _PALETTE_INK_PENALTY
    a = np.zeros((m, kk)) if start is None else np.array(start, dtype=np.float64)
    lam = np.full(m, 1e-2)
    eye = np.eye(kk)

    def evaluate(a):
        factors = 1.0 - a[:, :, None] * b[None]  # (M, K, 3)
        r = factors.prod(axis=1) - target
        obj = 0.5 * (r**2).sum(axis=1) + mu * a.sum(axis=1)
        return factors, r, obj

    factors, r, obj = evaluate(a)
    for _ in range(iterations):
        # d f_c / d a_k = -b_kc prod_{j != k} factors_jc
        jac = -b[None] * _leave_one_out(factors)  # (M, K, 3)
        g = np.einsum("mkc,mc->mk", jac, r) + mu
        free = ~(((a <= 0) & (g > 0)) | ((a >= 1) & (g < 0)))
        hess = np.einsum("mkc,mjc->mkj", jac, jac)
        fm = free[:, :, None] & free[:, None, :]
        hess = np.where(fm, hess, 0.0) + (lam[:, None, None] + 1e-12) * eye
        hess += np.where(free, 0.0, 1.0)[:, :, None] * eye
        step = -np.linalg.solve(hess, (g * free)[..., None])[..., 0]
        cand = np.clip(a + step, 0.0, 1.0)
        factors_c, r_c, obj_c = evaluate(cand)
        better = obj_c < obj
        a = np.where(better[:, None], cand, a)
        factors = np.where(better[:, None, None], factors_c, factors)
        r = np.where(better[:, None], r_c, r)
        obj = np.where(better, obj_c, obj)
        lam = np.clip(np.where(better, lam / 3.0, lam * 4.0), 1e-9, 1e9)
    return a


def _largest_remainder(masses, n):
    """Integer counts summing to ``n``, each within one of ``n * m_k / sum(m)``."""
    total = float(np.sum(masses))
    quota = n * np.asarray(masses, dtype=np.float64) / total
    counts = np.floor(quota).astype(np.int64)
    left = n - int(counts.sum())
    if left > 0:
        # largest fractional parts first, ties to the earlier ink
        rank = np.lexsort((np.arange(len(quota)), -(quota - counts)))
        counts[rank[:left]] += 1
    return counts


# ----------------------------------------------------------------------------- radii


def _hex_coverage(rho):
    """Fraction of the plane covered by discs of radius ``rho d`` on a hex lattice.

    ``d`` the lattice spacing, ``rho`` in ``[0, 1 / sqrt(3)]``: discs overlap their
    six neighbours in lenses once ``rho > 1/2``, never three at a time, and cover
    everything at ``rho = 1 / sqrt(3)``.
    """
    rho = np.asarray(rho, dtype=np.float64)
    cell = np.sqrt(3.0) / 2.0
    disc = np.pi * rho**2
    x = np.clip(1.0 / (2.0 * np.maximum(rho, 1e-300)), -1.0, 1.0)
    lens = 2 * rho**2 * np.arccos(x) - 0.5 * np.sqrt(np.maximum(4 * rho**2 - 1, 0))
    lens = np.where(rho > 0.5, lens, 0.0)
    return np.minimum((disc - 3.0 * lens) / cell, 1.0)


_RHO_TABLE = np.linspace(0.0, 1.0 / np.sqrt(3.0), 2049)
_COVER_TABLE = _hex_coverage(_RHO_TABLE)
_COVER_TABLE[-1] = 1.0


def _coverage_radii(coverage, labels, n, dot_size, radius_range):
    """Radii that reproduce each cell's coverage (overlap of neighbours included).

    ``ink_i`` the summed coverage of the cell's pixels and ``A_i`` its pixel
    count: ``r_i = sqrt(ink_i / pi)`` while ``t_i = ink_i / A_i <= pi / (2 sqrt
    3)`` (discs of a hexagonal packing do not touch), beyond that
    ``r_i = rho(t_i) d_i`` with ``d_i = sqrt(2 A_i / sqrt(3))`` the spacing of a
    hexagonal packing of cells of area ``A_i`` and ``rho`` the inverse of
    :func:`_hex_coverage`, so that the union of overlapping discs covers
    ``t_i``.
    """
    if n == 0:
        return np.zeros(0)
    if dot_size is not None and radius_range is None:
        return np.full(n, float(dot_size))
    cov = coverage.ravel()
    area = np.bincount(labels, minlength=n).astype(np.float64)
    ink = np.bincount(labels, weights=cov, minlength=n)
    if radius_range is not None:
        inked = cov > 0
        count = np.bincount(labels[inked], minlength=n)
        tone = np.bincount(labels[inked], weights=cov[inked], minlength=n)
        v = np.clip(tone / np.maximum(count, 1), 0.0, 1.0)
        lo, hi = radius_range
        return lo + (hi - lo) * v
    t = np.clip(ink / np.maximum(area, 1.0), 0.0, 1.0)
    spacing = np.sqrt(2.0 * area / np.sqrt(3.0))
    rho = np.interp(t, _COVER_TABLE, _RHO_TABLE)
    touching = t > np.pi / (2.0 * np.sqrt(3.0))
    return np.where(touching, rho * spacing, np.sqrt(ink / np.pi))


def _match_coverage(points, radii, target, shape):
    """Scale the radii of overlapping dots so that the layer covers ``target``.

    Dots that overlap no other dot cover exactly ``pi r_i^2 = ink_i``; the
    coverage lost where dots overlap (irregular packings overlap more than the
    hexagonal one :func:`_coverage_radii` assumes) and at the image border is
    restored by one factor ``f`` on the radii of the overlapping dots, found by
    secant steps on the rendered coverage (:func:`disc_area`, 4x4 samples
    per pixel) to within ``_COVERAGE_RTOL``.
    """
    from scipy.spatial import cKDTree

    from .io.render import disc_area

    n = len(points)
    if n < 2 or target <= 0:
        return radii
    k = min(8, n)
    dist, idx = cKDTree(points).query(points, k=k)
    overlap = ((radii[:, None] + radii[idx[:, 1:]]) > dist[:, 1:]).any(axis=1)
    if not overlap.any():
        return radii

    def excess(f):
        rr = radii.copy()
        rr[overlap] *= f
        return disc_area(points, rr, shape, supersample=4) - target, rr

    f0, (g0, best) = 1.0, excess(1.0)
    best_err = abs(g0)
    f1 = 1.05 if g0 < 0 else 0.95
    for _ in range(_COVERAGE_STEPS):
        if best_err <= _COVERAGE_RTOL * target:
            break
        g1, rr = excess(f1)
        if abs(g1) < best_err:
            best, best_err = rr, abs(g1)
        if g1 == g0:
            break
        f0, f1, g0 = f1, float(np.clip(f1 - g1 * (f1 - f0) / (g1 - g0), 0.7, 1.5)), g1
    return best


# ----------------------------------------------------------------------------- main


def _load_rgb(image, scale, resolution, paper):
    """Image -> (H, W, 3) in [0, 1] on the resampled raster, alpha over ``paper``."""
    from .stipple import _load, _resample, _target_shape

    if isinstance(image, Density):
        raise TypeError(
            "image must be an image file or array for stipple_layers, got a Density "
            "(a density has no colours to separate)"
        )
    lum, alpha, rgb, _ = _load(image, True)
    shape = _target_shape(lum.shape, scale, resolution)
    if rgb is None:
        rgb = np.repeat(lum[..., None], 3, axis=2)
    rgb = np.stack([_resample(rgb[..., c], shape) for c in range(3)], axis=-1)
    if alpha is not None:
        a = _resample(alpha, shape)[..., None]
        rgb = rgb * a + np.asarray(paper)[None, None, :] * (1.0 - a)
    return np.clip(rgb, 0.0, 1.0)


def _check_options(options):
    known = set(_PASSED) | set(_OWN)
    for key in options:
        if key not in known:
            raise TypeError(
                f"stipple_layers got an unexpected option {key!r}; expected one of "
                f"{', '.join(sorted(known))} (besides layers, iterations, seed, "
                "order, progress, callback)"
            )
    gamma = options.get("gamma", 1.0)
    floor = options.get("floor", 0.0)
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not gamma > 0:
        raise ValueError(f"gamma must be a number > 0, got {gamma!r}")
    if (
        isinstance(floor, bool)
        or not isinstance(floor, numbers.Real)
        or not (0 <= floor < 1)
    ):
        raise ValueError(f"floor must be a number in [0, 1), got {floor!r}")
    from .stipple import _check_dot_options

    radius_range = _check_dot_options(
        options.get("dot_size"), options.get("dot_size_range")
    )
    return float(gamma), float(floor), radius_range


def stipple_layers(
    image,
    n: int,
    *,
    layers="cmyk",
    iterations: int = 50,
    seed: int = 0,
    order: str = "none",
    progress: bool = False,
    callback=None,
    **stipple_options,
) -> LayeredStipple:
    """Stipple an image as colour separations: one layer of dots per ink.

    Parameters
    ----------
    image : str or os.PathLike or array_like
        An image file, or an array ``(H, W)`` gray, ``(H, W, 3)`` RGB or
        ``(H, W, 4)`` RGBA (floats in [0, 1] or integers scaled by their dtype
        range). Transparent pixels show the paper. Not a :class:`Density`.
    n : int
        Total number of dots, shared among the inks.
    layers : str or os.PathLike or sequence of (str, rgb)
        ``"cmyk"``, ``"rgb"``, ``"k"`` (any case), a palette file (see
        :func:`read_palette`) or a list of ``(name, rgb)`` inks; see the module
        documentation for what each means.
    iterations : int
        Lloyd iterations per layer.
    seed : int
        Layer ``k`` uses ``seed + k`` (and the TSP ordering ``seed``).
    order : {"none", "nearest", "tsp"}
        Drawing order of each layer's dots, from :func:`rasterquant.pen.order_dots`
        ("none": the identity, no ordering done).
    progress : bool
        One tqdm bar over all layers' iterations.
    callback : callable, optional
        Called after each Lloyd iteration with the dict of :func:`lloyd` plus
        ``"layer"`` (the ink name).
    **stipple_options
        ``method``, ``init``, ``ot_tol``, ``quadrature`` as in
        :func:`rasterquant.stipple`; ``scale``, ``resolution`` (resampling of the
        image before the separation); ``gamma``, ``floor`` (each layer's density
        is ``max(a_k, floor) ** gamma``; the radii still follow ``a_k``);
        ``dot_size`` (a constant radius) or ``dot_size_range`` (radii linear in
        the cell's mean coverage), which give up the tone match.

    Returns
    -------
    LayeredStipple

    Raises
    ------
    ValueError
        On a bad ``layers``, an image without ink, ``n`` < 1, a layer given more
        dots than it has inked pixels, or options out of range.
    TypeError
        On an unknown option or a Density ``image``.
    ImportError
        For ``order`` other than "none" when :mod:`rasterquant.pen` is missing.

    Notes
    -----
    Layer ``k`` with ink mass ``M_k = sum_x a_k(x)`` gets ``n_k`` dots by
    largest-remainder rounding of ``n M_k / sum_j M_j``: ``|n_k - n M_k / M| < 1``
    and ``sum n_k = n`` (an ink of no mass gets no dot). Each layer is stippled
    with :func:`rasterquant.stipple` on the density ``max(a_k, floor) ** gamma``
    (seed ``seed + k``), so every dot stands for the same amount of ink whatever
    its layer. Its dot radii then reproduce the coverage cell by cell: with
    ``ink_i`` the summed coverage of cell ``i`` and ``A_i`` its area in pixels,
    ``pi r_i^2 = ink_i`` while the dots of a hexagonal packing would not touch
    (``ink_i / A_i <= pi / (2 sqrt 3) = 0.907``), beyond that the radius whose
    overlapping discs cover ``ink_i / A_i`` of a hexagonal packing. Radii are not
    capped: dots of one layer may overlap in solid areas (same ink: no change of
    colour). Across layers dots are placed independently, so the expected
    composite is the product of the layers' coverages (multiply on white:
    ``prod_k (1 - a_k (1 - q_k))``), which the separations invert.

    Cost: one :func:`rasterquant.stipple` per ink on the full raster (about the
    cost of one stipple with ``n`` dots per layer plus the raster sweeps), one
    assignment pass per layer for the radii and a few coverage renders; a
    palette separation adds 12 small least-squares steps per distinct (7-bit)
    colour (a few seconds for a 1024 x 1024 photo).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((24, 24, 3))
    >>> img[..., 0] = np.linspace(0, 1, 24)[None, :]  # black to red
    >>> res = stipple_layers(img, 30, iterations=2)
    >>> res.counts
    {'cyan': 0, 'magenta': 12, 'yellow': 12, 'black': 6}
    """
    callback, options = _check_layer_args(
        n, order, iterations, callback, stipple_options
    )
    mode, inks, paper, blend = resolve_inks(layers)
    rgb = _load_rgb(
        image, stipple_options.get("scale"), stipple_options.get("resolution"), paper
    )
    coverage = _separate(rgb, mode, inks)
    masses, counts = _dot_counts(coverage, inks, n, options["floor"], mode, blend)
    pen = _pen_module(order)
    out = _stipple_inks(
        inks,
        coverage,
        counts,
        masses,
        rgb.shape[:2],
        seed=seed,
        order=order,
        pen=pen,
        progress=progress,
        callback=callback,
        **options,
    )
    return _layered_stipple(out, rgb, mode, paper, blend, order)


def _layered_stipple(layers, rgb, mode, paper, blend, order):
    """Assemble the :class:`LayeredStipple` of the stippled layers of ``rgb``."""
    return LayeredStipple(
        layers=tuple(layers),
        shape=tuple(int(s) for s in rgb.shape[:2]),
        mode=mode,
        paper=tuple(float(v) for v in paper),
        blend=blend,
        image_tone=rgb.reshape(-1, 3).mean(axis=0),
        order_method=order,
    )


def _check_layer_args(n, order, iterations, callback, stipple_options):
    """Validate the arguments of :func:`stipple_layers`: callback, layer options."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an integer number of dots, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not isinstance(order, str) or order not in _ORDERS:
        raise ValueError(f"order must be one of {_ORDERS}, got {order!r}")
    gamma, floor, radius_range = _check_options(stipple_options)
    from ._validation import check_callback, check_positive_int

    iterations = check_positive_int(iterations, "iterations", minimum=0)
    callback = check_callback(callback)
    options = {
        "gamma": gamma,
        "floor": floor,
        "iterations": iterations,
        "passed": {k: stipple_options[k] for k in _PASSED if k in stipple_options},
        "dot_size": stipple_options.get("dot_size"),
        "radius_range": radius_range,
    }
    return callback, options


def _dot_counts(coverage, inks, n, floor, mode, blend):
    """Return the ink mass and the number of dots of each layer (checked)."""
    masses = coverage.reshape(len(inks), -1).sum(axis=1)
    if not masses.sum() > 0:
        raise ValueError(
            f"image has no ink for layers {mode!r} (all "
            f"{'black' if blend == 'screen' else 'white'}); expected some colour"
        )
    counts = _largest_remainder(masses, int(n))
    for (name, _), cov, k in zip(inks, coverage, counts.tolist(), strict=True):
        positive = int(np.count_nonzero(cov > 0)) if floor == 0 else cov.size
        if k > positive:
            raise ValueError(
                f"n = {n} gives ink {name!r} {k} dots but it has only {positive} "
                "inked pixels; expected fewer dots or a larger resolution"
            )
    return masses, counts


def _pen_module(order):
    """Return :mod:`rasterquant.pen` when ``order`` needs it, else None."""
    pen = None
    if order != "none":
        try:
            from . import pen
        except ImportError:
            raise ImportError(
                f"order={order!r} needs rasterquant.pen, which this installation "
                "lacks; use order='none'"
            ) from None
    return pen


def _stipple_inks(
    inks,
    coverage,
    counts,
    masses,
    shape,
    *,
    seed,
    order,
    pen,
    progress,
    callback,
    **layer_options,
):
    """Stipple every ink in turn (keeping layers apart); returns the layers."""
    bar = _bar(progress, layer_options["iterations"] * int(np.count_nonzero(counts)))
    out = []
    try:
        for index, ((name, ink), cov, k) in enumerate(
            zip(inks, coverage, counts.tolist(), strict=True)
        ):
            hook = _hook(name, bar, callback)
            layer = _one_layer(
                name,
                ink,
                cov,
                k,
                masses[index],
                seed=seed + index,
                hook=hook,
                **layer_options,
            )
            layer = _keep_apart(layer, out, shape)
            out.append(_ordered(layer, order, seed, pen))
    finally:
        if bar is not None:
            bar.close()
    return out


def _bar(progress, total):
    if not progress or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="stipple layers", unit="it", leave=False)


def _hook(name, bar, callback):
    if bar is None and callback is None:
        return None

    def hook(state):
        if bar is not None:
            bar.set_postfix(layer=name)
            bar.update(1)
        if callback is not None:
            callback(dict(state, layer=name))

    return hook


def _one_layer(
    name,
    ink,
    cov,
    k,
    mass,
    gamma,
    floor,
    iterations,
    seed,
    passed,
    hook,
    dot_size,
    radius_range,
):
    """Stipple one ink's coverage with ``k`` dots; radii from the coverage."""
    from .assign.cells import assign_cells
    from .stipple import stipple

    if k == 0:
        empty = np.zeros((0, 2))
        return StippleLayer(
            name=name,
            ink=tuple(ink),
            points=empty,
            radii=np.zeros(0),
            order=np.zeros(0, np.int64),
            ink_mass=float(mass),
            max_mass_error=float("nan"),
            ot_tol=float("nan"),
            tour_length=0.0,
            nearest_length=float("nan"),
            n_iter=0,
            energy=float("nan"),
            weights=np.zeros(0),
        )
    values = np.maximum(cov, floor) ** gamma if (floor > 0 or gamma != 1) else cov
    window, offset = _ink_window(values)
    density = Density.from_array(values[window])
    res = stipple(density, k, iterations=iterations, seed=seed, callback=hook, **passed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # centre labels (the cell of each pixel centre) are all the radii need
        cells = assign_cells(density, res.points, res.weights, quadrature="center")
    radii = _coverage_radii(
        cov[window], cells.labels.ravel(), k, dot_size, radius_range
    )
    points = res.points + offset
    if dot_size is None and radius_range is None:
        radii = _match_coverage(points, radii, float(mass), cov.shape)
    return StippleLayer(
        name=name,
        ink=tuple(ink),
        points=points,
        radii=radii,
        order=np.arange(k, dtype=np.int64),
        ink_mass=float(mass),
        max_mass_error=float(res.max_mass_error),
        ot_tol=float(res.ot_tol),
        tour_length=_path_length(points),
        nearest_length=float("nan"),
        n_iter=int(res.n_iter),
        energy=float(res.energy),
        weights=np.asarray(res.weights, dtype=np.float64),
        warnings=res.warnings,
    )


def _ink_window(values):
    """Bounding box of the positive pixels: ``(slices, (2,) offset)``.

    The density is zero outside it, so stippling the window gives the same cells
    where there is mass (power cells, masses and barycenters only see the
    density) for fewer pixels; points move back by ``offset``.
    """
    rows = np.flatnonzero(values.any(axis=1))
    cols = np.flatnonzero(values.any(axis=0))
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return window, np.array([rows[0], cols[0]], dtype=np.float64)


def _path_length(points):
    if len(points) < 2:
        return 0.0
    return float(np.sqrt((np.diff(points, axis=0) ** 2).sum(axis=1)).sum())


def _ordered(layer, order, seed, pen):
    """Return the layer with its drawing order (``order`` "none": unchanged)."""
    if order == "none" or layer.n == 0:
        return layer
    from dataclasses import replace

    tour = pen.order_dots(layer.points, method=order, seed=abs(int(seed)))
    perm = np.asarray(tour.order, dtype=np.int64)
    return replace(
        layer,
        order=perm,
        tour_length=float(tour.length),
        nearest_length=float(tour.nearest_length),
    )


# ----------------------------------------------------------------------------- outputs


def _layer_tuples(result, ordered=True):
    """``(name, ink, points, radii)`` per layer, points in drawing order."""
    out = []
    for layer in result.layers:
        idx = layer.order if ordered else np.arange(layer.n)
        out.append((layer.name, layer.ink, layer.points[idx], layer.radii[idx]))
    return out


def render_composite(result, *, scale=1.0):
    """Render the composite print of a :class:`LayeredStipple`.

    Parameters
    ----------
    result : LayeredStipple
    scale : float
        Output pixels per image pixel.

    Returns
    -------
    (round(H * scale), round(W * scale), 3) ndarray of uint8
        Paper colour with each ink multiplying (``"screen"`` blend: adding
        light), see :func:`rasterquant.io.render.render_layers_png`.
    """
    from .io.render import render_layers_png

    return render_layers_png(
        _layer_tuples(result, ordered=False),
        result.shape,
        scale=scale,
        paper=result.paper,
        blend=result.blend,
    )


def tone_error(result, *, scale=1.0):
    """Per-channel mean tone of the composite minus the image's, in [-1, 1].

    Parameters
    ----------
    result : LayeredStipple
    scale : float
        Rendering scale of the composite (1: one output pixel per image pixel,
        discs anti-aliased at 4x supersampling).

    Returns
    -------
    (3,) ndarray of float64
        ``mean(composite[..., c]) - mean(image[..., c])`` for R, G, B.
    """
    img = render_composite(result, scale=scale).astype(np.float64) / 255.0
    return img.reshape(-1, 3).mean(axis=0) - np.asarray(result.image_tone)


def layer_output_paths(path, result_or_names) -> list:
    """Files :func:`write_layers` writes for ``path``.

    ``.svg``, ``.png``, ``.pdf``: ``path`` itself (all layers in one file).
    ``.csv``, ``.npy``, ``.gcode``: one file per ink, ``<stem>_<ink><suffix>``.

    Parameters
    ----------
    path : str or os.PathLike
    result_or_names : LayeredStipple or sequence of str
        The result, or its ink names.

    Returns
    -------
    list of str
    """
    path = os.fspath(path)
    names = (
        result_or_names.names
        if isinstance(result_or_names, LayeredStipple)
        else list(result_or_names)
    )
    stem, suffix = os.path.splitext(path)
    if suffix.lower() not in LAYER_OUTPUT_SUFFIXES:
        raise ValueError(
            f"output {path!r} has an unsupported suffix {suffix!r}; expected one of "
            f"{', '.join(LAYER_OUTPUT_SUFFIXES)}"
        )
    if suffix.lower() in _PER_LAYER_SUFFIXES:
        return [f"{stem}_{name}{suffix}" for name in names]
    return [path]


def write_layers(
    path,
    result,
    *,
    render_scale=1.0,
    svg_style="dots",
    gcode_options=None,
) -> list:
    """Write a :class:`LayeredStipple` to the file(s) its suffix chooses.

    Parameters
    ----------
    path : str or os.PathLike
        ``.svg``: one Inkscape layer (``<g>``) per ink, dots filled with the ink
        (``svg_style="dots"``) or the pen path, one ``<path>`` per ink
        (``"path"``, via :func:`rasterquant.pen.write_path_svg`). ``.png`` /
        ``.pdf``: the composite (:func:`render_composite`). ``.csv`` / ``.npy``:
        one point file per ink, ``<stem>_<ink>.csv``, columns ``row, col,
        radius``, rows in drawing order. ``.gcode``: one G-code file per ink,
        ``<stem>_<ink>.gcode`` (:func:`rasterquant.pen.write_gcode`). All
        atomic.
    result : LayeredStipple
    render_scale : float
        PNG/PDF pixels per image pixel.
    svg_style : {"dots", "path"}
    gcode_options : dict, optional
        Keyword arguments of :func:`rasterquant.pen.write_gcode` (``size_mm``,
        ``feed``, ``pen_up``, ``pen_down``...).

    Returns
    -------
    list of str
        The files written.
    """
    from .io.points import write_points
    from .io.render import write_layers_svg, write_pdf, write_png

    paths = layer_output_paths(path, result)
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if svg_style not in ("dots", "path"):
        raise ValueError(f"svg_style must be 'dots' or 'path', got {svg_style!r}")
    layers = _layer_tuples(result)
    if suffix == ".svg" and svg_style == "dots":
        write_layers_svg(
            path, layers, result.shape, paper=result.paper, blend=result.blend
        )
    elif suffix == ".svg":
        from .pen import write_path_svg

        write_path_svg(
            path,
            [(name, pts) for name, _, pts, _ in layers],
            shape=result.shape,
            colors=[ink for _, ink, _, _ in layers],
            size_mm=(gcode_options or {}).get("size_mm"),
        )
    elif suffix in (".png", ".pdf"):
        img = render_composite(result, scale=render_scale)
        if suffix == ".png":
            write_png(path, img)
        else:
            write_pdf(path, img, dpi=72.0 * render_scale)
    elif suffix == ".gcode":
        from .pen import write_gcode

        for out, layer in zip(paths, result.layers, strict=True):
            write_gcode(
                out,
                layer.points,
                layer.order,
                shape=result.shape,
                **(gcode_options or {}),
            )
    else:
        for out, (_, _, pts, radii) in zip(paths, layers, strict=True):
            if len(pts) == 0:
                _write_empty_points(out)
            else:
                write_points(out, pts, radius=radii)
    return paths


def _write_empty_points(path):
    """Write a point file of no rows (an ink without dots): header or (0, 3)."""
    from .io.atomic import atomic_save_npy, atomic_write_text

    if os.fspath(path).lower().endswith(".npy"):
        atomic_save_npy(path, np.zeros((0, 3)))
    else:
        atomic_write_text(path, "row,col,radius\n")


#: a dot of a later layer is kept at least this far (pixels) from earlier layers
#: dots: the offsets between layers (see :func:`_keep_apart`)
KEEP_APART = 0.5


def _keep_apart(layer, placed, shape, distance=KEEP_APART, passes=10):
    """Move the dots of ``layer`` that land on earlier layers' dots out to ``distance``.

    Each such dot moves straight away from the nearest earlier dot (in a fixed
    direction if they coincide), by less than ``distance``, and stays in the image;
    a few passes settle dots that a move brings near another earlier dot. Independent
    layers put a few percent of the dots there (``coincident_fraction``); the ink
    they carry, and so the tone, is unchanged.
    """
    from scipy.spatial import cKDTree

    earlier = [o.points for o in placed if o.n]
    if not earlier or layer.n == 0:
        return layer
    tree = cKDTree(np.concatenate(earlier))
    pts = layer.points.copy()
    hi = np.array(shape, dtype=np.float64)
    for _ in range(passes):
        d, j = tree.query(pts)
        near = np.flatnonzero(d < distance)
        if near.size == 0:
            break
        away = pts[near] - tree.data[j[near]]
        norm = np.linalg.norm(away, axis=1)
        away[norm == 0] = (0.6, 0.8)
        norm[norm == 0] = 1.0
        step = away / norm[:, None] * (distance * (1 + 1e-6))
        pts[near] = np.clip(tree.data[j[near]] + step, 0.0, np.nextafter(hi, 0))
    if np.array_equal(pts, layer.points):
        return layer
    return dataclasses.replace(layer, points=pts, tour_length=_path_length(pts))


def coincident_fraction(result, *, distance=0.5) -> float:
    """Fraction of dots lying within ``distance`` pixels of another ink's dot.

    A measure of layers "landing on one another" (for independent layers it is
    about ``pi distance^2`` times the local density of the other inks' dots).
    """
    from scipy.spatial import cKDTree

    layers = [layer for layer in result.layers if layer.n]
    if len(layers) < 2:
        return 0.0
    hits = 0
    for i, layer in enumerate(layers):
        others = np.concatenate([o.points for j, o in enumerate(layers) if j != i])
        d, _ = cKDTree(others).query(layer.points)
        hits += int(np.count_nonzero(d < distance))
    return hits / sum(layer.n for layer in layers)


def layered_diagnostics(result) -> dict:
    """JSON-ready diagnostics of a :class:`LayeredStipple` (for sidecars)."""

    def num(v):
        return None if v != v else float(v)

    return {
        "n": result.n,
        "shape": list(result.shape),
        "layers_mode": result.mode,
        "paper": list(result.paper),
        "blend": result.blend,
        "order": result.order_method,
        "inks": list(result.names),
        "counts": result.counts,
        "coincident_dots": coincident_fraction(result),
        "image_tone": [float(v) for v in result.image_tone],
        "tour_length": sum(layer.tour_length for layer in result.layers),
        "nearest_length": (
            None
            if result.order_method == "none"
            else sum(layer.nearest_length for layer in result.layers if layer.n)
        ),
        "layers": [
            {
                "name": layer.name,
                "ink": "#{:02x}{:02x}{:02x}".format(
                    *(round(v * 255) for v in layer.ink)
                ),
                "n": layer.n,
                "ink_mass": layer.ink_mass,
                "max_mass_error": num(layer.max_mass_error),
                "ot_tol": num(layer.ot_tol),
                "mass_tol_met": (
                    None
                    if layer.max_mass_error != layer.max_mass_error
                    else bool(layer.max_mass_error <= layer.ot_tol)
                ),
                "iterations": layer.n_iter,
                "energy": num(layer.energy),
                "tour_length": layer.tour_length,
                "nearest_length": num(layer.nearest_length),
                "radius_min": float(layer.radii.min()) if layer.n else None,
                "radius_max": float(layer.radii.max()) if layer.n else None,
                "warnings": list(layer.warnings),
            }
            for layer in result.layers
        ],
    }
