"""Tests of microstructure.orientations and of the misorientation statistics."""

import importlib
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.transform import Rotation

from rasterquant.errors import RasterquantWarning
from rasterquant.microstructure import (
    TEXTURE_COMPONENTS,
    Orientations,
    assign_orientations,
    cubic_symmetry,
    dual_phase_volumes,
    generate_microstructure,
    grain_statistics,
    misorientation_angles,
    misorientation_statistics,
    parse_texture,
    random_orientations,
    read_orientations,
    texture_orientations,
)

IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])

# ----------------------------------------------------------------------------------
# references (obviously correct, slow or closed form)


def import_or_skip(name):
    """Import an optional module, or skip the test saying why (any ImportError)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"{name} is not importable ({exc}); install it to run this test")


def bunge_g(phi1, Phi, phi2):
    """Bunge's passive matrix g (sample -> crystal), written out (Bunge 1982, 2.2)."""
    c1, s1 = math.cos(math.radians(phi1)), math.sin(math.radians(phi1))
    c, s = math.cos(math.radians(Phi)), math.sin(math.radians(Phi))
    c2, s2 = math.cos(math.radians(phi2)), math.sin(math.radians(phi2))
    return np.array(
        [
            [c1 * c2 - s1 * s2 * c, s1 * c2 + c1 * s2 * c, s2 * s],
            [-c1 * s2 - s1 * c2 * c, -s1 * s2 + c1 * c2 * c, c2 * s],
            [s1 * s, -c1 * s, c],
        ]
    )


def mackenzie_cdf(theta_deg):
    """Mackenzie's cubic disorientation CDF on [0, 60] degrees (closed form).

    Density per radian: (24/pi)(1 - cos t) on [0, pi/4] (the ball of angle t fits
    in the cubic fundamental zone), (24/pi)[3 (sqrt2 - 1) sin t - 2 (1 - cos t)] on
    [pi/4, pi/3] (Mackenzie 1958).
    """
    t = np.radians(np.asarray(theta_deg, dtype=float))
    k = 24.0 / math.pi
    a = math.pi / 4
    f45 = k * (a - math.sin(a))
    low = k * (t - np.sin(t))
    mid = f45 + k * (
        3 * (math.sqrt(2) - 1) * (math.cos(a) - np.cos(t))
        - 2 * ((t - np.sin(t)) - (a - math.sin(a)))
    )
    return np.where(t <= a, low, mid)


def ideal(name):
    """Ideal orientation of a component (Orientations of one grain)."""
    return texture_orientations(1, name, scatter=0.0, sample_symmetry="none")


# ----------------------------------------------------------------------------------
# conventions and conversions


def test_euler_matches_hand_written_bunge_matrix(rng):
    euler = rng.uniform([0, 0, 0], [360, 180, 360], size=(20, 3))
    o = Orientations.from_euler(euler)
    for e, g in zip(euler, o.sample_to_crystal(), strict=True):
        np.testing.assert_allclose(g, bunge_g(*e), atol=1e-12)
    np.testing.assert_allclose(
        o.crystal_to_sample(), np.transpose(o.sample_to_crystal(), (0, 2, 1)), atol=0
    )


