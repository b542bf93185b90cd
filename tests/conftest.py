import pytest


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from the current output")


@pytest.fixture
def update_golden(request):
    return request.config.getoption("--update-golden")


@pytest.fixture(autouse=True)
def _run_from_repo_root(monkeypatch):
    # Diagnostics and golden files name inputs relative to the repository root.
    from helpers import ROOT

    monkeypatch.chdir(ROOT)
