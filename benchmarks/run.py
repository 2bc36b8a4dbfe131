"""Core-engine benchmarks (issue 2 and issue 7 figures). Prints and writes JSON.

Usage::

    python benchmarks/run.py                 # all cases -> benchmarks/results/core.json
    python benchmarks/run.py sweep solve2d   # selected cases
    python benchmarks/run.py --quick         # smaller sizes (smoke test)

Compile time is excluded: every case runs once on a tiny input first. Each case runs in
this process, one after the other; memory figures come from a fresh subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import rasterquant as rq
from rasterquant.assign.cells import _Raster

RESULTS = os.path.join(os.path.dirname(__file__), "results")
DATA = os.path.join(os.path.dirname(__file__), "..", "data")


def photo_density(size, seed=0):
    """A photo-like 2D density: the portrait sample upscaled, softened, with a floor."""
    from PIL import Image, ImageFilter

    img = Image.open(os.path.join(DATA, "portrait.png")).convert("L")
    img = img.resize((size, size), Image.BICUBIC).filter(ImageFilter.GaussianBlur(2))
    lum = np.asarray(img, dtype=float) / 255.0
    rng = np.random.default_rng(seed)
    lum = np.clip(lum + 0.02 * rng.standard_normal(lum.shape), 0, 1)
    return rq.Density.from_luminance(lum, floor=0.05)


def best_of(fn, repeat=5):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def warmup():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for q in ("center", "fractional"):
            rq.solve_ot(
                np.ones((24, 24)) + np.eye(24),
                [[3.0, 3.0], [12, 15], [20, 4]],
                tol=1e-3,
                quadrature=q,
            )
            rq.solve_ot(
                np.ones((8, 9, 10)),
                [[2.0, 2, 2], [6, 6, 6], [2, 7, 5]],
                tol=1e-3,
                quadrature=q,
            )
            rq.lloyd(np.ones((16, 16)), [[3.0, 3.0], [12, 12]], n_iter=1, quadrature=q)


def case_sweep(size=1024, n=10000, quick=False):
    """One assignment sweep with warm weights vs scipy cKDTree per pixel."""
    from scipy.spatial import cKDTree

    if quick:
        size, n = 256, 600
    dens = photo_density(size)
    pts = rq.sample_points(dens, n, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ot = rq.solve_ot(dens, pts, tol=1e-2, quadrature="fractional")
    w = ot.weights
    out = {"pixels": size * size, "n": n}
    for q in ("center", "fractional"):
        r = _Raster(dens, pts, q)
        labels = np.empty((1, size, size), np.int32)
        r.labels_masses(w, labels)
        # the sweep with its candidate lists built (as in a Newton line search)
        t_kernel = best_of(lambda: r.labels_masses(w, labels))  # noqa: B023

        def fresh():
            r._cand = None  # noqa: B023
            r.labels_masses(w, labels)  # noqa: B023

        t_total = best_of(fresh)
        out[q] = {
            "ns_per_pixel_sweep": 1e9 * t_kernel / size**2,
            "ns_per_pixel_with_candidate_lists": 1e9 * t_total / size**2,
            "ms_candidate_lists": 1e3 * (t_total - t_kernel),
        }
    # baseline: cKDTree nearest lifted point for each pixel (on a sample of pixels)
    lift = np.sqrt(w.max() - w)
    tree = cKDTree(np.column_stack([pts, lift]))
    rows = np.random.default_rng(0).integers(0, size * size, 65536)
    centres = dens.grid.pixel_centres()[rows]
    q = np.column_stack([centres, np.zeros(len(centres))])
    t = best_of(lambda: tree.query(q, k=1), repeat=3)
    out["ckdtree_ns_per_pixel"] = 1e9 * t / len(q)
    out["speedup_vs_ckdtree"] = (
        out["ckdtree_ns_per_pixel"] / out["center"]["ns_per_pixel_with_candidate_lists"]
    )
    return out


def _solve_case(dens, pts, masses, tol, quadrature):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = time.perf_counter()
        res = rq.solve_ot(dens, pts, masses, tol=tol, quadrature=quadrature)
        dt = time.perf_counter() - t
    return {
        "seconds": dt,
        "converged": res.converged,
        "max_error": res.max_error,
        "requested_tol": tol,
        "newton_iterations": res.n_iter,
        "status": res.status,
        "pixels_per_cell": res.pixels_per_cell,
        "warnings": [str(w.message)[:120] for w in caught],
    }


def case_solve2d(quick=False):
    """solve_ot from zero weights on 1024^2 image density, N = 5000, tol 1e-2."""
    out = {}
    sizes = [(256, 300), (512, 1250), (1024, 5000)] if not quick else [(128, 80)]
    for size, n in sizes:
        dens = photo_density(size)
        pts = rq.sample_points(dens, n, seed=2)
        for q in ("center", "fractional"):
            out[f"{size}^2 N={n} {q}"] = _solve_case(dens, pts, None, 1e-2, q)
    # scaling in N at fixed raster
    if not quick:
        dens = photo_density(1024)
        for n in (1000, 5000, 20000):
            pts = rq.sample_points(dens, n, seed=3)
            # other points than the sizes above (seed 3): a key of their own
            out[f"1024^2 N={n} fractional, points seed 3"] = _solve_case(
                dens, pts, None, 1e-2, "fractional"
            )
    return out


def case_issue2d(quick=False):
    """The issue's case alone (run it in its own process): 1024^2, N=5000, tol 1e-2."""
    size, n = (1024, 5000) if not quick else (256, 300)
    dens = photo_density(size)
    pts = rq.sample_points(dens, n, seed=2)
    return {
        f"{size}^2 N={n} fractional run {k}": _solve_case(
            dens, pts, None, 1e-2, "fractional"
        )
        for k in range(3)
    }


