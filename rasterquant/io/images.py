"""Reading 2D images and 3D volumes into float arrays."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["read_image", "read_volume", "tiff_page_count"]


def _check_file(path, what):
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{what} path {path!r} is a directory; expected a file")
    if not os.path.exists(path):
        raise ValueError(f"{what} file {path!r} does not exist")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{what} file {path!r} is not readable (permission denied)")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{what} file {path!r} is empty (0 bytes)")
    return path


def _to_unit(arr):
    """Integer images -> [0, 1] by their dtype range; floats are clipped to [0, 1]."""
    if arr.dtype == bool:
        return arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    out = arr.astype(np.float64)
    if out.size and out.max() > 1.0:
        out = out / out.max()
    return np.clip(out, 0.0, 1.0)


def read_image(path):
    """Read a 2D image as luminance in [0, 1] and an optional alpha mask.

    Returns
    -------
    lum : (H, W) ndarray of float64
        Rec. 601 luminance of colour images, or the gray level.
    alpha : (H, W) ndarray of float64 or None
        The alpha channel in [0, 1] when the image has one.
    """
    import imageio.v3 as iio

    path = _check_file(path, "image")
    try:
        img = np.asarray(iio.imread(path))
    except Exception as exc:  # imageio raises many types for corrupt files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(
            f"cannot read image {path!r}: {msg}; expected a valid PNG/JPEG/TIFF/BMP file"
        ) from None
    if img.ndim == 3 and img.shape[-1] not in (1, 2, 3, 4) and img.shape[0] > 1:
        raise ValueError(
            f"image {path!r} has {img.shape[0]} pages; read it as a 3D volume"
        )
    img = _to_unit(img)
    alpha = None
    if img.ndim == 3:
        ch = img.shape[-1]
        if ch in (2, 4):
            alpha = img[..., -1]
            img = img[..., :-1]
            ch -= 1
        if ch == 3:
            img = img @ np.array([0.299, 0.587, 0.114])
        else:
            img = img[..., 0]
    if img.ndim != 2:
        raise ValueError(f"image {path!r} has shape {img.shape}; expected a 2D image")
    if img.size == 0:
        raise ValueError(f"image {path!r} has no pixels")
    return np.ascontiguousarray(img), alpha


def tiff_page_count(path) -> int:
    """Number of pages of a TIFF file."""
    import imageio.v3 as iio

    path = _check_file(path, "image")
    try:
        props = iio.improps(path, index=None)
    except Exception:
        return 1
    shape = props.shape
    if props.n_images is not None:
        return int(props.n_images)
    return int(shape[0]) if len(shape) >= 3 and shape[-1] not in (3, 4) else 1


def read_volume(path, *, allow_2d=False):
    """Read a 3D volume from ``.npy`` or a multi-page TIFF as float64 values."""
    path = _check_file(path, "volume")
    if path.lower().endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise ValueError(
                f"cannot read array file {path!r}: {str(exc).splitlines()[0]}; "
                "expected a NumPy .npy file"
            ) from None
    else:
        import imageio.v3 as iio

        try:
            arr = np.asarray(iio.imread(path, index=None))
        except Exception as exc:
            raise ValueError(
                f"cannot read volume {path!r}: {str(exc).splitlines()[0]}; expected "
                "a multi-page TIFF"
            ) from None
        arr = _to_unit(arr)
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise ValueError(
            f"array file {path!r} has dtype {arr.dtype}; expected numbers"
        )
    dims = (2, 3) if allow_2d else (3,)
    if arr.ndim not in dims:
        raise ValueError(
            f"array file {path!r} has shape {arr.shape} ({arr.ndim}D); expected "
            f"{' or '.join(f'{d}D' for d in dims)}"
        )
    return arr.astype(np.float64)
