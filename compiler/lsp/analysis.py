"""One document's analysis: the compiler's phases run over its text, and an index of its names.

`analyse` runs parse (with recovery) -> lower -> check and layout, the same phases as `teamc check`, and keeps
the layouts they gave (hover shows what a team compiles to from them). A VM that holds a
syntax error is *poisoned*: its later-phase diagnostics are dropped, because the placeholders recovery put in
it (an empty value, a closing brace) would only make noise. The result is immutable; the server swaps whole
analyses, so no handler sees a half-built one.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, fields, is_dataclass, replace
from functools import cached_property

import networkx as nx

from .. import nodes as n
from ..checks import apply_allow
from ..diagnostics import Diagnostic
from ..layout import VmLayout
from ..lower import lower, team_alias
from ..parser import parse_tolerant
from ..pipeline import Options, check_and_lay_out, emitter_diagnostics, no_cyclic_gc
from ..source import SourceFile, Span


@dataclass(frozen=True, slots=True)
class Symbol:
    """A VM, team or NIC definition."""

    kind: str  # vm | team | nic
    name: str
    vm: str
    name_span: Span
    span: Span  # the whole block
    role: str | None = None  # a nic's teaming role; "persistent" for a team (its name gives the alias)

    @property
    def alias(self) -> str | None:
        if self.kind == "team":
            return team_alias(self.name)
        if self.kind == "nic" and self.name.startswith("ua-"):
            return self.name
        return None


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A name in the text: a definition, or a `teaming transient NAME` reference (target None: unknown)."""

    span: Span
    target: Symbol | None
    is_definition: bool


@dataclass(frozen=True)
class Index:
    symbols: tuple[Symbol, ...]
    occurrences: tuple[Occurrence, ...]  # sorted by offset
    module: n.Module | None = field(repr=False)

    @cached_property
    def starts(self) -> list[int]:
        return [o.span.start for o in self.occurrences]

    @cached_property
    def values(self) -> tuple[Span, ...]:
        """Every value's span, sorted: a keyword-looking word there is a value (hover needs it, rarely)."""
        return tuple(sorted((v.span for v in _values(self.module)), key=lambda s: s.start))

    def at(self, offset: int) -> Occurrence | None:
        starts = self.starts
        i = bisect.bisect_right(starts, offset) - 1
        if i >= 0 and self.occurrences[i].span.start <= offset <= self.occurrences[i].span.end:
            return self.occurrences[i]
        return None

    def of(self, symbol: Symbol) -> list[Occurrence]:
        return [o for o in self.occurrences if o.target == symbol]

    def in_value(self, offset: int) -> bool:
        starts = [s.start for s in self.values]
        i = bisect.bisect_right(starts, offset) - 1
        return i >= 0 and self.values[i].start <= offset <= self.values[i].end

    def vm_at(self, offset: int) -> Symbol | None:
        return next((s for s in self.symbols if s.kind == "vm" and s.span.start <= offset <= s.span.end), None)


@dataclass(frozen=True)
class Analysis:
    """Parse, lower and check; `with_backends` adds what only compiling finds (the QEMU backend's warnings)."""
    uri: str
    version: int | None
    source: SourceFile
    module: n.Module | None
    graph: nx.DiGraph | None  # the lowered IR, None when recovery gave up
    diagnostics: tuple[Diagnostic, ...]
    syntax_errors: int
    index: Index = field(repr=False)
    backends_done: bool = False
    laid_out: tuple[VmLayout, ...] = field(default=(), repr=False)  # the layout phase's result (check_and_lay_out)

    @cached_property
    def layouts(self) -> dict[str, VmLayout]:
        """VM name -> its device layout, for the VMs without errors (hover shows what they compile to)."""
        if self.syntax_errors:
            return {}
        failed = {s.vm for s in self.index.symbols for d in self.diagnostics
                  if d.is_error and s.kind == "vm" and d.span is not None
                  and s.span.start <= d.span.start <= s.span.end}
        return {layout.vm.name: layout for layout in self.laid_out if layout.vm.name not in failed}

    def with_backends(self) -> Analysis:
        """This analysis plus what the output kinds of `teamc compile` tell (the QEMU backend's W0504, W0505,
        W0509) for the VMs that lay out. It costs as much again as the checks, so the server publishes it second."""
        if self.backends_done:
            return self
        with no_cyclic_gc():
            found = emitter_diagnostics(list(self.layouts.values()), Options())
            if found and self.graph is not None:  # (there are layouts only with a graph)
                found = apply_allow(self.graph, found)
        diagnostics = tuple(sorted((*self.diagnostics, *found), key=Diagnostic.sort_key))
        return replace(self, diagnostics=diagnostics, backends_done=True)


