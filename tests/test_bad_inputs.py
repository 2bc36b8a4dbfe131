"""Every bad input gets a one-line error naming the argument, what came and what was
expected (issue 6, docs/errors.md).

The API table calls each public entry point with one bad argument; the CLI table runs
``rasterquant quantize`` through ``main([...])`` in ``tmp_path``: exit code 1 with a
single line on stderr and no traceback (or 2 for argparse usage errors), and with
``--debug`` the exception propagates. Hypothesis then feeds random valid and invalid
arrays to assign_cells, solve_ot and lloyd.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import reference

import rasterquant as rq
from rasterquant import _validation
from rasterquant.cli.main import main
from rasterquant.errors import InsufficientMemoryError

D16 = np.ones((16, 16))
PTS2 = [[3.0, 4.0], [10.0, 12.0]]
NAN = float("nan")
INF = float("inf")


def _periodic(shape=(16, 16)):
    return rq.Density.from_array(np.ones(shape), periodic=True)


def _density():
    return rq.Density.from_array(D16)


# ----------------------------------------------------------------- files for the tables


def _png_bytes(shape=(24, 24), value=None):
    import io

    from PIL import Image

    rng = np.random.default_rng(3)
    arr = (
        (rng.random(shape) * 200).astype(np.uint8)
        if value is None
        else np.full(shape, value, np.uint8)
    )
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _write(path, data):
    with open(path, "wb") as fh:
        fh.write(data)
    return str(path)


def make_file(tmp_path, kind):
    """A bad (or good) density file of the given kind; returns its path."""
    p = tmp_path
    if kind == "truncated.png":
        data = _png_bytes()
        return _write(p / kind, data[: len(data) // 2])
    if kind == "header-only.png":
        return _write(p / kind, _png_bytes()[:30])
    if kind == "corrupt.png":
        return _write(p / kind, b"this is not a PNG file at all\n" * 4)
    if kind == "empty.png":
        return _write(p / kind, b"")
    if kind == "white.png":
        return _write(p / kind, _png_bytes(value=255))
    if kind == "good.png":
        return _write(p / kind, _png_bytes())
    if kind == "one-pixel.png":
        return _write(p / kind, _png_bytes((1, 1), value=0))
    if kind == "corrupt.jpg":
        return _write(p / kind, b"\xff\xd8\xff\xe0 garbage")
    if kind == "corrupt.tif":
        return _write(p / kind, b"II*\x00garbage-garbage")
    if kind == "density.txt":
        return _write(p / kind, b"1 2\n3 4\n")
    if kind == "noext":
        return _write(p / kind, b"1 2\n3 4\n")
    if kind == "dir.png":
        os.mkdir(p / kind)
        return str(p / kind)
    if kind == "missing.png":
        return str(p / kind)
    arrays = {
        "nan.npy": np.full((8, 8), NAN),
        "neg.npy": -np.ones((8, 8)),
        "zero.npy": np.zeros((8, 8)),
        "4d.npy": np.ones((2, 2, 2, 2)),
        "1d.npy": np.ones(8),
        "empty.npy": np.ones((0, 8)),
        "strings.npy": np.array([["a", "b"], ["c", "d"]]),
        "complex.npy": np.ones((4, 4)) * 1j,
        "good.npy": np.random.default_rng(5).random((32, 32)) + 0.05,
    }
    if kind in arrays:
        np.save(p / kind, arrays[kind])
        return str(p / kind)
    if kind == "truncated.npy":
        np.save(p / "full.npy", np.ones((16, 16)))
        with open(p / "full.npy", "rb") as fh:
            data = fh.read()
        return _write(p / kind, data[:-40])
    raise KeyError(kind)


# -------------------------------------------------------------------------- API table

# (id, call, exception, regex): each call gets tmp_path (for files) and must raise.
API_CASES = [
    # densities
    (
        "density-nan",
        lambda t: rq.Density.from_array([[1.0, NAN], [1.0, 1.0]]),
        ValueError,
        r"density contains 1 NaN or inf.*expected finite non-negative",
    ),
    (
        "density-inf",
        lambda t: rq.Density.from_array([[1.0, INF], [1.0, 1.0]]),
        ValueError,
        r"density contains 1 NaN or inf",
    ),
    (
        "density-negative",
        lambda t: rq.Density.from_array([[1.0, -2.0], [1.0, 1.0]]),
        ValueError,
        r"density contains negative values \(min -2\); expected >= 0",
    ),
    (
        "density-all-zero",
        lambda t: rq.Density.from_array(np.zeros((4, 4))),
        ValueError,
        r"density is zero everywhere; expected some positive mass",
    ),
    (
        "density-empty",
        lambda t: rq.Density.from_array(np.ones((0, 4))),
        ValueError,
        r"density is empty \(shape \(0, 4\)\); expected pixels",
    ),
    (
        "density-4d",
        lambda t: rq.Density.from_array(np.ones((2, 2, 2, 2))),
        ValueError,
        r"density must be a 2D \(H, W\) or 3D \(D, H, W\) array, got 4D",
    ),
    (
        "density-1d",
        lambda t: rq.Density.from_array(np.ones(5)),
        ValueError,
        r"density must be a 2D .* got 1D with shape \(5,\)",
    ),
    (
        "density-str",
        lambda t: rq.Density.from_array("abc"),
        TypeError,
        r"density must be a numeric array, got str",
    ),
    (
        "density-grid-mismatch",
        lambda t: rq.Density.from_array(D16, rq.Grid((3, 3))),
        ValueError,
        r"grid has shape \(3, 3\) but density has shape \(16, 16\)",
    ),
    (
        "assign-density-complex",
        lambda t: rq.assign_cells(D16 * 1j, PTS2),
        TypeError,
        r"density must be real numbers, got a complex array",
    ),
    (
        "assign-density-none",
        lambda t: rq.assign_cells(None, PTS2),
        TypeError,
        r"density must be a rasterquant Density.*got NoneType",
    ),
    (
        "assign-density-scalar",
        lambda t: rq.assign_cells(3.0, PTS2),
        TypeError,
        r"density must be a rasterquant Density.*got float",
    ),
    (
        "solve-one-pixel-two-points",
        lambda t: rq.solve_ot(np.ones((1, 1)), [[0.2, 0.2], [0.7, 0.7]]),
        ValueError,
        r"N = 2 points but the density has only 1 positive pixels",
    ),
    # files
    (
        "read-truncated-png",
        lambda t: rq.read_density(make_file(t, "truncated.png")),
        ValueError,
        r"cannot read image '.*truncated\.png': .*truncated",
    ),
    (
        "read-header-only-png",
        lambda t: rq.read_density(make_file(t, "header-only.png")),
        ValueError,
        r"cannot read image '.*header-only\.png'",
    ),
    (
        "read-corrupt-png",
        lambda t: rq.read_density(make_file(t, "corrupt.png")),
        ValueError,
        r"cannot read image '.*corrupt\.png': not a recognised image",
    ),
    (
        "read-corrupt-jpg",
        lambda t: rq.read_density(make_file(t, "corrupt.jpg")),
        ValueError,
        r"cannot read image '.*corrupt\.jpg'.*expected a valid PNG",
    ),
    (
        "read-corrupt-tif",
        lambda t: rq.read_density(make_file(t, "corrupt.tif")),
        ValueError,
        r"cannot read image '.*corrupt\.tif'",
    ),
    (
        "read-empty-file",
        lambda t: rq.read_density(make_file(t, "empty.png")),
        ValueError,
        r"image file '.*empty\.png' is empty \(0 bytes\)",
    ),
    (
        "read-white-image",
        lambda t: rq.read_density(make_file(t, "white.png")),
        ValueError,
        r"white\.png: the image gives zero density everywhere",
    ),
    (
        "read-directory",
        lambda t: rq.read_density(make_file(t, "dir.png")),
        ValueError,
        r"density path '.*dir\.png' is a directory; expected a file",
    ),
    (
        "read-missing",
        lambda t: rq.read_density(make_file(t, "missing.png")),
        ValueError,
        r"density file '.*missing\.png' does not exist",
    ),
    (
        "read-unsupported-format",
        lambda t: rq.read_density(make_file(t, "density.txt")),
        ValueError,
        r"unsupported format '\.txt'; expected one of \.npy",
    ),
    (
        "read-no-suffix",
        lambda t: rq.read_density(make_file(t, "noext")),
        ValueError,
        r"unsupported format '\(no suffix\)'",
    ),
    (
        "read-npy-nan",
        lambda t: rq.read_density(make_file(t, "nan.npy")),
        ValueError,
        r"density contains 64 NaN or inf values",
    ),
    (
        "read-npy-negative",
        lambda t: rq.read_density(make_file(t, "neg.npy")),
        ValueError,
        r"density contains negative values",
    ),
    (
        "read-npy-zero",
        lambda t: rq.read_density(make_file(t, "zero.npy")),
        ValueError,
        r"density is zero everywhere",
    ),
    (
        "read-npy-4d",
        lambda t: rq.read_density(make_file(t, "4d.npy")),
        ValueError,
        r"array file '.*4d\.npy' has shape \(2, 2, 2, 2\) \(4D\); expected 2D",
    ),
    (
        "read-npy-1d",
        lambda t: rq.read_density(make_file(t, "1d.npy")),
        ValueError,
        r"has shape \(8,\) \(1D\); expected 2D or 3D",
    ),
    (
        "read-npy-empty",
        lambda t: rq.read_density(make_file(t, "empty.npy")),
        ValueError,
        r"density is empty",
    ),
    (
        "read-npy-strings",
        lambda t: rq.read_density(make_file(t, "strings.npy")),
        ValueError,
        r"has dtype <U1; expected numbers",
    ),
    (
        "read-npy-complex",
        lambda t: rq.read_density(make_file(t, "complex.npy")),
        ValueError,
        r"has complex dtype complex128; expected real",
    ),
    (
        "read-npy-truncated",
        lambda t: rq.read_density(make_file(t, "truncated.npy")),
        ValueError,
        r"cannot read array file '.*truncated\.npy'",
    ),
    # points
    (
        "points-nan",
        lambda t: rq.assign_cells(D16, [[1.0, 2.0], [NAN, 3.0]]),
        ValueError,
        r"points contains NaN or inf in 1 rows \(first: row 1\)",
    ),
    (
        "points-inf-solve",
        lambda t: rq.solve_ot(D16, [[1.0, 2.0], [INF, 3.0]]),
        ValueError,
        r"points contains NaN or inf",
    ),
    (
        "points-outside",
        lambda t: rq.assign_cells(D16, [[1.0, 2.0], [3.0, 16.5]]),
        ValueError,
        r"points\[1\] = \[3\.0, 16\.5\] lies outside the grid on axis 1: "
        r"expected points inside \[0\.0, 16\.0\]",
    ),
    (
        "points-negative-coord",
        lambda t: rq.lloyd(D16, [[-0.1, 2.0], [3.0, 4.0]]),
        ValueError,
        r"points\[0\] .* outside the grid on axis 0",
    ),
    (
        "points-periodic-wrapped",
        lambda t: rq.assign_cells(_periodic(), [[17.0, 3.0]]),
        ValueError,
        r"expected points wrapped into \[0\.0, 16\.0\]",
    ),
    (
        "points-periodic-dup-after-wrap",
        lambda t: rq.assign_cells(_periodic(), [[16.0, 16.0], [0.0, 0.0]]),
        ValueError,
        r"points has duplicate points: rows \[0, 1\]",
    ),
    (
        "points-duplicate",
        lambda t: rq.solve_ot(D16, [[1.0, 2.0], [5, 5], [1.0, 2.0]]),
        ValueError,
        r"duplicate points: rows \[0, 2\] are all at \[1\.0, 2\.0\]; "
        r"expected distinct",
    ),
    (
        "points-n0",
        lambda t: rq.assign_cells(D16, np.zeros((0, 2))),
        ValueError,
        r"points is empty \(N = 0\); expected at least 1 point",
    ),
    (
        "points-n0-lloyd",
        lambda t: rq.lloyd(D16, np.zeros((0, 2))),
        ValueError,
        r"points is empty \(N = 0\)",
    ),
    (
        "points-wrong-dim",
        lambda t: rq.assign_cells(D16, [[1.0, 2.0, 3.0]]),
        ValueError,
        r"points must have shape \(N, 2\) for a 2D grid, got \(1, 3\)",
    ),
    (
        "points-2d-on-3d",
        lambda t: rq.solve_ot(np.ones((4, 4, 4)), [[1.0, 2.0]]),
        ValueError,
        r"points must have shape \(N, 3\) for a 3D grid, got \(1, 2\)",
    ),
    (
        "points-flat",
        lambda t: rq.assign_cells(D16, [1.0, 2.0]),
        ValueError,
        r"points must have shape \(N, 2\) .* got \(2,\)",
    ),
    (
        "points-none",
        lambda t: rq.assign_cells(D16, None),
        TypeError,
        r"points must be a numeric \(N, 2\) array, got None",
    ),
    (
        "points-strings",
        lambda t: rq.assign_cells(D16, [["a", "b"]]),
        TypeError,
        r"points must be a numeric \(N, 2\) array",
    ),
    (
        "points-complex",
        lambda t: rq.assign_cells(D16, np.array([[1 + 1j, 2.0]])),
        TypeError,
        r"points must be real numbers, got a complex array",
    ),
    (
        "points-too-many",
        lambda t: rq.solve_ot(np.eye(4), rq.Grid((4, 4)).pixel_centres()[:5]),
        ValueError,
        r"N = 5 points but the density has only 4 positive pixels; "
        r"expected N <= positive pixels",
    ),
    (
        "points-too-many-lloyd",
        lambda t: rq.lloyd(np.eye(4), rq.Grid((4, 4)).pixel_centres()[:5]),
        ValueError,
        r"only 4 positive pixels",
    ),
    # weights
    (
        "weights-length",
        lambda t: rq.assign_cells(D16, PTS2, [1.0]),
        ValueError,
        r"weights must have shape \(2,\) \(one per point\), got \(1,\)",
    ),
    (
        "weights-nan",
        lambda t: rq.assign_cells(D16, PTS2, [1.0, NAN]),
        ValueError,
        r"weights\[1\] = nan; expected finite",
    ),
    (
        "weights-huge",
        lambda t: rq.assign_cells(D16, PTS2, [1.7e308, -1.7e308]),
        ValueError,
        r"weights\[0\] = 1\.7e\+308; expected \|weight\| <= 1e\+150",
    ),
    (
        "weights-solve-start",
        lambda t: rq.solve_ot(D16, PTS2, weights=[0.0, 0.0, 0.0]),
        ValueError,
        r"weights must have shape \(2,\)",
    ),
    # masses
    (
        "masses-negative",
        lambda t: rq.solve_ot(D16, PTS2, masses=[-0.5, 1.5]),
        ValueError,
        r"masses\[0\] = -0\.5; expected every mass > 0",
    ),
    (
        "masses-zero",
        lambda t: rq.solve_ot(D16, PTS2, masses=[0.0, 1.0]),
        ValueError,
        r"masses\[0\] = 0; expected every mass > 0",
    ),
    (
        "masses-sum",
        lambda t: rq.solve_ot(D16, PTS2, masses=[0.3, 0.3]),
        ValueError,
        r"masses sum to 0\.6; expected 1 \(within 1e-9\), or pass "
        r"normalize=True",
    ),
    (
        "masses-sum-slightly",
        lambda t: rq.solve_ot(D16, PTS2, masses=[0.5, 0.5 + 1e-7]),
        ValueError,
        r"masses sum to 1\.0000001; expected 1",
    ),
    (
        "masses-length",
        lambda t: rq.solve_ot(D16, PTS2, masses=[1.0]),
        ValueError,
        r"masses must have shape \(2,\) \(one per point\), got \(1,\)",
    ),
    (
        "masses-nan",
        lambda t: rq.solve_ot(D16, PTS2, masses=[NAN, 0.5]),
        ValueError,
        r"masses\[0\] = nan; expected finite masses > 0",
    ),
    (
        "masses-lloyd-sum",
        lambda t: rq.lloyd(D16, PTS2, masses=[0.2, 0.2]),
        ValueError,
        r"masses sum to 0\.4",
    ),
    (
        "masses-strings",
        lambda t: rq.solve_ot(D16, PTS2, masses="ab"),
        TypeError,
        r"masses must be a numeric \(N,\) array, got str",
    ),
    # options
    (
        "solve-tol-zero",
        lambda t: rq.solve_ot(D16, PTS2, tol=0),
        ValueError,
        r"tol must be in \(0, 1\), got 0",
    ),
    (
        "solve-tol-negative",
        lambda t: rq.solve_ot(D16, PTS2, tol=-0.1),
        ValueError,
        r"tol must be in \(0, 1\), got -0\.1",
    ),
    (
        "solve-tol-nan",
        lambda t: rq.solve_ot(D16, PTS2, tol=NAN),
        ValueError,
        r"tol must be in \(0, 1\), got nan",
    ),
    (
        "solve-tol-str",
        lambda t: rq.solve_ot(D16, PTS2, tol="0.1"),
        TypeError,
        r"tol must be a number, got str",
    ),
    (
        "solve-max-iter-negative",
        lambda t: rq.solve_ot(D16, PTS2, max_iter=-1),
        ValueError,
        r"max_iter must be >= 0, got -1",
    ),
    (
        "solve-max-iter-float",
        lambda t: rq.solve_ot(D16, PTS2, max_iter=2.5),
        TypeError,
        r"max_iter must be an integer, got float",
    ),
    (
        "solve-linear-solver",
        lambda t: rq.solve_ot(D16, PTS2, linear_solver="lu"),
        ValueError,
        r"'auto', 'direct' or 'cg', got 'lu'",
    ),
    (
        "lloyd-method",
        lambda t: rq.lloyd(D16, PTS2, method="kmeans"),
        ValueError,
        r"method must be one of \('uniform', 'voronoi'\), got 'kmeans'",
    ),
    (
        "lloyd-n-iter-negative",
        lambda t: rq.lloyd(D16, PTS2, n_iter=-3),
        ValueError,
        r"n_iter must be >= 0, got -3",
    ),
    (
        "lloyd-step-zero",
        lambda t: rq.lloyd(D16, PTS2, step=0.0),
        ValueError,
        r"step must be in \(0, 1\], got 0\.0",
    ),
    (
        "lloyd-step-large",
        lambda t: rq.lloyd(D16, PTS2, step=1.5),
        ValueError,
        r"step must be in \(0, 1\], got 1\.5",
    ),
    (
        "lloyd-tol-negative",
        lambda t: rq.lloyd(D16, PTS2, tol=-1.0),
        ValueError,
        r"tol must be a displacement >= 0 or None, got -1\.0",
    ),
    (
        "lloyd-ot-tol",
        lambda t: rq.lloyd(D16, PTS2, ot_tol=2.0),
        ValueError,
        r"ot_tol must be in \(0, 1\), got 2\.0",
    ),
    (
        "sample-n-negative",
        lambda t: rq.sample_points(_density(), -1),
        ValueError,
        r"n must be >= 1, got -1",
    ),
    (
        "sample-n-zero",
        lambda t: rq.sample_points(_density(), 0),
        ValueError,
        r"n must be >= 1, got 0",
    ),
    (
        "sample-n-float",
        lambda t: rq.sample_points(_density(), 2.5),
        TypeError,
        r"n must be an integer number of points, got 2\.5",
    ),
    (
        "sample-method",
        lambda t: rq.sample_points(_density(), 3, method="sobol"),
        ValueError,
        r"method must be one of 'uniform', .* got 'sobol'",
    ),
    (
        "sample-array",
        lambda t: rq.sample_points(D16, 3),
        TypeError,
        r"density_or_grid must be a rasterquant Density or Grid, got ndarray",
    ),
    (
        "sample-grid-n",
        lambda t: rq.sample_points(_density(), 5, method="grid"),
        ValueError,
        r"needs n = k\*\*2 \(a perfect square\).* got n = 5",
    ),
    (
        "grid-spacing-zero",
        lambda t: rq.Grid((4, 4), spacing=0.0),
        ValueError,
        r"spacing must be > 0 on every axis, got 0\.0",
    ),
    (
        "grid-spacing-negative",
        lambda t: rq.Grid((4, 4), spacing=(1.0, -1.0)),
        ValueError,
        r"spacing must be > 0 on every axis, got \(1\.0, -1\.0\)",
    ),
    (
        "grid-spacing-nan",
        lambda t: rq.Grid((4, 4), spacing=NAN),
        ValueError,
        r"spacing must be finite, got nan",
    ),
    (
        "grid-spacing-length",
        lambda t: rq.Grid((4, 4), spacing=(1, 2, 3)),
        ValueError,
        r"spacing must be a scalar or a sequence of 2 numbers",
    ),
    (
        "grid-shape-4d",
        lambda t: rq.Grid((2, 2, 2, 2)),
        ValueError,
        r"shape must have 2 or 3 axes .* got \(2, 2, 2, 2\)",
    ),
    (
        "grid-shape-zero",
        lambda t: rq.Grid((0, 4)),
        ValueError,
        r"shape must be positive on every axis, got \(0, 4\)",
    ),
    (
        "grid-shape-int",
        lambda t: rq.Grid(5),
        ValueError,
        r"shape must be a tuple \(H, W\) or \(D, H, W\), got the integer 5",
    ),
    (
        "grid-periodic-length",
        lambda t: rq.Grid((4, 4), periodic=(True,)),
        ValueError,
        r"periodic must be a bool or 2 bools",
    ),
    (
        "grid-origin-inf",
        lambda t: rq.Grid((4, 4), origin=INF),
        ValueError,
        r"origin must be finite, got inf",
    ),
    (
        "uniform-extent",
        lambda t: rq.Density.uniform((4, 4), extent=[(0, 1), (2, 1)]),
        ValueError,
        r"extent must have hi > lo on every axis",
    ),
    (
        "from-array-spacing-zero",
        lambda t: rq.Density.from_array(D16, spacing=0),
        ValueError,
        r"spacing must be > 0",
    ),
    # memory
    (
        "memory-huge-raster",
        lambda t: _validation.check_memory(
            rq.Density.uniform((100000, 100000)).grid.n_pixels, 1000, uniform=True
        ),
        InsufficientMemoryError,
        r"needs about .*GiB \(10,000,000,000 pixels x N = 1,000 "
        r"points\) but only .* available",
    ),
]


def _check_one_line(message):
    assert "\n" not in message.strip(), f"error message is not one line: {message!r}"


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [pytest.param(c, e, m, id=i) for i, c, e, m in API_CASES],
)
def test_api_bad_input(tmp_path, call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call(tmp_path)
    _check_one_line(str(info.value))


def test_table_is_large_enough():
    assert len(API_CASES) >= 30
    assert len(CLI_CASES) >= 15


def test_api_never_modifies_user_arrays():
    density = np.ones((8, 8))
    points = np.array([[1.0, 2.0], [6.0, 5.0]])
    weights = np.array([0.5, -0.5])
    copies = density.copy(), points.copy(), weights.copy()
    rq.assign_cells(density, points, weights)
    rq.solve_ot(density, points, weights=weights, tol=0.1)
    for a, b in zip((density, points, weights), copies, strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------- edge inputs that work


def test_one_point_solve_ot_is_one_cell_of_mass_one():
    res = rq.solve_ot(np.random.default_rng(0).random((12, 9)) + 0.1, [[3.0, 4.0]])
    assert res.converged
    assert res.status == "converged"
    np.testing.assert_allclose(res.masses, [1.0], rtol=1e-12)
    np.testing.assert_array_equal(res.weights, [0.0])
    assert res.cells.labels.shape == (12, 9)
    assert (res.cells.labels == 0).all()


def test_one_pixel_density_with_one_point():
    res = rq.solve_ot(np.ones((1, 1)), [[0.5, 0.5]])
    assert res.converged
    np.testing.assert_allclose(res.masses, [1.0], rtol=1e-12)
    out = rq.lloyd(np.ones((1, 1)), [[0.2, 0.7]], n_iter=2)
    np.testing.assert_allclose(out.points, [[0.5, 0.5]], rtol=0, atol=1e-12)


def test_points_on_the_far_boundary_are_inside():
    cells = rq.assign_cells(D16, [[16.0, 16.0], [0.0, 0.0]])
    np.testing.assert_allclose(cells.masses.sum(), 1.0, rtol=1e-12)


def test_periodic_point_on_the_far_boundary_is_wrapped():
    cells = rq.assign_cells(_periodic(), [[16.0, 3.0], [8.0, 8.0]])
    np.testing.assert_array_equal(cells.points[0], [0.0, 3.0])


def test_n_equal_to_positive_pixels_works():
    centres = rq.Grid((4, 4)).pixel_centres()[[0, 5, 10, 15]]
    res = rq.solve_ot(np.eye(4), centres)
    assert res.converged
    np.testing.assert_allclose(res.masses, 0.25, rtol=1e-12)


def test_memory_check_accepts_small_problems():
    need = _validation.check_memory(512 * 512, 1000)
    assert need == 512 * 512 * (4 + 8) + rq._config.N_CHUNKS * 1000 * 40


def test_memory_check_uses_available_memory(monkeypatch):
    monkeypatch.setattr(_validation, "available_memory", lambda: 10 * 2**20)
    with pytest.raises(InsufficientMemoryError, match=r"needs about 9\.\d+ MiB"):
        _validation.check_memory(800_000, 10)  # 9.6 MB > 80% of 10 MiB
    with pytest.raises(MemoryError):
        _validation.check_memory(800_000, 10)
    _validation.check_memory(100_000, 10)
    monkeypatch.setattr(_validation, "available_memory", lambda: None)
    _validation.check_memory(10**12, 10)  # unknown: no refusal


def test_available_memory_is_plausible():
    avail = _validation.available_memory()
    assert avail is None or 2**20 < avail < 2**60


@pytest.mark.parametrize("entry", ["assign_cells", "solve_ot", "lloyd"])
def test_entry_points_refuse_problems_that_do_not_fit(monkeypatch, entry):
    # 2048 x 2048 needs > 16 MiB; pretend only 8 MiB is available. If the check is not
    # wired in, the call just runs (16 MiB of labels, harmless).
    monkeypatch.setattr(_validation, "available_memory", lambda: 8 * 2**20)
    density = rq.Density.uniform((2048, 2048))
    with pytest.raises(InsufficientMemoryError, match="needs about"):
        getattr(rq, entry)(
            density,
            [[100.0, 100.0], [1500.0, 1000.0]],
            **({"n_iter": 0} if entry == "lloyd" else {}),
        )


# Gaps found by this table (issue-6 report), fixed in the modules that own them.
KNOWN_GAPS = [
    (
        "from-array-complex",
        lambda: rq.Density.from_array(np.ones((3, 3)) * 1j),
        TypeError,
        r"density must be real",
    ),
    (
        "solve-callback-not-callable",
        lambda: rq.solve_ot(D16, PTS2, callback=5),
        TypeError,
        r"callback must be callable",
    ),
    (
        "lloyd-callback-not-callable",
        lambda: rq.lloyd(D16, PTS2, callback="x"),
        TypeError,
        r"callback must be callable",
    ),
    (
        "sample-seed-str",
        lambda: rq.sample_points(_density(), 3, seed="x"),
        TypeError,
        r"seed must be",
    ),
    (
        "grid-shape-float",
        lambda: rq.Grid((2.5, 4)),
        ValueError,
        r"shape must be .*integers",
    ),
    (
        "lloyd-masses-with-voronoi",
        lambda: rq.lloyd(D16, PTS2, method="voronoi", masses=[0.2, 0.8], n_iter=1),
        ValueError,
        r"masses only apply to method='uniform'",
    ),
    (
        "sample-seed-negative",
        lambda: rq.sample_points(_density(), 3, seed=-1),
        ValueError,
        r"seed must be an int >= 0, got -1",
    ),
    (
        "lloyd-step-str",
        lambda: rq.lloyd(D16, PTS2, step="0.5"),
        TypeError,
        r"step must be a number, got str",
    ),
    (
        "read-density-int-path",
        lambda: rq.read_density(3),
        TypeError,
        r"path must be a str, bytes or os\.PathLike file name, got int",
    ),
    (
        "read-density-none-path",
        lambda: rq.read_density(None),
        TypeError,
        r"path must be .* got NoneType",
    ),
    (
        "grid-shape-float-integral",
        lambda: rq.Grid((4.0, 4)),
        ValueError,
        r"shape must be a tuple of 2 or 3 positive integers",
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "match"), [pytest.param(c, e, m, id=i) for i, c, e, m in KNOWN_GAPS]
)
def test_known_gap(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_huge_but_finite_density_values_work():
    d = rq.Density.from_array(np.full((3, 3), 1e308))
    np.testing.assert_allclose(d.values, 1 / 9, rtol=1e-12)
    d = rq.Density.from_array([[1e308, 1e308], [0.0, 5e307]])
    np.testing.assert_allclose(d.values, [[0.4, 0.4], [0.0, 0.2]], rtol=1e-12)


def test_lloyd_accepts_numpy_scalars():
    res = rq.lloyd(
        D16, PTS2, step=np.float32(0.5), tol=np.float64(0.0), n_iter=1, method="voronoi"
    )
    assert res.n_iter == 1


def test_read_density_accepts_bytes_and_pathlike_paths(tmp_path):
    import pathlib

    src = make_file(tmp_path, "good.npy")
    expected = rq.read_density(src).values
    for path in (os.fsencode(src), pathlib.Path(src)):
        np.testing.assert_array_equal(rq.read_density(path).values, expected)


# -------------------------------------------------------------------------- CLI table


def _cli_input(tmp_path, kind):
    return make_file(tmp_path, kind)


# (id, argv builder (tmp_path -> list), expected exit code, stderr regex)
CLI_CASES = [
    (
        "missing-input",
        lambda t: [_cli_input(t, "missing.png"), "-n", "5"],
        1,
        r"error: density file '.*missing\.png' does not exist",
    ),
    (
        "directory-input",
        lambda t: [_cli_input(t, "dir.png"), "-n", "5"],
        1,
        r"error: density path '.*dir\.png' is a directory; expected a file",
    ),
    (
        "truncated-png",
        lambda t: [_cli_input(t, "truncated.png"), "-n", "5"],
        1,
        r"error: cannot read image '.*truncated\.png': .*truncated",
    ),
    (
        "corrupt-png",
        lambda t: [_cli_input(t, "corrupt.png"), "-n", "5"],
        1,
        r"error: cannot read image '.*corrupt\.png'",
    ),
    (
        "empty-file",
        lambda t: [_cli_input(t, "empty.png"), "-n", "5"],
        1,
        r"error: image file '.*empty\.png' is empty \(0 bytes\)",
    ),
    (
        "unsupported-format",
        lambda t: [_cli_input(t, "density.txt"), "-n", "5"],
        1,
        r"error: density file .* unsupported format '\.txt'",
    ),
    (
        "white-image",
        lambda t: [_cli_input(t, "white.png"), "-n", "5"],
        1,
        r"error: .*white\.png: the image gives zero density everywhere",
    ),
    (
        "nan-npy",
        lambda t: [_cli_input(t, "nan.npy"), "-n", "5"],
        1,
        r"error: density contains 64 NaN or inf values",
    ),
    (
        "4d-npy",
        lambda t: [_cli_input(t, "4d.npy"), "-n", "5"],
        1,
        r"error: array file .* \(4D\); expected 2D or 3D",
    ),
    (
        "negative-npy",
        lambda t: [_cli_input(t, "neg.npy"), "-n", "5"],
        1,
        r"error: density contains negative values",
    ),
    (
        "n-too-large",
        lambda t: [_cli_input(t, "good.npy"), "-n", "5000"],
        1,
        r"error: -n 5000 points but .* has only 1024 positive pixels",
    ),
    (
        "one-pixel-two-points",
        lambda t: [_cli_input(t, "one-pixel.png"), "-n", "2"],
        1,
        r"error: -n 2 points but .* has only 1 positive pixels",
    ),
    (
        "floor-out-of-range",
        lambda t: [_cli_input(t, "good.png"), "-n", "5", "--floor", "2"],
        2,
        r"argument --floor: expected a number in \[0, 1\), got 2",
    ),
    (
        "step-too-large",
        lambda t: [_cli_input(t, "good.npy"), "-n", "5", "--step", "2"],
        2,
        r"argument --step: expected a step in \(0, 1\], got 2",
    ),
    (
        "n-zero",
        lambda t: [_cli_input(t, "good.npy"), "-n", "0"],
        2,
        r"argument -n/--n-points: expected an integer >= 1, got 0",
    ),
    (
        "n-negative",
        lambda t: [_cli_input(t, "good.npy"), "-n", "-4"],
        2,
        r"argument -n/--n-points: expected an integer >= 1, got -4",
    ),
    (
        "n-not-int",
        lambda t: [_cli_input(t, "good.npy"), "-n", "ten"],
        2,
        r"argument -n/--n-points: expected an integer, got 'ten'",
    ),
    (
        "tol-zero",
        lambda t: [_cli_input(t, "good.npy"), "-n", "5", "--tol", "0"],
        2,
        r"argument --tol: expected a number > 0, got 0",
    ),
    (
        "tol-one",
        lambda t: [_cli_input(t, "good.npy"), "-n", "5", "--tol", "1.5"],
        2,
        r"argument --tol: expected a tolerance in \(0, 1\), got 1\.5",
    ),
    (
        "iterations-negative",
        lambda t: [_cli_input(t, "good.npy"), "-n", "5", "--iterations", "-1"],
        2,
        r"argument --iterations: expected an integer >= 0, got -1",
    ),
    (
        "unknown-method",
        lambda t: [_cli_input(t, "good.npy"), "-n", "5", "--method", "kmeans"],
        2,
        r"argument --method: invalid choice: 'kmeans'",
    ),
    (
        "unknown-init",
        lambda t: [_cli_input(t, "good.npy"), "-n", "5", "--init", "sobol"],
        2,
        r"argument --init: invalid choice: 'sobol'",
    ),
    (
        "gamma-negative",
        lambda t: [_cli_input(t, "good.npy"), "-n", "5", "--gamma", "-1"],
        2,
        r"argument --gamma: expected a number > 0, got -1",
    ),
    (
        "threads-zero",
        lambda t: [_cli_input(t, "good.npy"), "-n", "5", "--threads", "0"],
        2,
        r"argument --threads: expected an integer >= 1, got 0",
    ),
    (
        "output-missing-dir",
        lambda t: [_cli_input(t, "good.npy"), "-n", "5", "-o", str(t / "no" / "p.csv")],
        1,
        r"error: output directory '.*no' does not exist; create it",
    ),
    (
        "output-is-directory",
        lambda t: [_cli_input(t, "good.npy"), "-n", "5", "-o", str(t)],
        1,
        r"error: output .* has an unsupported suffix|error: output path .* is a "
        r"directory",
    ),
    (
        "output-bad-suffix",
        lambda t: [_cli_input(t, "good.npy"), "-n", "5", "-o", str(t / "p.png")],
        1,
        r"error: output '.*p\.png' has an unsupported suffix; expected one of \.csv",
    ),
    (
        "output-twice",
        lambda t: [
            _cli_input(t, "good.npy"),
            "-n",
            "5",
            "-o",
            str(t / "p.csv"),
            "-o",
            str(t / "p.csv"),
        ],
        1,
        r"error: output '.*p\.csv' is given twice",
    ),
]


def _run_cli(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _with_output(argv, tmp_path):
    argv = ["quantize", *argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out" / "p.csv")]
        (tmp_path / "out").mkdir(exist_ok=True)
    return [*argv, "--quiet", "--iterations", "1"]


@pytest.mark.parametrize(
    ("build", "code", "match"),
    [pytest.param(b, c, m, id=i) for i, b, c, m in CLI_CASES],
)
def test_cli_bad_input(tmp_path, capsys, build, code, match):
    argv = _with_output(build(tmp_path), tmp_path)
    got, _out, err = _run_cli(argv, capsys)
    assert got == code, err
    assert "Traceback" not in err
    import re

    assert re.search(match, err), err
    if code == 1:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
    # nothing was written
    out_dir = tmp_path / "out"
    if out_dir.exists():
        assert sorted(os.listdir(out_dir)) == []


@pytest.mark.parametrize(
    "build",
    [pytest.param(b, id=i) for i, b, c, m in CLI_CASES if c == 1][:10],
)
def test_cli_debug_lets_the_exception_propagate(tmp_path, capsys, build):
    argv = [*_with_output(build(tmp_path), tmp_path), "--debug"]
    with pytest.raises((ValueError, OSError)):
        main(argv)


def test_cli_output_exists_without_force(tmp_path, capsys):
    src = make_file(tmp_path, "good.npy")
    out = tmp_path / "p.csv"
    out.write_text("precious\n")
    code, _, err = _run_cli(
        ["quantize", src, "-n", "5", "-o", str(out), "--quiet"], capsys
    )
    assert code == 1
    assert re_search(r"error: output file '.*p\.csv' already exists; pass --force", err)
    assert out.read_text() == "precious\n"
    assert not (tmp_path / "p.csv.json").exists()


def test_cli_existing_sidecar_without_force(tmp_path, capsys):
    src = make_file(tmp_path, "good.npy")
    (tmp_path / "p.csv.json").write_text("{}")
    code, _, err = _run_cli(
        ["quantize", src, "-n", "5", "-o", str(tmp_path / "p.csv"), "--quiet"], capsys
    )
    assert code == 1
    assert "p.csv.json' already exists; pass --force" in err
    assert not (tmp_path / "p.csv").exists()


def test_cli_force_overwrites(tmp_path, capsys):
    src = make_file(tmp_path, "good.npy")
    out = tmp_path / "p.csv"
    out.write_text("old\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, _, err = _run_cli(
            [
                "quantize",
                src,
                "-n",
                "4",
                "-o",
                str(out),
                "--quiet",
                "--force",
                "--iterations",
                "1",
                "--method",
                "voronoi",
            ],
            capsys,
        )
    assert code == 0, err
    assert out.read_text().startswith("row,col,")


def test_cli_read_only_output_directory(tmp_path, capsys, monkeypatch):
    src = make_file(tmp_path, "good.npy")
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:  # root ignores permission bits: pretend the check fails
        real_access = os.access

        def access(path, mode, *args, **kwargs):
            if os.path.abspath(path) == str(ro) and mode & os.W_OK:
                return False
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    else:
        ro.chmod(0o555)
    try:
        code, _, err = _run_cli(
            ["quantize", src, "-n", "5", "-o", str(ro / "p.csv"), "--quiet"], capsys
        )
    finally:
        ro.chmod(0o755)
    assert code == 1
    assert re_search(r"error: output directory '.*ro' is not writable", err)
    assert os.listdir(ro) == []


def test_cli_one_pixel_image_one_point(tmp_path, capsys):
    src = make_file(tmp_path, "one-pixel.png")
    code, _, err = _run_cli(
        [
            "quantize",
            src,
            "-n",
            "1",
            "-o",
            str(tmp_path / "p.npy"),
            "--quiet",
            "--iterations",
            "2",
        ],
        capsys,
    )
    assert code == 0, err
    table = np.load(tmp_path / "p.npy")
    np.testing.assert_allclose(table[:, :2], [[0.5, 0.5]], rtol=0, atol=1e-12)


def test_cli_internal_error_is_one_line(tmp_path, capsys, monkeypatch):
    import sys

    lloyd_mod = sys.modules["rasterquant.lloyd"]

    def boom(*args, **kwargs):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr(lloyd_mod, "lloyd", boom)
    src = make_file(tmp_path, "good.npy")
    argv = ["quantize", src, "-n", "5", "-o", str(tmp_path / "p.csv"), "--quiet"]
    code, _, err = _run_cli(argv, capsys)
    assert code == 1
    assert "Traceback" not in err
    assert "internal error: ZeroDivisionError: simulated bug" in err
    with pytest.raises(ZeroDivisionError):
        main([*argv, "--debug"])


def re_search(pattern, text):
    import re

    return re.search(pattern, text) is not None


# ------------------------------------------------------------------------ hypothesis

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Derandomized (the same examples in every run and in CI) and without the shrink
# phase, which can take minutes per failure on these inputs: the failing example is
# still printed.
_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# hypothesis' failure report imports a module that raises a DeprecationWarning, which
# filterwarnings=error would turn into an INTERNALERROR hiding the real failure
_quiet_report = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)


def _solve_or_empty(call):
    """Run ``call``; an EmptyCellError (no power diagram gives every cell mass on this
    raster, e.g. points separated only across a 1-pixel-thin raster) is a clean,
    documented outcome: it must be one line and carry the last weights."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rq.RasterquantWarning)
            return call()
    except rq.EmptyCellError as exc:
        _check_one_line(str(exc))
        assert exc.weights is not None and exc.empty is not None
        return None


