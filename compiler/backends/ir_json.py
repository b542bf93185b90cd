"""IR backend (`--emit json`): one VM of the IR graph -> a JSON document.

Schema (version 1), documented in docs/outputs.md ("The IR as JSON"):
  vm           every VmSpec field (ir.py), spans as locations
  nics         every NicSpec field of the VM's NICs, plus `id`, the graph node key as a list
  edges        {"kind": "pairs-with" | "belongs-to", "from": id, "to": id}
  diagnostics  the diagnostics whose primary span lies in the VM, as `--format json` prints them
A span is {"file", "line", "column", "end_line", "end_column", "start", "end"} (offsets in characters);
a PCI address is its `DDDD:BB:SS.F` string.
"""

from __future__ import annotations

import json
from dataclasses import fields

from ..diagnostics import location, to_json
from ..ir import PciAddress, nics, vm_key
from ..source import Span


def _plain(value):
    if isinstance(value, Span):
        return {**location(value), "start": value.start, "end": value.end}
    if isinstance(value, PciAddress):
        return str(value)
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _record(spec) -> dict:
    return {f.name: _plain(getattr(spec, f.name)) for f in fields(spec)}


def within(span: Span | None, outer: Span) -> bool:
    return span is not None and span.source is outer.source and outer.start <= span.start <= outer.end


def ir_json(graph, vm, diagnostics) -> str:
    members = nics(graph, vm.name)
    keys = {key for key, _ in members}
    edges = [{"kind": kind, "from": list(src), "to": list(dst)} for src, dst, kind in graph.edges(data="kind")
             if src in keys and (dst in keys or dst == vm_key(vm.name))]
    document = {
        "version": 1,
        "vm": _record(vm),
        "nics": [{"id": list(key), **_record(spec)} for key, spec in members],
        "edges": edges,
        "diagnostics": [to_json(d) for d in diagnostics if within(d.span, vm.span)],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
