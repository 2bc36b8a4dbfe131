"""Stippling benchmark: 1024x1024 photo-like image, 20,000 dots, 50 iterations.

Times ``rasterquant.stipple`` (method "uniform" and "voronoi"; compilation excluded by
a warm-up on a tiny image) against classic weighted-Voronoi stippling with
scikit-learn's ``KMeans(n_clusters=N).fit(pixel_coords, sample_weight=density)``
(``pip install rasterquant[bench]``). Writes benchmarks/results/stipple.json.

    python benchmarks/bench_stipple.py [--size 1024] [--n 20000] [--iterations 50]
        [--image portrait|grace_hopper] [--methods uniform,voronoi,kmeans]

Issue 16's large case, on a real photo (matplotlib's grace_hopper.jpg, 512x600,
upscaled to a square)::

    python benchmarks/bench_stipple.py --image grace_hopper --size 2048 --n 100000 \
        --methods uniform --output benchmarks/results/stipple_2048_100k.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# measure this working tree, never an installed copy
sys.path.insert(0, ROOT)


IMAGES = {
    "portrait": "data/portrait.png upscaled bicubic, dark = dense",
    "grace_hopper": "matplotlib's grace_hopper.jpg (a photo) upscaled bicubic to a "
    "square, dark = dense",
}


def photo(size, image="portrait"):
    """Deterministic luminance in [0, 1], ``size`` x ``size`` (bicubic resize).

    ``image``: "portrait" (data/portrait.png, a drawing) or "grace_hopper" (a photo
    bundled with matplotlib).
    """
    from PIL import Image

    if image == "grace_hopper":
        from matplotlib import cbook

        source = cbook.get_sample_data("grace_hopper.jpg")
    else:
        source = open(os.path.join(ROOT, "data", "portrait.png"), "rb")
    with source, Image.open(source) as im:
        im = im.convert("L").resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.float64) / 255.0


def time_stipple(lum, n, iterations, method):
    from rasterquant.stipple import stipple

    t = time.perf_counter()
    res = stipple(lum, n, method=method, iterations=iterations, seed=0)
    sec = time.perf_counter() - t
    err = res.max_mass_error
    return {
        "seconds": sec,
        "energy": res.energy,
        "iterations": res.n_iter,
        "max_mass_error": None if err != err else err,
        "ot_tol": res.ot_tol,
        "seconds_per_iteration": sec / max(res.n_iter, 1),
        "newton_iterations": res.history["newton_iterations"],
        "warnings": list(res.warnings),
    }


def time_kmeans(lum, n, iterations, seed=0):
    from sklearn.cluster import KMeans

    rho = 1.0 - lum
    idx = np.flatnonzero(rho > 0)
    rows, cols = np.unravel_index(idx, lum.shape)
    x = np.column_stack([rows + 0.5, cols + 0.5])
    w = rho.ravel()[idx]
    rng = np.random.default_rng(seed)
    init = x[rng.choice(len(x), n, replace=False, p=w / w.sum())]
    km = KMeans(
        n_clusters=n,
        init=init,
        n_init=1,
        max_iter=iterations,
        tol=0.0,
        algorithm="lloyd",
        random_state=seed,
    )
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km.fit(x, sample_weight=w)
    sec = time.perf_counter() - t
    return {
        "seconds": sec,
        "iterations": int(km.n_iter_),
        "inertia_per_mass": float(km.inertia_ / w.sum()),
        "seconds_per_iteration": sec / max(int(km.n_iter_), 1),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--methods", default="uniform,voronoi,kmeans")
    p.add_argument("--image", choices=sorted(IMAGES), default="portrait")
    p.add_argument("--output", default=os.path.join(HERE, "results", "stipple.json"))
    args = p.parse_args(argv)

    import numba

    from rasterquant import __version__
    from rasterquant.stipple import stipple

    lum = photo(args.size, args.image)
    # warm-up: compile every kernel on a tiny image (not timed)
    for m in ("uniform", "voronoi"):
        stipple(lum[::16, ::16], 50, method=m, iterations=2)
    results = {}
    for m in args.methods.split(","):
        print(f"running {m} ...", flush=True)
        if m == "kmeans":
            try:
                results[m] = time_kmeans(lum, args.n, args.iterations)
            except ImportError:
                results[m] = {"error": "scikit-learn missing: rasterquant[bench]"}
        else:
            results[m] = time_stipple(lum, args.n, args.iterations, m)
        print(
            m,
            {
                k: v
                for k, v in results[m].items()
                if k not in ("newton_iterations", "warnings")
            },
            flush=True,
        )
    # methods not run this time keep their last result (KMeans takes minutes)
    previous = {}
    if os.path.exists(args.output):
        with open(args.output, encoding="utf-8") as fh:
            old = json.load(fh)
        if (
            old.get("case", {}).get("size") == args.size
            and old["case"].get("n") == args.n
            and old["case"].get("iterations") == args.iterations
            and old["case"].get("image") == IMAGES[args.image]
        ):
            previous = old.get("results", {})
    for m, r in previous.items():
        if m not in results:
            results[m] = dict(r, measured_in_an_earlier_run=True)
    ratios = {}
    if "seconds" in results.get("kmeans", {}):
        for m in ("uniform", "voronoi"):
            if m in results:
                ratios[f"{m}_over_kmeans"] = (
                    results[m]["seconds"] / results["kmeans"]["seconds"]
                )
    out = {
        "case": {
            "size": args.size,
            "n": args.n,
            "iterations": args.iterations,
            "image": IMAGES[args.image],
            "positive_pixels": int((lum < 1).sum()),
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "numba_threads": numba.get_num_threads(),
            "threading_layer": numba.threading_layer(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        },
        "rasterquant_version": __version__,
        "results": results,
        "ratios": ratios,
        "target_seconds": 15.0,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)
    print(
        json.dumps(
            {
                "results": {k: v.get("seconds") for k, v in results.items()},
                "ratios": ratios,
            },
            indent=2,
        )
    )
    return out


if __name__ == "__main__":
    main()
