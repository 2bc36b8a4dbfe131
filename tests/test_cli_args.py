"""One command-line convention (issue #17, items 10 and 11).

Bad arguments exit 2 with one line on stderr, for every command; every option has
a help text; the help states the defaults that are actually used. Most tests only
parse (no solve), so they are quick.
"""

import argparse
import re

import numba
import numpy as np
import pytest

from rasterquant.cli.main import build_parser, main

TOO_MANY_THREADS = str(numba.config.NUMBA_NUM_THREADS + 1)


def _argv(command, tmp_path):
    """A valid command line for ``command`` (before the option under test)."""
    return {
        "quantize": ["quantize", str(tmp_path / "in.npy"), "-n", "3"],
        "stipple": ["stipple", str(tmp_path / "in.png"), "-n", "3"],
        "batch": ["batch", str(tmp_path), str(tmp_path / "out"), "-n", "3"],
        "microstructure": ["microstructure", "--shape", "8", "8", "-n", "3"],
        "info": ["info"],
    }[command]


def _output(command, tmp_path):
    return {
        "quantize": ["-o", str(tmp_path / "q.csv")],
        "stipple": ["-o", str(tmp_path / "s.svg")],
        "microstructure": ["-o", str(tmp_path / "m.npy")],
    }.get(command, [])


def _one_error_line(capsys, command):
    """The single stderr line of a rejected command line."""
    prog = f"rasterquant {command}".strip()
    _out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: "), err
    assert lines[0].endswith(f"(see '{prog} --help')"), err
    assert "usage:" not in err and "Traceback" not in err
    return lines[0]


BAD_VALUES = [
    ("quantize", ["-n", "-5"], r"argument -n/--n-points: expected an integer >= 1"),
    ("stipple", ["-n", "-5"], r"argument -n/--n-points: expected an integer >= 1"),
    ("batch", ["-n", "-5"], r"argument -n/--n-points: expected an integer >= 1"),
    ("microstructure", ["-n", "-5"], r"argument -n/--n-grains: expected an integer"),
    ("quantize", ["--tol", "2"], r"argument --tol: expected a tolerance in \(0, 1\)"),
    ("stipple", ["--tol", "2"], r"argument --tol: expected a tolerance in \(0, 1\)"),
    ("batch", ["--tol", "2"], r"argument --tol: expected a tolerance in \(0, 1\)"),
    ("microstructure", ["--tol", "2"], r"argument --tol: expected a tolerance"),
    ("quantize", ["--method", "foo"], r"argument --method: invalid choice: 'foo'"),
    ("stipple", ["--method", "foo"], r"argument --method: invalid choice: 'foo'"),
    ("batch", ["--method", "foo"], r"argument --method: invalid choice: 'foo'"),
    ("quantize", ["--gamma", "-1"], r"argument --gamma: expected a number > 0"),
    ("stipple", ["--gamma", "-1"], r"argument --gamma: expected a number > 0"),
    ("batch", ["--gamma", "-1"], r"argument --gamma: expected a number > 0"),
    ("quantize", ["--floor", "2"], r"argument --floor: expected a number in \[0, 1\)"),
    ("stipple", ["--floor", "-1"], r"argument --floor: expected a number in \[0, 1\)"),
    ("quantize", ["--step", "2"], r"argument --step: expected a step in \(0, 1\]"),
    ("quantize", ["--threads", TOO_MANY_THREADS], r"--threads: .* in 1\.\.\d+ "),
    ("stipple", ["--threads", "0"], r"argument --threads: expected an integer >= 1"),
    ("batch", ["--threads", TOO_MANY_THREADS], r"argument --threads: expected an"),
    ("microstructure", ["--threads", TOO_MANY_THREADS], r"argument --threads"),
    ("info", ["--threads", "0"], r"argument --threads: expected an integer >= 1"),
    ("info", ["--threads", TOO_MANY_THREADS], r"--threads: expected an integer in 1\."),
    ("stipple", ["--dot-size-range", "4", "1"], r"argument --dot-size-range: .*MIN"),
    ("stipple", ["--dot-size-range", "0", "1"], r"argument --dot-size-range: expected"),
    ("quantize", ["--bogus"], r"unrecognized arguments: --bogus"),
    ("microstructure", ["--periodic-axes", "xy"], r"argument --periodic-axes: .*x ="),
    ("microstructure", ["--periodic-axes", "2"], r"--periodic-axes: .*0\.\.1.*got 2"),
    ("microstructure", ["--shape", "4", "4", "4", "4"], r"argument --shape: expected"),
    ("microstructure", ["--spacing", "1", "2", "3"], r"argument --spacing: expected 1"),
]


@pytest.mark.parametrize(
    ("command", "extra", "match"),
    [pytest.param(c, e, m, id=f"{c} {' '.join(e)}") for c, e, m in BAD_VALUES],
)
def test_bad_argument_exits_2_with_one_line(tmp_path, capsys, command, extra, match):
    argv = [*_argv(command, tmp_path), *extra, *_output(command, tmp_path)]
    assert main(argv) == 2
    line = _one_error_line(capsys, command)
    assert re.search(match, line), line
    assert list(tmp_path.iterdir()) == []  # nothing was written


