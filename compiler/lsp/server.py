"""The pygls server: thin handlers that look up the current analysis and convert to and from LSP types.

Analyses run in one worker thread, one at a time, so none race on the cache and the event loop stays free
for cancellations. A change starts a new analysis at once (the 100 ms budget leaves no room for a debounce
timer); an analysis whose document changed meanwhile is dropped, not published. Every published list
carries the version it was computed for; closing a document publishes `[]`. Handlers catch their own
errors: a bad request or a half-typed file gets an empty answer and a log line, never a dead server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from .. import __version__
from ..diagnostics import CODES, Diagnostic, Severity
from . import actions, completion, hover, navigation
from .analysis import Analysis, analyse
from .positions import LineIndex

log = logging.getLogger("teamc.lsp")

# Each code's page: the text `teamc explain CODE` prints, shipped inside the package.
_EXPLANATIONS = Path(__file__).resolve().parents[1] / "explanations"


class TeamcServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("teamc", __version__)
        self.analyses: dict[str, Analysis] = {}
        self.pending: dict[str, asyncio.Task] = {}
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="teamc-analysis")
        # `initializationOptions.codeDocsUrl`: a URL template with {code} and {slug} for each code's page.
        self.docs_template = _EXPLANATIONS.as_uri() + "/{code}.md"

    def docs_href(self, code: str) -> str:
        return self.docs_template.format(code=code, slug=CODES[code].slug)

    def encoding(self) -> str:
        return self.workspace.position_encoding or lsp.PositionEncodingKind.Utf16

    def lines(self, analysis: Analysis) -> LineIndex:
        return LineIndex(analysis.source.text, self.encoding())

    def current(self, uri: str) -> Analysis:
        """The analysis of the document as it is now: the cached one, or a fresh one if it is stale."""
        doc = self.workspace.get_text_document(uri)
        cached = self.analyses.get(uri)
        if cached is not None and cached.version == doc.version and cached.source.text == doc.source:
            return cached
        fresh = analyse(uri, _name(uri), doc.source, doc.version).with_backends()
        self.analyses[uri] = fresh
        return fresh

    def publish(self, analysis: Analysis) -> None:
        lines = self.lines(analysis)
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=analysis.uri, version=analysis.version,
            diagnostics=[to_lsp(d, lines, analysis.uri, self.docs_href(d.code)) for d in analysis.diagnostics]))

    def is_current(self, uri: str, version: int | None) -> bool:
        return uri in self.workspace.text_documents and self.workspace.get_text_document(uri).version == version

    def markdown(self) -> bool:
        hover_caps = self.client_capabilities.text_document and self.client_capabilities.text_document.hover
        formats = hover_caps.content_format if hover_caps else None
        return formats is not None and lsp.MarkupKind.Markdown in formats

    def document_changes(self) -> bool:
        workspace = self.client_capabilities.workspace
        return bool(workspace and workspace.workspace_edit and workspace.workspace_edit.document_changes)


server = TeamcServer()


def _name(uri: str) -> str:
    return to_fs_path(uri) or uri


def _safe(default):
    """Log a handler's error and answer `default`: one bad request must not take the server down."""
    def wrap(handler):
        @functools.wraps(handler)
        def run(ls: TeamcServer, params):
            try:
                return handler(ls, params)
            except navigation.RenameError:
                raise
            except Exception:
                log.exception("%s failed", handler.__name__)
                return default
        return run
    return wrap


# --- diagnostics ---------------------------------------------------------------


def to_lsp(d: Diagnostic, lines: LineIndex, uri: str, href: str | None) -> lsp.Diagnostic:
    start, end = (d.span.start, d.span.end) if d.span is not None else (0, 0)
    related = [lsp.DiagnosticRelatedInformation(
        location=lsp.Location(uri=uri, range=lines.range(label.span.start, label.span.end)),
        message=label.message or "here") for label in d.labels]
    return lsp.Diagnostic(
        range=lines.range(start, end),
        message=d.message + (f"\nhelp: {d.help}" if d.help else ""),
        severity=lsp.DiagnosticSeverity.Error if d.severity is Severity.ERROR else lsp.DiagnosticSeverity.Warning,
        code=d.code,
        code_description=lsp.CodeDescription(href=href) if href else None,
        source="teamc",
        related_information=related or None,
        data={"slug": d.slug},
    )


