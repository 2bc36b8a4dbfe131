"""Side by side with sdot (issue 7): same piecewise-constant image, same points.

sdot (PyPI) needs Python >= 3.12, so it runs in its own venv, in a subprocess; this
script creates that venv once (outside the repo) and installs ``sdot jax`` in it.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/compare_sdot.py [--n 10000] [--tol 1e-3]

Problem: data/portrait.png resized to 512x600 (H x W), softened, luminance -> 1 - lum
with a floor of 0.05 (no zero pixel) -- the density of benchmarks/bench_fractional.py; N
points drawn from it (seed 0); uniform target masses.

Conventions checked here (see the sdot sources: ``sdot/OtProblem.py``,
``sdot/SdotPlanNd.py``, ``sdot/distributions/Image.py``, ``sdot/PowerDiagram.py``):

- ``Image(values, frame=[H, W])``: axis ``a`` of ``values`` is coordinate ``a`` (the
  pixel frame is ``diag(frame) / shape``) and the origin is 0, so with our unit spacing
  a pixel (i, j) covers [i, i+1) x [j, j+1) exactly as in rasterquant, and the points
  are passed in (row, col) order unchanged. Both sides normalise the image to mass 1.
- power distance ``|x - p_i|^2 - w_i`` on both sides; sdot's gauge is ``w[0] = 0`` and
  ours is mean zero, so ``psi = w - mean(w)`` (no scaling: same coordinates).
- tolerances: sdot's ``Iterative(tol)`` stops when ``max_i |m_i - nu_i| <= tol``
  (absolute, masses normalised to 1); ours is ``max_i |m_i - alpha_i| / alpha_i``. With
  uniform masses, sdot's tol = ours / N.
- ``sol.cost`` is W_2^2 = sum_i int_{Lag_i} |x - y_i|^2 drho, our ``energy``.

Checks: (a) our fractional masses at sdot's weights vs sdot's reported masses (1e-6 of
1/N); (b) F_N at the same weights, and F_N of both solutions solved to a tight tolerance
(1e-6 relative); (c) both solutions' masses against the target. Timing: best of
``--repeat`` solves from scratch at the same tolerance, compile / kernel loading
excluded on both sides.

Writes benchmarks/results/compare_sdot.json.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import rasterquant as rq  # noqa: E402

VENV = os.path.expanduser(
    os.environ.get("RQ_SDOT_VENV", "~/.cache/rasterquant-sdot-venv")
)
PY312_CANDIDATES = ["python3.12", "/root/.pyenv/versions/3.12.1/bin/python"]

# --------------------------------------------------------------------------------
# the sdot side, run by the venv's python: reads problem.npz, writes the result .npz
SDOT_RUNNER = textwrap.dedent(
    r"""
    import json, sys, time
    import numpy as np

    t0 = time.perf_counter()
    import sdot
    from sdot import Image, Iterative, OtProblem, SumOfDiracs
    t_import = time.perf_counter() - t0

    prob = np.load(sys.argv[1])
    out_path = sys.argv[2]
    cfg = json.loads(sys.argv[3])
    values = np.ascontiguousarray(prob["values"], dtype=float)   # pixel masses, sum 1
    spacing = np.asarray(prob["spacing"], dtype=float)
    origin = np.asarray(prob["origin"], dtype=float)
    # (row, col) = array axis order, as sdot reads the image
    points = np.ascontiguousarray(prob["points"], dtype=float)
    n = len(points)
    # density per unit area = pixel mass / pixel area (sdot normalises anyway)
    dens = values / float(np.prod(spacing))

    def image():
        # frame = lengths of the whole image along each array axis
        # -> one pixel = diag(spacing)
        lengths = spacing * np.asarray(dens.shape, dtype=float)
        return Image(dens, frame=list(lengths), origin=origin)

    def solve(pts, tol_rel):
        pb = OtProblem(SumOfDiracs(pts), image())
        # uniform masses: absolute sdot tol = relative tol / N
        t = time.perf_counter()
        settings = Iterative(tol=tol_rel / len(pts), max_iter=cfg["max_iter"],
                             on_failure="ignore")
        sol = pb.solve(settings)
        dt = time.perf_counter() - t
        return sol, dt

    # warm-up (kernel loading / any compilation) on a small problem
    t = time.perf_counter()
    solve(points[:200], cfg["tol"])
    t_warm = time.perf_counter() - t

    res = {}
    times = []
    sol = None
    for _ in range(cfg["repeat"]):
        sol, dt = solve(points, cfg["tol"])
        times.append(dt)
    res["times"] = np.array(times)
    res["weights"] = np.asarray(sol.weights, dtype=float)
    res["masses"] = np.asarray(sol.cell_masses, dtype=float)
    res["target"] = np.asarray(sol.target_masses, dtype=float)
    res["cost"] = float(np.asarray(sol.cost))
    stats = {k: (v if isinstance(v, (int, float, str)) else str(v))
             for k, v in sol.stats.items()}
    meta = {"stats": stats, "converged": bool(sol.converged), "t_import": t_import,
            "t_warmup": t_warm,
            "sdot_version": getattr(sdot, "__version__", None)}
    try:
        from importlib.metadata import version
        meta["sdot_version"] = version("sdot")
        meta["jax_version"] = version("jax")
        meta["loom_ffi_version"] = version("loom-ffi")
    except Exception as e:  # pragma: no cover
        meta["version_error"] = repr(e)
    meta["python"] = sys.version.split()[0]

    if cfg["tight_tol"] > 0:
        sol2, dt2 = solve(points, cfg["tight_tol"])
        res["tight_weights"] = np.asarray(sol2.weights, dtype=float)
        res["tight_masses"] = np.asarray(sol2.cell_masses, dtype=float)
        res["tight_cost"] = float(np.asarray(sol2.cost))
        meta["tight"] = {"seconds": dt2, "converged": bool(sol2.converged),
                         "status": sol2.stats["status"],
                         "residual": float(sol2.stats["residual"]),
                         "nb_iter": int(sol2.stats["nb_iter"])}
    res["meta"] = np.array(json.dumps(meta))
    np.savez(out_path, **res)
    """
)


def log(*a):
    print(*a, flush=True)


def find_python312():
    for c in PY312_CANDIDATES:
        exe = shutil.which(c) if os.sep not in c else (c if os.path.exists(c) else None)
        if not exe:
            continue
        try:
            v = subprocess.run(
                [exe, "-c", "import sys; print(sys.version_info[:2] >= (3, 12))"],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if v.returncode == 0 and v.stdout.strip() == "True":
            return exe
    return None


def ensure_venv():
    """The venv's python, with sdot and jax importable; installs only when missing."""
    py = os.path.join(VENV, "bin", "python")
    check = [py, "-c", "import sdot, jax"]
    if (
        os.path.exists(py)
        and subprocess.run(check, capture_output=True).returncode == 0
    ):
        log(f"sdot venv: {VENV} (sdot and jax already installed)")
        return py
    if not os.path.exists(py):
        exe = find_python312()
        if exe is None:
            log(
                "ERROR: no Python >= 3.12 found (tried: "
                + ", ".join(PY312_CANDIDATES)
                + "); sdot needs it"
            )
            sys.exit(2)
        log(f"sdot venv: creating {VENV} with {exe} -m venv")
        r = subprocess.run([exe, "-m", "venv", VENV])
        if r.returncode != 0:
            log(f"ERROR: '{exe} -m venv {VENV}' failed (exit {r.returncode})")
            sys.exit(2)
    log(f"sdot venv: {py} -m pip install sdot jax")
    r = subprocess.run([py, "-m", "pip", "install", "sdot", "jax"])
    if r.returncode != 0 or subprocess.run(check, capture_output=True).returncode != 0:
        log(
            f"ERROR: 'pip install sdot jax' in {VENV} failed (exit {r.returncode}); "
            "sdot cannot be compared here"
        )
        sys.exit(2)
    return py