@st.composite
def problems(draw, max_points=6):
    """A valid (density Density, points, weights) with N <= positive pixels."""
    ndim = draw(st.sampled_from([2, 2, 3]))
    side = st.integers(1, 10) if ndim == 2 else st.integers(1, 5)
    shape = tuple(draw(side) for _ in range(ndim))
    n_pix = int(np.prod(shape))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = rng.random(shape)
    zero_fraction = draw(st.sampled_from([0.0, 0.0, 0.3, 0.8]))
    values[rng.random(shape) < zero_fraction] = 0.0
    if not (values > 0).any():
        values.flat[rng.integers(n_pix)] = 1.0
    spacing = draw(st.sampled_from([1.0, 0.5, 2.0]))
    periodic = draw(st.booleans())
    density = rq.Density.from_array(values, spacing=spacing, periodic=periodic)
    npos = density.n_positive()
    n = draw(st.integers(1, min(max_points, npos)))
    lengths = density.grid.lengths
    # points: random positions, some snapped to pixel centres or corners (ties!)
    pts = rng.random((n, ndim)) * lengths
    if draw(st.booleans()):
        k = rng.integers(0, 2, size=(n, ndim)) * 0.5
        pts = np.floor(pts / spacing) * spacing + k * spacing
        pts = np.minimum(pts, lengths)
    pts = np.unique(density.grid.wrap(pts) if periodic else pts, axis=0)
    weights = None
    if draw(st.booleans()):
        weights = rng.normal(scale=float(lengths.max()), size=len(pts))
    return density, pts, weights


