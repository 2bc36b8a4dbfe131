"""The first-run compile helper (rasterquant/_warmup.py)."""

import json
import os
import subprocess
import sys

import numba
import pytest
from numba.core import types

from rasterquant import _warmup


@pytest.mark.parametrize(
    "typ",
    [
        types.float64,
        types.int64,
        types.boolean,
        types.Array(types.float64, 2, "C"),
        types.Array(types.int32, 3, "C", readonly=True),
        types.Array(types.uint8, 1, "A"),
        types.UniTuple(types.Array(types.int64, 1, "C"), 3),
        types.Tuple([types.float64, types.Array(types.float32, 2, "F")]),
    ],
)
def test_types_round_trip_through_json(typ):
    spec = json.loads(json.dumps(_warmup.encode(typ)))
    assert _warmup.decode(spec) == typ


def test_unsupported_types_are_not_recorded():
    assert _warmup.encode(types.none) is None
    assert _warmup.encode(types.UniTuple(types.none, 2)) is None


def test_profiles_match_this_numba_and_name_real_kernels():
    for command in _warmup.RECORDED:
        entries = _warmup.load_profile(command)
        assert entries, f"no profile for {command} (numba {numba.__version__})"
        for e in entries:
            module = __import__(e["module"], fromlist=[e["name"]])
            assert hasattr(getattr(module, e["name"]), "compile"), e["name"]


def test_no_helper_when_switched_off(monkeypatch):
    monkeypatch.setenv("RASTERQUANT_WARMUP", "0")
    assert _warmup.start("quantize") is None
    assert _warmup.start("no-such-command") is None


def test_stop_kills_and_reaps_the_helper(monkeypatch):
    monkeypatch.setenv("RASTERQUANT_WARMUP", "1")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one usable core: the helper is not started")
    proc = _warmup.start("quantize")
    assert proc is not None
    _warmup.stop(proc)
    assert proc.returncode is not None
    _warmup.stop(None)


_LOAD = """
import json, sys
from numba.core import event
from rasterquant import _warmup

compiled = []


class Count(event.Listener):
    def on_start(self, ev):
        pass

    def on_end(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__name__)


entry = _warmup.load_profile("quantize")[int(sys.argv[1])]
if sys.argv[2] == "helper":
    _warmup.compile_backwards([entry])
else:
    event.register("numba:compile", Count())
    _warmup.compile_backwards([entry])
print(json.dumps(compiled))
"""


def test_what_the_helper_compiles_the_command_loads_from_the_cache(tmp_path):
    """A kernel the helper compiled is loaded, not compiled, by the next process."""
    entries = _warmup.load_profile("quantize")
    small = min(range(len(entries)), key=lambda k: len(entries[k]["args"]))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def run(role):
        out = subprocess.run(
            [sys.executable, "-c", _LOAD, str(small), role],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    run("helper")
    name = entries[small]["name"]
    assert list((tmp_path / "cache").rglob(f"*{name}*.nbi")), "nothing was cached"
    assert run("command") == []