def case_passes(quick=False):
    """Milliseconds of one pass (masses only) by quadrature.

    Cases: 1024^2/N=5000, 128^3/N=2000.
    """
    out = {}
    cases = [((1024, 1024), 5000), ((128, 128, 128), 2000)]
    if quick:
        cases = [((128, 128), 100), ((24, 24, 24), 40)]
    for shape, n in cases:
        dens = rq.Density.uniform(shape)
        pts = rq.sample_points(dens, n, seed=6)
        w = np.zeros(n)
        for q in ("center", "fractional"):
            r = _Raster(dens, pts, q)
            r.labels_masses(w)
            out[f"{shape} N={n} {q} ms"] = 1e3 * best_of(lambda: r.labels_masses(w))  # noqa: B023
    return out


def case_solve3d(quick=False):
    """128^3 voxels, N = 2000, lognormal volumes (sigma 0.5), tol 1e-2."""
    out = {}
    sizes = [(64, 250), (96, 850), (128, 2000)] if not quick else [(32, 40)]
    for size, n in sizes:
        dens = rq.Density.uniform((size,) * 3)
        rng = np.random.default_rng(4)
        pts = rng.random((n, 3)) * size
        a = rng.lognormal(sigma=0.5, size=n)
        a /= a.sum()
        for q in ("center", "fractional"):
            out[f"{size}^3 N={n} {q}"] = _solve_case(dens, pts, a, 1e-2, q)
    return out


def case_memory(quick=False):
    """Peak memory per voxel beyond the input density (fresh subprocess, tracemalloc:
    numpy and numba allocations are traced; the density itself is allocated first)."""
    size, n = (128, 2000) if not quick else (48, 100)
    out = {}
    for q in ("center", "fractional"):
        code = f"""
import resource, warnings, numpy as np, rasterquant as rq
warnings.simplefilter("ignore")
rng = np.random.default_rng(4)
d = rq.Density.from_array(rng.random(({size},)*3) + 0.5)
pts = rng.random(({n}, 3)) * {size}
rq.solve_ot(rq.Density.from_array(np.ones((8,8,8))), [[1.,1,1],[5,5,5]],
            quadrature="{q}")
v = d.values
import tracemalloc
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
r = rq.solve_ot(d, pts, tol=1e-2, quadrature="{q}")
r.cells
peak = tracemalloc.get_traced_memory()[1]
print((peak - base) / {size}**3)
"""
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        out[q] = {
            "bytes_per_voxel_beyond_density": float(r.stdout.strip().split()[-1]),
            "voxels": size**3,
            "n": n,
        }
    return out


def case_linear(quick=False):
    """CG (Jacobi) vs direct factorisation of the Newton system, by N."""
    from rasterquant.ot._jacobian import solve_newton_system

    out = {}
    ns = (1000, 5000, 20000, 60000) if not quick else (200,)
    for n in ns:
        size = int(np.sqrt(n * 120))
        dens = rq.Density.uniform((size, size))
        pts = rq.sample_points(dens, n, seed=5)
        r = _Raster(dens, pts, "fractional")
        w = np.zeros(n)
        labels, _m = r.labels_masses(w)
        jac = r.jacobian(labels, 0.0, w)
        rhs = np.random.default_rng(0).standard_normal(n)
        rhs -= rhs.mean()
        row = {}
        for method in ("direct", "cg"):
            t = best_of(
                lambda: solve_newton_system(jac, rhs, method=method),  # noqa: B023
                repeat=2,
            )
            row[method] = t
        out[f"2D N={n}"] = row
    for n in (2000, 10000) if not quick else ():
        size = round((n * 500) ** (1 / 3))
        dens = rq.Density.uniform((size,) * 3)
        pts = rq.sample_points(dens, n, seed=5)
        r = _Raster(dens, pts, "center")
        w = np.zeros(n)
        labels, _m = r.labels_masses(w)
        jac = r.jacobian(labels, 0.0, w)
        rhs = np.random.default_rng(0).standard_normal(n)
        rhs -= rhs.mean()
        out[f"3D N={n}"] = {
            method: best_of(
                lambda: solve_newton_system(jac, rhs, method=method),  # noqa: B023
                repeat=2,
            )
            for method in ("direct", "cg")
        }
    return out


CASES = {
    "sweep": case_sweep,
    "solve2d": case_solve2d,
    "solve3d": case_solve3d,
    "issue2d": case_issue2d,
    "passes": case_passes,
    "memory": case_memory,
    "linear": case_linear,
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("cases", nargs="*", choices=[*CASES, []], default=[])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--output", default=os.path.join(RESULTS, "core.json"))
    args = p.parse_args(argv)
    import numba

    warmup()
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "numba_threads": numba.get_num_threads(),
            "python": platform.python_version(),
            "numba": numba.__version__,
        },
        "quick": args.quick,
    }
    for name in args.cases or list(CASES):
        t = time.perf_counter()
        results[name] = CASES[name](quick=args.quick)
        results[name]["_case_seconds"] = time.perf_counter() - t
        print(name, json.dumps(results[name], indent=1, default=float), flush=True)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    old = {}
    if os.path.exists(args.output):
        with open(args.output) as f:
            old = json.load(f)
    old.update(results)
    with open(args.output, "w") as f:
        json.dump(old, f, indent=1, default=float)
    print("wrote", args.output)


if __name__ == "__main__":
    main()