async def _analyse_and_publish(ls: TeamcServer, uri: str) -> None:
    """Publish the checks' diagnostics as soon as they are known, then again with the QEMU backend's if that
    adds any; either is dropped if the text changed meanwhile (a newer analysis is on its way)."""
    doc = ls.workspace.get_text_document(uri)
    version, text = doc.version, doc.source
    loop = asyncio.get_running_loop()
    try:
        checked = await loop.run_in_executor(ls.worker, analyse, uri, _name(uri), text, version)
        if not ls.is_current(uri, version):
            return
        ls.analyses[uri] = checked
        ls.publish(checked)
        compiled = await loop.run_in_executor(ls.worker, checked.with_backends)
    except Exception:
        log.exception("analysis of %s failed", uri)  # a bug in a phase: keep serving, say so in the log
        return
    if ls.is_current(uri, version) and ls.analyses.get(uri) is checked:
        ls.analyses[uri] = compiled
        if compiled.diagnostics != checked.diagnostics:
            ls.publish(compiled)


def _schedule(ls: TeamcServer, uri: str) -> None:
    previous = ls.pending.get(uri)
    if previous is not None and not previous.done():
        previous.cancel()
    ls.pending[uri] = asyncio.get_running_loop().create_task(_analyse_and_publish(ls, uri))


