"""Shared pieces of the studies: densities, clouds, solves, loops and output files."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from ..assign.cells import assign_cells
from ..density import Density
from ..energy import min_separation
from ..errors import RasterquantWarning
from ..io.atomic import atomic_write, atomic_write_json, atomic_write_text
from ..ot.newton import solve_ot
from ..sampling import sample_points, tightness_density

logger = logging.getLogger("rasterquant.experiments")

DENSITIES_2D = ("uniform", "gaussian", "tightness")
CLOUDS = ("random", "grid", "jittered", "separated", "koch", "tightness-grid")


@dataclass(frozen=True)
class StudyResult:
    """What a study computed and wrote.

    Attributes
    ----------
    study : str
        "rates", "unstable", "limits" or "compare".
    rows : list of dict
        The table of the CSV, one dict per row.
    summary : dict
        Derived numbers (slopes, when the grid was left, ...).
    parameters : dict
        The parameters of the run.
    outputs : list of str
        Files written (empty without ``out_dir``).
    pictures_skipped : bool
        True when matplotlib is missing and no PNG was written.
    extra : dict
        Study-specific arrays (snapshots, histories), not written to the CSV.
    reused : bool
        True when ``out_dir`` already held a complete run with the same parameters
        and the study returned it (read from its JSON) instead of computing again.
    """

    study: str
    rows: list
    summary: dict
    parameters: dict
    outputs: list = field(default_factory=list)
    pictures_skipped: bool = False
    extra: dict = field(default_factory=dict, repr=False)
    reused: bool = False


# ------------------------------------------------------------------ parameters


def auto_tol(pixels_per_cell, d, quadrature=None):
    """Return the mass tolerance a raster meets: ``max(1e-2, P^(-1/d))`` (centre).

    With centre quadrature a mass moves by whole pixels, and a facet aligned with the
    raster axes moves by a whole row of about ``P^((d-1)/d)`` pixels, a relative step of
    ``P^(-1/d)``. Any other quadrature is taken to be continuous: ``1e-6``.
    """
    from ..assign import quadrature_spec

    if quadrature_spec(quadrature).continuous:
        return 1e-6
    return float(min(0.5, max(1e-2, pixels_per_cell ** (-1.0 / d))))


def aligned_resolution(resolution, period):
    """Round ``resolution`` to the nearest multiple of ``period`` (>= ``period``)."""
    period = max(int(period), 1)
    return period * max(1, round(resolution / period))


def integer_root(n, d):
    """``k`` with ``k**d == n``, or None."""
    k = round(n ** (1.0 / d))
    for c in (k - 1, k, k + 1):
        if c >= 1 and c**d == n:
            return c
    return None


def koch_sizes(n_list):
    """``4**k + 1`` nearest to each N (deduplicated, sorted)."""
    out = set()
    for n in n_list:
        k = min(range(0, 13), key=lambda j: abs(4**j + 1 - n))
        out.add(4**k + 1)
    return sorted(out)


def make_density(name, resolution, d=2, n=None, sigma=0.5):
    """Build a study density, its raster aligned to the regular clouds of ``n`` points.

    - ``"uniform"``: uniform on ``[0, 1]^d``; resolution rounded to a multiple of
      ``k = n^(1/d)`` when ``n`` is a ``d``-th power (the grid cloud is pixel-aligned);
    - ``"gaussian"``: ``exp(-|x|^2 / (2 sigma^2))`` restricted to the unit ball, on
      ``[-1, 1]^d``, same rounding;
    - ``"tightness"``: :func:`rasterquant.sampling.tightness_density` with
      ``n_axis = n^(1/d)`` on ``[-1, 1]^d``, resolution a multiple of
      ``2 (n_axis - 1)`` (its grid cloud is pixel-aligned).

    Returns
    -------
    density : Density
    resolution : int
        The resolution used.
    """
    k = integer_root(n, d) if n is not None else None
    if name == "uniform":
        res = aligned_resolution(resolution, k or 1)
        return Density.uniform((res,) * d, [(0.0, 1.0)] * d), res
    if name == "gaussian":
        res = aligned_resolution(resolution, k or 1)
        dens = Density.gaussian((res,) * d, [(-1.0, 1.0)] * d, sigma=sigma, radius=1.0)
        return dens, res
    if name == "tightness":
        if k is None or k < 2:
            raise ValueError(
                f"the tightness density needs N = n^{d} with n >= 2, got N = {n}"
            )
        res = aligned_resolution(resolution, 2 * (k - 1))
        return tightness_density(k, res, d), res
    raise ValueError(f"density must be one of {DENSITIES_2D}, got {name!r}")


def cloud_sizes(cloud, n_list, d):
    """Return the N of a cloud for a list of N (Koch: ``4^k + 1``; grids: powers)."""
    if cloud == "koch":
        return koch_sizes(n_list) if d == 2 else []
    if cloud in ("grid", "jittered", "tightness-grid"):
        return [n for n in n_list if integer_root(n, d)]
    return list(n_list)


def make_cloud(cloud, density, n, seed, *, beta=None, c0=0.5, jitter=0.5):
    """Draw an initial cloud: "random" is i.i.d. from the density, others as named.

    ``seed`` is a Generator or an int; "separated" needs an int (its filled box is
    cached per seed and shared by the densities) and uses :func:`separated_cloud`.
    """
    method = {"random": "density", "jittered": "jittered-grid"}.get(cloud, cloud)
    if method == "separated":
        return separated_cloud(density, n, seed, beta=beta, c0=c0)
    full = density.n_positive() == density.grid.n_pixels
    if method in ("grid", "jittered-grid") and not full:
        return _support_grid(density, n, seed, jitter if cloud == "jittered" else 0.0)
    opts = {}
    if method == "jittered-grid":
        opts["jitter"] = jitter
    elif method == "separated":
        opts.update(beta=beta, c0=c0)
    return sample_points(density, n, method=method, seed=seed, **opts)


def in_support(density, points):
    """Boolean (N,): the pixel of each point has positive density."""
    idx = np.floor(density.grid.to_index(points)).astype(np.int64)
    idx = np.clip(idx, 0, np.array(density.grid.shape) - 1)
    return density.values[tuple(idx.T)] > 0


def _support_grid(density, n, seed, jitter):
    """Grid (or jittered grid) of the box keeping the centres in the support.

    Points outside the support of a density with zero pixels (the Gaussian on the
    disc) get cells only through OT across empty regions, which the solver's
    empty-cell repair does not always manage; so such densities get the centres of
    the ``k^d`` grid of the box that lie in the support, ``k`` chosen so that their
    number is closest to ``n`` (the row records the actual N). Jittered points that
    leave the support are drawn again.
    """
    grid = density.grid
    d = grid.ndim
    lo = np.array([e[0] for e in grid.extent])
    length = grid.lengths

    def centres(k):
        axes = [lo[a] + (np.arange(k) + 0.5) * length[a] / k for a in range(d)]
        mesh = np.meshgrid(*axes, indexing="ij")
        pts = np.stack([m.ravel() for m in mesh], axis=1)
        return pts[in_support(density, pts)]

    k0 = max(round(n ** (1.0 / d)), 1)
    best = min(range(k0, 4 * k0 + 2), key=lambda k: abs(len(centres(k)) - n))
    base = centres(best)
    if jitter == 0:
        return base
    rng = np.random.default_rng(seed)
    cell = length / best
    pts = base.copy()
    todo = np.ones(len(pts), dtype=bool)
    for _ in range(100):
        pts[todo] = base[todo] + (2 * rng.random((todo.sum(), d)) - 1) * jitter * cell
        pts = np.clip(pts, lo, np.nextafter(lo + length, lo))
        todo = ~in_support(density, pts)
        if not todo.any():
            break
    pts[todo] = base[todo]
    return pts


def separated_cloud(density, n, seed, *, beta=None, c0=0.5):
    """``n`` points with minimum distance ``c0 n^(-1/beta)`` spread over the whole box.

    ``scipy.stats.qmc.PoissonDisk`` grows its sample from one seed point, so its first
    ``n`` points cover only part of the box when the radius allows more than ``n``
    points (``sample_points(method="separated")`` returns those). Here the box is
    filled (``fill_space``) and ``n`` of the points are kept at random: the minimum
    distance holds and the cloud covers the box. Units: the box scaled to unit volume.
    Only points in the support of the density are kept (see :func:`_support_grid`).
    """
    grid = density.grid
    d = grid.ndim
    lo = np.array([e[0] for e in grid.extent])
    length = grid.lengths
    unit = float(np.prod(length)) ** (1.0 / d)
    beta = float(d) if beta is None else float(beta)
    r = c0 * n ** (-1.0 / beta)
    full = lo + _filled_box(tuple(length / unit), r, int(seed)) * unit
    full = full[in_support(density, np.minimum(full, np.nextafter(lo + length, lo)))]
    if len(full) < n:
        raise ValueError(
            f"separated cloud: radius {r:.4g} (c0={c0:g}, beta={beta:g}) leaves room "
            f"for {len(full)} < n = {n} points; use a smaller c0"
        )
    rng = np.random.default_rng([int(seed), n])
    pick = rng.choice(len(full), size=n, replace=False)
    pts = full[np.sort(pick)]
    return np.minimum(pts, np.nextafter(lo + length, lo))


@functools.lru_cache(maxsize=8)
def _filled_box(bounds, r, seed):
    """Poisson disk sample filling the box ``[0, bounds]`` (cached: it is slow)."""
    from scipy.stats import qmc

    sampler = qmc.PoissonDisk(
        len(bounds),
        radius=r * (1 + 1e-6),
        rng=np.random.default_rng(seed),
        l_bounds=np.zeros(len(bounds)),
        u_bounds=np.array(bounds),
    )
    out = sampler.fill_space()
    out.setflags(write=False)
    return out


# ------------------------------------------------------------------ solves


@dataclass(frozen=True)
class Solve:
    """One OT solve with its warnings recorded instead of raised."""

    result: object
    status: str
    max_error: float
    warnings: list


def solve(density, points, *, tol, weights=None, quadrature=None):
    """``solve_ot`` with ``quadrature`` forwarded only when given; warnings recorded."""
    kwargs = {"tol": tol, "weights": weights}
    if quadrature is not None:
        kwargs["quadrature"] = quadrature
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RasterquantWarning)
        res = solve_ot(density, points, **kwargs)
    msgs = [
        str(w.message) for w in caught if issubclass(w.category, RasterquantWarning)
    ]
    for w in caught:
        if not issubclass(w.category, RasterquantWarning):
            warnings.warn(w.message, stacklevel=2)
    return Solve(res, res.status, float(res.max_error), msgs)


def residual(grid, points, barycenters):
    """``max_i |y_i - b_i|`` (minimum image on periodic axes)."""
    delta = grid.min_image(barycenters - points)
    return float(np.sqrt((delta**2).sum(axis=1)).max())


def uniform_lloyd(
    density,
    points,
    *,
    iterations,
    tol,
    quadrature=None,
    residual_tol=None,
    on_iterate=None,
):
    """Lloyd's uniform algorithm with a full record of every iterate.

    Iterate ``k`` (``k = 0`` the start) records ``F_N``, the critical residual, the
    achieved mass error and the solver status; then ``y <- b(y)``. Stops after
    ``iterations`` moves, or when the residual is ``<= residual_tol``.
    ``on_iterate(k, points, solve)`` is called for every iterate.

    Returns
    -------
    points : (N, d) ndarray
        The last iterate (its residual is the last record's).
    records : list of dict
    last : Solve
    """
    pts = np.array(points, dtype=float)
    psi = None
    records = []
    t0 = time.perf_counter()
    k = 0
    while True:
        s = solve(density, pts, tol=tol, weights=psi, quadrature=quadrature)
        bary = s.result.cells.barycenters
        r = residual(density.grid, pts, bary)
        records.append(
            {
                "iteration": k,
                "energy": s.result.energy,
                "residual": r,
                "max_mass_error": s.max_error,
                "status": s.status,
                "newton_iterations": s.result.n_iter,
                "seconds": time.perf_counter() - t0,
            }
        )
        if on_iterate is not None:
            on_iterate(k, pts, s)
        if k >= iterations or (residual_tol is not None and r <= residual_tol):
            return pts, records, s
        psi = s.result.weights
        pts = bary
        if density.grid.any_periodic:
            pts = density.grid.wrap(pts)
        k += 1


def classic_lloyd_step(density, points):
    """Voronoi cells of ``points``: returns the Cells (barycenters, energy = G_N)."""
    return assign_cells(density, points)


def min_sep(points):
    """Minimum separation (nan for a single point)."""
    return min_separation(points) if len(points) > 1 else float("nan")


def loglog_slope(n, values):
    """Least-squares slope and intercept of ``log(values)`` against ``log(n)``."""
    n = np.asarray(n, dtype=float)
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) & (v > 0) & (n > 0)
    if np.count_nonzero(ok) < 2 or len(np.unique(n[ok])) < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log(n[ok]), np.log(v[ok]), 1)
    return float(slope), float(intercept)


# ------------------------------------------------------------------ validation


def is_int(value):
    """Tell whether ``value`` is a Python or NumPy integer (not a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value):
    """Tell whether ``value`` is a Python or NumPy real number (not a bool)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )


def is_finite_real(value):
    """Tell whether ``value`` is a finite real number (not a bool)."""
    return is_real(value) and math.isfinite(value)


def check_run_options(*, seed, tol, quadrature, resolution, out_dir):
    """Validate the options every study shares; raises ValueError before any work.

    ``seed`` an integer >= 0, ``tol`` None or in (0, 1), ``quadrature`` None or one
    of :data:`rasterquant.assign.cells.QUADRATURES`, ``resolution`` None or an
    integer >= 1, ``out_dir`` None or a folder that is (or can be made) writable.
    """
    from ..assign.cells import QUADRATURES

    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if tol is not None and not (is_real(tol) and 0 < tol < 1):
        raise ValueError(f"tol must be None or a number in (0, 1), got {tol!r}")
    if quadrature is not None and quadrature not in QUADRATURES:
        raise ValueError(
            f"quadrature must be None or one of {', '.join(QUADRATURES)}, "
            f"got {quadrature!r}"
        )
    if resolution is not None and not (is_int(resolution) and resolution >= 1):
        raise ValueError(f"resolution must be an integer >= 1, got {resolution!r}")
    if out_dir is not None:
        _check_out_dir_writable(os.fspath(out_dir))


def _check_out_dir_writable(out_dir):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"out_dir {out_dir!r} is a file; expected a folder")
    probe = os.path.abspath(out_dir)
    while not os.path.exists(probe):  # the nearest existing ancestor
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ValueError(
            f"out_dir {out_dir!r} cannot be created: {probe!r} is a file; expected "
            "a folder"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(
            f"out_dir {out_dir!r} is not writable (permission denied on {probe!r})"
        )


def progress_bar(enabled, total, desc, unit):
    """Return a tqdm bar on stderr (``leave=False``), or a stand-in doing nothing."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, text):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ------------------------------------------------------------------ output


def _clean(value):
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if not math.isfinite(v) else v
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_csv(path, rows, columns=None):
    """Write ``rows`` (list of dicts) as CSV atomically; floats in full precision."""
    if columns is None:
        columns = list(rows[0]) if rows else []
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: (repr(float(v)) if isinstance(v, (float, np.floating)) else v)
                for k, v in row.items()
            }
        )
    atomic_write_text(path, buf.getvalue())


