"""Rendering point sets (stipples) and grain maps to SVG, PNG and PDF.

Points are in array axis order ``(row, col)`` and in pixel units of an image of
shape ``(H, W)``: pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``, so a point
``(row, col)`` is drawn at ``x = col``, ``y = row`` in an SVG whose ``viewBox`` is
``0 0 W H`` (y pointing down, as in the image). Raster outputs use Pillow.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import kernel
from .atomic import atomic_write

__all__ = [
    "disc_area",
    "disc_coverage",
    "grain_slices_png",
    "render_layers_png",
    "render_png",
    "write_cells_svg",
    "write_layers_svg",
    "write_pdf",
    "write_png",
    "write_svg",
]

_SUPERSAMPLE = 4
#: samples per output pixel and axis of the layer composites (exact disc areas)
_LAYER_SUPERSAMPLE = 8


def _pil():
    try:
        from PIL import Image, ImageDraw
    except ImportError:  # pragma: no cover - Pillow is a core dependency
        raise ImportError(
            "rendering needs Pillow; install rasterquant[render] (pip install pillow)"
        ) from None
    return Image, ImageDraw


def _check_shape(shape):
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"shape must be (H, W), two positive integers, got {shape!r}"
        ) from None
    if h < 1 or w < 1:
        raise ValueError(f"shape must be (H, W), two positive integers, got {shape!r}")
    return h, w


def _check_stipple(points, radii, colors):
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(
            f"points must have shape (N, 2) in (row, col) pixel units, got {pts.shape}"
        )
    n = pts.shape[0]
    if not np.isfinite(pts).all():
        raise ValueError("points contains NaN or inf; remove or clip those rows")
    r = np.asarray(radii, dtype=np.float64)
    if r.ndim == 0:
        r = np.full(n, float(r))
    if r.shape != (n,):
        raise ValueError(
            f"radii must be a scalar or have shape ({n},) like points, got {r.shape}"
        )
    if not np.isfinite(r).all() or (r < 0).any():
        raise ValueError("radii must be finite and >= 0")
    if colors is None:
        c = np.zeros((n, 3))
    else:
        c = np.asarray(colors, dtype=np.float64)
        if c.ndim == 1 and c.shape == (3,):
            c = np.broadcast_to(c, (n, 3))
        if c.shape != (n, 3):
            raise ValueError(
                f"colors must have shape ({n}, 3) (RGB in [0, 1]) or (3,), got "
                f"{c.shape}"
            )
        if not np.isfinite(c).all() or (c < 0).any() or (c > 1).any():
            raise ValueError("colors must be RGB values in [0, 1]")
    return pts, r, c


def _rgb8(colors):
    return np.rint(np.asarray(colors) * 255).astype(np.int64)


def _svg_color(rgb8):
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb8))


def _background(background):
    from PIL import ImageColor

    if background is None:
        return None
    if isinstance(background, str):
        try:
            return ImageColor.getrgb(background)[:3]
        except ValueError:
            raise ValueError(
                f"background {background!r} is not a colour name or #rrggbb"
            ) from None
    c = np.asarray(background, dtype=np.float64)
    if c.shape != (3,) or (c < 0).any() or (c > 1).any():
        raise ValueError(
            f"background must be a colour name, '#rrggbb' or 3 floats in [0, 1], "
            f"got {background!r}"
        )
    return tuple(int(v) for v in _rgb8(c))


def write_svg(path, points, radii, shape, colors=None, background="white") -> None:
    """Write points as filled circles in an SVG image.

    Parameters
    ----------
    path : str or os.PathLike
        The output ``.svg`` file. Written atomically.
    points : (N, 2) array_like of float
        Centres in ``(row, col)`` pixel units of an image of ``shape``.
    radii : float or (N,) array_like of float
        Circle radii in pixels, >= 0.
    shape : tuple of int
        ``(H, W)``; the SVG has ``width=W``, ``height=H`` and ``viewBox="0 0 W H"``.
    colors : (N, 3) or (3,) array_like of float, optional
        RGB fill in [0, 1]; black when None.
    background : str or (3,) array_like of float or None
        Background colour (an SVG colour name or ``#rrggbb``, or RGB in
        [0, 1]); None for a transparent background.

    Raises
    ------
    ValueError
        If the shapes disagree, values are NaN/inf, radii are negative, colours
        are outside [0, 1] or the output directory is not writable.
    """
    h, w = _check_shape(shape)
    pts, r, c = _check_stipple(points, radii, colors)
    bg = _background(background)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w}" '
        f'height="{h}" viewBox="0 0 {w} {h}">',
    ]
    if bg is not None:
        out.append(
            f'<rect x="0" y="0" width="{w}" height="{h}" fill="{_svg_color(bg)}"/>'
        )
    rgb = _rgb8(c)
    if len(rgb) and (rgb == rgb[0]).all():  # one colour: set it once on the group
        out.append(f'<g fill="{_svg_color(rgb[0])}" stroke="none">')
        for (y, x), rad in zip(pts.tolist(), r.tolist(), strict=True):
            out.append(f'<circle cx="{x:.6g}" cy="{y:.6g}" r="{rad:.6g}"/>')
    else:
        out.append('<g stroke="none">')
        for (y, x), rad, col in zip(pts.tolist(), r.tolist(), rgb, strict=True):
            out.append(
                f'<circle cx="{x:.6g}" cy="{y:.6g}" r="{rad:.6g}" '
                f'fill="{_svg_color(col)}"/>'
            )
    out += ["</g>", "</svg>", ""]
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(out))


def render_png(points, radii, shape, scale=1.0, colors=None, background="white"):
    """Rasterise points as anti-aliased discs.

    Each output pixel is sampled at ``4 x 4`` sample centres; a sample takes the
    colour of the last disc that holds its centre (later points are drawn over
    earlier ones), or the background, and a pixel is the mean of its samples. So
    edges are anti-aliased, discs smaller than a pixel show as grey dots, and the
    inked area is unbiased (Pillow's ellipses, whose bounding box is inclusive and
    snapped to whole samples, drew discs of radius 1 px 21 % too large).

    Parameters
    ----------
    points : (N, 2) array_like of float
        Centres in ``(row, col)`` pixel units of an image of ``shape``.
    radii : float or (N,) array_like of float
        Disc radii in (unscaled) pixels, >= 0.
    shape : tuple of int
        ``(H, W)`` of the image the points live in.
    scale : float
        Output pixels per input pixel, > 0.
    colors : (N, 3) or (3,) array_like of float, optional
        RGB in [0, 1]; black when None.
    background : str or (3,) array_like of float
        Background colour name, ``#rrggbb`` or RGB in [0, 1].

    Returns
    -------
    (round(H * scale), round(W * scale), 3) ndarray of uint8
        The RGB image.

    Raises
    ------
    ValueError
        On bad shapes, NaN/inf, negative radii, colours outside [0, 1] or a
        non-positive ``scale``.
    """
    h, w = _check_shape(shape)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    pts, r, c = _check_stipple(points, radii, colors)
    bg = _background(background)
    if bg is None:
        raise ValueError("background must be a colour for PNG output, got None")
    s = _SUPERSAMPLE
    out_h, out_w = max(round(h * scale), 1), max(round(w * scale), 1)
    owner = np.full((out_h * s, out_w * s), -1, dtype=np.int32)
    if len(pts):
        f = np.array([out_h * s / h, out_w * s / w])
        _paint_discs(
            owner,
            np.ascontiguousarray(pts * f),
            np.ascontiguousarray(r * np.sqrt(f[0] * f[1])),
            True,
            -1,
        )
    # colours in 8 bits first, as they are written (a solid disc keeps its colour)
    rgb = np.broadcast_to(_rgb8(c), (len(pts), 3)).astype(np.float64)
    img = _block_colour(owner, np.ascontiguousarray(rgb), np.array(bg, float), s)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@kernel(parallel=True)
def _block_colour(owner, rgb, bg, s):
    """Mean colour of each ``s x s`` block of samples: (R, C, 3) float64.

    A sample is ``rgb[owner]``, or ``bg`` where ``owner`` is -1.
    """
    nr, nc = owner.shape[0] // s, owner.shape[1] // s
    out = np.zeros((nr, nc, 3))
    for j in prange(nr):
        for k in range(nc):
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            for a in range(s):
                for b in range(s):
                    o = owner[j * s + a, k * s + b]
                    if o < 0:
                        a0 += bg[0]
                        a1 += bg[1]
                        a2 += bg[2]
                    else:
                        a0 += rgb[o, 0]
                        a1 += rgb[o, 1]
                        a2 += rgb[o, 2]
            out[j, k, 0] = a0 / (s * s)
            out[j, k, 1] = a1 / (s * s)
            out[j, k, 2] = a2 / (s * s)
    return out


_BLENDS = ("multiply", "screen")
_INKSCAPE_NS = "http://www.inkscape.org/namespaces/inkscape"


def _check_layers(layers):
    """Validate ``(name, ink, points, radii)`` tuples; returns them as arrays."""
    out = []
    try:
        items = list(layers)
    except TypeError:
        raise ValueError(
            "layers must be a sequence of (name, ink rgb, points, radii), got "
            f"{type(layers).__name__}"
        ) from None
    for item in items:
        try:
            name, ink, points, radii = item
        except (TypeError, ValueError):
            raise ValueError(
                "layers must be a sequence of (name, ink rgb, points, radii) "
                f"tuples, got an item {type(item).__name__}"
            ) from None
        ink = np.asarray(ink, dtype=np.float64)
        if (
            ink.shape != (3,)
            or not np.isfinite(ink).all()
            or (ink < 0).any()
            or (ink > 1).any()
        ):
            raise ValueError(
                f"ink of layer {name!r} must be 3 floats in [0, 1], got {ink!r}"
            )
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        pts, r, _ = _check_stipple(pts, radii, None)
        out.append((str(name), ink, pts, r))
    return out


def _check_blend(blend):
    if blend not in _BLENDS:
        raise ValueError(f"blend must be one of {_BLENDS}, got {blend!r}")
    return blend


def _paper(paper):
    c = np.asarray(paper, dtype=np.float64)
    if c.shape != (3,) or not np.isfinite(c).all() or (c < 0).any() or (c > 1).any():
        raise ValueError(f"paper must be 3 floats in [0, 1], got {paper!r}")
    return c


def write_layers_svg(
    path, layers, shape, *, paper=(1.0, 1.0, 1.0), blend="multiply"
) -> None:
    """Write ink layers of dots as an SVG with one Inkscape layer per ink.

    Each layer is a ``<g id="NAME" inkscape:label="NAME"
    inkscape:groupmode="layer">`` filled with the ink colour and blended with
    CSS ``mix-blend-mode`` (``multiply``: inks on white; ``screen``: inks adding
    light on dark paper), holding one ``<circle>`` per dot in the given order. A
    paper ``<rect>`` (outside the layers) is written only when the paper is not
    white, so a plotter sees nothing but the dots.

    Parameters
    ----------
    path : str or os.PathLike
        The output ``.svg`` file. Written atomically.
    layers : sequence of (str, (3,) array_like, (n, 2) array_like, (n,) array_like)
        ``(name, ink rgb in [0, 1], points (row, col) in pixels, radii)`` per
        layer, bottom layer first.
    shape : tuple of int
        ``(H, W)``; ``viewBox="0 0 W H"``.
    paper : (3,) array_like of float
        Paper colour, RGB in [0, 1].
    blend : {"multiply", "screen"}

    Raises
    ------
    ValueError
        On bad shapes, values or names, or an unwritable directory.
    """
    from xml.sax.saxutils import quoteattr

    h, w = _check_shape(shape)
    items = _check_layers(layers)
    blend = _check_blend(blend)
    bg = _rgb8(_paper(paper))
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:inkscape="{_INKSCAPE_NS}" '
        f'version="1.1" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
    ]
    if (bg != 255).any():
        out.append(
            f'<rect id="paper" x="0" y="0" width="{w}" height="{h}" '
            f'fill="{_svg_color(bg)}"/>'
        )
    for name, ink, pts, r in items:
        label = quoteattr(name)
        out.append(
            f'<g id={label} inkscape:label={label} inkscape:groupmode="layer" '
            f'fill="{_svg_color(_rgb8(ink))}" stroke="none" '
            f'style="mix-blend-mode:{blend}">'
        )
        for (y, x), rad in zip(pts.tolist(), r.tolist(), strict=True):
            out.append(f'<circle cx="{x:.6g}" cy="{y:.6g}" r="{rad:.6g}"/>')
        out.append("</g>")
    out += ["</svg>", ""]
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(out))


@kernel(parallel=False)
def _paint_discs(target, centres, radii, label, empty):
    """Paint discs on the samples of ``target`` (R, C) whose centres they hold.

    Sample ``(j, k)`` covers ``[j, j + 1) x [k, k + 1)``; ``centres`` (N, 2) and
    ``radii`` (N,) are in sample units. A sample in disc ``i`` becomes ``i`` with
    ``label`` (later discs win), else 1. Returns how many painted samples held
    ``empty`` before.
    """
    nr, nc = target.shape
    count = 0
    for i in range(centres.shape[0]):
        cy, cx, r = centres[i, 0], centres[i, 1], radii[i]
        if r <= 0.0:
            continue
        r2 = r * r
        j0 = max(int(np.floor(cy - r)), 0)
        j1 = min(int(np.ceil(cy + r)), nr)
        k0 = max(int(np.floor(cx - r)), 0)
        k1 = min(int(np.ceil(cx + r)), nc)
        for j in range(j0, j1):
            dy = j + 0.5 - cy
            for k in range(k0, k1):
                dx = k + 0.5 - cx
                if dx * dx + dy * dy <= r2:
                    if target[j, k] == empty:
                        count += 1
                    target[j, k] = i if label else 1
    return count


@kernel(parallel=True)
def _block_mean(mask, s):
    """Mean of each ``s x s`` block of ``mask`` (R s, C s): (R, C) float64."""
    nr, nc = mask.shape[0] // s, mask.shape[1] // s
    out = np.zeros((nr, nc))
    for j in prange(nr):
        for a in range(s):
            for k in range(nc):
                acc = 0
                for b in range(s):
                    acc += mask[j * s + a, k * s + b]
                out[j, k] += acc
        for k in range(nc):
            out[j, k] /= s * s
    return out


def _mask(pts, r, h, w, scale, s):
    """Sample mask of the union of the discs and the number of samples covered."""
    out_h, out_w = max(round(h * scale), 1), max(round(w * scale), 1)
    mask = np.zeros((out_h * s, out_w * s), dtype=np.uint8)
    count = 0
    if len(pts):
        f = np.array([out_h * s / h, out_w * s / w])
        centres = np.ascontiguousarray(pts * f)
        radii = np.ascontiguousarray(r * np.sqrt(f[0] * f[1]))
        count = _paint_discs(mask, centres, radii, False, 0)
    return mask, int(count)


def disc_area(points, radii, shape, *, supersample=4) -> float:
    """Area in pixels of the union of discs, inside the image ``(H, W)``.

    Counted on ``supersample``^2 samples per pixel (see :func:`disc_coverage`);
    no image is built, so it is much cheaper than summing the coverage.
    """
    h, w = _check_shape(shape)
    pts, r, _ = _check_stipple(
        np.asarray(points, dtype=np.float64).reshape(-1, 2), radii, None
    )
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be an integer >= 1, got {supersample!r}")
    _, count = _mask(pts, r, h, w, 1.0, s)
    return count / float(s * s)


def disc_coverage(points, radii, shape, *, scale=1.0, supersample=None):
    """Fraction of each output pixel covered by the union of discs.

    Each output pixel is sampled at ``supersample``^2 points (sample centres), so
    the covered area is unbiased, unlike Pillow's ellipses, whose bounding box is
    inclusive and snapped to whole samples (a disc of radius 1 drawn at 4x comes
    out 21 % too large).

    Parameters
    ----------
    points : (N, 2) array_like of float
        Disc centres, ``(row, col)`` pixel units of an image of ``shape``.
    radii : float or (N,) array_like of float
        Radii in pixels, >= 0.
    shape : tuple of int
        ``(H, W)``.
    scale : float
        Output pixels per input pixel, > 0.
    supersample : int, optional
        Samples per output pixel and axis (default 8).

    Returns
    -------
    (round(H * scale), round(W * scale)) ndarray of float64
        Coverage in [0, 1].
    """
    h, w = _check_shape(shape)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    pts, r, _ = _check_stipple(
        np.asarray(points, dtype=np.float64).reshape(-1, 2), radii, None
    )
    s = _LAYER_SUPERSAMPLE if supersample is None else int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be an integer >= 1, got {supersample!r}")
    return _coverage(pts, r, h, w, scale, s)


def _coverage(pts, r, h, w, scale, s=_LAYER_SUPERSAMPLE):
    """Disc coverage, arguments checked (see :func:`disc_coverage`)."""
    mask, _ = _mask(pts, r, h, w, scale, s)
    return _block_mean(mask, s)


def render_layers_png(
    layers, shape, *, scale=1.0, paper=(1.0, 1.0, 1.0), blend="multiply"
):
    """Rasterise ink layers of dots into one composite print.

    Each layer's coverage ``alpha_k`` (discs at 4x supersampling, box-filtered)
    is combined with the paper colour ``p``: ``multiply`` (inks on paper,
    subtractive): ``p * prod_k (1 - alpha_k (1 - q_k))``; ``screen`` (inks adding
    light): ``1 - (1 - p) prod_k (1 - alpha_k q_k)``, ``q_k`` the ink colour.

    Parameters
    ----------
    layers : sequence of (str, (3,) array_like, (n, 2) array_like, (n,) array_like)
        ``(name, ink rgb, points, radii)`` per layer.
    shape : tuple of int
        ``(H, W)`` of the image the points live in.
    scale : float
        Output pixels per input pixel, > 0.
    paper : (3,) array_like of float
        Paper colour, RGB in [0, 1].
    blend : {"multiply", "screen"}

    Returns
    -------
    (round(H * scale), round(W * scale), 3) ndarray of uint8

    Raises
    ------
    ValueError
        On bad shapes or values, or a non-positive ``scale``.
    """
    h, w = _check_shape(shape)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    items = _check_layers(layers)
    blend = _check_blend(blend)
    p = _paper(paper)
    out_h, out_w = max(round(h * scale), 1), max(round(w * scale), 1)
    keep = np.ones((out_h, out_w, 3))
    for _, ink, pts, r in items:
        alpha = _coverage(pts, r, h, w, scale)[..., None]
        keep *= 1.0 - alpha * ((1.0 - ink) if blend == "multiply" else ink)
    img = p * keep if blend == "multiply" else 1.0 - (1.0 - p) * keep
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def write_cells_svg(
    path, polygons, *, shape, points=None, radii=None, stroke_width=None
) -> None:
    """Write cells (polygons) as an SVG: one ``<polygon>`` per cell, no fill.

    Parameters
    ----------
    path : str or os.PathLike
        The output ``.svg`` file. Written atomically.
    polygons : sequence of (k_i, 2) array_like of float
        Vertices of each cell in ``(row, col)`` pixel units (e.g. from
        ``rasterquant.assign.cell_polygons``); a cell of fewer than 3 vertices
        is written as an empty ``<polygon>`` (so the count of polygons is the
        count of cells).
    shape : tuple of int
        ``(H, W)``; ``viewBox="0 0 W H"``.
    points : (N, 2) array_like of float, optional
        Dots drawn on top (black discs), in a second group.
    radii : float or (N,) array_like of float, optional
        Their radii; default a tenth of the mean cell spacing.
    stroke_width : float, optional
        Outline width in pixels; default 2 % of the mean cell spacing
        ``sqrt(H W / n_cells)``.

    Raises
    ------
    ValueError
        On bad shapes, NaN/inf vertices or an unwritable directory.
    """
    h, w = _check_shape(shape)
    try:
        polys = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
    except (TypeError, ValueError):
        raise ValueError(
            "polygons must be a sequence of (k, 2) arrays of (row, col) vertices"
        ) from None
    for i, p in enumerate(polys):
        if not np.isfinite(p).all():
            raise ValueError(f"polygons[{i}] contains NaN or inf; expected finite")
    spacing = float(np.sqrt(h * w / max(len(polys), 1)))
    if stroke_width is None:
        stroke_width = 0.02 * spacing
    if not (np.isfinite(stroke_width) and stroke_width > 0):
        raise ValueError(f"stroke_width must be a number > 0, got {stroke_width!r}")
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w}" '
        f'height="{h}" viewBox="0 0 {w} {h}">',
        f'<g id="cells" fill="none" stroke="black" stroke-width="{stroke_width:.6g}" '
        'stroke-linejoin="round">',
    ]
    for p in polys:
        coords = " ".join(f"{x:.6g},{y:.6g}" for y, x in p.tolist())
        out.append(f'<polygon points="{coords}"/>')
    out.append("</g>")
    if points is not None:
        pts = np.asarray(points, dtype=np.float64)
        pts, r, _ = _check_stipple(pts, 0.1 * spacing if radii is None else radii, None)
        out.append('<g id="dots" fill="black" stroke="none">')
        for (y, x), rad in zip(pts.tolist(), r.tolist(), strict=True):
            out.append(f'<circle cx="{x:.6g}" cy="{y:.6g}" r="{rad:.6g}"/>')
        out.append("</g>")
    out += ["</svg>", ""]
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(out))


def write_png(path, image) -> None:
    """Write an image array to a PNG file atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The output ``.png`` file.
    image : (H, W) or (H, W, 3) or (H, W, 4) array_like of uint8
        Gray, RGB or RGBA pixels.

    Raises
    ------
    ValueError
        If ``image`` is not uint8 of one of those shapes.
    """
    image_mod, _ = _pil()
    img = _check_image(image)
    with atomic_write(path, "wb") as fh:
        image_mod.fromarray(img).save(fh, format="PNG")


def _check_image(image):
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(
            f"image must have dtype uint8, got {img.dtype}; convert with "
            "np.clip(x * 255, 0, 255).astype(np.uint8)"
        )
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (3, 4))):
        raise ValueError(
            f"image must have shape (H, W), (H, W, 3) or (H, W, 4), got {img.shape}"
        )
    if img.size == 0:
        raise ValueError(f"image is empty, shape {img.shape}")
    return np.ascontiguousarray(img)


def write_pdf(path, image, *, dpi=300.0) -> None:
    """Write an image array as a one-page raster PDF (via Pillow).

    The PDF embeds the pixels: it is a raster, not a vector drawing. For a
    vector stipple use :func:`write_svg`.

    Parameters
    ----------
    path : str or os.PathLike
        The output ``.pdf`` file. Written atomically.
    image : (H, W) or (H, W, 3) array_like of uint8
        The pixels, e.g. from :func:`render_png`.
    dpi : float
        Resolution recorded in the PDF (sets the page size), > 0.

    Raises
    ------
    ValueError
        If ``image`` is not uint8 gray or RGB, or ``dpi`` is not positive.
    """
    image_mod, _ = _pil()
    img = _check_image(image)
    if img.ndim == 3 and img.shape[2] == 4:
        raise ValueError(
            f"image must be gray or RGB for PDF output, got shape {img.shape}"
        )
    if not np.isfinite(dpi) or dpi <= 0:
        raise ValueError(f"dpi must be a positive number, got {dpi!r}")
    with atomic_write(path, "wb") as fh:
        image_mod.fromarray(img).save(fh, format="PDF", resolution=float(dpi))


#: RGB levels of the candidate grain colours (white and black stay for gaps, text
#: and void)
_PALETTE_LEVELS = (0, 60, 120, 180, 240)


def _palette(k):
    """Return the first ``k`` colours of a fixed farthest-point sequence (RGB uint8).

    Each colour is the candidate (levels ``_PALETTE_LEVELS`` per channel) farthest
    from white, black and the colours before it: the first 22 are at least 120
    apart (Euclidean, 0-255) and as far from white and black. Beyond the 125
    candidates the sequence repeats.
    """
    lv = np.array(_PALETTE_LEVELS, dtype=np.float64)
    cand = np.stack(np.meshgrid(lv, lv, lv, indexing="ij"), axis=-1).reshape(-1, 3)
    dmin = np.minimum(
        np.linalg.norm(cand - 255.0, axis=1), np.linalg.norm(cand, axis=1)
    )
    order = []
    for _ in range(min(k, len(cand))):
        i = int(np.argmax(dmin))
        order.append(i)
        dmin = np.minimum(dmin, np.linalg.norm(cand - cand[i], axis=1))
        dmin[i] = -1.0
    out = cand[np.array(order, dtype=np.int64)].astype(np.uint8)
    return np.resize(out, (k, 3)) if k > len(out) else out


def _grain_adjacency(gm):
    """Pairs ``(i, j)``, ``i < j``, of grains with a face between two voxels.

    Over the whole map (no wrap-around), void (negative ids) left out.
    """
    keys = []
    n = int(gm.max()) + 1
    for axis in range(gm.ndim):
        a = np.moveaxis(gm, axis, 0)
        lo, hi = a[:-1], a[1:]
        m = (lo != hi) & (lo >= 0) & (hi >= 0)
        i, j = lo[m].astype(np.int64), hi[m].astype(np.int64)
        keys.append(np.unique(np.minimum(i, j) * n + np.maximum(i, j)))
    keys = np.unique(np.concatenate(keys))
    return np.stack([keys // n, keys % n], axis=1)


def _grain_colors(gm):
    """RGB uint8 of each grain id of ``gm``: neighbouring grains never share one.

    Greedy colouring of the grain adjacency (:func:`_grain_adjacency`), grains by
    decreasing number of neighbours then id, each taking the first colour of
    :func:`_palette` that no coloured neighbour has; deterministic.
    """
    n = max(int(gm.max()) + 1, 1)
    pairs = _grain_adjacency(gm) if gm.max() >= 0 else np.zeros((0, 2), np.int64)
    both = np.concatenate([pairs, pairs[:, ::-1]])
    both = both[np.lexsort((both[:, 1], both[:, 0]))]
    start = np.searchsorted(both[:, 0], np.arange(n + 1))
    degree = np.diff(start)
    colour = np.full(n, -1, dtype=np.int64)
    for g in np.lexsort((np.arange(n), -degree)).tolist():
        used = set(colour[both[start[g] : start[g + 1], 1]].tolist())
        c = 0
        while c in used:
            c += 1
        colour[g] = c
    return _palette(int(colour.max()) + 1)[colour]


def _label_font(size):
    """Pillow's default font at ``size`` pixels (older Pillow: its bitmap font)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one size
        return ImageFont.load_default()


