"""Pictures of ``rasterquant experiment`` (issue #17, item 15): ticks at the N values,
legends clear of the data, labelled axes, and an ``unstable --quick`` that shows
something."""

import itertools
import math

import numpy as np
import pytest

from rasterquant.experiments import _common, rates, run_rates, run_unstable, unstable

plt = pytest.importorskip("matplotlib.pyplot")


@pytest.fixture
def figures(monkeypatch):
    """Collect the figures the studies save (they are still written)."""
    caught = []

    def capture(module):
        real = module.save_figure

        def save(fig, path):
            caught.append(fig)
            real(fig, path)

        monkeypatch.setattr(module, "save_figure", save)

    capture.caught = caught
    return capture


def _data_points(fig):
    """Display coordinates of the vertices of every line drawn in data coordinates
    (markers, curves and fits; not axhline/axvline)."""
    pts = []
    for ax in fig.axes:
        for line in ax.lines:
            if line.get_transform() is not ax.transData:
                continue
            xy = np.asarray(line.get_xydata(), dtype=float)
            xy = xy[np.isfinite(xy).all(axis=1)]
            if len(xy):
                pts.append(ax.transData.transform(xy))
    return np.concatenate(pts) if pts else np.empty((0, 2))


def _legends(fig):
    out = list(fig.legends)
    out += [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return out


def _check_layout(fig):
    """Legends clear of the data points; x tick labels do not overlap; labels set."""
    fig.canvas.draw()
    points = _data_points(fig)
    assert len(points) > 0
    legends = _legends(fig)
    assert legends
    for legend in legends:
        box = legend.get_window_extent().padded(2)
        inside = (
            (points[:, 0] >= box.x0)
            & (points[:, 0] <= box.x1)
            & (points[:, 1] >= box.y0)
            & (points[:, 1] <= box.y1)
        )
        assert not inside.any(), points[inside]
    for ax in fig.axes:
        assert ax.get_ylabel().strip(), ax.get_title()
        assert ax.get_xlabel().strip(), ax.get_title()
        assert ax.get_title().strip()
        boxes = sorted(
            (t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()),
            key=lambda b: b.x0,
        )
        for a, b in itertools.pairwise(boxes):
            assert a.x1 <= b.x0, (ax.get_title(), a, b)


def test_rates_figure_ticks_legends_labels(tmp_path, figures):
    figures(rates)
    n_list = [16, 36]
    run_rates(
        resolution=32,
        n_list=n_list,
        densities=("uniform", "gaussian"),
        clouds=("random", "grid"),
        out_dir=tmp_path,
    )
    (fig,) = figures.caught
    assert (tmp_path / "rates.png").exists()
    _check_layout(fig)
    for ax in fig.axes:
        np.testing.assert_array_equal(ax.xaxis.get_majorticklocs(), n_list)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "36"]
        assert not any(t.get_text() for t in ax.xaxis.get_minorticklabels())
    plt.close(fig)


def _fake_rows(n_list, *, failed=()):
    """Rows shaped like the study's, with power laws (and NaN rows for failures)."""
    rows = []
    for d, density in enumerate(("uniform", "gaussian", "tightness")):
        for c, cloud in enumerate(("random", "grid", "separated", "koch")):
            for n in n_list:
                bad = (density, cloud) in failed or (density, "*") in failed
                value = float("nan") if bad else (1 + c + d) * n ** -(0.5 + 0.1 * c)
                rows.append(
                    {
                        "density": density,
                        "cloud": cloud,
                        "n": n,
                        "energy": value,
                        "barycenter_energy": value / 2,
                        "min_separation": value,
                        "energy_status": "failed" if bad else "converged",
                        "barycenter_status": "converged",
                        "error": "boom" if bad else "",
                    }
                )
    return rows


def test_rates_figure_full_size_n_and_failed_rows(tmp_path):
    """N of the default run: compact labels that do not overlap; failed rows
    (NaN) and a density whose every case failed do not break the log axes."""
    n_list = list(rates.DEFAULT_N_2D)
    rows = _fake_rows(n_list, failed={("uniform", "koch"), ("tightness", "*")})
    fig = rates._figure(_common.pyplot(), rows, n_list)
    _common.save_figure(fig, tmp_path / "rates.png")
    _check_layout(fig)
    for ax in fig.axes:
        np.testing.assert_array_equal(ax.xaxis.get_majorticklocs(), n_list)
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels == [rates.compact_number(n) for n in n_list]
    assert fig.axes[2].get_yscale() == "linear"  # tightness: nothing to log-scale
    assert fig.axes[0].get_yscale() == "log"


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (16, "16"),
        (961, "961"),
        (1600, "1.6k"),
        (2500, "2.5k"),
        (1728, "1.73k"),
        (10000, "10k"),
        (2_000_000, "2M"),
    ],
)
def test_compact_number(n, text):
    assert rates.compact_number(n) == text


def test_unstable_quick_shows_the_grid_leaving(tmp_path, figures):
    """The quick defaults move the iterates away from the grid: the energy drops
    below the grid's and the distance from the grid grows; both axes labelled."""
    figures(unstable)
    res = run_unstable(quick=True, out_dir=tmp_path)
    assert res.summary["left_grid"]
    fig = figures.caught[0]
    _check_layout(fig)
    energy_ax, dist_ax = fig.axes
    energy = energy_ax.lines[0].get_ydata()
    assert (energy.max() - energy.min()) / energy.max() > 1e-3
    assert energy[-1] < res.summary["grid_energy_exact"]
    deviation = dist_ax.lines[0].get_ydata()
    assert deviation[-1] > 5 * deviation[0]
    assert math.isclose(energy[0], res.rows[0]["energy"])
    for f in figures.caught:
        plt.close(f)
