"""Folder processing: stipple or quantize every image of a folder, resumably.

Every input ``IN_DIR/<stem>.<ext>`` gives ``OUT_DIR/<stem>.<suffix>`` for each requested
output suffix and a JSON sidecar ``OUT_DIR/<stem>.json`` written last (``"complete":
true`` and the parameter hash). ``OUT_DIR/manifest.json`` has one entry per input. All
files are written to hidden temporary names in OUT_DIR and renamed, so a killed run
leaves no truncated output; the next run removes the stale temporary files and redoes
the inputs whose sidecar is missing, incomplete or has another parameter hash.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import re
import time

from ._config import DEFAULT_QUADRATURE

__all__ = ["parameter_hash", "run_batch"]

logger = logging.getLogger(__name__)

TASKS = ("stipple", "quantize")
DEFAULT_OUTPUTS = {"stipple": (".svg", ".png"), "quantize": (".csv",)}
_QUANTIZE_SUFFIXES = (".csv", ".npy", ".txt", ".xyz")
_MANIFEST = "manifest.json"
_TMP_RE = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]+$")


def parameter_hash(task, options, outputs) -> str:
    """SHA-256 (16 hex digits) of the task, its options and the output suffixes."""
    from . import __version__

    blob = json.dumps(
        {
            "task": task,
            "options": options,
            "outputs": list(outputs),
            "version": __version__,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _one_line(exc) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _paths(out_dir, stem, outputs):
    return (
        [os.path.join(out_dir, stem + s) for s in outputs],
        os.path.join(out_dir, stem + ".json"),
    )


def _is_done(out_dir, stem, outputs, phash) -> bool:
    files, sidecar = _paths(out_dir, stem, outputs)
    if not all(os.path.isfile(f) for f in files):
        return False
    try:
        with open(sidecar, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return False
    return bool(meta.get("complete")) and meta.get("parameter_hash") == phash


def _set_threads(threads):
    if threads:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


def _init_worker(threads):  # pragma: no cover - runs in the worker processes
    _set_threads(threads)


def _run_task(path, task, options):
    """Compute one input; returns (writer callable, diagnostics)."""
    import warnings

    opts = dict(options)
    if task == "stipple":
        from .stipple import stipple, stipple_diagnostics, write_stipple

        render_scale = opts.pop("render_scale", 1.0)
        background = opts.pop("background", "white")
        n = opts.pop("n", None)
        if n is None:
            raise ValueError("options must give n, the number of dots")
        if opts.get("dot_size_range") is not None:
            opts["dot_size_range"] = tuple(opts["dot_size_range"])
        res = stipple(path, n, **opts)

        def write(target):
            write_stipple(target, res, render_scale=render_scale, background=background)

        return write, stipple_diagnostics(res)

    from .density import read_density
    from .io.points import write_points
    from .lloyd import lloyd
    from .sampling import sample_points

    n = opts.get("n")
    if n is None:
        raise ValueError("options must give n, the number of points")
    density = read_density(
        path,
        invert=opts.get("invert", True),
        gamma=opts.get("gamma", 1.0),
        floor=opts.get("floor", 0.0),
    )
    if n > density.n_positive():
        raise ValueError(
            f"n = {n} points but the density has only {density.n_positive()} "
            "positive pixels"
        )
    init = sample_points(
        density, n, method=opts.get("init", "stratified"), seed=opts.get("seed", 0)
    )
    tol = opts.get("tol") or 0.02
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lloyd(
            density,
            init,
            method=opts.get("method", "uniform"),
            n_iter=opts.get("iterations", 20),
            step=opts.get("step", 1.0),
            ot_tol=tol,
            quadrature=opts.get("quadrature") or DEFAULT_QUADRATURE,
        )
    err = res.history["max_mass_error"][-1]

    def write(target):
        write_points(target, res.points, weight=res.weights, mass=res.masses)

    return write, {
        "energy": res.energy,
        "iterations": res.n_iter,
        "max_mass_error": None if err != err else err,
        "requested_tol": tol,
        "warnings": list(dict.fromkeys(str(w.message) for w in caught)),
    }


def process_file(path, out_dir, task, options, outputs, phash, threads=None) -> dict:
    """Process one input and write its outputs and sidecar; never raises.

    Runs in a worker (process pool or Dask). Returns the manifest entry.
    """
    from . import __version__
    from .io.atomic import atomic_write_json

    t0 = time.perf_counter()
    stem = os.path.splitext(os.path.basename(path))[0]
    files, sidecar = _paths(out_dir, stem, outputs)
    entry = {
        "input": os.path.abspath(path),
        "status": "failed",
        "outputs": [],
        "sidecar": sidecar,
        "error": None,
        "seconds": 0.0,
        "parameter_hash": phash,
    }
    try:
        _set_threads(threads)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sidecar)  # a stale sidecar must not vouch for new outputs
        write, diagnostics = _run_task(path, task, options)
        for f in files:
            write(f)
        import numba

        atomic_write_json(
            sidecar,
            {
                "command": f"batch {task}",
                "rasterquant_version": __version__,
                "input": os.path.abspath(path),
                "parameters": options,
                "parameter_hash": phash,
                "outputs": files,
                "diagnostics": diagnostics,
                "numba_threads": int(numba.get_num_threads()),
                "seconds": round(time.perf_counter() - t0, 4),
                "complete": True,
            },
        )
        entry.update(status="ok", outputs=files)
    except Exception as exc:  # one bad input is recorded, the batch goes on
        entry["error"] = _one_line(exc)
    entry["seconds"] = round(time.perf_counter() - t0, 4)
    return entry


def _clean_temporaries(out_dir):
    """Remove hidden temporary files left by killed runs (whose process is gone)."""
    removed = 0
    for name in os.listdir(out_dir):
        m = _TMP_RE.match(name)
        if not m:
            continue
        pid = int(m.group(1))
        alive = False
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
                alive = True
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
        if not alive or pid == os.getpid():
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(out_dir, name))
                removed += 1
    return removed


def _check_options(task, options, outputs):
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if outputs is None:
        outputs = DEFAULT_OUTPUTS[task]
    outs = []
    for s in outputs:
        s = str(s).lower()
        s = s if s.startswith(".") else "." + s
        if s not in outs:
            outs.append(s)
    if task == "stipple":
        from .stipple import OUTPUT_SUFFIXES as allowed
    else:
        allowed = _QUANTIZE_SUFFIXES
    bad = [s for s in outs if s not in allowed]
    if bad or not outs:
        raise ValueError(
            f"outputs {bad or outs} not supported for task {task!r}; expected some of "
            f"{', '.join(allowed)}"
        )
    options = dict(options or {})
    if options.get("n") is None:
        raise ValueError("options must give n (-n), the number of points per image")
    return tuple(outs), options


def run_batch(
    in_dir,
    out_dir,
    *,
    pattern: str = "*.png",
    task: str = "stipple",
    options=None,
    outputs=None,
    jobs: int = 1,
    scheduler=None,
    threads: int | None = None,
    force: bool = False,
    progress: bool = False,
) -> dict:
    """Run ``stipple`` or ``quantize`` on every matching file of a folder.

    Parameters
    ----------
    in_dir : str or os.PathLike
        Folder of inputs (not recursive).
    out_dir : str or os.PathLike
        Folder of outputs (created if missing); shared by all workers.
    pattern : str
        Glob of the input file names (``fnmatch``), e.g. ``"*.png"``.
    task : {"stipple", "quantize"}
    options : dict
        Keyword options of the task: for "stipple" those of :func:`stipple` plus
        ``n``, ``render_scale``, ``background``; for "quantize" ``n``, ``method``,
        ``iterations``, ``init``, ``seed``, ``tol``, ``step``, ``invert``, ``gamma``,
        ``floor``.
    outputs : sequence of str, optional
        Output suffixes per input (default ``.svg, .png`` for stipple, ``.csv`` for
        quantize).
    jobs : int
        Local worker processes ("spawn" context); 1 runs in this process.
    scheduler : str or dask.distributed.Client, optional
        A Dask scheduler address (or a Client): each input is one task, run on the
        cluster. Needs ``rasterquant[dask]``; ``out_dir`` must be a shared path.
    threads : int, optional
        Numba threads per worker; default ``max(1, cores // jobs)``.
    force : bool
        Redo inputs that are already done.
    progress : bool
        tqdm bar over the files on stderr.

    Returns
    -------
    dict
        The manifest (also written to ``out_dir/manifest.json``): ``"entries"`` maps
        each input name to ``status`` ("ok", "failed", "skipped"), ``outputs``,
        ``error`` (one line or None), ``seconds`` and ``parameter_hash``;
        ``"counts"`` holds the totals.

    Raises
    ------
    ValueError
        If ``in_dir`` is not a folder, no file matches, or the options are invalid.
    """
    from . import __version__
    from .io.atomic import atomic_write_json

    in_dir, out_dir = os.fspath(in_dir), os.fspath(out_dir)
    if not os.path.isdir(in_dir):
        raise ValueError(f"input folder {in_dir!r} does not exist or is not a folder")
    outputs, options = _check_options(task, options, outputs)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    names = sorted(
        f
        for f in os.listdir(in_dir)
        if fnmatch.fnmatch(f, pattern)
        and not f.startswith(".")
        and os.path.isfile(os.path.join(in_dir, f))
    )
    if not names:
        raise ValueError(f"no file in {in_dir!r} matches {pattern!r}")
    os.makedirs(out_dir, exist_ok=True)
    _clean_temporaries(out_dir)
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    phash = parameter_hash(task, options, outputs)
    t_start = time.perf_counter()
    entries, todo, seen = {}, [], {}
    for name in names:
        path = os.path.join(in_dir, name)
        stem = os.path.splitext(name)[0]
        if stem + ".json" == _MANIFEST or stem in seen:
            other = "the manifest" if stem in ("manifest",) else repr(seen[stem])
            entries[name] = {
                "input": os.path.abspath(path),
                "status": "failed",
                "outputs": [],
                "sidecar": None,
                "seconds": 0.0,
                "error": f"output names of {name!r} collide with {other}",
                "parameter_hash": phash,
            }
            continue
        seen[stem] = name
        if not force and _is_done(out_dir, stem, outputs, phash):
            files, sidecar = _paths(out_dir, stem, outputs)
            entries[name] = {
                "input": os.path.abspath(path),
                "status": "skipped",
                "outputs": files,
                "sidecar": sidecar,
                "error": None,
                "seconds": 0.0,
                "parameter_hash": phash,
            }
        else:
            todo.append(name)

    manifest = {
        "rasterquant_version": __version__,
        "task": task,
        "options": options,
        "outputs": list(outputs),
        "parameter_hash": phash,
        "in_dir": in_dir,
        "pattern": pattern,
        "entries": entries,
        "counts": {},
        "complete": False,
    }

    def counts():
        c = {"ok": 0, "failed": 0, "skipped": 0, "pending": 0}
        for name in names:
            c[entries[name]["status"] if name in entries else "pending"] += 1
        return c

    def save(final=False):
        manifest["counts"] = counts()
        manifest["complete"] = final
        manifest["seconds"] = round(time.perf_counter() - t_start, 4)
        atomic_write_json(os.path.join(out_dir, _MANIFEST), manifest)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(names), desc=f"batch {task}", unit="file", leave=True)
        bar.update(len(names) - len(todo))

    def record(name, entry):
        entries[name] = entry
        if entry["status"] == "failed":
            logger.warning("%s: %s", name, entry["error"])
        save()
        if bar is not None:
            c = counts()
            bar.set_postfix(ok=c["ok"], failed=c["failed"], skipped=c["skipped"])
            bar.update(1)

    save()
    args = (out_dir, task, options, outputs, phash)
    try:
        if scheduler is not None:
            _run_dask(
                scheduler, in_dir, todo, args, threads if jobs > 1 else None, record
            )
        elif jobs == 1 or len(todo) <= 1:
            for name in todo:
                record(name, process_file(os.path.join(in_dir, name), *args, threads))
        else:
            _run_pool(in_dir, todo, args, jobs, threads, record)
    finally:
        if bar is not None:
            bar.close()
    save(final=True)
    return manifest


def _run_pool(in_dir, todo, args, jobs, threads, record):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")  # fork + numba threading layers can deadlock
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(todo)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(threads,),
    ) as pool:
        futures = {
            pool.submit(process_file, os.path.join(in_dir, name), *args, threads): name
            for name in todo
        }
        for fut in as_completed(futures):
            name = futures[fut]
            try:
                entry = fut.result()
            except BrokenProcessPool as exc:
                entry = _crash_entry(in_dir, name, args, f"worker process died: {exc}")
            except Exception as exc:
                entry = _crash_entry(in_dir, name, args, _one_line(exc))
            record(name, entry)


def _crash_entry(in_dir, name, args, error):
    return {
        "input": os.path.abspath(os.path.join(in_dir, name)),
        "status": "failed",
        "outputs": [],
        "sidecar": None,
        "error": error,
        "seconds": 0.0,
        "parameter_hash": args[-1],
    }


def _run_dask(scheduler, in_dir, todo, args, threads, record):
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ImportError(
            "--scheduler needs Dask: install rasterquant[dask] "
            "(pip install 'dask[distributed]')"
        ) from None
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        futures = {}
        for name in todo:
            path = os.path.abspath(os.path.join(in_dir, name))
            key = f"rasterquant-{name}-{os.urandom(4).hex()}"
            fut = client.submit(process_file, path, *args, threads, pure=False, key=key)
            futures[fut] = name
        for fut in as_completed(list(futures)):
            name = futures[fut]
            try:
                entry = fut.result()
            except Exception as exc:  # worker lost, task erred outside process_file
                entry = _crash_entry(in_dir, name, args, _one_line(exc))
            record(name, entry)
    finally:
        if own:
            client.close()
