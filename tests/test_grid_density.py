"""Tests of Grid (grid.py) and the Density constructors and readers (density.py)."""

import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

import rasterquant as rq

DATA = Path(__file__).resolve().parent.parent / "data"
LUMA = np.array([0.299, 0.587, 0.114])


# --------------------------------------------------------------------------- Grid


def test_grid_extent_and_defaults():
    g = rq.Grid((4, 6), spacing=0.5)
    assert g.extent == ((0.0, 2.0), (0.0, 3.0))
    assert g.n_pixels == 24
    assert g.ndim == 2
    assert g.periodic == (False, False)
    assert g.pixel_volume == 0.25
    assert g.volume == 6.0


def test_grid_anisotropic_origin_3d():
    g = rq.Grid(
        (2, 3, 4),
        spacing=(1.0, 0.5, 2.0),
        origin=(-1.0, 10.0, 3.0),
        periodic=(True, False, True),
    )
    assert g.extent == ((-1.0, 1.0), (10.0, 11.5), (3.0, 11.0))
    np.testing.assert_array_equal(g.lengths, [2.0, 1.5, 8.0])
    np.testing.assert_allclose(g.axis_centres(1), [10.25, 10.75, 11.25], rtol=0, atol=0)
    c = g.pixel_centres()
    assert c.shape == (24, 3)
    np.testing.assert_array_equal(c[0], [-0.5, 10.25, 4.0])
    np.testing.assert_array_equal(c[-1], [0.5, 11.25, 10.0])
    np.testing.assert_allclose(g.to_physical(g.to_index(c)), c, rtol=0, atol=1e-12)
    assert g.any_periodic


def test_grid_wrap_only_periodic_axes():
    g = rq.Grid((4, 10), spacing=1.0, origin=(2.0, -5.0), periodic=(True, False))
    pts = np.array([[6.0, 0.0], [1.5, 1.0], [13.25, 7.0], [2.0, -5.0], [-1e-17, 3.0]])
    before = pts.copy()
    w = g.wrap(pts)
    np.testing.assert_array_equal(pts, before)  # a copy
    np.testing.assert_allclose(w[:, 0], [2.0, 5.5, 5.25, 2.0, 4.0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(w[:, 1], pts[:, 1])
    lo, hi = g.extent[0]
    assert ((w[:, 0] >= lo) & (w[:, 0] < hi)).all()


def test_grid_wrap_never_returns_upper_bound():
    g = rq.Grid((8, 8), periodic=True)
    pts = np.array([[-1e-300, -5e-17], [8.0, 16.0]])
    w = g.wrap(pts)
    assert (w >= 0).all() and (w < 8).all()


def test_grid_min_image():
    g = rq.Grid((10, 4), periodic=(True, False))
    d = np.array([[6.0, 3.0], [-6.0, -3.0], [4.0, 3.5], [14.0, 0.0]])
    np.testing.assert_allclose(
        g.min_image(d),
        [[-4.0, 3.0], [4.0, -3.0], [4.0, 3.5], [4.0, 0.0]],
        rtol=0,
        atol=1e-12,
    )
    # broadcasting over leading axes
    assert g.min_image(np.zeros((3, 5, 2))).shape == (3, 5, 2)


def test_grid_as_3d():
    g = rq.Grid((3, 5), spacing=(2.0, 0.5), origin=(1.0, -1.0), periodic=(False, True))
    assert g.as_3d() == (
        (1, 3, 5),
        (1.0, 2.0, 0.5),
        (0.0, 1.0, -1.0),
        (False, False, True),
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": 5}, "shape"),
        ({"shape": (5,)}, "2 or 3 axes"),
        ({"shape": (2, 3, 4, 5)}, "2 or 3 axes"),
        ({"shape": (0, 4)}, "positive"),
        ({"shape": ("a", 4)}, "shape"),
        ({"shape": (4, 4), "spacing": 0.0}, "spacing"),
        ({"shape": (4, 4), "spacing": (1.0, -1.0)}, "spacing"),
        ({"shape": (4, 4), "spacing": (1.0, 1.0, 1.0)}, "spacing"),
        ({"shape": (4, 4), "spacing": np.nan}, "spacing"),
        ({"shape": (4, 4), "origin": (0.0, np.inf)}, "origin"),
        ({"shape": (4, 4), "periodic": (True,)}, "periodic"),
    ],
)
def test_grid_validation_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rq.Grid(**kwargs)


# ----------------------------------------------------------------- Density.from_array


def test_from_array_normalises_and_copies():
    a = np.array([[0.0, 1.0], [1.0, 2.0]])
    d = rq.Density.from_array(a, spacing=(2.0, 0.5), origin=(1.0, 1.0))
    np.testing.assert_allclose(d.values, a / 4, rtol=1e-15)
    np.testing.assert_allclose(d.values.sum(), 1.0, rtol=1e-15)
    assert d.grid.spacing == (2.0, 0.5)
    assert d.n_positive() == 3
    assert not d.is_uniform
    a[0, 0] = 100.0  # the density holds its own copy
    assert d.values[0, 0] == 0.0
    assert not d.values.flags.writeable


def test_from_array_with_grid_checks_shape():
    g = rq.Grid((3, 4), spacing=0.25)
    d = rq.Density.from_array(np.ones((3, 4)), g)
    assert d.grid is g
    assert d.is_uniform
    with pytest.raises(ValueError, match=r"grid has shape \(3, 4\)"):
        rq.Density.from_array(np.ones((4, 3)), g)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (np.array([[1.0, np.nan], [1.0, 1.0]]), "NaN or inf"),
        (np.array([[1.0, np.inf], [1.0, 1.0]]), "NaN or inf"),
        (np.array([[1.0, -0.5], [1.0, 1.0]]), "negative"),
        (np.zeros((3, 3)), "zero everywhere"),
        (np.zeros((0, 3)), "empty"),
        (np.ones((2, 2, 2, 2)), "4D"),
        (np.ones(5), "1D"),
    ],
)
def test_from_array_rejects(values, match):
    with pytest.raises(ValueError, match=match):
        rq.Density.from_array(values)


