"""Compile a first run's kernels on two cores at once.

numba compiles one kernel at a time, on one core, under a global lock; the first run
of a command after an install spends most of its time there (benchmarks/first_run.py).
When that run's first compilation starts, the command line spawns one helper process
(:func:`start`) that compiles the same kernels, with the argument types recorded for
that command in ``_kernel_profiles.json``, in the opposite order. Both processes write
numba's on-disk cache, and numba looks there before every compilation, so each
process loads what the other has finished instead of compiling it: they meet about
halfway. The results do not change: a kernel is the same machine code whichever
process compiled it (tests/test_determinism.py checks cold, cached and partly
recompiled runs).

The helper compiles nothing that is not in the profile, dies with its parent, and is
killed when the command ends. It is skipped with fewer than two usable cores, when
the command has no profile, or with ``RASTERQUANT_WARMUP=0``. A stale profile entry
(a kernel renamed, or called with other types) costs the helper's core some work and
nothing else; tests/test_warmup.py fails when the profile no longer matches what the
command compiles. Record the profiles again with::

    python -m rasterquant._warmup --record
"""

import importlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

PROFILES = os.path.join(os.path.dirname(__file__), "_kernel_profiles.json")

# the command lines recorded, per profile (run from a folder holding data/)
RECORDED = {
    "quantize": ["quantize", "data/portrait.png", "-n", "2000", "-o", "points.csv"],
    "stipple": ["stipple", "data/portrait.png", "-n", "2000", "-o", "dots.png"],
}


def encode(typ):
    """Describe a numba argument type in JSON-ready form (None if unsupported)."""
    from numba.core import types

    if isinstance(typ, types.Array):
        return {
            "array": str(typ.dtype),
            "ndim": typ.ndim,
            "layout": typ.layout,
            "readonly": not typ.mutable,
        }
    if isinstance(typ, types.UniTuple):
        inner = encode(typ.dtype)
        return None if inner is None else {"unituple": inner, "count": typ.count}
    if isinstance(typ, types.Tuple):
        inner = [encode(t) for t in typ.types]
        return None if any(t is None for t in inner) else {"tuple": inner}
    if isinstance(typ, (types.Integer, types.Float, types.Boolean)):
        return str(typ)
    return None


def decode(spec):
    """Return the numba type that :func:`encode` described."""
    from numba import from_dtype
    from numba.core import types

    if isinstance(spec, str):
        return from_dtype(np.dtype(spec))
    if "array" in spec:
        dtype = from_dtype(np.dtype(spec["array"]))
        readonly = spec["readonly"]
        return types.Array(dtype, spec["ndim"], spec["layout"], readonly=readonly)
    if "unituple" in spec:
        return types.UniTuple(decode(spec["unituple"]), spec["count"])
    return types.Tuple([decode(s) for s in spec["tuple"]])


def load_profile(command):
    """Return the recorded kernels of ``command``, in a first run's compile order."""
    try:
        with open(PROFILES, encoding="utf-8") as fh:
            profiles = json.load(fh)
    except (OSError, ValueError):
        return []
    if profiles.get("numba") != _numba_version():
        return []
    return profiles.get("profiles", {}).get(command, [])


def start(command):
    """Spawn the helper that compiles ``command``'s kernels backwards; or None."""
    if os.environ.get("RASTERQUANT_WARMUP", "1") == "0":
        return None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    if cores < 2 or not load_profile(command):
        return None
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "rasterquant._warmup", command, str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C is the parent's to handle
        )
    except OSError:  # pragma: no cover - no fork, no Python: no help, no harm
        return None


def stop(proc):
    """Kill the helper (numba writes its cache files atomically) and reap it."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def compile_backwards(entries):
    """Compile the profile entries ``entries``, last first (the helper's work)."""
    for entry in reversed(entries):
        try:
            module = importlib.import_module(entry["module"])
            dispatcher = getattr(module, entry["name"])
            dispatcher.compile(tuple(decode(s) for s in entry["args"]))
        except Exception:  # a stale entry: skip it, the helper only helps
            continue


def _numba_version():
    import numba

    return numba.__version__


def _record_child(out_path, argv):
    """Run the command line ``argv``; write its top-level compilations to out_path."""
    from numba.core import event

    compiled = []

    class Record(event.Listener):
        depth = 0

        def on_start(self, ev):
            if self.depth == 0:
                func = ev.data["dispatcher"].py_func
                args = [encode(t) for t in ev.data["args"]]
                if all(a is not None for a in args):
                    compiled.append(
                        {"module": func.__module__, "name": func.__name__, "args": args}
                    )
            self.depth += 1

        def on_end(self, ev):
            self.depth -= 1

    event.register("numba:compile", Record())
    from .cli.main import main

    code = main(argv)
    if code != 0:
        raise SystemExit(f"recording {' '.join(argv)!r} failed with exit code {code}")
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(compiled, fh)


def record():
    """Record every profile of :data:`RECORDED` into ``_kernel_profiles.json``.

    Each command runs in a fresh process with an empty numba cache, in a temporary
    folder holding a copy of the repository's data/.
    """
    import shutil

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    profiles = {}
    for command, argv in RECORDED.items():
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(os.path.join(root, "data"), os.path.join(tmp, "data"))
            out = os.path.join(tmp, "compiled.json")
            env = dict(os.environ, RASTERQUANT_WARMUP="0")
            env["NUMBA_CACHE_DIR"] = os.path.join(tmp, "cache")
            child = [sys.executable, "-m", "rasterquant._warmup", "--record-child"]
            subprocess.run(
                [*child, out, *argv],
                cwd=tmp,
                env=env,
                check=True,
            )
            with open(out, encoding="utf-8") as fh:
                profiles[command] = json.load(fh)
        print(f"{command}: {len(profiles[command])} kernels", file=sys.stderr)
    text = json.dumps({"numba": _numba_version(), "profiles": profiles}, indent=1)
    from .io.atomic import atomic_write_text

    atomic_write_text(PROFILES, text + "\n")


def _main(argv):
    if argv[:1] == ["--record"]:
        record()
    elif argv[:1] == ["--record-child"]:
        _record_child(argv[1], argv[2:])
    else:  # pragma: no cover - the helper process
        from ._process import die_with_parent

        command, parent = argv[0], int(argv[1])
        die_with_parent(parent)
        compile_backwards(load_profile(command))


if __name__ == "__main__":
    _main(sys.argv[1:])
