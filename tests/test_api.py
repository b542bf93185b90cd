"""The Python API (docs/api.md): its examples run, it agrees with the command, it refuses bad options."""

import doctest
import json
import re

import pytest

import teamc
from helpers import ROOT
from helpers import teamc as run_teamc

SEED = ROOT / "examples" / "seed.team"
BROKEN = "tests/cases/mac-mismatch.team"


def test_the_examples_in_docs_api_md_run():
    failed, attempted = doctest.testfile(str(ROOT / "docs" / "api.md"), module_relative=False,
                                         optionflags=doctest.ELLIPSIS)
    assert attempted >= 20 and failed == 0


def test_import_teamc_is_cheap_and_exports_what_the_docs_name():
    import subprocess
    import sys

    code = "import sys, teamc; print(sorted(m for m in ('lark', 'jinja2', 'networkx', 'lxml') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout == "[]\n"
    for name in teamc.__all__:
        assert getattr(teamc, name) is not None
        assert re.search(rf"\b{name}\b", (ROOT / "docs" / "api.md").read_text()), name


def test_compile_text_gives_what_the_command_writes(tmp_path):
    result = teamc.compile_text(SEED.read_text(), "examples/seed.team")
    assert run_teamc("compile", "examples/seed.team", "-o", str(tmp_path))[0] == 0
    assert result.artifacts == {p.name: p.read_text() for p in tmp_path.iterdir() if not p.name.startswith(".")}


def test_diagnostics_render_as_the_command_prints_them():
    text = (ROOT / BROKEN).read_text()
    result = teamc.check_text(text, BROKEN)
    for fmt in ("human", "concise", "json", "sarif", "junit"):
        code, out, err = run_teamc("check", BROKEN, "--format", fmt)
        assert code == 1 and out + err == teamc.render_diagnostics(result.diagnostics, fmt, inputs=[BROKEN])


def test_after_errors_only_what_describes_the_input():
    result = teamc.compile_text((ROOT / BROKEN).read_text(), emit=["xml", "json", "dot"])
    assert not result.ok and sorted(result.artifacts) == ["web.dot", "web.json"]
    assert json.loads(result.artifacts["web.json"])["diagnostics"][0]["code"] == "E0308"


def test_allow_vf_and_into():
    pc = (ROOT / "tests/cases/pc-machine-team.team").read_text()
    assert not teamc.check_text(pc).ok and teamc.check_text(pc, allow=["E0401"]).ok
    pool = (ROOT / "tests/cases/vf-unresolved.team").read_text()
    assert "W0504" in {d.code for d in teamc.compile_text(pool).diagnostics}
    resolved = teamc.compile_text(pool, vf={("web", "up0"): "0000:03:10.2"})
    assert resolved.diagnostics == [] and '"host":"0000:03:10.2"' in resolved.artifacts["web.sh"]
    base = (ROOT / "tests/conformance/libvirt/net-virtio-teaming.xml").read_text()
    team = teamc.import_xml(base, "base.xml").artifacts["QEMUGuest1.team"]
    merged = teamc.compile_text(team, into=base, into_name="base.xml")
    assert merged.ok and list(merged.artifacts) == ["QEMUGuest1.xml"] and "<teaming type='transient'" in \
        merged.artifacts["QEMUGuest1.xml"]


@pytest.mark.parametrize("options, message", [
    ({"emit": ["pdf"]}, "--emit pdf"),
    ({"emit": []}, "--emit"),
    ({"allow": ["E0308"]}, "--allow E0308: not an allowable check"),
    ({"vf": {("web", "up0"): "nonsense"}}, "--vf web:up0=nonsense"),
    ({"qemu_syntax": "yaml"}, "--qemu-syntax yaml"),
    ({"into": "<domain/>", "emit": ["xml", "qemu"]}, "--into"),
])
def test_bad_options_raise_option_error(options, message):
    with pytest.raises(teamc.OptionError, match=message.replace("+", r"\+")):
        teamc.compile_text(SEED.read_text(), **options)


def test_unreadable_input_and_unknown_code():
    result = teamc.check_text("vm web {\x00}\n")
    assert not result.ok
    with pytest.raises(teamc.OptionError, match="no such code"):
        teamc.explain("E9999")
    with pytest.raises(teamc.OptionError, match="--format"):
        teamc.render_diagnostics([], "xml")
