"""Issue 17 item 6: the README's first command in a fresh virtual environment.

Makes a new venv, installs this checkout into it (timed apart: "beyond pip" is what
counts), then runs the README's first command verbatim in a new folder holding a
copy of data/ (the first run compiles the numba kernels), then once more in another
new folder (the kernels come from numba's cache). Writes
benchmarks/results/first_run.json with both times, the machine's load average and
what the command printed.

    python benchmarks/first_run.py            # this checkout's HEAD
    python benchmarks/first_run.py REV        # another commit, for comparison
    RASTERQUANT_WARMUP=0 python benchmarks/first_run.py   # without the compile
                                              # helper (first_run_no_helper.json)
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def readme_first_command():
    """The README's first command, without its ``pip install . &&`` prefix."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    m = re.search(r"pip install \. && (rasterquant [^\n`]+)", text)
    if m is None:
        raise SystemExit("README.md has no 'pip install . && rasterquant ...' line")
    return m.group(1).strip()


def timed(cmd, cwd, env):
    t = time.perf_counter()
    out = subprocess.run(
        cmd, cwd=cwd, env=env, shell=True, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{cmd!r} failed ({out.returncode}):\n{out.stderr}")
    return seconds, out.stderr.strip().splitlines()


def main():
    rev = sys.argv[1] if len(sys.argv) > 1 else "HEAD"
    command = readme_first_command()
    result = {"command": command, "rev": rev, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        venv = os.path.join(tmp, "venv")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        env = dict(os.environ)
        env.pop("NUMBA_CACHE_DIR", None)
        env.pop("PYTHONPATH", None)
        env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env["PATH"]
        env["VIRTUAL_ENV"] = venv
        src = os.path.join(tmp, "src")
        subprocess.run(["git", "clone", "-q", ROOT, src], check=True)
        subprocess.run(["git", "-C", src, "checkout", "-q", rev], check=True)
        result["commit"] = subprocess.run(
            ["git", "-C", src, "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        result["pip_seconds"], _ = timed(
            "pip install -q --disable-pip-version-check .", src, env
        )
        runs = []
        for name in ("first", "second"):
            work = os.path.join(tmp, name)
            shutil.copytree(os.path.join(src, "data"), os.path.join(work, "data"))
            seconds, lines = timed(command, work, env)
            runs.append({"run": name, "seconds": round(seconds, 2), "stderr": lines})
            print(f"{name} run: {seconds:.1f} s", flush=True)
        result["runs"] = runs
    result["first_run_seconds"] = runs[0]["seconds"]
    result["cached_run_seconds"] = runs[1]["seconds"]
    result["pip_seconds"] = round(result["pip_seconds"], 1)
    result["load_after"] = os.getloadavg()
    result["cpus"] = os.cpu_count()
    helper = os.environ.get("RASTERQUANT_WARMUP", "1") != "0"
    result["compile_helper"] = helper
    name = "first_run.json" if rev == "HEAD" else f"first_run_{rev[:12]}.json"
    if not helper:
        name = name.replace(".json", "_no_helper.json")
    path = os.path.join(ROOT, "benchmarks", "results", name)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