def _assert_labels_exact(density, points, weights, labels):
    """Kernel labels == brute force argmin, except at exact (rounding-level) ties."""
    grid = density.grid
    psi = np.zeros(len(points)) if weights is None else np.asarray(weights)
    ref = reference.assign_labels(grid, points, psi)
    assert labels.shape == grid.shape
    assert labels.dtype == np.int32
    diff = labels != ref
    if not diff.any():
        return
    centres = grid.pixel_centres()[diff.ravel()]
    d = centres[:, None, :] - points[None, :, :]
    d = grid.min_image(d)
    cost = (d**2).sum(axis=2) - psi[None, :]
    best = cost.min(axis=1)
    scale = 1.0 + np.abs(cost).max(axis=1)
    got = cost[np.arange(len(cost)), labels[diff]]
    np.testing.assert_array_less(got - best, 1e-9 * scale + 1e-300)


@_quiet_report
@_SETTINGS
@given(problems())
def test_hypothesis_assign_cells_valid_is_exact(problem):
    density, pts, weights = problem
    cells = rq.assign_cells(density, pts, weights)
    _assert_labels_exact(density, pts, weights, cells.labels)
    assert cells.masses.shape == (len(pts),)
    assert cells.barycenters.shape == pts.shape
    np.testing.assert_allclose(cells.masses.sum(), 1.0, rtol=1e-9)