def test_uniform_extent():
    d = rq.Density.uniform((4, 8), extent=[(0.0, 1.0), (-2.0, 2.0)], periodic=True)
    assert d.is_uniform
    assert d.grid.spacing == (0.25, 0.5)
    assert d.grid.origin == (0.0, -2.0)
    assert d.grid.periodic == (True, True)
    np.testing.assert_allclose(d.values, np.full((4, 8), 1 / 32), rtol=1e-15)
    assert d.n_positive() == 32
    with pytest.raises(ValueError, match="extent"):
        rq.Density.uniform((4, 8), extent=[(0.0, 1.0)])
    with pytest.raises(ValueError, match="hi > lo"):
        rq.Density.uniform((4, 8), extent=[(0.0, 1.0), (2.0, 2.0)])


def test_gaussian_and_radius():
    d = rq.Density.gaussian((21, 21), extent=[(-1, 1), (-1, 1)], sigma=0.3)
    v = d.values
    np.testing.assert_allclose(v.sum(), 1.0, rtol=1e-14)
    assert np.unravel_index(np.argmax(v), v.shape) == (10, 10)
    np.testing.assert_allclose(v, v.T, rtol=1e-14)
    np.testing.assert_allclose(v, v[::-1], rtol=1e-14)
    dr = rq.Density.gaussian((21, 21), extent=[(-1, 1), (-1, 1)], sigma=0.3, radius=0.5)
    c = dr.grid.pixel_centres()
    r2 = (c**2).sum(axis=1).reshape(21, 21)
    assert (dr.values[r2 > 0.25] == 0).all()
    assert (dr.values[r2 <= 0.25] > 0).all()
    with pytest.raises(ValueError, match="sigma"):
        rq.Density.gaussian((8, 8), sigma=0.0)


def test_from_function_evaluates_at_centres():
    d = rq.Density.from_function(
        lambda y, x: 1.0 + x + 2 * y, (3, 5), extent=[(0, 3), (0, 5)]
    )
    y, x = np.meshgrid(np.arange(3) + 0.5, np.arange(5) + 0.5, indexing="ij")
    ref = 1.0 + x + 2 * y
    np.testing.assert_allclose(d.values, ref / ref.sum(), rtol=1e-14)
    d3 = rq.Density.from_function(lambda z, y, x: np.ones_like(z * y * x), (2, 3, 4))
    assert d3.shape == (2, 3, 4)
    with pytest.raises(ValueError, match="negative"):
        rq.Density.from_function(lambda y, x: x - 2.0, (4, 4))