def test_known_conversions():
    # phi1 = 90: the sample x axis (RD) has crystal components (0, -1, 0)
    o = Orientations.from_euler([[90.0, 0.0, 0.0]])
    np.testing.assert_allclose(
        o.sample_to_crystal()[0], [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-15
    )
    np.testing.assert_allclose(
        o.sample_to_crystal()[0] @ [1, 0, 0], [0, -1, 0], atol=1e-15
    )
    # Goss (0, 45, 0): 45 degrees about x, w = cos 22.5
    g = Orientations.from_euler([[0.0, 45.0, 0.0]])
    c, s = math.cos(math.pi / 8), math.sin(math.pi / 8)
    np.testing.assert_allclose(g.quaternions[0], [c, s, 0, 0], atol=1e-15)
    # intrinsic ZXZ is what Bunge means; the extrinsic zxz is another rotation
    e = [10.0, 20.0, 30.0]
    intrinsic = Rotation.from_euler("ZXZ", e, degrees=True).inv().as_matrix()
    extrinsic = Rotation.from_euler("zxz", e, degrees=True).inv().as_matrix()
    np.testing.assert_allclose(intrinsic, bunge_g(*e), atol=1e-14)
    assert np.abs(extrinsic - bunge_g(*e)).max() > 0.1


def test_round_trips(rng):
    q = rng.normal(size=(50, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    o = Orientations.from_quaternions(q)
    assert (o.quaternions[:, 0] >= 0).all()
    np.testing.assert_allclose(np.abs((o.quaternions * q).sum(1)), 1.0, atol=1e-12)
    back = Orientations.from_euler(o.euler_deg)
    np.testing.assert_allclose(back.quaternions, o.quaternions, atol=1e-12)
    np.testing.assert_allclose(back.euler_deg, o.euler_deg, atol=1e-9)
    assert (o.euler_deg[:, [0, 2]] >= 0).all() and (o.euler_deg[:, [0, 2]] < 360).all()
    assert (o.euler_deg[:, 1] >= 0).all() and (o.euler_deg[:, 1] <= 180).all()
    # the gimbal-locked Cube orientation converts without a warning
    cube = Orientations.from_euler([[30.0, 0.0, 20.0]])
    np.testing.assert_allclose(cube.euler_deg, [[50.0, 0.0, 0.0]], atol=1e-12)


def test_matches_damask():
    damask = import_or_skip("damask")
    o = random_orientations(40, seed=5)
    d = damask.Rotation.from_Euler_angles(o.euler_deg, degrees=True)
    np.testing.assert_allclose(d.quaternion, o.quaternions, atol=1e-12)
    np.testing.assert_allclose(d.as_matrix(), o.sample_to_crystal(), atol=1e-12)
    back = damask.Rotation.from_quaternion(o.quaternions).as_Euler_angles(degrees=True)
    np.testing.assert_allclose(back, o.euler_deg, atol=1e-9)


def test_orientation_errors():
    with pytest.raises(ValueError, match=r"quaternions\[1\].*norm 2"):
        Orientations.from_quaternions([[1, 0, 0, 0], [2, 0, 0, 0]])
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        Orientations.from_quaternions([[1, 0, 0]])
    with pytest.raises(ValueError, match=r"euler_deg.*NaN"):
        Orientations.from_euler([[0, np.nan, 0]])
    with pytest.raises(ValueError, match="phases must be 2 non-negative"):
        Orientations.from_euler([[0, 0, 0], [1, 2, 3]], phases=[0, -1])


# ----------------------------------------------------------------------------------
# random orientations


def test_random_is_uniform_ks_no_symmetry():
    o = random_orientations(3000, seed=20261207)
    ang = np.radians(
        misorientation_angles(
            o.quaternions, np.tile(IDENTITY, (3000, 1)), symmetry="none"
        )
    )
    cdf = lambda t: (t - np.sin(t)) / np.pi  # noqa: E731 - density (1 - cos t)/pi
    assert stats.kstest(ang, cdf).pvalue > 0.01
    # the test can fail: textured orientations are rejected
    t = texture_orientations(3000, "cube:0.3", scatter=10, seed=1)
    ang_t = np.radians(
        misorientation_angles(
            t.quaternions, np.tile(IDENTITY, (3000, 1)), symmetry="none"
        )
    )
    assert stats.kstest(ang_t, cdf).pvalue < 1e-6


def test_random_cubic_follows_mackenzie():
    n = 4000
    o = random_orientations(n, seed=7)
    ang = misorientation_angles(o.quaternions, np.tile(IDENTITY, (n, 1)))
    assert ang.max() <= 62.81 and ang.max() > 58
    # Mackenzie: mean 40.74 deg (sd about 10.4: 4 standard errors = 0.66)
    assert abs(ang.mean() - 40.74) < 0.66
    f60 = float(mackenzie_cdf(60.0))
    np.testing.assert_allclose(f60, 0.992, atol=1e-3)
    frac = (ang <= 60).mean()
    assert abs(frac - f60) < 4 * math.sqrt(f60 * (1 - f60) / n)
    f15 = float(mackenzie_cdf(15.0))
    np.testing.assert_allclose(f15, 0.0227, atol=2e-4)
    assert abs((ang < 15).mean() - f15) < 4 * math.sqrt(f15 * (1 - f15) / n)
    # the whole distribution up to 60 degrees (where the closed form is simple)
    kept = ang[ang <= 60]
    assert stats.kstest(kept, lambda t: mackenzie_cdf(t) / f60).pvalue > 0.01
    # and the test can fail: the uncorrected (no symmetry) angles do
    raw = misorientation_angles(
        o.quaternions, np.tile(IDENTITY, (n, 1)), symmetry="none"
    )
    kept_raw = raw[raw <= 60]
    assert stats.kstest(kept_raw, lambda t: mackenzie_cdf(t) / f60).pvalue < 1e-6


def test_random_seeded():
    a = random_orientations(10, seed=3).quaternions
    np.testing.assert_array_equal(a, random_orientations(10, seed=3).quaternions)
    assert not np.allclose(a, random_orientations(10, seed=4).quaternions)


def test_cubic_symmetry_group():
    s = cubic_symmetry()
    assert len(s) == 24
    np.testing.assert_allclose(s[0].as_matrix(), np.eye(3), atol=0)
    mats = np.round(s.as_matrix()).astype(int)
    # every matrix is a signed permutation with det +1, all distinct
    assert len({m.tobytes() for m in mats}) == 24
    np.testing.assert_allclose(np.linalg.det(mats), 1.0, atol=0)
    assert (np.abs(mats).sum(axis=1) == 1).all()


@pytest.mark.parametrize(
    ("euler_b", "none", "cubic"),
    [
        ((0, 0, 90), 90.0, 0.0),  # a cube symmetry operation
        ((0, 0, 45), 45.0, 45.0),
        ((0, 45, 0), 45.0, 45.0),  # cube -> Goss
        ((0, 0, 100), 100.0, 10.0),
    ],
)
def test_misorientation_known(euler_b, none, cubic):
    a = Orientations.from_euler([[0, 0, 0]]).quaternions
    b = Orientations.from_euler([euler_b]).quaternions
    np.testing.assert_allclose(
        misorientation_angles(a, b, symmetry="none"), [none], atol=1e-9
    )
    np.testing.assert_allclose(misorientation_angles(a, b), [cubic], atol=1e-9)


def test_misorientation_sigma3_and_maximum():
    a = Orientations.from_euler([[0, 0, 0]]).quaternions
    # Sigma 3 twin: 60 degrees about [111] is its own disorientation
    s3 = Rotation.from_rotvec(np.radians(60) * np.ones(3) / math.sqrt(3))
    b = Orientations.from_rotation(s3).quaternions
    np.testing.assert_allclose(misorientation_angles(a, b), [60.0], atol=1e-9)
    # the largest cubic disorientation, 62.8 deg about [1, 1, sqrt2 - 1]
    axis = np.array([1.0, 1.0, math.sqrt(2) - 1])
    c = Orientations.from_rotation(
        Rotation.from_rotvec(np.radians(62.7994) * axis / np.linalg.norm(axis))
    ).quaternions
    np.testing.assert_allclose(misorientation_angles(a, c), [62.7994], atol=1e-6)


def test_misorientation_symmetric_and_invariant(rng):
    o = random_orientations(30, seed=11)
    q = o.quaternions
    ab = misorientation_angles(q[:15], q[15:])
    np.testing.assert_allclose(ab, misorientation_angles(q[15:], q[:15]), atol=1e-9)
    # replacing a grain by a symmetry-equivalent orientation changes nothing
    s = cubic_symmetry()
    equiv = Orientations.from_rotation(o.as_rotation()[:15] * s[5]).quaternions
    np.testing.assert_allclose(misorientation_angles(equiv, q[15:]), ab, atol=1e-9)
    with pytest.raises(ValueError, match="symmetry must be one of"):
        misorientation_angles(q[:2], q[2:4], symmetry="hexagonal")
    with pytest.raises(ValueError, match=r"shape \(M, 4\)"):
        misorientation_angles(q[:2], q[:3])


# ----------------------------------------------------------------------------------
# texture components


TABULATED = {
    "cube": (0.0, 0.0, 0.0),
    "goss": (0.0, 45.0, 0.0),
    "brass": (35.26, 45.0, 0.0),
    "copper": (90.0, 35.26, 45.0),
    "s": (58.98, 36.70, 63.43),
}


@pytest.mark.parametrize("name", sorted(TEXTURE_COMPONENTS))
def test_components_are_the_tabulated_ones(name):
    o = ideal(name)
    np.testing.assert_allclose(o.euler_deg[0], TABULATED[name], atol=0.006)
    # ND (sample z) and RD (sample x) in crystal components are the Miller indices
    hkl, uvw = TEXTURE_COMPONENTS[name]
    g = o.sample_to_crystal()[0]
    np.testing.assert_allclose(
        g @ [0, 0, 1], np.array(hkl) / np.linalg.norm(hkl), atol=1e-12
    )
    np.testing.assert_allclose(
        g @ [1, 0, 0], np.array(uvw) / np.linalg.norm(uvw), atol=1e-12
    )
    assert np.dot(hkl, uvw) == 0


@pytest.mark.parametrize("name", ["cube", "copper", "s"])
@pytest.mark.parametrize("scatter", [4.0, 10.0])
def test_scatter_is_the_mean_misorientation(name, scatter):
    n = 2000
    o = texture_orientations(n, name, scatter=scatter, seed=2, sample_symmetry="none")
    ref = np.tile(ideal(name).quaternions, (n, 1))
    ang = misorientation_angles(o.quaternions, ref, symmetry="none")
    # Maxwell: mean = scatter, sd = scatter * sqrt(pi/8) * sqrt(3 - 8/pi) ~ 0.42 scatter
    np.testing.assert_allclose(ang.mean(), scatter, rtol=0.04)
    np.testing.assert_allclose(ang.std(), 0.422 * scatter, rtol=0.08)
    # the scatter is small, so crystal symmetry does not shorten it
    np.testing.assert_allclose(
        misorientation_angles(o.quaternions, ref), ang, atol=1e-9
    )


def test_sample_symmetry_variants():
    n = 800
    o = texture_orientations(n, "copper", scatter=0.0, seed=4)
    ang = misorientation_angles(
        o.quaternions, np.tile(ideal("copper").quaternions, (n, 1))
    )
    # Copper has two distinct variants under orthorhombic sample symmetry
    values = np.unique(np.round(ang, 6))
    assert len(values) == 2 and values[0] == 0.0
    assert 0.4 < (ang < 1e-6).mean() < 0.6


def test_texture_mix_fractions():
    n = 200
    o = texture_orientations(n, "cube:0.5,goss:0.3", scatter=2.0, seed=8)
    q = o.quaternions
    to_cube = misorientation_angles(q, np.tile(ideal("cube").quaternions, (n, 1)))
    to_goss = misorientation_angles(q, np.tile(ideal("goss").quaternions, (n, 1)))
    near_cube, near_goss = (to_cube < 8).sum(), (to_goss < 8).sum()
    # 100 cube and 60 Goss grains; the 40 random ones rarely fall within 8 degrees
    assert 100 <= near_cube <= 103 and 60 <= near_goss <= 63


def test_texture_fractions_by_volume(rng):
    n = 400
    vol = np.exp(rng.normal(scale=0.8, size=n))
    o = texture_orientations(
        n, "cube:0.5,goss:0.3", scatter=2.0, seed=8, volumes=vol, sample_symmetry="none"
    )
    to_cube = misorientation_angles(
        o.quaternions, np.tile(ideal("cube").quaternions, (n, 1))
    )
    to_goss = misorientation_angles(
        o.quaternions, np.tile(ideal("goss").quaternions, (n, 1))
    )
    cube, goss = to_cube < 8, to_goss < 8
    # within half the largest grain (plus the rare random grain that lands close)
    tol = vol.max() / vol.sum()
    np.testing.assert_allclose(vol[cube].sum() / vol.sum(), 0.5, atol=tol)
    np.testing.assert_allclose(vol[goss].sum() / vol.sum(), 0.3, atol=tol)
    # by number, the same mix gives other volume fractions
    assert abs(cube.sum() / n - 0.5) > 0.01 or abs(goss.sum() / n - 0.3) > 0.01
    with pytest.raises(ValueError, match="volumes must be 400 finite numbers"):
        texture_orientations(n, "cube", volumes=-vol)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("cube", {"cube": 1.0}),
        ("Cube:0.25, GOSS:0.25", {"cube": 0.25, "goss": 0.25, "random": 0.5}),
        ("copper:0.4,s", {"copper": 0.4, "s": 0.6}),
        ("random", {"random": 1.0}),
        ({"brass": 1.0}, {"brass": 1.0}),
    ],
)
def test_parse_texture(spec, expected):
    assert parse_texture(spec) == expected


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("cubic:0.5", "component 'cubic'.*unknown"),
        ("cube:0.7,goss:0.7", "sum to 1.4"),
        ("cube:-0.1", "expected a fraction in"),
        ("cube:abc", "expected a fraction in"),
        ("cube,cube", "given twice"),
        (" , ", "is empty"),
    ],
)
def test_parse_texture_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_texture(spec)


