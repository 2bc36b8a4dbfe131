"""Solves on densities with zero pixels: the portrait with a white background.

``from_luminance(floor=0)`` leaves the white pixels at zero density (the default of
``stipple``). Points drawn from the density, uniform target masses, zero weights,
fractional quadrature. Reports time, convergence and the achieved max relative mass
error per case, then a sweep of 54 smaller solves (how many do not converge), and
writes benchmarks/results/zero_density.json.

    python benchmarks/bench_zero_density.py

Cold solves on such densities start from solves on coarser rasters and on this one
with the zero pixels raised to ``_config.ZERO_DENSITY_FLOOR`` of the max density;
if that start does not lead to ``tol``, the plain coarse-to-fine start is tried too.
"""

import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import rasterquant as rq

HERE = os.path.dirname(__file__)
CASES = [
    # size, N, seed, tol
    (256, 2000, 2, 1e-3),
    (512, 4000, 5, 1e-3),
    (512, 8000, 5, 1e-3),
    (512, 8000, 6, 1e-3),
    (512, 16000, 5, 1e-3),
    (1024, 20000, 5, 1e-2),
]


def portrait(size):
    from PIL import Image, ImageFilter

    img = Image.open(os.path.join(HERE, "..", "data", "portrait.png")).convert("L")
    img = img.resize((size, size), Image.BICUBIC).filter(ImageFilter.GaussianBlur(1.0))
    lum = np.asarray(img, dtype=float) / 255.0
    return rq.Density.from_luminance(lum, floor=0.0)


def sweep():
    """Many small cold solves: sizes 128^2 to 384^2, N from 300 to 3,600, 3 seeds."""
    cases = [(s, n) for s in (128, 192, 256) for n in (300, 600, 1200, 2400)]
    cases += [(s, n) for s in (320, 384) for n in (1500, 2500, 3500)]
    failed = []
    t = time.perf_counter()
    for size, n in cases:
        dens = portrait(size)
        for seed in range(3):
            r = rq.solve_ot(dens, rq.sample_points(dens, n, seed=seed), tol=1e-3)
            if not r.converged:
                failed.append(f"{size}^2 N={n} seed={seed}: {r.max_error:.2g}")
    res = {
        "solves": 3 * len(cases),
        "not_converged": failed,
        "seconds_total": time.perf_counter() - t,
        "tol": 1e-3,
    }
    print("sweep", json.dumps(res), flush=True)
    return res


def main():
    out = {"case": "portrait, white background at zero density (floor 0), blur 1"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = portrait(64)
        rq.solve_ot(small, rq.sample_points(small, 50, seed=0), tol=1e-3)  # compile
        for size, n, seed, tol in CASES:
            dens = portrait(size)
            pts = rq.sample_points(dens, n, seed=seed)
            t = time.perf_counter()
            r = rq.solve_ot(dens, pts, tol=tol)
            key = f"{size}^2 N={n} seed={seed} tol={tol:g}"
            out[key] = {
                "seconds": time.perf_counter() - t,
                "converged": bool(r.converged),
                "max_error": float(r.max_error),
                "newton_iterations": int(r.n_iter),
                "zero_pixel_fraction": float(np.mean(dens.values == 0)),
            }
            print(key, json.dumps(out[key]), flush=True)
        out["sweep"] = sweep()
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "zero_density.json")
    with open(path + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(path + ".tmp", path)
    print("wrote", os.path.abspath(path))


if __name__ == "__main__":
    main()
