"""textDocument/completion: what the grammar allows at the cursor, and values that fit there.

The parser itself says what may come next (`parser.expected_words` on the text before the word being typed,
recovering over errors above it). Keywords come with their docs from `keywords.KEYWORDS`. Where a value is
expected, the previous words pick the candidates: the persistent NICs and teams after `teaming transient`,
a MAC no other NIC of the file uses after `mac` (the partner's first, in the explicit form), a host VF no
other NIC of the file uses after `hostdev`, and the allowed words of settings with a fixed set.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..diagnostics import CODES
from ..ir import PciAddress, nics
from ..keywords import KEYWORDS, UNIT_WORDS
from ..lower import MACVTAP_MODES, derive_mac
from ..parser import expected_words
from ..source import SourceFile
from .analysis import Analysis
from .hover import word_at


@dataclass(frozen=True, slots=True)
class Candidate:
    label: str
    kind: str  # keyword | value | reference | unit
    detail: str = ""
    doc: str = ""


_FIXED = {
    "machine": ("q35", "pc-q35-7.2"),
    "arch": ("x86_64", "i686"),
    "accel": ("kvm", "tcg"),
    "mode": MACVTAP_MODES,
    "bar": ("on", "off"),
    "persistent": ("virtio", "virtio-transitional", "virtio-non-transitional"),
    "model": ("virtio", "virtio-transitional", "virtio-non-transitional"),
}
_SYSFS_PCI = Path("/sys/bus/pci/devices")


def host_vfs(root: Path = _SYSFS_PCI) -> list[str]:
    """The SR-IOV virtual functions of this host (PCI devices with a `physfn` link)."""
    try:
        return sorted(entry.name for entry in root.iterdir() if (entry / "physfn").exists())
    except OSError:
        return []


_STRING_OR_CODE = re.compile(r'"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+("?)|[^"#]++')


def _in_comment_or_string(line: str) -> bool:
    """Whether the end of `line` (the text before the cursor) is inside a comment or an open string."""
    pos = 0
    while pos < len(line):
        m = _STRING_OR_CODE.match(line, pos)
        if m is None:
            return True  # a `#` outside a string: the rest of the line is a comment
        if m.group(0).startswith('"') and not m.group(1) and m.end() == len(line):
            return True
        pos = m.end()
    return False


def complete(analysis: Analysis, current_text: str, offset: int, vfs=None) -> list[Candidate]:
    vfs = vfs or environment_vfs
    if _in_comment_or_string(current_text[current_text.rfind("\n", 0, offset) + 1:offset]):
        return []
    word = word_at(current_text, offset)
    start = word[0] if word and word[0] < offset else offset
    keywords, others = expected_words(SourceFile(analysis.source.name, current_text[:start]))
    out = [Candidate(k, "keyword", KEYWORDS[k].syntax if k in KEYWORDS else "",
                     KEYWORDS[k].doc if k in KEYWORDS else "") for k in sorted(keywords)]
    if keywords and keywords <= set(UNIT_WORDS):
        out = [Candidate(k, "unit") for k in UNIT_WORDS if k in keywords]
    if "WORD" in others:
        line_start = current_text.rfind("\n", 0, start) + 1
        previous = re.findall(r'[^\s{};#"]+', current_text[line_start:start].split(";")[-1])
        out += _values(analysis, previous, start, vfs)
    return out


def _values(analysis: Analysis, previous: list[str], offset: int, vfs) -> list[Candidate]:
    last = previous[-1] if previous else ""
    before = previous[-2] if len(previous) > 1 else ""
    vm = analysis.index.vm_at(offset)
    if last == "transient" and before == "teaming" and vm is not None:
        return [Candidate(s.alias or s.name, "reference", f"{s.kind} `{s.name}`")
                for s in analysis.index.symbols if s.vm == vm.name and s.kind in ("team", "nic")
                and s.role == "persistent"]
    if last == "mac":
        return _macs(analysis, offset, vm.name if vm else None)
    if last in ("hostdev", "pci-hostdev", "vf"):
        used = _used(analysis, "host_address")
        return [Candidate(v, "value", "host VF") for v in vfs() if PciAddress.parse(v) not in used]
    if last == "allow":
        return [Candidate(c.slug, "value", c.code, c.summary) for c in CODES.values() if c.allowable]
    if last in _FIXED and not (last == "persistent" and before == "teaming"):
        return [Candidate(v, "value") for v in _FIXED[last]]
    return []


def _used(analysis: Analysis, field: str) -> set:
    if analysis.graph is None:
        return set()
    return {getattr(nic, field) for _, nic in nics(analysis.graph) if getattr(nic, field) is not None}


def _macs(analysis: Analysis, offset: int, vm: str | None) -> list[Candidate]:
    """The partner's MAC first (the explicit form shares one MAC per pair), then a fresh derived one."""
    if analysis.graph is None or vm is None:
        return []
    from ..ir import partner, transients_of

    used = {nic.mac for _, nic in nics(analysis.graph) if nic.mac and not nic.mac_derived}
    out = []
    for key, nic in nics(analysis.graph, vm):
        if not nic.span.start <= offset <= nic.span.end:
            continue
        others = [partner(analysis.graph, key), *transients_of(analysis.graph, key)]
        for other in filter(None, others):
            theirs = analysis.graph.nodes[other]["nic"]
            if theirs.mac and not theirs.mac_derived:
                out.append(Candidate(theirs.mac, "value", f"the MAC of {theirs.label}"))
        name = nic.alias or nic.name
        fresh = derive_mac(vm, name)
        salt = 0
        while fresh in used:  # derived MACs of other NICs could collide only by chance; step past them
            salt += 1
            fresh = derive_mac(vm, f"{name}#{salt}")
        out.append(Candidate(fresh, "value", "a fresh MAC under 52:54:00, unused in this file"))
    return out


def environment_vfs() -> list[str]:
    """`TEAMC_LSP_VFS` (comma-separated) stands in for the host's VFs: tests and hosts without SR-IOV."""
    listed = os.environ.get("TEAMC_LSP_VFS")
    return [v for v in listed.split(",") if v] if listed is not None else host_vfs()