def test_texture_errors():
    with pytest.raises(ValueError, match=r"scatter must be.*\[0, 60\]"):
        texture_orientations(3, "cube", scatter=90)
    with pytest.raises(ValueError, match="n_grains must be an integer >= 1"):
        texture_orientations(0, "cube")
    with pytest.raises(ValueError, match="sample_symmetry"):
        texture_orientations(3, "cube", sample_symmetry="cubic")


def test_assign_orientations_per_phase():
    phases = np.array([0, 1] * 20)
    o = assign_orientations(phases, ["cube", "goss"], scatter=[2.0, 3.0], seed=1)
    np.testing.assert_array_equal(o.phases, phases)
    q0 = o.quaternions[phases == 0]
    q1 = o.quaternions[phases == 1]
    to_cube = misorientation_angles(q0, np.tile(ideal("cube").quaternions, (20, 1)))
    to_goss = misorientation_angles(q1, np.tile(ideal("goss").quaternions, (20, 1)))
    assert to_cube.max() < 10 and to_goss.max() < 12
    same = assign_orientations(phases, ["cube", "goss"], scatter=[2.0, 3.0], seed=1)
    np.testing.assert_array_equal(same.quaternions, o.quaternions)
    with pytest.raises(ValueError, match="one texture per phase"):
        assign_orientations(phases, ["cube"])


