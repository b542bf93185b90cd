"""The pipeline: text -> parse -> lower -> check -> layout -> emit (or merge, for `--into`).

Each phase is a module with one entry point; this module only wires them and
carries options. The output kinds come from the emitter registry (emitters/).
`check_source` stops after the checks and the layout (and the diagnostics of the
selected emitters, which `compile` would print too) and never imports the
rendering stack (Jinja), which keeps `teamc check` fast.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import networkx as nx

from .checks import apply_allow, check, check_layouts
from .diagnostics import Diagnostic, diag
from .ir import TRANSIENT, nics, vms
from .lower import lower
from .parser import parse, parse_part
from .source import SourceFile, Span

MAX_INPUT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Options:
    emit: tuple[str, ...] = ("xml", "qemu")  # what compile writes: kinds of the emitter registry (emitters/)
    qemu_syntax: str = "json"  # json | keyval
    qemu_format: str = "shell"  # shell (runnable script) | lines (one argument per line)
    vf: dict = field(default_factory=dict)  # (vm, team or nic name) -> PciAddress, for hostdev-pool transients
    allow: frozenset[str] = frozenset()  # codes downgraded to warnings everywhere
    into: SourceFile | None = None  # --into BASE.xml: the xml output is the teams merged into this domain

    def cache_key(self) -> str:
        """Everything here that changes outputs, as stable text."""
        vf = ",".join(f"{vm}:{name}={addr}" for (vm, name), addr in sorted(self.vf.items()))
        into = ""
        if self.into is not None:
            import hashlib

            into = f"{self.into.name}:{self.into.bom}:{hashlib.sha256(self.into.text.encode()).hexdigest()}"
        return (f"{','.join(self.emit)}|{self.qemu_syntax}|{self.qemu_format}|{vf}|{','.join(sorted(self.allow))}"
                f"|{into}")


@dataclass(slots=True)  # read-only by convention: one per output file
class Artifact:
    name: str  # file name inside the output folder
    text: str
    analysis: bool = False  # describes the input (--emit json, dot): written even when it has errors


@dataclass
class FileResult:
    source: SourceFile
    diagnostics: list[Diagnostic]
    artifacts: list[Artifact] = field(default_factory=list)
    vms: list = field(default_factory=list)  # (name, name span) of each VM
    used_vf: set = field(default_factory=set)
    cached: bool = False  # reused from the output folder's manifest, not compiled again
    written: list = field(default_factory=list)  # names a worker wrote into the output folder
    analysis_names: list = field(default_factory=list)  # those of them that describe the input (json, dot)
    key: str = ""  # the manifest key of the input (batch.content_key)
    stamp: list = field(default_factory=list)  # its size and mtime when it was read (batch.file_stamp)

    @property
    def failed(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


def read_source(path: str, data: bytes) -> tuple[SourceFile, list[Diagnostic]]:
    """Decode an input; invalid UTF-8 becomes a diagnostic at the first bad byte.

    A UTF-8 byte-order mark (what some editors write first) is not part of the text."""
    bom = data.startswith(b"\xef\xbb\xbf")
    if bom:
        data = data[3:]
    try:
        return SourceFile(path, data.decode("utf-8"), bom), []
    except UnicodeDecodeError as err:
        text = data.decode("utf-8", errors="replace")
        source = SourceFile(path, text)
        at = len(data[: err.start].decode("utf-8"))  # the character offset of the first bad byte
        return source, [diag("E0003", f"the file is not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start})",
                             Span(source, at, at + 1), help="save the file as UTF-8")]


def _apply_vf(graph, options: Options, result: FileResult) -> None:
    """`--vf VM:NAME=ADDR`: the concrete VF for a hostdev-pool transient (validated by the CLI)."""
    for key, nic in nics(graph):
        wanted = options.vf.get((nic.vm, nic.name))
        if wanted is None or nic.role != TRANSIENT or nic.source_kind != "network":
            continue
        graph.nodes[key]["nic"] = replace(nic, host_address=wanted)
        result.used_vf.add((nic.vm, nic.name))


# Running as the program (`cli.main`), teamc leaves what a compile made to the OS, which takes it back at
# exit all at once, instead of freeing it object by object (0.1 s for a 10,000-VM file), as compilers that
# skip freeing at exit do. Called from Python (the language server, the API, the tests), everything is
# freed as usual.
_LEFT_TO_EXIT: list | None = None


def leave_to_exit() -> None:
    """This process ends when its run does (see `_LEFT_TO_EXIT`)."""
    global _LEFT_TO_EXIT
    _LEFT_TO_EXIT = []


@contextmanager
def no_cyclic_gc():
    """The AST and IR hold no reference cycles, but a large file makes millions of
    objects, and Python's cyclic collector would traverse all of them again and
    again (half the run time on a 10,000-VM file). Reference counting frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _LEFT_TO_EXIT is not None:
            gc.freeze()  # what is left to the OS is never walked by a collection either
        if enabled:
            gc.enable()


