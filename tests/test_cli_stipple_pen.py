"""``rasterquant stipple`` for printing and plotting (issue 20).

--layers (colour separations), --order (pen path), G-code outputs, --svg-style
path and --cells, end to end on a tiny image.
"""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rasterquant.cli.main import main

SVG = "{http://www.w3.org/2000/svg}"
INK = "{http://www.inkscape.org/namespaces/inkscape}"


def _has_pen():
    try:
        import rasterquant.pen  # noqa: F401
    except ImportError:
        return False
    return True


def _has_cells():
    try:
        from rasterquant.assign import cell_polygons  # noqa: F401
    except ImportError:
        return False
    return True


needs_pen = pytest.mark.skipif(not _has_pen(), reason="rasterquant.pen missing")
needs_cells = pytest.mark.skipif(
    not _has_cells(), reason="rasterquant.assign.cell_polygons missing"
)


@pytest.fixture
def image(tmp_path):
    """A 24 x 30 colour gradient (rows != cols)."""
    from PIL import Image

    y, x = np.mgrid[0:24, 0:30] / np.array([23.0, 29.0])[:, None, None]
    rgb = np.stack(
        [0.5 + 0.4 * np.cos(3 * x), 0.5 + 0.4 * np.sin(2 * y + x), 0.2 + 0.7 * x * y],
        axis=-1,
    )
    path = tmp_path / "in.png"
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path)
    return path


def _run(image, *extra):
    argv = ["stipple", str(image), "-n", "40", "--iterations", "2", "--quiet"]
    return main([*argv, *extra])


def _sidecar(path):
    return json.loads((path.parent / f"{path.name}.json").read_text())


def _pen_downs(path, command="G0 Z0"):
    return sum(line.strip() == command for line in path.read_text().splitlines())


def test_layers_cmyk_outputs(tmp_path, image):
    svg, png, csv = tmp_path / "a.svg", tmp_path / "a.png", tmp_path / "a.csv"
    assert (
        _run(image, "--layers", "cmyk", "-o", str(svg), "-o", str(png), "-o", str(csv))
        == 0
    )
    meta = _sidecar(svg)
    inks = meta["diagnostics"]["inks"]
    assert inks == ["cyan", "magenta", "yellow", "black"]
    counts = {name: meta["diagnostics"]["counts"][name] for name in inks}
    assert [layer["n"] for layer in meta["diagnostics"]["layers"]] == list(
        counts.values()
    )
    assert 0 <= meta["diagnostics"]["coincident_dots"] < 0.5
    assert sum(counts.values()) == 40
    assert meta["parameters"]["layers"] == "cmyk"
    for layer in meta["diagnostics"]["layers"]:
        assert "max_mass_error" in layer and "ot_tol" in layer
    groups = ET.parse(svg).getroot().findall(f"{SVG}g")
    assert [g.get(f"{INK}label") for g in groups] == list(counts)
    assert [len(g.findall(f"{SVG}circle")) for g in groups] == list(counts.values())
    for name, k in counts.items():
        lines = (tmp_path / f"a_{name}.csv").read_text().splitlines()
        assert lines[0] == "row,col,radius" and len(lines) == k + 1
    assert not csv.exists()  # per-ink files instead
    assert png.is_file()
    assert sorted(meta["outputs"]) == sorted(
        [str(svg), str(png), *(str(tmp_path / f"a_{n}.csv") for n in counts)]
    )


def test_layers_palette_file(tmp_path, image):
    palette = tmp_path / "inks.txt"
    palette.write_text("# two pens\nteal #008080\nbrown #804000\n")
    out = tmp_path / "p.svg"
    assert _run(image, "--layers", str(palette), "-o", str(out)) == 0
    groups = ET.parse(out).getroot().findall(f"{SVG}g")
    assert [g.get("id") for g in groups] == ["teal", "brown"]


@needs_pen
def test_order_nearest_gcode_one_pen_down_per_dot(tmp_path, image):
    out = tmp_path / "plot.gcode"
    svg = tmp_path / "plot.svg"
    assert (
        _run(
            image,
            "--order",
            "nearest",
            "-o",
            str(out),
            "-o",
            str(svg),
            "--pen-down",
            "M3 S30",
            "--feed",
            "1500",
        )
        == 0
    )
    assert _pen_downs(out, "M3 S30") == 40
    assert "G1 X" in out.read_text() and "F1500" in out.read_text()
    meta = _sidecar(out)
    order = meta["diagnostics"]["order"]
    assert order["method"] == "nearest"
    assert order["tour_length"] == pytest.approx(order["nearest_length"])
    assert meta["diagnostics"]["max_mass_error"] <= meta["diagnostics"]["ot_tol"]
    assert len(ET.parse(svg).getroot().findall(f".//{SVG}circle")) == 40