# ----------------------------------------------------------------------------------
# files


def test_read_quaternion_file(tmp_path):
    o = random_orientations(4, seed=1)
    q = o.quaternions.copy()
    q[1] *= -1  # either sign is the same rotation
    lines = ["# grain orientations", "w x y z  # header"]
    lines += [" ".join(repr(float(v)) for v in row) for row in q[:2]]
    lines.append("")
    lines += [
        ", ".join(map(repr, row.tolist())) + "  # comma separated" for row in q[2:]
    ]
    path = tmp_path / "q.txt"
    path.write_text("\n".join(lines) + "\n")
    got = read_orientations(path, 4)
    np.testing.assert_allclose(got.quaternions, o.quaternions, atol=1e-15)
    assert got.description.startswith("file:")
    # no header: 4 columns are quaternions
    plain = tmp_path / "p.txt"
    plain.write_text("\n".join(" ".join(map(repr, row.tolist())) for row in q) + "\n")
    np.testing.assert_allclose(
        read_orientations(plain).quaternions, o.quaternions, atol=1e-15
    )


def test_read_euler_file(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("phi1 Phi phi2\n0 45 0\n# Brass\n35.26 45 0\n90 35.26 45\n")
    o = read_orientations(path, phases=[0, 1, 1])
    np.testing.assert_allclose(o.euler_deg[0], [0, 45, 0], atol=1e-12)
    np.testing.assert_allclose(o.euler_deg[2], [90, 35.26, 45], atol=1e-9)
    assert o.phases.tolist() == [0, 1, 1]
    headerless = tmp_path / "h.txt"
    headerless.write_text("0 45 0\n")
    np.testing.assert_allclose(
        read_orientations(headerless).euler_deg, [[0, 45, 0]], atol=1e-12
    )


@pytest.mark.parametrize(
    ("text", "n", "match"),
    [
        ("0 0 0\n1 2 3 4\n", None, "line 2 has 4 columns but line 1 has 3"),
        ("0 0 0\n1 2\n", None, "line 2 has 2 columns"),
        ("1 0 0 0 0\n", None, "line 1 has 5 columns; expected 4"),
        ("0 0 0\n0 a 0\n", None, "line 2: '0 a 0' is not numeric"),
        ("0.5 0.5 0.5 0.2\n", None, "line 1: quaternion has norm"),
        ("0 0 0\n0 0 0\n", 3, "has 2 orientations; expected 3"),
        ("# only a comment\n\n", None, "no data lines"),
        ("w x y z\n0 0 0\n", None, "quaternion header but 3 columns"),
    ],
)
def test_read_orientation_errors(tmp_path, text, n, match):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_orientations(path, n)


def test_read_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_orientations(tmp_path / "nope.txt")


# ----------------------------------------------------------------------------------
# misorientation statistics on grain maps


def test_misorientation_statistics_on_a_map():
    # four vertical stripes 0 | 1 | 2 | 3, periodic in x: pairs 01, 12, 23, 03
    gm = np.repeat(np.arange(4), 3)[None, :].repeat(5, axis=0)
    o = Orientations.from_euler(
        [[0, 0, 0], [0, 0, 10], [0, 0, 42], [0, 0, 0]], phases=[0, 0, 0, 1]
    )
    st = grain_statistics(gm, periodic=True, orientations=o)
    mis = st.misorientation
    assert mis is not None
    np.testing.assert_array_equal(mis.pairs, [[0, 1], [0, 3], [1, 2], [2, 3]])
    np.testing.assert_allclose(mis.angles[[0, 2]], [10.0, 32.0], atol=1e-9)
    assert np.isnan(mis.angles[[1, 3]]).all()  # interphase boundaries
    assert mis.n_pairs == 2 and mis.n_interphase == 2
    np.testing.assert_allclose([mis.mean, mis.median], [21.0, 21.0], atol=1e-9)
    assert mis.low_angle_fraction == 0.5
    np.testing.assert_allclose(mis.low_angle_area_fraction, 0.5, atol=1e-12)
    assert mis.counts.sum() == 2 and mis.counts[2] == 1 and mis.counts[6] == 1
    np.testing.assert_allclose(
        mis.per_grain_mean(4), [10.0, 21.0, 32.0, np.nan], atol=1e-9
    )
    summary = mis.summary()
    assert summary["n_pairs"] == 2 and summary["symmetry"] == "cubic"
    none = misorientation_statistics(st, o, symmetry="none", low_angle=5.0)
    assert none.low_angle_fraction == 0.0 and none.bin_edges[-1] == 180.0


def test_misorientation_statistics_errors():
    o = random_orientations(3, seed=0)
    with pytest.raises(
        ValueError, match=r"pairs must be \(M, 2\) grain ids in \[0, 3\)"
    ):
        misorientation_statistics([[0, 5]], o)
    with pytest.raises(ValueError, match="low_angle must be in"):
        misorientation_statistics([[0, 1]], o, low_angle=0)
    gm = np.array([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="orientations has 3 grains but the map has"):
        grain_statistics(gm, orientations=o)


def test_voronoi_map_misorientations():
    # a Voronoi map of 40 grains from a brute-force argmin (no solver involved)
    rng = np.random.default_rng(3)
    seeds = rng.random((40, 2)) * 40
    yx = np.stack(np.meshgrid(np.arange(40) + 0.5, np.arange(40) + 0.5, indexing="ij"))
    gm = ((yx[..., None] - seeds.T[:, None, None, :]) ** 2).sum(0).argmin(-1)
    st = grain_statistics(gm, n_grains=40)
    o = random_orientations(40, seed=9)
    mis = misorientation_statistics(st, o)
    assert mis.n_pairs == len(st.neighbour_pairs) > 80
    assert 30 < mis.mean < 50 and mis.angles.max() <= 62.81
    ref = misorientation_angles(
        o.quaternions[st.neighbour_pairs[:, 0]], o.quaternions[st.neighbour_pairs[:, 1]]
    )
    np.testing.assert_allclose(mis.angles, ref, atol=0)


# ----------------------------------------------------------------------------------
# two phases


def brute_best_n1(n, f, r):
    best = min(
        range(1, n), key=lambda k: abs(math.log(f * (n - k) / ((1 - f) * k) / r))
    )
    return best


@pytest.mark.parametrize(
    ("n", "f", "r"), [(10, 0.5, 4.0), (50, 0.3, 2.0), (37, 0.8, 0.5), (200, 0.25, 1.0)]
)
def test_dual_phase_volumes(n, f, r):
    pv = dual_phase_volumes(n, f, r, seed=1)
    assert pv.volumes.shape == (n,) and pv.phases.shape == (n,)
    np.testing.assert_allclose(pv.volumes.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(pv.volumes[pv.phases == 1].sum(), f, rtol=1e-12)
    n1 = int((pv.phases == 1).sum())
    assert n1 == brute_best_n1(n, f, r) and pv.n_per_phase == (n - n1, n1)
    ratio = pv.volumes[pv.phases == 1].mean() / pv.volumes[pv.phases == 0].mean()
    np.testing.assert_allclose(ratio, pv.size_ratio, rtol=1e-12)
    # as close as whole grains allow: within one grain's step of the request
    assert abs(math.log(ratio / r)) <= math.log1p(1.0 / n1) + math.log1p(1.0 / (n - n1))
    if (n, f, r) == (10, 0.5, 4.0):
        np.testing.assert_allclose(ratio, 4.0, rtol=1e-12)


def test_dual_phase_warns_when_whole_grains_miss_the_ratio():
    with pytest.warns(
        RasterquantWarning, match=r"size_ratio 3 is met as 2.429 with 17 \+ 3"
    ):
        pv = dual_phase_volumes(20, 0.3, 3.0, seed=0)
    assert pv.n_per_phase == (17, 3)


def test_dual_phase_spread_keeps_fraction_and_ratio():
    pv = dual_phase_volumes(300, 0.4, 3.0, sigma=0.5, seed=2)
    v, p = pv.volumes, pv.phases
    np.testing.assert_allclose(v[p == 1].sum(), 0.4, rtol=1e-12)
    np.testing.assert_allclose(
        v[p == 1].mean() / v[p == 0].mean(), pv.size_ratio, rtol=1e-12
    )
    np.testing.assert_allclose(pv.size_ratio, 3.0, rtol=0.05)
    assert np.log(v[p == 0]).std() > 0.4  # the spread is there


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_grains": 1, "phase_fraction": 0.5}, "n_grains must be >= 2"),
        ({"n_grains": 5, "phase_fraction": 1.0}, r"phase_fraction must be in \(0, 1\)"),
        ({"n_grains": 5, "phase_fraction": 0.5, "size_ratio": 0}, "size_ratio must be"),
        ({"n_grains": 5, "phase_fraction": 0.5, "sigma": -1}, "sigma must be"),
    ],
)
def test_dual_phase_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dual_phase_volumes(**kwargs)


def test_dual_phase_microstructure_meets_fraction_and_ratio():
    pv = dual_phase_volumes(16, 0.35, 2.5, seed=4)
    ms = generate_microstructure(
        (64, 64),
        volumes=pv.volumes,
        phases=pv.phases,
        tol=0.02,
        seed=4,
        lloyd_iterations=2,
    )
    np.testing.assert_array_equal(ms.phases, pv.phases)
    phase_map = ms.phases[ms.grain_map]
    # voxel volumes within tol of the targets: the fraction and ratio follow
    np.testing.assert_allclose((phase_map == 1).mean(), 0.35, rtol=0.02)
    vol = ms.stats.volume
    ratio = vol[ms.phases == 1].mean() / vol[ms.phases == 0].mean()
    np.testing.assert_allclose(ratio, pv.size_ratio, rtol=0.04)
    np.testing.assert_allclose(pv.size_ratio, 2.5, rtol=0.15)
