"""Tests of rasterquant.io: atomic output, points, VTK, Neper tesr, rendering."""

import errno
import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rasterquant.io import atomic as atomic_mod
from rasterquant.io import (
    atomic_write,
    read_points,
    read_tesr,
    read_vti,
    write_points,
    write_tesr,
    write_vti,
)
from rasterquant.io.atomic import (
    atomic_save_npy,
    atomic_write_json,
    atomic_write_text,
    check_output,
)
from rasterquant.io.points import COORDINATE_NAMES, point_columns
from rasterquant.io.render import (
    grain_slices_png,
    render_png,
    write_pdf,
    write_png,
    write_svg,
)


@pytest.fixture
def io_rng():
    return np.random.default_rng(1234)


def _leftovers(directory):
    return [f for f in os.listdir(directory) if ".tmp-" in f]


def _read_png(path):
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


# --------------------------------------------------------------------- atomic


def test_atomic_write_replaces_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as fh:
        fh.write(b"new content")
        # the target is untouched until the block ends
        assert target.read_bytes() == b"old"
        assert len(_leftovers(tmp_path)) == 1
        assert _leftovers(tmp_path)[0].startswith(".out.bin.tmp-")
    assert target.read_bytes() == b"new content"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_atomic_write_exception_removes_temp(tmp_path, exc_type):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(exc_type), atomic_write(target, "w") as fh:
        fh.write("partial")
        raise exc_type("boom")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_atomic_write_exception_on_new_file_creates_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "new.txt", "w") as fh:
        fh.write("partial")
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


class _FullDisk:
    """A file object whose write fails like a full disk."""

    def __init__(self, real):
        self._real = real

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_enospc_removes_temp_and_names_path(tmp_path, monkeypatch):
    real_open = open

    def fake_open(*args, **kwargs):
        return _FullDisk(real_open(*args, **kwargs))

    monkeypatch.setattr(atomic_mod, "open", fake_open, raising=False)
    target = tmp_path / "pts.csv"
    with pytest.raises(OSError, match=r"No space left on device") as info:
        write_points(target, np.ones((3, 2)))
    assert info.value.errno == errno.ENOSPC
    assert str(target) in str(info.value)
    assert os.listdir(tmp_path) == []


def test_fsync_failure_removes_temp_and_names_path(tmp_path, monkeypatch):
    def bad_fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_mod.os, "fsync", bad_fsync)
    target = tmp_path / "a.json"
    with pytest.raises(OSError, match=r"a.json"):
        atomic_write_json(target, {"a": 1})
    assert os.listdir(tmp_path) == []


def test_atomic_write_missing_directory(tmp_path):
    missing = tmp_path / "nope" / "out.txt"
    with pytest.raises(ValueError, match=r"output directory .*nope.* does not exist"):
        atomic_write_text(missing, "x")


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="root ignores directory permissions",
)
def test_atomic_write_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ValueError, match=r"is not writable"):
            atomic_write_text(locked / "out.txt", "x")
    finally:
        locked.chmod(0o700)


def test_atomic_write_bad_mode_and_directory_target(tmp_path):
    with pytest.raises(ValueError, match=r"mode must be 'wb' or 'w', got 'a'"):
        with atomic_write(tmp_path / "x", "a"):
            pass
    with pytest.raises(ValueError, match=r"is a directory"):
        with atomic_write(tmp_path):
            pass


def test_check_output(tmp_path):
    target = tmp_path / "f.txt"
    assert check_output(target, overwrite=False) == str(target)
    target.write_text("x")
    assert check_output(target) == str(target)
    with pytest.raises(ValueError, match=r"already exists; pass overwrite=True"):
        check_output(target, overwrite=False)
    with pytest.raises(ValueError, match=r"does not exist"):
        check_output(tmp_path / "a" / "b.txt")