def run_sdot(py, dens, pts, cfg, timeout=None):
    """Run SDOT_RUNNER on ``dens`` (a Density) and ``pts`` (N, d) in the venv's python.

    ``cfg``: tol (relative, uniform masses), tight_tol (0: skip), repeat, max_iter.
    Returns ``(completed_process, outputs, subprocess_seconds)``; ``outputs`` is the
    runner's .npz as a dict (times, weights, masses, target, cost, meta as JSON), or
    None when the subprocess failed. Raises ``subprocess.TimeoutExpired`` (the
    subprocess is killed) after ``timeout`` seconds.
    """
    g = dens.grid
    tmp = tempfile.mkdtemp(prefix="rq_sdot_")
    try:
        prob_path = os.path.join(tmp, "problem.npz")
        out_path = os.path.join(tmp, "sdot_out.npz")
        runner = os.path.join(tmp, "run_sdot.py")
        np.savez(
            prob_path,
            values=dens.values,
            spacing=np.asarray(g.spacing, float),
            origin=np.asarray(g.origin, float),
            points=pts,
        )
        with open(runner, "w") as f:
            f.write(SDOT_RUNNER)
        t = time.perf_counter()
        r = subprocess.run(
            [py, runner, prob_path, out_path, json.dumps(cfg)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        t_sub = time.perf_counter() - t
        so = dict(np.load(out_path)) if r.returncode == 0 else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return r, so, t_sub


def versions(smeta):
    """Versions of both sides; ``smeta``: the sdot runner's meta dict."""
    import numba

    return {
        "rasterquant": getattr(rq, "__version__", None),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "python": platform.python_version(),
        "sdot": smeta.get("sdot_version"),
        "jax": smeta.get("jax_version"),
        "loom_ffi": smeta.get("loom_ffi_version"),
        "sdot_python": smeta.get("python"),
    }


def photo_density(h=512, w=600):
    """portrait.png at h x w, softened, 1 - lum, floor 0.05 (bench_fractional)."""
    from PIL import Image, ImageFilter

    img = Image.open(os.path.join(HERE, "..", "data", "portrait.png")).convert("L")
    img = img.resize((w, h), Image.BICUBIC).filter(ImageFilter.GaussianBlur(1.5))
    lum = np.asarray(img, dtype=float) / 255.0
    return rq.Density.from_luminance(lum, floor=0.05)


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba

    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--n", type=int, default=10000, help="number of points (default 10000)"
    )
    ap.add_argument(
        "--tol",
        type=float,
        default=1e-3,
        help="relative mass error max|m_i - 1/N| N for the timed solves (default 1e-3)",
    )
    ap.add_argument(
        "--tight-tol",
        type=float,
        default=1e-8,
        help="relative tolerance of the accuracy solves (0: skip; default 1e-8)",
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="timed solves per side (best is reported)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "compare_sdot.json"))
    args = ap.parse_args()

    py = ensure_venv()

    dens = photo_density()
    n = args.n
    pts = rq.sample_points(dens, n, seed=args.seed)
    alpha = np.full(n, 1.0 / n)
    log(
        f"problem: {dens.shape} portrait, floor 0.05, N={n} (seed {args.seed}), "
        f"uniform masses, "
        f"tol {args.tol:g} relative (= {args.tol / n:.3g} absolute), tight "
        f"{args.tight_tol:g}"
    )

    cfg = {
        "tol": args.tol,
        "tight_tol": args.tight_tol,
        "repeat": args.repeat,
        "max_iter": args.max_iter,
    }
    log("sdot: solving in the venv subprocess ...")
    r, so, t_sub = run_sdot(py, dens, pts, cfg)
    if r.returncode != 0:
        log(r.stdout[-3000:])
        log(r.stderr[-6000:])
        log(f"ERROR: the sdot subprocess failed (exit {r.returncode})")
        sys.exit(1)
    smeta = json.loads(str(so["meta"]))
    st = smeta["stats"]
    t_sdot = float(np.min(so["times"]))
    log(
        f"sdot: best {t_sdot:.3f} s of {[round(float(x), 3) for x in so['times']]} "
        f"(status {st['status']}, {st['nb_iter']} Newton steps, {st['nb_diag']} "
        f"diagrams, "
        f"start {st['start']}, continuation steps {st['nb_continuation_steps']}; "
        f"import {smeta['t_import']:.2f} s, warm-up {smeta['t_warmup']:.2f} s, "
        f"subprocess {t_sub:.1f} s)"
    )

    # ---- rasterquant: compile first, then time ----
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rq.solve_ot(dens, pts[:50], tol=args.tol)
        rq.solve_ot(
            rq.Density.from_array(np.ones((16, 16))),
            np.array([[3.0, 4.0], [11.0, 9.0]]),
            tol=args.tol,
        )
        rq.assign_cells(dens, pts, np.zeros(n), quadrature="fractional")
        times = []
        res = None
        for _ in range(args.repeat):
            t = time.perf_counter()
            res = rq.solve_ot(dens, pts, tol=args.tol, quadrature="fractional")
            times.append(time.perf_counter() - t)
        t_rq = float(np.min(times))
        tight = None
        if args.tight_tol > 0:
            t = time.perf_counter()
            tight = rq.solve_ot(dens, pts, tol=args.tight_tol, quadrature="fractional")
            t_tight = time.perf_counter() - t
    log(
        f"rasterquant: best {t_rq:.3f} s of {[round(x, 3) for x in times]} "
        f"(converged {res.converged}, {res.n_iter} Newton steps, max rel error "
        f"{res.max_error:.3g})"
    )

    # ---- agreement ----
    def rel_err(m):
        return float(np.max(np.abs(m - alpha)) / (1.0 / n))

    def at_sdot_weights(w, m_sdot, cost_sdot):
        psi = w - w.mean()  # same convention |x-y|^2 - w, gauge: mean zero
        a = rq.assign_cells(dens, pts, psi, quadrature="fractional")
        return {
            "max_mass_discrepancy_rel_1_over_N": float(
                np.max(np.abs(a.masses - m_sdot)) * n
            ),
            "F_N_rq_at_sdot_weights": float(a.energy),
            "F_N_sdot": cost_sdot,
            "F_N_rel_diff": abs(float(a.energy) - cost_sdot) / abs(cost_sdot),
            "rq_mass_rel_error_at_sdot_weights": rel_err(a.masses),
        }

    cmp_tol = at_sdot_weights(so["weights"], so["masses"], float(so["cost"]))
    summary = {
        "case": (
            f"data/portrait.png 512x600 (H x W), blur 1.5, 1 - lum, floor 0.05; "
            f"N={n} drawn from "
            f"the density (seed {args.seed}); uniform masses; both from scratch"
        ),
        "tol_relative": args.tol,
        "tol_sdot_absolute": args.tol / n,
        "sdot": {
            "solve_seconds_best": t_sdot,
            "solve_seconds_all": [float(x) for x in so["times"]],
            "converged": smeta["converged"],
            "status": st["status"],
            "newton_iterations": st["nb_iter"],
            "diagrams": st["nb_diag"],
            "start": st["start"],
            "continuation_steps": st["nb_continuation_steps"],
            "internal_t_total": st.get("t_total"),
            "mass_rel_error_reported": rel_err(so["masses"]),
            "F_N": float(so["cost"]),
            "import_seconds": smeta["t_import"],
            "warmup_seconds": smeta["t_warmup"],
        },
        "rasterquant": {
            "solve_seconds_best": t_rq,
            "solve_seconds_all": times,
            "converged": bool(res.converged),
            "newton_iterations": int(res.n_iter),
            "mass_rel_error": rel_err(res.masses),
            "max_error": float(res.max_error),
            "F_N": float(res.energy),
        },
        "time_ratio_sdot_over_rq": t_sdot / t_rq,
        "at_sdot_weights_timed_tol": cmp_tol,
        "F_N_rel_diff_between_solutions_timed_tol": abs(
            float(res.energy) - float(so["cost"])
        )
        / float(so["cost"]),
    }
    checks = {
        "(a) masses at sdot weights <= 1e-6/N": cmp_tol[
            "max_mass_discrepancy_rel_1_over_N"
        ]
        <= 1e-6,
        "(b) F_N at sdot weights <= 1e-6 rel": cmp_tol["F_N_rel_diff"] <= 1e-6,
        "(c) sdot masses within tol": rel_err(so["masses"]) <= args.tol * (1 + 1e-9),
        "(c) rq masses within tol": rel_err(res.masses) <= args.tol * (1 + 1e-9),
    }
    if tight is not None:
        tm = json.loads(str(so["meta"]))["tight"]
        cmp_tight = at_sdot_weights(
            so["tight_weights"], so["tight_masses"], float(so["tight_cost"])
        )
        w_s = so["tight_weights"] - so["tight_weights"].mean()
        summary["tight"] = {
            "tol_relative": args.tight_tol,
            "sdot": dict(
                tm,
                mass_rel_error_reported=rel_err(so["tight_masses"]),
                F_N=float(so["tight_cost"]),
            ),
            "rasterquant": {
                "seconds": t_tight,
                "converged": bool(tight.converged),
                "newton_iterations": int(tight.n_iter),
                "mass_rel_error": rel_err(tight.masses),
                "F_N": float(tight.energy),
            },
            "at_sdot_weights": cmp_tight,
            "F_N_rel_diff_between_solutions": abs(
                float(tight.energy) - float(so["tight_cost"])
            )
            / float(so["tight_cost"]),
            "max_abs_weight_diff": float(np.max(np.abs(tight.weights - w_s))),
            "weight_scale_mean_abs": float(np.mean(np.abs(tight.weights))),
        }
        checks["(a') masses at sdot tight weights <= 1e-6/N"] = (
            cmp_tight["max_mass_discrepancy_rel_1_over_N"] <= 1e-6
        )
        checks["(b') F_N of both tight solutions <= 1e-6 rel"] = (
            summary["tight"]["F_N_rel_diff_between_solutions"] <= 1e-6
        )
    summary["checks"] = checks
    summary["versions"] = versions(smeta)
    summary["machine"] = machine()
    summary["sdot_stats"] = st

    # ---- report ----
    log("")
    log(
        f"time at tol {args.tol:g} (relative): sdot {t_sdot:.3f} s, rasterquant "
        f"{t_rq:.3f} s, "
        f"ratio sdot/rq = {t_sdot / t_rq:.2f}"
    )
    log(
        f"masses vs target (relative): sdot {rel_err(so['masses']):.3g}, rq "
        f"{rel_err(res.masses):.3g}"
    )
    log(
        f"F_N: sdot {float(so['cost']):.10g}, rq {float(res.energy):.10g} "
        f"(rel diff {summary['F_N_rel_diff_between_solutions_timed_tol']:.2g}, "
        f"different weights)"
    )
    log(
        f"at sdot's weights: max |m_rq - m_sdot| = "
        f"{cmp_tol['max_mass_discrepancy_rel_1_over_N']:.3g} / N, "
        f"F_N rel diff {cmp_tol['F_N_rel_diff']:.3g}"
    )
    if tight is not None:
        tt = summary["tight"]
        log(
            f"tight tol {args.tight_tol:g}: sdot {tt['sdot']['seconds']:.3f} s "
            f"({tt['sdot']['status']}, "
            f"mass err {tt['sdot']['mass_rel_error_reported']:.3g}), rq "
            f"{t_tight:.3f} s "
            f"(mass err {tt['rasterquant']['mass_rel_error']:.3g}); "
            f"F_N rel diff {tt['F_N_rel_diff_between_solutions']:.3g}; at sdot "
            f"weights: masses "
            f"{tt['at_sdot_weights']['max_mass_discrepancy_rel_1_over_N']:.3g}/N, F_N "
            f"{tt['at_sdot_weights']['F_N_rel_diff']:.3g}; max |psi_rq - psi_sdot| "
            f"{tt['max_abs_weight_diff']:.3g} (mean |psi| "
            f"{tt['weight_scale_mean_abs']:.3g})"
        )
    for k, v in checks.items():
        log(f"  {'ok  ' if v else 'FAIL'} {k}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)
    log("wrote", args.out)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
