"""Issue 16: solve_ot on non-uniform voxel densities (the split-voxel pass in 3D).

Case: 12 Gaussian blobs on a 0.05 floor (seeded), N points drawn from the density
(seeded), lognormal target masses (sigma 0.5, normalised), tol 1e-2, zero weights.
Sizes 128^3 with N = 1,000 and 200^3 with N = 10,000. A uniform density would take
the geometric-cell path (no voxels); these do not.

Times the public ``rq.solve_ot(density, points, masses, tol=1e-2)`` warm (compile
excluded by a solve on a small case first), best of 3 (all reported), and records the
Newton iterations, the achieved error, and, from one more solve with the passes
wrapped (here only), the seconds spent in the fractional sweeps and how many ran. The
load average is read before and after each case (other work on the machine shows up
there). Results go to benchmarks/results/voxels3d.json.

    python benchmarks/bench_voxels3d.py [--sizes 128 200] [--repeat 3] [--out PATH]
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings

import numba
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import rasterquant as rq
from rasterquant.assign import _fractional
from rasterquant.ot import newton

CASES = {128: 1000, 200: 10000}


def blobs(n, n_blobs=12, floor=0.05, seed=0):
    """(n, n, n) density: ``floor`` plus ``n_blobs`` Gaussian blobs of random widths."""
    rng = np.random.default_rng(seed)
    ax = np.arange(n) + 0.5
    vals = np.full((n, n, n), floor)
    for _ in range(n_blobs):
        c = rng.random(3) * n
        s = n * (0.04 + 0.08 * rng.random())
        amp = 0.5 + rng.random()
        gz, gy, gx = (np.exp(-((ax - c[a]) ** 2) / s**2) for a in range(3))
        vals += amp * gz[:, None, None] * gy[None, :, None] * gx[None, None, :]
    return rq.Density.from_array(vals)


def problem(size, n, seed=0):
    dens = blobs(size, seed=seed)
    pts = rq.sample_points(dens, n, seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    a = rng.lognormal(sigma=0.5, size=n)
    return dens, pts, a / a.sum()


def profiled_solve(dens, pts, masses):
    """One solve with the 3D sweeps and the Newton linear solves timed (wrapped)."""
    sweeps = []
    solves = []
    real_sweep = _fractional._fractional_tiles_3d
    real_solve = newton.solve_newton_system

    def sweep(*args):
        t = time.perf_counter()
        r = real_sweep(*args)
        opts = args[8]
        sweeps.append((time.perf_counter() - t, bool(opts[0]), bool(opts[1])))
        return r

    def solve(*args, **kw):
        t = time.perf_counter()
        r = real_solve(*args, **kw)
        solves.append(time.perf_counter() - t)
        return r

    _fractional._fractional_tiles_3d = sweep
    newton.solve_newton_system = solve
    try:
        t0 = time.perf_counter()
        c0 = time.process_time()
        r = rq.solve_ot(dens, pts, masses, tol=1e-2)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        _fractional._fractional_tiles_3d = real_sweep
        newton.solve_newton_system = real_solve
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "sweeps": len(sweeps),
        "sweep_seconds": sum(s[0] for s in sweeps),
        "sweeps_with_jacobian": sum(s[2] for s in sweeps),
        "sweeps_with_moments": sum(s[1] for s in sweeps),
        "sweep_seconds_each": [round(s[0], 4) for s in sweeps],
        "linear_solves": len(solves),
        "linear_solve_seconds": sum(solves),
        "other_seconds": wall - sum(s[0] for s in sweeps) - sum(solves),
        "n_iter": r.n_iter,
    }


def run_case(size, n, repeat):
    dens, pts, masses = problem(size, n)
    load0 = os.getloadavg()
    times = []
    cpus = []
    for _ in range(repeat):
        t = time.perf_counter()
        c = time.process_time()
        r = rq.solve_ot(dens, pts, masses, tol=1e-2)
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    load1 = os.getloadavg()
    row = {
        "seconds": min(times),
        "seconds_all": times,
        "cpu_seconds_all": cpus,
        "newton_iterations": r.n_iter,
        "coarse_levels": r.coarse_levels,
        "status": r.status,
        "converged": bool(r.converged),
        "max_error": float(r.max_error),
        "max_mass_error_history": [float(e) for e in r.history["max_mass_error"]],
        "masses_checksum": float(np.sum(r.masses * np.arange(1, n + 1))),
        "profiled_run": profiled_solve(dens, pts, masses),
        "loadavg_before": load0,
        "loadavg_after": load1,
    }
    return f"{size}^3 N={n}", row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=sorted(CASES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(__file__), "results", "voxels3d.json"),
    )
    args = ap.parse_args(argv)
    out = {
        "case": "12 Gaussian blobs on a 0.05 floor (seed 0), points drawn from the "
        "density (seed 1), lognormal masses sigma 0.5 (seed 2), tol 1e-2, zero "
        "weights; public solve_ot, warm, best of repeat",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(),
        "numba_threads": numba.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "versions": {
            "rasterquant": rq.__version__,
            "numpy": np.__version__,
            "numba": numba.__version__,
        },
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        dens, pts, masses = problem(24, 40)
        rq.solve_ot(dens, pts, masses, tol=1e-2)  # compile (not timed below)
        out["warmup_seconds"] = time.perf_counter() - t
        for size in args.sizes:
            key, row = run_case(size, CASES[size], args.repeat)
            out[key] = row
            brief = {k: row[k] for k in ("seconds", "newton_iterations", "max_error")}
            print(key, json.dumps(brief), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
