"""Quick fixes for the diagnostics whose `help:` names one edit, and formatting through `teamc fmt`.

Each fix is computed from the analysis of the text it will edit (never carried over from an older version):
copy the partner's MAC (E0308), add the `ua-` prefix (E0201, a rename of every reference), switch the machine
to q35 (E0401, E0405), move a clashing or reserved guest address to a free one (E0403), and take the
did-you-mean keyword (E0002). tests/test_lsp.py applies each fix and recompiles to see its code gone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..diagnostics import Diagnostic
from ..formatter import format_source
from ..ir import PciAddress, nics, vms
from ..lower import MAC_RE
from .analysis import Analysis
from .navigation import Edit, RenameError, rename_edits


@dataclass(frozen=True, slots=True)
class Fix:
    diagnostic: Diagnostic
    title: str
    edits: tuple[Edit, ...]


def fixes(analysis: Analysis) -> list[Fix]:
    out = []
    for d in analysis.diagnostics:
        fix = _fix(analysis, d)
        if fix is not None:
            out.append(fix)
    return out


def _fix(analysis: Analysis, d: Diagnostic) -> Fix | None:
    span = d.span
    if span is None:
        return None
    if d.code == "E0308" and d.labels and MAC_RE.match(span.text) and MAC_RE.match(d.labels[0].span.text):
        mac = d.labels[0].span.text
        return Fix(d, f"Copy the partner's MAC {mac}", ((span.start, span.end, mac),))
    if d.code == "E0201":
        try:
            edits = rename_edits(analysis, span.start, "ua-" + span.text)
        except RenameError:
            return None
        return Fix(d, f"Rename to `ua-{span.text}` (and every reference)", tuple(edits))
    if d.code in ("E0401", "E0405") and span.text != "q35" and _is_machine_value(analysis, d):
        return Fix(d, "Switch the machine to q35", ((span.start, span.end, "q35"),))
    if d.code == "E0403" and PciAddress.parse(span.text) is not None:
        free = _free_address(analysis, span.start)
        if free is not None:
            return Fix(d, f"Move it to the free guest address {free}", ((span.start, span.end, free),))
    if d.code == "E0002" and d.help and (m := re.fullmatch(r"did you mean `([^`]+)`\?", d.help)):
        return Fix(d, f"Change to `{m[1]}`", ((span.start, span.end, m[1]),))
    return None


def _is_machine_value(analysis: Analysis, d: Diagnostic) -> bool:
    return analysis.graph is not None and any(vm.machine_span == d.span for vm in vms(analysis.graph))


def _free_address(analysis: Analysis, offset: int) -> str | None:
    """A guest address no NIC of the VM pins: the next root port bus (q35) or a free slot of pci.0 (pc)."""
    if analysis.graph is None:
        return None
    vm = next((v for v in vms(analysis.graph) if v.span.start <= offset <= v.span.end), None)
    if vm is None:
        return None
    pinned = [nic.guest_address for _, nic in nics(analysis.graph, vm.name) if nic.guest_address is not None]
    if vm.machine_family == "q35":
        bus = max((a.bus for a in pinned), default=0) + 1
        return f"0000:{bus:02x}:00.0" if bus <= 0xFF else None
    taken = {a.slot for a in pinned if a.bus == 0}
    slot = next((s for s in range(2, 0x1F) if s not in taken), None)
    return None if slot is None else f"0000:00:{slot:02x}.0"


def format_edits(analysis: Analysis) -> list[Edit] | None:
    """The whole document replaced by `teamc fmt`'s output; None after syntax errors (skipped text would be
    lost) and [] when it is formatted already."""
    if analysis.syntax_errors:
        return None
    text, diagnostics = format_source(analysis.source)
    if text is None or diagnostics:
        return None
    return [] if text == analysis.source.text else [(0, len(analysis.source.text), text)]
