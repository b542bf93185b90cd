"""Graphviz backend (`--emit dot`): one VM of the IR graph -> its teaming graph.

A box per NIC (name, role, source, MAC), an arrow from each transient to the
persistent it names; a name that names nothing becomes a dashed node. A NIC
with an error is drawn red with its codes, one with a warning orange; the
message is the node's tooltip. Every string is quoted here; the template
only places the statements.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import PERSISTENT, TRANSIENT, nics, partner
from .ir_json import within


@dataclass(frozen=True, slots=True)
class DotStatement:
    text: str  # `id [attrs]` or `a -> b [attrs]`, quoted


@dataclass(frozen=True, slots=True)
class DotView:
    name: str
    graph_attrs: str
    nodes: tuple[DotStatement, ...]
    edges: tuple[DotStatement, ...]


def quote(text: str) -> str:
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + "".join(max(c, " ") for c in text) + '"'


def _attrs(**attrs) -> str:
    return ", ".join(f"{key}={quote(str(value))}" for key, value in attrs.items() if value is not None)


def _style(found: list) -> dict:
    if not found:
        return {}
    color = "red" if any(d.is_error for d in found) else "orange"
    return {"color": color, "fontcolor": color, "penwidth": "2",
            "tooltip": "\n".join(f"{d.code} {d.message}" for d in found)}


def dot_view(graph, vm, diagnostics) -> DotView:
    members = nics(graph, vm.name)
    ids = {key: f"n{i}" for i, (key, _) in enumerate(members)}
    nodes, edges = [], []
    placed: set = set()
    for key, nic in members:
        found = [d for d in diagnostics if within(d.span, nic.span) or any(within(lab.span, nic.span)
                                                                             for lab in d.labels)]
        source = " ".join(str(part) for part in (nic.source_kind, nic.source_target or nic.host_address) if part)
        lines = [nic.alias or nic.name, f"{nic.role or 'no role'} · {source}"]
        if nic.role == PERSISTENT and nic.model:
            lines[1] = f"{nic.role} · {nic.model} {source}"
        if nic.mac:
            lines.append(nic.mac + (" (derived)" if nic.mac_derived else ""))
        lines += [f"{d.code} {d.slug}" for d in found if d.code not in {x.code for x in found[:found.index(d)]}]
        shape = "box" if nic.role != TRANSIENT else "component"
        nodes.append(DotStatement(f"{ids[key]} [{_attrs(label=chr(10).join(lines), shape=shape, **_style(found))}]"))
        target = partner(graph, key)
        if target is not None:
            edge_found = [d for d in found if d.code in ("E0304", "E0305", "E0306", "E0308")]
            edges.append(DotStatement(f"{ids[key]} -> {ids[target]} [{_attrs(**_style(edge_found))}]"))
        elif nic.role == TRANSIENT and nic.pairs_with is not None:
            missing = f"missing{len(placed)}"
            placed.add(missing)
            attrs = _attrs(label=f"{nic.pairs_with}\n(no such NIC)", style="dashed", color="red", fontcolor="red")
            nodes.append(DotStatement(f"{missing} [{attrs}]"))
            edges.append(DotStatement(f"{ids[key]} -> {missing} [{_attrs(style='dashed', color='red')}]"))
    vm_found = [d for d in diagnostics if any(within(span, vm.span) for span in (d.span, *(x.span for x in d.labels)))
                and not any(within(d.span, nic.span) for _, nic in members)]
    label = f"VM {vm.name} ({vm.machine})" + "".join(f"\n{d.code} {d.message}" for d in vm_found)
    graph_attrs = _attrs(label=label, labelloc="t", rankdir="LR", fontname="Helvetica",
                         fontcolor=_style(vm_found).get("color"))
    return DotView(quote(vm.name), graph_attrs, tuple(nodes), tuple(edges))