def write_json(path, obj):
    """Write ``obj`` as JSON atomically (NaN becomes null)."""
    atomic_write_json(path, _clean(obj))


def pyplot():
    """``matplotlib.pyplot`` with the Agg backend, or None when not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path):
    """Save a matplotlib figure as PNG atomically and close it."""
    plt = pyplot()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


class _Staging:
    """Outputs written into a hidden folder of ``out_dir``, moved into place together.

    A study writes its files through :meth:`path`; :meth:`commit` renames them all
    into ``out_dir`` once every one is complete, :meth:`abort` removes them (and
    ``out_dir`` if this run created it and it is empty). So a run that fails or is
    interrupted while writing leaves nothing behind.
    """

    def __init__(self, out_dir, stem):
        self.out_dir = os.fspath(out_dir)
        self.created = []  # folders made by this run, deepest last
        probe = os.path.abspath(self.out_dir)
        while not os.path.exists(probe):
            self.created.append(probe)
            probe = os.path.dirname(probe)
        self.created.reverse()
        os.makedirs(self.out_dir, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix=f".{stem}.tmp-", dir=self.out_dir)
        self.names = []

    def path(self, name):
        """Temporary path of the output file ``name``."""
        if name in self.names:
            raise ValueError(f"output {name!r} is written twice")
        self.names.append(name)
        return os.path.join(self.tmp, name)

    def final(self, name):
        """Return the final path of the output file ``name``."""
        return os.path.join(self.out_dir, name)

    def commit(self):
        """Move every file into ``out_dir``; returns their final paths."""
        moved = []
        try:
            for name in self.names:
                os.replace(os.path.join(self.tmp, name), self.final(name))
                moved.append(self.final(name))
        except BaseException:
            for path in moved:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            self.abort()
            raise
        with contextlib.suppress(OSError):
            os.rmdir(self.tmp)
        return moved

    def abort(self):
        """Remove the temporary files and the folders this run created."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        for folder in reversed(self.created):
            try:
                os.rmdir(folder)
            except OSError:
                break


