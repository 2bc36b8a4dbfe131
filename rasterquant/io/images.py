"""Reading 2D images and 3D volumes into float arrays.

Images are decoded with Pillow (a hard dependency), chosen explicitly rather than
through imageio's plugin search: a corrupt file then fails with Pillow's own message
instead of whatever the last plugin tried said, and no optional plugin (or its
deprecation warning) is involved. Every failure is a one-line ``ValueError`` naming
the file, what is wrong and what was expected.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

__all__ = ["read_image", "read_volume", "tiff_page_count"]

_TIFF = (".tif", ".tiff")


def _check_file(path, what):
    """Check a readable, non-empty regular file; return ``path`` as ``str``."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{what} path must be a str or os.PathLike, got {type(path).__name__}"
        )
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{what} path {path!r} is a directory; expected a file")
    if not os.path.exists(path):
        raise ValueError(f"{what} file {path!r} does not exist")
    if not os.path.isfile(path):
        raise ValueError(
            f"{what} path {path!r} is not a regular file (device, fifo or socket); "
            "expected a file"
        )
    if not os.access(path, os.R_OK):
        raise ValueError(f"{what} file {path!r} is not readable (permission denied)")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{what} file {path!r} is empty (0 bytes)")
    return path


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _to_unit(arr):
    """Integer images -> [0, 1] by their dtype range; floats are clipped to [0, 1]."""
    if arr.dtype == bool:
        return arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.dtype.itemsize >= 4:  # Pillow's "I" mode: 16-bit data in int32
            top = float(arr.max()) if arr.size else 1.0
            scale = 65535.0 if 255 < top <= 65535 else (255.0 if top <= 255 else top)
            return np.clip(arr.astype(np.float64) / scale, 0.0, 1.0)
        return arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    out = arr.astype(np.float64)
    if out.size and not np.isfinite(out).all():
        raise ValueError("contains NaN or inf pixels; expected finite gray levels")
    if out.size and out.max() > 1.0:
        out = out / out.max()
    return np.clip(out, 0.0, 1.0)


def _frame_array(im):
    """One Pillow frame -> ndarray (H, W), (H, W, 3) or (H, W, 4) (alpha last)."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif mode in ("RGBa", "La"):
        im = im.convert("RGBA")
    elif mode not in (
        "1",
        "L",
        "LA",
        "I",
        "I;16",
        "I;16B",
        "I;16L",
        "I;16N",
        "F",
        "RGB",
        "RGBA",
        "RGBX",
    ):
        im = im.convert("RGBA")
    arr = np.asarray(im)
    if im.mode == "RGBX":
        arr = arr[..., :3]
    return arr


def _open_image(path, what="image"):
    """Open and decode with Pillow; a failure is a ValueError naming the file."""
    from PIL import Image

    im = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            im.load()
    except BaseException as exc:
        if im is not None:
            im.close()
        if not isinstance(exc, Exception):
            raise
        _raise_open_error(exc, path, what)
    return im


def _raise_open_error(exc, path, what):
    """Map a Pillow failure to a one-line ValueError."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        suffix = os.path.splitext(path)[1].lower() or "(no suffix)"
        raise ValueError(
            f"cannot read {what} {path!r}: not a recognised image (corrupt, or not a "
            f"{suffix} file); expected a valid PNG/JPEG/TIFF/BMP/GIF/WebP file"
        ) from None
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        raise ValueError(
            f"cannot read {what} {path!r}: {_first_line(exc)}; expected an image "
            "below Pillow's pixel limit (resize it, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust the file)"
        ) from None
    # Pillow raises OSError, SyntaxError, struct.error, ... for broken files
    raise ValueError(
        f"cannot read {what} {path!r}: {_first_line(exc)} (corrupt or truncated "
        "file?); expected a valid PNG/JPEG/TIFF/BMP/GIF/WebP file"
    ) from None


