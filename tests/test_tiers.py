"""The test tiers of tests/conftest.py, run on a small test file by a pytest of its own.

Without a tool a test of its tier is skipped with the way to install it; in CI (or with
TEAMC_REQUIRE_ALL=1) every skip fails the run; `--fast` leaves out the slow tiers.
"""

from __future__ import annotations

import re

import pytest

from conftest import TIERS
from helpers import ROOT

SAMPLE = '''
import pytest

@pytest.mark.qemu
def test_needs_qemu():
    pass

def test_skips_itself():
    pytest.skip("no tmpfs here")

@pytest.mark.xfail(reason="known", strict=True)
def test_known_failure():
    assert False

@pytest.mark.slow
def test_slow():
    pass

@pytest.fixture
def image():
    return None

def test_boots(image):
    pass

def test_plain():
    pass
'''


def run_tiers(pytester, monkeypatch, *args: str, **env: str) -> tuple[int, str]:
    """pytest with tests/conftest.py as a plugin on SAMPLE, and a PATH that has no QEMU."""
    pytester.makepyfile(test_sample=SAMPLE)
    for name in ("CI", "TEAMC_REQUIRE_ALL", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)
    (pytester.path / "bin").mkdir(exist_ok=True)
    for name, value in {"COLUMNS": "400", "PATH": str(pytester.path / "bin"), **env}.items():
        monkeypatch.setenv(name, value)
    result = pytester.runpytest_inprocess("-p", "conftest", "-p", "no:cacheprovider", "-p", "no:asyncio", "-rA",
                                         *args)
    return result.ret, result.stdout.str()


@pytest.mark.slow  # a pytest session of its own each, seconds
def test_a_missing_tool_skips_its_tier_with_the_way_to_install_it(pytester, monkeypatch):
    code, out = run_tiers(pytester, monkeypatch)
    assert code == 0, out
    assert "SKIPPED [1] test_sample.py:3: qemu tier: needs qemu-system-x86_64 (Debian package qemu-system-x86; " \
           "sh tests/install-deps.sh installs it)" in out
    assert "SKIPPED [1] test_sample.py:8: no tmpfs here" in out
    assert ": guest tier: needs qemu-system-x86_64 (Debian" in out  # test_boots takes `image`
    assert "2 passed, 3 skipped, 1 xfailed in" in out


@pytest.mark.slow  # a pytest session of its own each, seconds
def test_every_skip_fails_the_run_in_ci(pytester, monkeypatch):
    for env in ({"CI": "true"}, {"TEAMC_REQUIRE_ALL": "1"}):
        code, out = run_tiers(pytester, monkeypatch, **env)
        assert code == 1, out
        # A tier skipped before the test runs is an error of its setup, a test skipping itself a failure.
        assert ("ERROR test_sample.py::test_needs_qemu - skipped, but every test has to run here (CI or "
                "TEAMC_REQUIRE_ALL=1): qemu tier: needs qemu-system-x86_64") in out
        assert "ERROR test_sample.py::test_boots - skipped, but every test has to run here" in out
        assert "FAILED test_sample.py::test_skips_itself - skipped, but every test has to run here (CI or " \
               "TEAMC_REQUIRE_ALL=1): no tmpfs here" in out
        assert "1 failed, 2 passed, 1 xfailed, 2 errors in" in out  # an expected failure stays one
    assert run_tiers(pytester, monkeypatch, CI="false")[0] == 0


@pytest.mark.slow  # a pytest session of its own each, seconds
def test_fast_leaves_out_the_slow_tiers(pytester, monkeypatch):
    code, out = run_tiers(pytester, monkeypatch, "--fast")
    assert code == 0, out
    assert "PASSED test_sample.py::test_plain" in out
    assert "test_slow" not in out and "test_boots" not in out and "test_needs_qemu" not in out
    assert "3 deselected" in out


def test_docs_testing_md_names_every_tier():
    page = (ROOT / "docs" / "testing.md").read_text()
    table = re.search(r"^\| marker \| the test \|\n(.*?)\n\n", page, re.DOTALL | re.MULTILINE).group(1)
    named = re.findall(r"`([a-z]+)`", "".join(line.split("|")[1] for line in table.splitlines()))
    assert sorted(named) == sorted(TIERS)
