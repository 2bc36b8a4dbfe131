"""``rasterquant batch --jobs 2`` under Ctrl-C and SIGKILL, in real subprocesses.

The parent must stop within a second or two on SIGINT (whether sent to it alone or,
as a terminal does, to its whole process group), kill its workers, and leave a
manifest that matches the disk; when the parent is SIGKILLed, the workers (and the
multiprocessing resource tracker) must exit on their own.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_batch import _write_png

import rasterquant

psutil = pytest.importorskip("psutil")
pytestmark = pytest.mark.skipif(
    not hasattr(os, "killpg"), reason="POSIX signals and process groups"
)

REPO = Path(rasterquant.__file__).resolve().parent.parent
N_IMAGES = 8
#: work per image (about 1.5 s on a 2-core machine once compiled): the batch is
#: still running when the first image is done and the signal is sent
WORK = ["-n", "1000", "--iterations", "50", "--resolution", "200"]
#: first image done (includes starting the workers and, on a cold cache, compiling)
STARTUP_DEADLINE = 300.0
EXIT_DEADLINE = 5.0  # from the signal to the exit of the parent
GRACE = 3.0  # from the exit of the parent until no child is left


def _alive(procs):
    """The processes of ``procs`` still running (zombies count as gone)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _wait_gone(procs, timeout):
    deadline = time.monotonic() + timeout
    while _alive(procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(procs)


def _sidecars(out):
    if not out.is_dir():
        return []
    return [f for f in os.listdir(out) if f.endswith(".json") and f != "manifest.json"]


def _start_batch(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(N_IMAGES):
        _write_png(src / f"p{i}.png", i, shape=(64, 64))
    out = tmp_path / "out"
    argv = [
        sys.executable,
        "-m",
        "rasterquant",
        "batch",
        str(src),
        str(out),
        *WORK,
        "-f",
        "svg",
        "-f",
        "png",
        "--jobs",
        "2",
        "--quiet",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    # stderr goes to a file: orphaned workers would keep a pipe open forever
    err = open(tmp_path / "stderr.txt", "w")  # closed by _cleanup
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=err,
        start_new_session=True,
    )
    return proc, err, out


def _wait_first_image(proc, out):
    """Wait until one input is finished (its sidecar exists) and return the children."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    while time.monotonic() < deadline and proc.poll() is None:
        if _sidecars(out):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "batch ended before it could be signalled"
    assert _sidecars(out), "no input finished in time"
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 2, children  # two workers (and the resource tracker)
    return children


def _cleanup(proc, err, children):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for p in _alive(children):
        p.kill()
    err.close()


@pytest.mark.parametrize("target", ["parent", "group"])
def test_sigint_stops_pool_and_manifest_matches_disk(tmp_path, target):
    proc, err, out = _start_batch(tmp_path)
    children = []
    try:
        children = _wait_first_image(proc, out)
        t0 = time.monotonic()
        if target == "parent":
            os.kill(proc.pid, signal.SIGINT)
        else:  # a terminal's Ctrl-C reaches the whole process group
            os.killpg(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(timeout=EXIT_DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"batch did not stop within {EXIT_DEADLINE} s of SIGINT")
        elapsed = time.monotonic() - t0
        assert code == 130, (code, (tmp_path / "stderr.txt").read_text())
        left = _wait_gone(children, GRACE)
        assert not left, f"processes survived the interrupted batch: {left}"
        listing = sorted(os.listdir(out))
        time.sleep(0.5)  # nothing keeps writing
        assert sorted(os.listdir(out)) == listing
    finally:
        _cleanup(proc, err, children)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in stderr, stderr
    assert "interrupted (SIGINT)" in stderr
    assert elapsed < EXIT_DEADLINE

    man = json.loads((out / "manifest.json").read_text())
    status = {name: e["status"] for name, e in man["entries"].items()}
    assert set(status.values()) <= {"ok"}, status  # the others are pending
    ok_stems = {Path(name).stem for name in status}
    assert ok_stems, "the input finished before the signal is not recorded"
    c = man["counts"]
    assert c["ok"] == len(ok_stems) and c["failed"] == 0
    assert c["pending"] == N_IMAGES - len(ok_stems) > 0
    # every "ok" entry's files exist and are complete; no other output is on disk
    for name, entry in man["entries"].items():
        for f in [*entry["outputs"], entry["sidecar"]]:
            assert os.path.isfile(f), (name, f)
        assert json.loads(Path(entry["sidecar"]).read_text())["complete"] is True
    for f in os.listdir(out):
        assert not f.startswith("."), f"temporary file left behind: {f}"
        if f != "manifest.json":
            assert Path(f).stem in ok_stems, f"{f} is on disk without an 'ok' entry"
    assert man["complete"] is False and man["interrupted"] is True


def test_sigkill_of_parent_ends_workers(tmp_path):
    proc, err, out = _start_batch(tmp_path)
    children = []
    try:
        children = _wait_first_image(proc, out)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        left = _wait_gone(children, GRACE)
        assert not left, f"processes outlived their killed parent: {left}"
    finally:
        _cleanup(proc, err, children)
    man = json.loads((out / "manifest.json").read_text())
    assert man["complete"] is False and man["counts"]["pending"] > 0
