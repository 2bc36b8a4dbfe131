"""``rasterquant microstructure`` with orientations, textures and two phases."""

import csv
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from rasterquant.cli._common import sidecar_path
from rasterquant.cli.main import main
from rasterquant.io import read_tesr, read_vti
from rasterquant.io.neper import read_ori
from rasterquant.microstructure import Orientations, misorientation_angles


def import_or_skip(name):
    """Import an optional module, or skip the test saying why (any ImportError)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.skip(f"{name} is not importable ({exc}); install it to run this test")


def base(tmp_path, *extra, shape=("16", "16", "16"), n="12"):
    return [
        "microstructure",
        "--shape",
        *shape,
        "-n",
        n,
        "--tol",
        "0.1",
        "--lloyd",
        "1",
        "--seed",
        "3",
        "--quiet",
        *extra,
    ]


def read_table(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def yaml_quaternions(path):
    lines = [
        x for x in Path(path).read_text().splitlines() if x.strip().startswith("O: [")
    ]
    return np.array(
        [[float(v) for v in x.split("[")[1].rstrip("]").split(",")] for x in lines]
    )


def test_cli_textured_dual_phase_16cubed(tmp_path):
    out = tmp_path / "g"
    argv = base(
        tmp_path,
        "--texture",
        "copper:0.5,s:0.5",
        "--texture2",
        "cube",
        "--scatter",
        "4",
        "--phase-fraction",
        "0.4",
        "--size-ratio",
        "2",
        "--phase-names",
        "matrix",
        "particles",
        "-o",
        f"{out}.vti",
        "-o",
        f"{out}.tesr",
    )
    assert main(argv) == 0
    yml, ori_path = tmp_path / "g.material.yaml", tmp_path / "g.ori"
    assert yml.is_file() and ori_path.is_file()
    side = json.loads(Path(sidecar_path(f"{out}.vti")).read_text())
    assert str(yml) in side["outputs"] and str(ori_path) in side["outputs"]
    table = read_table(side["parameters"]["table"])
    assert len(table) == 12
    phases = np.array([int(r["phase"]) for r in table])
    euler = np.array([[float(r[k]) for k in ("phi1", "Phi", "phi2")] for r in table])
    quat = np.array([[float(r[f"q_{k}"]) for k in "wxyz"] for r in table])
    o = Orientations.from_euler(euler)
    np.testing.assert_allclose(o.quaternions, quat, atol=1e-12)
    # the .vti material ids index material.yaml, whose O is the table's quaternion
    data, _, _ = read_vti(f"{out}.vti")
    gm = data["material"][..., :]
    np.testing.assert_array_equal(data["phase"], phases[gm])
    np.testing.assert_allclose(yaml_quaternions(yml), quat, atol=0)
    text = yml.read_text()
    assert text.count("phase: particles") == (phases == 1).sum()
    # .ori line i and the .tesr *ori row i are grain i (tesr cell i + 1)
    np.testing.assert_allclose(read_ori(ori_path), euler, atol=1e-9)
    tesr_text = Path(f"{out}.tesr").read_text()
    assert "  *ori\n   e\n" in tesr_text and "  *crysym\n   cubic\n" in tesr_text
    tmap = read_tesr(f"{out}.tesr")[0]
    np.testing.assert_array_equal(tmap, gm)
    # textures per phase: phase 1 near cube, phase 0 near copper or S
    cube = np.tile([1.0, 0, 0, 0], ((phases == 1).sum(), 1))
    assert misorientation_angles(quat[phases == 1], cube).max() < 15
    # sidecar: misorientation statistics and the achieved phase split
    diag = side["diagnostics"]
    mis = diag["misorientation"]
    assert mis["symmetry"] == "cubic" and mis["n_pairs"] + mis["n_interphase_pairs"] > 0
    assert sum(mis["histogram_counts"]) == mis["n_pairs"]
    assert 0 <= mis["low_angle_fraction"] <= 1
    ph = diag["phases"]
    assert ph["n_per_phase"] == [int((phases == 0).sum()), int((phases == 1).sum())]
    np.testing.assert_allclose(ph["volume_fraction"][1], 0.4, atol=0.1 * 0.4)
    assert side["parameters"]["phase_fraction"] == 0.4
    assert "Bunge" in side["parameters"]["orientation_convention"]


def test_cli_damask_reads_outputs(tmp_path):
    damask = import_or_skip("damask")
    out = tmp_path / "g"
    assert main(base(tmp_path, "--orientations", "random", "-o", f"{out}.vti")) == 0
    cfg = damask.ConfigMaterial.load(tmp_path / "g.material.yaml")
    assert cfg.is_complete and cfg.is_valid and len(cfg["material"]) == 12
    grid = damask.GeomGrid.load(f"{out}.vti")
    table = read_table(f"{out}.vti.grains.csv")
    ids = np.array([int(r["grain_id"]) for r in table])
    euler = np.array([[float(r[k]) for k in ("phi1", "Phi", "phi2")] for r in table])
    np.testing.assert_array_equal(np.unique(grid.material), ids)
    q = np.array([cfg["material"][i]["constituents"][0]["O"] for i in ids])
    d_euler = damask.Rotation.from_quaternion(q).as_Euler_angles(degrees=True)
    np.testing.assert_allclose(d_euler, euler, atol=1e-9)


def test_cli_orientation_file_2d_explicit_outputs(tmp_path):
    ori_in = tmp_path / "in.txt"
    ori_in.write_text(
        "# Bunge\n" + "\n".join(f"{10 * i} 45 0" for i in range(6)) + "\n"
    )
    argv = base(
        tmp_path,
        "--orientations",
        str(ori_in),
        "--symmetry",
        "none",
        "-o",
        str(tmp_path / "m.npy"),
        "-o",
        str(tmp_path / "mat.yaml"),
        "-o",
        str(tmp_path / "n.ori"),
        shape=("24", "24"),
        n="6",
    )
    assert main(argv) == 0
    np.testing.assert_allclose(
        read_ori(tmp_path / "n.ori")[:, 0], np.arange(6) * 10.0, atol=1e-9
    )
    assert (tmp_path / "mat.yaml").is_file()
    assert not (tmp_path / "m.material.yaml").exists()
    side = json.loads(Path(sidecar_path(tmp_path / "m.npy")).read_text())
    mis = side["diagnostics"]["misorientation"]
    assert mis["symmetry"] == "none" and mis["histogram_edges_deg"][-1] == 180.0
    # grains differ by multiples of 10 degrees about ND: so do all boundary angles
    table = read_table(tmp_path / "m.npy.grains.csv")
    np.testing.assert_allclose(
        [float(r["phi1"]) for r in table], np.arange(6) * 10.0, atol=1e-9
    )
    edges = np.array(mis["histogram_edges_deg"])
    counts = np.array(mis["histogram_counts"])
    assert counts.sum() == mis["n_pairs"] and counts[edges[:-1] > 50].sum() == 0


def test_cli_yaml_output_alone_gives_random_orientations(tmp_path):
    argv = base(tmp_path, "-o", str(tmp_path / "a.npy"), "-o", str(tmp_path / "a.yaml"))
    assert main(argv) == 0
    side = json.loads(Path(sidecar_path(tmp_path / "a.npy")).read_text())
    assert side["parameters"]["orientations"] == "random"
    assert len(yaml_quaternions(tmp_path / "a.yaml")) == 12


def test_cli_without_orientations_is_unchanged(tmp_path):
    argv = base(tmp_path, "-o", str(tmp_path / "p.vti"), "-o", str(tmp_path / "p.tesr"))
    assert main(argv) == 0
    assert not (tmp_path / "p.material.yaml").exists()
    assert not (tmp_path / "p.ori").exists()
    side = json.loads(Path(sidecar_path(tmp_path / "p.vti")).read_text())
    assert "misorientation" not in side["diagnostics"]
    assert "*ori" not in (tmp_path / "p.tesr").read_text()


@pytest.mark.parametrize(
    "extra",
    [
        ["--orientations", "random", "--texture", "cube"],
        ["--scatter", "5"],
        ["--size-ratio", "2"],
        ["--texture", "cubic:1"],
        ["--texture", "cube:0.8,goss:0.8"],
        ["--phase-fraction", "1.5"],
        ["--phase-fraction", "0.3", "--volumes", "uniform:1,2"],
        ["--texture2", "cube"],
        ["--scatter", "100", "--texture", "cube"],
        ["--symmetry", "hexagonal"],
    ],
)
def test_cli_usage_errors_exit_2(tmp_path, extra, capsys):
    argv = base(
        tmp_path, "-o", str(tmp_path / "u.npy"), *extra, shape=("8", "8"), n="4"
    )
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err
    assert not (tmp_path / "u.npy").exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("0 0 0\n0 0 0\n", "has 2 orientations; expected 4"),
        ("0 0 0\n1 2 3 4\n", "line 2 has 4 columns"),
        (None, "does not exist"),
    ],
)
def test_cli_orientation_file_errors_exit_1(tmp_path, content, match, caplog):
    path = tmp_path / "o.txt"
    if content is not None:
        path.write_text(content)
    argv = base(
        tmp_path,
        "--orientations",
        str(path),
        "-o",
        str(tmp_path / "v.vti"),
        shape=("8", "8"),
        n="4",
    )
    assert main(argv) == 1
    assert match in caplog.text
    assert not (tmp_path / "v.vti").exists()
    assert not (tmp_path / "v.material.yaml").exists()
