"""`teamc lsp` end to end: the real server in a subprocess, driven over stdio by pytest-lsp's client.

Each request is checked against the capabilities recorded from real clients (Neovim 0.11 and VS Code):
pytest-lsp warns when a result breaks them, and the module's filterwarnings makes that warning an error.
The feature modules are also tested directly (fixes applied and recompiled, positions round-tripped).
"""

from __future__ import annotations

import sys

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from helpers import ROOT
from teamc.formatter import format_source
from teamc.lsp.positions import LineIndex
from teamc.source import SourceFile

pytestmark = [pytest.mark.asyncio(loop_scope="module"),
              pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")]

SERVER = [sys.executable, "-m", "teamc", "lsp"]
ENV = {"PYTHONPATH": str(ROOT), "TEAMC_LSP_VFS": "0000:3b:02.0,0000:3b:02.1,0000:3b:02.7"}


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, server_env=ENV), scope="module",
                    params=["neovim", "visual_studio_code"])
async def client(lsp_client: LanguageClient, request):
    result = await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=client_capabilities(request.param), root_uri=ROOT.as_uri()))
    lsp_client.encoding = result.capabilities.position_encoding or lsp.PositionEncodingKind.Utf16
    yield
    await lsp_client.shutdown_session()


_versions: dict[str, int] = {}


def uri_of(name: str) -> str:
    return (ROOT / "tests" / "lsp-virtual" / name).as_uri()


async def published(client: LanguageClient, uri: str, version: int | None) -> lsp.PublishDiagnosticsParams:
    """The next diagnostics published for `uri` at `version` (a late list for another file is passed over)."""
    while True:
        params = await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        if params.uri == uri and params.version == version:
            return params


async def open_doc(client: LanguageClient, name: str, text: str) -> tuple[str, list[lsp.Diagnostic]]:
    """Open (or reopen) a virtual document; wait for its diagnostics."""
    uri = uri_of(name)
    if uri in _versions:
        client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri)))
        await published(client, uri, None)
    _versions[uri] = 1
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "team", 1, text)))
    return uri, (await published(client, uri, 1)).diagnostics


def at(text: str, needle: str, delta: int = 0) -> lsp.Position:
    return LineIndex(text).position(text.index(needle) + delta)


def read(name: str) -> str:
    return (ROOT / name).read_text()


# --- diagnostics -----------------------------------------------------------------------------


async def test_diagnostics_of_a_broken_file_list_every_syntax_error(client: LanguageClient):
    text = "vm a {\n    machin q35\n    team t { persistent virtio user extra }\n    vcpus\n}\n"
    _, diagnostics = await open_doc(client, "broken.team", text)
    assert [(d.code, d.range.start.line, d.range.start.character) for d in diagnostics] == [
        ("E0002", 1, 4), ("E0001", 2, 36), ("E0001", 3, 9)]
    first = diagnostics[0]
    assert first.severity == lsp.DiagnosticSeverity.Error and first.source == "teamc"
    assert first.message == "unknown keyword `machin`\nhelp: did you mean `machine`?"
    assert first.code_description.href == (ROOT / "compiler" / "explanations" / "E0002.md").as_uri()


async def test_diagnostics_carry_related_locations_and_follow_every_change(client: LanguageClient):
    text = read("tests/cases/mac-mismatch.team")
    uri, diagnostics = await open_doc(client, "mismatch.team", text)
    assert [d.code for d in diagnostics] == ["E0308"]
    related = diagnostics[0].related_information
    assert [(r.message, r.location.range.start) for r in related] == [("partner's MAC", at(text, "52:54:00:aa:00:01"))]

    fixed = text.replace("52:54:00:aa:00:10", "52:54:00:aa:00:01")
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
        [lsp.TextDocumentContentChangePartial(range=lsp.Range(at(text, ":10"), at(text, ":10", 3)), text=":01")]))
    params = await published(client, uri, 2)
    assert list(params.diagnostics) == []

    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(uri=uri, version=3), [lsp.TextDocumentContentChangeWholeDocument(
            text=fixed.replace("teaming persistent", "teaming"))]))
    params = await published(client, uri, 3)
    assert [d.code for d in params.diagnostics] == ["E0001"]

    client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri)))
    params = await published(client, uri, None)
    assert list(params.diagnostics) == []
    _versions.pop(uri)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.team")), ids=lambda p: p.name)
async def test_every_example_is_clean(client: LanguageClient, path):
    _, diagnostics = await open_doc(client, "example-" + path.name, path.read_text())
    assert list(diagnostics) == []


async def test_columns_count_utf16_units_after_an_emoji_and_crlf(client: LanguageClient):
    text = 'vm a {\r\n    emulator "/usr/bin/🦆"; vcpus x\r\n}\r\n'
    _, diagnostics = await open_doc(client, "emoji.team", text)
    # Neovim negotiates UTF-8 (the 🦆 is 4 units), VS Code keeps UTF-16 (2 units).
    column = {lsp.PositionEncodingKind.Utf8: 36, lsp.PositionEncodingKind.Utf16: 34}[client.encoding]
    assert [(d.code, d.range.start.line, d.range.start.character) for d in diagnostics] == [("E0205", 1, column)]
    assert diagnostics[0].range.end.character == column + 1


