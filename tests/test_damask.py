"""Crystal-plasticity inputs: DAMASK material.yaml (+ .vti), Neper .ori, .tesr *ori."""

import importlib
import re

import numpy as np
import pytest

from rasterquant.io import read_tesr, write_tesr, write_vti
from rasterquant.io.damask import write_material_yaml
from rasterquant.io.neper import read_ori, write_ori
from rasterquant.microstructure import (
    Orientations,
    assign_orientations,
    random_orientations,
)


def import_or_skip(name):
    """Import an optional module, or skip the test saying why (any ImportError)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"{name} is not importable ({exc}); install it to run this test")


class SmallMap:
    """A Voronoi grain map from a brute-force argmin (no solver involved)."""

    def __init__(self, shape, n, seed):
        rng = np.random.default_rng(seed)
        self.seeds = rng.random((n, len(shape))) * shape
        centres = np.stack(
            np.meshgrid(*[np.arange(k) + 0.5 for k in shape], indexing="ij"), -1
        )
        d = ((centres[..., None, :] - self.seeds) ** 2).sum(-1)
        self.grain_map = d.argmin(-1).astype(np.int32)
        self.n_grains = n
        self.phases = (np.arange(n) % 3 == 2).astype(np.int64)


@pytest.fixture(scope="module")
def small():
    """A small two-phase 3D grain map with per-phase textures."""
    ms = SmallMap((6, 8, 10), 7, seed=5)
    assert len(np.unique(ms.grain_map)) == 7
    ori = assign_orientations(ms.phases, ["copper:0.5", "cube"], scatter=5.0, seed=5)
    return ms, ori


def material_entries(text):
    """(phase, v, O) of each material entry, parsed with regular expressions."""
    body = text[text.index("\nmaterial:\n") :]
    pattern = re.compile(
        r"  - homogenization: (\S+)  # grain (\d+)\n"
        r"    constituents:\n"
        r"      - phase: (\S+)\n"
        r"        v: (\S+)\n"
        r"        O: \[([^\]]*)\]\n"
    )
    return [
        (m[0], int(m[1]), m[2], float(m[3]), [float(x) for x in m[4].split(",")])
        for m in pattern.findall(body)
    ]


def test_material_yaml_structure(tmp_path, small):
    ms, ori = small
    path = tmp_path / "material.yaml"
    write_material_yaml(path, ori, phase_names=["Cu", "Al"], header="made by a test")
    text = path.read_text()
    for section in ("\nhomogenization:\n  SX:\n", "\nphase:\n  Cu:\n", "\n  Al:\n"):
        assert section in text
    assert "EDIT" in text and "# made by a test" in text
    entries = material_entries(text)
    assert len(entries) == ms.n_grains == text.count("- homogenization:")
    for i, (homog, grain, phase, v, q) in enumerate(entries):
        assert homog == "SX" and grain == i and v == 1.0
        assert phase == ["Cu", "Al"][ori.phases[i]]
        np.testing.assert_array_equal(q, ori.quaternions[i])  # repr: exact


def test_material_yaml_reads_as_yaml_numbers(tmp_path, small):
    yaml = import_or_skip("yaml")
    _, ori = small
    path = tmp_path / "m.yaml"
    write_material_yaml(path, ori)
    cfg = yaml.safe_load(path.read_text())
    assert set(cfg) == {"homogenization", "phase", "material"}
    assert cfg["homogenization"]["SX"] == {
        "N_constituents": 1,
        "mechanical": {"type": "pass"},
    }
    assert set(cfg["phase"]) == {"phase_0", "phase_1"}
    elastic = cfg["phase"]["phase_0"]["mechanical"]["elastic"]
    assert isinstance(elastic["C_11"], float) and elastic["C_11"] == 1.073e11
    plastic = cfg["phase"]["phase_0"]["mechanical"]["plastic"]
    assert all(isinstance(v, float) for v in plastic["xi_0_sl"])
    got = np.array([m["constituents"][0]["O"] for m in cfg["material"]])
    np.testing.assert_array_equal(got, ori.quaternions)


def test_yaml_floats_have_dot_and_signed_exponent(tmp_path):
    o = Orientations.from_quaternions([[1.0, 1e-9, 0.0, -2e-17]])
    path = tmp_path / "m.yaml"
    write_material_yaml(path, o)
    line = next(x for x in path.read_text().splitlines() if "O: [" in x)
    assert line.strip() == "O: [1.0, 1.0e-09, 0.0, -2.0e-17]"


def test_damask_round_trip(tmp_path, small):
    damask = import_or_skip("damask")
    ms, ori = small
    gm = ms.grain_map
    vti, yml = tmp_path / "g.vti", tmp_path / "material.yaml"
    write_vti(vti, {"grain_id": gm, "material": gm}, spacing=(1.0, 2.0, 3.0))
    write_material_yaml(yml, ori, phase_names=["Cu", "Al"])
    cfg = damask.ConfigMaterial.load(yml)
    assert cfg.is_complete and cfg.is_valid
    assert len(cfg["material"]) == ms.n_grains
    grid = damask.GeomGrid.load(vti)
    # DAMASK indexes (x, y, z); rasterquant maps are (z, y, x)
    np.testing.assert_array_equal(grid.material.transpose(2, 1, 0), gm)
    np.testing.assert_allclose(grid.size, [30.0, 16.0, 6.0], rtol=1e-12)
    assert grid.N_materials == ms.n_grains
    # every voxel's material entry carries its grain's orientation and phase
    used = np.unique(grid.material)
    q = np.array([cfg["material"][i]["constituents"][0]["O"] for i in used])
    np.testing.assert_allclose(q, ori.quaternions[used], atol=0)
    phases = [cfg["material"][i]["constituents"][0]["phase"] for i in used]
    assert phases == [["Cu", "Al"][p] for p in ori.phases[used]]
    euler = damask.Rotation.from_quaternion(q).as_Euler_angles(degrees=True)
    np.testing.assert_allclose(euler, ori.euler_deg[used], atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"phase_names": ["only_one"]}, "phase_names has 1 names"),
        ({"phase_names": ["a b", "c"]}, "not a valid name"),
        ({"phase_names": ["a", "a"]}, "has duplicates"),
        ({"homogenization": "S X"}, "homogenization 'S X' is not a valid name"),
    ],
)
def test_material_yaml_errors(tmp_path, kwargs, match):
    o = random_orientations(3, seed=0, phases=[0, 1, 0])
    with pytest.raises(ValueError, match=match):
        write_material_yaml(tmp_path / "m.yaml", o, **kwargs)
    assert not (tmp_path / "m.yaml").exists()
    with pytest.raises(TypeError, match="must be an Orientations"):
        write_material_yaml(tmp_path / "m.yaml", o.quaternions)


# ----------------------------------------------------------------------------------
# Neper


def test_ori_round_trip(tmp_path):
    o = random_orientations(9, seed=2)
    path = tmp_path / "g.ori"
    write_ori(path, o)
    lines = path.read_text().splitlines()
    assert len(lines) == 9 and all(len(x.split()) == 3 for x in lines)
    np.testing.assert_allclose(read_ori(path), o.euler_deg, atol=1e-11)
    back = Orientations.from_euler(read_ori(path))
    np.testing.assert_allclose(back.quaternions, o.quaternions, atol=1e-11)


def test_ori_errors(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        write_ori(tmp_path / "a.ori", np.zeros((3, 4)))
    bad = tmp_path / "b.ori"
    bad.write_text("1 2 3\n1 2\n")
    with pytest.raises(ValueError, match="line 2"):
        read_ori(bad)


def tesr_ori_section(text):
    """Descriptor, angles and crystal symmetry of the **cell *ori field."""
    cell = text[text.index(" **cell") : text.index(" **data")]
    tokens = cell.split()
    start = tokens.index("*ori")
    stop = tokens.index("*crysym") if "*crysym" in tokens else len(tokens)
    descriptor = tokens[start + 1]
    angles = np.array(tokens[start + 2 : stop], dtype=float).reshape(-1, 3)
    crysym = tokens[stop + 1] if stop < len(tokens) else None
    ids = tokens[tokens.index("*id") + 1 : tokens.index("*seed")]
    return descriptor, angles, crysym, [int(i) for i in ids]


def test_tesr_orientation_section(tmp_path, small):
    ms, ori = small
    path = tmp_path / "g.tesr"
    write_tesr(
        path,
        ms.grain_map,
        spacing=0.5,
        seeds=ms.seeds,
        weights=np.zeros(ms.n_grains),
        orientations=ori,
        crysym="cubic",
    )
    text = path.read_text()
    descriptor, angles, crysym, ids = tesr_ori_section(text)
    assert descriptor == "e" and crysym == "cubic"
    assert ids == list(range(1, ms.n_grains + 1))
    np.testing.assert_allclose(angles, ori.euler_deg, atol=1e-12)
    # the fields after *seed do not disturb the reader
    gm, spacing, _, seeds, _ = read_tesr(path)
    np.testing.assert_array_equal(gm, ms.grain_map)
    np.testing.assert_allclose(spacing, (0.5, 0.5, 0.5), rtol=0)
    np.testing.assert_allclose(seeds, ms.seeds, rtol=1e-15)
    with pytest.raises(ValueError, match=r"orientations must be finite Bunge angles"):
        write_tesr(tmp_path / "x.tesr", ms.grain_map, orientations=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="crysym must be"):
        write_tesr(tmp_path / "x.tesr", ms.grain_map, crysym="fcc")
