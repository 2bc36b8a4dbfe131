"""Hard cases for the solver (issue 15, "Solver robustness"), side by side with sdot.

Every case is solved from scratch by rasterquant and by sdot in the same run, on the
same raster and the same points, at the same tolerance::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/hard_cases.py            # full sizes
    python benchmarks/hard_cases.py --quick                            # small sizes
    python benchmarks/hard_cases.py --cases koch6,helix3d --repeat 3
    python benchmarks/hard_cases.py --no-sdot --out /tmp/hard.json

Results go to benchmarks/results/hard_cases.json (``--quick``: hard_cases_quick.json).

Cases (full sizes; ``--quick`` sizes in brackets):

- ``koch6``, ``koch7``: the 4**k + 1 vertices of the von Koch curve, levels 6 and 7
  (4,097 / 16,385 points, ``sample_points(method="koch")``), uniform 1024^2, tol 1e-4
  [levels 4 on 256^2 and 5 on 512^2];
- ``tight20_grid``, ``tight20_random``, ``tight31_grid``, ``tight31_random``,
  ``tight64_grid``, ``tight64_random``: ``sampling.tightness_density(n, 20 n)``
  (contrast (n-1)^2 : 1, 1:361 for n = 20) with ``n**2`` points,
  ``method="tightness-grid"`` or ``method="uniform", seed=0``, tol 1e-4 [n = 8, 12
  and 16 for the 20, 31 and 64 cases];
- ``portrait300``: ``Density.from_image("data/portrait.png")`` (256^2, 63 % zero
  pixels), 300 points ``method="density"`` for seeds 0..44 [0..4], tol 0.05; sdot on the
  first ``--sdot-seeds`` seeds only (default 3);
- ``helix3d``, ``helix3d_2000``: 500 (2,000) points on the helix
  ``(0.5 + 0.3 cos t, 0.5 + 0.3 sin t, 0.1 + 0.8 t / 6 pi)``, ``t`` in [0, 6 pi], in
  array axis order, in the unit cube rastered at 64^3 (96^3) with spacing 1/64 (1/96);
  density ``exp(-|x - 0.3|^2 / 0.02) + 0.01`` at the voxel centres; tol 1e-4 [100
  points on 24^3; helix3d_2000: 200 points on 32^3]. sdot's ``Image`` is written for
  any dimension (its docstring: "square/cube/hypercube"; ``nb_dims`` is a shape
  variable) and solves in 3D. Near the helix axis hundreds of cells meet in one
  voxel: our fractional pass reruns such chunks with room for up to 1,536 cells a
  voxel (it warns, and the masses there are approximate, only beyond that);
- ``photo_contrast``: matplotlib's sample ``grace_hopper.jpg`` (600 x 512), density
  ``1 - luminance + 0.001`` (Rec. 601 luminance; contrast ~1:1000), 2,000 points drawn
  uniformly in the box (seed 0), tol 1e-4 [200 points, photo 4x downsampled by block
  means];
- ``cluster_corner``, ``cluster_centre``: uniform 512^2, 2,000 points uniform (seed 0)
  in a square of 1 % of the area, at the corner (0, 0) or at the centre; ``line``: 1,000
  points evenly spaced on the main diagonal; tol 1e-6 [256^2, 300 points].

Conventions (see benchmarks/compare_sdot.py, whose venv and sdot runner are used as
is: one subprocess per case, which warms sdot up on the first 200 points before timing;
sdot max_iter 100, ``on_failure="ignore"``):

- uniform target masses 1/N; our ``tol`` is relative (``max_i |m_i - 1/N| N``), sdot's
  absolute tol is ``tol / N``;
- sdot's ``Image`` axes are our array axes, same physical coordinates (spacing and
  origin passed), same power distance ``|x - y_i|^2 - w_i``; sdot's weights are moved
  to our gauge (mean zero) and its achieved error is computed HERE, from our
  fractional-quadrature masses at its weights (as check (a) of compare_sdot.py);
- our times are warm: a few tiny solves (2D and 3D, uniform and not) run first so that
  numba compilation is excluded; best of ``--repeat``. sdot's time is the best of
  ``--repeat`` solves inside its subprocess (import, kernel loading and warm-up
  excluded); ``--timeout`` bounds the whole subprocess (a timeout is recorded);
- our converged flag / error: ``max_i |m_i - 1/N| N`` from the returned masses.

The load average (``os.getloadavg()``) is recorded before and after each case: the
machine may be shared, and the times mean little when it is above the core count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))

import compare_sdot  # noqa: E402  (sets OMP_WAIT_POLICY=PASSIVE by default)
from compare_sdot import SDOT_RUNNER, ensure_venv, log, machine  # noqa: E402

import rasterquant as rq  # noqa: E402
from rasterquant.sampling import tightness_density  # noqa: E402

DATA = os.path.join(HERE, "..", "data")
RESULTS = os.path.join(HERE, "results")
SDOT_MAX_ITER = 100


# ------------------------------------------------------------------------ problems


def problem(name, density, points, tol, description, sdot=True, **extra):
    """One solve to run on both sides."""
    return dict(
        name=name,
        density=density,
        points=np.ascontiguousarray(points, dtype=float),
        tol=tol,
        description=description,
        sdot=sdot,
        extra=extra,
    )


def uniform_density(size, d=2):
    return rq.Density.from_array(np.ones((size,) * d))


def koch(level, quick_level, size, quick_size):
    def build(quick, args):
        lev, s = (quick_level, quick_size) if quick else (level, size)
        dens = uniform_density(s)
        pts = rq.sample_points(dens, 4**lev + 1, method="koch")
        desc = f"von Koch curve level {lev} ({4**lev + 1} vertices), uniform {s}^2"
        return [problem(f"koch{lev}", dens, pts, 1e-4, desc)]

    return build


def tightness(n_axis, quick_n_axis, method):
    def build(quick, args):
        k = quick_n_axis if quick else n_axis
        dens = tightness_density(k, 20 * k)
        if method == "grid":
            pts = rq.sample_points(dens, k * k, method="tightness-grid")
        else:
            pts = rq.sample_points(dens, k * k, method="uniform", seed=0)
        desc = (
            f"tightness_density({k}, {20 * k}) (contrast {(k - 1) ** 2}:1), {k * k} "
            + (
                "tightness-grid points"
                if method == "grid"
                else "uniform points, seed 0"
            )
        )
        return [problem(f"tight{k}_{method}", dens, pts, 1e-4, desc)]

    return build


def portrait300(quick, args):
    dens = rq.Density.from_image(os.path.join(DATA, "portrait.png"))
    seeds = range(5 if quick else 45)
    zero = float(np.mean(dens.values == 0))
    out = []
    for s in seeds:
        desc = (
            f"data/portrait.png {dens.shape}, {zero:.0%} zero pixels, 300 points "
            f"from the density, seed {s}"
        )
        pts = rq.sample_points(dens, 300, method="density", seed=s)
        out.append(
            problem(f"seed{s}", dens, pts, 0.05, desc, sdot=s < args.sdot_seeds, seed=s)
        )
    return out


def helix(n, size, quick_n=100, quick_size=24):
    def build(quick, args):
        m, s = (quick_n, quick_size) if quick else (n, size)
        t = np.linspace(0.0, 6 * np.pi, m)
        pts = np.stack(
            [0.5 + 0.3 * np.cos(t), 0.5 + 0.3 * np.sin(t), 0.1 + 0.8 * t / (6 * np.pi)],
            axis=1,
        )
        c = (np.arange(s) + 0.5) / s  # voxel centres
        x0, x1, x2 = np.meshgrid(c, c, c, indexing="ij", sparse=True)
        r2 = (x0 - 0.3) ** 2 + (x1 - 0.3) ** 2 + (x2 - 0.3) ** 2
        dens = rq.Density.from_array(np.exp(-r2 / 0.02) + 0.01, spacing=1.0 / s)
        desc = (
            f"{m} points on a helix (3 turns) in the unit cube, {s}^3 voxels, "
            "density exp(-|x - 0.3|^2/0.02) + 0.01"
        )
        return [problem(f"helix{m}", dens, pts, 1e-4, desc)]

    return build


def photo_contrast(quick, args):
    import matplotlib.cbook as cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        rgb = np.asarray(Image.open(f).convert("RGB"), dtype=float) / 255.0
    lum = rgb @ np.array([0.299, 0.587, 0.114])
    if quick:  # 4x downsampling by block means
        h, w = (lum.shape[0] // 4) * 4, (lum.shape[1] // 4) * 4
        lum = lum[:h, :w].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))
    dens = rq.Density.from_array(1.0 - lum + 0.001)
    n = 200 if quick else 2000
    pts = rq.sample_points(dens, n, method="uniform", seed=0)
    v = dens.values
    desc = (
        f"grace_hopper.jpg {dens.shape}, 1 - lum + 0.001 (contrast 1:"
        f"{v.max() / v.min():.0f}), {n} uniform points (seed 0)"
    )
    return [problem(f"photo{n}", dens, pts, 1e-4, desc)]


def cluster(where):
    def build(quick, args):
        size, n = (256, 300) if quick else (512, 2000)
        dens = uniform_density(size)
        side = 0.1 * size  # 1 % of the area
        lo = 0.0 if where == "corner" else (size - side) / 2
        rng = np.random.default_rng(0)
        pts = lo + side * rng.random((n, 2))
        desc = (
            f"uniform {size}^2, {n} uniform points (seed 0) in 1 % of the area at "
            + ("the corner (0, 0)" if where == "corner" else "the centre")
        )
        return [problem(f"cluster_{where}", dens, pts, 1e-6, desc)]

    return build


def line(quick, args):
    size, n = (256, 300) if quick else (512, 1000)
    dens = uniform_density(size)
    t = (np.arange(n) + 0.5) / n * size
    desc = f"uniform {size}^2, {n} points evenly spaced on the main diagonal"
    return [problem("line", dens, np.stack([t, t], axis=1), 1e-6, desc)]


CASES = {
    "koch6": koch(6, 4, 1024, 256),
    "koch7": koch(7, 5, 1024, 512),
    "tight20_grid": tightness(20, 8, "grid"),
    "tight20_random": tightness(20, 8, "random"),
    "tight31_grid": tightness(31, 12, "grid"),
    "tight31_random": tightness(31, 12, "random"),
    "tight64_grid": tightness(64, 16, "grid"),
    "tight64_random": tightness(64, 16, "random"),
    "portrait300": portrait300,
    "helix3d": helix(500, 64),
    "helix3d_2000": helix(2000, 96, quick_n=200, quick_size=32),
    "photo_contrast": photo_contrast,
    "cluster_corner": cluster("corner"),
    "cluster_centre": cluster("centre"),
    "line": line,
}


# ------------------------------------------------------------------------ our side


def rel_error(masses):
    n = len(masses)
    return float(np.max(np.abs(np.asarray(masses) - 1.0 / n)) * n)


def warmup():
    """Tiny solves so that numba compilation is excluded from the timings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for values in (np.ones((24, 24)), np.ones((24, 24)) + np.eye(24)):
            rq.solve_ot(values, [[3.0, 3.0], [12, 15], [20, 4]], tol=1e-6)
        for values in (np.ones((8, 9, 10)), np.ones((8, 9, 10)) + np.arange(10)):
            rq.solve_ot(values, [[2.0, 2, 2], [6, 6, 6], [2, 7, 5]], tol=1e-6)
        rq.assign_cells(np.ones((8, 8)), [[2.0, 2], [6, 6]], quadrature="fractional")