def _slice_labels(gm):
    """Two label lines per panel: which plane, and which axes run down and across."""
    if gm.ndim == 2:
        return [("2D map", "rows: axis 0, cols: axis 1")]
    d, h, w = gm.shape
    return [
        (f"axis 0 = {d // 2} of {d}", "rows: axis 1, cols: axis 2"),
        (f"axis 1 = {h // 2} of {h}", "rows: axis 0, cols: axis 2"),
        (f"axis 2 = {w // 2} of {w}", "rows: axis 0, cols: axis 1"),
    ]


def grain_slices_png(path, grain_map, seed=0, *, min_height=256) -> None:
    """Write a PNG preview of a grain map: three orthogonal mid-slices, labelled.

    For a 3D map ``(D, H, W)`` the slices ``[D // 2, :, :]``, ``[:, H // 2, :]``
    and ``[:, :, W // 2]`` are placed side by side (separated by a white gap), each
    under a label naming its plane in array axes (``axis 0 = 24 of 48``, then
    ``rows: axis 1, cols: axis 2``: the axes that run down and across it); a 2D map
    is drawn as is, labelled ``rows: axis 0, cols: axis 1``. Grains sharing a voxel
    face anywhere in the map get different, well-separated colours (a greedy
    colouring of the grain adjacency, deterministic); void (negative ids) is black.
    Slices are enlarged with nearest-neighbour sampling to at least ``min_height``
    pixels; the labels (Pillow's default font) sit in a white band above them.

    Parameters
    ----------
    path : str or os.PathLike
        The output ``.png`` file. Written atomically.
    grain_map : (D, H, W) or (H, W) array_like of int
        Grain ids (0-based, -1 for void).
    seed : int
        Unused (the colours are determined by the map); kept for compatibility.
    min_height : int
        Minimum height of the slices in pixels.

    Raises
    ------
    ValueError
        If ``grain_map`` is not a 2D or 3D integer array.
    """
    image_mod, draw_mod = _pil()
    gm = np.asarray(grain_map)
    if gm.dtype == bool or not np.issubdtype(gm.dtype, np.integer):
        raise ValueError(
            f"grain_map must be an integer array of grain ids, got dtype {gm.dtype}"
        )
    if gm.ndim not in (2, 3) or gm.size == 0:
        raise ValueError(
            f"grain_map must have shape (H, W) or (D, H, W), got {gm.shape}"
        )
    if gm.ndim == 2:
        slices = [gm]
    else:
        d, h, w = gm.shape
        slices = [gm[d // 2], gm[:, h // 2, :], gm[:, :, w // 2]]
    height = max(s.shape[0] for s in slices)
    factor = max(1, int(np.ceil(min_height / height)))
    colors = _grain_colors(gm)
    gap = max(2, factor)
    font = _label_font(max(10, height * factor // 24))
    probe = draw_mod.Draw(image_mod.new("RGB", (1, 1)))
    labels = _slice_labels(gm)
    line = probe.textbbox((0, 0), "Ag", font=font)[3] + 2
    pad = max(2, line // 4)
    band = 2 * line + 2 * pad
    widths = []
    for s, text in zip(slices, labels, strict=True):
        text_w = max(probe.textbbox((0, 0), t, font=font)[2] for t in text)
        widths.append(max(s.shape[1] * factor, text_w + 2 * pad))
    total = sum(widths) + gap * (len(slices) - 1)
    canvas = np.full((band + height * factor, total, 3), 255, dtype=np.uint8)
    x0s = np.cumsum([0, *[wd + gap for wd in widths[:-1]]])
    for s, x0 in zip(slices, x0s.tolist(), strict=True):
        rgb = np.zeros((*s.shape, 3), dtype=np.uint8)
        valid = s >= 0
        rgb[valid] = colors[s[valid]]
        rgb = np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)
        canvas[band : band + rgb.shape[0], x0 : x0 + rgb.shape[1]] = rgb
    img = image_mod.fromarray(canvas)
    draw = draw_mod.Draw(img)
    for text, x0 in zip(labels, x0s.tolist(), strict=True):
        for k, t in enumerate(text):
            draw.text((x0 + pad, pad + k * line), t, fill=(0, 0, 0), font=font)
    write_png(path, np.asarray(img))
