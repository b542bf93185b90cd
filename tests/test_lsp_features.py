"""The language server's feature modules without the protocol: fixes applied and recompiled, positions
round-tripped, poisoning after syntax errors, the keyword table against the grammar and the README."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types as lsp

from helpers import ROOT
from teamc.keywords import KEYWORDS
from teamc.lower import derive_mac
from teamc.lsp.actions import fixes
from teamc.lsp.analysis import analyse
from teamc.lsp.completion import complete
from teamc.lsp.navigation import RenameError, rename_edits
from teamc.lsp.positions import LineIndex
from teamc.pipeline import check_source
from teamc.source import SourceFile


def analysed(text: str):
    return analyse("file:///t.team", "t.team", text)


def apply(text: str, edits) -> str:
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def codes_after_compile(text: str) -> list[str]:
    _, result = check_source(SourceFile("t.team", text))
    return [d.code for d in result.diagnostics]


@pytest.mark.parametrize(("case", "code", "title"), [
    ("mac-mismatch", "E0308", "Copy the partner's MAC 52:54:00:aa:00:01"),
    ("alias-prefix", "E0201", "Rename to `ua-up0` (and every reference)"),
    ("pc-machine-team", "E0401", "Switch the machine to q35"),
    ("unsupported-machine", "E0405", "Switch the machine to q35"),
    ("pci-address-clash", "E0403", "Move it to the free guest address 0000:06:00.0"),
    ("unknown-keyword", "E0002", "Change to `persistent`"),
])
def test_each_fix_removes_its_diagnostic_when_applied_and_recompiled(case, code, title):
    text = (ROOT / "tests" / "cases" / f"{case}.team").read_text()
    assert code in codes_after_compile(text)
    found = [f for f in fixes(analysed(text)) if f.diagnostic.code == code]
    assert [f.title for f in found][:1] == [title]
    fixed = apply(text, found[0].edits)
    assert codes_after_compile(fixed).count(code) < codes_after_compile(text).count(code)
    if case != "pci-address-clash":  # that case has a second, reserved-slot E0403 left to fix
        assert code not in codes_after_compile(fixed)


def test_the_reserved_slot_fix_moves_to_a_root_port_bus_too():
    text = (ROOT / "tests" / "cases" / "pci-address-clash.team").read_text()
    for _ in range(2):
        found = [f for f in fixes(analysed(text)) if f.diagnostic.code == "E0403"]
        text = apply(text, found[0].edits)
    assert "E0403" not in codes_after_compile(text)


def test_renaming_a_persistent_nic_keeps_the_ua_prefix_and_its_references():
    text = (ROOT / "examples" / "net-virtio-teaming.team").read_text()
    edits = rename_edits(analysed(text), text.index("ua-backup1"), "standby1")
    renamed = apply(text, edits)
    assert renamed.count("ua-standby1") == 2 and "backup1" not in renamed
    assert codes_after_compile(renamed) == []
    with pytest.raises(RenameError, match="not a valid vm name"):
        rename_edits(analysed(text), text.index("teaming-user"), "a b")


def test_a_vm_with_a_syntax_error_shows_only_its_syntax_errors():
    text = ("vm a {\n    team t { persistent virtio user\n}\n"
            "vm b {\n    nic up0 { model virtio; source user; teaming persistent }\n}\n")
    analysis = analysed(text)
    # The missing `}` is noticed at the next `vm`; VM b is read whole and checked.
    assert [(d.code, d.span.line_col[0]) for d in analysis.diagnostics] == [("E0001", 4), ("E0201", 5), ("W0501", 5)]
    assert [s.name for s in analysis.index.symbols] == ["a", "t", "b", "up0"]


def test_a_fresh_mac_is_never_one_the_file_uses():
    taken = derive_mac("web", "vf1")
    text = ("vm web {\n    nic ua-up1 { model virtio; source user; mac " + taken + "; teaming persistent }\n"
            "    nic vf1 { source hostdev 0000:3b:02.0; mac ; teaming transient ua-up0 }\n}\n")
    offset = text.index("mac ;") + 4
    offered = [c.label for c in complete(analysed(text), text, offset, vfs=list)]
    assert len(offered) == 1 and offered[0] != taken and offered[0].startswith("52:54:00:")


@pytest.mark.parametrize("encoding", [lsp.PositionEncodingKind.Utf8, lsp.PositionEncodingKind.Utf16,
                                      lsp.PositionEncodingKind.Utf32])
def test_every_offset_round_trips_through_a_position(encoding):
    text = 'vm 🦆 {\r\n    emulator "/é/𝄞"\r\n\r\n}\rvm b {}\n'
    lines = LineIndex(text, encoding)
    breaks = {i for i, c in enumerate(text) if c == "\n" and text[i - 1] == "\r"}
    for offset in range(len(text) + 1):
        if offset not in breaks:  # between \r and \n is no position of its own
            assert lines.offset(lines.position(offset)) == offset, offset
    assert lines.position(text.index("emulator")) == lsp.Position(line=1, character=4)
    assert lines.position(text.index("vm b")) == lsp.Position(line=4, character=0)
    assert lines.offset(lsp.Position(line=1, character=999)) == text.index("\r\n\r\n")
    assert lines.offset(lsp.Position(line=99, character=0)) == len(text)


def test_every_keyword_of_the_grammar_is_documented_and_in_the_readme():
    grammar = (ROOT / "grammar" / "team.lark").read_text()
    words = set(re.findall(r'"([a-z][a-z-]+)"', grammar)) | {"pci-hostdev"}
    assert words == set(KEYWORDS)
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## The language", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    assert {w for w in KEYWORDS if f'"{w}"' not in block} == set()


def test_without_the_lsp_extra_the_command_says_how_to_get_it():
    blocked = "import sys; sys.modules['pygls'] = None; from teamc.cli import main; sys.exit(main(['lsp']))"
    proc = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 2
    assert "`teamc lsp` needs the pygls package: pip install 'teamc[lsp]'" in proc.stderr


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_no_feature_raises_at_any_offset_of_a_truncated_or_mangled_example(data):
    # The server turns a handler's exception into an empty answer; here the features run bare, so a crash
    # on a half-typed file fails the test instead of hiding in the server's log.
    from teamc.lsp import hover, navigation
    from teamc.lsp.actions import format_edits

    path = data.draw(st.sampled_from(sorted((ROOT / "examples").glob("*.team"))), label="example")
    text = path.read_text()
    cut = data.draw(st.integers(0, len(text)), label="cut")
    junk = data.draw(st.sampled_from(["", "}", "{", "vm", "\n", '"', "teaming transient ", "mac ", "\r\n🦆"]))
    text = text[:cut] + junk
    analysis = analysed(text)
    fixes(analysis)
    format_edits(analysis)
    navigation.outline(analysis)
    for offset in {0, cut // 2, cut, len(text), data.draw(st.integers(0, len(text)), label="offset")}:
        hover.hover_markdown(analysis, offset, lambda code: None)
        navigation.definition(analysis, offset)
        navigation.references(analysis, offset, True)
        complete(analysis, text, offset, vfs=list)
        if navigation.prepare_rename(analysis, offset) is not None:
            rename_edits(analysis, offset, "renamed")


def test_no_completion_inside_a_comment_or_a_string():
    text = 'vm a {\n    # team \n    emulator "/usr/bin/ \n    \n}\n'
    analysis = analysed(text)
    for cursor in ("# team ", '"/usr/bin/ '):
        assert complete(analysis, text, text.index(cursor) + len(cursor), vfs=list) == []
    labels = [c.label for c in complete(analysis, text, text.index("\n    \n") + 5, vfs=list)]
    assert "team" in labels and "vcpus" in labels


# Not unreadable-input: an editor sends the server text it has decoded itself, never bytes.
@pytest.mark.parametrize("case", sorted(p for p in (ROOT / "tests" / "cases").glob("*.team")
                                        if p.stem != "unreadable-input"), ids=lambda p: p.stem)
def test_the_server_reports_what_teamc_compile_reports(case):
    # Same phases, same diagnostics: the editor shows what the command line prints, place for place.
    from teamc.pipeline import compile_source

    source = SourceFile(str(case), case.read_text())
    expected = compile_source(source).diagnostics
    got = analyse(case.as_uri(), str(case), source.text).with_backends().diagnostics
    assert sorted((d.code, d.span.start, d.message) for d in got) == \
        sorted((d.code, d.span.start, d.message) for d in expected if d.span is not None)


def test_hover_shows_the_layout_the_analysis_made_and_the_emitters_output(monkeypatch):
    """One way to a layout: hover reads the layout phase's result that the analysis kept, and renders it as
    `--emit interfaces` and `--emit qemu` do (it laid the VM out a second time, and quoted `-device` itself)."""
    import teamc.layout
    from teamc.api import compile_text
    from teamc.lsp.hover import describe_symbol

    text = (ROOT / "examples/net-virtio-teaming.team").read_text()
    analysis = analyse("file:///t.team", "t.team", text)
    assert list(analysis.layouts.values()) == list(analysis.laid_out)

    def no_second_layout(*args):
        raise AssertionError("hover laid the VM out again")

    monkeypatch.setattr(teamc.layout, "layout_vm", no_second_layout)
    monkeypatch.setattr(teamc.layout, "layout", no_second_layout)
    symbol = next(s for s in analysis.index.symbols if s.name == "vf0")
    shown = describe_symbol(analysis, symbol)
    monkeypatch.undo()
    outputs = compile_text(text, emit=["interfaces", "qemu"]).artifacts
    device = next(line.strip().removesuffix(" \\") for line in outputs["teaming-user.sh"].splitlines()
                  if '"id":"hostdev0"' in line)
    assert f"```sh\n{device}\n```" in shown
    # The fragment leaves the guest address to libvirt; the hover shows where the layout put it.
    fragment = outputs["teaming-user.vf0.xml"].rstrip("\n").split("\n")
    assert f"```xml\n{chr(10).join(fragment[:-1])}\n  <address type='pci' " in shown
