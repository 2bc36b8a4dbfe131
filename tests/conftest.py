"""Shared pytest fixtures."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A freshly seeded generator: every test draws the same numbers."""
    return np.random.default_rng(20261127)


@pytest.fixture
def tmp_cwd(tmp_path, monkeypatch):
    """Run the test inside ``tmp_path`` (for code that writes to the working dir)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
