"""Issue 7 reference case: 512x600 photo-like density, N = 10,000, mass error 1e-3.

Times (compile excluded) the solve from zero weights (best of 3) and 20 iterations of
uniform Lloyd (best of 2; centre: 1), for fractional and centre quadrature, then the
Koch and tol 1e-8 solves (best of 3), and writes
benchmarks/results/fractional.json.

    python benchmarks/bench_fractional.py
"""

import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import rasterquant as rq


def best_of(k, call):
    """Return the best wall time of ``k`` calls, all times and the last result."""
    times = []
    for _ in range(k):
        t = time.perf_counter()
        r = call()
        times.append(time.perf_counter() - t)
    return min(times), times, r


def photo_512x600(seed=0):
    from PIL import Image, ImageFilter

    here = os.path.dirname(__file__)
    img = Image.open(os.path.join(here, "..", "data", "portrait.png")).convert("L")
    img = img.resize((600, 512), Image.BICUBIC).filter(ImageFilter.GaussianBlur(1.5))
    lum = np.asarray(img, dtype=float) / 255.0
    return rq.Density.from_luminance(lum, floor=0.05)


def main():
    dens = photo_512x600()
    pts = rq.sample_points(dens, 10000, seed=0)
    out = {"case": "512x600 portrait (floor 0.05), N=10000, tol 1e-3, zero weights"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for q in ("fractional", "center"):
            rq.solve_ot(dens, pts[:50], tol=1e-3, quadrature=q)  # compile
            rq.lloyd(dens, pts[:50], n_iter=1, ot_tol=1e-3, quadrature=q)
            # best of three solves (all reported): one run is at the mercy of
            # whatever else the machine does
            solves = []
            for _ in range(3):
                t = time.perf_counter()
                r = rq.solve_ot(dens, pts, tol=1e-3, quadrature=q)
                solves.append(time.perf_counter() - t)
            t_solve = min(solves)
            lloyds = []
            for _ in range(2 if q == "fractional" else 1):
                t = time.perf_counter()
                ll = rq.lloyd(dens, pts, n_iter=20, ot_tol=1e-3, quadrature=q)
                lloyds.append(time.perf_counter() - t)
            t_lloyd = min(lloyds)
            out[q] = {
                "solve_seconds": t_solve,
                "solve_seconds_all": solves,
                "lloyd20_seconds_all": lloyds,
                "solve_converged": r.converged,
                "solve_max_error": r.max_error,
                "newton_iterations": r.n_iter,
                "lloyd20_seconds": t_lloyd,
                "lloyd_max_mass_error": float(np.nanmax(ll.history["max_mass_error"])),
                "lloyd_energy_first_last": [
                    ll.history["energy"][0],
                    ll.history["energy"][-1],
                ],
            }
            print(q, json.dumps(out[q]), flush=True)
    # thin cells: the 1,025 vertices of a level-5 von Koch curve on 1024^2, tol 1e-3
    uni = rq.Density.uniform((1024, 1024))
    koch = rq.sample_points(uni, 1025, method="koch", seed=0)
    best, all_s, r = best_of(3, lambda: rq.solve_ot(uni, koch, tol=1e-3))
    out["koch_1025_on_1024^2"] = {
        "seconds": best,
        "seconds_all": all_s,
        "converged": r.converged,
        "max_error": r.max_error,
    }
    # quadratic convergence: N = 10,000 on 512^2, tol 1e-8
    uni = rq.Density.uniform((512, 512))
    pts = rq.sample_points(uni, 10000, seed=1)
    best, all_s, r = best_of(3, lambda: rq.solve_ot(uni, pts, tol=1e-8))
    out["uniform_512^2_N10000_tol1e-8"] = {
        "seconds": best,
        "seconds_all": all_s,
        "converged": r.converged,
        "max_error_history": r.history["max_mass_error"],
    }
    print(
        json.dumps(
            {k: out[k] for k in ("koch_1025_on_1024^2", "uniform_512^2_N10000_tol1e-8")}
        ),
        flush=True,
    )
    out["reference_seconds_here"] = {"pysdot_solve": 7.4, "pysdot_lloyd20": 42.0}
    path = os.path.join(os.path.dirname(__file__), "results", "fractional.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
