"""The seed's Koch study in the full ``experiment rates`` run (issue 15).

Runs the uniform density with the Koch cloud at the full study's sizes (N = 257, 1025,
4097, 16385 on 1024^2) exactly as ``rasterquant experiment rates --clouds koch
--densities uniform`` does, and writes the log-log slopes (the seed reports -1.01 for
the barycenter energy), the per-N rows, the time and the load average into
``benchmarks/results/koch_rates.json``::

    python benchmarks/koch_rates.py [--out-dir DIR]
"""

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)

from rasterquant.experiments import run_rates  # noqa: E402

RESULT = os.path.join(ROOT, "benchmarks", "results", "koch_rates.json")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", default=None, help="study outputs (default: temp)")
    args = p.parse_args(argv)
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="koch_rates_")
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    run_rates(clouds=("koch",), densities=("uniform",), out_dir=out_dir, force=True)
    seconds = time.perf_counter() - t0
    with open(os.path.join(out_dir, "rates.json"), encoding="utf-8") as fh:
        study = json.load(fh)
    result = {
        "command": "python benchmarks/koch_rates.py",
        "seconds": round(seconds, 1),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "seed_slope_barycenter": -1.01,
        "study": study,
    }
    with open(RESULT, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "study"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
