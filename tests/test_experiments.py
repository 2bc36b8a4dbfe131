"""The numerical studies (small cases) and ``rasterquant experiment``."""

import csv
import itertools
import json
import logging

import numpy as np
import pytest

import rasterquant as rq
from rasterquant.cli.main import main
from rasterquant.experiments import (
    _common,
    run_compare,
    run_limits,
    run_rates,
    run_unstable,
)
from rasterquant.experiments._common import (
    aligned_resolution,
    auto_tol,
    koch_sizes,
    loglog_slope,
    make_density,
)
from rasterquant.sampling import sample_points


def _csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_helpers():
    assert aligned_resolution(1024, 31) == 1023
    assert aligned_resolution(10, 31) == 31
    assert koch_sizes([400, 961, 1600, 2500]) == [257, 1025]
    np.testing.assert_allclose(auto_tol(400, 2, quadrature="center"), 0.05)
    assert auto_tol(1e6, 2, quadrature="center") == 0.01
    assert auto_tol(400, 2) == 1e-6  # the default quadrature is fractional
    assert auto_tol(400, 2, quadrature="fractional") == 1e-6
    n = np.array([10, 100, 1000])
    np.testing.assert_allclose(loglog_slope(n, 3.0 * n**-1.5)[0], -1.5, rtol=1e-12)
    with pytest.raises(ValueError, match="tightness density needs N = n"):
        make_density("tightness", 64, 2, 10)


def test_rates_grid_cloud_matches_closed_form_and_files(tmp_path):
    """Grid clouds on the uniform density: F_N = 1/(6N) exactly, slope -1."""
    res = run_rates(
        resolution=64,
        n_list=(16, 64),
        densities=("uniform",),
        clouds=("grid",),
        out_dir=tmp_path,
        plot=False,
    )
    for row in res.rows:
        np.testing.assert_allclose(row["energy"], 1 / (6 * row["n"]), rtol=1e-12)
        np.testing.assert_allclose(
            row["barycenter_energy"], 1 / (6 * row["n"]), rtol=1e-12
        )
        assert row["energy_status"] == "converged"
    np.testing.assert_allclose(
        res.summary["slopes"]["uniform/grid"]["energy"], -1.0, rtol=1e-9
    )
    rows = _csv(tmp_path / "rates.csv")
    data = json.loads((tmp_path / "rates.json").read_text())
    for a, b, c in zip(res.rows, rows, data["rows"], strict=True):
        assert float(b["energy"]) == a["energy"] == c["energy"]
    assert data["summary"]["slopes"]["uniform/grid"]["energy"] == pytest.approx(-1)


@pytest.mark.parametrize("quadrature", ["center", "fractional"])
def test_rates_tightness_grid_exact_energy(quadrature):
    """Centre: the cells are unions of whole pixels, exact to rounding. Fractional:
    the masses meet tol = 1e-6 (auto_tol), so the energy is exact to ~tol^2."""
    res = run_rates(
        resolution=60,
        n_list=(36,),
        densities=("tightness",),
        clouds=("tightness-grid",),
        plot=False,
        quadrature=quadrature,
    )
    (row,) = res.rows
    assert row["resolution"] == 60
    rtol = 1e-12 if quadrature == "center" else 1e-9
    np.testing.assert_allclose(row["energy"], 2 / (12 * 5), rtol=rtol)
    np.testing.assert_allclose(row["barycenter_energy"], 2 / (12 * 5), rtol=rtol)


@pytest.fixture
def propagate(monkeypatch):
    """The CLI stops 'rasterquant' logs from propagating; caplog needs them."""
    monkeypatch.setattr(logging.getLogger("rasterquant"), "propagate", True)
    monkeypatch.setattr(logging.getLogger("rasterquant"), "handlers", [])