def test_atomic_helpers_round_trip(tmp_path, io_rng):
    arr = io_rng.random((4, 3))
    atomic_save_npy(tmp_path / "a.npy", arr)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), arr)

    atomic_write_text(tmp_path / "t.txt", "héllo\n")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"

    obj = {
        "b": np.float64(0.1),
        "a": np.int64(3),
        "c": np.arange(3),
        "d": np.bool_(True),
        "e": np.float32(0.5),
    }
    atomic_write_json(tmp_path / "s.json", obj)
    text = (tmp_path / "s.json").read_text()
    assert json.loads(text) == {"a": 3, "b": 0.1, "c": [0, 1, 2], "d": True, "e": 0.5}
    assert text.index('"a"') < text.index('"b"')  # sorted keys
    assert '\n  "a": 3' in text  # indent=2
    with pytest.raises(TypeError, match=r"not JSON serializable"):
        atomic_write_json(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists()
    assert _leftovers(tmp_path) == []


# --------------------------------------------------------------------- points


def _random_points(rng, n, d):
    pts = rng.random((n, d)) * rng.choice([1e-9, 1.0, 1e7], size=(n, d))
    pts[0] = 0.1  # a value without an exact binary representation
    pts[1] = np.nextafter(1.0, 2.0)
    return pts


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("suffix", [".csv", ".npy", ".txt", ".xyz"])
def test_points_round_trip_exact(tmp_path, io_rng, suffix, dim):
    pts = _random_points(io_rng, 50, dim)
    radius, weight = io_rng.random(50), -io_rng.random(50) * 1e-5
    path = tmp_path / f"p{suffix}"
    write_points(path, pts, radius=radius, weight=weight)
    got, cols = read_points(path, ndim=dim)
    np.testing.assert_array_equal(got, pts)
    assert got.dtype == np.float64 and got.flags.c_contiguous
    if suffix == ".npy":  # numbers only: the CLI records the names in its sidecar
        assert list(cols) == ["column0", "column1"]
        np.testing.assert_array_equal(cols["column0"], radius)
        np.testing.assert_array_equal(cols["column1"], weight)
    else:  # text formats name their columns, so the names come back
        assert list(cols) == ["radius", "weight"]
        np.testing.assert_array_equal(cols["radius"], radius)
        np.testing.assert_array_equal(cols["weight"], weight)
        # without ndim too: the header says how many columns are coordinates
        got2, cols2 = read_points(path)
        np.testing.assert_array_equal(got2, pts)
        assert list(cols2) == ["radius", "weight"]
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("suffix", [".csv", ".npy", ".txt", ".xyz"])
def test_points_round_trip_without_columns(tmp_path, io_rng, suffix, dim):
    pts = _random_points(io_rng, 20, dim)
    write_points(tmp_path / f"p{suffix}", pts)
    got, cols = read_points(tmp_path / f"p{suffix}")
    np.testing.assert_array_equal(got, pts)
    assert cols == {}


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("suffix", [".csv", ".npy", ".txt", ".xyz"])
def test_points_same_columns_in_every_format(tmp_path, io_rng, suffix, dim):
    """One layout everywhere: array axis order, then the extra columns, and every
    text format names them (issue #17, item 9)."""
    pts = _random_points(io_rng, 7, dim)
    mass = io_rng.random(7)
    path = tmp_path / f"p{suffix}"
    write_points(path, pts, mass=mass)
    names = point_columns(dim, ["mass"])
    assert names == [*COORDINATE_NAMES[dim], "mass"]
    if suffix == ".npy":
        table = np.load(path)
    else:
        lines = path.read_text().splitlines()
        if suffix == ".csv":
            assert lines[0] == ",".join(names)
            table = np.loadtxt(lines[1:], delimiter=",", ndmin=2)
        else:
            assert lines[0] == "# " + " ".join(names)
            table = np.loadtxt(lines, ndmin=2)
    np.testing.assert_array_equal(table, np.column_stack([pts, mass]))


def test_points_csv_layout(tmp_path):
    pts2 = np.array([[1.0, 2.0], [3.5, 4.0]])
    write_points(tmp_path / "a.csv", pts2, r=[0.1, 0.2], g=[0, 1], b=[1, 0])
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines == ["row,col,r,g,b", "1.0,2.0,0.1,0.0,1.0", "3.5,4.0,0.2,1.0,0.0"]
    pts3 = np.array([[1.0, 2.0, 3.0]])
    write_points(tmp_path / "b.csv", pts3)
    text = (tmp_path / "b.csv").read_text()
    assert text.splitlines() == ["layer,row,col", "1.0,2.0,3.0"]
    write_points(tmp_path / "c.txt", pts3)
    assert (tmp_path / "c.txt").read_text() == "# layer row col\n1.0 2.0 3.0\n"
    write_points(tmp_path / "d.npy", pts3, w=[5.0])
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), [[1.0, 2.0, 3.0, 5.0]])