def run_ours(p, repeat):
    """Best of ``repeat`` solves from zero weights; errors are recorded, not raised."""
    times, res, caught = [], None, []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(repeat):
                t = time.perf_counter()
                res = rq.solve_ot(p["density"], p["points"], tol=p["tol"])
                times.append(time.perf_counter() - t)
    except Exception as e:  # a failure is a result here
        return {
            "seconds_all": times,
            "converged": False,
            "status": "exception",
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc()[-2000:],
        }
    err = rel_error(res.masses)
    return {
        "seconds": min(times),
        "seconds_all": times,
        "converged": bool(err <= p["tol"]),
        "converged_flag": bool(res.converged),
        "max_error": err,
        "max_error_reported": float(res.max_error),
        "n_iter": int(res.n_iter),
        "status": res.status,
        "coarse_levels": int(getattr(res, "coarse_levels", -1)),
        "warnings": sorted({str(w.message)[:160] for w in caught}),
    }


# ------------------------------------------------------------------------ sdot side


def sdot_versions(py):
    code = (
        "import json, sys\nfrom importlib.metadata import version\n"
        "print(json.dumps({k: version(k) for k in ('sdot', 'jax', 'loom-ffi')} | "
        "{'python': sys.version.split()[0]}))"
    )
    r = subprocess.run([py, "-c", code], capture_output=True, text=True, timeout=120)
    return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr[-500:]}