def test_cli_rates_energies_agree_with_the_api(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "experiment",
            "rates",
            "--resolution",
            "48",
            "--n-list",
            "16,36",
            "--densities",
            "uniform,gaussian",
            "--clouds",
            "grid,random",
            "--out-dir",
            str(out),
            "--seed",
            "3",
        ]
    )
    assert code == 0
    assert "pixels per cell used" in capsys.readouterr().err
    rows = _csv(out / "rates.csv")
    assert {r["cloud"] for r in rows} == {"grid", "random"}
    assert (out / "rates.json").exists()
    # the same energies from the public API, on the same raster and points
    for r in rows:
        density, res = make_density(r["density"], 48, 2, int(r["n"]))
        assert res == int(r["resolution"])
        rng = __import__("rasterquant.experiments.rates", fromlist=["_seed"])._seed(
            3, r["density"], r["cloud"], int(r["n"])
        )
        pts = _common.make_cloud(r["cloud"], density, int(r["n"]), rng)
        tol = float(r["tol"])
        with pytest.warns() if r["energy_status"] != "converged" else _nullctx():
            f = rq.quantization_energy(density, pts, tol=tol, on_failure="warn")
        assert f == float(r["energy"])
    # refuses to overwrite without --force
    assert main(["experiment", "rates", "--quick", "--out-dir", str(out)]) == 1


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_unstable_grid_stays_without_perturbation(tmp_path):
    res = run_unstable(
        resolution=60, iterations=3, epsilon=0.0, snapshots=(0, 2), out_dir=tmp_path
    )
    assert not res.summary["left_grid"]
    assert res.summary["left_at_iteration"] is None
    h = 2 * np.pi / 10
    for rec in res.rows:
        np.testing.assert_allclose(rec["energy"], 2 * h**2 / 12, rtol=1e-12)
        assert rec["residual"] <= 1e-12
    assert sorted(res.extra["snapshots"]) == [0, 2, 3]
    _pts, labels = res.extra["snapshots"][2]
    assert labels.shape == (60, 60) and len(np.unique(labels)) == 100
    snaps = np.load(tmp_path / "unstable_snapshots.npz")
    np.testing.assert_array_equal(snaps["labels_0"], res.extra["snapshots"][0][1])
    assert len(_csv(tmp_path / "unstable.csv")) == 4


def test_unstable_with_perturbation_records_residuals():
    res = run_unstable(resolution=60, iterations=2, epsilon=0.3, seed=1, plot=False)
    assert res.rows[0]["residual"] > 0.01
    assert res.rows[0]["deviation"] > 0
    assert res.summary["left_grid"]


def test_limits_and_compare_small():
    lim = run_limits(
        resolution=48, n_list=(9,), densities=("uniform",), iterations=8, plot=False
    )
    (row,) = lim.rows
    assert row["energy"] < row["initial_energy"]
    np.testing.assert_allclose(row["n_scaled_energy"], row["energy"] * 9, rtol=1e-12)
    cmp = run_compare(resolution=48, n=9, iterations=3, plot=False)
    classic = [r for r in cmp.rows if r["method"] == "classic"]
    uniform = [r for r in cmp.rows if r["method"] == "uniform"]
    assert len(classic) == len(uniform) == 4
    g = [r["voronoi_energy"] for r in classic]
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(g))
    assert uniform[-1]["energy"] < uniform[0]["energy"]


def test_pictures_skipped_without_matplotlib(tmp_path, monkeypatch, caplog, propagate):
    monkeypatch.setattr(_common, "pyplot", lambda: None)
    with caplog.at_level(logging.WARNING, logger="rasterquant"):
        res = run_rates(
            resolution=32,
            n_list=(4,),
            densities=("uniform",),
            clouds=("grid",),
            out_dir=tmp_path,
        )
    assert res.pictures_skipped
    assert "pictures skipped" in caplog.text
    assert not list(tmp_path.glob("*.png"))


def test_pictures_written_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    res = run_rates(
        resolution=32,
        n_list=(4, 16),
        densities=("uniform",),
        clouds=("grid", "jittered"),
        out_dir=tmp_path,
    )
    assert (tmp_path / "rates.png").stat().st_size > 1000
    assert not res.pictures_skipped


def test_rates_3d_small():
    res = run_rates(
        resolution=16,
        n_list=(8, 64),
        dim=3,
        densities=("uniform",),
        clouds=("grid",),
        plot=False,
    )
    for row in res.rows:
        s = row["n"] ** (-1 / 3)
        np.testing.assert_allclose(row["energy"], s**2 / 4, rtol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        run_rates(dim=4)
    with pytest.raises(ValueError, match="cloud must be one of"):
        run_rates(clouds=("spiral",), plot=False)
    assert main(["experiment", "rates", "--n-list", "1,x"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("study", ["rates", "unstable", "limits", "compare"])
def test_cli_quick_studies(tmp_path, study):
    assert main(["experiment", study, "--quick", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / f"{study}.csv").exists()


def test_grid_sampler_is_pixel_aligned_for_make_density():
    density, res = make_density("uniform", 100, 2, 49)
    assert res == 98
    pts = sample_points(density, 49, method="grid")
    np.testing.assert_allclose(pts[0], [1 / 14, 1 / 14], rtol=1e-12)


def test_full_rates_study_has_the_seeds_koch_sizes():
    """The full 2D study runs the Koch cloud at the seed's N (up to 16,385)."""
    from rasterquant.experiments import rates

    def koch_sizes(quick, n_list=None):
        _, _, _, _, cases = rates._checked_options(
            2, quick, None, n_list, ("uniform",), ("koch",),
            (0, None, None, None), (None, 0.5, 0.5, 0.5),
        )  # fmt: skip
        return [n for _, cloud, n in cases if cloud == "koch"]

    assert koch_sizes(False) == [257, 1025, 4097, 16385]
    assert max(koch_sizes(True)) <= 65  # --quick stays small
    assert koch_sizes(False, [400, 1600]) == [257, 1025]  # an explicit list rules
