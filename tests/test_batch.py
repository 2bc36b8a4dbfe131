import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import rasterquant
from rasterquant.batch import run_batch
from rasterquant.cli.main import main

REPO = Path(rasterquant.__file__).resolve().parent.parent
OPTS = {"n": 40, "iterations": 2, "method": "voronoi"}


def _write_png(path, seed, shape=(40, 48)):
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = 0.3 + 0.6 * np.sin(x / (5 + seed)) ** 2 * np.cos(y / 7) ** 2
    img = np.clip(img + 0.05 * rng.random(shape), 0, 1)
    Image.fromarray((img * 255).astype(np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        _write_png(d / f"img{i}.png", i)
    return d


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


def _check_outputs_valid(out):
    """Every visible output is complete: SVGs parse, PNGs decode, JSONs load."""
    from PIL import Image

    for f in out.iterdir():
        if f.name.startswith("."):
            continue
        if f.suffix == ".svg":
            ET.parse(f)
        elif f.suffix == ".png":
            with Image.open(f) as im:
                im.load()
        elif f.suffix == ".json":
            json.loads(f.read_text())


def test_batch_and_resume(folder, tmp_path):
    out = tmp_path / "out"
    man = run_batch(folder, out, options=OPTS)
    assert man["counts"] == {"ok": 3, "failed": 0, "skipped": 0, "pending": 0}
    assert man["complete"] is True
    for i in range(3):
        for s in (".svg", ".png", ".json"):
            assert (out / f"img{i}{s}").is_file()
        side = json.loads((out / f"img{i}.json").read_text())
        assert side["complete"] is True
        assert side["parameter_hash"] == man["parameter_hash"]
        circles = (
            ET.parse(out / f"img{i}.svg")
            .getroot()
            .findall(".//{http://www.w3.org/2000/svg}circle")
        )
        assert len(circles) == 40
    disk = _manifest(out)
    assert disk["entries"]["img0.png"]["status"] == "ok"
    assert disk["entries"]["img0.png"]["seconds"] > 0
    mtimes = {
        f.name: f.stat().st_mtime_ns for f in out.iterdir() if f.name != "manifest.json"
    }
    # rerun: everything skipped, nothing rewritten
    man = run_batch(folder, out, options=OPTS)
    assert man["counts"]["skipped"] == 3
    assert {
        f.name: f.stat().st_mtime_ns for f in out.iterdir() if f.name != "manifest.json"
    } == mtimes
    # a missing output or an incomplete sidecar redoes just that input
    (out / "img1.png").unlink()
    side = json.loads((out / "img2.json").read_text())
    side["complete"] = False
    (out / "img2.json").write_text(json.dumps(side))
    man = run_batch(folder, out, options=OPTS)
    status = {k: v["status"] for k, v in man["entries"].items()}
    assert status == {"img0.png": "skipped", "img1.png": "ok", "img2.png": "ok"}
    # other parameters -> other hash -> redone; force redoes too
    man = run_batch(folder, out, options={**OPTS, "seed": 1})
    assert man["counts"]["ok"] == 3
    man = run_batch(folder, out, options={**OPTS, "seed": 1}, force=True)
    assert man["counts"]["ok"] == 3


def test_batch_bad_inputs(folder, tmp_path):
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (folder / "empty.png").write_bytes(b"")
    from PIL import Image

    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(folder / "white.png")
    out = tmp_path / "out"
    code = main(
        [
            "batch",
            str(folder),
            str(out),
            "-n",
            "40",
            "--iterations",
            "2",
            "--method",
            "voronoi",
            "-f",
            "svg",
            "--quiet",
        ]
    )
    assert code == 1
    man = _manifest(out)
    assert man["counts"]["ok"] == 3 and man["counts"]["failed"] == 3
    for bad in ("corrupt.png", "empty.png", "white.png"):
        entry = man["entries"][bad]
        assert entry["status"] == "failed"
        assert entry["error"] and "\n" not in entry["error"]
        assert not (out / (Path(bad).stem + ".svg")).exists()
    assert "zero density" in man["entries"]["white.png"]["error"]
    assert "empty" in man["entries"]["empty.png"]["error"]
    for i in range(3):
        assert (out / f"img{i}.svg").is_file()
    assert not [f for f in os.listdir(out) if f.startswith(".")]


def test_batch_quantize_cli(folder, tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "batch",
                str(folder),
                str(out),
                "--task",
                "quantize",
                "-n",
                "30",
                "--iterations",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    from rasterquant.io.points import read_points

    pts, cols = read_points(out / "img0.csv")
    assert pts.shape == (30, 2) and "mass" in cols
    assert _manifest(out)["task"] == "quantize"


def test_batch_errors(folder, tmp_path):
    with pytest.raises(ValueError, match="matches"):
        run_batch(folder, tmp_path / "o", pattern="*.jpg", options=OPTS)
    with pytest.raises(ValueError, match="not supported"):
        run_batch(folder, tmp_path / "o", options=OPTS, outputs=[".gif"])
    with pytest.raises(ValueError, match="does not exist"):
        run_batch(tmp_path / "nope", tmp_path / "o", options=OPTS)
    assert main(["batch", str(folder), str(tmp_path / "o"), "--quiet"]) == 2  # no -n


def test_batch_process_pool(folder, tmp_path):
    out = tmp_path / "out"
    man = run_batch(folder, out, options=OPTS, outputs=[".csv"], jobs=2)
    assert man["counts"]["ok"] == 3
    for name, entry in man["entries"].items():
        assert entry["status"] == "ok", (name, entry["error"])
    side = json.loads((out / "img0.json").read_text())
    assert side["numba_threads"] == max(1, (os.cpu_count() or 1) // 2)


def test_batch_dask_local_cluster(folder, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    (folder / "corrupt.png").write_bytes(b"garbage")
    out = tmp_path / "out"
    with distributed.LocalCluster(
        n_workers=1,
        processes=False,
        threads_per_worker=1,
        host="127.0.0.1",
        protocol="tcp://",
        dashboard_address=None,
    ) as cluster:
        man = run_batch(
            folder,
            out,
            options=OPTS,
            outputs=[".svg"],
            scheduler=cluster.scheduler_address,
        )
    assert man["counts"]["ok"] == 3 and man["counts"]["failed"] == 1
    assert man["entries"]["corrupt.png"]["error"]
    for i in range(3):
        assert (out / f"img{i}.svg").is_file()
        assert json.loads((out / f"img{i}.json").read_text())["complete"] is True


def test_batch_sigkill_then_resume(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        _write_png(src / f"p{i}.png", i, shape=(64, 64))
    out = tmp_path / "out"
    argv = [
        sys.executable,
        "-m",
        "rasterquant",
        "batch",
        str(src),
        str(out),
        "-n",
        "150",
        "--iterations",
        "25",
        "--method",
        "voronoi",
        "-f",
        "svg",
        "-f",
        "png",
        "-f",
        "npy",
        "--quiet",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_dir() and any(f.suffix == ".svg" for f in out.iterdir()):
                break
            time.sleep(0.005)
        assert proc.poll() is None, "batch finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # no truncated visible file; only hidden temporaries may remain
    _check_outputs_valid(out)
    man = _manifest(out)
    assert man["complete"] is False
    assert man["counts"]["pending"] > 0
    done_before = {k for k, v in man["entries"].items() if v["status"] == "ok"}
    # rerun completes the batch and removes the stale temporaries
    rerun = subprocess.run(argv, env=env, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()
    man = _manifest(out)
    assert man["complete"] is True
    assert man["counts"]["failed"] == 0 and man["counts"]["pending"] == 0
    for name, entry in man["entries"].items():
        assert entry["status"] == ("skipped" if name in done_before else "ok")
    for i in range(6):
        for s in (".svg", ".png", ".npy", ".json"):
            assert (out / f"p{i}{s}").is_file()
    assert not [f for f in os.listdir(out) if f.startswith(".")]
    _check_outputs_valid(out)


# -- issue #17 -------------------------------------------------------------------

ARGS = ["-n", "40", "--iterations", "2", "--method", "voronoi"]


def _one_error_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_batch_refuses_outputs_over_inputs(folder, tmp_path, capsys):
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    # same folder, outputs named like the inputs: refused, inputs untouched
    code = main(["batch", f"{folder}/", f"{folder}/", *ARGS, "-f", "png"])
    assert code == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("error: output folder") and "outside IN_DIR" in line
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before
    # a sub-folder with names that match the pattern: refused, nothing created
    sub = folder / "out"
    assert main(["batch", str(folder), str(sub), *ARGS, "--pattern", "*"]) == 1
    assert "lies inside the input folder" in _one_error_line(capsys.readouterr().err)
    assert not sub.exists()
    with pytest.raises(ValueError, match="choose an output folder outside IN_DIR"):
        run_batch(folder, folder, options=OPTS, outputs=[".svg", ".png"])
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before
    # allowed when no output name can match the pattern, in place or in a sub-folder
    assert main(["batch", str(folder), str(sub), *ARGS, "-f", "svg", "--quiet"]) == 0
    assert main(["batch", str(folder), str(folder), *ARGS, "-f", "svg", "--quiet"]) == 0
    for i in range(3):
        assert (sub / f"img{i}.svg").is_file() and (folder / f"img{i}.svg").is_file()
    assert {n: (folder / n).read_bytes() for n in before} == before
    # a rerun in place still sees only the original inputs, all done
    assert main(["batch", str(folder), str(folder), *ARGS, "-f", "svg", "--quiet"]) == 0
    man = _manifest(folder)
    assert sorted(man["entries"]) == sorted(before)
    assert man["counts"]["skipped"] == 3


def test_batch_failed_inputs_have_sidecars(folder, tmp_path):
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (folder / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    man = run_batch(folder, out, options=OPTS, outputs=[".svg"])
    assert man["counts"]["failed"] == 2
    for name, entry in man["entries"].items():
        for f in [*entry["outputs"], entry["sidecar"]]:
            assert os.path.isfile(f), (name, f)
    side = json.loads((out / "bad.json").read_text())
    assert side["complete"] is False
    assert side["error"] == man["entries"]["bad.png"]["error"]
    assert side["parameters"] == OPTS and side["outputs"] == []
    assert side["parameter_hash"] == man["parameter_hash"]
    # a rerun redoes failed inputs (and succeeds once the input is fixed)
    _write_png(folder / "bad.png", 7)
    man = run_batch(folder, out, options=OPTS, outputs=[".svg"])
    status = {k: v["status"] for k, v in man["entries"].items()}
    assert status["bad.png"] == "ok" and status["empty.png"] == "failed"
    assert status["img0.png"] == "skipped"
    assert json.loads((out / "bad.json").read_text())["complete"] is True


def test_batch_error_lines_read_like_other_commands(folder, tmp_path, capsys):
    (folder / "corrupt.png").write_bytes(b"garbage")
    out = tmp_path / "out"
    assert main(["batch", str(folder), f"{out}{os.sep}", *ARGS, "-f", "svg"]) == 1
    err = capsys.readouterr().err
    assert f"error: corrupt.png: cannot read image '{folder}" in err
    assert "Error" not in err  # no Python class name for a user error
    assert os.path.join(str(out), "manifest.json") in err
    assert f"{os.sep}{os.sep}manifest.json" not in err
    entry = _manifest(out)["entries"]["corrupt.png"]
    assert entry["error"].startswith("cannot read image")


def test_batch_internal_error_names_the_bug(folder, tmp_path, capsys, monkeypatch):
    import rasterquant.batch as batch

    def broken(path, task, options):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(batch, "_run_task", broken)
    out = tmp_path / "out"
    assert main(["batch", str(folder), str(out), *ARGS, "-f", "svg", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "internal error: img0.png: ZeroDivisionError: a bug" in err
    entry = _manifest(out)["entries"]["img0.png"]
    assert entry["error"] == "internal error: ZeroDivisionError: a bug"
    side = json.loads(Path(entry["sidecar"]).read_text())
    assert side["complete"] is False and "ZeroDivisionError" in side["traceback"]


def test_batch_format_help_and_check(folder, tmp_path, capsys):
    assert main(["batch", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "svg png pdf csv npy for --task stipple" in text
    assert "csv npy txt xyz for --task quantize" in text
    out = tmp_path / "out"
    for task, fmt in (("stipple", "txt"), ("stipple", "gif"), ("quantize", "svg")):
        argv = ["batch", str(folder), str(out), "--task", task, "-n", "5", "-f", fmt]
        assert main(argv) == 2  # a bad argument
        line = _one_error_line(capsys.readouterr().err)
        assert "-f/--format" in line and repr(fmt) in line and f"--task {task}" in line
    assert not out.exists()  # refused before anything was written
    argv = ["batch", str(folder), str(out), "--task", "quantize", "-n", "20"]
    assert main([*argv, "--iterations", "1", "-f", "txt", "-f", ".XYZ", "--quiet"]) == 0
    assert (out / "img0.txt").is_file() and (out / "img0.xyz").is_file()


class _KillWorker(str):
    """An option value whose unpickling ends the worker process (exit code 3)."""

    def __reduce__(self):
        return (os._exit, (3,))


def test_batch_pool_worker_death_fails_only_its_input(folder, tmp_path):
    from rasterquant.batch import _run_pool

    out = tmp_path / "out"
    out.mkdir()
    options = {**OPTS, "note": _KillWorker("x")}
    args = (str(out), "stipple", options, (".svg",), "0123456789abcdef")
    entries, started = {}, set()
    todo = ["img0.png", "img1.png", "img2.png"]
    _run_pool(str(folder), todo, args, 2, 1, entries.__setitem__, started)
    assert sorted(entries) == todo and started == set(todo)
    for entry in entries.values():  # each input failed alone; workers were replaced
        assert entry["status"] == "failed"
        assert entry["error"] == "the worker process died (exit code 3)"
        assert json.loads(Path(entry["sidecar"]).read_text())["complete"] is False


def test_batch_sidecars_record_the_values_used(tmp_path):
    """Issue 17 item 12: no null quadrature or tolerance in the sidecars."""
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    img = np.full((24, 30), 255, dtype=np.uint8)
    img[4:20, 5:25] = 40
    Image.fromarray(img).save(src / "a.png")
    out = tmp_path / "out"
    assert (
        main(
            [
                "batch",
                str(src),
                str(out),
                "-n",
                "20",
                "--iterations",
                "2",
                "-f",
                "csv",
                "--quiet",
            ]
        )
        == 0
    )
    meta = json.loads((out / "a.json").read_text())
    assert meta["parameters"]["quadrature"] == "fractional"
    assert meta["diagnostics"]["ot_tol"] > 0
