"""``rasterquant experiment``: options checked before any work, no output from a
failed run, reruns, ``-o`` and ``--progress`` (issue #17, items 5 and 11)."""

import argparse
import json
import os

import pytest

from rasterquant.cli.main import build_parser, main
from rasterquant.experiments import rates, run_rates, unstable

#: a rates run of a fraction of a second: one density, one cloud, one N
TINY = [
    "experiment",
    "rates",
    "--resolution",
    "32",
    "--n-list",
    "16",
    "--densities",
    "uniform",
]


def _listing(folder):
    """Every file and folder under ``folder`` (hidden ones included), relative."""
    out = []
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            out.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(out)


def _err_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["rates", "--quick", "--quadrature", "bogus"], "--quadrature"),
        (["rates", "--quick", "--densities", "uniform,square"], "--densities"),
        (["rates", "--quick", "--clouds", "spiral"], "--clouds"),
        (["rates", "--quick", "--seed", "-1"], "--seed"),
        (["rates", "--quick", "--c0", "0"], "--c0"),
        (["unstable", "--quick", "--epsilon", "inf"], "--epsilon"),
        (["unstable", "--quick", "--snapshots", "0,-3"], "--snapshots"),
        (["unstable", "--quick", "--clouds", "grid"], "--clouds"),
        (["rates", "--quick", "--epsilon", "0.1"], "--epsilon"),
        (["limits", "--quick", "--densities", "tightness"], "--densities"),
        (["compare", "--quick", "--n-list", "16,36"], "--n-list"),
        (["rates", "--dim", "3", "--clouds", "koch,grid"], "--clouds"),
    ],
)
def test_bad_options_exit_2_before_any_work(tmp_path, capsys, argv, option):
    out = tmp_path / "s"
    code = main(["experiment", *argv, "--out-dir", str(out)])
    lines = _err_lines(capsys)
    assert code == 2
    assert len(lines) == 1, lines
    assert option in lines[0]
    assert not out.exists()
    assert _listing(tmp_path) == []


def test_api_checks_quadrature_before_any_work(tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("a case ran")

    monkeypatch.setattr(rates, "_one_row", no_work)
    with pytest.raises(ValueError, match="quadrature must be None or one of"):
        run_rates(quick=True, quadrature="bogus", out_dir=tmp_path / "s")
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        run_rates(quick=True, seed=-1)
    with pytest.raises(ValueError, match="no case to run"):
        run_rates(n_list=(20,), densities=("tightness",))
    with pytest.raises(ValueError, match="snapshots must be iterations from 0 to 3"):
        unstable.run_unstable(iterations=3, snapshots=(0, 5))
    assert _listing(tmp_path) == []


def test_every_case_failing_leaves_no_file_and_a_rerun_works(tmp_path, capsys):
    """Every case fails (the separated cloud does not fit): exit 1, one line, no
    folder; the next run in the same folder is not refused."""
    out = tmp_path / "s"
    failing = [*TINY, "--clouds", "separated", "--c0", "5", "--out-dir", str(out)]
    assert main(failing) == 1
    err = _err_lines(capsys)
    assert "all 1 cases failed" in err[-1]
    assert not out.exists()
    assert main([*TINY, "--clouds", "grid", "--out-dir", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["rates.csv", "rates.json", "rates.png"]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError])
def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch, exc):
    """An interrupt or error after the CSV is written (in the picture) removes the
    run's files, its temporary folder, and the output folder it created."""

    def broken(fig, path):
        raise exc("simulated")

    monkeypatch.setattr(rates, "save_figure", broken)
    out = tmp_path / "new" / "s"
    code = main([*TINY, "--clouds", "grid", "--out-dir", str(out)])
    assert code == (130 if exc is KeyboardInterrupt else 1)
    assert _listing(tmp_path) == []
    (tmp_path / "old").mkdir()
    assert main([*TINY, "--clouds", "grid", "--out-dir", str(tmp_path / "old")]) != 0
    assert _listing(tmp_path) == ["old"]


def test_rerun_same_parameters_is_done_other_parameters_refused(tmp_path, capsys):
    out = tmp_path / "s"
    argv = [*TINY, "--clouds", "grid", "--no-plot", "--out-dir", str(out)]
    assert main(argv) == 0
    assert _listing(tmp_path) == ["s", "s/rates.csv", "s/rates.json"]
    before = {p: (out / p).read_bytes() for p in os.listdir(out)}
    capsys.readouterr()
    assert main(argv) == 0  # the same command again: already done
    assert "already done" in capsys.readouterr().err
    assert {p: (out / p).read_bytes() for p in os.listdir(out)} == before
    # other parameters: refused in one line naming what differs; files untouched
    assert main([*argv, "--seed", "4"]) == 1
    lines = _err_lines(capsys)
    assert len(lines) == 1 and "seed" in lines[0] and "--force" in lines[0]
    assert {p: (out / p).read_bytes() for p in os.listdir(out)} == before
    assert main([*argv, "--seed", "4", "--force"]) == 0
    assert json.loads((out / "rates.json").read_text())["parameters"]["seed"] == 4


