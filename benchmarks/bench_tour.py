"""Dot-ordering benchmark: ``rasterquant.pen.order_dots`` on 20,000 and 100,000 dots.

Two point sets per size: uniform random in a 1024 x 1024 square, and dots drawn from
the density of a photo (matplotlib's ``grace_hopper.jpg``, dark = dense) with
``sample_points(..., method="density", seed=0)``. For each: the "tsp" path length
against the greedy nearest-neighbour path from the same start dot, and the time of
``order_dots`` three ways:

- ``cold_compile``: first call in a fresh process with an empty numba cache
  (``NUMBA_CACHE_DIR`` set to a new temporary directory), so compilation included;
- ``cold_cached``: first call in a fresh process whose cache holds the kernels;
- ``warm``: best of ``--repeat`` calls after a first one, in this process.

Writes benchmarks/results/tour.json (load average recorded beside the figures).

    python benchmarks/bench_tour.py [--n 20000,100000] [--kinds uniform,photo]
                                    [--repeat 3] [--no-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# measure this working tree, never an installed copy
sys.path.insert(0, ROOT)

TARGET_SECONDS = {20000: 5.0, 100000: 30.0}
TARGET_RATIO = 0.92


def make_points(kind, n):
    """The benchmark dots: ``(points, description)``."""
    if kind == "uniform":
        pts = np.random.default_rng(0).random((n, 2)) * 1024.0
        return pts, "uniform random in [0, 1024)^2, default_rng(0)"
    if kind == "photo":
        import matplotlib.cbook as cbook

        import rasterquant as rq

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        density = rq.Density.from_image(path)
        pts = rq.sample_points(density, n, method="density", seed=0)
        return pts, (
            "sample_points(Density.from_image(grace_hopper.jpg), method='density', "
            f"seed=0), image {density.shape}"
        )
    raise ValueError(f"kind must be 'uniform' or 'photo', got {kind!r}")


def child(kind, n):
    """Run in a fresh process: time the first order_dots call; print JSON."""
    t = time.perf_counter()
    from rasterquant.pen import order_dots

    t_import = time.perf_counter() - t
    pts, _ = make_points(kind, n)
    t = time.perf_counter()
    res = order_dots(pts, "tsp", seed=0)
    sec = time.perf_counter() - t
    print(
        json.dumps({"seconds": sec, "import_seconds": t_import, "length": res.length})
    )


def run_child(kind, n, cache_dir, attempts=3):
    """Time the first call in a fresh process (NUMBA_CACHE_DIR=cache_dir).

    A failed start is retried: the working tree may be mid-edit (an import error
    in another module), which says nothing about order_dots.
    """
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    for attempt in range(1, attempts + 1):
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", kind, str(n)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        if out.returncode == 0:
            break
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"  fresh process failed (attempt {attempt}): {tail}", flush=True)
        if attempt == attempts:
            return {"error": tail, "load_average": os.getloadavg()}
        time.sleep(20)
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["attempts"] = attempt
    rec["load_average"] = os.getloadavg()
    return rec


def measure(kind, n, repeat, cold):
    from rasterquant.pen import order_dots

    pts, what = make_points(kind, n)
    rec = {"points": what, "n": n}
    if cold:
        with tempfile.TemporaryDirectory(prefix="rq-numba-cache-") as cache:
            rec["cold_compile"] = run_child(kind, n, cache)
            rec["cold_cached"] = run_child(kind, n, cache)
    order_dots(pts, "tsp", seed=0)  # compile or load (not timed)
    times = []
    res = None
    for _ in range(repeat):
        t = time.perf_counter()
        res = order_dots(pts, "tsp", seed=0)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    nn = order_dots(pts, "nearest", seed=0)
    nn_sec = time.perf_counter() - t
    assert np.array_equal(np.sort(res.order), np.arange(n))  # a permutation
    rec.update(
        {
            "warm_seconds": min(times),
            "warm_seconds_all": times,
            "warm_load_average": os.getloadavg(),
            "length": res.length,
            "nearest_length": res.nearest_length,
            "nearest_method_length": nn.length,
            "nearest_method_seconds": nn_sec,
            "ratio_to_nearest": res.length / res.nearest_length,
            "target_ratio": TARGET_RATIO,
            "target_seconds": TARGET_SECONDS.get(n),
        }
    )
    return rec


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", default="20000,100000", help="comma-separated dot counts")
    p.add_argument("--kinds", default="uniform,photo")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--no-cold", action="store_true", help="skip the fresh-process timings"
    )
    p.add_argument("--output", default=os.path.join(HERE, "results", "tour.json"))
    p.add_argument("--child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return None

    import numba

    from rasterquant import __version__
    from rasterquant.io.atomic import atomic_write_json
    from rasterquant.pen import N_NEIGHBOURS

    results = {}
    for kind in args.kinds.split(","):
        for n in (int(v) for v in args.n.split(",")):
            key = f"{kind}_{n}"
            print(f"running {key} ...", flush=True)
            results[key] = measure(kind, n, args.repeat, not args.no_cold)
            r = results[key]
            print(
                key,
                {
                    "warm_seconds": round(r["warm_seconds"], 3),
                    "cold_compile_seconds": r.get("cold_compile", {}).get("seconds"),
                    "cold_cached_seconds": r.get("cold_cached", {}).get("seconds"),
                    "ratio_to_nearest": round(r["ratio_to_nearest"], 4),
                    "load_average": r["warm_load_average"],
                },
                flush=True,
            )
    out = {
        "case": {
            "function": "rasterquant.pen.order_dots(points, 'tsp', seed=0)",
            "neighbours": N_NEIGHBOURS,
            "repeat": args.repeat,
            "command": "python benchmarks/bench_tour.py "
            + " ".join(sys.argv[1:] if argv is None else argv),
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "numba_threads": numba.get_num_threads(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
            "numba": numba.__version__,
            "numpy": np.__version__,
        },
        "rasterquant_version": __version__,
        "results": results,
    }
    atomic_write_json(args.output, out)
    print(f"wrote {args.output}")
    return out


if __name__ == "__main__":
    main()
