"""Faults: solve_ot always ends, Ctrl-C and full disks leave no partial output.

Numerical faults are injected by replacing the Newton direction; process faults by
sending SIGINT/SIGTERM to a real ``python -m rasterquant`` run and by making the
atomic writer's fsync fail with ENOSPC.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import rasterquant as rq
from rasterquant.cli import _common
from rasterquant.cli.main import main

newton = sys.modules["rasterquant.ot.newton"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def problem(rng):
    density = rng.random((40, 40)) + 0.1
    points = rng.random((15, 2)) * 40
    return density, points


def _solve(density, points, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = rq.solve_ot(density, points, **kwargs)
    return res, [w.category for w in caught]


# ------------------------------------------------------------------ numerical faults


@pytest.mark.parametrize("direction", ["reversed", "zero", "huge"])
def test_solve_ot_stall_ends_with_warning(monkeypatch, problem, direction):
    real = newton.solve_newton_system

    def bad(jac, rhs, method="auto", **kwargs):
        d, solver = real(jac, rhs, method=method, **kwargs)
        return {"reversed": -d, "zero": 0.0 * d, "huge": 1e300 * np.sign(d)}[
            direction
        ], solver

    monkeypatch.setattr(newton, "solve_newton_system", bad)
    t0 = time.perf_counter()
    # multiscale=False: start from zero weights (the coarse levels would use the
    # broken direction too and start the fine level elsewhere)
    res, warned = _solve(*problem, tol=1e-3, multiscale=False)
    assert time.perf_counter() - t0 < 60
    assert res.converged is False
    assert res.status == "stalled"
    assert warned == [rq.ConvergenceWarning]
    # the continuation took over and failed too (its stages use the same broken
    # solver): the best iterate of the fast solve is returned, its history kept
    assert res.continuation is not None and res.continuation["rejected"] > 0
    assert res.n_iter >= 1
    assert res.history["step"][-1] == 0.0
    np.testing.assert_allclose(res.weights, 0.0, atol=0)  # the best (= first) iterate
    assert np.isfinite(res.weights).all()


def test_centre_quadrature_stall_is_not_globalised(monkeypatch, problem):
    """A centre-pixel stall ends at once: no continuation (whole-pixel masses).

    The same broken direction with fractional quadrature is taken over by the
    continuation (the test above); with centre pixels the paths cannot change the
    raster's resolution, and Lloyd with centre quadrature spent 130 Newton steps a
    solve in them.
    """
    real = newton.solve_newton_system
    calls = []

    def reversed_direction(jac, rhs, method="auto", **kwargs):
        calls.append(1)
        d, solver = real(jac, rhs, method=method, **kwargs)
        return -d, solver

    monkeypatch.setattr(newton, "solve_newton_system", reversed_direction)
    res, warned = _solve(*problem, tol=1e-3, multiscale=False, quadrature="center")
    assert res.status == "stalled" and res.converged is False
    assert res.continuation is None
    assert len(calls) == res.n_iter == 1
    assert rq.ConvergenceWarning in warned


def test_solve_ot_stall_returns_the_best_iterate(monkeypatch, problem):
    real = newton.solve_newton_system
    calls = []

    def good_then_bad(jac, rhs, method="auto", **kwargs):
        calls.append(1)
        d, solver = real(jac, rhs, method=method, **kwargs)
        return (d if len(calls) == 1 else -d), solver

    monkeypatch.setattr(newton, "solve_newton_system", good_then_bad)
    res, warned = _solve(*problem, tol=1e-4, multiscale=False)
    assert res.status == "stalled"
    assert res.converged is False
    assert rq.ConvergenceWarning in warned
    hist = res.history["max_mass_error"]
    assert res.max_error == pytest.approx(min(hist), rel=1e-12)
    assert res.max_error < hist[0]
    np.testing.assert_allclose(res.weights.mean(), 0.0, atol=1e-12)


def test_solve_ot_max_iter_ends_with_warning(problem):
    res, warned = _solve(*problem, tol=1e-3, max_iter=1)
    assert res.n_iter == 1
    assert res.converged is False
    assert warned == [rq.ConvergenceWarning]
    assert res.status == "max_iter"


def test_solve_ot_unreachable_tol_ends(problem):
    t0 = time.perf_counter()
    res, warned = _solve(*problem, tol=1e-9, quadrature="center")
    assert time.perf_counter() - t0 < 60
    assert res.converged is False
    assert warned and set(warned) <= {rq.ResolutionWarning, rq.ConvergenceWarning}
    assert res.n_iter <= 100


def test_solve_ot_fractional_reaches_1e_9(problem):
    """The tol that centre quadrature cannot reach is met with fractional masses."""
    t0 = time.perf_counter()
    res, warned = _solve(*problem, tol=1e-9, quadrature="fractional")
    assert time.perf_counter() - t0 < 60
    assert warned == []
    assert res.converged and res.status == "converged"
    assert res.max_error <= 1e-9


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_solve_ot_non_finite_direction_is_a_stall(monkeypatch, problem, bad):
    monkeypatch.setattr(
        newton,
        "solve_newton_system",
        lambda jac, rhs, method="auto", **kw: (np.full_like(rhs, bad), None),
    )
    res, warned = _solve(*problem, tol=1e-3)
    assert res.status == "stalled"
    assert warned == [rq.ConvergenceWarning]  # no RuntimeWarning on the way
    assert np.isfinite(res.weights).all()


def test_lloyd_counts_empty_cell_repairs(rng):
    # all points in one corner: the first OT solve starts with empty cells
    density = rng.random((32, 32)) + 0.1
    points = np.array([[1.0, 1.0], [1.5, 1.0], [1.0, 1.5], [1.5, 1.5], [2.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rq.RasterquantWarning)
        res = rq.lloyd(density, points, n_iter=2, ot_tol=0.05)
    assert len(res.history["repairs"]) == len(res.history["energy"])
    assert all(r >= 0 for r in res.history["repairs"])
    assert (res.masses > 0).all()


# -------------------------------------------------------------------- process faults


def _make_input(tmp_path, shape=(16, 16), seed=0):
    path = tmp_path / "density.npy"
    np.save(path, np.random.default_rng(seed).random(shape) + 0.05)
    return str(path)


def _leftovers(directory):
    return sorted(n for n in os.listdir(directory) if n != "density.npy")


def _quantize_quick(src, *outputs):
    """Run ``quantize`` on ``src``: 4 points, one Voronoi iteration, quiet."""
    argv = ["quantize", src, "-n", "4"]
    for out in outputs:
        argv += ["-o", str(out)]
    return main([*argv, "--iterations", "1", "--method", "voronoi", "--quiet"])


def test_enospc_removes_temp_file_and_names_the_path(tmp_path, capsys, monkeypatch):
    import rasterquant.io.atomic as atomic

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    src = _make_input(tmp_path)
    out = tmp_path / "points.csv"
    code = _quantize_quick(src, out)
    err = capsys.readouterr().err
    assert code == 1
    assert "No space left on device" in err
    assert str(out) in err
    assert "Traceback" not in err
    assert _leftovers(tmp_path) == []  # no temp file, no output, no sidecar


def test_enospc_api_reports_the_target(tmp_path, monkeypatch):
    import rasterquant.io.atomic as atomic

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    out = tmp_path / "p.npy"
    with pytest.raises(OSError, match="No space left on device") as info:
        rq.write_points(out, [[1.0, 2.0]])
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(out)
    assert os.listdir(tmp_path) == []


def test_failed_sidecar_removes_the_points_written_by_this_run(
    tmp_path, capsys, monkeypatch
):
    import rasterquant.io.atomic as atomic

    real = atomic.atomic_write_json

    def fail(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(atomic, "atomic_write_json", fail)  # the sidecar, last
    src = _make_input(tmp_path)
    code = _quantize_quick(src, tmp_path / "p.csv", tmp_path / "p.npy")
    assert code == 1
    assert "p.csv.json" in capsys.readouterr().err
    assert _leftovers(tmp_path) == []
    assert real is not None


def test_keyboard_interrupt_between_outputs(tmp_path, capsys, monkeypatch):
    import rasterquant.io.points as points_mod

    real = points_mod.write_points
    calls = []

    def write_then_interrupt(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(points_mod, "write_points", write_then_interrupt)
    src = _make_input(tmp_path)
    keep = tmp_path / "keep.csv"  # existed before and is not an output
    keep.write_text("x\n")
    code = _quantize_quick(src, tmp_path / "a.csv", tmp_path / "b.npy")
    err = capsys.readouterr().err
    assert code == 130
    assert "interrupted" in err and "Traceback" not in err
    assert _leftovers(tmp_path) == ["keep.csv"]
    assert _common._run_created is None  # the run's bookkeeping was closed


def test_signal_swallowed_by_a_callback_still_interrupts(tmp_path, capsys, monkeypatch):
    """A SIGINT whose KeyboardInterrupt a C callback swallowed (numba loading a
    kernel, via llvmlite's object-cache hook) is honoured when the command returns:
    exit 130 and no output left."""
    import rasterquant.io.points as points_mod
    from rasterquant.cli import main as main_mod

    real = points_mod.write_points

    def write_after_swallowed_signal(path, *args, **kwargs):
        main_mod._LAST_SIGNAL.append("SIGINT")  # the handler ran, its raise was lost
        return real(path, *args, **kwargs)

    monkeypatch.setattr(points_mod, "write_points", write_after_swallowed_signal)
    src = _make_input(tmp_path)
    code = _quantize_quick(src, tmp_path / "a.csv")
    err = capsys.readouterr().err
    assert code == 130
    assert "interrupted (SIGINT)" in err and "Traceback" not in err
    assert _leftovers(tmp_path) == []


def test_main_restores_signal_handlers(tmp_path, capsys):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    main(
        [
            "quantize",
            str(tmp_path / "missing.npy"),
            "-n",
            "2",
            "-o",
            str(tmp_path / "p.csv"),
        ]
    )
    capsys.readouterr()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def _start_cli(tmp_path, launcher):
    src = tmp_path / "density.npy"
    np.save(src, np.random.default_rng(1).random((512, 512)) + 0.05)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cmd = {
        "module": [sys.executable, "-m", "rasterquant"],
        "bin": [sys.executable, str(ROOT / "bin" / "rasterquant")],
    }[launcher]
    argv = [
        *cmd,
        "quantize",
        str(src),
        "-n",
        "1500",
        "-o",
        str(out_dir / "points.csv"),
        "--iterations",
        "500",
        "--progress",
    ]
    env = dict(
        os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    err_path = tmp_path / "stderr.txt"
    err = open(err_path, "wb")
    # a shell may start us with SIGINT ignored (background job): give the child
    # the default disposition, as an interactive terminal would
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=err,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    return proc, err, err_path, out_dir


@pytest.mark.parametrize(
    ("launcher", "sig", "code"),
    [
        ("module", signal.SIGINT, 130),
        ("bin", signal.SIGINT, 130),
        ("module", signal.SIGTERM, 143),
    ],
    ids=["python-m-SIGINT", "bin-SIGINT", "python-m-SIGTERM"],
)
def test_signal_during_cli_run_exits_cleanly(tmp_path, launcher, sig, code):
    proc, err, err_path, out_dir = _start_cli(tmp_path, launcher)
    try:
        # wait until the Lloyd loop runs (imports and numba loading are done)
        deadline = time.monotonic() + 120
        while b"lloyd" not in err_path.read_bytes():
            assert proc.poll() is None, err_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.1)
        time.sleep(1.0)
        assert proc.poll() is None, "finished before the signal: use a bigger input"
        proc.send_signal(sig)
        returncode = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
    text = err_path.read_text(errors="replace")
    assert returncode == code, text[-2000:]
    assert "interrupted" in text
    assert "Traceback" not in text
    assert os.listdir(out_dir) == []  # no output, no sidecar, no temporary file


def test_signal_inside_the_compiler_is_deferred(monkeypatch):
    """A signal that lands while numba/llvmlite run Python code is not raised there
    (a C callback would swallow it): it is recorded and sent again shortly."""
    import types

    from rasterquant.cli import main as main_mod

    kills = []
    monkeypatch.setattr(main_mod.os, "kill", lambda pid, sig: kills.append(sig))
    main_mod._LAST_SIGNAL.clear()
    code = types.SimpleNamespace(co_filename=os.sep.join(["", "x", "llvmlite", "a.py"]))
    inner = types.SimpleNamespace(f_code=code, f_back=None)
    outer = types.SimpleNamespace(
        f_code=types.SimpleNamespace(co_filename=__file__), f_back=inner
    )
    main_mod._deliver(signal.SIGINT, outer, KeyboardInterrupt, "SIGINT")  # no raise
    assert main_mod._LAST_SIGNAL == ["SIGINT"]
    main_mod._PENDING[-1].join(timeout=5)
    assert kills == [signal.SIGINT]  # sent again
    plain = types.SimpleNamespace(
        f_code=types.SimpleNamespace(co_filename=__file__), f_back=None
    )
    with pytest.raises(KeyboardInterrupt):
        main_mod._deliver(signal.SIGINT, plain, KeyboardInterrupt, "SIGINT")
    main_mod._restore_signal_handlers({})
    assert main_mod._PENDING == []
    main_mod._LAST_SIGNAL.clear()


def test_multiscale_start_skips_a_level_that_crowds_its_pixels(monkeypatch):
    # 250 points on a helix: on the 32^3 level of a 64^3 raster more than 24 cells
    # meet in voxels near the axis (a split costs the square of the cells there):
    # that level is skipped, and the solve on 64^3 makes room for its crowded voxels
    from test_hard_cases import helix

    from rasterquant.assign.quadrature import CrowdedPixelsError

    _, pts = helix(250, 64)
    ramp = np.ones((64, 64, 64)) + np.linspace(0.0, 1.0, 64)[:, None, None]
    density = rq.Density.from_array(ramp, spacing=1.0 / 64)
    inner = newton.solve_cells
    raised = []

    def spy(quad, *args, **kwargs):
        try:
            return inner(quad, *args, **kwargs)
        except CrowdedPixelsError:
            raised.append(quad.grid.shape)
            raise

    monkeypatch.setattr(newton, "solve_cells", spy)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "fractional quadrature", RuntimeWarning)
        res = rq.solve_ot(density, pts, tol=1e-6)
    assert raised == [(32, 32, 32)]
    assert res.converged
    assert res.coarse_levels == 0


def test_multiscale_start_skips_a_level_that_cannot_place_the_points(monkeypatch, rng):
    # a coarse level whose repair gives up (clustered points sharing its pixels):
    # the next finer level starts instead, the start is not thrown away
    from rasterquant.errors import EmptyCellError

    density = rq.Density.from_array(rng.random((1024, 1024)) + 0.5)
    points = rng.random((200, 2)) * 1024
    inner = newton.solve_cells

    def coarsest_fails(quad, *args, **kwargs):
        if quad.grid.shape == (256, 256):
            raise EmptyCellError("injected", weights=args[1], empty=np.zeros(1, int))
        return inner(quad, *args, **kwargs)

    monkeypatch.setattr(newton, "solve_cells", coarsest_fails)
    res = rq.solve_ot(density, points, tol=1e-6)
    assert res.converged
    assert res.coarse_levels == 1  # 512^2 (256^2 skipped)


def test_3d_start_solves_levels_of_few_voxels_a_cell_on_centres_alone(monkeypatch, rng):
    # 1,000 cells on 128^3: the 32^3 level (33 voxels a cell, most voxels split
    # among three or more cells) gets the centre solve only; the 64^3 level (262 a
    # cell) is solved exactly, then the raster itself
    density = rq.Density.from_array(rng.random((128, 128, 128)) + 0.5)
    points = rng.random((1000, 3)) * 128
    inner = newton.solve_cells
    calls = []

    def spy(quad, *args, **kwargs):
        calls.append((quad.grid.shape, quad.continuous))
        return inner(quad, *args, **kwargs)

    monkeypatch.setattr(newton, "solve_cells", spy)
    res = rq.solve_ot(density, points, tol=1e-2)
    assert res.converged and res.max_error <= 1e-2
    starts = calls[1:]  # the first call is the solve itself
    assert ((32, 32, 32), False) in starts
    assert ((32, 32, 32), True) not in starts
    assert ((64, 64, 64), True) in starts
    assert res.coarse_levels == 1


def test_centre_quadrature_stalls_after_few_halvings(monkeypatch, problem):
    # whole-pixel masses: a step below 1/64 moves too few pixels to help, so a
    # reversed direction is given up after log2(64) = 6 trial passes, not 12
    real = newton.solve_newton_system
    passes = []

    def reversed_direction(jac, rhs, method="auto", **kwargs):
        d, solver = real(jac, rhs, method=method, **kwargs)
        return -d, solver

    monkeypatch.setattr(newton, "solve_newton_system", reversed_direction)
    res, _ = _solve(*problem, tol=1e-3, multiscale=False, quadrature="center")
    quad = res._quad
    inner = type(quad).evaluate

    def counting(self, *args, **kwargs):
        passes.append(1)
        return inner(self, *args, **kwargs)

    monkeypatch.setattr(type(quad), "evaluate", counting)
    res, warned = _solve(*problem, tol=1e-3, multiscale=False, quadrature="center")
    assert res.status == "stalled"
    assert len(passes) <= 1 + 7  # the start, then halvings from 1 to below 1/64
    assert newton.min_step(quad) == 2.0**-6
    assert rq.ConvergenceWarning in warned
