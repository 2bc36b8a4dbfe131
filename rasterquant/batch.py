"""Folder processing: stipple or quantize every image of a folder, resumably.

Every input ``IN_DIR/<stem>.<ext>`` gives ``OUT_DIR/<stem>.<suffix>`` for each requested
output suffix and a JSON sidecar ``OUT_DIR/<stem>.json`` written last (``"complete":
true`` and the parameter hash). ``OUT_DIR/manifest.json`` has one entry per input. All
files are written to hidden temporary names in OUT_DIR and renamed, so a killed run
leaves no truncated output; the next run removes the stale temporary files and redoes
the inputs whose sidecar is missing, incomplete or has another parameter hash. A
failed input gets a sidecar too, with ``"complete": false`` and the error, so the next
run redoes it.

``OUT_DIR`` may be ``IN_DIR`` or lie inside it only when no name the batch writes
(``<stem><suffix>``, ``<stem>.json``, ``manifest.json``) matches the pattern: an
output must never replace an input or be taken for one.

With ``jobs > 1`` the inputs run in worker processes fed one input at a time. The
workers ignore SIGINT (the parent decides), and die with the parent: on an
interrupt the parent kills them at once, records in the manifest exactly what is
finished on disk, removes the partial outputs of the inputs it cut short, and
re-raises; if the parent itself is killed, the workers notice and exit.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import re
import signal
import threading
import time

from ._config import DEFAULT_QUADRATURE
from ._process import die_with_parent
from .stipple import OUTPUT_SUFFIXES as _STIPPLE_SUFFIXES

__all__ = ["OUTPUT_SUFFIXES", "parameter_hash", "run_batch"]

logger = logging.getLogger(__name__)

TASKS = ("stipple", "quantize")
DEFAULT_OUTPUTS = {"stipple": (".svg", ".png"), "quantize": (".csv",)}
_QUANTIZE_SUFFIXES = (".csv", ".npy", ".txt", ".xyz")
#: output suffixes each task can write
OUTPUT_SUFFIXES = {"stipple": _STIPPLE_SUFFIXES, "quantize": _QUANTIZE_SUFFIXES}
_MANIFEST = "manifest.json"
_TMP_RE = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]+$")
#: exceptions that describe a problem with an input or the environment (reported as
#: their message, like the other commands do); anything else is a bug
_USER_ERRORS = (ValueError, OSError, TypeError, MemoryError)
_INTERNAL = "internal error: "


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
    """One line for the manifest: the message of a user error, else the bug's class.

    Reads like the other commands: ``"cannot read image ..."`` for a bad input,
    ``"internal error: ZeroDivisionError: ..."`` only for a genuine bug.
    """
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(exc, _USER_ERRORS):
        if line:
            return line
        return "out of memory" if isinstance(exc, MemoryError) else type(exc).__name__
    name = type(exc).__name__
    return f"{_INTERNAL}{name}: {line}" if line else f"{_INTERNAL}{name}"


def _paths(out_dir, stem, outputs):
    return (
        [os.path.join(out_dir, stem + s) for s in outputs],
        os.path.join(out_dir, stem + ".json"),
    )


def _done_meta(out_dir, stem, outputs, phash):
    """Read the sidecar of a finished input; None unless outputs and sidecar vouch.

    Finished means: every output exists, and the sidecar is complete with ``phash``.
    """
    files, sidecar = _paths(out_dir, stem, outputs)
    if not all(os.path.isfile(f) for f in files):
        return None
    try:
        with open(sidecar, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    done = meta.get("complete") is True and meta.get("parameter_hash") == phash
    return meta if done else None


def _is_done(out_dir, stem, outputs, phash) -> bool:
    return _done_meta(out_dir, stem, outputs, phash) is not None


def _set_threads(threads):
    if threads:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


def _worker_main(conn, parent_pid, threads):  # pragma: no cover - worker process
    """Loop of a pool worker: receive ``process_file`` arguments, send back entries.

    SIGINT is ignored (a terminal's Ctrl-C reaches the whole process group; the
    parent decides and kills the workers). Exits on ``None``, when the pipe closes,
    or when the parent dies.
    """
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    _set_threads(threads)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        entry = process_file(*task)
        try:
            conn.send(entry)
        except OSError:
            return


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

    Runs in a worker (process pool or Dask). Returns the manifest entry. A failed
    input gets a sidecar with ``"complete": false`` and the error (and loses the
    outputs this attempt wrote), so the manifest names only files that exist and
    the next run redoes it. Only an interrupt (KeyboardInterrupt) propagates.
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
    written = []
    try:
        _set_threads(threads)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sidecar)  # a stale sidecar must not vouch for new outputs
        write, diagnostics = _run_task(path, task, options)
        for f in files:
            write(f)
            written.append(f)
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
        cause = exc.__cause__ or exc.__context__
        if isinstance(exc, SystemError) and isinstance(cause, KeyboardInterrupt):
            raise cause from None  # a signal that landed in a compiled kernel
        _remove_files(written)
        entry["error"] = _one_line(exc)
        traceback = None
        if entry["error"].startswith(_INTERNAL):
            import traceback as tb

            traceback = tb.format_exc()
        entry["sidecar"] = _write_failure_sidecar(
            sidecar, path, task, options, phash, entry["error"], t0, traceback
        )
    entry["seconds"] = round(time.perf_counter() - t0, 4)
    return entry


def _remove_files(paths):
    for f in paths:
        with contextlib.suppress(OSError):
            os.unlink(f)


def _write_failure_sidecar(sidecar, path, task, options, phash, error, t0, tb=None):
    """Write the sidecar of a failed input; returns its path, or None if it failed."""
    from . import __version__
    from .io.atomic import atomic_write_json

    meta = {
        "command": f"batch {task}",
        "rasterquant_version": __version__,
        "input": os.path.abspath(path),
        "parameters": options,
        "parameter_hash": phash,
        "outputs": [],
        "error": error,
        "seconds": round(time.perf_counter() - t0, 4),
        "complete": False,
    }
    if tb:
        meta["traceback"] = tb
    try:
        atomic_write_json(sidecar, meta)
    except (OSError, ValueError):
        return None
    return sidecar


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
    elif isinstance(outputs, (str, os.PathLike)):
        outputs = [outputs]
    outs = []
    for s in outputs:
        s = os.fspath(s).lower() if isinstance(s, os.PathLike) else str(s).lower()
        s = s if s.startswith(".") else "." + s
        if s not in outs:
            outs.append(s)
    allowed = OUTPUT_SUFFIXES[task]
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


def _check_folders(in_dir, out_dir, pattern, names, outputs):
    """Refuse an output folder where outputs could replace inputs or be taken for them.

    When ``out_dir`` is ``in_dir`` or lies inside it, none of the names the batch
    writes (``<stem><suffix>``, ``<stem>.json`` and ``manifest.json``) may match
    ``pattern`` or name an input (compared without case, as on case-insensitive
    file systems).
    """
    real_in = os.path.normcase(os.path.realpath(in_dir))
    real_out = os.path.normcase(os.path.realpath(out_dir))
    try:
        inside = os.path.commonpath([real_in, real_out]) == real_in
    except ValueError:  # different drives
        inside = False
    if not inside:
        return
    inputs = {n.lower() for n in names}
    low = pattern.lower()
    written = [_MANIFEST]
    for n in names:
        stem = os.path.splitext(n)[0]
        written += [stem + s for s in (*outputs, ".json")]
    for w in written:
        if w.lower() in inputs or fnmatch.fnmatchcase(w.lower(), low):
            if real_in == real_out:
                where, why = (
                    "is the input folder",
                    " (it would replace an input or be read as one)",
                )
            else:
                where, why = f"lies inside the input folder {in_dir!r}", ""
            raise ValueError(
                f"output folder {out_dir!r} {where} and the output name {w!r} matches "
                f"the pattern {pattern!r}{why}; choose an output folder outside "
                "IN_DIR, or a pattern that matches no output name"
            )


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
        Folder of outputs (created if missing); shared by all workers. It may be
        ``in_dir`` or lie inside it only if no output name (``<stem><suffix>``,
        ``<stem>.json``, ``manifest.json``) matches ``pattern``.
    pattern : str
        Glob of the input file names (``fnmatch``), e.g. ``"*.png"``.
    task : {"stipple", "quantize"}
    options : dict
        Keyword options of the task: for "stipple" those of :func:`stipple` plus
        ``n``, ``render_scale``, ``background``; for "quantize" ``n``, ``method``,
        ``iterations``, ``init``, ``seed``, ``tol``, ``step``, ``invert``, ``gamma``,
        ``floor``.
    outputs : sequence of str, optional
        Output suffixes per input: some of ``OUTPUT_SUFFIXES[task]`` (``.svg .png
        .pdf .csv .npy`` for stipple, ``.csv .npy .txt .xyz`` for quantize; default
        ``.svg, .png`` for stipple, ``.csv`` for quantize).
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
        ``sidecar`` (written for failed inputs too, with ``"complete": false``),
        ``error`` (one line or None), ``seconds`` and ``parameter_hash``;
        ``"counts"`` holds the totals (inputs without an entry are "pending").

    Raises
    ------
    ValueError
        If ``in_dir`` is not a folder, no file matches, the options are invalid, or
        ``out_dir`` is (or lies inside) ``in_dir`` with output names that match
        ``pattern``.
    KeyboardInterrupt
        On Ctrl-C (or SIGTERM turned into one): the workers are killed, the
        partial outputs of the inputs cut short are removed, and the manifest
        (``"interrupted": true``) lists as "ok" exactly the inputs finished on disk.
    """
    from . import __version__
    from .io.atomic import atomic_write_json

    in_dir, out_dir, names, outputs, options = _inputs(
        in_dir, out_dir, pattern, task, options, outputs, jobs
    )
    os.makedirs(out_dir, exist_ok=True)
    _clean_temporaries(out_dir)
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    phash = parameter_hash(task, options, outputs)
    t_start = time.perf_counter()
    entries, todo = _plan(in_dir, out_dir, names, outputs, phash, force)

    manifest = {
        "rasterquant_version": __version__,
        **dict(task=task, options=options, outputs=list(outputs)),
        **dict(parameter_hash=phash, in_dir=in_dir, pattern=pattern),
        **dict(entries=entries, counts={}, complete=False, interrupted=False),
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
            _log_failure(name, entry)
        save()
        if bar is not None:
            c = counts()
            bar.set_postfix(ok=c["ok"], failed=c["failed"], skipped=c["skipped"])
            bar.update(1)

    save()
    args = (out_dir, task, options, outputs, phash)
    started = set()  # inputs handed to a worker (or begun here)
    try:
        if scheduler is not None:
            _run_dask(
                scheduler, in_dir, todo, args, threads if jobs > 1 else None, record
            )
        elif jobs == 1 or len(todo) <= 1:
            for name in todo:
                started.add(name)
                record(name, process_file(os.path.join(in_dir, name), *args, threads))
        else:
            _run_pool(in_dir, todo, args, jobs, threads, record, started)
    except BaseException as exc:
        # interrupted (or a bug): the workers are dead now; make the manifest say
        # exactly what is on disk, and leave no partial output behind
        _settle(in_dir, [n for n in todo if n not in entries], started, args, entries)
        manifest["interrupted"] = isinstance(exc, KeyboardInterrupt)
        with contextlib.suppress(OSError, ValueError):
            _clean_temporaries(out_dir)
            save()
        raise
    finally:
        if bar is not None:
            bar.close()
    save(final=True)
    return manifest


def _inputs(in_dir, out_dir, pattern, task, options, outputs, jobs):
    """Validate the arguments of :func:`run_batch` and list its inputs.

    Returns ``(in_dir, out_dir, names, outputs, options)`` (folders normalised, the
    matching file names sorted); raises ValueError otherwise.
    """
    in_dir = os.path.normpath(os.fspath(in_dir))
    out_dir = os.path.normpath(os.fspath(out_dir))
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
    _check_folders(in_dir, out_dir, pattern, names, outputs)
    return in_dir, out_dir, names, outputs, options


def _plan(in_dir, out_dir, names, outputs, phash, force):
    """Sort the inputs: entries for those skipped or colliding, and the ones to do."""
    entries, todo, seen = {}, [], {}
    for name in names:
        path = os.path.join(in_dir, name)
        stem = os.path.splitext(name)[0]
        entry = {
            "input": os.path.abspath(path),
            "status": "skipped",
            "outputs": [],
            "sidecar": None,
            "error": None,
            "seconds": 0.0,
            "parameter_hash": phash,
        }
        if stem + ".json" == _MANIFEST or stem in seen:
            other = "the manifest" if stem == "manifest" else repr(seen[stem])
            entry.update(
                status="failed", error=f"output names of {name!r} collide with {other}"
            )
            entries[name] = entry
            continue
        seen[stem] = name
        if not force and _is_done(out_dir, stem, outputs, phash):
            files, sidecar = _paths(out_dir, stem, outputs)
            entry.update(outputs=files, sidecar=sidecar)
            entries[name] = entry
        else:
            todo.append(name)
    return entries, todo


def _log_failure(name, entry):
    error = entry["error"] or ""
    if error.startswith(_INTERNAL):
        where = f"; traceback in {entry['sidecar']}" if entry.get("sidecar") else ""
        logger.error(
            "internal error: %s: %s (please report it%s)",
            name,
            error[len(_INTERNAL) :],
            where,
        )
    else:
        logger.error("error: %s: %s", name, error)


def _settle(in_dir, unfinished, started, args, entries):
    """After an interrupt: record inputs finished on disk, clean those cut short.

    An input whose outputs and complete sidecar exist is recorded "ok" (its worker
    finished before it was killed). The partial outputs of the other inputs that
    had begun are removed; inputs that never began are left as they are (pending).
    """
    out_dir, _, _, outputs, phash = args
    for name in unfinished:
        stem = os.path.splitext(name)[0]
        files, sidecar = _paths(out_dir, stem, outputs)
        meta = _done_meta(out_dir, stem, outputs, phash)
        if meta is not None:
            entries[name] = {
                "input": os.path.abspath(os.path.join(in_dir, name)),
                "status": "ok",
                "outputs": files,
                "sidecar": sidecar,
                "error": None,
                "seconds": meta.get("seconds", 0.0),
                "parameter_hash": phash,
            }
        elif name in started:
            _remove_files([*files, sidecar])


def _sigint_ignored():
    """Context: SIGINT ignored while worker processes start (they inherit SIG_IGN).

    A Ctrl-C that lands in that instant is delivered when the handler is restored
    (SIGINT is blocked meanwhile). Only in the main thread; elsewhere a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def ignored():
        blockable = hasattr(signal, "pthread_sigmask")
        if blockable:
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.SIG_DFL if old is None else old)
            if blockable:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    return ignored()


class _Pool:
    """Worker processes fed one input at a time over pipes.

    Unlike ``ProcessPoolExecutor``, a worker that dies fails only its own input
    (and is replaced), and :meth:`kill` stops every worker at once.
    """

    def __init__(self, ctx, threads):
        self.ctx, self.threads = ctx, threads
        self.procs = []  # every worker started, for kill()
        self.busy = {}  # parent end of the pipe -> (process, input name)

    def start(self):
        parent, child = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(
            target=_worker_main,
            args=(child, os.getpid(), self.threads),
            name="rasterquant-batch-worker",
            daemon=True,
        )
        with _sigint_ignored():
            proc.start()
            self.procs.append(proc)
        child.close()
        return proc, parent

    def submit(self, proc, conn, name, task):
        """Send ``task`` to the worker; a worker found dead is replaced once."""
        for _ in range(2):
            try:
                conn.send(task)
                self.busy[conn] = (proc, name)
                return
            except OSError:
                conn.close()
                proc.join(1)
                proc, conn = self.start()
        raise OSError(f"cannot start a worker process for {name!r}")

    def finished(self):
        """Wait for results: yields (process, pipe, name, entry or None if it died)."""
        from multiprocessing.connection import wait

        waits = list(self.busy) + [p.sentinel for p, _ in self.busy.values()]
        ready = set(wait(waits))
        for conn, (proc, name) in list(self.busy.items()):
            if conn not in ready and proc.sentinel not in ready:
                continue
            entry = None
            try:
                if conn in ready or conn.poll():
                    entry = conn.recv()
            except (EOFError, OSError):
                entry = None
            del self.busy[conn]
            yield proc, conn, name, entry

    def stop(self, proc, conn):
        with contextlib.suppress(OSError):
            conn.send(None)
        conn.close()

    def close(self):
        """Let the idle workers exit, then kill any that do not."""
        for proc in self.procs:
            proc.join(5)
        self.kill()

    def kill(self):
        """Kill every worker now (SIGKILL) and reap it."""
        for proc in self.procs:
            if proc.exitcode is None:
                with contextlib.suppress(OSError, ValueError):
                    proc.kill()
        for proc in self.procs:
            with contextlib.suppress(OSError, ValueError):
                proc.join(5)
        for conn in list(self.busy):
            conn.close()
        self.busy.clear()


def _death(exitcode):
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"the worker process was killed by {name}{hint}"
    return f"the worker process died (exit code {exitcode})"


def _run_pool(in_dir, todo, args, jobs, threads, record, started):
    import multiprocessing as mp

    pool = _Pool(mp.get_context("spawn"), threads)  # fork + numba threads can deadlock
    queue = list(reversed(todo))

    def feed(proc, conn):
        if not queue:
            pool.stop(proc, conn)
            return
        name = queue.pop()
        started.add(name)
        task = (os.path.join(in_dir, name), *args, threads)
        pool.submit(proc, conn, name, task)

    try:
        for _ in range(min(jobs, len(todo))):
            feed(*pool.start())
        while pool.busy:
            for proc, conn, name, entry in pool.finished():
                if entry is None:  # the worker died with this input
                    conn.close()
                    proc.join(5)
                    entry = _crash_entry(in_dir, name, args, _death(proc.exitcode))
                    record(name, entry)
                    if queue:
                        feed(*pool.start())
                else:
                    record(name, entry)
                    feed(proc, conn)
    except BaseException:
        pool.kill()
        raise
    pool.close()


def _crash_entry(in_dir, name, args, error):
    out_dir, task, options, outputs, phash = args
    path = os.path.join(in_dir, name)
    files, sidecar = _paths(out_dir, os.path.splitext(name)[0], outputs)
    if _done_meta(out_dir, os.path.splitext(name)[0], outputs, phash) is None:
        _remove_files(files)  # partial outputs of the lost attempt
    sidecar = _write_failure_sidecar(
        sidecar, path, task, options, phash, error, time.perf_counter()
    )
    return {
        "input": os.path.abspath(path),
        "status": "failed",
        "outputs": [],
        "sidecar": sidecar,
        "error": error,
        "seconds": 0.0,
        "parameter_hash": phash,
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
    futures = {}
    try:
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
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel(list(futures))
        raise
    finally:
        if own:
            client.close()