def check_and_lay_out(graph) -> tuple[list[Diagnostic], list]:
    """Check the IR, lay it out, and check the layout (what does not fit its machine).

    A graph with errors is laid out too: whether it fits is worth saying with the other errors."""
    from .layout import layout

    layouts = layout(graph)
    return [*check(graph), *check_layouts(layouts)], layouts


def check_source(source: SourceFile, options: Options = Options()) -> tuple[nx.DiGraph | None, FileResult]:
    """Parse, lower and check. Returns the graph (None after syntax errors)."""
    with no_cyclic_gc():
        return _check_source(source, options)[:2]


def lay_out_source(source: SourceFile, options: Options = Options()) -> tuple[nx.DiGraph | None, FileResult, list]:
    """`check_source`, and the layouts of the VMs when the checks pass (else []): for the commands that
    run what they lay out (`teamc verify`)."""
    with no_cyclic_gc():
        return _check_source(source, options)


def _check_source(source: SourceFile, options: Options) -> tuple[nx.DiGraph | None, FileResult, list]:
    """Also returns the layouts when the checks pass (for compile to render), else []."""
    module, diagnostics = parse(source)
    result = FileResult(source, diagnostics)
    if module is None:
        return None, result, []
    graph, layouts, emitters_found = _check_module(module, options, result)
    if result.failed:
        return graph, result, []
    result.diagnostics.extend(emitters_found)
    return graph, result, layouts


def _check_module(module, options: Options, result: FileResult) -> tuple[nx.DiGraph, list, list[Diagnostic]]:
    """Lower, check and lay out a parsed module: its graph, its layouts, and what the selected emitters find
    in them (only when the checks pass: `compile` and `check` report it then); the diagnostics of the
    checks and the VMs go into `result`."""
    lowered = lower(module)
    graph = lowered.graph
    _apply_vf(graph, options, result)
    found, layouts = check_and_lay_out(graph)
    result.diagnostics = apply_allow(graph, [*result.diagnostics, *lowered.diagnostics, *found], options.allow)
    result.vms = [(vm.name, vm.name_span) for vm in vms(graph)]
    emitters_found = [] if result.failed else apply_allow(graph, emitter_diagnostics(layouts, options), options.allow)
    return graph, layouts, emitters_found


@dataclass
class Part:
    """A run of whole VMs of a file (`text[start:end]`), checked as a file of those VMs alone would be
    (`parts.py` compiles a large file as such runs in several processes)."""

    graph: nx.DiGraph
    result: FileResult  # its diagnostics (not those of the emitters), VMs and VFs used
    layouts: list
    emitter_diagnostics: list[Diagnostic]  # those of its layouts (none after errors): the file's if it passes
    names: set[str]  # every VM name it defines, even one that lower refused (E0101 is about names)


def check_part(source: SourceFile, options: Options, start: int, end: int) -> Part | None:
    """Parse, lower, check and lay out `source.text[start:end]`; None at a syntax error. Call it with cyclic
    GC off."""
    module = parse_part(source, start, end)
    if module is None:
        return None
    result = FileResult(source, [])
    graph, layouts, emitters_found = _check_module(module, options, result)
    return Part(graph, result, layouts, emitters_found, {vm.name.text for vm in module.vms})


def emitter_diagnostics(layouts: list, options: Options) -> list[Diagnostic]:
    """What only the selected output kinds can tell about these layouts (the QEMU backend's W0504,
    W0505, W0509), as `compile` and `check` report it; not yet filtered by `allow`."""
    from .emitters import selected

    return [d for emitter in selected(options.emit) if emitter.diagnose
            for vm_layout in layouts for d in emitter.diagnose(vm_layout, options)]


def compile_source(source: SourceFile, options: Options = Options()) -> FileResult:
    with no_cyclic_gc():
        result, work = plan_compile(source, options)
        if work is not None:
            analysis, rendered = work.emit()
            result.artifacts = [*analysis, *result.artifacts, *rendered]
            work.release()
        return result


