"""The code stays lint-clean: `ruff check` with the rule set of pyproject.toml over every Python file,
and `mypy` over the compiler package with its settings there (docs/testing.md says why these)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    # The tools of the interpreter running the tests: the ones the test extra installed next to teamc.
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.mark.lint
def test_ruff_finds_nothing():
    proc = run("ruff", "check", "--output-format", "concise")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.lint
@pytest.mark.slow  # mypy without its cache (a fresh clone) takes 10-40 seconds
def test_mypy_finds_nothing():
    proc = run("mypy")
    assert proc.returncode == 0 and proc.stdout.startswith("Success: no issues found"), proc.stdout + proc.stderr
