"""Neper reads rasterquant's .tesr files, grain ids and orientations included.

Runs Neper itself where its executable is on the PATH (it is not a Python package:
build it from https://github.com/neperfepx/neper); skipped otherwise.
"""

import shutil
import subprocess

import numpy as np
import pytest

from rasterquant.io.neper import write_ori
from rasterquant.io.tesr import write_tesr
from rasterquant.microstructure import random_orientations

NEPER = shutil.which("neper")
pytestmark = pytest.mark.skipif(NEPER is None, reason="neper is not on the PATH")


def _cell_field(path, name, n):
    """Rows of the ``*name`` field of ``**cell`` (its descriptor line first)."""
    lines = open(path, "rb").read().split(b"\n")
    at = next(k for k, line in enumerate(lines) if line.strip() == b"*" + name)
    rows = [[float(x) for x in line.split()] for line in lines[at + 2 : at + 2 + n]]
    return lines[at + 1].strip().decode(), np.array(rows)


def _rodrigues(ori):
    """Rodrigues vectors ``tan(angle / 2) axis`` of the stored rotations."""
    rotvec = ori.as_rotation().as_rotvec()
    angle = np.linalg.norm(rotvec, axis=1)
    return rotvec / angle[:, None] * np.tan(angle / 2)[:, None]


def _neper(cwd, *args):
    out = subprocess.run(
        [NEPER, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_neper_loads_grains_and_orientations(tmp_path, rng):
    n = 12
    grains = rng.integers(0, n, size=(6, 7, 8))
    grains.reshape(-1)[:n] = np.arange(n)  # every grain present
    ori = random_orientations(n, seed=3)
    write_tesr(tmp_path / "g.tesr", grains, orientations=ori)
    out = _neper(tmp_path, "-T", "-loadtess", "g.tesr", "-o", "back", "-format", "tesr")
    assert f"({6 * 7 * 8}) points and {n} cells" in out
    # Neper writes the orientations back as passive Rodrigues vectors: those of the
    # rotation rasterquant stores (Bunge ZXZ, see microstructure/orientations.py)
    des, rod = _cell_field(tmp_path / "back.tesr", b"ori", n)
    assert des == "rodrigues:passive"
    np.testing.assert_allclose(rod, _rodrigues(ori), rtol=1e-9, atol=1e-9)


def test_neper_reads_the_ori_file_as_documented(tmp_path):
    # io/neper.py: read it with -ori "file(g.ori,des=euler-bunge)"
    n = 9
    ori = random_orientations(n, seed=5)
    write_ori(tmp_path / "g.ori", ori)
    _neper(
        tmp_path,
        "-T",
        "-n",
        str(n),
        "-ori",
        "file(g.ori,des=euler-bunge)",
        "-o",
        "t",
        "-format",
        "tess",
    )
    des, rod = _cell_field(tmp_path / "t.tess", b"ori", n)
    assert des == "rodrigues:passive"
    np.testing.assert_allclose(rod, _rodrigues(ori), rtol=1e-9, atol=1e-9)
