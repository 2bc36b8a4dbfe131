"""Issue 16 (scale in N): the linear solver of the Newton systems.

Captures the real Newton systems (Jacobian + right-hand side) of public ``solve_ot``
calls, by wrapping ``solve_newton_system`` as ``ot.newton`` sees it (here only), and
times on each of them (CPU seconds; run with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1;
compile time excluded):

- ``jacobi_cg``: CG with a Jacobi preconditioner (the solver above
  DIRECT_SOLVE_MAX_N before issue 16), to the relative residual ``rtol``;
- ``superlu``: the grounded SuperLU factorisation and one solve;
- ``amg_<kind>``: pyamg hierarchies (smoothed aggregation, root-node, Ruge-Stuben)
  as CG preconditioners: setup and solve times apart, iterations;
- ``reuse_<kind>``: CG on this system preconditioned by the hierarchy built for the
  first system of the same solve (the iterations a reused hierarchy needs);
- ``stale_lu``: CG preconditioned by the factorisation of the first system.

Cases: matplotlib's grace_hopper.jpg (density 1 - luminance + 0.02) with N = 10,000
and 50,000 points drawn from it, the same upscaled to 1024^2 with N = 200,000 (its
capture solve uses SuperLU), and 3D Gaussian blobs (64^3, N = 2,000 and 8,000), all
at tol 1e-3 from zero weights. Up to six systems of each solve are timed (the first
two, the last two, two between); ``reuse_*`` use the hierarchy of the first timed
system, ``reuse_prev_sa`` that of the system just before. Jacobi CG is skipped above
N = 60,000. Results are merged into benchmarks/results/linear.json.

    python benchmarks/bench_linear.py [case ...]
    python benchmarks/bench_linear.py --solve N [auto|direct|cg] [gh|gh1024|b3]

The second form times one public ``solve_ot`` end to end (wall and CPU seconds);
run it from a ``git archive`` copy of another commit (PYTHONPATH, its own
NUMBA_CACHE_DIR) for a before/after comparison.
"""

import json
import os
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import rasterquant as rq
from rasterquant.ot import newton

RTOLS = (1e-2, 1e-6)


def grace_hopper(size=None):
    import matplotlib.cbook as cbook
    import matplotlib.pyplot as plt

    img = plt.imread(cbook.get_sample_data("grace_hopper.jpg"))
    lum = img[..., :3].astype(float).mean(axis=2) / 255.0
    if size is not None:
        from PIL import Image

        pil = Image.fromarray((lum * 255).astype(np.uint8))
        lum = np.asarray(pil.resize(size, Image.BICUBIC), dtype=float) / 255.0
    return rq.Density.from_array(1.0 - lum + 0.02)


def blobs3d(n=64, seed=0):
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n) + 0.5] * 3, indexing="ij")
    vals = np.full((n, n, n), 0.05)
    for _ in range(8):
        c = rng.random(3) * n
        s = n * (0.05 + 0.1 * rng.random())
        vals += np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / s**2)
    return rq.Density.from_array(vals)


CASES = {
    "grace_hopper_N10000": (lambda: grace_hopper(), 10000),
    "grace_hopper_N50000": (lambda: grace_hopper(), 50000),
    # the capture solve uses SuperLU (Jacobi CG would take minutes per system)
    "grace_hopper_1024^2_N200000": (lambda: grace_hopper((1024, 1024)), 200000),
    "blobs64^3_N2000": (lambda: blobs3d(), 2000),
    "blobs64^3_N8000": (lambda: blobs3d(), 8000),
}


def capture(density, n, **kw):
    """Return the Newton systems of one ``solve_ot`` and its wall time."""
    systems = []
    real = newton.solve_newton_system

    def spy(jac, rhs, **kw):
        systems.append((sp.csr_matrix(jac, copy=True), np.array(rhs), kw.get("ndim")))
        return real(jac, rhs, **kw)

    pts = rq.sample_points(density, n, seed=0)
    newton.solve_newton_system = spy
    try:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = rq.solve_ot(density, pts, tol=1e-3, **kw)
        wall = time.perf_counter() - t
    finally:
        newton.solve_newton_system = real
    return systems, wall, res