@needs_pen
def test_layers_tsp_gcode_and_path_svg(tmp_path, image):
    gcode, svg = tmp_path / "plot.gcode", tmp_path / "plot.svg"
    assert (
        _run(
            image,
            "--layers",
            "cmyk",
            "--order",
            "tsp",
            "--svg-style",
            "path",
            "-o",
            str(gcode),
            "-o",
            str(svg),
        )
        == 0
    )
    diag = _sidecar(gcode)["diagnostics"]
    assert diag["order"] == "tsp"
    assert diag["tour_length"] <= diag["nearest_length"] + 1e-9
    for layer in diag["layers"]:
        path = tmp_path / f"plot_{layer['name']}.gcode"
        assert _pen_downs(path) == layer["n"]
    paths = ET.parse(svg).getroot().findall(f".//{SVG}path")
    assert len(paths) == 4


@needs_cells
def test_cells_svg(tmp_path, image):
    out = tmp_path / "s.svg"
    assert _run(image, "--cells", "-o", str(out)) == 0
    cells = tmp_path / "s_cells.svg"
    root = ET.parse(cells).getroot()
    assert len(root.findall(f".//{SVG}polygon")) == 40
    assert str(cells) in _sidecar(out)["outputs"]


@needs_cells
def test_layers_cells_per_ink(tmp_path, image):
    out = tmp_path / "s.png"
    assert _run(image, "--layers", "rgb", "--cells", "-o", str(out)) == 0
    counts = _sidecar(out)["diagnostics"]["counts"]
    for name, k in counts.items():
        root = ET.parse(tmp_path / f"s_{name}_cells.svg").getroot()
        assert len(root.findall(f".//{SVG}polygon")) == k


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layers", "bogus"], r"argument --layers: expected cmyk, rgb, k or a "),
        (["--order", "best"], r"argument --order: invalid choice: 'best'"),
        (["--svg-style", "lines"], r"argument --svg-style: invalid choice"),
        (["--layers", "cmyk", "--color"], r"--color cannot be combined with --layers"),
        (["--layers", "k", "--no-invert"], r"--no-invert cannot be combined"),
        (["--svg-style", "path"], r"--svg-style path needs an \.svg output"),
        (["--feed", "0"], r"argument --feed: expected a number > 0"),
        (["--size-mm", "x"], r"argument --size-mm: expected a number"),
        (["--pen-up", "G0 Z0"], r"--pen-up and --pen-down must differ"),
        (["--pen-down", " "], r"argument --pen-down: expected one G-code line"),
    ],
)
def test_bad_options_exit_2_in_one_line(tmp_path, image, capsys, extra, message):
    out = tmp_path / "a.png"
    assert _run(image, *extra, "-o", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("rasterquant stipple: error: ")
    import re

    assert re.search(message, err), err
    assert not list(tmp_path.glob("a*"))


def test_bad_palette_file_exits_2(tmp_path, image, capsys):
    palette = tmp_path / "inks.txt"
    palette.write_text("teal 008080\n")
    assert _run(image, "--layers", str(palette), "-o", str(tmp_path / "a.svg")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "line 1: colour '008080' of 'teal'; expected '#rrggbb'" in err
    palette.write_bytes(b"\xff\xfe\x00bad")
    assert _run(image, "--layers", str(palette), "-o", str(tmp_path / "a.svg")) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_runtime_errors_exit_1_and_leave_nothing(tmp_path, image, capsys):
    # more dots than inked pixels: a runtime error, one line, nothing written
    out = tmp_path / "a.svg"
    assert (
        main(
            [
                "stipple",
                str(image),
                "-n",
                "5000",
                "--layers",
                "cmyk",
                "--quiet",
                "-o",
                str(out),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert not list(tmp_path.glob("a*"))
    # unsupported suffix (as before: exit 1)
    assert _run(image, "--layers", "cmyk", "-o", str(tmp_path / "a.gif")) == 1