@dataclass(frozen=True)
class EmitWork:
    """The per-VM half of a compile, what is left once the file is checked: every output of one VM
    depends on that VM's IR and layout alone (and a description on the diagnostics about it)."""

    graph: nx.DiGraph
    diagnostics: tuple[Diagnostic, ...]  # the file's, for the kinds that describe them
    described: list  # the VMs the analysis kinds (json, dot) describe
    laid_out: list  # the layouts the output kinds render (none after errors)
    options: Options

    def release(self, *outputs) -> None:
        """Done with the IR and the outputs made of it: free them now, or leave them to the OS when running
        as the program (`leave_to_exit`). networkx keeps views of a graph in the graph (a reference cycle),
        so a dropped graph would wait for a cyclic collection, which traverses every object of the IR (0.5 s
        at 10,000 VMs); emptied, its nodes are freed by reference counting at once."""
        if _LEFT_TO_EXIT is not None:
            _LEFT_TO_EXIT.append((self, outputs))
        else:
            self.graph.clear()

    def emit(self) -> tuple[list[Artifact], list[Artifact]]:
        """The artifacts of its VMs: (analysis ones, rendered ones)."""
        return self.describe(), self.render()

    def describe(self) -> list[Artifact]:
        """What the analysis kinds (json, dot) make of the described VMs, with the diagnostics."""
        from .emitters import Subject, selected

        analysis = [e for e in selected(self.options.emit) if e.analysis]
        return [a for vm in self.described for e in analysis
                for a in e.emit(Subject(self.graph, vm, self.diagnostics, None), self.options)]

    def render(self) -> list[Artifact]:
        """What the output kinds (xml, qemu, ...) render of the laid-out VMs; they read no diagnostic."""
        from .emitters import Subject, selected

        output = [e for e in selected(self.options.emit) if not e.analysis]
        return [a for vm_layout in self.laid_out for e in output
                for a in e.emit(Subject(self.graph, vm_layout.vm, self.diagnostics, vm_layout), self.options)]


def plan_compile(source: SourceFile, options: Options) -> tuple[FileResult, EmitWork | None]:
    """Parse, check, lay out (and merge, for `--into`): the result, with `artifacts` holding only the
    merged domain, and the per-VM work left (None after syntax errors). Call it with cyclic GC off."""
    graph, result, layouts = _check_source(source, options)
    if graph is None:
        return result, None
    if result.failed:
        return result, emit_work(graph, result.diagnostics, [], options)
    if options.into is not None and "xml" in options.emit:
        from .merge import merge_into

        merged, merge_diagnostics = merge_into(options.into, layouts)
        diagnostics = tuple(result.diagnostics)  # the analysis kinds describe the file without the merge's
        result.diagnostics.extend(apply_allow(graph, merge_diagnostics, options.allow))
        if result.failed:
            return result, emit_work(graph, diagnostics, [], options)
        result.artifacts.extend(Artifact(f"{name}.xml", text) for name, text in merged)
        return result, emit_work(graph, diagnostics, layouts, options)
    return result, emit_work(graph, result.diagnostics, layouts, options)


def emit_work(graph: nx.DiGraph, diagnostics, layouts: list, options: Options) -> EmitWork:
    """What is left to emit of a checked graph with these diagnostics: `layouts` are rendered (none after
    errors), and the analysis kinds describe every VM but those whose name is refused."""
    diagnostics = tuple(diagnostics)
    # Outputs are named after their VM: one whose name is refused (`../x`, `/abs`) gets no file at all.
    refused = {(d.span.start, d.span.end) for d in diagnostics if d.code == "E0205" and d.is_error and d.span}
    from .emitters import selected

    describing = any(e.analysis for e in selected(options.emit))
    described = [vm for vm in vms(graph) if describing and (vm.name_span.start, vm.name_span.end) not in refused]
    return EmitWork(graph, diagnostics, described, layouts, options)


def read_input(path: str) -> bytes:
    """The bytes of a file, or of standard input for '-': at most one more than the size bound."""
    import sys

    if path == "-":
        return sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    with open(Path(path), "rb") as fh:
        return fh.read(MAX_INPUT_BYTES + 1)


def decode_input(name: str, data: bytes) -> tuple[SourceFile, list[Diagnostic]]:
    """An input's bytes as source text, or the diagnostic that it is too large or not UTF-8."""
    if len(data) > MAX_INPUT_BYTES:
        source = SourceFile(name, "")
        return source, [diag("E0003", f"the file is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB", None,
                             help="split the fleet into several .team files")]
    return read_source(name, data)


def load(path: str) -> tuple[SourceFile, list[Diagnostic]]:
    """Read and decode a file (or '-' for stdin) with a size bound."""
    return decode_input("<stdin>" if path == "-" else path, read_input(path))
