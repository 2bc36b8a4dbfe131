"""Benchmarks of ``generate_anisotropic_microstructure`` (issue 19, elongated grains).

Run from the repository root::

    python benchmarks/bench_anisotropic.py                    # all cases
    python benchmarks/bench_anisotropic.py 200-10000-aspect   # a selection
    python benchmarks/bench_anisotropic.py --list

Each case runs in a fresh Python process (``--child CASE``) that first compiles the
kernels on a tiny problem (compile time is never measured), then times the generation
(statistics timed separately; CPU seconds of all threads beside the wall time, a
steadier figure on a shared machine), measures the grains' mean aspect ratios along
the metric's axes (grains of at least 500 voxels) and the peak resident memory. Results
are merged into ``benchmarks/results/anisotropic.json`` (keyed by case) with the load
average before and after each run (2 cores shared with other work: timings are
noisy). This script is never collected by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# measure this working tree, never an installed copy
sys.path.insert(0, ROOT)
RESULTS = os.path.join(HERE, "results", "anisotropic.json")
sys.path.insert(0, HERE)
from bench_microstructure import _peak_rss_mb, outcome, run_cases, timed  # noqa: E402


def _case(size, n, rotation, timeout, goal):
    """Periodic, aspect 3:1:0.5, lognormal volumes, 3 Lloyd steps, tol 1 %."""
    return dict(
        shape=(size, size, size),
        n=n,
        aspect=(3.0, 1.0, 0.5),
        rotation=rotation,
        volumes="lognormal:0.5",
        periodic=True,
        lloyd=3,
        tol=0.01,
        timeout=timeout,
        goal=goal,
    )


ROTATION = (30.0, 40.0, 10.0)
#: name -> options; "rotation" None takes the fast path (isotropic solver on the
#: raster rescaled by the aspect), a rotation the general anisotropic kernels
CASES = {
    "200-10000-aspect": _case(
        200, 10000, None, 1800, "<= 30 s on 2 cores, tol 1 % met"
    ),
    "200-10000-rotated": _case(
        200, 10000, ROTATION, 2400, "report time and error (general kernels)"
    ),
    "100-1250-rotated": _case(
        100,
        1250,
        ROTATION,
        1200,
        "report time and error (general kernels, 1/8 of the big case)",
    ),
}


def _warm_up():
    import warnings

    import numpy as np

    from rasterquant.microstructure.anisotropic import (
        aspect_metric,
        generate_anisotropic_microstructure,
    )
    from rasterquant.ot.anisotropic import solve_anisotropic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # a solve that reaches the voxel polish (its kernels too)
        pts = np.random.default_rng(0).random((6, 3)) * 16
        solve_anisotropic(
            (16, 16, 16), pts, aspect_metric((3.0, 1.0, 0.5)), tol=0.05, periodic=True
        )
        for rot in (None, (10.0, 20.0, 30.0)):
            generate_anisotropic_microstructure(
                (16, 16, 16), 6, rotation=rot, tol=0.05, seed=0, lloyd_iterations=1
            )
            generate_anisotropic_microstructure(
                (16, 16, 16),
                6,
                rotation=rot,
                tol=0.05,
                seed=0,
                lloyd_iterations=0,
                linear_solver="cg",
            )


def _aspect(ms, np):
    """Mean ratios of the grains' extents along the metric's axes (>= 500 voxels)."""
    from rasterquant.microstructure.anisotropic import grain_second_moments

    counts, cov = grain_second_moments(
        ms.grain_map, ms.seeds, spacing=ms.spacing, periodic=ms.periodic
    )
    big = counts >= 500
    if not big.any():
        return 0, []
    _, vec = np.linalg.eigh(ms.metrics[big])  # ascending: longest axis first
    s = np.einsum("kai,kab,kbi->ki", vec, cov[big], vec)
    ratio = np.sqrt(s[:, :-1] / s[:, 1:]).mean(axis=0)
    return int(big.sum()), [round(float(r), 4) for r in ratio]


def _run_one(case, seed):

    import numba
    import numpy as np

    from rasterquant.microstructure.anisotropic import (
        _anisotropic_stats,
        generate_anisotropic_microstructure,
    )

    spec = CASES[case]
    _warm_up()
    rss_after_warmup = _peak_rss_mb()
    ms, timing = timed(
        generate_anisotropic_microstructure,
        spec["shape"],
        spec["n"],
        aspect=spec["aspect"],
        rotation=spec["rotation"],
        volumes=spec["volumes"],
        periodic=spec["periodic"],
        lloyd_iterations=spec["lloyd"],
        tol=spec["tol"],
        seed=seed,
        statistics=False,
    )
    t1 = time.perf_counter()
    st = _anisotropic_stats(
        ms.grain_map, ms.n_grains, ms.spacing, ms.periodic, ms.seeds, ms.metrics
    )
    t_stats = time.perf_counter() - t1
    n_big, ratio = _aspect(ms, np)
    a = np.array(spec["aspect"])
    return {
        "case": case,
        "shape": list(spec["shape"]),
        "n_grains": spec["n"],
        "aspect": list(spec["aspect"]),
        "requested_ratios": [round(float(r), 4) for r in a[:-1] / a[1:]],
        "rotation": spec["rotation"],
        "volumes": spec["volumes"],
        "periodic": spec["periodic"],
        "lloyd_iterations": spec["lloyd"],
        "tol": spec["tol"],
        "goal": spec["goal"],
        "seed": seed,
        "fast_path": ms.fast_path,
        **timing,
        "seconds_statistics": round(t_stats, 3),
        **outcome(ms, st),
        "grains_500_voxels": n_big,
        "measured_ratios": ratio,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_rss_mb_after_warmup": round(rss_after_warmup, 1),
        "numba_threads": int(numba.get_num_threads()),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "cases", nargs="*", help=f"cases to run (default all): {list(CASES)}"
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=RESULTS, help="JSON file to merge results into")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.list:
        for k, v in CASES.items():
            print(k, v)
        return 0
    if args.child:
        print(json.dumps(_run_one(args.child, args.seed)))
        return 0
    cases = args.cases or list(CASES)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; expected some of {list(CASES)}")
    run_cases(__file__, cases, CASES, ["--seed", str(args.seed)], args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