@pytest.mark.parametrize("command", ["quantize", "stipple", "batch"])
def test_missing_n_exits_2_and_usage_shows_it_required(tmp_path, capsys, command):
    argv = [a for a in _argv(command, tmp_path) if a not in ("-n", "3")]
    assert main([*argv, *_output(command, tmp_path)]) == 2
    line = _one_error_line(capsys, command)
    assert "the following arguments are required: -n/--n-points" in line
    usage = _subparser(command).format_usage()
    assert " -n N" in usage and "[-n N]" not in usage


def test_microstructure_law_without_n_exits_2(tmp_path, capsys):
    argv = ["microstructure", "--shape", "8", "8", "-o", str(tmp_path / "m.npy")]
    assert main(argv) == 2
    assert "-n/--n-grains" in _one_error_line(capsys, "microstructure")


def test_main_parser_errors_are_one_line(capsys):
    assert main([]) == 2
    assert "required: COMMAND" in _one_error_line(capsys, "")
    assert main(["frobnicate"]) == 2
    assert "invalid choice: 'frobnicate'" in _one_error_line(capsys, "")


@pytest.mark.parametrize(
    "command", ["quantize", "stipple", "microstructure", "batch", "info"]
)
def test_help_exits_0(capsys, command):
    assert main([command, "--help"]) == 0
    assert f"usage: rasterquant {command}" in capsys.readouterr().out


def _subparser(command):
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise AssertionError("no sub-commands")


def _all_parsers(parser, prog="rasterquant"):
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{prog} {name}")


def test_every_option_has_help():
    missing = [
        f"{prog} {action.option_strings or action.dest}"
        for prog, parser in _all_parsers(build_parser())
        for action in parser._actions
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS
    ]
    assert missing == []


def _help(command, option):
    for action in _subparser(command)._actions:
        if option in action.option_strings:
            return " ".join(action.help.split())
    raise AssertionError(f"{command} has no {option}")


def test_help_texts_named_in_the_issue():
    from rasterquant.cli.quantize import POINT_SUFFIXES

    out_help = _help("quantize", "-o")
    assert [s for s in POINT_SUFFIXES if s not in out_help] == []  # .xyz was missing
    assert "row, col" in out_help
    for command in ("quantize", "stipple", "batch"):
        assert "default" in _help(command, "--gamma")
        assert "default" in _help(command, "--floor")
    assert "bright is dense" in _help("quantize", "--no-invert")
    assert "dark is dense" in _help("quantize", "--invert")
    for command in ("quantize", "info", "microstructure"):
        assert "NUMBA_NUM_THREADS" in _help(command, "--threads")
    periodic = _help("microstructure", "--periodic-axes")
    assert "array order" in periodic and "'xy'" not in periodic


def test_invert_flags_parse():
    parser = build_parser()
    base = ["quantize", "in.png", "-n", "3", "-o", "q.csv"]
    assert parser.parse_args(base).invert is True
    assert parser.parse_args([*base, "--no-invert"]).invert is False
    assert parser.parse_args([*base, "--no-invert", "--invert"]).invert is True


@pytest.mark.parametrize(
    ("shape", "axes", "expected"),
    [
        (["8", "8", "8"], ["0", "2"], (True, False, True)),
        (["8", "8"], ["1"], (False, True)),
        (["8", "8", "8"], None, True),
    ],
)
def test_periodic_axes_are_array_indices(shape, axes, expected):
    from rasterquant.cli.microstructure import _periodic

    argv = ["microstructure", "--shape", *shape, "-n", "3", "-o", "m.npy"]
    if axes is not None:
        argv += ["--periodic-axes", *axes]
    args = build_parser().parse_args(argv)
    assert _periodic(args, len(shape)) == expected


def _default_in_help(text, label="default"):
    match = re.search(rf"{label}:? ([0-9.]+)", text)
    assert match, text
    return float(match.group(1))


def test_stipple_help_defaults_match_the_run(tmp_path, capsys):
    """--tol and --iterations say what stipple uses when they are not given."""
    import json

    from PIL import Image

    rng = np.random.default_rng(17)
    Image.fromarray((rng.random((12, 16)) * 200).astype(np.uint8)).save(
        tmp_path / "in.png"
    )
    out = tmp_path / "s.csv"
    argv = ["stipple", str(tmp_path / "in.png"), "-n", "6", "-o", str(out)]
    assert main([*argv, "--quiet"]) == 0
    meta = json.loads((tmp_path / "s.csv.json").read_text())
    assert meta["parameters"]["ot_tol"] == _default_in_help(_help("stipple", "--tol"))
    iterations = _default_in_help(_help("stipple", "--iterations"))
    assert meta["diagnostics"]["iterations"] == iterations


@pytest.mark.parametrize("task", ["stipple", "quantize"])
def test_batch_help_defaults_match_the_options_used(tmp_path, monkeypatch, task):
    """add_stipple_options serves batch too: its help states both tasks' defaults."""
    import rasterquant.batch as batch_mod

    seen = {}

    def fake_run_batch(in_dir, out_dir, *, options, **kwargs):
        seen.update(options)
        return {"counts": {"ok": 1, "failed": 0, "skipped": 0}}

    monkeypatch.setattr(batch_mod, "run_batch", fake_run_batch)
    argv = ["batch", str(tmp_path), str(tmp_path / "out"), "-n", "3", "--task", task]
    assert main([*argv, "--quiet"]) == 0
    label = "batch --task quantize" if task == "quantize" else "default"
    help_iter = _help("batch", "--iterations")
    assert seen["iterations"] == _default_in_help(help_iter, label)
    if task == "quantize":
        assert seen["tol"] == _default_in_help(_help("batch", "--tol"), label)
