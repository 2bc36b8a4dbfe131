"""Same inputs and seed -> bit-identical results, for 1 and 2 numba threads and
across runs (DESIGN §3: per-chunk buffers with a fixed N_CHUNKS)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numba
import numpy as np
import pytest

import rasterquant as rq

ROOT = Path(__file__).resolve().parents[1]
MAX_THREADS = numba.config.NUMBA_NUM_THREADS


def _density(seed=7, shape=(96, 80)):
    rng = np.random.default_rng(seed)
    values = rng.random(shape) + 0.05
    values[:10, :10] = 0.0  # some zero pixels
    return rq.Density.from_array(values, spacing=0.5, origin=(1.0, -2.0))


def _run(fn, threads):
    old = numba.get_num_threads()
    numba.set_num_threads(min(threads, MAX_THREADS))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rq.RasterquantWarning)
            return fn()
    finally:
        numba.set_num_threads(old)


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _cases():
    density = _density()
    periodic = rq.Density.from_array(density.values, spacing=0.5, periodic=True)
    points = rq.sample_points(density, 40, seed=3)
    ppoints = rq.sample_points(periodic, 40, seed=3)
    weights = np.random.default_rng(4).normal(scale=0.5, size=40)
    return {
        "assign_cells": lambda: (
            lambda c: (c.labels, c.masses, c.barycenters, c.energies)
        )(rq.assign_cells(density, points, weights)),
        "assign_cells_periodic": lambda: (
            lambda c: (c.labels, c.masses, c.barycenters)
        )(rq.assign_cells(periodic, ppoints, weights)),
        "solve_ot": lambda: (
            lambda r: (r.weights, r.masses, r.cells.labels, np.array(r.n_iter))
        )(rq.solve_ot(density, points, tol=1e-2)),
        "lloyd_uniform": lambda: (lambda r: (r.points, r.weights, r.masses))(
            rq.lloyd(density, points, n_iter=3, ot_tol=0.05)
        ),
        "lloyd_voronoi_periodic": lambda: (lambda r: (r.points, r.masses))(
            rq.lloyd(periodic, ppoints, method="voronoi", n_iter=4)
        ),
        "sample_points": lambda: (
            rq.sample_points(density, 50, method="density", seed=11),
            rq.sample_points(density, 50, method="uniform", seed=11),
            rq.sample_points(density, 49, method="jittered-grid", seed=11),
        ),
    }


CASES = list(_cases())


@pytest.mark.parametrize("name", CASES)
def test_same_result_for_one_and_two_threads(name):
    fn = _cases()[name]
    one = _run(fn, 1)
    two = _run(fn, 2)
    again = _run(fn, 2)
    assert _digest(*one) == _digest(*two), "result depends on the thread count"
    assert _digest(*two) == _digest(*again), "result differs between two runs"
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


def test_seed_controls_sampling():
    density = _density()
    a = rq.sample_points(density, 30, seed=1)
    b = rq.sample_points(density, 30, seed=1)
    c = rq.sample_points(density, 30, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


_CHILD = """
import hashlib, json, sys, warnings
import numpy as np
sys.path.insert(0, sys.argv[1])
import rasterquant as rq
warnings.simplefilter("ignore")
rng = np.random.default_rng(7)
values = rng.random((96, 80)) + 0.05
values[:10, :10] = 0.0
density = rq.Density.from_array(values, spacing=0.5, origin=(1.0, -2.0))
points = rq.sample_points(density, 40, seed=3)
res = rq.lloyd(density, points, n_iter=3, ot_tol=0.05)
h = hashlib.sha256()
for a in (res.points, res.weights, res.masses):
    h.update(np.ascontiguousarray(a).tobytes())
print(json.dumps({"digest": h.hexdigest()}))
"""


@pytest.mark.slow
def test_same_result_in_fresh_processes_with_1_and_2_threads():
    digests = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(ROOT)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        digests.append(json.loads(out.stdout.strip().splitlines()[-1])["digest"])
    fn = _cases()["lloyd_uniform"]
    here = _run(fn, 2)
    h = hashlib.sha256()
    for a in here:
        h.update(np.ascontiguousarray(a).tobytes())
    assert digests[0] == digests[1] == h.hexdigest()


_COLD_CHILD = """
import hashlib, json, sys, warnings
sys.path.insert(0, sys.argv[1])
from numba.core import event
import numpy as np

compiled = []
entries = []  # top-level compilations, as the first-run helper's profiles record them


class Count(event.Listener):
    depth = 0

    def on_start(self, ev):
        if self.depth == 0:
            from rasterquant import _warmup

            func = ev.data["dispatcher"].py_func
            args = [_warmup.encode(t) for t in ev.data["args"]]
            name = func.__name__
            entries.append({"module": func.__module__, "name": name, "args": args})
        self.depth += 1

    def on_end(self, ev):
        self.depth -= 1
        compiled.append(ev.data["dispatcher"].py_func.__qualname__)


event.register("numba:compile", Count())
import rasterquant as rq

warnings.simplefilter("ignore")
density = rq.Density.from_image(sys.argv[2])
points = rq.sample_points(density, 2000, method="stratified", seed=0)
ot = rq.solve_ot(density, points, tol=0.02)
res = rq.lloyd(density, points, n_iter=2, ot_tol=0.02)
h = hashlib.sha256()
for a in (ot.weights, ot.masses, res.points, res.weights):
    h.update(np.ascontiguousarray(a).tobytes())
print(json.dumps({"digest": h.hexdigest(), "compiled": compiled, "entries": entries}))
"""


def _cold_child(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    out = subprocess.run(
        [sys.executable, "-c", _COLD_CHILD, str(ROOT), str(ROOT / "data/portrait.png")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_same_result_compiled_cold_cached_and_partly_recompiled(tmp_path):
    """A first run (numba compiles every kernel), a cached run (numba loads them)
    and a run that recompiles one caller against cached callees give the same bits.

    With value-changing fastmath flags they did not: LLVM's rounding followed what
    it inlined, which differs between a fresh compile and a cache load (issue 17).
    """
    cache = tmp_path / "numba-cache"
    cold = _cold_child(cache)
    cached = _cold_child(cache)
    assert cold["compiled"], "the first run compiled nothing: the cache was not fresh"
    assert cached["compiled"] == [], "the second run compiled again"
    # recompile the polygon pass against its callees loaded from the cache
    stale = list(cache.rglob("_polygons._polygon_pass-*"))
    assert stale, "the polygon pass was not compiled: the case misses the kernel"
    for f in stale:
        f.unlink()
    partly = _cold_child(cache)
    assert "_polygon_pass" in partly["compiled"]
    assert cold["digest"] == cached["digest"], "cached run differs from the cold one"
    assert cold["digest"] == partly["digest"], "a partial recompile changes results"
    # the first-run helper (rasterquant/_warmup.py) compiles what a first run needs:
    # its recorded profile must still name these kernels with these argument types
    from rasterquant import _warmup

    profile = _warmup.load_profile("quantize")
    missing = [e["name"] for e in cold["entries"] if e not in profile]
    assert not missing, (
        f"rasterquant/_kernel_profiles.json is stale (missing {missing}): record it "
        "again with `python -m rasterquant._warmup --record`"
    )
