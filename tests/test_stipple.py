import json
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from rasterquant import Density, assign_cells
from rasterquant.cli._common import sidecar_path
from rasterquant.cli.main import main
from rasterquant.io.points import read_points
from rasterquant.stipple import StippleResult, stipple, write_stipple


@pytest.fixture
def image():
    """A 48x64 dark-centred gray image in [0, 1]."""
    y, x = np.mgrid[0:48, 0:64]
    r2 = ((y - 24) / 20.0) ** 2 + ((x - 32) / 26.0) ** 2
    return np.clip(0.15 + 0.8 * r2, 0.0, 1.0)


@pytest.fixture
def png(tmp_path, image):
    from PIL import Image

    path = tmp_path / "img.png"
    Image.fromarray((image * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("method", ["uniform", "voronoi"])
def test_stipple_array(image, method):
    res = stipple(image, 60, method=method, iterations=4)
    assert isinstance(res, StippleResult)
    assert res.points.shape == (60, 2)
    assert res.shape == (48, 64)
    assert ((res.points >= 0) & (res.points <= [48, 64])).all()
    assert (res.radii > 0).all()
    assert res.colors is None
    assert len(res.history["energy"]) == 5
    assert isinstance(res.warnings, tuple)
    if method == "voronoi":
        assert np.isnan(res.max_mass_error)
    else:
        assert np.isfinite(res.max_mass_error)


def test_stipple_deterministic(image):
    a = stipple(image, 40, iterations=2, seed=3)
    b = stipple(image, 40, iterations=2, seed=3)
    np.testing.assert_array_equal(a.points, b.points)


def test_dots_follow_density(image):
    """Dark centre gets more dots than the bright border."""
    res = stipple(image, 80, iterations=3, method="voronoi")
    r = np.hypot((res.points[:, 0] - 24) / 20, (res.points[:, 1] - 32) / 26)
    assert (r < 0.5).sum() > (r > 0.9).sum()


def test_dot_size_options(image):
    res = stipple(image, 50, iterations=1, dot_size=0.7)
    np.testing.assert_allclose(res.radii, 0.7)
    res = stipple(image, 50, iterations=1, dot_size_range=(0.2, 1.5))
    assert res.radii.min() >= 0.2 and res.radii.max() <= 1.5
    assert res.radii.std() > 0
    # darker cells (near the centre) get bigger dots
    r = np.hypot((res.points[:, 0] - 24) / 20, (res.points[:, 1] - 32) / 26)
    order = np.argsort(r)
    assert res.radii[order[:10]].mean() > res.radii[order[-10:]].mean()
    with pytest.raises(ValueError, match="dot_size_range"):
        stipple(image, 10, dot_size_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="dot_size"):
        stipple(image, 10, dot_size=-1.0)


@pytest.fixture
def two_tone():
    """64x64 luminance: left half black, right half light gray (darkness 0.15)."""
    lum = np.full((64, 64), 0.85)
    lum[:, :32] = 0.0
    return lum


def _cells_of(lum, res):
    """Centre labels of the result's cells, recomputed from points and weights."""
    cells = assign_cells(Density.from_luminance(lum), res.points, res.weights)
    return cells.labels.ravel()


def _nearest(points):
    dist, idx = cKDTree(points).query(points, k=2)
    return dist[:, 1], idx[:, 1]


def test_default_radii_follow_tone_without_overlap(two_tone):
    """Issue #17 item 13: a dot's default radius reproduces its cell's tone,
    sqrt(ink / pi), capped at 0.45 x the nearest-dot distance, so that neighbours
    keep r_i + r_j <= 0.9 d_ij (one radius for all dots overlapped on black)."""
    n = 150
    res = stipple(two_tone, n, iterations=10)
    d, j = _nearest(res.points)
    assert (res.radii + res.radii[j] <= 0.9 * d * (1 + 1e-12)).all()
    # not only nearest neighbours: no two dots overlap
    tree = cKDTree(res.points)
    pairs = tree.query_pairs(2.0 * res.radii.max(), output_type="ndarray")
    gap = np.linalg.norm(res.points[pairs[:, 0]] - res.points[pairs[:, 1]], axis=1)
    assert (res.radii[pairs].sum(axis=1) <= 0.9 * gap * (1 + 1e-12)).all()
    # the rule, from the cells recomputed from the result's points and weights
    labels = _cells_of(two_tone, res)
    ink = np.bincount(labels, weights=(1.0 - two_tone).ravel(), minlength=n)
    tone = np.sqrt(ink / np.pi)
    np.testing.assert_allclose(res.radii, np.minimum(tone, 0.45 * d), rtol=1e-12)
    # on black the spacing limits the dots, on light gray the tone does
    black = res.points[:, 1] < 28
    light = res.points[:, 1] > 36
    assert (res.radii[black] < tone[black]).mean() > 0.9
    np.testing.assert_allclose(res.radii[light], tone[light], rtol=1e-12)


def test_dot_size_range_is_linear_in_tone(two_tone):
    """radius = MIN + (MAX - MIN) * mean darkness of the cell's inked pixels, with
    the same no-overlap cap; black cells get larger dots than light ones."""
    n, lo, hi = 150, 0.5, 3.0
    res = stipple(two_tone, n, iterations=10, dot_size_range=(lo, hi))
    # dots well inside the light half: their cells are all darkness 0.15
    far = res.points[:, 1] > 44
    assert far.sum() > 5
    np.testing.assert_allclose(res.radii[far], lo + (hi - lo) * 0.15, rtol=1e-9)
    labels = _cells_of(two_tone, res)
    dark = (1.0 - two_tone).ravel()
    v = np.bincount(labels, weights=dark, minlength=n) / np.bincount(
        labels, minlength=n
    )
    d, j = _nearest(res.points)
    expected = np.minimum(lo + (hi - lo) * v, 0.45 * d)
    np.testing.assert_allclose(res.radii, expected, rtol=1e-12)
    assert (res.radii + res.radii[j] <= 0.9 * d * (1 + 1e-12)).all()
    black, light = v > 0.999, v < 0.15 + 1e-9
    assert black.sum() > 20 and light.sum() > 5
    assert res.radii[black].min() > res.radii[light].max()
    np.testing.assert_allclose(res.radii[light], lo + (hi - lo) * 0.15, rtol=1e-9)


def _ring_and_block(gap):
    """64x64 white image: a black ring and, ``gap`` px off its box, a black block."""
    y, x = np.mgrid[0:64, 0:64] + 0.5
    lum = np.ones((64, 64))
    r = np.hypot(y - 20, x - 20)
    lum[(r > 12) & (r < 16)] = 0.0
    lum[(y > 36 + gap) & (x > 36 + gap)] = 0.0
    return lum


@pytest.mark.parametrize(("gap", "n"), [(8, 150), (12, 40)])
def test_no_stray_dot_on_white(gap, n):
    """Issue #17 item 13: a cell holding ink on both sides of a white gap put its
    dot (its barycenter) in the gap, far from any ink. No dot may lie more than a
    dot spacing from ink, and the cells keep their masses."""
    lum = _ring_and_block(gap)
    res = stipple(lum, n, iterations=20)
    to_ink = ndimage.distance_transform_edt(lum >= 1.0)
    ij = np.floor(res.points).astype(int)
    spacing = np.sqrt((lum < 1.0).sum() / n)
    assert to_ink[ij[:, 0], ij[:, 1]].max() <= spacing
    assert res.max_mass_error <= res.ot_tol
    assert res.warnings == ()
    # the weights returned are those of the final cells: every cell has its mass
    cells = assign_cells(Density.from_luminance(lum), res.points, res.weights)
    np.testing.assert_allclose(cells.masses * n, 1.0, atol=res.ot_tol)


def test_color_and_alpha():
    rgba = np.zeros((32, 40, 4))
    rgba[..., 0] = 0.8  # red image
    rgba[..., 3] = 1.0
    rgba[:, 20:, 3] = 0.0  # right half transparent
    res = stipple(rgba, 30, iterations=2, color=True, method="voronoi")
    assert res.colors.shape == (30, 3)
    np.testing.assert_allclose(res.colors[:, 0], 0.8, atol=1e-6)
    np.testing.assert_allclose(res.colors[:, 1:], 0.0, atol=1e-6)
    assert (res.points[:, 1] <= 20).all()


def test_resample(image):
    res = stipple(image, 30, iterations=1, scale=0.5)
    assert res.shape == (24, 32)
    res = stipple(image, 30, iterations=1, resolution=100)
    assert res.shape == (75, 100)
    with pytest.raises(ValueError, match="either scale or resolution"):
        stipple(image, 30, scale=0.5, resolution=10)


def test_bad_inputs(image):
    with pytest.raises(ValueError, match="zero density"):
        stipple(np.ones((16, 16)), 5)
    with pytest.raises(ValueError, match="positive-density pixels"):
        stipple(image, 10_000)
    with pytest.raises(ValueError, match="method"):
        stipple(image, 5, method="lbg")
    with pytest.raises(ValueError, match="NaN"):
        stipple(np.full((8, 8), np.nan), 5)
    with pytest.raises(TypeError, match="n must be"):
        stipple(image, 2.5)


def test_resolution_warnings_collected(image):
    """The solvers' warnings land in result.warnings, nothing is emitted.

    Centre quadrature cannot resolve ot_tol=0.01 with ~10 px/cell.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = stipple(image, 300, iterations=2, ot_tol=0.01, quadrature="center")
    assert res.warnings
    assert any("tol" in w for w in res.warnings)


def test_fractional_default_meets_ot_tol(image):
    """The same 10 px/cell problem with the default (fractional) quadrature: no
    warning, every cell within ot_tol of 1/n."""
    res = stipple(image, 300, iterations=2, ot_tol=0.01)
    assert res.warnings == ()
    assert res.max_mass_error <= 0.01


def test_outputs_round_trip(tmp_path, image):
    res = stipple(image, 50, iterations=2, dot_size_range=(0.3, 1.2), color=True)
    svg, png, csv, npy, pdf = (
        tmp_path / f"s.{s}" for s in ("svg", "png", "csv", "npy", "pdf")
    )
    for p in (svg, png, csv, npy, pdf):
        write_stipple(p, res, render_scale=2.0)
    root = ET.parse(svg).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    _, _, w, h = (float(v) for v in root.get("viewBox").split())
    assert (w, h) == (64, 48)
    circles = root.findall(f".//{ns}circle")
    assert len(circles) == 50
    for c in circles:
        assert 0 <= float(c.get("cx")) <= w and 0 <= float(c.get("cy")) <= h
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (128, 96)
    pts, cols = read_points(csv)
    np.testing.assert_allclose(pts, res.points, rtol=1e-15)
    np.testing.assert_allclose(cols["radius"], res.radii, rtol=1e-15)
    np.testing.assert_allclose(
        np.column_stack([cols["r"], cols["g"], cols["b"]]), res.colors, rtol=1e-15
    )
    table = np.load(npy)
    np.testing.assert_array_equal(table[:, :2], res.points)
    np.testing.assert_array_equal(table[:, 2], res.radii)
    np.testing.assert_array_equal(table[:, 3:], res.colors)
    assert pdf.read_bytes().startswith(b"%PDF")
    with pytest.raises(ValueError, match="suffix"):
        write_stipple(tmp_path / "s.gif", res)


def test_cli_stipple(tmp_path, png, caplog):
    out_svg, out_png = tmp_path / "o.svg", tmp_path / "o.png"
    argv = [
        "stipple",
        str(png),
        "-n",
        "70",
        "--iterations",
        "3",
        "-o",
        str(out_svg),
        "-o",
        str(out_png),
        "--render-scale",
        "1.5",
        "--quiet",
    ]
    assert main(argv) == 0
    circles = (
        ET.parse(out_svg).getroot().findall(".//{http://www.w3.org/2000/svg}circle")
    )
    assert len(circles) == 70
    from PIL import Image

    with Image.open(out_png) as im:
        assert im.size == (96, 72)
    # the sidecar's name is the CLI's business (sidecar_path)
    meta = json.loads(Path(sidecar_path(out_svg)).read_text())
    assert meta["complete"] is True
    assert meta["parameters"]["n"] == 70
    assert meta["diagnostics"]["iterations"] == 3
    # existing outputs need --force
    assert main(argv) == 1
    assert main([*argv, "--force"]) == 0


def test_cli_stipple_errors(tmp_path, png):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    assert (
        main(["stipple", str(bad), "-n", "5", "-o", str(tmp_path / "a.svg"), "--quiet"])
        == 1
    )
    assert (
        main(["stipple", str(png), "-n", "5", "-o", str(tmp_path / "a.gif"), "--quiet"])
        == 1
    )
    assert (
        main(
            [
                "stipple",
                str(png),
                "-n",
                "5",
                "--dot-size-range",
                "1",
                "-o",
                str(tmp_path / "a.svg"),
            ]
        )
        == 2
    )
    assert not list(tmp_path.glob("a.*"))
