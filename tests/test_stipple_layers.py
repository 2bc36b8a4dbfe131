"""Colour separations (stipple_layers) and their writers (issue 20)."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rasterquant.io.render import (
    disc_coverage,
    render_layers_png,
    write_cells_svg,
    write_layers_svg,
)
from rasterquant.stipple_layers import (
    INK_SETS,
    _largest_remainder,
    _leave_one_out,
    read_palette,
    separate_inks,
    stipple_layers,
    tone_error,
    write_layers,
)

SVG = "{http://www.w3.org/2000/svg}"
INK = "{http://www.inkscape.org/namespaces/inkscape}"


def gradient_image(h=96, w=96):
    """Smooth colour gradients covering light and dark, saturated and gray."""
    y, x = np.mgrid[0:h, 0:w] / np.array([h - 1, w - 1])[:, None, None]
    r = 0.5 + 0.45 * np.cos(3 * x + 1)
    g = 0.5 + 0.45 * np.sin(2 * y + x)
    b = 0.2 + 0.7 * x * y
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0)


@pytest.fixture(scope="module")
def cmyk_result():
    return stipple_layers(gradient_image(), 400, layers="cmyk", iterations=4)


# ----------------------------------------------------------------------------- inks


def test_cmyk_of_pure_colours():
    colours = [
        [0, 1, 1],  # cyan
        [1, 0, 1],  # magenta
        [1, 1, 0],  # yellow
        [0, 0, 0],  # black
        [1, 1, 1],  # white
        [1, 0, 0],  # red = magenta + yellow
        [0.5, 0.5, 0.5],  # gray: black only
        [0, 0, 0.5],  # dark blue: C = M = 1 over K = 0.5
    ]
    inks, cov = separate_inks(np.array([colours], dtype=float), "CMYK")
    assert [name for name, _ in inks] == ["cyan", "magenta", "yellow", "black"]
    expected = np.array(
        [
            [1, 0, 0, 0],
            [0, 1, 0, 0],
            [0, 0, 1, 0],
            [0, 0, 0, 1],
            [0, 0, 0, 0],
            [0, 1, 1, 0],
            [0, 0, 0, 0.5],
            [1, 1, 0, 0.5],
        ],
        dtype=float,
    )
    np.testing.assert_allclose(cov[:, 0, :].T, expected, atol=1e-12)


def test_cmyk_reproduces_the_image_under_multiply(rng):
    img = rng.random((7, 9, 3))
    inks, cov = separate_inks(img, "cmyk")
    q = np.array([c for _, c in inks])
    recon = np.prod(1 - cov[..., None] * (1 - q[:, None, None, :]), axis=0)
    np.testing.assert_allclose(recon, img, atol=1e-12)


def test_rgb_and_k_separations(rng):
    img = rng.random((5, 6, 3))
    _, cov = separate_inks(img, "rgb")
    np.testing.assert_allclose(np.moveaxis(cov, 0, 2), img)
    _, k = separate_inks(img, "k")
    lum = img @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(k[0], 1 - lum)
    assert INK_SETS["rgb"][1] == (0.0, 0.0, 0.0)  # inks on black paper


def test_palette_separation_matches_cmyk_on_its_inks(rng):
    palette = [(n, c) for n, c in INK_SETS["cmyk"][0]]
    img = np.array([[[0, 1, 1], [1, 0, 0], [0.5, 0.5, 0.5], [1, 1, 1], [0, 0, 0]]])
    _, cov = separate_inks(img, palette)
    _, ref = separate_inks(img, "cmyk")
    np.testing.assert_allclose(cov, ref, atol=5e-3)  # 7-bit colour table
    # any colour: the fit reproduces it (7-bit table, within 1 %)
    img = rng.random((6, 6, 3))
    inks, cov = separate_inks(img, palette)
    q = np.array([c for _, c in inks])
    recon = np.prod(1 - cov[..., None] * (1 - q[:, None, None, :]), axis=0)
    np.testing.assert_allclose(recon, img, atol=0.01)


def test_leave_one_out_products(rng):
    f = rng.random((4, 5, 3))
    f[0, 2] = 0.0  # a full black ink: the other products stay right
    ref = np.stack([np.prod(np.delete(f, k, axis=1), axis=1) for k in range(5)], axis=1)
    np.testing.assert_allclose(_leave_one_out(f), ref, rtol=1e-12)


def test_read_palette(tmp_path):
    path = tmp_path / "inks.txt"
    path.write_text(
        "# my pens\n\nteal   #008080\n  orange #FF8000   # fades\nblack #000000\n"
    )
    inks = read_palette(path)
    assert [n for n, _ in inks] == ["teal", "orange", "black"]
    np.testing.assert_allclose(inks[1][1], (1.0, 128 / 255, 0.0))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("teal\n", r"line 1 is 'teal'; expected 'name #rrggbb'"),
        ("teal #00808\n", r"line 1: colour '#00808' of 'teal'; expected '#rrggbb'"),
        ("a #000000\nb #zz0000\n", r"line 2: colour '#zz0000'"),
        ("teal #008080 extra\n", r"line 1 is .*expected 'name #rrggbb'"),
        ("1st #008080\n", r"ink name '1st' is not valid"),
        ("Teal #008080\nteal #000000\n", r"ink name 'teal' is given twice"),
        ("paper #ffffff\n", r"ink 'paper' is white"),
        ("# only a comment\n", r"has no inks"),
    ],
)
def test_palette_errors(tmp_path, text, match):
    path = tmp_path / "p.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_palette(path)


def test_palette_unreadable(tmp_path):
    with pytest.raises(ValueError, match=r"palette file .* cannot be read"):
        read_palette(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match=r"cannot be read"):
        read_palette(tmp_path)  # a directory
    with pytest.raises(ValueError, match=r"layers must be 'cmyk', 'rgb', 'k'"):
        separate_inks(np.zeros((2, 2, 3)), "bogus")


def test_largest_remainder():
    np.testing.assert_array_equal(_largest_remainder([1, 1, 1], 10), [4, 3, 3])
    np.testing.assert_array_equal(_largest_remainder([0, 2, 1], 4), [0, 3, 1])
    rng = np.random.default_rng(3)
    for _ in range(50):
        m = rng.random(5) * (rng.random(5) > 0.3) + 1e-9
        n = int(rng.integers(1, 500))
        c = _largest_remainder(m, n)
        assert c.sum() == n
        assert np.all(np.abs(c - n * m / m.sum()) < 1)


# ----------------------------------------------------------------------------- stipple


def test_counts_follow_the_ink_within_one_dot(cmyk_result):
    res = cmyk_result
    masses = np.array([layer.ink_mass for layer in res.layers])
    counts = np.array([layer.n for layer in res.layers])
    assert counts.sum() == 400 == res.n
    assert np.all(np.abs(counts - 400 * masses / masses.sum()) < 1)
    _, cov = separate_inks(gradient_image(), "cmyk")
    np.testing.assert_allclose(masses, cov.reshape(4, -1).sum(axis=1))
    assert res.names == ("cyan", "magenta", "yellow", "black")


def test_layers_meet_the_mass_tolerance(cmyk_result):
    for layer in cmyk_result.layers:
        if layer.n:
            assert layer.points.shape == (layer.n, 2)
            assert layer.max_mass_error <= layer.ot_tol
            np.testing.assert_array_equal(layer.order, np.arange(layer.n))
            h, w = cmyk_result.shape
            assert (layer.points >= 0).all() and (layer.points <= [h, w]).all()


@pytest.mark.parametrize("mode", ["cmyk", "rgb"])
def test_composite_tone_matches_the_image(cmyk_result, mode):
    res = cmyk_result
    if mode != "cmyk":
        res = stipple_layers(gradient_image(), 400, layers=mode, iterations=4)
    err = tone_error(res)
    # within 5 % of the image's mean tone in every channel (and 0.05 absolute)
    assert np.all(np.abs(err) <= 0.05 * res.image_tone), (err, res.image_tone)
    assert np.all(np.abs(err) <= 0.05)


def test_layers_with_equal_densities_do_not_coincide():
    # white to blue: cyan and magenta have the same density
    x = np.linspace(0, 1, 48)[None, :].repeat(48, axis=0)
    img = np.stack([1 - 0.8 * x, 1 - 0.8 * x, np.ones_like(x)], axis=-1)
    res = stipple_layers(img, 200, iterations=3)
    c, m = res.layers[0], res.layers[1]
    assert c.n == m.n == 100
    d = np.sqrt(((c.points[:, None] - m.points[None]) ** 2).sum(-1)).min(axis=1)
    assert np.mean(d < 0.5) < 0.5


def test_gray_image_and_k(rng):
    img = np.linspace(0.1, 0.9, 32 * 32).reshape(32, 32)
    res = stipple_layers(img, 60, layers="cmyk", iterations=1)
    assert res.counts == {"cyan": 0, "magenta": 0, "yellow": 0, "black": 60}
    res = stipple_layers(img, 60, layers="K", iterations=1)
    assert res.counts == {"black": 60}
    assert res.layers[0].radii.shape == (60,)


def test_order_nearest_is_a_permutation():
    pen = pytest.importorskip("rasterquant.pen")
    res = stipple_layers(gradient_image(32, 32), 50, iterations=1, order="nearest")
    assert res.order_method == "nearest"
    for layer in res.layers:
        np.testing.assert_array_equal(np.sort(layer.order), np.arange(layer.n))
        if layer.n > 1:
            length = pen.tour_length(layer.points, layer.order)
            assert layer.tour_length == pytest.approx(length)
            assert layer.nearest_length == pytest.approx(length)


def test_palette_list_and_file(tmp_path):
    path = tmp_path / "inks.txt"
    path.write_text("teal #008080\norange #ff8000\n")
    img = gradient_image(32, 32)
    a = stipple_layers(img, 40, layers=path, iterations=1)
    b = stipple_layers(
        img,
        40,
        layers=[("teal", "#008080"), ("orange", (1, 128 / 255, 0))],
        iterations=1,
    )
    assert a.mode == b.mode == "palette"
    assert a.counts == b.counts and sum(a.counts.values()) == 40
    np.testing.assert_array_equal(a.layers[0].points, b.layers[0].points)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layers": "bogus"}, ValueError, r"layers must be .* got 'bogus'"),
        ({"order": "fast"}, ValueError, r"order must be one of"),
        ({"color": True}, TypeError, r"unexpected option 'color'"),
        ({"gamma": 0}, ValueError, r"gamma must be a number > 0, got 0"),
        ({"layers": [("a", "#000000"), ("A", "#111111")]}, ValueError, "twice"),
        ({"layers": [("a", (0, 0, 2))]}, ValueError, r"outside \[0, 1\]"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        stipple_layers(np.zeros((8, 8, 3)), 5, **kwargs)


def test_bad_images():
    import rasterquant as rq

    with pytest.raises(ValueError, match="no ink"):
        stipple_layers(np.ones((8, 8, 3)), 5)
    with pytest.raises(ValueError, match="n must be >= 1"):
        stipple_layers(np.zeros((8, 8, 3)), 0)
    with pytest.raises(TypeError, match="got a Density"):
        stipple_layers(rq.Density.uniform((8, 8)), 5)
    with pytest.raises(ValueError, match="only 4 inked pixels"):
        img = np.ones((8, 8, 3))
        img[:2, :2] = 0
        stipple_layers(img, 5, layers="k")


# ----------------------------------------------------------------------------- writers


def test_layers_svg_groups(tmp_path, cmyk_result):
    path = tmp_path / "s.svg"
    assert write_layers(path, cmyk_result) == [str(path)]
    root = ET.parse(path).getroot()
    groups = root.findall(f"{SVG}g")
    assert [g.get(f"{INK}label") for g in groups] == list(cmyk_result.names)
    assert [g.get("id") for g in groups] == list(cmyk_result.names)
    for g, layer in zip(groups, cmyk_result.layers, strict=True):
        assert g.get(f"{INK}groupmode") == "layer"
        assert len(g.findall(f"{SVG}circle")) == layer.n
    assert groups[0].get("fill") == "#00ffff"
    assert root.find(f"{SVG}rect") is None  # white paper: no paper rect


def test_layer_csvs_png_and_pdf(tmp_path, cmyk_result):
    written = write_layers(tmp_path / "s.csv", cmyk_result)
    assert written == [str(tmp_path / f"s_{n}.csv") for n in cmyk_result.names]
    for path, layer in zip(written, cmyk_result.layers, strict=True):
        lines = open(path).read().splitlines()
        assert lines[0] == "row,col,radius"
        assert len(lines) == layer.n + 1
    write_layers(tmp_path / "s.png", cmyk_result, render_scale=2)
    from PIL import Image

    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (192, 192) and im.mode == "RGB"
    write_layers(tmp_path / "s.pdf", cmyk_result)
    assert (tmp_path / "s.pdf").read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []


def test_render_layers_blend():
    full = ([[5.0, 5.0]], [10.0])
    cyan = ("c", (0, 1, 1), *full)
    magenta = ("m", (1, 0, 1), *full)
    img = render_layers_png([cyan, magenta], (10, 10))
    np.testing.assert_array_equal(img[5, 5], [0, 0, 255])  # cyan x magenta = blue
    img = render_layers_png([cyan], (10, 10), paper=(0, 0, 0), blend="screen")
    np.testing.assert_array_equal(img[5, 5], [0, 255, 255])
    blank = render_layers_png([("c", (0, 1, 1), np.zeros((0, 2)), [])], (4, 6))
    assert blank.shape == (4, 6, 3) and (blank == 255).all()
    with pytest.raises(ValueError, match="blend must be one of"):
        render_layers_png([cyan], (10, 10), blend="add")


def test_disc_coverage_is_unbiased(rng):
    for r in (0.5, 1.0, 2.5):
        centres = rng.uniform(8, 12, (30, 2))
        areas = [disc_coverage([c], r, (20, 20)).sum() for c in centres]
        assert np.mean(areas) == pytest.approx(np.pi * r * r, rel=0.01)


def test_write_layers_svg_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="ink of layer 'a' must be 3 floats"):
        write_layers_svg(tmp_path / "a.svg", [("a", (2, 0, 0), [[1, 1]], [1])], (4, 4))
    assert not list(tmp_path.iterdir())


def test_cells_svg(tmp_path):
    polygons = [
        np.array([[0, 0], [0, 5], [10, 5], [10, 0]], dtype=float),
        np.array([[0, 5], [0, 12], [10, 12], [10, 5]], dtype=float),
        np.array([[2, 2], [3, 4], [4, 2]], dtype=float),
    ]
    path = tmp_path / "c.svg"
    write_cells_svg(path, polygons, shape=(10, 12), points=[[5, 2.5], [5, 8.5]])
    root = ET.parse(path).getroot()
    polys = root.findall(f".//{SVG}polygon")
    assert len(polys) == 3
    assert polys[0].get("points") == "0,0 5,0 5,10 0,10"  # x = col, y = row
    cells = root.find(f"{SVG}g[@id='cells']")
    assert cells.get("fill") == "none"
    assert len(root.findall(f".//{SVG}circle")) == 2
    with pytest.raises(ValueError, match=r"polygons\[0\] contains NaN"):
        write_cells_svg(path, [np.array([[np.nan, 0]])], shape=(4, 4))


def test_cells_svg_from_cell_polygons(tmp_path, cmyk_result):
    try:
        from rasterquant.assign import cell_polygons
    except ImportError:
        pytest.skip("rasterquant.assign.cell_polygons is not there yet")
    layer = cmyk_result.layers[0]
    h, w = cmyk_result.shape
    polygons = cell_polygons(layer.points, layer.weights, [0.0, 0.0], [h, w])
    path = tmp_path / "cells.svg"
    write_cells_svg(path, polygons, shape=(h, w), points=layer.points)
    root = ET.parse(path).getroot()
    assert len(root.findall(f".//{SVG}polygon")) == layer.n


def test_callback_names_the_layer(capsys):
    seen = []
    res = stipple_layers(
        gradient_image(24, 24), 30, iterations=2, callback=seen.append, progress=True
    )
    active = [layer.name for layer in res.layers if layer.n]
    assert [s["layer"] for s in seen] == [name for name in active for _ in range(2)]
    assert all("energy" in s for s in seen)
    assert "stipple layers" in capsys.readouterr().err


def test_ink_in_one_corner_stays_there():
    # each layer is stippled on the bounding box of its ink, then shifted back
    img = np.ones((40, 50, 3))
    img[25:38, 30:47] = [0.0, 1.0, 1.0]  # a cyan patch
    res = stipple_layers(img, 30, iterations=2)
    assert res.counts == {"cyan": 30, "magenta": 0, "yellow": 0, "black": 0}
    pts = res.layers[0].points
    assert (pts[:, 0] >= 25).all() and (pts[:, 0] <= 38).all()
    assert (pts[:, 1] >= 30).all() and (pts[:, 1] <= 47).all()
    assert np.all(np.abs(tone_error(res)) <= 0.05 * res.image_tone)


def test_layers_do_not_land_on_one_another():
    """Dots of later layers are kept KEEP_APART from earlier layers' dots."""
    from rasterquant.stipple_layers import (
        KEEP_APART,
        coincident_fraction,
        stipple_layers,
    )

    rgb = np.zeros((64, 64, 3))
    rgb[..., 2] = 0.9  # blue: equal cyan and magenta, the worst case for overlap
    res = stipple_layers(rgb, 300, layers="cmyk", iterations=3, seed=0)
    assert coincident_fraction(res, distance=KEEP_APART) == 0.0
    for layer in res.layers:
        if layer.n:
            assert (layer.points >= 0).all() and (layer.points < 64).all()
