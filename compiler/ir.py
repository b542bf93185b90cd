"""The IR: one networkx DiGraph per input file.

Nodes
  ("vm", VM)            kind="vm",  vm=VmSpec
  ("nic", VM, NAME, MEMBER)  kind="nic", nic=NicSpec
Edges
  nic  -> vm            kind="belongs-to"
  transient -> persistent  kind="pairs-with"   (only when the target exists)

A transient whose target does not exist keeps the name in `NicSpec.pairs_with`
and has no pairs-with edge; checks report it. NAME is the team name for both
members of a team (MEMBER is "persistent" or "transient") or the NIC name of
the explicit form (MEMBER is ""). Node insertion order is source order, and every phase
after lowering iterates in that order, which keeps outputs deterministic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import networkx as nx

from .nicsettings import Elem
from .source import Span

PERSISTENT, TRANSIENT = "persistent", "transient"
HOSTDEV_KINDS = ("hostdev", "pci-hostdev")  # the transient forms that name a host VF directly
VIRTIO_MODELS = ("virtio", "virtio-transitional", "virtio-non-transitional")


PCI_RE = re.compile(r"(?:([0-9A-Fa-f]{1,8}):)?([0-9A-Fa-f]{1,4}):([0-9A-Fa-f]{1,4})\.([0-9A-Fa-f]{1,2})\Z")
PCI_LIMITS = (("domain", 0xFFFF), ("bus", 0xFF), ("slot", 0x1F), ("function", 7))


@dataclass(frozen=True, slots=True, order=True)
class PciAddress:
    domain: int
    bus: int
    slot: int
    function: int

    @classmethod
    def parse(cls, text: str) -> PciAddress | None:
        """DOMAIN:BUS:SLOT.FUNCTION or BUS:SLOT.FUNCTION in hex; None if malformed.

        Ranges are not checked here: `out_of_range` says which field is too big.
        """
        m = PCI_RE.match(text)
        if not m:
            return None
        return cls(*(int(g, 16) if g else 0 for g in m.groups()))

    def out_of_range(self) -> tuple[str, int, int] | None:
        for name, limit in PCI_LIMITS:
            if getattr(self, name) > limit:
                return name, getattr(self, name), limit
        return None

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"


@dataclass(frozen=True, slots=True)
class VmSpec:
    name: str
    uuid: str
    machine: str
    machine_family: str  # "q35" | "pc"
    arch: str
    memory_kib: int
    vcpus: int
    emulator: str
    accel: str  # "kvm" | "tcg"
    allowed: frozenset[str]  # codes downgraded in this VM with `allow`
    span: Span
    name_span: Span
    machine_span: Span | None
    allow_spans: tuple[Span, ...] = ()


# Read-only like every IR object (a phase changes a NIC with `dataclasses.replace`; tests/test_checks.py
# holds the checks to it), but not `frozen`: a frozen dataclass sets each of these 40 fields through
# `object.__setattr__`, which made building the NICs of a 10,000-VM file four times as slow.
@dataclass(slots=True, unsafe_hash=True)
class NicSpec:
    vm: str
    name: str  # team name (team form) or NIC name (explicit form)
    label: str  # how diagnostics name it: "the persistent NIC of team `up0`" / "transient nic `vf0`"
    role: str | None  # PERSISTENT | TRANSIENT | None (explicit form without teaming)
    source_kind: str  # user | bridge | network | direct | hostdev | pci-hostdev
    span: Span
    name_span: Span
    source_span: Span
    model: str | None = None
    model_span: Span | None = None
    alias: str | None = None  # libvirt user alias; also the QEMU device id
    alias_span: Span | None = None
    source_target: str | None = None  # bridge, network or macvtap device name
    mode: str | None = None  # direct: macvtap mode
    host_address: PciAddress | None = None  # hostdev / pci-hostdev, or a pool's concrete VF
    host_address_span: Span | None = None
    via_bridge: str | None = None  # network persistent: host bridge for the QEMU argv
    portgroup: str | None = None  # network: the network's portgroup (libvirt applies it; the QEMU argv cannot)
    managed: bool | None = None
    mac: str | None = None
    mac_span: Span | None = None
    mac_derived: bool = False
    guest_address: PciAddress | None = None
    guest_address_span: Span | None = None
    boot: int | None = None
    boot_span: Span | None = None
    mtu: int | None = None
    mtu_span: Span | None = None
    rom_bar: str | None = None  # "on" | "off"
    rom_file: str | None = None
    rom_enabled: bool | None = None
    rom_span: Span | None = None
    team: str | None = None
    pairs_with: str | None = None  # transient: the name it refers to
    pairs_with_span: Span | None = None
    managed_span: Span | None = None
    role_spans: tuple[Span, ...] = ()
    # The settings of compiler/nicsettings.py's table, as the XML elements they become (an `@name` tag is an
    # attribute of <interface>), in source order; `setting_spans` holds each one's statement.
    settings: tuple[Elem, ...] = ()
    setting_spans: tuple[Span, ...] = ()

    def setting(self, tag: str) -> Elem | None:
        return next((e for e in self.settings if e.tag == tag), None)

    def setting_span(self, tag: str) -> Span:
        """Where the setting of that tag is stated (the NIC itself if it is not)."""
        # Not strict: merge.py appends the base domain's own settings, which have no statement.
        return next((s for e, s in zip(self.settings, self.setting_spans, strict=False) if e.tag == tag), self.span)


def vm_key(vm: str) -> tuple:
    return ("vm", vm)


def nic_key(vm: str, name: str, member: str = "") -> tuple:
    """member: "" for an explicit `nic`, "persistent"/"transient" inside a team."""
    return ("nic", vm, name, member)


def vms(graph: nx.DiGraph) -> list[VmSpec]:
    return [data["vm"] for _, data in graph.nodes(data=True) if data["kind"] == "vm"]


def nics(graph: nx.DiGraph, vm: str | None = None) -> list[tuple[tuple, NicSpec]]:
    """NICs in source order: of one VM (its belongs-to predecessors), or of the whole file."""
    if vm is not None:
        nodes = graph.nodes
        return [(key, nodes[key]["nic"]) for key in graph.pred[vm_key(vm)]]
    return [(key, data["nic"]) for key, data in graph.nodes(data=True) if data["kind"] == "nic"]


def partner(graph: nx.DiGraph, key: tuple) -> tuple | None:
    """The persistent a transient pairs with (out-edge), if it exists."""
    for _, target, data in graph.out_edges(key, data=True):
        if data.get("kind") == "pairs-with":
            return target
    return None


def transients_of(graph: nx.DiGraph, key: tuple) -> list[tuple]:
    return [src for src, _, data in graph.in_edges(key, data=True) if data.get("kind") == "pairs-with"]