def test_points_read_foreign_csv(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("Row, COL, mass\n 1.5, 2.5, 3\n\n4,5,6\n")
    pts, cols = read_points(path)
    np.testing.assert_array_equal(pts, [[1.5, 2.5], [4.0, 5.0]])
    np.testing.assert_array_equal(cols["mass"], [3.0, 6.0])
    # columns are found by name, in any order
    path.write_text("mass,col,layer,row\n9,1,2,3\n")
    pts, cols = read_points(path)
    np.testing.assert_array_equal(pts, [[2.0, 3.0, 1.0]])
    np.testing.assert_array_equal(cols["mass"], [9.0])


def test_points_read_legacy_xyz_names(tmp_path):
    """Files of older versions (x = col, y = row, z = layer) keep working."""
    path = tmp_path / "old.csv"
    path.write_text("X, Y, mass\n 1.5, 2.5, 3\n\n4,5,6\n")
    pts, cols = read_points(path)
    np.testing.assert_array_equal(pts, [[2.5, 1.5], [5.0, 4.0]])
    np.testing.assert_array_equal(cols["mass"], [3.0, 6.0])
    path.write_text("x,y,z,radius\n3.0,2.0,1.0,0.5\n")
    pts, cols = read_points(path, ndim=3)
    np.testing.assert_array_equal(pts, [[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(cols["radius"], [0.5])
    path.write_text("z,x,y\n1.0,3.0,2.0\n")  # by name, not by position
    np.testing.assert_array_equal(read_points(path)[0], [[1.0, 2.0, 3.0]])
    txt = tmp_path / "old.xyz"
    txt.write_text("# x y weight\n2.0 1.0 7.0\n")
    pts, cols = read_points(txt)
    np.testing.assert_array_equal(pts, [[1.0, 2.0]])
    np.testing.assert_array_equal(cols["weight"], [7.0])


def test_points_txt_comments_and_blank_lines(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("# seeds\n1 2 3\n\n4 5 6  # last\n")
    # no header line: array axis order, like .npy
    pts, cols = read_points(path)
    np.testing.assert_array_equal(pts, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert cols == {}
    pts2, cols2 = read_points(path, ndim=2)
    np.testing.assert_array_equal(pts2, [[1.0, 2.0], [4.0, 5.0]])
    np.testing.assert_array_equal(cols2["column0"], [3.0, 6.0])
    named = tmp_path / "n.txt"
    named.write_text("\n# row col size\n# a comment\n1 2 3\n")
    pts3, cols3 = read_points(named)
    np.testing.assert_array_equal(pts3, [[1.0, 2.0]])
    np.testing.assert_array_equal(cols3["size"], [3.0])


def test_read_points_errors(tmp_path):
    with pytest.raises(ValueError, match=r"points file .*missing.csv.* does not exist"):
        read_points(tmp_path / "missing.csv")
    (tmp_path / "p.dat").write_text("1 2\n")
    with pytest.raises(ValueError, match=r"unsupported suffix '.dat'; expected one of"):
        read_points(tmp_path / "p.dat")

    cases = {
        "header.csv": ("1,2\n3,4\n", "has header '1,2'; expected a first line"),
        "onlyx.csv": ("x,radius\n1,2\n", "expected both 'x' and 'y'"),
        "onlyrow.csv": ("row,radius\n1,2\n", "expected both 'row' and 'col'"),
        "mixed.csv": ("row,col,x\n1,2,3\n", "mixes the names row/col/layer"),
        "dup.csv": ("row,col,a,a\n1,2,3,4\n", "repeats a column name"),
        "badname.csv": ("x,y,z,2nd\n1,2,3,4\n", "invalid column name '2nd'"),
        "ragged.csv": ("row,col\n1,2\n3,4,5\n", "line 3 has 3 fields; expected 2"),
        "width.csv": ("row,col,r\n1,2\n3,4\n", "2 values per row; expected 3"),
        "nan.csv": ("row,col\n1,2\nnan,4\n", "NaN or inf on data row 1"),
        "text.csv": ("row,col\n1,2\n3,abc\n", "line 3 is not all numbers"),
        "empty.csv": ("row,col\n", "has no data rows"),
        "width.txt": ("# row col r\n1 2\n", "2 values per row; expected 3"),
        "ragged.txt": ("1 2 3\n4 5\n", "line 2 has 2 fields; expected 3"),
        "wide.txt": ("1 2 3 4\n", "has 4 columns and no header; pass ndim=2 or"),
        "inf.xyz": ("1 2\ninf 3\n", "NaN or inf on data row 1"),
        "zero.txt": ("\n", "has no data rows"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=message):
            read_points(tmp_path / name)

    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(ValueError, match=r"is empty"):
        read_points(tmp_path / "e.csv")
    (tmp_path / "three.csv").write_text("layer,row,col\n1,2,3\n")
    with pytest.raises(ValueError, match=r"holds 3D points .*expected ndim=2"):
        read_points(tmp_path / "three.csv", ndim=2)
    (tmp_path / "three.txt").write_text("# layer row col\n1 2 3\n")
    with pytest.raises(ValueError, match=r"holds 3D points .*expected ndim=2"):
        read_points(tmp_path / "three.txt", ndim=2)
    (tmp_path / "one.txt").write_text("1\n")
    with pytest.raises(ValueError, match=r"has 1 columns; expected at least ndim=2"):
        read_points(tmp_path / "one.txt", ndim=2)
    with pytest.raises(ValueError, match=r"ndim must be None, 2 or 3, got 4"):
        read_points(tmp_path / "one.txt", ndim=4)
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match=r"NaN or inf on row 0"):
        read_points(tmp_path / "nan.npy")
    np.save(tmp_path / "flat.npy", np.arange(3.0))
    with pytest.raises(ValueError, match=r"of shape \(3,\); expected a 2D array"):
        read_points(tmp_path / "flat.npy")
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(ValueError, match=r"cannot read points file .*junk.npy"):
        read_points(tmp_path / "junk.npy")


def test_write_points_errors(tmp_path):
    ok = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"unsupported suffix '.json'"):
        write_points(tmp_path / "p.json", ok)
    with pytest.raises(ValueError, match=r"shape \(N, 2\) or \(N, 3\), got \(3, 4\)"):
        write_points(tmp_path / "p.csv", np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"points is empty"):
        write_points(tmp_path / "p.csv", np.zeros((0, 2)))
    bad = ok.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"points contains NaN or inf .*row 2"):
        write_points(tmp_path / "p.csv", bad)
    with pytest.raises(ValueError, match=r"column 'radius' must have shape \(3,\)"):
        write_points(tmp_path / "p.csv", ok, radius=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"one column per component"):
        write_points(tmp_path / "p.csv", ok, color=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"column 'm' contains NaN or inf"):
        write_points(tmp_path / "p.csv", ok, m=[1.0, np.inf, 0.0])
    for name in ("z", "row", "Col", "layer"):
        with pytest.raises(ValueError, match=rf"column name '{name}' is reserved"):
            write_points(tmp_path / "p.csv", ok, **{name: [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"output directory .* does not exist"):
        write_points(tmp_path / "no" / "p.csv", ok)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------- VTK


@pytest.mark.parametrize("compress", [True, False])
def test_vti_round_trip_3d(tmp_path, io_rng, compress):
    shape = (5, 7, 9)
    material = io_rng.integers(0, 40, size=shape)
    phi = io_rng.random(shape)
    rgb = io_rng.random((*shape, 3))
    path = tmp_path / "g.vti"
    write_vti(
        path,
        {"material": material, "phi": phi, "rgb": rgb, "f32": phi.astype(np.float32)},
        spacing=(0.5, 0.25, 0.125),
        origin=(1.0, -2.0, 3.0),
        compress=compress,
    )
    data, spacing, origin = read_vti(path)
    assert spacing == (0.5, 0.25, 0.125)
    assert origin == (1.0, -2.0, 3.0)
    np.testing.assert_array_equal(data["material"], material)
    assert data["material"].dtype == np.int32
    np.testing.assert_array_equal(data["phi"], phi)
    assert data["phi"].dtype == np.float64
    np.testing.assert_array_equal(data["rgb"], rgb)
    np.testing.assert_array_equal(data["f32"], phi.astype(np.float32))
    assert data["f32"].dtype == np.float32

    root = ET.parse(path).getroot()
    image = root.find("ImageData")
    assert image.get("WholeExtent") == "0 9 0 7 0 5"
    assert image.get("Spacing") == "0.125 0.25 0.5"  # x y z
    assert image.get("Origin") == "3.0 -2.0 1.0"
    assert [a.get("type") for a in image.iter("DataArray")] == [
        "Int32",
        "Float64",
        "Float64",
        "Float32",
    ]


def test_vti_2d_is_one_slice_and_large_compressed(tmp_path, io_rng):
    grains = io_rng.integers(0, 5, size=(6, 8))
    write_vti(tmp_path / "a.vti", {"material": grains}, spacing=(2.0, 3.0))
    data, spacing, origin = read_vti(tmp_path / "a.vti")
    assert data["material"].shape == (1, 6, 8)
    np.testing.assert_array_equal(data["material"][0], grains)
    assert spacing == (3.0, 2.0, 3.0)  # slice thickness = hx
    assert origin == (0.0, 0.0, 0.0)
    # several zlib blocks, the last one exactly full
    big = io_rng.integers(0, 1000, size=(16, 32, 32))
    write_vti(tmp_path / "b.vti", {"material": big, "big64": big * 2**40})
    data, _, _ = read_vti(tmp_path / "b.vti")
    np.testing.assert_array_equal(data["material"], big)
    np.testing.assert_array_equal(data["big64"], big * 2**40)
    assert data["big64"].dtype == np.int64


def test_vti_read_by_vtk(tmp_path, io_rng):
    vtk = pytest.importorskip("vtk")
    from vtk.util.numpy_support import vtk_to_numpy

    shape = (4, 5, 6)
    material = io_rng.integers(0, 10, size=shape)
    phi = io_rng.random(shape)
    for compress in (True, False):
        path = tmp_path / f"v{compress}.vti"
        write_vti(
            path,
            {"material": material, "phi": phi},
            spacing=(0.3, 0.2, 0.1),
            origin=(1.0, 2.0, 3.0),
            compress=compress,
        )
        reader = vtk.vtkXMLImageDataReader()
        reader.SetFileName(str(path))
        reader.Update()
        img = reader.GetOutput()
        assert img.GetDimensions() == (7, 6, 5)  # points per axis, x y z
        np.testing.assert_allclose(img.GetSpacing(), (0.1, 0.2, 0.3), rtol=1e-15)
        np.testing.assert_allclose(img.GetOrigin(), (3.0, 2.0, 1.0), rtol=1e-15)
        cells = img.GetCellData()
        # VTK's cell order is x fastest: the C-order ravel of (D, H, W)
        np.testing.assert_array_equal(
            vtk_to_numpy(cells.GetArray("material")), material.ravel()
        )
        np.testing.assert_array_equal(vtk_to_numpy(cells.GetArray("phi")), phi.ravel())

    # and our reader reads what VTK writes
    writer = vtk.vtkXMLImageDataWriter()
    writer.SetInputData(img)
    for mode in ("zlib", "none"):
        if mode == "zlib":
            writer.SetCompressorTypeToZLib()
        else:
            writer.SetCompressorTypeToNone()
        writer.SetDataModeToBinary()
        out = tmp_path / f"by_vtk_{mode}.vti"
        writer.SetFileName(str(out))
        writer.Write()
        data, spacing, _ = read_vti(out)
        np.testing.assert_array_equal(data["material"], material)
        np.testing.assert_array_equal(data["phi"], phi)
        np.testing.assert_allclose(spacing, (0.3, 0.2, 0.1), rtol=1e-15)


def test_vti_errors(tmp_path):
    ok = np.zeros((2, 3, 4), dtype=int)
    with pytest.raises(ValueError, match=r"cell_data must be a non-empty dict"):
        write_vti(tmp_path / "a.vti", {})
    with pytest.raises(ValueError, match=r"cell_data\['b'\] has shape \(2, 3\)"):
        write_vti(tmp_path / "a.vti", {"a": ok, "b": np.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"has shape \(5,\); expected \(D, H, W\)"):
        write_vti(tmp_path / "a.vti", {"a": np.zeros(5)})
    with pytest.raises(ValueError, match=r"contains NaN or inf"):
        write_vti(tmp_path / "a.vti", {"a": np.full((2, 2), np.nan)})
    with pytest.raises(ValueError, match=r"dtype <U1; expected integers"):
        write_vti(tmp_path / "a.vti", {"a": np.full((2, 2), "x")})
    with pytest.raises(ValueError, match=r"name 'a b' is not valid"):
        write_vti(tmp_path / "a.vti", {"a b": ok})
    with pytest.raises(ValueError, match=r"spacing must be > 0"):
        write_vti(tmp_path / "a.vti", {"a": ok}, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match=r"origin must be a finite scalar or 3"):
        write_vti(tmp_path / "a.vti", {"a": ok}, origin=(1.0, 2.0))
    assert os.listdir(tmp_path) == []

    with pytest.raises(ValueError, match=r"VTK image .* does not exist"):
        read_vti(tmp_path / "missing.vti")
    (tmp_path / "bad.vti").write_text("<VTKFile type='ImageData'")
    with pytest.raises(ValueError, match=r"is not valid XML"):
        read_vti(tmp_path / "bad.vti")
    (tmp_path / "grid.vti").write_text("<VTKFile type='RectilinearGrid'/>")
    with pytest.raises(ValueError, match=r"expected <VTKFile type='ImageData'>"):
        read_vti(tmp_path / "grid.vti")
    write_vti(tmp_path / "t.vti", {"a": ok}, compress=False)
    text = (tmp_path / "t.vti").read_text()
    (tmp_path / "t.vti").write_text(
        text.replace('WholeExtent="0 4', 'WholeExtent="0 5')
    )
    with pytest.raises(ValueError, match=r"has 24 values; expected 30"):
        read_vti(tmp_path / "t.vti")


# --------------------------------------------------------------------- tesr


def test_tesr_round_trip_3d_with_seeds_and_void(tmp_path, io_rng):
    grains = io_rng.integers(-1, 9, size=(4, 5, 6))
    seeds = io_rng.random((9, 3)) * (4, 5, 6)
    weights = io_rng.random(9)
    path = tmp_path / "m.tesr"
    write_tesr(path, grains, (0.1, 0.2, 0.3), (1.0, 2.0, 3.0), seeds, weights)
    got, spacing, origin, got_seeds, got_weights = read_tesr(path)
    np.testing.assert_array_equal(got, grains)
    assert spacing == (0.1, 0.2, 0.3)
    assert origin == (1.0, 2.0, 3.0)
    np.testing.assert_array_equal(got_seeds, seeds)
    np.testing.assert_array_equal(got_weights, weights)

    lines = path.read_text().splitlines()
    assert lines[:9] == [
        "***tesr",
        " **format",
        "   2.1",
        " **general",
        "   3",
        "   6 5 4",
        "   0.3 0.2 0.1",
        "  *origin",
        "   3.0 2.0 1.0",
    ]
    assert lines[9:12] == [" **cell", "   9", "  *seed"]
    first = lines[12].split()
    assert first[0] == "1"
    np.testing.assert_array_equal(
        [float(v) for v in first[1:]], [*seeds[0, ::-1], weights[0]]
    )
    k = lines.index(" **data")
    assert lines[k + 1] == "   ascii"
    assert lines[-1] == "***end"
    data = np.array(" ".join(lines[k + 2 : -1]).split(), dtype=int)
    np.testing.assert_array_equal(data, grains.ravel() + 1)  # x fastest, void 0


def test_tesr_2d_layout_and_defaults(tmp_path):
    grains = np.arange(6).reshape(2, 3)  # (H, W): x along the columns
    write_tesr(tmp_path / "a.tesr", grains, spacing=(1.0, 2.0))
    text = (tmp_path / "a.tesr").read_text()
    assert "   3 2\n   2.0 1.0\n" in text
    assert "*origin" not in text and "*seed" not in text
    assert "**data\n   ascii\n1 2 3 4 5 6\n***end\n" in text
    got, spacing, origin, seeds, weights = read_tesr(tmp_path / "a.tesr")
    np.testing.assert_array_equal(got, grains)
    assert spacing == (1.0, 2.0) and origin == (0.0, 0.0)
    assert seeds is None and weights is None
    # seeds without weights get zero weights; all-void maps have no **cell
    write_tesr(tmp_path / "b.tesr", grains, seeds=np.ones((6, 2)))
    assert np.all(read_tesr(tmp_path / "b.tesr")[4] == 0.0)
    write_tesr(tmp_path / "c.tesr", np.full((2, 2), -1))
    assert "**cell" not in (tmp_path / "c.tesr").read_text()
    np.testing.assert_array_equal(read_tesr(tmp_path / "c.tesr")[0], -1)


def test_tesr_reads_neper_style_files(tmp_path):
    # format 2.0 header ("2.0 ascii"), *id, *ori and 72-column wrapping
    text = (
        "***tesr\n **format\n   2.0 ascii\n **general\n   2\n   3 2\n"
        "   0.5 0.25\n **cell\n   2\n  *id\n   10 20\n  *ori\n   e\n"
        "   1.0 2.0 3.0\n   4.0 5.0 6.0\n  *seed\n   2 0.75 0.1 0.5\n"
        "   1 0.25 0.2 0.0\n **data\n 1 1 2\n 0 2 2\n***end\n"
    )
    (tmp_path / "n.tesr").write_text(text)
    got, spacing, _, seeds, weights = read_tesr(tmp_path / "n.tesr")
    np.testing.assert_array_equal(got, [[0, 0, 1], [-1, 1, 1]])
    assert spacing == (0.25, 0.5)
    np.testing.assert_array_equal(seeds, [[0.2, 0.25], [0.1, 0.75]])  # sorted by id
    np.testing.assert_array_equal(weights, [0.0, 0.5])


def test_tesr_errors(tmp_path):
    with pytest.raises(ValueError, match=r"must be an integer array .*float64"):
        write_tesr(tmp_path / "a.tesr", np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"shape \(H, W\) or \(D, H, W\)"):
        write_tesr(tmp_path / "a.tesr", np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match=r"ids must be >= 0 .*got minimum -2"):
        write_tesr(tmp_path / "a.tesr", np.array([[0, -2]]))
    grains = np.array([[0, 1], [2, 2]])
    with pytest.raises(ValueError, match=r"weights were given without seeds"):
        write_tesr(tmp_path / "a.tesr", grains, weights=[1, 2, 3])
    with pytest.raises(ValueError, match=r"seeds must have shape \(N, 2\) with N >= 3"):
        write_tesr(tmp_path / "a.tesr", grains, seeds=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"weights must have shape \(3,\)"):
        write_tesr(tmp_path / "a.tesr", grains, seeds=np.zeros((3, 2)), weights=[1])
    with pytest.raises(ValueError, match=r"spacing must be > 0"):
        write_tesr(tmp_path / "a.tesr", grains, spacing=-1.0)
    assert os.listdir(tmp_path) == []

    with pytest.raises(ValueError, match=r"tesr file .* does not exist"):
        read_tesr(tmp_path / "missing.tesr")
    (tmp_path / "x.tesr").write_text("***tess\n **format\n 2.0\n")
    with pytest.raises(ValueError, match=r"does not start with '\*\*\*tesr'"):
        read_tesr(tmp_path / "x.tesr")
    head = "***tesr\n **format\n   2.1\n **general\n   2\n   2 2\n   1 1\n **data\n"
    (tmp_path / "short.tesr").write_text(head + "   ascii\n1 2 3\n***end\n")
    with pytest.raises(ValueError, match=r"has 3 values in \*\*data; expected 4"):
        read_tesr(tmp_path / "short.tesr")
    (tmp_path / "bin.tesr").write_text(head + "   binary8\n*file a.raw\n***end\n")
    with pytest.raises(ValueError, match=r"data as 'binary8'.*only inline ascii"):
        read_tesr(tmp_path / "bin.tesr")
    (tmp_path / "junk.tesr").write_text(head + "   ascii\n1 2 x 4\n***end\n")
    with pytest.raises(ValueError, match=r"unparsable values"):
        read_tesr(tmp_path / "junk.tesr")


# --------------------------------------------------------------------- render


def test_write_svg(tmp_path, io_rng):
    shape = (40, 60)
    pts = io_rng.random((25, 2)) * shape
    radii = io_rng.random(25) + 0.1
    path = tmp_path / "s.svg"
    write_svg(path, pts, radii, shape)
    root = ET.parse(path).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    assert root.get("viewBox") == "0 0 60 40"
    assert (root.get("width"), root.get("height")) == ("60", "40")
    circles = list(root.iter(f"{ns}circle"))
    assert len(circles) == 25
    cx = np.array([float(c.get("cx")) for c in circles])
    cy = np.array([float(c.get("cy")) for c in circles])
    np.testing.assert_allclose(cx, pts[:, 1], rtol=1e-5)
    np.testing.assert_allclose(cy, pts[:, 0], rtol=1e-5)
    assert ((cx >= 0) & (cx <= 60) & (cy >= 0) & (cy <= 40)).all()
    assert next(root.iter(f"{ns}rect")).get("fill") == "#ffffff"

    colors = io_rng.random((25, 3))
    write_svg(path, pts, radii, shape, colors=colors, background=None)
    root = ET.parse(path).getroot()
    fills = [c.get("fill") for c in root.iter(f"{ns}circle")]
    assert fills[0] == "#{:02x}{:02x}{:02x}".format(
        *np.rint(colors[0] * 255).astype(int)
    )
    assert not list(root.iter(f"{ns}rect"))


def test_render_png_size_and_antialiasing(io_rng):
    img = render_png([[10.0, 20.0]], [6.0], (20, 40), scale=2.0)
    assert img.shape == (40, 80, 3) and img.dtype == np.uint8
    assert (img[20, 40] == 0).all()  # inside the disc
    assert (img[0, 0] == 255).all()  # background
    assert ((img > 0) & (img < 255)).any()  # anti-aliased edge
    # a sub-pixel dot shows as grey, not as nothing
    dot = render_png([[5.5, 5.5]], 0.3, (10, 10))
    assert 0 < dot[5, 5, 0] < 255
    img = render_png(io_rng.random((5, 2)) * 7, 1.0, (7, 9), scale=1.5)
    assert img.shape == (round(7 * 1.5), round(9 * 1.5), 3)
    red = render_png([[5.0, 5.0]], 3.0, (10, 10), colors=[[1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(red[5, 5], [255, 0, 0])


@pytest.mark.parametrize("radius", [0.5, 1.0, 1.5, 2.0, 4.0])
def test_render_png_ink_area_is_unbiased(io_rng, radius):
    # small discs keep their area pi r^2 on average (Pillow's ellipses drew r = 1
    # discs 21 % too large); random sub-pixel centres, no overlaps
    centres = 4.0 + 12.0 * np.stack(np.meshgrid(range(8), range(8)), -1).reshape(-1, 2)
    centres = centres + io_rng.random(centres.shape)
    img = render_png(centres, radius, (100, 100))
    ink = (255.0 - img[..., 0].astype(float)).sum() / 255.0
    assert ink == pytest.approx(len(centres) * np.pi * radius**2, rel=0.03)
    # later points are drawn over earlier ones
    two = render_png(
        [[5.0, 5.0], [5.0, 5.0]], 2.0, (10, 10), colors=[[1, 0, 0], [0, 0, 1]]
    )
    np.testing.assert_array_equal(two[5, 5], [0, 0, 255])


def test_write_png_and_pdf(tmp_path):
    img = render_png([[8.0, 8.0]], 4.0, (16, 24), scale=3.0)
    write_png(tmp_path / "a.png", img)
    np.testing.assert_array_equal(_read_png(tmp_path / "a.png"), img)
    write_pdf(tmp_path / "a.pdf", img)
    assert (tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")
    assert _leftovers(tmp_path) == []


def test_grain_slices_png(tmp_path, io_rng):
    grains = io_rng.integers(-1, 12, size=(10, 20, 30))
    grain_slices_png(tmp_path / "g.png", grains, seed=3)
    img = _read_png(tmp_path / "g.png")
    factor = -(-256 // 20)  # slices enlarged to at least 256 px
    band = img.shape[0] - 20 * factor  # the plane labels: a white band on top
    assert band > 0
    assert img.shape[1] == (30 + 30 + 20) * factor + 2 * max(2, factor)
    # same map, same picture
    grain_slices_png(tmp_path / "h.png", grains, seed=3)
    np.testing.assert_array_equal(_read_png(tmp_path / "h.png"), img)
    grain_slices_png(tmp_path / "flat.png", grains[0])
    flat = _read_png(tmp_path / "flat.png")
    assert flat.shape[0] - band == 20 * factor and flat.shape[1] == 30 * factor


def test_render_errors(tmp_path):
    with pytest.raises(ValueError, match=r"points must have shape \(N, 2\)"):
        write_svg(tmp_path / "a.svg", np.zeros((3, 3)), 1.0, (5, 5))
    with pytest.raises(
        ValueError, match=r"radii must be a scalar or have shape \(2,\)"
    ):
        write_svg(tmp_path / "a.svg", np.zeros((2, 2)), [1.0], (5, 5))
    with pytest.raises(ValueError, match=r"radii must be finite and >= 0"):
        render_png(np.zeros((1, 2)), -1.0, (5, 5))
    with pytest.raises(ValueError, match=r"colors must be RGB values in"):
        render_png(np.zeros((1, 2)), 1.0, (5, 5), colors=[[2.0, 0, 0]])
    with pytest.raises(ValueError, match=r"shape must be \(H, W\)"):
        render_png(np.zeros((1, 2)), 1.0, (5, 0))
    with pytest.raises(ValueError, match=r"scale must be a positive number, got 0"):
        render_png(np.zeros((1, 2)), 1.0, (5, 5), scale=0)
    with pytest.raises(ValueError, match=r"background 'nocolour' is not a colour"):
        write_svg(
            tmp_path / "a.svg", np.zeros((1, 2)), 1.0, (5, 5), background="nocolour"
        )
    with pytest.raises(ValueError, match=r"image must have dtype uint8, got float64"):
        write_png(tmp_path / "a.png", np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"grain_map must be an integer array"):
        grain_slices_png(tmp_path / "g.png", np.zeros((4, 4)))
    assert os.listdir(tmp_path) == []


def test_json_sidecars_are_standard_json(tmp_path):
    """NaN (a Lloyd run stopped before any solve converged) must not reach the file."""
    import json

    from rasterquant.io.atomic import atomic_write_json

    path = tmp_path / "s.json"
    atomic_write_json(
        path, {"energy": float("nan"), "e": [1.0, np.inf], "a": np.array([np.nan, 2.0])}
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data == {"a": [None, 2.0], "e": [1.0, None], "energy": None}


def test_paint_discs_match_the_reference(io_rng):
    import reference

    from rasterquant.io.render import _paint_discs

    for _ in range(5):
        shape = (int(io_rng.integers(5, 40)), int(io_rng.integers(5, 40)))
        n = 12
        centres = io_rng.random((n, 2)) * np.array(shape) * 1.2 - 2.0
        radii = io_rng.random(n) * 6.0
        radii[0] = 0.0
        for label in (True, False):
            want = reference.paint_discs(shape, centres, radii, label)
            target = np.full(shape, -1 if label else 0, np.int32 if label else np.uint8)
            empty = -1 if label else 0
            count = _paint_discs(target, centres, radii, label, empty)
            np.testing.assert_array_equal(target, want)
            assert count == int((want != empty).sum())
