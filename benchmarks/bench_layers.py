"""Colour-separation benchmark: CMYK stipple of a 1024x1024 photo, 40,000 dots, 50 its.

Times ``rasterquant.stipple_layers.stipple_layers`` (compilation excluded by a
warm-up on a tiny image) on matplotlib's bundled ``grace_hopper.jpg`` (512 x 600)
upscaled (bicubic) to 1024 rows and padded with white to 1024 x 1024 (scikit-image's
``astronaut`` when installed and ``--image astronaut``). Reports the time, the
dots per ink, each layer's achieved mass error beside the requested one, the
composite's mean tone error per channel (composite minus image) and the fraction of
dots within half a pixel of another ink's dot. Writes benchmarks/results/layers.json.

    python benchmarks/bench_layers.py [--size 1024] [--n 40000] [--iterations 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# measure this working tree, never an installed copy
sys.path.insert(0, ROOT)


def photo(size, name="grace_hopper"):
    """(size, size, 3) RGB in [0, 1]: a bundled photo scaled to ``size`` rows, padded.

    The photo keeps its aspect ratio (bicubic), centred on white.
    """
    from PIL import Image

    if name == "astronaut":
        from skimage import data

        im = Image.fromarray(data.astronaut())
    else:
        import matplotlib.cbook as cbook

        im = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    im = im.convert("RGB")
    w, h = im.size
    f = size / max(w, h)
    im = im.resize((round(w * f), round(h * f)), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(im, ((size - im.size[0]) // 2, (size - im.size[1]) // 2))
    return np.asarray(canvas, dtype=np.float64) / 255.0


def independent_coincidence(res, rgb, distance=0.5):
    """Expected coincident fraction if the layers were independent Poisson processes.

    A dot of ink ``i`` at ``x`` has another ink's dot within ``distance`` with
    probability ``1 - exp(-pi distance^2 sum_{j != i} rho_j(x))``, ``rho_j`` the dot
    density of ink ``j`` (its dots spread like its coverage).
    """
    from rasterquant.stipple_layers import separate_inks

    _, cov = separate_inks(rgb, res.mode if res.mode != "palette" else "cmyk")
    dens = [
        layer.n * c / c.sum() if c.sum() > 0 else 0 * c
        for layer, c in zip(res.layers, cov, strict=True)
    ]
    total = sum(dens)
    hits, count = 0.0, 0
    for layer, d in zip(res.layers, dens, strict=True):
        if not layer.n:
            continue
        ij = np.clip(layer.points.astype(np.int64), 0, np.array(rgb.shape[:2]) - 1)
        other = (total - d)[ij[:, 0], ij[:, 1]]
        hits += float(np.sum(1 - np.exp(-np.pi * distance**2 * other)))
        count += layer.n
    return hits / max(count, 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--n", type=int, default=40000)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--layers", default="cmyk")
    p.add_argument(
        "--image", default="grace_hopper", choices=["grace_hopper", "astronaut"]
    )
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--output", default=os.path.join(HERE, "results", "layers.json"))
    args = p.parse_args(argv)

    import numba

    from rasterquant import __version__
    from rasterquant.stipple_layers import (
        coincident_fraction,
        stipple_layers,
        tone_error,
    )

    rgb = photo(args.size, args.image)
    # warm-up: compile every kernel on a tiny image (not timed)
    stipple_layers(rgb[::32, ::32], 40, layers=args.layers, iterations=2)
    runs = []
    for _ in range(args.repeat):
        load_before = os.getloadavg()
        t, cpu = time.perf_counter(), time.process_time()
        res = stipple_layers(
            rgb, args.n, layers=args.layers, iterations=args.iterations, seed=0
        )
        sec, cpu = time.perf_counter() - t, time.process_time() - cpu
        runs.append(
            {
                "seconds": sec,
                "cpu_seconds": cpu,
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
            }
        )
        print(
            f"stipple_layers: {sec:.2f} s wall, {cpu:.2f} s CPU (all threads), "
            f"load {load_before}",
            flush=True,
        )
    t = time.perf_counter()
    err = tone_error(res)
    render_sec = time.perf_counter() - t
    layers = []
    for layer in res.layers:
        e = layer.max_mass_error
        layers.append(
            {
                "name": layer.name,
                "n": layer.n,
                "ink_mass": layer.ink_mass,
                "max_mass_error": None if e != e else e,
                "ot_tol": None if layer.ot_tol != layer.ot_tol else layer.ot_tol,
                "iterations": layer.n_iter,
                "radius_median": float(np.median(layer.radii)) if layer.n else None,
                "warnings": list(layer.warnings),
            }
        )
    out = {
        "case": {
            "size": args.size,
            "n": args.n,
            "iterations": args.iterations,
            "layers": args.layers,
            "image": (
                f"{args.image} scaled (bicubic, aspect kept) to {args.size} px, "
                "padded with white to a square"
            ),
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "numba_threads": numba.get_num_threads(),
            "threading_layer": numba.threading_layer(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        },
        "rasterquant_version": __version__,
        "runs": runs,
        "seconds": min(r["seconds"] for r in runs),
        "target_seconds": 20.0,
        "counts": res.counts,
        "layers": layers,
        "image_tone": [float(v) for v in res.image_tone],
        "tone_error": [float(v) for v in err],
        "tone_error_relative": [float(v) for v in err / res.image_tone],
        "coincident_dots": coincident_fraction(res),
        "coincident_dots_if_independent": independent_coincidence(res, rgb),
        "composite_render_seconds": render_sec,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)
    print(
        json.dumps(
            {
                k: out[k]
                for k in (
                    "seconds",
                    "counts",
                    "tone_error",
                    "tone_error_relative",
                    "coincident_dots",
                    "coincident_dots_if_independent",
                )
            },
            indent=2,
        )
    )
    return out


if __name__ == "__main__":
    main()