@_quiet_report
@_SETTINGS
@given(problems(max_points=5))
def test_hypothesis_solve_ot_valid(problem):
    density, pts, _ = problem
    res = _solve_or_empty(lambda: rq.solve_ot(density, pts, tol=0.05, max_iter=30))
    if res is None:
        return
    assert res.weights.shape == (len(pts),)
    assert np.isfinite(res.weights).all()
    assert res.n_iter <= 30
    assert res.converged == (res.max_error <= 0.05)
    assert (res.masses > 0).all() or not res.converged
    _assert_labels_exact(density, pts, res.weights, res.cells.labels)


@_quiet_report
@_SETTINGS
@given(problems(max_points=4), st.sampled_from(["uniform", "voronoi"]))
def test_hypothesis_lloyd_valid(problem, method):
    density, pts, _ = problem
    res = _solve_or_empty(
        lambda: rq.lloyd(density, pts, method=method, n_iter=2, ot_tol=0.1)
    )
    if res is None:
        return
    assert res.points.shape == pts.shape
    assert np.isfinite(res.points).all()
    for a, (lo, hi) in enumerate(density.grid.extent):
        assert (res.points[:, a] >= lo).all()
        assert (res.points[:, a] <= hi).all()


_CORRUPTIONS = [
    "density-nan",
    "density-inf",
    "density-negative",
    "density-zero",
    "density-4d",
    "density-1d",
    "density-empty",
    "points-nan",
    "points-outside",
    "points-duplicate",
    "points-dim",
    "points-empty",
    "points-flat",
    "too-many-points",
    "weights-nan",
    "weights-length",
]


