import itertools
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from rasterquant import pen
from rasterquant.pen import (
    TourResult,
    order_dots,
    tour_length,
    write_gcode,
    write_path_svg,
)

# the no-JIT coverage job runs the kernels in pure Python (minutes for 20,000 dots)
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
SVG = "{http://www.w3.org/2000/svg}"
INK = "{http://www.inkscape.org/namespaces/inkscape}"


def _is_permutation(order, n):
    return order.dtype == np.int64 and np.array_equal(np.sort(order), np.arange(n))


def _stipple_like(rng, n, size=256):
    """Dots drawn from a density with dark and light regions (and empty ones)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    rho = np.exp(-((xx - 0.3) ** 2 + (yy - 0.4) ** 2) / 0.02) + 0.3 * (xx > 0.7)
    rho[:, : size // 10] = 0.0  # an empty band
    p = rho.ravel() / rho.sum()
    cells = rng.choice(rho.size, size=n, p=p)
    return np.column_stack(np.unravel_index(cells, rho.shape)) + rng.random((n, 2))


# ----------------------------------------------------------------- ordering


@pytest.mark.parametrize("method", ["tsp", "nearest", "none"])
def test_order_is_permutation(rng, method):
    pts = rng.random((500, 2)) * 100
    res = order_dots(pts, method)
    assert isinstance(res, TourResult)
    assert res.method == method
    assert _is_permutation(res.order, 500)
    np.testing.assert_allclose(res.length, tour_length(pts, res.order), rtol=1e-12)
    assert res.time >= 0


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("method", ["tsp", "nearest", "none"])
def test_tiny_inputs(rng, n, method):
    pts = rng.random((n, 2)) * 10
    res = order_dots(pts, method)
    assert _is_permutation(res.order, n)
    np.testing.assert_allclose(res.length, tour_length(pts, res.order), atol=1e-12)
    if n < 2:
        assert res.length == 0.0


def test_duplicates_allowed(rng):
    base = rng.random((40, 2)) * 50
    pts = np.repeat(base, 25, axis=0)  # 25 copies each: more than the K neighbours
    res = order_dots(pts)
    assert _is_permutation(res.order, len(pts))
    assert res.length <= res.nearest_length + 1e-9
    same = order_dots(np.zeros((30, 2)))
    assert _is_permutation(same.order, 30)
    assert same.length == 0.0


def test_collinear_is_optimal(rng):
    x = rng.permutation(200).astype(float)
    pts = np.column_stack([np.zeros(200), x])
    res = order_dots(pts, seed=3)
    np.testing.assert_allclose(res.length, 199.0, rtol=1e-12)


def _optimal_length(pts):
    """Shortest open path by trying every permutation."""
    perms = np.array(list(itertools.permutations(range(len(pts)))))
    dist = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(axis=-1))
    return dist[perms[:, :-1], perms[:, 1:]].sum(axis=1).min()


def test_brute_force_tiny(rng):
    """Up to EXACT_MAX dots "tsp" is the optimal open path (checked by permutations)."""
    for n in range(2, 9):
        for trial in range(6):
            pts = rng.random((n, 2)) * 10
            res = order_dots(pts, seed=trial)
            assert _is_permutation(res.order, n)
            np.testing.assert_allclose(res.length, _optimal_length(pts), rtol=1e-12)
            assert res.length <= res.nearest_length + 1e-12


def test_local_search_tiny(rng):
    """The 2-opt + Or-opt search alone (used above EXACT_MAX dots) on tiny inputs:
    never worse than its greedy start, optimal in most cases, within 10 % always."""
    ratios = []
    for n in range(3, 9):
        for trial in range(12):
            pts = rng.random((n, 2)) * 10
            neigh = pen._neighbours(pts, pen.N_NEIGHBOURS)
            start = pen._nearest_order(pts, neigh, pen._bucket_grid(pts), trial % n)
            order = pen._improve(pts, neigh, start, None)
            assert _is_permutation(order, n)
            length = tour_length(pts, order)
            assert length <= tour_length(pts, start) + 1e-12
            ratios.append(length / _optimal_length(pts))
    ratios = np.array(ratios)
    assert ratios.min() >= 1 - 1e-12
    assert ratios.max() <= 1.10, ratios.max()
    assert (ratios <= 1 + 1e-9).mean() >= 0.85


def test_nearest_is_greedy(rng):
    """Each step of "nearest" goes to the closest unvisited dot (brute force)."""
    pts = _stipple_like(rng, 1500)
    order = order_dots(pts, "nearest", seed=7).order
    left = np.ones(len(pts), bool)
    left[order[0]] = False
    for a, b in itertools.pairwise(order):
        d = np.hypot(*(pts[left] - pts[a]).T)
        np.testing.assert_allclose(np.hypot(*(pts[b] - pts[a])), d.min(), atol=1e-12)
        left[b] = False


def test_nearest_length_is_the_nearest_method(rng):
    pts = rng.random((2000, 2)) * 300
    tsp = order_dots(pts, "tsp", seed=4)
    nn = order_dots(pts, "nearest", seed=4)
    none = order_dots(pts, "none", seed=4)
    np.testing.assert_allclose(tsp.nearest_length, nn.length, rtol=1e-12)
    np.testing.assert_allclose(none.nearest_length, nn.length, rtol=1e-12)
    np.testing.assert_array_equal(none.order, np.arange(2000))


@pytest.mark.parametrize("kind", ["uniform", "stipple"])
def test_tsp_beats_nearest_3000(rng, kind):
    n = 3000
    pts = rng.random((n, 2)) * 1024 if kind == "uniform" else _stipple_like(rng, n)
    tsp = order_dots(pts, "tsp")
    nn = order_dots(pts, "nearest")
    assert _is_permutation(tsp.order, n)
    assert tsp.length <= 0.92 * nn.length, tsp.length / nn.length


@pytest.mark.skipif(NO_JIT, reason="pure-Python kernels: see the 3000-dot test")
@pytest.mark.parametrize("kind", ["uniform", "stipple"])
def test_tsp_beats_nearest_20000(rng, kind):
    # about 1 s once compiled (benchmarks/results/tour.json)
    n = 20_000
    pts = rng.random((n, 2)) * 1024 if kind == "uniform" else _stipple_like(rng, n)
    tsp = order_dots(pts, "tsp", seed=1)
    nn = order_dots(pts, "nearest", seed=1)
    assert _is_permutation(tsp.order, n)
    assert tsp.length <= 0.92 * nn.length, tsp.length / nn.length


def test_kicks_improve(rng):
    pts = _stipple_like(rng, 1500)
    plain = order_dots(pts, kicks=0)
    some = order_dots(pts, kicks=200)
    full = order_dots(pts)  # kicks=None: one per dot
    assert _is_permutation(full.order, 1500)
    assert full.length <= some.length <= plain.length
    assert full.length <= 0.99 * plain.length, full.length / plain.length


def test_kick_bookkeeping(rng):
    """Rejected kicks are undone exactly: the gain reported by the kernel is the
    change of the tour length, and the tour stays a permutation."""
    from rasterquant import _pen_kernels as kern

    n = 800
    pts = _stipple_like(rng, n)
    neigh = pen._neighbours(pts, pen.N_NEIGHBOURS)
    start = pen._nearest_order(pts, neigh, pen._bucket_grid(pts), 0)
    path = pen._improve(pts, neigh, start, None)  # local optimum, queue empty
    tour = np.append(path, n).astype(np.int64)
    pos = np.empty(n + 1, np.int64)
    pos[tour] = np.arange(n + 1)
    queue = np.zeros(n + 1, np.int64)
    inq = np.zeros(n + 1, bool)
    state = np.zeros(4, np.int64)
    log = np.empty((pen.LOG_SIZE, 2), np.int64)
    kicks = np.column_stack(
        [
            rng.integers(0, n + 1, 300),
            rng.integers(1, 30, 300),
            rng.integers(1, 30, 300),
        ]
    ).astype(np.int64)

    def closed_length(t):  # the dummy n is at distance 0 from every dot
        t = np.roll(t, -int(np.flatnonzero(t == n)[0]))[1:]
        return tour_length(pts, t)

    before = closed_length(tour)
    accepted, gained = kern._perturb(
        pts, neigh, tour, pos, queue, inq, state, log, kicks, 1e-9
    )
    assert 0 < accepted < 300
    assert _is_permutation(tour, n + 1)
    np.testing.assert_array_equal(pos[tour], np.arange(n + 1))
    np.testing.assert_allclose(before - closed_length(tour), gained, rtol=1e-9)
    # a kick that is undone leaves the exact same array
    rejected = 0
    for kick in kicks[:60]:
        keep = tour.copy()
        ok, _ = kern._perturb(
            pts, neigh, tour, pos, queue, inq, state, log, kick[None, :], 1e-9
        )
        if ok == 0:
            rejected += 1
            np.testing.assert_array_equal(tour, keep)
    assert rejected > 10


def test_deterministic(rng):
    pts = _stipple_like(rng, 1000)
    a = order_dots(pts, seed=11)
    b = order_dots(pts.copy(), seed=11)
    np.testing.assert_array_equal(a.order, b.order)
    assert a.length == b.length
    c = order_dots(pts, seed=12)
    assert _is_permutation(c.order, 1000)
    assert not np.array_equal(a.order, c.order)


def test_progress_bar_same_order(rng, capsys):
    pts = rng.random((600, 2)) * 80
    quiet = order_dots(pts, seed=2)
    shown = order_dots(pts, seed=2, progress=True)
    np.testing.assert_array_equal(quiet.order, shown.order)
    assert "ordering dots" in capsys.readouterr().err


def test_input_not_modified(rng):
    pts = rng.random((100, 2))
    keep = pts.copy()
    order_dots(pts)
    np.testing.assert_array_equal(pts, keep)


def test_tour_length_matches_numpy(rng):
    pts = rng.random((50, 2)) * 7
    order = rng.permutation(50)
    ref = sum(
        np.sqrt(((pts[order[i + 1]] - pts[order[i]]) ** 2).sum()) for i in range(49)
    )
    np.testing.assert_allclose(tour_length(pts, order), ref, rtol=1e-12)
    assert tour_length([[0.0, 0.0], [3.0, 4.0]], [1, 0]) == 5.0
    assert tour_length(pts, []) == 0.0
    assert tour_length(pts, [3]) == 0.0
    res = order_dots(pts)
    assert tour_length(pts, res) == res.length


@pytest.mark.parametrize(
    ("points", "kwargs", "match"),
    [
        (np.zeros((5, 3)), {}, r"points must have shape \(N, 2\).*got \(5, 3\)"),
        (np.zeros(5), {}, r"points must have shape \(N, 2\).*got \(5,\)"),
        ([[0.0, np.nan], [1.0, 1.0]], {}, r"points contains NaN or inf in 1 rows"),
        ([[0.0, np.inf]], {}, r"points contains NaN or inf"),
        (np.zeros((5, 2)), {"method": "2opt"}, r"method must be one of .*'2opt'"),
        (np.zeros((5, 2)), {"seed": -1}, r"seed must be an int >= 0 or None, got -1"),
        (np.zeros((5, 2)), {"kicks": -2}, r"kicks must be an int >= 0 or None, got -2"),
    ],
)
def test_order_bad_inputs(points, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        order_dots(points, **kwargs)
    assert "\n" not in str(info.value)


def test_tour_length_bad_order():
    pts = np.zeros((4, 2))
    with pytest.raises(
        ValueError, match=r"order contains index 4; expected .*\[0, 4\)"
    ):
        tour_length(pts, [0, 1, 4])
    with pytest.raises(ValueError, match=r"order must be a 1-D integer array"):
        tour_length(pts, [0.0, 1.0])


# ----------------------------------------------------------------- G-code


def _gcode_moves(text):
    """(x, y) of every G0/G1 move with both coordinates."""
    xy = []
    for line in text.splitlines():
        if line.startswith(("G0 ", "G1 ")) and " X" in line and " Y" in line:
            words = dict((w[0], w[1:]) for w in line.split()[1:])
            xy.append((float(words["X"]), float(words["Y"])))
    return np.array(xy)


@pytest.mark.parametrize("dot", [True, False])
def test_gcode_strokes_and_page(tmp_path, rng, dot):
    shape = (300, 400)
    pts = rng.random((250, 2)) * shape
    pts[0] = [0.0, 0.0]
    pts[1] = [300.0, 400.0]
    res = order_dots(pts)
    out = tmp_path / "plot.gcode"
    write_gcode(out, pts, res.order, shape=shape, size_mm=200.0, dot=dot)
    text = out.read_text()
    lines = text.splitlines()
    downs = sum(line == "G0 Z0" for line in lines)
    ups = sum(line == "G0 Z5" for line in lines)
    assert downs == (250 if dot else 1)
    assert ups == downs + 1  # one lift before the first stroke
    assert "G21" in lines and "G90" in lines
    assert "; dots: 250" in lines
    assert any(line.startswith("; tour length:") and "mm" in line for line in lines)
    xy = _gcode_moves(text)
    scale = 200.0 / 400
    assert xy[:, 0].min() >= 0 and xy[:, 0].max() <= 400 * scale + 1e-9
    assert xy[:, 1].min() >= 0 and xy[:, 1].max() <= 300 * scale + 1e-9
    # the dots in order, with x = col, y = H - row (mm)
    expect = np.column_stack([pts[res.order, 1], 300 - pts[res.order, 0]]) * scale
    np.testing.assert_allclose(xy[:250], expect, atol=6e-4)
    # pen-down moves are G1 at the drawing feed in stroke mode
    if not dot:
        assert sum(line.startswith("G1 ") for line in lines) == 249
        assert lines[lines.index("G0 Z0") + 1].endswith(" F3000")


def test_gcode_options(tmp_path, rng):
    pts = rng.random((10, 2)) * 100
    out = tmp_path / "p.nc"
    write_gcode(
        out,
        pts,
        np.arange(10),
        shape=(100, 100),
        size_mm=(50.0, 20.0),
        travel_feed=6000,
        pen_up="M5",
        pen_down="M3 S30",
    )
    lines = out.read_text().splitlines()
    assert sum(line == "M3 S30" for line in lines) == 10
    assert all(" F6000" in ln for ln in lines if ln.startswith("G1 X"))
    xy = _gcode_moves(out.read_text())
    assert xy.max() <= 20.0 + 1e-9  # height-limited: 0.2 mm per pixel
    default = tmp_path / "d.gcode"
    write_gcode(default, pts, np.arange(10), shape=(100, 100))
    assert "0.1 mm per pixel" in default.read_text()


def test_gcode_empty(tmp_path):
    out = tmp_path / "e.gcode"
    write_gcode(out, np.zeros((0, 2)), [], shape=(10, 10))
    lines = out.read_text().splitlines()
    assert "; dots: 0" in lines and "G0 Z0" not in lines


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (0, 5)}, r"shape must be \(H, W\), two positive integers"),
        ({"shape": (10, 10), "size_mm": -3.0}, r"size_mm must be a finite number > 0"),
        ({"shape": (10, 10), "size_mm": (1, 2, 3)}, r"size_mm must be None, a width"),
        ({"shape": (10, 10), "feed": 0.0}, r"feed must be a finite number > 0, got 0"),
        ({"shape": (10, 10), "pen_up": "M3", "pen_down": "M3"}, r"must differ"),
        ({"shape": (4, 10)}, r"points\[1\] = \[5.0, 5.0\] lies outside the image"),
    ],
)
def test_gcode_bad_inputs(tmp_path, kwargs, match):
    pts = np.array([[1.0, 1.0], [5.0, 5.0]])
    out = tmp_path / "bad.gcode"
    with pytest.raises(ValueError, match=match) as info:
        write_gcode(out, pts, [0, 1], **kwargs)
    assert "\n" not in str(info.value)
    assert not out.exists()


def test_gcode_bad_types(tmp_path):
    pts = np.array([[1.0, 1.0], [5.0, 5.0]])
    with pytest.raises(TypeError, match=r"dot must be True or False, got str"):
        write_gcode(tmp_path / "t.gcode", pts, [0, 1], shape=(9, 9), dot="no")
    with pytest.raises(TypeError, match=r"pen_up must be a G-code string, got int"):
        write_gcode(tmp_path / "t.gcode", pts, [0, 1], shape=(9, 9), pen_up=5)


# ----------------------------------------------------------------- SVG


def _vertices(d):
    """Number of coordinate pairs of an M/L/Z path."""
    toks = d.replace(",", " ").split()
    assert set(t for t in toks if t.isalpha()) <= {"M", "L", "Z"}
    return sum(1 for t in toks if not t.isalpha()) // 2


@pytest.mark.parametrize("style", ["line", "dots"])
def test_svg_layers(tmp_path, rng, style):
    a = rng.random((120, 2)) * (200, 300)
    b = rng.random((45, 2)) * (200, 300)
    out = tmp_path / "plot.svg"
    write_path_svg(
        out,
        [("black ink", a), ("cyan & co", b[order_dots(b).order])],
        shape=(200, 300),
        style=style,
        colors=["black", (0.0, 0.6, 0.9)],
    )
    root = ET.parse(out).getroot()
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox") == "0 0 300 200"
    groups = root.findall(f"{SVG}g")
    assert [g.get(f"{INK}label") for g in groups] == ["black ink", "cyan & co"]
    assert all(g.get(f"{INK}groupmode") == "layer" for g in groups)
    assert len({g.get("id") for g in groups}) == 2
    for g, pts in zip(groups, (a, b), strict=True):
        paths = g.findall(f"{SVG}path")
        assert len(paths) == 1
        d = paths[0].get("d")
        assert _vertices(d) == len(pts)
        if style == "line":
            assert d.count("M") == 1 and d.count("L") == len(pts) - 1
        else:
            assert d.count("M") == len(pts) and d.count("Z") == len(pts)
    # x = col, y = row
    first = groups[0].find(f"{SVG}path").get("d").split()[1:3]
    np.testing.assert_allclose([float(v) for v in first], a[0, ::-1], atol=6e-4)


def test_svg_empty_and_single_dot_layers(tmp_path):
    out = tmp_path / "few.svg"
    write_path_svg(
        out, [("none", np.zeros((0, 2))), ("one", [[2.0, 3.0]])], shape=(10, 10)
    )
    groups = ET.parse(out).getroot().findall(f"{SVG}g")
    assert [_vertices(g.find(f"{SVG}path").get("d")) for g in groups] == [0, 1]


def test_svg_single_array(tmp_path, rng):
    pts = rng.random((30, 2)) * 50
    out = tmp_path / "one.svg"
    write_path_svg(out, pts, shape=(50, 50), size_mm=100)
    root = ET.parse(out).getroot()
    assert root.get("width") == "100.0000mm"
    (g,) = root.findall(f"{SVG}g")
    assert g.get(f"{INK}label") == "dots"
    assert _vertices(g.find(f"{SVG}path").get("d")) == 30


@pytest.mark.parametrize(
    ("layers", "kwargs", "match"),
    [
        (np.zeros((3, 2)), {"style": "circles"}, r"style must be one of .*'circles'"),
        (np.zeros((3, 2)), {"stroke_width": 0}, r"stroke_width must be a finite"),
        (np.zeros((3, 3)), {}, r"layers must have shape \(N, 2\)"),
        ([("a", np.zeros((2, 2))), ("a", np.zeros((2, 2)))], {}, r"distinct"),
        ([("a", np.zeros((2, 2)))], {"colors": ["red", "blue"]}, r"one colour per"),
        ([("a", np.zeros((2, 2)))], {"colors": [(2.0, 0, 0)]}, r"colors\[0\] must"),
        ([("a", [[0.0, np.nan]])], {}, r"layers\[0\] points contains NaN"),
    ],
)
def test_svg_bad_inputs(tmp_path, layers, kwargs, match):
    out = tmp_path / "bad.svg"
    with pytest.raises(ValueError, match=match) as info:
        write_path_svg(out, layers, shape=(10, 10), **kwargs)
    assert "\n" not in str(info.value)
    assert not out.exists()