def test_force_rerun_leaves_only_the_new_set(tmp_path):
    """--force with other options: no picture of the earlier run stays behind."""
    out = tmp_path / "s"
    argv = [*TINY, "--clouds", "grid", "--out-dir", str(out)]
    assert main(argv) == 0
    assert sorted(os.listdir(out)) == ["rates.csv", "rates.json", "rates.png"]
    assert main([*argv, "--no-plot", "--force"]) == 0
    assert sorted(os.listdir(out)) == ["rates.csv", "rates.json"]
    outputs = json.loads((out / "rates.json").read_text())["outputs"]
    assert sorted(os.path.basename(p) for p in outputs) == sorted(os.listdir(out))


def test_incomplete_earlier_output_is_refused(tmp_path, capsys):
    """A file of the study without its JSON (an old crashed run) is not overwritten."""
    out = tmp_path / "s"
    out.mkdir()
    (out / "rates.csv").write_text("density\n")
    assert main([*TINY, "--clouds", "grid", "--out-dir", str(out)]) == 1
    assert "no readable rates.json" in _err_lines(capsys)[-1]
    assert (out / "rates.csv").read_text() == "density\n"


def test_some_cases_failing_keeps_outputs_and_flags_rows(tmp_path, capsys):
    out = tmp_path / "s"
    argv = [*TINY, "--clouds", "grid,separated", "--c0", "5", "--out-dir", str(out)]
    assert main(argv) == 0
    assert "1 of 2 cases failed" in capsys.readouterr().err
    data = json.loads((out / "rates.json").read_text())
    assert [r["error"] != "" for r in data["rows"]] == [False, True]
    assert len(data["summary"]["failed_cases"]) == 1
    assert (out / "rates.png").exists()


def test_out_dir_short_option_and_alias(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*TINY, "--clouds", "grid", "--no-plot", "-o", str(a)]) == 0
    assert main([*TINY, "--clouds", "grid", "--no-plot", "--out-dir", str(b)]) == 0
    assert (a / "rates.json").exists() and (b / "rates.json").exists()


def test_progress_bar_on_request_only(tmp_path, capsys):
    argv = [*TINY, "--clouds", "grid", "--no-plot"]
    bar = "case/s]"  # tqdm's rate, in cases per second
    assert main([*argv, "--progress", "--out-dir", str(tmp_path / "a")]) == 0
    assert bar in capsys.readouterr().err
    assert main([*argv, "--no-progress", "--out-dir", str(tmp_path / "b")]) == 0
    assert bar not in capsys.readouterr().err
    assert main([*argv, "--out-dir", str(tmp_path / "c")]) == 0  # not a TTY: no bar
    assert bar not in capsys.readouterr().err


def _experiment_parser():
    sub = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    return sub.choices["experiment"]


def test_every_option_has_help_with_its_default():
    parser = _experiment_parser()
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, action.option_strings
        if action.nargs != 0:  # takes a value: the help states the default
            assert "default" in action.help, action.option_strings
    assert "-o" in parser._option_string_actions
    assert parser._option_string_actions["-o"].dest == "out_dir"
    assert parser._option_string_actions["--out-dir"].dest == "out_dir"
    assert "--progress" in parser._option_string_actions


def test_help_states_the_true_defaults():
    parser = _experiment_parser()
    helps = {a.dest: a.help for a in parser._actions}
    args = parser.parse_args(["rates"])
    assert args.out_dir == "experiments" and "./experiments" in helps["out_dir"]
    assert args.seed == 0 and "(default: 0)" in helps["seed"]
    n2 = ",".join(map(str, rates.DEFAULT_N_2D))
    n3 = ",".join(map(str, rates.DEFAULT_N_3D))
    q2 = ",".join(map(str, rates.QUICK_N_2D))
    assert f"rates {n2} (3D: {n3})" in helps["n_list"]
    assert f"rates {q2}" in helps["n_list"]
    assert f"unstable {unstable.DEFAULT_RESOLUTION}" in helps["resolution"]
    assert f"unstable {unstable.QUICK_RESOLUTION}" in helps["resolution"]
    assert f"default {unstable.DEFAULT_ITERATIONS}" in helps["iterations"]
    assert f"--quick {unstable.QUICK_ITERATIONS}" in helps["iterations"]
    assert f"default: {unstable.DEFAULT_EPSILON:g}" in helps["epsilon"]
    default_snaps = ",".join(map(str, unstable.DEFAULT_SNAPSHOTS))
    assert default_snaps in helps["snapshots"]


@pytest.mark.slow
def test_readme_command_twice(tmp_path, monkeypatch):
    """README: ``rasterquant experiment rates --quick --out-dir study/``, twice."""
    monkeypatch.chdir(tmp_path)
    argv = ["experiment", "rates", "--quick", "--out-dir", "study/"]
    assert main(argv) == 0
    assert main(argv) == 0
    assert sorted(os.listdir("study")) == ["rates.csv", "rates.json", "rates.png"]