def _corrupt(kind, values, pts, weights, rng):
    values = values.copy()
    pts = pts.copy()
    if kind == "density-nan":
        values.flat[rng.integers(values.size)] = np.nan
    elif kind == "density-inf":
        values.flat[rng.integers(values.size)] = np.inf
    elif kind == "density-negative":
        values.flat[rng.integers(values.size)] = -rng.random() - 1e-3
    elif kind == "density-zero":
        values[...] = 0.0
    elif kind == "density-4d":
        values = values[..., None, None] if values.ndim == 3 else values[None, None]
    elif kind == "density-1d":
        values = values.ravel()
    elif kind == "density-empty":
        values = values[:0]
    elif kind == "points-nan":
        pts[rng.integers(len(pts)), rng.integers(pts.shape[1])] = np.nan
    elif kind == "points-outside":
        a = rng.integers(pts.shape[1])
        pts[rng.integers(len(pts)), a] = values.shape[a] * (1.0 + rng.random()) + 0.5
    elif kind == "points-duplicate":
        pts = np.concatenate([pts, pts[:1]])
    elif kind == "points-dim":
        pts = np.concatenate([pts, pts[:, :1]], axis=1)
    elif kind == "points-empty":
        pts = pts[:0]
    elif kind == "points-flat":
        pts = pts.ravel()
    elif kind == "too-many-points":
        values[...] = 0.0
        values.flat[0] = 1.0  # one positive pixel, two points
        pts = np.array([[0.25] * values.ndim, [0.75] * values.ndim])
    elif kind == "weights-nan":
        weights = np.zeros(len(pts))
        weights[0] = np.nan
    elif kind == "weights-length":
        weights = np.zeros(len(pts) + 1)
    return values, pts, weights