def analyse(uri: str, name: str, text: str, version: int | None = None) -> Analysis:
    with no_cyclic_gc():
        return _analyse(uri, name, text, version)


def _analyse(uri: str, name: str, text: str, version: int | None) -> Analysis:
    source = SourceFile(name, text)
    parsed = parse_tolerant(source)
    diagnostics = list(parsed.diagnostics)
    graph = None
    layouts: list[VmLayout] = []
    if parsed.module is not None:
        lowered = lower(parsed.module)
        graph = lowered.graph
        found, layouts = check_and_lay_out(graph)
        later = apply_allow(graph, [*lowered.diagnostics, *found])
        # An error at a VM's first token (`vm`) is where recovery closed the VM before it.
        poisoned = [vm.span for vm in parsed.module.vms
                    if any(vm.span.start < at <= vm.span.end for at in parsed.error_offsets)]
        diagnostics += [d for d in later
                        if d.span is None or not any(p.start <= d.span.start <= p.end for p in poisoned)]
    diagnostics.sort(key=Diagnostic.sort_key)
    return Analysis(uri, version, source, parsed.module, graph, tuple(diagnostics), len(parsed.diagnostics),
                    build_index(parsed.module), laid_out=tuple(layouts))


def build_index(module: n.Module | None) -> Index:
    symbols: list[Symbol] = []
    occurrences: list[Occurrence] = []
    if module is None:
        return Index((), (), None)
    for vm in module.vms:
        vm_symbol = Symbol("vm", vm.name.text, vm.name.text, vm.name.span, vm.span)
        symbols.append(vm_symbol)
        occurrences.append(Occurrence(vm.name.span, vm_symbol, True))
        members: list[Symbol] = []
        refs: list[n.Value] = []
        for item in vm.items:
            if isinstance(item, n.Team):
                members.append(Symbol("team", item.name.text, vm.name.text, item.name.span, item.span, "persistent"))
            elif isinstance(item, n.Nic):
                roles = [i for i in item.items if isinstance(i, n.Teaming)]
                members.append(Symbol("nic", item.name.text, vm.name.text, item.name.span, item.span,
                                      roles[0].role if roles else None))
                refs += [r.target for r in roles if r.role == "transient" and r.target is not None]
        symbols += members
        occurrences += [Occurrence(s.name_span, s, True) for s in members]
        # A transient names a persistent NIC or team by name or by alias (as lowering resolves it).
        by_name = {s.name: s for s in reversed(members) if s.role != "transient"}
        by_alias = {s.alias: s for s in reversed(members) if s.alias and s.role != "transient"}
        for ref in refs:
            occurrences.append(Occurrence(ref.span, by_name.get(ref.text) or by_alias.get(ref.text), False))
    occurrences.sort(key=lambda o: o.span.start)
    return Index(tuple(symbols), tuple(occurrences), module)


def _values(node):
    if isinstance(node, n.Value):
        yield node
    elif isinstance(node, tuple):
        for item in node:
            yield from _values(item)
    elif is_dataclass(node):
        for f in fields(node):
            if f.name != "span":
                yield from _values(getattr(node, f.name))