def run_sdot_process(py, runner, p, repeat, timeout, tmp):
    """compare_sdot's runner on this problem, in a subprocess; ``(result, error)``."""
    dens = p["density"]
    prob_path = os.path.join(tmp, "problem.npz")
    out_path = os.path.join(tmp, "sdot_out.npz")
    if os.path.exists(out_path):
        os.remove(out_path)
    np.savez(
        prob_path,
        values=dens.values,
        spacing=np.asarray(dens.grid.spacing, float),
        origin=np.asarray(dens.grid.origin, float),
        points=p["points"],
    )
    cfg = {"tol": p["tol"], "tight_tol": 0, "repeat": repeat, "max_iter": SDOT_MAX_ITER}
    try:
        r = subprocess.run(
            [py, runner, prob_path, out_path, json.dumps(cfg)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None, {"status": "timeout", "error": f"no answer within {timeout:g} s"}
    if r.returncode != 0:
        lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
        return None, {
            "status": "failed",
            "error": lines[-1][:300] if lines else f"exit {r.returncode}",
            "exit_code": r.returncode,
            "stderr_tail": r.stderr[-3000:],
        }
    return dict(np.load(out_path)), None


def run_sdot(py, runner, p, repeat, timeout, tmp):
    """sdot's time and status; its achieved error from OUR masses at its weights."""
    t = time.perf_counter()
    so, failure = run_sdot_process(py, runner, p, repeat, timeout, tmp)
    wall = time.perf_counter() - t
    if failure is not None:
        return dict(failure, converged=False, subprocess_seconds=wall)
    meta = json.loads(str(so["meta"]))
    st = meta["stats"]
    psi = so["weights"] - so["weights"].mean()  # sdot: w[0] = 0; ours: mean zero
    out = {
        "seconds": float(np.min(so["times"])),
        "seconds_all": [float(x) for x in so["times"]],
        "converged_reported": bool(meta["converged"]),
        "status": st.get("status"),
        "n_iter": st.get("nb_iter"),
        "max_error_reported": rel_error(so["masses"]),
        "subprocess_seconds": wall,
        "import_seconds": meta["t_import"],
        "warmup_seconds": meta["t_warmup"],
        "stats": st,
    }
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cells = rq.assign_cells(
                p["density"], p["points"], psi, quadrature="fractional"
            )
        # e.g. "more than 24 cells meet a pixel": our masses are approximate there
        out["our_quadrature_warnings"] = sorted({str(w.message)[:160] for w in caught})
        err = rel_error(cells.masses)
        out["max_error"] = err
        out["converged"] = bool(err <= p["tol"])
        out["max_mass_discrepancy_over_1_over_N"] = float(
            np.max(np.abs(cells.masses - so["masses"])) * len(psi)
        )
    except Exception as e:  # recorded
        out["converged"] = False
        out["error"] = f"our masses at sdot's weights: {type(e).__name__}: {e}"
    return out


# ------------------------------------------------------------------------ driver


def run_problem(p, args, sdot):
    g = p["density"].grid
    rec = {
        "description": p["description"],
        "N": len(p["points"]),
        "raster_shape": list(g.shape),
        "spacing": [float(x) for x in np.broadcast_to(g.spacing, (g.ndim,))],
        "tol": p["tol"],
        "sdot_tol_absolute": p["tol"] / len(p["points"]),
        **p["extra"],
    }
    rec["ours"] = run_ours(p, args.repeat)
    if sdot is not None and p["sdot"]:
        py, runner, tmp = sdot
        rec["sdot"] = run_sdot(py, runner, p, args.repeat, args.timeout, tmp)
    elif sdot is None:
        rec["sdot"] = {"status": "skipped (--no-sdot)"}
    else:
        rec["sdot"] = {"status": "skipped (only the first --sdot-seeds seeds)"}
    t_ours, t_sdot = rec["ours"].get("seconds"), rec["sdot"].get("seconds")
    rec["time_ratio_sdot_over_ours"] = t_sdot / t_ours if t_ours and t_sdot else None
    return rec


def summarize(recs):
    """Several solves (portrait seeds): how many converge, and the worst."""
    ours = [r["ours"] for r in recs.values()]
    worst = max(recs, key=lambda k: recs[k]["ours"].get("max_error", np.inf))
    with_sdot = {k: r for k, r in recs.items() if "seconds" in r["sdot"]}
    return {
        "solves": len(recs),
        "ours_converged": sum(bool(o["converged"]) for o in ours),
        "ours_worst": worst,
        "ours_worst_max_error": recs[worst]["ours"].get("max_error"),
        "ours_seconds_total": sum(o.get("seconds", 0.0) for o in ours),
        "ours_seconds_max": max(o.get("seconds", 0.0) for o in ours),
        "sdot_solves": len(with_sdot),
        "sdot_converged": sum(
            bool(r["sdot"].get("converged")) for r in with_sdot.values()
        ),
    }


def run_case(name, args, sdot):
    load_before = os.getloadavg()
    probs = CASES[name](args.quick, args)
    recs = {}
    for p in probs:
        rec = run_problem(p, args, sdot)
        recs[p["name"]] = rec
        log(f"  {name}/{p['name']}: " + row_text(rec))
    out = {"load_before": list(load_before), "load_after": list(os.getloadavg())}
    if len(recs) == 1:
        out.update(next(iter(recs.values())), instance=next(iter(recs)))
    else:
        out["solves"] = recs
        out["summary"] = summarize(recs)
    return out


# ------------------------------------------------------------------------ report


def fmt_side(s):
    if "seconds" not in s:
        return f"{'-':>8} {s.get('status', '?')[:20]:<20}"
    err = s.get("max_error")
    err = f"{err:.2e}" if err is not None else "   ?    "
    conv = "yes" if s.get("converged") else "NO"
    return f"{s['seconds']:8.3f} {conv:>3} {err:<16}"


def row_text(rec):
    r = rec.get("time_ratio_sdot_over_ours")
    return (
        f"N={rec['N']} {'x'.join(map(str, rec['raster_shape']))} tol {rec['tol']:g} | "
        f"ours {fmt_side(rec['ours'])} {rec['ours'].get('status')} | "
        f"sdot {fmt_side(rec['sdot'])} | ratio " + (f"{r:.2f}" if r else "-")
    )


def table_rows(results):
    for name, c in results.items():
        if "solves" not in c:
            yield name, c
            continue
        s = c["summary"]
        w = c["solves"][s["ours_worst"]]
        yield (
            f"{name} {s['ours_converged']}/{s['solves']} conv, worst {s['ours_worst']}",
            w,
        )
        for k, r in c["solves"].items():
            if "seconds" in r["sdot"] or r["sdot"].get("status") in (
                "timeout",
                "failed",
            ):
                yield f"{name}/{k}", r


def print_table(results):
    head = (
        f"{'case':<36} {'N':>6} {'raster':>12} | {'ours s':>8} {'cv':>3} "
        f"{'err':<16} | {'sdot s':>8} {'cv':>3} {'err':<16} | {'sdot/ours':>9} "
        f"| {'sdot own err':>12}"
    )
    log("")
    log(head)
    log("-" * len(head))
    for label, r in table_rows(results):
        ratio = r.get("time_ratio_sdot_over_ours")
        log(
            f"{label:<36} {r['N']:>6} {'x'.join(map(str, r['raster_shape'])):>12} | "
            f"{fmt_side(r['ours'])} | {fmt_side(r['sdot'])} | "
            + (f"{ratio:9.2f}" if ratio else f"{'-':>9}")
            + f" | {own_error(r['sdot']):>12}"
        )
    log(
        "err: max_i |m_i - 1/N| N from our fractional masses (sdot: at its weights); "
        "sdot own err: from the masses sdot reports"
    )


def own_error(s):
    e = s.get("max_error_reported")
    return f"{e:.2e}" if e is not None else "-"


def versions(sdot_v):
    import numba

    return {
        "rasterquant": getattr(rq, "__version__", None),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "python": platform.python_version(),
        "sdot": sdot_v,
    }


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--cases", default=None, help="comma-separated: " + ",".join(CASES))
    ap.add_argument("--no-sdot", action="store_true", help="our side only")
    ap.add_argument("--repeat", type=int, default=1, help="timed solves per side")
    ap.add_argument(
        "--timeout", type=float, default=900.0, help="seconds per sdot subprocess"
    )
    ap.add_argument(
        "--sdot-seeds",
        type=int,
        default=3,
        help="portrait300: sdot on the first seeds only (default 3)",
    )
    ap.add_argument("--out", default=None, help="JSON path")
    args = ap.parse_args()
    args.cases = list(CASES) if args.cases is None else args.cases.split(",")
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    if args.out is None:
        base = "hard_cases_quick.json" if args.quick else "hard_cases.json"
        args.out = os.path.join(RESULTS, base)
    return args


def write(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)


def main():
    args = parse_args()
    sdot, tmp, sdot_v = None, tempfile.mkdtemp(prefix="rq_hard_"), None
    try:
        if not args.no_sdot:
            py = ensure_venv()
            runner = os.path.join(tmp, "run_sdot.py")
            with open(runner, "w") as f:
                f.write(SDOT_RUNNER)
            sdot, sdot_v = (py, runner, tmp), sdot_versions(py)
        t = time.perf_counter()
        warmup()
        log(f"warm-up (numba compile, excluded): {time.perf_counter() - t:.1f} s")
        data = {
            "quick": args.quick,
            "repeat": args.repeat,
            "sdot_timeout_seconds": args.timeout,
            "sdot_venv": compare_sdot.VENV,
            "timing": "ours warm (tiny solves first: numba compile excluded), best "
            "of repeat; sdot inside its subprocess after a warm-up solve, best of "
            "repeat; errors max_i |m_i - 1/N| N computed by rasterquant (sdot: our "
            "fractional masses at its weights)",
            "machine": dict(machine(), load_at_start=list(os.getloadavg())),
            "versions": versions(sdot_v),
            "cases": {},
        }
        for name in args.cases:
            log(f"{name} ...")
            data["cases"][name] = run_case(name, args, sdot)
            write(args.out, data)  # partial results survive an interruption
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(data["cases"])
    log("wrote", os.path.abspath(args.out))


if __name__ == "__main__":
    main()
