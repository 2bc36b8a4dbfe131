"""Create the sample densities in ``data/`` (deterministic; numpy + imageio only).

Run from anywhere::

    python data/make_samples.py

Writes, next to this script:

- ``portrait.png``  256x256 8-bit grayscale: a synthetic face-like composition with
  smooth gradients, sharp edges, rings and a pure-white (zero-density) background.
- ``gradient.png``  128x192 8-bit RGB: a colour gradient with a few shapes.
- ``blobs3d.npy``   48x48x48 float32 volume: Gaussian blobs with an empty corner.

Images are read with dark = dense (``Density.from_image(..., invert=True)``).
"""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _to_uint8(img):
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def make_portrait(size=256):
    """Grayscale luminance in [0, 1] (1 = white = no density), ``(size, size)``."""
    r, c = np.mgrid[0:size, 0:size] + 0.5
    r, c = r / size, c / size  # unit square, (row, col)
    img = np.ones((size, size))  # white background: zero density

    # Shoulders: a dark trapezoid-ish band at the bottom with a vertical gradient.
    shoulders = (r > 0.78) & (np.abs(c - 0.5) < 0.22 + 0.9 * (r - 0.78))
    img[shoulders] = 0.15 + 0.45 * (1.0 - r[shoulders]) / 0.22

    # Neck: a sharp-edged mid-gray rectangle.
    neck = (r > 0.62) & (r <= 0.8) & (np.abs(c - 0.5) < 0.08)
    img[neck] = 0.55

    # Head: an ellipse shaded by a smooth diagonal light (dark lower right).
    head = ((r - 0.42) / 0.27) ** 2 + ((c - 0.5) / 0.21) ** 2 < 1.0
    shade = 0.25 + 0.6 * np.clip(1.2 - (r + c - 0.55), 0.0, 1.0)
    img[head] = np.clip(shade[head], 0.0, 0.9)

    # Hair: a dark crescent on top of the head with a radial gradient.
    dist = np.hypot((r - 0.42) / 0.29, (c - 0.5) / 0.23)
    hair = (dist < 1.0) & ~head & (r < 0.45)
    hair |= head & (r < 0.24)
    img[hair] = 0.05 + 0.25 * np.clip(1.0 - dist[hair], 0.0, 1.0)

    # Eyes: concentric rings (dark iris ring, white sclera, black pupil).
    for ec in (0.41, 0.59):
        rho = np.hypot(r - 0.40, c - ec)
        img[rho < 0.045] = 1.0
        img[(rho >= 0.022) & (rho < 0.035)] = 0.3
        img[rho < 0.012] = 0.0
        ring = (rho >= 0.055) & (rho < 0.062) & head
        img[ring] = 0.2

    # Nose: a smooth vertical gradient wedge.
    nose = (r > 0.43) & (r < 0.53) & (np.abs(c - 0.5) < 0.015 + 0.25 * (r - 0.43))
    img[nose] = 0.2 + 4.0 * (0.53 - r[nose])

    # Mouth: a sharp-edged dark rectangle.
    mouth = (np.abs(r - 0.58) < 0.012) & (np.abs(c - 0.5) < 0.07)
    img[mouth] = 0.05

    # A geometric frame in the top-left corner: rings and a solid disc.
    rho = np.hypot(r - 0.12, c - 0.12)
    for rad in (0.04, 0.07, 0.10):
        img[np.abs(rho - rad) < 0.006] = 0.1
    img[rho < 0.02] = 0.0

    # A horizontal gradient strip along the bottom edge (fully dark to white).
    strip = r > 0.95
    img[strip] = c[strip]
    return img


def make_gradient(shape=(128, 192)):
    """RGB image in [0, 1], ``shape + (3,)``: a hue gradient with shapes on top."""
    h, w = shape
    r, c = np.mgrid[0:h, 0:w] + 0.5
    u, v = c / w, r / h
    hue = u[..., None] + np.array([0.0, 1.0 / 3.0, 2.0 / 3.0])
    rgb = 0.5 + 0.5 * np.cos(2 * np.pi * hue)  # smooth colour wheel
    rgb = rgb * (0.35 + 0.65 * v[..., None])  # darker towards the top
    # A saturated disc, a dark triangle and a white (empty) square.
    disc = np.hypot(r - 0.55 * h, c - 0.3 * w) < 0.22 * h
    rgb[disc] = [0.85, 0.1, 0.15]
    tri = (r > 0.2 * h) & (r < 0.8 * h) & (np.abs(c - 0.7 * w) < 0.4 * (r - 0.2 * h))
    rgb[tri] = [0.05, 0.2, 0.6]
    square = (np.abs(r - 0.2 * h) < 0.1 * h) & (np.abs(c - 0.12 * w) < 0.1 * h)
    rgb[square] = 1.0
    # Thin yellow ring around the disc.
    ring = np.abs(np.hypot(r - 0.55 * h, c - 0.3 * w) - 0.27 * h) < 1.5
    rgb[ring] = [0.95, 0.85, 0.1]
    return rgb


def make_blobs3d(n=48):
    """Float32 volume ``(n, n, n)``: Gaussian blobs, zero in the low corner."""
    z, y, x = (np.mgrid[0:n, 0:n, 0:n] + 0.5) / n
    blobs = [  # (centre (z, y, x), sigma, amplitude)
        ((0.65, 0.6, 0.55), 0.12, 1.0),
        ((0.3, 0.75, 0.7), 0.07, 1.6),
        ((0.75, 0.25, 0.7), 0.09, 0.8),
        ((0.5, 0.45, 0.25), 0.05, 2.0),
    ]
    vol = np.zeros((n, n, n))
    for (cz, cy, cx), sigma, amp in blobs:
        r2 = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2
        vol += amp * np.exp(-r2 / (2 * sigma**2))
    vol += 0.02  # a faint background so most of the box has some mass
    vol[(z + y + x) < 0.6] = 0.0  # empty corner at the origin
    return vol.astype(np.float32)


def main():
    """Write the three samples next to this script."""
    iio.imwrite(os.path.join(HERE, "portrait.png"), _to_uint8(make_portrait()))
    iio.imwrite(os.path.join(HERE, "gradient.png"), _to_uint8(make_gradient()))
    np.save(os.path.join(HERE, "blobs3d.npy"), make_blobs3d())


if __name__ == "__main__":
    main()
