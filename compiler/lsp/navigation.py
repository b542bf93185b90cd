"""Definition, references, rename and the outline, from the analysis's index of names.

A transient names its persistent NIC by name or by alias (`teaming transient ua-up0` names `team up0`);
the index resolves both as lowering does. Renaming keeps that form: a reference written as the alias gets
the new alias. A persistent NIC of the explicit form must keep the `ua-` prefix (E0201), so a new name
without it gets it.
"""

from __future__ import annotations

from ..lower import ALIAS_RE, VM_NAME_RE, team_alias
from .analysis import Analysis, Occurrence, Symbol

Edit = tuple[int, int, str]  # start offset, end offset, new text


class RenameError(ValueError):
    """The new name is not one the language accepts; the message says why."""


def definition(analysis: Analysis, offset: int) -> Occurrence | None:
    hit = analysis.index.at(offset)
    if hit is None or hit.target is None:
        return None
    return next(o for o in analysis.index.of(hit.target) if o.is_definition)


def references(analysis: Analysis, offset: int, include_declaration: bool) -> list[Occurrence]:
    hit = analysis.index.at(offset)
    if hit is None or hit.target is None:
        return []
    return [o for o in analysis.index.of(hit.target) if include_declaration or not o.is_definition]


def prepare_rename(analysis: Analysis, offset: int) -> Occurrence | None:
    hit = analysis.index.at(offset)
    return hit if hit is not None and hit.target is not None else None


def rename_edits(analysis: Analysis, offset: int, new_name: str) -> list[Edit]:
    hit = analysis.index.at(offset)
    if hit is None or hit.target is None:
        raise RenameError("no VM, team or NIC name here")
    symbol = hit.target
    pattern = VM_NAME_RE if symbol.kind == "vm" else ALIAS_RE
    if not pattern.match(new_name) or len(new_name) > 200:
        allowed = "letters, digits and `_ . + -`" if symbol.kind == "vm" else "letters, digits, `_`, `-` and `.`"
        raise RenameError(f"`{new_name}` is not a valid {symbol.kind} name: use {allowed}")
    if symbol.kind == "nic" and symbol.role == "persistent" and not new_name.startswith("ua-"):
        new_name = "ua-" + new_name  # the alias rule: a persistent NIC's name is its `ua-` alias
    edits = []
    for occurrence in analysis.index.of(symbol):
        text = occurrence.span.text
        if symbol.kind == "team" and not occurrence.is_definition and text != symbol.name:
            edits.append((occurrence.span.start, occurrence.span.end, team_alias(new_name)))
        else:
            edits.append((occurrence.span.start, occurrence.span.end, new_name))
    return edits


def outline(analysis: Analysis) -> list[tuple[Symbol, list[Symbol]]]:
    """VMs with their teams and NICs, in source order."""
    out: list[tuple[Symbol, list[Symbol]]] = []
    for symbol in analysis.index.symbols:
        if symbol.kind == "vm":
            out.append((symbol, []))
        elif out:
            out[-1][1].append(symbol)
    return out
