"""Time the default ``rasterquant experiment rates`` run (goal: < 5 min on 2 cores).

Run as a script (not under asv: one run takes minutes)::

    python benchmarks/bench_experiments.py [--out-dir docs/experiments] [--threads 2]

Writes the study's CSV/JSON/PNG into ``--out-dir`` and the timing into
``benchmarks/results/experiments.json``. Compilation is excluded: a tiny run of the
same code path compiles every kernel first.
"""

import argparse
import json
import logging
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

import numba

from rasterquant import __version__
from rasterquant.experiments import run_rates

GOAL_SECONDS = 300.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", default="docs/experiments")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--result", default="benchmarks/results/experiments.json")
    args = p.parse_args(argv)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("rasterquant.experiments").setLevel(logging.WARNING)
    run_rates(
        quick=True,
        n_list=(16,),
        densities=("uniform", "gaussian"),
        clouds=("random", "grid"),
        plot=False,
    )  # compile
    logging.getLogger("rasterquant.experiments").setLevel(logging.INFO)
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_rates(out_dir=args.out_dir)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    load1 = os.getloadavg()[0]
    out = {
        "benchmark": "experiment rates (default)",
        "command": f"python benchmarks/bench_experiments.py --threads {args.threads}",
        "seconds": round(seconds, 2),
        "goal_seconds": GOAL_SECONDS,
        "within_goal": seconds < GOAL_SECONDS,
        "cpu_seconds": round(cpu, 2),
        "load_average_start_end": [load0, load1],
        "note": "wall time is only meaningful when the load average is <= the "
        "number of threads; cpu_seconds / threads estimates an unloaded run",
        "rows": len(res.rows),
        "row_seconds_max": max(r["seconds"] for r in res.rows),
        "numba_threads": numba.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "rasterquant_version": __version__,
        "slopes": res.summary["slopes"],
    }
    os.makedirs(os.path.dirname(args.result) or ".", exist_ok=True)
    with open(args.result, "w") as fh:
        json.dump(out, fh, indent=2, sort_keys=True, default=float)
    print(
        f"rates default run: {seconds:.1f} s wall, {cpu:.1f} s cpu, load "
        f"{load0:.1f}->{load1:.1f}, {len(res.rows)} rows (goal {GOAL_SECONDS:.0f} s)"
        f" -> {args.result}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