@st.composite
def invalid_problems(draw):
    ndim = draw(st.sampled_from([2, 3]))
    shape = tuple(draw(st.integers(2, 6)) for _ in range(ndim))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.random(shape) + 0.01
    n = draw(st.integers(1, 4))
    pts = np.unique(rng.random((n, ndim)) * np.array(shape), axis=0)
    kind = draw(st.sampled_from(_CORRUPTIONS))
    values, pts, weights = _corrupt(kind, values, pts, None, rng)
    return kind, values, pts, weights


@_quiet_report
@_SETTINGS
@given(invalid_problems(), st.sampled_from(["assign_cells", "solve_ot", "lloyd"]))
def test_hypothesis_invalid_inputs_raise_cleanly(problem, entry):
    kind, values, pts, weights = problem
    if entry == "lloyd" and kind.startswith("weights"):
        return  # lloyd takes no weights
    kwargs = {}
    if weights is not None:
        kwargs["weights"] = weights
    if entry == "lloyd":
        kwargs["n_iter"] = 1
    if entry == "assign_cells" and kind == "too-many-points":
        return  # assign_cells allows empty cells
    with pytest.raises((ValueError, TypeError)) as info:
        getattr(rq, entry)(values, pts, **kwargs)
    _check_one_line(str(info.value))
