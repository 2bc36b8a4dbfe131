"""Point files, sidecars and summaries of the CLI (issue #17, items 9, 11 and 12).

One column convention for every point file (array axis order, named in every
header and in the JSON sidecar); sidecars named after the whole output name, so
outputs of the same stem never collide; sidecars record the values used.
"""

import json

import numpy as np
import pytest

import rasterquant as rq
from rasterquant._config import DEFAULT_QUADRATURE
from rasterquant.cli.main import main


@pytest.fixture
def image(tmp_path):
    """A small non-square grey image (rows != cols, so a swap would show)."""
    from PIL import Image

    rng = np.random.default_rng(9)
    path = tmp_path / "in.png"
    Image.fromarray((30 + rng.random((14, 22)) * 200).astype(np.uint8)).save(path)
    return path


def _sidecar(path):
    return json.loads((path.parent / f"{path.name}.json").read_text())


def test_quantize_writes_one_column_order_in_every_format(tmp_path, image):
    outs = [tmp_path / f"q{s}" for s in (".npy", ".csv", ".txt", ".xyz")]
    argv = ["quantize", str(image), "-n", "9", "--iterations", "1", "--quiet"]
    for o in outs:
        argv += ["-o", str(o)]
    assert main(argv) == 0
    meta = _sidecar(outs[0])
    assert meta["columns"] == ["row", "col", "weight", "mass"]
    reference = np.load(outs[0])
    assert reference.shape == (9, 4)
    # first the row (the image has 14 rows), then the column (22 columns)
    assert reference[:, 0].max() <= 14 < reference[:, 1].max()
    csv_lines = outs[1].read_text().splitlines()
    assert csv_lines[0] == ",".join(meta["columns"])
    np.testing.assert_array_equal(
        np.loadtxt(csv_lines[1:], delimiter=",", ndmin=2), reference
    )
    for text in outs[2:]:
        lines = text.read_text().splitlines()
        assert lines[0] == "# " + " ".join(meta["columns"])
        np.testing.assert_array_equal(np.loadtxt(lines, ndmin=2), reference)
    for o in outs:
        points, columns = rq.read_points(o, ndim=2)
        np.testing.assert_array_equal(points, reference[:, :2])
        np.testing.assert_array_equal(list(columns.values())[1], reference[:, 3])


def test_stipple_csv_and_sidecar_follow_the_convention(tmp_path, image):
    out = tmp_path / "s.csv"
    argv = ["stipple", str(image), "-n", "8", "--iterations", "1", "-o", str(out)]
    assert main([*argv, "-o", str(tmp_path / "s.npy"), "--quiet"]) == 0
    meta = _sidecar(out)
    assert meta["columns"] == ["row", "col", "radius"]
    lines = out.read_text().splitlines()
    assert lines[0] == "row,col,radius"
    table = np.load(tmp_path / "s.npy")
    np.testing.assert_array_equal(np.loadtxt(lines[1:], delimiter=","), table)


@pytest.mark.parametrize(
    ("command", "first", "second"),
    [("stipple", "a.png", "a.csv"), ("quantize", "a.csv", "a.npy")],
)
def test_outputs_of_the_same_stem_do_not_collide(
    tmp_path, image, command, first, second
):
    argv = [command, str(image), "-n", "6", "--iterations", "1", "--quiet"]
    assert main([*argv, "-o", str(tmp_path / first)]) == 0
    assert main([*argv, "-o", str(tmp_path / second)]) == 0
    for name in (first, second):
        meta = _sidecar(tmp_path / name)
        assert meta["complete"] is True
        assert meta["outputs"] == [str(tmp_path / name)]


def test_sidecars_record_the_values_used(tmp_path, image):
    s_out, q_out = tmp_path / "s.svg", tmp_path / "q.csv"
    base = [str(image), "-n", "6", "--iterations", "1", "--quiet"]
    assert main(["stipple", *base, "-o", str(s_out)]) == 0
    assert main(["quantize", *base, "-o", str(q_out)]) == 0
    stipple_meta, quantize_meta = _sidecar(s_out), _sidecar(q_out)
    params = stipple_meta["parameters"]
    assert params["quadrature"] == DEFAULT_QUADRATURE
    assert params["ot_tol"] is not None
    assert params["ot_tol"] == stipple_meta["diagnostics"]["ot_tol"]
    assert 0 < params["ot_tol"] < 1
    assert quantize_meta["parameters"]["quadrature"] == DEFAULT_QUADRATURE
    assert quantize_meta["parameters"]["tol"] == 0.02
    # with an explicit value, that value is recorded
    argv = ["stipple", *base, "-o", str(tmp_path / "c.svg"), "--tol", "0.2"]
    assert main([*argv, "--quadrature", "center"]) == 0
    params = _sidecar(tmp_path / "c.svg")["parameters"]
    assert params["ot_tol"] == 0.2 and params["quadrature"] == "center"


def test_microstructure_outputs_summary_and_sidecar(tmp_path, capsys):
    first = tmp_path / "g.npy"
    argv = ["microstructure", "--shape", "10", "12", "-n", "3", "--lloyd", "1"]
    argv += ["--periodic-axes", "1", "--tol", "0.05", "--no-progress"]
    assert main([*argv, "-o", str(first)]) == 0
    err = capsys.readouterr().err
    # the summary says what a repair is
    assert "empty-grain repairs (" in err
    meta = _sidecar(first)
    params = meta["parameters"]
    assert params["lloyd_tol"] == 0.05 and params["quadrature"]
    assert params["periodic"] == [False, True]
    table = (tmp_path / "g.npy.grains.csv").read_text().splitlines()
    assert "centroid_row,centroid_col,seed_row,seed_col" in table[0]
    assert len(table) == 4
    # a second output type of the same stem has its own sidecar and table
    assert main([*argv, "-o", str(tmp_path / "g.png")]) == 0
    assert _sidecar(tmp_path / "g.png")["complete"] is True
    assert (tmp_path / "g.png.grains.csv").is_file()