# ------------------------------------------------------------------ images, volumes


def test_from_image_portrait_grayscale():
    raw = iio.imread(DATA / "portrait.png")
    assert raw.ndim == 2
    d = rq.Density.from_image(DATA / "portrait.png")
    ref = 1.0 - raw / 255.0
    np.testing.assert_allclose(d.values, ref / ref.sum(), rtol=1e-12)
    assert d.n_positive() == np.count_nonzero(raw < 255)
    # dark = dense
    assert d.values[raw == raw.min()].min() > d.values[raw == 255].max()


def test_from_image_colour_luminance_invert_gamma_floor():
    path = DATA / "gradient.png"
    raw = iio.imread(path)
    assert raw.shape[-1] == 3
    lum = (raw / 255.0) @ LUMA
    d = rq.Density.from_image(path)
    ref = 1.0 - lum
    np.testing.assert_allclose(d.values, ref / ref.sum(), rtol=1e-10, atol=1e-18)
    d = rq.Density.from_image(path, invert=False, gamma=2.0)
    ref = lum**2
    np.testing.assert_allclose(d.values, ref / ref.sum(), rtol=1e-10, atol=1e-18)
    d = rq.Density.from_image(path, floor=0.1)
    ref = np.maximum(1.0 - lum, 0.1)
    np.testing.assert_allclose(d.values, ref / ref.sum(), rtol=1e-10)
    assert d.n_positive() == lum.size  # the floor fills the white square


def test_from_image_alpha_mask(tmp_path):
    rgba = np.zeros((6, 8, 4), dtype=np.uint8)
    rgba[..., :3] = 100
    rgba[..., 3] = 255
    rgba[:, :3, 3] = 0  # transparent left part
    path = tmp_path / "masked.png"
    iio.imwrite(path, rgba)
    d = rq.Density.from_image(path)
    assert (d.values[:, :3] == 0).all()
    np.testing.assert_allclose(d.values[:, 3:], 1.0 / 30, rtol=1e-12)


def test_from_image_rejects_white_and_bad_options(tmp_path):
    path = tmp_path / "white.png"
    iio.imwrite(path, np.full((5, 5), 255, dtype=np.uint8))
    with pytest.raises(ValueError, match="zero density everywhere"):
        rq.Density.from_image(path)
    with pytest.raises(ValueError, match="gamma"):
        rq.Density.from_image(DATA / "gradient.png", gamma=0.0)
    with pytest.raises(ValueError, match="floor"):
        rq.Density.from_image(DATA / "gradient.png", floor=1.5)


def test_read_density_npy_volume():
    raw = np.load(DATA / "blobs3d.npy").astype(np.float64)
    d = rq.read_density(DATA / "blobs3d.npy")
    assert d.ndim == 3 and d.shape == raw.shape
    np.testing.assert_allclose(d.values, raw / raw.sum(), rtol=1e-12)
    assert d.n_positive() == np.count_nonzero(raw)


def test_read_density_npy_2d(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(12.0).reshape(3, 4))
    d = rq.read_density(path, spacing=0.5)
    np.testing.assert_allclose(d.values, np.arange(12.0).reshape(3, 4) / 66, rtol=1e-14)
    assert d.grid.spacing == (0.5, 0.5)


def test_read_density_multipage_tiff(tmp_path):
    vol = np.random.default_rng(5).integers(1, 255, size=(4, 6, 7)).astype(np.uint8)
    path = tmp_path / "stack.tif"
    with warnings.catch_warnings():  # imageio's vendored tifffile is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        iio.imwrite(path, vol, is_batch=True)
    d = rq.read_density(path)
    assert d.shape == (4, 6, 7)
    ref = vol.astype(np.float64)  # volumes: values as they are, no inversion
    np.testing.assert_allclose(d.values, ref / ref.sum(), rtol=1e-12)


def test_read_density_errors(tmp_path):
    bad = tmp_path / "density.xyz"
    bad.write_text("1 2 3\n")
    with pytest.raises(ValueError, match="unsupported"):
        rq.read_density(bad)
    with pytest.raises(ValueError, match="directory"):
        rq.read_density(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        rq.read_density(tmp_path / "missing.png")
