"""The public ``rq.assign_cells`` on 1024^2 rasters with N = 10,000 (issue 16).

Cases: a uniform 1024x1024 density and matplotlib's grace_hopper.jpg (512x600,
density 1 - luminance + 0.02: a photo the code was not tuned on), both with weights
from a converged ``rq.solve_ot`` (realistic power cells); the uniform case also with
zero weights. Each case is timed for centre and fractional quadrature through the
public call only (best of 5 after a warm-up call that compiles), and reported in ns
per pixel with the load average. Writes benchmarks/results/assign.json.

    python benchmarks/bench_assign.py
"""

import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import rasterquant as rq

N = 10_000
REPEATS = 5


def grace_hopper():
    """Density 1 - luminance + 0.02 of matplotlib's grace_hopper.jpg (512x600)."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        rgb = np.asarray(Image.open(f).convert("RGB"), dtype=np.float64) / 255.0
    lum = rgb @ np.array([0.2126, 0.7152, 0.0722])
    return rq.Density.from_array(1.0 - lum + 0.02)


def cases():
    """Yield (name, density, points, weights)."""
    uni = rq.Density.uniform((1024, 1024))
    pts = rq.sample_points(uni, N, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = rq.solve_ot(uni, pts, tol=1e-2).weights
    yield "uniform 1024x1024, solve_ot weights", uni, pts, w
    yield "uniform 1024x1024, zero weights", uni, pts, np.zeros(N)
    gh = grace_hopper()
    pts = rq.sample_points(gh, N, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = rq.solve_ot(gh, pts, tol=1e-2).weights
    yield "grace_hopper 512x600 (1 - lum + 0.02), solve_ot weights", gh, pts, w


def best_of(fn, repeats=REPEATS):
    """Return all timings (s) of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main():
    out = {
        "what": "public rq.assign_cells, best of 5 after a warm-up call, ns per pixel",
        "n_points": N,
        "cases": [],
    }
    for name, dens, pts, w in cases():
        row = {"case": name, "pixels": int(dens.grid.n_pixels)}
        for q in ("center", "fractional"):
            times = best_of(
                lambda d=dens, p=pts, w=w, q=q: rq.assign_cells(d, p, w, quadrature=q)
            )
            ns = min(times) / dens.grid.n_pixels * 1e9
            row[q] = {"ns_per_pixel": ns, "seconds_all": times}
            print(f"{name:58s} {q:10s} {ns:7.1f} ns/px  (best {min(times):.4f} s)")
        out["cases"].append(row)
    out["loadavg"] = os.getloadavg()
    print("load average", out["loadavg"])
    path = os.path.join(os.path.dirname(__file__), "results", "assign.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
