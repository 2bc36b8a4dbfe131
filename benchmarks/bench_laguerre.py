"""Exact geometric power cells of a uniform density (``laguerre_cells``), 3D periodic.

Times ``laguerre_cells`` (compile excluded by a warm-up) on periodic boxes
``[0, side)^3`` with N uniform random points and small random weights (normal, sd 0.1 *
mean cell volume^(2/3)), with and without the Jacobian (moments always on), and prints
ms per call and microseconds per cell (wall time, all numba threads). The geometry does
not depend on a raster: ``side`` only sets the box that a side^3 voxel pass would
cover.

    python benchmarks/bench_laguerre.py   # 128^3 N=1e3, 200^3 N=1e4, 400^3 N=1e5
    python benchmarks/bench_laguerre.py --repeat 1
"""

import argparse
import os
import sys
import time

import numba
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from rasterquant.assign._laguerre import laguerre_cells  # noqa: E402

CASES = [(128, 1_000), (200, 10_000), (400, 100_000)]


def periodic_case(side, n, seed=0):
    """Random points and weights in the periodic box [0, side)^3."""
    rng = np.random.default_rng(seed)
    pts = rng.random((n, 3)) * side
    weights = rng.normal(scale=0.1 * (side**3 / n) ** (2.0 / 3.0), size=n)
    return pts, weights, np.zeros(3), np.full(3, float(side)), np.ones(3, bool)


def best_time(args, want_jac, repeat):
    """Best wall time in seconds of ``repeat`` calls."""
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        laguerre_cells(*args, want_moments=True, want_jac=want_jac)
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="calls per case (best)")
    args = parser.parse_args(argv)
    laguerre_cells(*periodic_case(8, 20))  # compile
    print(f"numba threads: {numba.get_num_threads()}")
    for side, n in CASES:
        case = periodic_case(side, n)
        for want_jac in (False, True):
            t = best_time(case, want_jac, args.repeat)
            print(
                f"{side}^3 periodic  N={n:>7,}  jacobian={want_jac!s:5}  "
                f"{1e3 * t:9.1f} ms/call  {1e6 * t / n:6.2f} us/cell",
                flush=True,
            )


if __name__ == "__main__":
    main()
