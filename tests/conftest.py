"""Test tiers: what each marked test needs from the machine, the fast tier, and no skips in CI.

A marker (registered here, in TIERS) names what a test runs besides teamc itself. Without it
on this machine the test is skipped with the way to install it; in CI (`CI` set, as every CI
service does) or with TEAMC_REQUIRE_ALL=1 every tier has to run, so each skip is a failure there.
`--fast` leaves out every tier that boots, starts a tool or takes long: the edit-test loop.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from helpers import DOMAIN_RNG, ROOT

pytest_plugins = ["pytester"]  # test_tiers runs a pytest of its own

INSTALL = "sh tests/install-deps.sh installs it"

# Markers that --fast leaves out.
SLOW_TIERS = ("qemu", "libvirt", "guest", "slow")


def _missing_qemu() -> str | None:
    if shutil.which("qemu-system-x86_64") is None:
        return f"needs qemu-system-x86_64 (Debian package qemu-system-x86; {INSTALL})"
    return None


def _missing_libvirt() -> str | None:
    if shutil.which("virsh") is None or not DOMAIN_RNG.exists():
        return f"needs virsh and {DOMAIN_RNG} (Debian packages libvirt-clients, libvirt0; {INSTALL})"
    return None


def _missing_guest() -> str | None:
    cache = Path(os.environ.get("TEAMC_CACHE") or ROOT / ".cache" / "teamc") / "guest"
    # Without a built image the tests build one, which takes apt-get (Debian's packages).
    if not any(cache.glob("linux-image-*")) and shutil.which("apt-get") is None:
        return _missing_qemu() or f"needs the guest image in {cache} or apt-get to build it ({INSTALL})"
    return _missing_qemu()


def _missing_lint() -> str | None:
    absent = [tool for tool in ("ruff", "mypy") if importlib.util.find_spec(tool) is None]
    if absent:
        return f"needs {' and '.join(absent)} (the test extra: pip install -e '.[test]'; {INSTALL})"
    return None


def _missing_program(program: str, package: str):
    def missing() -> str | None:
        return None if shutil.which(program) else f"needs `{program}` (Debian package {package})"
    return missing


# marker -> (what its tests run, what is missing on this machine for them: None when nothing).
TIERS = {
    "qemu": ("starts qemu-system-x86_64", _missing_qemu),
    "libvirt": ("runs virsh or validates against libvirt's RNG schemas", _missing_libvirt),
    "guest": ("boots the guest kernel in QEMU, minutes (teamc verify; every test taking test_verify's `image`)",
              _missing_guest),
    "slow": ("takes seconds to minutes: fuzzing, races, big inputs, a wheel build", lambda: None),
    "graphviz": ("runs Graphviz's dot", _missing_program("dot", f"graphviz; {INSTALL}")),
    "node": ("runs Node.js (editor integration)", _missing_program("node", "nodejs")),
    "nvim": ("runs Neovim (editor integration)", _missing_program("nvim", "neovim")),
    "lint": ("runs ruff and mypy over the code with pyproject.toml's settings (tests/test_lint.py)", _missing_lint),
    "differential": (("random .team programs judged by libvirt's RNG, virsh and QEMU (tests/test_differential.py), "
                      "minutes"), lambda: None),
}


def require_all() -> bool:
    """CI runs every tier: there a skipped test is a failed one."""
    ci = os.environ.get("CI", "").lower()
    return ci not in ("", "0", "false", "no") or os.environ.get("TEAMC_REQUIRE_ALL") == "1"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from the current output")
    parser.addoption("--fast", action="store_true",
                     help=f"the fast tier: leave out tests marked {', '.join(SLOW_TIERS)} (same as "
                          f"-m \"{' and '.join('not ' + m for m in SLOW_TIERS)}\")")


def pytest_configure(config):
    for marker, (runs, _) in TIERS.items():
        config.addinivalue_line("markers", f"{marker}: {runs}")


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(config, items):
    missing = {marker: find() for marker, (_, find) in TIERS.items()}
    for item in items:
        # Every test that takes the booted-guest fixture of test_verify boots the guest kernel.
        if "image" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.guest)
        for marker, reason in missing.items():
            if reason and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=f"{marker} tier: {reason}"))
    if config.getoption("--fast"):
        kept = [item for item in items if not any(item.get_closest_marker(m) for m in SLOW_TIERS)]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


def _fail_if_skipped(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = ("skipped, but every test has to run here (CI or TEAMC_REQUIRE_ALL=1): "
                           + reason.removeprefix("Skipped: "))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if require_all():
        _fail_if_skipped(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    if require_all():
        _fail_if_skipped(outcome.get_result())


@pytest.fixture
def update_golden(request):
    return request.config.getoption("--update-golden")


@pytest.fixture(autouse=True)
def _run_from_repo_root(monkeypatch):
    # Diagnostics and golden files name inputs relative to the repository root.
    monkeypatch.chdir(ROOT)