def grounded(jac):
    n = jac.shape[0]
    diag = jac.diagonal()
    eps = 1e-10 * float(diag.max())
    return (jac[1:, 1:] + eps * sp.identity(n - 1)).tocsr()


def pcg(a, b, m, rtol, maxiter=20000):
    """Scipy CG with an iteration counter; returns (x, iterations, seconds)."""
    it = [0]

    def count(_):
        it[0] += 1

    t = time.process_time()
    x, _info = spla.cg(a, b, rtol=rtol, atol=0.0, M=m, maxiter=maxiter, callback=count)
    sec = time.process_time() - t
    rel = float(np.linalg.norm(b - a @ x) / np.linalg.norm(b))
    return x, it[0], sec, rel


def build(kind, a):
    import pyamg

    t = time.process_time()
    if kind == "sa":
        ml = pyamg.smoothed_aggregation_solver(a, symmetry="symmetric", max_coarse=500)
    elif kind == "rootnode":
        ml = pyamg.rootnode_solver(a, symmetry="symmetric", max_coarse=500)
    else:
        ml = pyamg.ruge_stuben_solver(a, max_coarse=500)
    return ml, time.process_time() - t


def time_system(jac, rhs, first, out, prev=None):
    a = grounded(jac)
    b = rhs[1:]
    n = a.shape[0]
    rec = {"n": n + 1, "nnz": int(jac.nnz)}
    d = a.diagonal()
    jac_m = spla.LinearOperator(a.shape, matvec=lambda v: v / d)
    for rtol in RTOLS:
        if n < 60000:
            _, it, sec, rel = pcg(a, b, jac_m, rtol, maxiter=10 * n)
            rec[f"jacobi_cg_rtol{rtol:g}"] = {"iter": it, "cpu_s": sec, "rel": rel}
    t = time.process_time()
    lu = spla.splu(
        a.tocsc(),
        permc_spec="MMD_AT_PLUS_A",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )
    t_fact = time.process_time() - t
    t = time.process_time()
    x = lu.solve(b)
    rec["superlu"] = {
        "factor_cpu_s": t_fact,
        "solve_cpu_s": time.process_time() - t,
        "fill_nnz": int(lu.L.nnz + lu.U.nnz),
        "rel": float(np.linalg.norm(b - a @ x) / np.linalg.norm(b)),
    }
    for kind in ("sa", "rootnode", "rs"):
        ml, t_setup = build(kind, a)
        m = ml.aspreconditioner(cycle="V")
        r = {"setup_cpu_s": t_setup, "levels": len(ml.levels)}
        for rtol in RTOLS:
            _, it, sec, rel = pcg(a, b, m, rtol)
            r[f"rtol{rtol:g}"] = {"iter": it, "cpu_s": sec, "rel": rel}
        rec[f"amg_{kind}"] = r
        if first is None:
            out.setdefault("hierarchies", {})[kind] = ml
        else:
            old = first["hierarchies"][kind].aspreconditioner(cycle="V")
            r = {}
            for rtol in RTOLS:
                _, it, sec, rel = pcg(a, b, old, rtol)
                r[f"rtol{rtol:g}"] = {"iter": it, "cpu_s": sec, "rel": rel}
            rec[f"reuse_{kind}"] = r
    if prev is not None:
        # the hierarchy of the system just before (Newton step k-1 for step k)
        ml, _ = build("sa", grounded(prev))
        old = ml.aspreconditioner(cycle="V")
        r = {}
        for rtol in RTOLS:
            _, it, sec, rel = pcg(a, b, old, rtol)
            r[f"rtol{rtol:g}"] = {"iter": it, "cpu_s": sec, "rel": rel}
        rec["reuse_prev_sa"] = r
    if first is None:
        out["lu"] = lu
    else:
        old = spla.LinearOperator(a.shape, matvec=first["lu"].solve)
        r = {}
        for rtol in RTOLS:
            _, it, sec, rel = pcg(a, b, old, rtol)
            r[f"rtol{rtol:g}"] = {"iter": it, "cpu_s": sec, "rel": rel}
        rec["stale_lu"] = r
    return rec