def finish(
    study,
    rows,
    summary,
    parameters,
    out_dir,
    *,
    columns=None,
    stem=None,
    plot=None,
    files=None,
    names=(),
    extra=None,
    t0=None,
):
    """Write CSV + PNG + other files + JSON into ``out_dir``, all or nothing.

    ``plot(plt, path)`` draws the pictures, saving each to ``path(name)``;
    ``files(path)`` writes other outputs the same way. The files go to a hidden
    folder first and are moved into ``out_dir`` only when all of them are written
    (see :class:`_Staging`). Files among ``names`` (every output name of the study)
    that this run did not write are then removed: they are left from an earlier
    run (``--force``) and would not match the new JSON.
    """
    skipped = False
    stem = stem or study
    meta = dict(parameters)
    meta["rasterquant_version"] = __version__
    if t0 is not None:
        summary = dict(summary, seconds=round(time.perf_counter() - t0, 3))
    if out_dir is None:
        return StudyResult(study, rows, summary, meta, [], False, extra or {})
    staged = _Staging(out_dir, stem)
    try:
        write_csv(staged.path(f"{stem}.csv"), rows, columns)
        if plot is not None:
            plt = pyplot()
            if plt is None:
                skipped = True
                logger.warning(
                    "%s: matplotlib is not installed; pictures skipped "
                    "(install rasterquant[plot])",
                    study,
                )
            else:
                plot(plt, staged.path)
        if files is not None:
            files(staged.path)
        json_name = f"{stem}.json"
        outputs = [staged.final(n) for n in [*staged.names, json_name]]
        write_json(
            staged.path(json_name),
            {
                "study": study,
                "parameters": meta,
                "summary": summary,
                "rows": rows,
                "outputs": outputs,
                "pictures_skipped": skipped,
            },
        )
        outputs = staged.commit()
    except BaseException:
        staged.abort()
        raise
    for name in names:
        if name not in staged.names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(out_dir, name))
    return StudyResult(study, rows, summary, meta, outputs, skipped, extra or {})


