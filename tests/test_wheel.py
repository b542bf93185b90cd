"""The built wheel works on its own: installed into a fresh venv and run from a
folder outside the checkout, it compiles examples/seed.team to the golden
outputs, and the package `teamc` (not the repository's folder name `compiler`),
its grammar and its templates all come from the venv, not from the repository
(so grammar/ and templates/ ship in the wheel).

The runtime dependencies (lark, jinja2, networkx, lxml) come from the
interpreter running the tests, so installing the wheel needs no download: a
.pth file in the fresh venv names that interpreter's site-packages folders.
Not --system-site-packages, which would give the base interpreter's packages
when the tests themselves run in a virtualenv. Lines of a .pth are only added
to sys.path, the .pth files inside those folders are not read, so the
checkout's own editable install stays out of the venv.
"""

from __future__ import annotations

import importlib.util
import os
import re
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import GOLDEN, ROOT

pytestmark = pytest.mark.slow

SEED = ROOT / "examples" / "seed.team"
SEED_GOLDEN = GOLDEN / "compile" / "seed" / "json"
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "compiler" / "__init__.py").read_text()).group(1)


def run(argv: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    # A clean environment for the venv's tools: no PYTHONPATH / virtualenv leaking in from the test run.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "TEAMC_DEBUG")}
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)
    assert proc.returncode == 0, f"{argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def inside(path: Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, wheel, an empty working folder outside the repository)."""
    base = tmp_path_factory.mktemp("wheel")
    assert not inside(base, ROOT)
    dist = base / "dist"
    # With hatchling at hand build offline; otherwise let `build` fetch it into an isolated env.
    offline = ["--no-isolation"] if importlib.util.find_spec("hatchling") else []
    run([sys.executable, "-m", "build", "--wheel", *offline, "--outdir", dist], cwd=ROOT)
    (wheel,) = dist.glob("teamc-*.whl")

    venv = base / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=base)
    python = venv / "bin" / "python"
    venv_site = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=base).stdout.strip()
    ours = [p for p in dict.fromkeys([*site.getsitepackages(), site.getusersitepackages()]) if os.path.isdir(p)]
    (Path(venv_site) / "test-dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", wheel], cwd=base)
    cwd = base / "elsewhere"
    cwd.mkdir()
    return venv, wheel, cwd


def test_wheel_carries_the_grammar_and_templates(installed):
    _, wheel, _ = installed
    assert wheel.name == f"teamc-{VERSION}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "teamc/grammar/team.lark" in names and "teamc/__main__.py" in names
    for template in (ROOT / "templates").rglob("*.j2"):
        assert f"teamc/templates/{template.relative_to(ROOT / 'templates').as_posix()}" in names
    assert {n.split("/")[0] for n in names} == {"teamc", f"teamc-{VERSION}.dist-info"}  # no `compiler`
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_teamc_compiles_seed_to_golden(installed):
    venv, _, cwd = installed
    out = cwd / "out"
    proc = run([venv / "bin" / "teamc", "compile", SEED.resolve(), "-o", out], cwd=cwd)
    assert proc.stdout == "" and proc.stderr == ""
    produced = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))  # not the manifest
    expected = sorted(p.name for p in SEED_GOLDEN.iterdir())
    assert produced == expected == ["QEMUGuest1.sh", "QEMUGuest1.xml"]
    for name in expected:
        assert (out / name).read_bytes() == (SEED_GOLDEN / name).read_bytes(), f"{name} differs from the golden file"
    assert os.access(out / "QEMUGuest1.sh", os.X_OK)


def test_installed_module_reports_version(installed):
    venv, _, cwd = installed
    proc = run([venv / "bin" / "python", "-m", "teamc", "--version"], cwd=cwd)
    assert proc.stdout == f"teamc {VERSION}\n"


def test_the_import_package_is_teamc_and_no_compiler_package_is_installed(installed):
    venv, _, cwd = installed
    code = ("import importlib, sysconfig, teamc; print(teamc.__version__, sysconfig.get_path('purelib'))\n"
            "try:\n    importlib.import_module('.cli', 'compiler')\n"
            "except ModuleNotFoundError:\n    print('no compiler')")
    proc = run([venv / "bin" / "python", "-c", code], cwd=cwd)
    version, site_packages, *rest = proc.stdout.split(maxsplit=2)
    assert (version, rest) == (VERSION, ["no compiler\n"])
    assert sorted(p.name for p in Path(site_packages).glob("teamc*")) == ["teamc", f"teamc-{VERSION}.dist-info"]
    assert not (Path(site_packages) / "compiler").exists()


def test_package_and_resources_come_from_the_venv(installed):
    venv, _, cwd = installed
    code = ("import teamc, teamc.resources as r; "
            "print(teamc.__file__, r.resource_dir('grammar'), r.resource_dir('templates'))")
    proc = run([venv / "bin" / "python", "-c", code], cwd=cwd)
    package, grammar, templates = proc.stdout.split()
    for path in (package, grammar, templates):
        assert inside(Path(path), venv), f"{path} is not inside the venv {venv}"
        assert not inside(Path(path), ROOT), f"{path} comes from the repository"
    package_dir = Path(package).parent
    assert Path(grammar) == package_dir / "grammar" and (Path(grammar) / "team.lark").is_file()
    assert Path(templates) == package_dir / "templates"
    assert (Path(templates) / "libvirt" / "domain.xml.j2").is_file()