@server.feature(lsp.INITIALIZE)
def initialize(ls: TeamcServer, params: lsp.InitializeParams) -> None:
    options = params.initialization_options
    if isinstance(options, dict) and isinstance(options.get("codeDocsUrl"), str):
        ls.docs_template = options["codeDocsUrl"]


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
async def did_open(ls: TeamcServer, params: lsp.DidOpenTextDocumentParams) -> None:
    _schedule(ls, params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: TeamcServer, params: lsp.DidChangeTextDocumentParams) -> None:
    _schedule(ls, params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
async def did_save(ls: TeamcServer, params: lsp.DidSaveTextDocumentParams) -> None:
    _schedule(ls, params.text_document.uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
async def did_close(ls: TeamcServer, params: lsp.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    task = ls.pending.pop(uri, None)
    if task is not None:
        task.cancel()
    ls.analyses.pop(uri, None)
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


# --- requests ------------------------------------------------------------------


def _at(ls: TeamcServer, uri: str, position: lsp.Position) -> tuple[Analysis, LineIndex, int]:
    analysis = ls.current(uri)
    lines = ls.lines(analysis)
    return analysis, lines, lines.offset(position)


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
@_safe(None)
def on_hover(ls: TeamcServer, params: lsp.HoverParams) -> lsp.Hover | None:
    analysis, lines, offset = _at(ls, params.text_document.uri, params.position)
    found = hover.hover_markdown(analysis, offset, ls.docs_href)
    if found is None:
        return None
    text, (start, end) = found
    kind = lsp.MarkupKind.Markdown if ls.markdown() else lsp.MarkupKind.PlainText
    return lsp.Hover(contents=lsp.MarkupContent(kind=kind, value=text), range=lines.range(start, end))


def _location(uri: str, lines: LineIndex, occurrence) -> lsp.Location:
    return lsp.Location(uri=uri, range=lines.range(occurrence.span.start, occurrence.span.end))


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
@_safe(None)
def on_definition(ls: TeamcServer, params: lsp.DefinitionParams) -> lsp.Location | None:
    analysis, lines, offset = _at(ls, params.text_document.uri, params.position)
    target = navigation.definition(analysis, offset)
    return None if target is None else _location(params.text_document.uri, lines, target)


@server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
@_safe([])
def on_references(ls: TeamcServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
    analysis, lines, offset = _at(ls, params.text_document.uri, params.position)
    found = navigation.references(analysis, offset, params.context.include_declaration)
    return [_location(params.text_document.uri, lines, o) for o in found]


@server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
@_safe(None)
def on_prepare_rename(ls: TeamcServer, params: lsp.PrepareRenameParams):
    analysis, lines, offset = _at(ls, params.text_document.uri, params.position)
    hit = navigation.prepare_rename(analysis, offset)
    if hit is None:
        return None
    return lsp.PrepareRenamePlaceholder(range=lines.range(hit.span.start, hit.span.end), placeholder=hit.span.text)


def _workspace_edit(ls: TeamcServer, analysis: Analysis, lines: LineIndex, edits) -> lsp.WorkspaceEdit:
    text_edits = [lsp.TextEdit(range=lines.range(start, end), new_text=text) for start, end, text in edits]
    if ls.document_changes():
        identifier = lsp.OptionalVersionedTextDocumentIdentifier(uri=analysis.uri, version=analysis.version)
        return lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(text_document=identifier, edits=text_edits)])
    return lsp.WorkspaceEdit(changes={analysis.uri: text_edits})


@server.feature(lsp.TEXT_DOCUMENT_RENAME, lsp.RenameOptions(prepare_provider=True))
@_safe(None)
def on_rename(ls: TeamcServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
    analysis, lines, offset = _at(ls, params.text_document.uri, params.position)
    edits = navigation.rename_edits(analysis, offset, params.new_name)
    return _workspace_edit(ls, analysis, lines, edits)


_COMPLETION_KINDS = {"keyword": lsp.CompletionItemKind.Keyword, "value": lsp.CompletionItemKind.Value,
                     "reference": lsp.CompletionItemKind.Reference, "unit": lsp.CompletionItemKind.Unit}


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[" "]))
@_safe(None)
def on_completion(ls: TeamcServer, params: lsp.CompletionParams) -> lsp.CompletionList | None:
    analysis, lines, offset = _at(ls, params.text_document.uri, params.position)
    text = analysis.source.text
    word = hover.word_at(text, offset)
    start = word[0] if word and word[0] < offset else offset
    items = [lsp.CompletionItem(label=c.label, kind=_COMPLETION_KINDS[c.kind], detail=c.detail or None,
                                documentation=c.doc or None, sort_text=f"{i:04d}",
                                text_edit=lsp.TextEdit(range=lines.range(start, offset), new_text=c.label))
             for i, c in enumerate(completion.complete(analysis, text, offset))]
    return lsp.CompletionList(is_incomplete=False, items=items)


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
@_safe([])
def on_document_symbol(ls: TeamcServer, params: lsp.DocumentSymbolParams):
    analysis = ls.current(params.text_document.uri)
    lines = ls.lines(analysis)

    def detail(symbol) -> str:
        return symbol.kind if symbol.kind != "nic" or not symbol.role else f"{symbol.role} nic"

    kinds = {"vm": lsp.SymbolKind.Module, "team": lsp.SymbolKind.Struct, "nic": lsp.SymbolKind.Field}
    caps = ls.client_capabilities.text_document
    hierarchical = bool(caps and caps.document_symbol and caps.document_symbol.hierarchical_document_symbol_support)
    out: list[lsp.DocumentSymbol | lsp.SymbolInformation] = []
    for vm, members in navigation.outline(analysis):
        if hierarchical:
            children = [lsp.DocumentSymbol(name=s.name, detail=detail(s), kind=kinds[s.kind],
                                           range=lines.range(s.span.start, s.span.end),
                                           selection_range=lines.range(s.name_span.start, s.name_span.end))
                        for s in members]
            out.append(lsp.DocumentSymbol(name=vm.name, detail="vm", kind=kinds["vm"],
                                          range=lines.range(vm.span.start, vm.span.end),
                                          selection_range=lines.range(vm.name_span.start, vm.name_span.end),
                                          children=children))
        else:
            for s in (vm, *members):
                out.append(lsp.SymbolInformation(
                    name=s.name, kind=kinds[s.kind], container_name=None if s is vm else vm.name,
                    location=lsp.Location(uri=analysis.uri, range=lines.range(s.span.start, s.span.end))))
    return out


@server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
@_safe(None)
def on_formatting(ls: TeamcServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
    analysis = ls.current(params.text_document.uri)
    edits = actions.format_edits(analysis)
    if edits is None:
        return None
    lines = ls.lines(analysis)
    return [lsp.TextEdit(range=lines.range(start, end), new_text=text) for start, end, text in edits]


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
@_safe([])
def on_code_action(ls: TeamcServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    analysis = ls.current(params.text_document.uri)
    lines = ls.lines(analysis)
    first, last = lines.offset(params.range.start), lines.offset(params.range.end)
    found = [f for f in actions.fixes(analysis) if (span := f.diagnostic.span) is not None
             and span.start <= last and first <= max(span.end, span.start)]
    out = []
    for fix in found:
        d = fix.diagnostic
        mine = to_lsp(d, lines, analysis.uri, ls.docs_href(d.code))
        theirs = [c for c in params.context.diagnostics if c.code == d.code and c.range == mine.range]
        out.append(lsp.CodeAction(title=fix.title, kind=lsp.CodeActionKind.QuickFix, diagnostics=theirs or [mine],
                                  is_preferred=sum(f.diagnostic == d for f in found) == 1,
                                  edit=_workspace_edit(ls, analysis, lines, fix.edits)))
    return out


def serve() -> None:
    logging.basicConfig(level=logging.WARNING, format="teamc lsp: %(levelname)s %(message)s")
    server.start_io()