def read_image(path):
    """Read a 2D image as luminance in [0, 1] and an optional alpha mask.

    Parameters
    ----------
    path : str or os.PathLike
        A PNG, JPEG, TIFF (first page), BMP, GIF (first frame) or WebP file.

    Returns
    -------
    lum : (H, W) ndarray of float64
        Rec. 601 luminance of colour images, or the gray level.
    alpha : (H, W) ndarray of float64 or None
        The alpha channel in [0, 1] when the image has one.

    Raises
    ------
    ValueError
        If the file is missing, a directory, empty, unreadable, corrupt or
        truncated, holds NaN/inf, or is not a 2D image.
    """
    path = _check_file(path, "image")
    im = _open_image(path)
    try:
        try:
            img = _frame_array(im)
        except Exception as exc:
            raise ValueError(
                f"cannot decode image {path!r}: {_first_line(exc)}; expected a valid "
                "PNG/JPEG/TIFF/BMP/GIF/WebP file"
            ) from None
    finally:
        im.close()
    try:
        img = _to_unit(img)
    except ValueError as exc:
        raise ValueError(f"image {path!r} {exc}") from None
    alpha = None
    if img.ndim == 3:
        ch = img.shape[-1]
        if ch in (2, 4):
            alpha = np.ascontiguousarray(img[..., -1])
            img = img[..., :-1]
            ch -= 1
        if ch == 3:
            img = img @ np.array([0.299, 0.587, 0.114])
        else:
            img = img[..., 0]
    if img.ndim != 2:
        raise ValueError(f"image {path!r} has shape {img.shape}; expected a 2D image")
    if img.size == 0:
        raise ValueError(f"image {path!r} has no pixels; expected at least one")
    return np.ascontiguousarray(img), alpha


def tiff_page_count(path) -> int:
    """Count the pages of a TIFF file (1 for anything Pillow cannot open)."""
    path = _check_file(path, "image")
    try:
        im = _open_image(path)
    except ValueError:
        return 1  # read_image reports the problem with the right message
    try:
        return int(getattr(im, "n_frames", 1))
    finally:
        im.close()


def _read_tiff_stack(path):
    from PIL import ImageSequence

    im = _open_image(path, "volume")
    try:
        pages = []
        for frame in ImageSequence.Iterator(im):
            page = _frame_array(frame)
            if page.ndim == 3:  # colour page: Pillow's luminance, alpha ignored
                page = np.asarray(frame.convert("L"))
            pages.append(page)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(
            f"cannot read volume {path!r}: {_first_line(exc)} (corrupt or truncated "
            "file?); expected a multi-page TIFF"
        ) from None
    finally:
        im.close()
    shapes = {p.shape for p in pages}
    if len(shapes) != 1:
        raise ValueError(
            f"volume {path!r} has pages of different shapes {sorted(shapes)}; "
            "expected equal pages"
        )
    return np.stack(pages)


def read_volume(path, *, allow_2d=False):
    """Read a 3D volume from ``.npy`` or a multi-page TIFF as float64 values.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npy`` file (values used as they are) or a multi-page TIFF (gray levels
        scaled to [0, 1]).
    allow_2d : bool
        Accept a 2D array too.

    Returns
    -------
    ndarray of float64
        ``(D, H, W)`` (or ``(H, W)`` with ``allow_2d``).

    Raises
    ------
    ValueError
        If the file is missing, unreadable, truncated, not numeric (or complex), or
        has the wrong number of dimensions.
    """
    path = _check_file(path, "volume")
    if path.lower().endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ValueError(
                f"cannot read array file {path!r}: {_first_line(exc)}; "
                "expected a NumPy .npy file"
            ) from None
        if not isinstance(arr, np.ndarray):
            raise ValueError(
                f"array file {path!r} holds {type(arr).__name__}; expected one "
                "NumPy array (.npy, not .npz)"
            )
    else:
        try:
            arr = _to_unit(_read_tiff_stack(path))
        except ValueError as exc:
            if str(exc).startswith("contains"):
                raise ValueError(f"volume {path!r} {exc}") from None
            raise
    if arr.dtype.kind == "c":
        raise ValueError(
            f"array file {path!r} has complex dtype {arr.dtype}; expected real "
            "non-negative values"
        )
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise ValueError(f"array file {path!r} has dtype {arr.dtype}; expected numbers")
    dims = (2, 3) if allow_2d else (3,)
    if arr.ndim not in dims:
        raise ValueError(
            f"array file {path!r} has shape {arr.shape} ({arr.ndim}D); expected "
            f"{' or '.join(f'{d}D' for d in dims)}"
        )
    return arr.astype(np.float64)