# --- hover, navigation ------------------------------------------------------------------------


async def test_hover_on_a_keyword_a_diagnostic_and_a_nic(client: LanguageClient):
    text = read("examples/net-virtio-teaming.team")
    uri, _ = await open_doc(client, "teaming.team", text)
    doc = lsp.TextDocumentIdentifier(uri)

    keyword = await client.text_document_hover_async(lsp.HoverParams(doc, at(text, "memory 214")))
    assert "memory N UNIT" in keyword.contents.value and "Default 1 GiB" in keyword.contents.value

    nic = await client.text_document_hover_async(lsp.HoverParams(doc, at(text, "vf0", 1)))
    value = nic.contents.value
    assert "<interface type='hostdev' managed='yes'>" in value
    assert "<teaming type='transient' persistent='ua-backup0'/>" in value
    assert ('-device \'{"driver":"vfio-pci","host":"0000:03:07.1","id":"hostdev0","failover_pair_id":"ua-backup0",'
            '"bus":"pci.3","addr":"0x0"}\'') in value

    broken = read("tests/cases/pc-machine-team.team")
    uri, _ = await open_doc(client, "pc.team", broken)
    explained = await client.text_document_hover_async(lsp.HoverParams(lsp.TextDocumentIdentifier(uri),
                                                                       at(broken, "pc-i440fx")))
    assert "**E0401** `pc-machine-team` (error)" in explained.contents.value
    assert "allow pc-machine-team" in explained.contents.value
    assert (ROOT / "compiler" / "explanations" / "E0401.md").read_text().split("\n", 1)[1].strip() \
        in explained.contents.value  # the long text of `teamc explain E0401`


async def test_definition_and_references_link_a_transient_and_its_persistent_nic(client: LanguageClient):
    text = read("examples/net-virtio-teaming.team")
    uri, _ = await open_doc(client, "teaming.team", text)
    doc = lsp.TextDocumentIdentifier(uri)
    use = text.index("teaming transient ua-backup0") + len("teaming transient ")
    definition = await client.text_document_definition_async(
        lsp.DefinitionParams(doc, LineIndex(text).position(use + 2)))
    assert definition.range.start == at(text, "ua-backup0")

    refs = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=doc, position=at(text, "ua-backup0"), context=lsp.ReferenceContext(include_declaration=True)))
    assert sorted(r.range.start for r in refs) == [at(text, "ua-backup0"), LineIndex(text).position(use)]


async def test_rename_a_team_updates_alias_references(client: LanguageClient):
    text = ("vm web {\n    team up0 { persistent virtio user; transient hostdev 0000:03:07.1 }\n"
            "    nic vf9 { source hostdev 0000:03:07.2; teaming transient ua-up0 }\n}\n")
    uri, _ = await open_doc(client, "rename.team", text)
    doc = lsp.TextDocumentIdentifier(uri)
    prepared = await client.text_document_prepare_rename_async(lsp.PrepareRenameParams(doc, at(text, "up0")))
    assert prepared.placeholder == "up0"
    edit = await client.text_document_rename_async(lsp.RenameParams(doc, at(text, "ua-up0"), "wan"))
    edits = edit.document_changes[0].edits if edit.document_changes else edit.changes[uri]
    assert sorted((e.range.start.line, e.new_text) for e in edits) == [(1, "wan"), (2, "ua-wan")]


async def test_rename_refuses_a_name_libvirt_would_refuse(client: LanguageClient):
    text = read("examples/net-virtio-teaming.team")
    uri, _ = await open_doc(client, "teaming.team", text)
    with pytest.raises(Exception, match="not a valid nic name"):
        await client.text_document_rename_async(lsp.RenameParams(
            lsp.TextDocumentIdentifier(uri), at(text, "vf0"), "bad name"))


# --- completion, symbols, formatting, code actions --------------------------------------------


async def complete(client: LanguageClient, name: str, text: str, cursor: str) -> list[str]:
    """Labels offered at the end of the first `cursor` in `text`."""
    uri, _ = await open_doc(client, name, text)
    result = await client.text_document_completion_async(lsp.CompletionParams(
        lsp.TextDocumentIdentifier(uri), at(text, cursor, len(cursor))))
    return [item.label for item in result.items]


async def test_completion_offers_what_the_grammar_allows_here(client: LanguageClient):
    text = "vm a {\n    \n}\n"
    assert await complete(client, "c1.team", text, "{\n    ") == [
        "accel", "allow", "arch", "emulator", "machine", "memory", "nic", "team", "uuid", "vcpus"]
    text = "vm a {\n    team t { persistent virtio  }\n}\n"
    assert await complete(client, "c2.team", text, "virtio ") == [
        "bridge", "direct", "ethernet", "hostdev", "network", "pci-hostdev", "user", "vhostuser"]
    text = "vm a {\n    team t { persistent virtio user; transient hostdev 0000:3b:02.1 }\n    memory 2 \n}\n"
    assert (await complete(client, "c3.team", text, "memory 2 "))[:3] == ["B", "KiB", "MiB"]