def previous_run(out_dir, study, stem, names, parameters, force):
    """Decide what to do with the files of an earlier run in ``out_dir``.

    Returns None when the study should run: no ``out_dir``, ``force``, or none of
    ``names`` (the output file names of the study) exists there. Returns the earlier
    :class:`StudyResult` (``reused=True``) when ``stem.json`` records a complete run
    with the same ``parameters`` and every output it lists still exists.

    Raises
    ------
    ValueError
        When files of the study exist but come from a run with other parameters or
        from an incomplete run (the message names them; ``force`` overwrites).
    """
    if out_dir is None or force:
        return None
    out_dir = os.fspath(out_dir)
    present = [n for n in names if os.path.lexists(os.path.join(out_dir, n))]
    if not present:
        return None
    json_path = os.path.join(out_dir, f"{stem}.json")
    try:
        with open(json_path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        data = None
    why = f"an unknown or incomplete run (no readable {stem}.json)"
    if isinstance(data, dict) and data.get("study") == study:
        old = dict(data.get("parameters") or {})
        old.pop("rasterquant_version", None)
        new = json.loads(json.dumps(_clean(dict(parameters))))
        differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        outputs = [os.path.basename(p) for p in data.get("outputs") or []]
        missing = [n for n in outputs if not os.path.exists(os.path.join(out_dir, n))]
        if data.get("pictures_skipped") and parameters.get("plot") and pyplot():
            missing.append("the pictures (skipped: matplotlib was missing)")
        if not differ and not missing and outputs:
            return StudyResult(
                study,
                data.get("rows") or [],
                data.get("summary") or {},
                data.get("parameters") or {},
                [os.path.join(out_dir, n) for n in outputs],
                bool(data.get("pictures_skipped")),
                {},
                reused=True,
            )
        if differ:
            why = f"a run with other parameters (differing: {', '.join(differ)})"
        elif missing:
            why = f"an incomplete run (missing: {', '.join(missing)})"
    raise ValueError(
        f"{out_dir!r} already holds {', '.join(present)} from {why}; pass --force "
        "to overwrite, or choose another output folder"
    )


def labels_edges(labels):
    """Boolean image of the pixels whose right or lower neighbour has another label."""
    e = np.zeros(labels.shape, dtype=bool)
    e[:-1, :] |= labels[:-1, :] != labels[1:, :]
    e[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return e


def draw_cells(ax, density, labels, points, title):
    """Draw cells (boundaries over the density) and points; (x, y) = (col, row)."""
    (r0, r1), (c0, c1) = density.grid.extent
    ext = (c0, c1, r1, r0)
    ax.imshow(density.values, cmap="Greys", extent=ext, alpha=0.35)
    edges = np.ma.masked_where(~labels_edges(labels), np.ones(labels.shape))
    ax.imshow(edges, cmap="winter", extent=ext, interpolation="nearest", alpha=0.8)
    ax.plot(points[:, 1], points[:, 0], ".", color="crimson", ms=2)
    ax.set_xlim(c0, c1)
    ax.set_ylim(r1, r0)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