def main(names):
    # compile the kernels on a tiny solve
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = grace_hopper()
        rq.solve_ot(small, rq.sample_points(small, 200, seed=1), tol=1e-3)
        b3 = blobs3d(16)
        rq.solve_ot(b3, rq.sample_points(b3, 50, seed=1), tol=1e-3)
    path = os.path.join(os.path.dirname(__file__), "results", "linear.json")
    results = {}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    results["load_average_start"] = os.getloadavg()
    for name in names:
        make, n = CASES[name]
        dens = make()
        kw = {"linear_solver": "direct"} if n > 100000 else {}
        systems, wall, res = capture(dens, n, **kw)
        print(name, len(systems), "systems", f"solve {wall:.2f} s", flush=True)
        case = {
            "shape": list(dens.grid.shape),
            "n_points": n,
            "solve_wall_s_with_capture": wall,
            "solve_n_iter": res.n_iter,
            "systems": [],
        }
        # the systems of the fine raster (full size N, last ndim): every one from
        # the first on the finest raster; the first of them builds the hierarchies
        fine = [s for s in systems if s[0].shape[0] == n]
        # systems before the last n_fine ones come from the coarser rasters of the
        # multiscale start
        n_coarse = len(fine) - res.n_iter
        pick = list(range(len(fine)))
        if len(pick) > 6:  # first two, last two, two between
            k = len(pick)
            pick = sorted({0, 1, k // 3, 2 * k // 3, k - 2, k - 1})
        ref = {}
        for i in pick:
            jac, rhs, _ndim = fine[i]
            prev = fine[i - 1][0] if i > 0 else None
            rec = time_system(jac, rhs, None if i == pick[0] else ref, ref, prev)
            rec["index"] = i
            rec["raster_level"] = "fine" if i >= n_coarse else "coarse"
            rec["load_average"] = os.getloadavg()
            case["systems"].append(rec)
            print(json.dumps(rec), flush=True)
        case["n_systems"] = len(systems)
        results[name] = case
    results["load_average_end"] = os.getloadavg()
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print("wrote", path)


def time_solve(n, linear_solver="auto", case="gh"):
    """Print one end-to-end ``solve_ot`` (after a compile call): wall and CPU time."""
    make = {
        "gh": grace_hopper,
        "gh1024": lambda: grace_hopper((1024, 1024)),
        "b3": blobs3d,
    }[case]
    dens = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rq.solve_ot(dens, rq.sample_points(dens, 200, seed=1), tol=1e-3)
        pts = rq.sample_points(dens, n, seed=0)
        w0, c0 = time.perf_counter(), time.process_time()
        r = rq.solve_ot(dens, pts, tol=1e-3, linear_solver=linear_solver)
        w1, c1 = time.perf_counter(), time.process_time()
    print(
        f"{os.path.dirname(rq.__file__)} case={case} N={n} ls={linear_solver} "
        f"wall={w1 - w0:.2f}s cpu={c1 - c0:.2f}s n_iter={r.n_iter} "
        f"converged={r.converged} err={r.max_error:.2e} "
        f"load={os.getloadavg()[0]:.2f}",
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--solve"]:
        # python benchmarks/bench_linear.py --solve N [auto|direct|cg] [gh|gh1024|b3]
        time_solve(int(sys.argv[2]), *sys.argv[3:])
    else:
        main(sys.argv[1:] or list(CASES))