async def test_completion_offers_names_macs_and_vfs_not_used_elsewhere(client: LanguageClient):
    text = ("vm web {\n    team up0 { persistent virtio user; transient hostdev 0000:3b:02.1 }\n"
            "    nic ua-up1 { model virtio; source user; mac 52:54:00:aa:00:01; teaming persistent }\n"
            "    nic vf1 { source hostdev ; mac ; teaming transient  }\n"
            "    nic vf2 { source hostdev 0000:3b:02.0; mac ; teaming transient ua-up1 }\n}\n")
    assert await complete(client, "c4.team", text, "teaming transient ") == ["ua-up0", "ua-up1"]
    assert await complete(client, "c4.team", text, "hostdev ") == ["0000:3b:02.7"]
    fresh = await complete(client, "c4.team", text, "hostdev ; mac ")
    assert len(fresh) == 1 and fresh[0].startswith("52:54:00:") and fresh[0] != "52:54:00:aa:00:01"
    partner = await complete(client, "c4.team", text, "02.0; mac ")
    assert partner[0] == "52:54:00:aa:00:01" and len(partner) == 2


async def test_document_symbols_outline_vms_teams_and_nics(client: LanguageClient):
    text = read("examples/fleet.team")
    uri, _ = await open_doc(client, "fleet.team", text)
    symbols = await client.text_document_document_symbol_async(
        lsp.DocumentSymbolParams(lsp.TextDocumentIdentifier(uri)))
    if isinstance(symbols[0], lsp.DocumentSymbol):
        outline = [(s.name, [c.name for c in s.children]) for s in symbols]
    else:
        outline = [(s.name, [c.name for c in symbols if c.container_name == s.name])
                   for s in symbols if s.container_name is None]
    assert outline == [("edge-a", ["wan", "lan"]), ("edge-b", ["wan", "lan"]),
                       ("cache", ["ua-data0", "vf-data0", "storage"])]


async def test_formatting_is_teamc_fmt_and_refuses_a_broken_file(client: LanguageClient):
    text = "vm a {\nvcpus   2\n  team t {persistent virtio user;transient hostdev 0000:03:07.1}\n}\n"
    uri, _ = await open_doc(client, "fmt.team", text)
    options = lsp.FormattingOptions(tab_size=4, insert_spaces=True)
    edits = await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(lsp.TextDocumentIdentifier(uri), options))
    expected, _ = format_source(SourceFile("fmt.team", text))
    assert [e.new_text for e in edits] == [expected] and expected != text
    uri, _ = await open_doc(client, "fmt-broken.team", "vm a { vcpus }\n")
    assert await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(lsp.TextDocumentIdentifier(uri), options)) is None


async def test_code_actions_offer_the_fixes_the_diagnostics_suggest(client: LanguageClient):
    text = read("tests/cases/alias-prefix.team")
    uri, diagnostics = await open_doc(client, "alias.team", text)
    actions = await client.text_document_code_action_async(lsp.CodeActionParams(
        lsp.TextDocumentIdentifier(uri), diagnostics[0].range, lsp.CodeActionContext(diagnostics=diagnostics)))
    assert [a.title for a in actions] == ["Rename to `ua-up0` (and every reference)"]
    action = actions[0]
    assert action.kind == lsp.CodeActionKind.QuickFix and action.is_preferred
    assert list(action.diagnostics) == [diagnostics[0]]
    edits = action.edit.document_changes[0].edits if action.edit.document_changes else action.edit.changes[uri]
    assert sorted((e.range.start.line, e.new_text) for e in edits) == [(1, "ua-up0"), (2, "ua-up0")]


async def test_every_request_at_every_offset_of_a_truncated_file_answers(client: LanguageClient):
    full = read("examples/fleet.team")
    text = full[:full.index("hostdev 0000:3b:03.0") + 12]
    uri, _ = await open_doc(client, "truncated.team", text)
    doc = lsp.TextDocumentIdentifier(uri)
    lines = LineIndex(text)
    for offset in range(0, len(text) + 1, 7):
        position = lines.position(offset)
        await client.text_document_hover_async(lsp.HoverParams(doc, position))
        await client.text_document_definition_async(lsp.DefinitionParams(doc, position))
        await client.text_document_completion_async(lsp.CompletionParams(doc, position))
    beyond = lsp.Position(line=999, character=999)
    await client.text_document_hover_async(lsp.HoverParams(doc, beyond))
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc))
    assert symbols  # the recovered AST still has the VMs



async def test_the_qemu_backends_warnings_follow_the_checks(client: LanguageClient):
    # `teamc check` finds nothing here, `teamc compile` warns: the server publishes the checks' list first,
    # then the list with the backend's warning, for the same version.
    text = read("tests/cases/vf-unresolved.team")
    uri, _ = await open_doc(client, "pool.team", text)
    diagnostics = client.diagnostics[uri]  # the second list may have come in with the first
    if not diagnostics:
        diagnostics = (await published(client, uri, 1)).diagnostics
    assert [(d.code, d.severity) for d in diagnostics] == [("W0504", lsp.DiagnosticSeverity.Warning)]
