"""Every command and the Python example of README.md work verbatim (issue 17, item 8).

The commands run through ``rasterquant.cli.main.main`` in a folder laid out like a
fresh clone (data/ and docs/ copied, so outputs that the clone already holds count),
the Python block with ``exec``. ``pip`` and ``pytest`` lines are what CI itself runs.
"""

from __future__ import annotations

import re
import shlex
import shutil
import warnings
from pathlib import Path

import pytest

from rasterquant.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _commands():
    cmds = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if "&&" in line:
                line = line.split("&&")[-1].strip()
            if line.startswith("rasterquant "):
                cmds.append(line)
    return cmds


COMMANDS = _commands()


def test_readme_has_commands_and_python():
    assert len(COMMANDS) >= 5, COMMANDS
    assert {c.split()[1] for c in COMMANDS} >= {
        "quantize",
        "stipple",
        "microstructure",
        "experiment",
        "batch",
    }
    assert _blocks("python")


@pytest.fixture
def clone(tmp_path, monkeypatch):
    for sub in ("data", "docs"):
        shutil.copytree(ROOT / sub, tmp_path / sub)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs_verbatim(clone, command, capsys):
    before = {p: p.read_bytes() for p in clone.rglob("*") if p.is_file()}
    code = main(shlex.split(command)[1:])
    err = capsys.readouterr().err
    assert code == 0, f"{command!r} exited {code}: {err}"
    for path, data in before.items():  # no file of the clone is replaced
        assert path.read_bytes() == data, f"{command!r} overwrote {path}"


def test_readme_python_example_runs(clone):
    code = "\n".join(_blocks("python"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
