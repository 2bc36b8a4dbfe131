"""The quantize and info sub-commands, through main(argv) and python -m."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rasterquant as rq
from rasterquant.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
PORTRAIT = str(ROOT / "data" / "portrait.png")


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_quantize_writes_points_and_sidecar(cwd, suffix, capsys):
    out = f"out{suffix}"
    code = main(
        [
            "quantize",
            PORTRAIT,
            "-n",
            "200",
            "-o",
            out,
            "--iterations",
            "3",
            "--seed",
            "1",
            "--tol",
            "0.05",
            "--quiet",
        ]
    )
    assert code == 0
    assert (cwd / out).is_file()
    assert (cwd / f"{out}.json").is_file()
    meta = json.loads((cwd / f"{out}.json").read_text())
    diag = meta["diagnostics"]
    assert diag["requested_tol"] == 0.05
    assert isinstance(diag["max_mass_error"], float)
    assert diag["iterations"] == 3
    assert meta["parameters"]["n"] == 200
    assert meta["parameters"]["seed"] == 1
    pts, cols = rq.read_points(cwd / out, ndim=2)
    assert pts.shape == (200, 2)
    assert ((pts >= 0) & (pts <= 256)).all()
    assert "weight" in cols or len(cols) == 2
    # no stray temporary files
    assert sorted(os.listdir(cwd)) == sorted([out, f"{out}.json"])


def test_quantize_voronoi_npy_roundtrip_matches_sidecar(cwd):
    code = main(
        [
            "quantize",
            PORTRAIT,
            "-n",
            "50",
            "-o",
            "a.npy",
            "--method",
            "voronoi",
            "--iterations",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    meta = json.loads((cwd / "a.npy.json").read_text())
    assert meta["diagnostics"]["max_mass_error"] is None  # voronoi: no target masses
    pts, _ = rq.read_points(cwd / "a.npy", ndim=2)
    assert pts.shape == (50, 2)


def test_quantize_refuses_to_overwrite(cwd, capsys):
    target = cwd / "out.csv"
    target.write_text("keep me\n")
    code = main(
        [
            "quantize",
            PORTRAIT,
            "-n",
            "20",
            "-o",
            "out.csv",
            "--iterations",
            "1",
            "--quiet",
        ]
    )
    assert code == 1
    assert target.read_text() == "keep me\n"
    err = capsys.readouterr().err
    assert "Traceback" not in err
    code = main(
        [
            "quantize",
            PORTRAIT,
            "-n",
            "20",
            "-o",
            "out.csv",
            "--iterations",
            "1",
            "--quiet",
            "--force",
        ]
    )
    assert code == 0
    assert target.read_text() != "keep me\n"


@pytest.mark.parametrize("n", ["0", "-3", "abc", "2.5"])
def test_quantize_bad_n_is_usage_error(cwd, n, capsys):
    assert main(["quantize", PORTRAIT, "-n", n, "-o", "out.csv"]) == 2
    assert not (cwd / "out.csv").exists()
    assert "Traceback" not in capsys.readouterr().err


def test_quantize_missing_input(cwd, capsys):
    code = main(["quantize", "nope.png", "-n", "10", "-o", "out.csv"])
    assert code == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "nope.png" in lines[0]
    assert "Traceback" not in err
    assert not (cwd / "out.csv").exists()
    assert not (cwd / "out.csv.json").exists()


def test_quantize_too_many_points(cwd, capsys):
    np.save(cwd / "tiny.npy", np.ones((4, 4)))
    code = main(["quantize", "tiny.npy", "-n", "17", "-o", "out.csv", "--quiet"])
    assert code == 1
    assert "positive pixels" in capsys.readouterr().err


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numba threading layer" in out
    assert "rasterquant" in out


def test_python_m_rasterquant_info():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "rasterquant", "info"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "numba threading layer" in proc.stdout
