"""Check phase: IR graph -> diagnostics (`check`), and laid-out VMs -> diagnostics (`check_layouts`).

Each rule is a pure function that yields diagnostics; `check` gathers what the
rules read of the graph once (`Links`: one pass over its nodes and one over its
links) and runs them all. What depends on where the NICs land (does the VM fit its guest
PCI topology) is judged on the layout phase's result by `check_layouts`;
`apply_allow` applies the `allow` downgrades. Relations between
NICs: the out-link of a transient names its one target, the in-links of a persistent
count who shares it, networkx's `simple_cycles` finds reference loops (only over links from a
transient to a transient, the only links a loop can use), and following the links to
their end says "one team".

Every rule relates NICs of one VM, but for `mac_unique` and `vf_unique`, which compare VMs: what they
compare (`team_mac`, `assigned_vf`) is what `parts._fleet_keys` compares across the runs of a file
compiled in runs (`-j`).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:
    from .layout import VmLayout
    from .merge import BaseDomain

from .diagnostics import Diagnostic, Label, diag
from .ir import HOSTDEV_KINDS, PERSISTENT, TRANSIENT, VIRTIO_MODELS, NicSpec, PciAddress, VmSpec, vms
from .placement import MAX_SLOT, RESERVED_SLOTS, free_slots, ports_fit, root_port_room


class Links:
    """What the rules read of the graph, gathered in one pass over its nodes and one over its links.

    Each rule walks these lists and maps instead of asking networkx NIC by NIC (a 10,000-VM file has
    40,000 NICs, and a view per NIC per rule cost most of the check phase). The lists keep the graph's
    order (source order), so every rule reports in the order it did when it read the graph itself."""

    __slots__ = ("by_vm", "cycles", "graph", "in_cycle", "nics", "partner", "sources", "specs", "teams",
                 "transient_links", "vms")

    def __init__(self, graph: nx.DiGraph) -> None:
        self.graph = graph
        self.nics: list[tuple[tuple, NicSpec]] = []  # (key, spec) of every NIC, in source order
        self.vms: list[VmSpec] = []
        self.by_vm: dict[str, list[tuple[tuple, NicSpec]]] = {}  # a VM's NICs, in source order
        self.specs: dict[tuple, NicSpec] = {}
        for key, data in graph.nodes(data=True):
            if data["kind"] == "nic":
                nic = self.specs[key] = data["nic"]
                self.nics.append((key, nic))
                self.by_vm.setdefault(nic.vm, []).append((key, nic))
            else:
                self.vms.append(data["vm"])
                self.by_vm.setdefault(data["vm"].name, [])
        specs = self.specs
        self.partner: dict[tuple, tuple] = {}  # transient -> the NIC it pairs with (its out-link)
        self.sources: dict[tuple, list[tuple]] = {}  # NIC -> the transients that name it
        self.teams: list[tuple[NicSpec, NicSpec]] = []  # (transient, persistent) of each well-formed team
        # The pairs-with links whose target is itself transient: the only links a loop can use (a persistent
        # NIC has no outgoing link). In a valid file there are none.
        self.transient_links: list[tuple[tuple, tuple]] = []
        for u, v, data in graph.edges(data=True):
            if data.get("kind") == "pairs-with":
                self.partner.setdefault(u, v)
                self.sources.setdefault(v, []).append(u)
                t, p = specs[u], specs[v]
                if p.role == PERSISTENT:
                    self.teams.append((t, p))
                else:
                    self.transient_links.append((u, v))
        for v, named in self.sources.items():
            if len(named) > 1:  # in the order they were linked, as `graph.in_edges` gives them
                named[:] = [u for u, attrs in graph.pred[v].items() if attrs.get("kind") == "pairs-with"]
        # Reference loops among transients: `simple_cycles` over the transient-to-transient links.
        self.cycles: list[list] = list(nx.simple_cycles(nx.DiGraph(self.transient_links))) \
            if self.transient_links else []
        self.in_cycle: dict[tuple, int] = {key: i for i, cycle in enumerate(self.cycles) for key in cycle}

    def spec(self, key: tuple) -> NicSpec:
        return self.specs[key]

    def transients_of(self, key: tuple) -> list[tuple]:
        return self.sources.get(key, [])

    def team_of(self, key: tuple) -> object:
        """One NIC standing for the team `key` belongs to: NICs joined by pairs-with links are one team.

        A NIC has at most one out-link, so every NIC of a team leads, link by link, to the one NIC of the team
        without an out-link (its persistent) or into the team's one loop, which stands for itself by its index."""
        in_cycle, partner = self.in_cycle, self.partner
        while key in partner and key not in in_cycle:
            key = partner[key]
        return in_cycle.get(key, key)


Rule = Callable[[Links], Iterator[Diagnostic]]
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


# --- roles and forms --------------------------------------------------------


@rule
def persistent_alias(links: Links):
    for _, nic in links.nics:
        if nic.role == PERSISTENT and nic.alias is None:
            yield diag("E0201", f"{nic.label} needs an alias that starts with `ua-`", nic.name_span,
                       help=f"rename it `ua-{nic.name}`: libvirt drops a user alias without that prefix, "
                            "and the transient's `persistent=` reference then points at nothing")


@rule
def persistent_is_virtio(links: Links):
    for _, nic in links.nics:
        if nic.role != PERSISTENT:
            continue
        if nic.source_kind in HOSTDEV_KINDS:
            yield diag("E0301", f"{nic.label} is a {nic.source_kind}, not a virtio interface",
                       nic.source_span, help="the persistent side must be a virtio NIC, e.g. `source bridge br0`; "
                                             "the VF belongs on the transient side")
        elif nic.model not in VIRTIO_MODELS:
            yield diag("E0301", f"{nic.label} must have model virtio, not `{nic.model}`",
                       nic.model_span or nic.span,
                       help="QEMU's failover standby is virtio-net; write `model virtio`")


@rule
def transient_is_hostdev(links: Links):
    for _, nic in links.nics:
        if nic.role == TRANSIENT and nic.source_kind not in (*HOSTDEV_KINDS, "network"):
            yield diag("E0302", f"{nic.label} must be a hostdev, not a `{nic.source_kind}` interface",
                       nic.source_span,
                       help="use `hostdev ADDR`, `pci-hostdev ADDR` or a hostdev-pool `network NAME` for the VF")


@rule
def options_apply(links: Links):
    for _, nic in links.nics:
        kind = nic.source_kind
        if nic.managed_span is not None and kind not in HOSTDEV_KINDS:
            yield diag("E0105", f"`managed` applies to host devices, not to a `{kind}` source", nic.managed_span,
                       help="remove `managed`; it tells libvirt to detach a host PCI device from its driver")
        if nic.role == PERSISTENT and kind == "network" and nic.host_address_span is not None:
            yield diag("E0105", "`vf` names a VF, but this network is the persistent (virtio) side",
                       nic.host_address_span, help="give `vf` on the transient's hostdev-pool network")
        if nic.role == TRANSIENT and nic.via_bridge is not None:
            yield diag("E0105", "`bridge` applies to the persistent side's network", nic.source_span,
                       help="a transient network is a pool of VFs; name a concrete VF with `vf ADDR`")
        if nic.role == TRANSIENT and nic.mtu is not None:
            yield diag("E0105", "`mtu` cannot be set on the VF", nic.mtu_span,
                       help="set the MTU on the persistent (virtio) NIC; the VF's MTU is set on the host")
        if nic.role == PERSISTENT and nic.mtu is not None and kind in ("user", "direct"):
            # libvirt 9.0's QEMU driver (qemuDomainNetSupportsMTU) refuses the domain:
            # "setting MTU on interface type user/direct is not supported yet".
            yield diag("E0105", f"`mtu` cannot be set on a `{kind}` interface", nic.mtu_span,
                       help="libvirt refuses an MTU on `user` and `direct` interfaces; use a `bridge` or "
                            "`network` source for jumbo frames, or remove `mtu`")
        if nic.rom_enabled is False and (nic.rom_bar is not None or nic.rom_file is not None):
            # libvirt 9.0: "ROM tuning is not supported when ROM is disabled".
            tuned = "rom bar" if nic.rom_bar is not None else "rom file"
            yield diag("E0105", f"`{tuned}` cannot be set together with `rom enabled no`", nic.rom_span,
                       help="libvirt refuses ROM settings for a disabled ROM: keep `rom enabled no` alone, "
                            f"or drop it and keep `{tuned}`")
        if nic.role == TRANSIENT and nic.rom_bar == "off" and nic.rom_file is not None:
            # QEMU plugs the primary in at negotiation and on the migration target, and refuses an
            # option ROM on a hot-plugged device without a ROM BAR.
            yield diag("E0105", "`rom file` cannot be loaded with `rom bar off` on the VF", nic.rom_span,
                       help="QEMU hot-plugs the VF and refuses it then ('Hot-plugged device without ROM bar "
                            "can't have an option ROM'): drop `rom file`")
        if nic.role == TRANSIENT and kind == "pci-hostdev" and nic.model_span is not None:
            yield diag("E0105", "a plain PCI hostdev has no `model`", nic.model_span, help="remove `model`")


# --- references ---------------------------------------------------------------


@rule
def transient_targets(links: Links):
    in_cycle = links.in_cycle
    for key, nic in links.nics:
        if nic.role != TRANSIENT or nic.pairs_with is None or key in in_cycle:
            continue
        target = links.partner.get(key)
        if target is None:
            yield diag("E0303", f"{nic.label} names `{nic.pairs_with}`, which is not a NIC of VM `{nic.vm}`",
                       nic.pairs_with_span, help="name the persistent NIC's alias, e.g. `teaming transient ua-…`")
        elif links.spec(target).role == TRANSIENT:
            other = links.spec(target)
            yield diag("E0304", f"{nic.label} names {other.label}, which is itself transient", nic.pairs_with_span,
                       Label(other.role_spans[0] if other.role_spans else other.span, "declared transient here"),
                       help="a transient must name the persistent (virtio) NIC of its team")


@rule
def teaming_cycles(links: Links):
    cycles = links.cycles
    order = {key: i for i, key in enumerate(links.graph.nodes)} if cycles else {}
    for cycle in cycles:
        members = sorted(cycle, key=order.__getitem__)
        specs = [links.spec(key) for key in members]
        first = specs[0]
        if len(members) == 1:
            yield diag("E0305", f"{first.label} names itself as its persistent partner", first.pairs_with_span,
                       help="a transient must name the persistent (virtio) NIC of its team")
            continue
        loop = " -> ".join(s.label for s in [*specs, first])
        yield diag("E0305", f"transients name each other in a loop: {loop}", first.pairs_with_span,
                   *(Label(s.pairs_with_span or s.span, f"{s.label} names `{s.pairs_with}`") for s in specs[1:]),
                   help="one member of each team must be `teaming persistent`, and the transient names it")


@rule
def one_transient_per_persistent(links: Links):
    for key, nic in links.nics:
        sources = links.transients_of(key)
        if nic.role == PERSISTENT and len(sources) > 1:
            specs = [links.spec(s) for s in sources]
            yield diag("E0306", f"{len(specs)} transients name {nic.label}", specs[1].pairs_with_span,
                       *(Label(s.pairs_with_span or s.span, f"{s.label} names it here")
                         for s in [specs[0], *specs[2:]]),
                       Label(nic.name_span, "the persistent NIC"),
                       help="QEMU pairs one primary with one standby; give each VF its own virtio NIC")


@rule
def persistent_has_transient(links: Links):
    for key, nic in links.nics:
        if nic.role == PERSISTENT and not links.transients_of(key) and nic.team is None:
            yield diag("W0501", f"{nic.label} has no transient partner", nic.name_span,
                       help="add a transient NIC that names it, or drop `teaming persistent` "
                            "(a lone virtio NIC belongs in the base domain)")


# --- MACs and host devices ------------------------------------------------------


@rule
def mac_mismatch(links: Links):
    for t, p in links.teams:
        if t.mac and p.mac and t.mac != p.mac:
            yield diag("E0308", f"{t.label} has MAC {t.mac} but its partner {p.label} has {p.mac}",
                       t.mac_span or t.span, Label(p.mac_span or p.span, "partner's MAC"),
                       help="the guest's net_failover driver pairs NICs by MAC: give both the same `mac`")


def _tags(vlan) -> str:
    return ", ".join(t.get("id") or "" for t in vlan.children)


@rule
def pair_network(links: Links):
    """The two NICs of a team must land on one network after a failover: their VLANs, and the standby's link."""
    for t, p in links.teams:
        tv, pv = t.setting("vlan"), p.setting("vlan")
        if tv is not None and pv is not None and tv != pv:
            yield diag("E0312", f"{t.label} is on VLAN {_tags(tv)} but its partner {p.label} on VLAN {_tags(pv)}",
                       t.setting_span("vlan"), Label(p.setting_span("vlan"), "partner's VLAN"),
                       help="after a failover the guest would be on another network: give both sides the same `vlan`")
        elif tv is not None and pv is None:
            yield diag("W0507", f"{t.label} is on VLAN {_tags(tv)} but its partner {p.label} states no VLAN",
                       t.setting_span("vlan"), Label(p.source_span, "the standby's network"),
                       help=f"the standby must reach VLAN {_tags(tv)} some other way: a bridge on a VLAN interface "
                            "of the host (e.g. on eth0.42), a network portgroup, or `vlan` with `virtualport "
                            "openvswitch` here; `allow vlan-one-side` once it does")
        elif pv is not None and tv is None:
            yield diag("W0507", f"{p.label} is on VLAN {_tags(pv)} but its partner {t.label} states no VLAN",
                       p.setting_span("vlan"), Label(t.source_span, "the VF"),
                       help=f"the VF must be on VLAN {_tags(pv)} some other way: set on the host's PF "
                            "(`ip link set PF vf N vlan ID`) or by a hostdev-pool network; or state `vlan` on the VF; "
                            "`allow vlan-one-side` once it is")
        link = p.setting("link")
        if link is not None and link.get("state") == "down":
            yield diag("W0508", f"{p.label}, the standby of a team, has its link down", p.setting_span("link"),
                       help="while the VF is unplugged (during a migration) the guest has no network: write "
                            "`link up`, or `allow standby-link-down` if that is meant")


def team_mac(nic: NicSpec) -> str | None:
    """The MAC that E0309 holds unique across the file: a teamed NIC's."""
    return nic.mac if nic.mac and nic.role else None


def assigned_vf(nic: NicSpec) -> PciAddress | None:
    """The host VF that E0310 holds unique across the file: a transient's."""
    return nic.host_address if nic.role == TRANSIENT else None


@rule
def mac_unique(links: Links):
    by_mac: dict[str, dict] = defaultdict(dict)
    for key, nic in links.nics:
        mac = team_mac(nic)
        if mac:
            by_mac[mac].setdefault(links.team_of(key), nic)
    for mac, owners in by_mac.items():
        if len(owners) > 1:
            first, *rest = owners.values()
            yield diag("E0309", f"MAC {mac} is used by {len(owners)} teams", rest[0].mac_span or rest[0].name_span,
                       *(Label(s.mac_span or s.name_span, f"{s.label}") for s in [first, *rest[1:]]),
                       help="every team needs its own MAC; change one, or omit `mac` to derive a unique one")


@rule
def vf_unique(links: Links):
    seen: dict = {}
    for _, nic in links.nics:
        vf = assigned_vf(nic)
        if vf is not None:
            if vf in seen:
                first = seen[vf]
                yield diag("E0310", f"host VF {vf} is given twice", nic.host_address_span,
                           Label(first.host_address_span, f"also used by {first.label}"),
                           help="a VF can be assigned to one guest NIC only; pick another VF")
            else:
                seen[vf] = nic


@rule
def hostdev_warnings(links: Links):
    for _, nic in links.nics:
        if nic.role != TRANSIENT:
            continue
        if nic.source_kind == "pci-hostdev":
            yield diag("W0502", f"{nic.label} is a plain <hostdev>: libvirt will not set the VF's MAC",
                       nic.source_span,
                       help=f"preset it on the host, e.g. `ip link set PF vf N mac {nic.mac}`, "
                            "or use `hostdev` so libvirt sets it")
        if nic.boot is not None:
            yield diag("W0503", f"{nic.label} has a boot order, but the VF is unplugged during migration",
                       nic.boot_span, help="boot from the persistent (virtio) NIC instead")
        if nic.rom_bar == "on" or (nic.rom_file is not None and nic.rom_bar != "off"):
            yield diag("W0503", f"{nic.label} loads an option ROM, which the migration target may not have",
                       nic.rom_span, help="use `rom bar off` on the VF" + (
                           ", without `rom file`" if nic.rom_file is not None else ""))


# QEMU's own option ROM for every virtio-net-pci variant (its `romfile` default).
VIRTIO_NET_ROM = "efi-virtio.rom"


@rule
def fw_cfg_rom_unique(links: Links):
    for vm in links.vms:
        by_name: dict[str, list[NicSpec]] = defaultdict(list)
        for _, nic in links.by_vm[vm.name]:
            # With `rom bar off`, QEMU puts a cold-plugged device's ROM into fw_cfg as genroms/NAME.
            # (A VF is hot-plugged: a ROM there is E0105 instead.)
            if nic.role == PERSISTENT and nic.rom_bar == "off" and nic.rom_enabled is not False:
                by_name[(nic.rom_file or VIRTIO_NET_ROM).rsplit("/", 1)[-1]].append(nic)
        for name, same in by_name.items():
            if len(same) > 1:
                yield diag("E0107", f"{len(same)} NICs of VM `{vm.name}` put the option ROM `{name}` into fw_cfg",
                           same[1].rom_span, *(Label(s.rom_span or s.span, s.label) for s in [same[0], *same[2:]]),
                           help=f"QEMU refuses two ('duplicate fw_cfg file name: genroms/{name}'), which `rom bar "
                                "off` makes of each NIC's ROM: keep it on one NIC, and write `rom enabled no` "
                                "(no ROM at all) instead on the others")


@rule
def boot_order_unique(links: Links):
    for vm in links.vms:
        by_order: dict[int, list[NicSpec]] = defaultdict(list)
        for _, nic in links.by_vm[vm.name]:
            if nic.boot is not None:
                by_order[nic.boot].append(nic)
        for order, same in by_order.items():
            if len(same) > 1:
                yield diag("E0106", f"boot order {order} is given to {len(same)} NICs of VM `{vm.name}`",
                           same[1].boot_span, *(Label(s.boot_span or s.span, s.label) for s in [same[0], *same[2:]]),
                           help="give each device its own boot order: libvirt refuses the domain ('boot order "
                                "used for more than one device'), and QEMU too ('bootindex has already been used')")


# --- machine and placement -------------------------------------------------------


@rule
def machine_hosts_team(links: Links):
    for vm in links.vms:
        if vm.machine_family != "pc":
            continue
        teamed = [nic for _, nic in links.by_vm[vm.name] if nic.role]
        if teamed:
            yield diag("E0401", f"VM `{vm.name}` puts a team on the i440fx machine `{vm.machine}`",
                       vm.machine_span or vm.name_span,
                       help="QEMU refuses the VF: 'failover primary device must be on PCIExpress bus'; "
                            "use `machine q35`, or `allow pc-machine-team` to keep libvirt's test layout")


@rule
def guest_placement(links: Links):
    for vm in links.vms:
        pinned = [(nic.guest_address, nic) for _, nic in links.by_vm[vm.name] if nic.guest_address is not None]
        by_slot: dict = defaultdict(list)
        # Every pinned function 0, also of a NIC refused below, so that one mistake is reported once.
        has_function_zero = {(a.bus, a.slot) for a, _ in pinned if a.function == 0}
        for addr, nic in pinned:
            span = nic.guest_address_span
            if addr.domain != 0:
                yield diag("E0204", f"guest PCI domain {addr.domain:#x} does not exist", span,
                           help="guest addresses use PCI domain 0000")
                continue
            if vm.machine_family == "pc" and addr.bus != 0:
                yield diag("E0204", f"the `{vm.machine}` machine has only PCI bus 0, not {addr.bus:#04x}", span,
                           help="pin the NIC to bus 00, e.g. `address 0000:00:05.0`")
                continue
            if vm.machine_family == "q35" and addr.bus != 0 and addr.slot != 0:
                yield diag("E0204", f"bus {addr.bus:#04x} is a pcie-root-port, which has only slot 0", span,
                           help=f"write `address 0000:{addr.bus:02x}:00.0`")
                continue
            if addr.bus == 0 and addr.slot in RESERVED_SLOTS[vm.machine_family]:
                yield diag("E0403", f"guest slot 00:{addr.slot:02x} is taken by "
                                    f"{RESERVED_SLOTS[vm.machine_family][addr.slot]}", span,
                           help="pick another slot")
                continue
            if nic.role == TRANSIENT and vm.machine_family == "q35" and addr.bus == 0:
                yield diag("E0404", f"{nic.label} is pinned to pcie.0, which does not support hot-plug", span,
                           help="QEMU unplugs the VF for migration: pin it to a root port bus, "
                                "e.g. `address 0000:05:00.0`, or drop `address`")
                continue
            if nic.role == TRANSIENT and addr.function != 0:
                yield diag("E0402", f"{nic.label} is pinned to function {addr.function}", span,
                           help="QEMU requires the failover primary alone at function 0 of its slot")
                continue
            by_slot[(addr.bus, addr.slot)].append(nic)
        for (bus, slot), devices in by_slot.items():
            if (bus, slot) not in has_function_zero:
                # QEMU and libvirt accept it, but a guest scans a slot's other functions only after
                # finding function 0, so the NIC is never seen (`teamc verify` of a standby on 00:05.1:
                # "the guest has no virtio NIC with MAC …").
                first = devices[0]
                yield diag("E0406", f"{first.label} is on function {first.guest_address.function} of slot "
                                    f"{bus:02x}:{slot:02x}, which has nothing on function 0: the guest will not see it",
                           first.guest_address_span,
                           *(Label(o.guest_address_span, o.label) for o in devices[1:]),
                           help=f"pin it to function 0, e.g. `address 0000:{bus:02x}:{slot:02x}.0`, "
                                "or put another device there")
            if len(devices) < 2:
                continue
            by_address = defaultdict(list)
            for nic in devices:
                by_address[nic.guest_address].append(nic)
            for address, same in by_address.items():
                if len(same) > 1:
                    yield diag("E0403", f"guest PCI address {address} is given to {len(same)} NICs",
                               same[1].guest_address_span,
                               *(Label(s.guest_address_span, s.label) for s in [same[0], *same[2:]]),
                               help="give each NIC its own slot, or drop `address` and let teamc place it")
            primaries = [nic for nic in devices if nic.role == TRANSIENT]
            if primaries and len(by_address) > 1:
                vf = primaries[0]
                others = [nic for nic in devices if nic is not vf]
                yield diag("E0402", f"{vf.label} shares its guest slot with other devices", vf.guest_address_span,
                           *(Label(o.guest_address_span, o.label) for o in others),
                           help="QEMU requires the failover primary alone in its slot; move the other devices")


def check(graph: nx.DiGraph) -> list[Diagnostic]:
    links = Links(graph)
    return [d for run in RULES for d in run(links)]


def check_layouts(layouts: list[VmLayout]) -> list[Diagnostic]:
    """E0403 for each VM whose layout does not fit its machine's guest PCI topology."""
    out = []
    for layout in layouts:
        vm = layout.vm
        if vm.machine_family == "q35":
            free = free_slots("q35", {d.address.slot for d in layout.devices if d.address.bus == 0})
            full = None if ports_fit(list(layout.root_ports), free) else (
                f"{len(layout.root_ports)} pcie-root-ports are needed, but q35 has room for "
                f"{root_port_room(free)} on pcie.0")
        else:
            full = None if all(d.address.slot <= MAX_SLOT for d in layout.devices) else (
                f"the `{vm.machine}` machine has {MAX_SLOT - 1} slots for NICs on pci.0")
        if full is not None:
            out.append(diag("E0403", f"VM `{vm.name}` does not fit its guest PCI topology: {full}", vm.name_span,
                            help="use fewer NICs, lower pinned bus numbers, or split the VM"))
    return out


def check_base(layout: VmLayout, base: BaseDomain) -> list[Diagnostic]:
    """A VM laid out around a base domain (`--into`: layout.layout_around) against what the base keeps: its
    machine (E0405); an alias, MAC or host VF of the team that a device of the base has too (E0102, E0309,
    E0310); a pinned address the base uses, or NICs and root ports that find no room around it (E0403)."""
    vm = layout.vm
    out = []
    label = Label(vm.machine_span or vm.name_span, f"the VM is laid out for `{vm.machine}`")
    if base.machine_family is None:
        out.append(diag("E0405", f"the base domain's machine `{base.machine}` cannot host a failover team"
                        if base.machine else "the base domain names no machine type", base.machine_span, label,
                        help="give the base domain a q35 machine, e.g. <type arch='x86_64' machine='q35'>hvm</type>"))
    elif base.machine_family != vm.machine_family:
        out.append(diag("E0405", f"the base domain's machine `{base.machine}` is not of the VM's `{vm.machine}` "
                                 "family", base.machine_span, label,
                        help=f"write `machine {base.machine}` in the .team file (with `allow pc-machine-team` "
                             "for pc), or move the base domain to the VM's machine"))
    for field, code, says, help in _BASE_CLASHES:
        ours = {value: d.nic for d in layout.devices if (value := getattr(d.nic, field))}
        for other in base.devices:
            if (value := getattr(other, field)) in ours:
                nic = ours[value]
                out.append(diag(code, says.format(value, other.description), getattr(other, f"{field}_span"),
                                Label(getattr(nic, f"{field}_span") or nic.name_span, nic.label), help=help))
    return out + _base_room(layout, base)


# What a team may not share with a device the base keeps: (field of both, code, message, help).
_BASE_CLASHES = (
    ("alias", "E0102", "alias `{}` is already used by the base domain's {}",
     "rename the team, or the base device's alias"),
    ("mac", "E0309", "MAC {} is also used by the base domain's {}",
     "every NIC of a guest needs its own MAC; change one of them"),
    ("host_address", "E0310", "host VF {} is also assigned by the base domain's {}",
     "a VF can be assigned to one guest NIC only; pick another VF or drop the base's"),
)


def _base_room(layout: VmLayout, base: BaseDomain) -> list[Diagnostic]:
    """E0403 for a merge: pinned addresses the base uses, and what layout_around put past the machine's slots."""
    vm = layout.vm
    at = {(a.bus, a.slot, a.function): d for d in base.devices if (a := d.address) is not None}
    controllers = {d.controller: d for d in base.devices if d.controller is not None}
    out = []
    clashing = set()
    for device in layout.devices:
        pinned = device.nic.guest_address
        if pinned is None:
            continue
        key, span = (pinned.bus, pinned.slot, pinned.function), device.nic.guest_address_span
        if key in at:
            clashing.add(key)
            out.append(diag("E0403", f"guest PCI address {pinned} is already used by the base domain's "
                                     f"{at[key].description}", span, Label(at[key].span, "here"),
                            help="pin the NIC elsewhere, or drop `address` and let teamc place it around the base"))
        elif pinned.bus and pinned.bus in controllers and pinned.bus not in base.occupied.free_ports:
            other = controllers[pinned.bus]
            out.append(diag("E0403", f"bus {pinned.bus:#04x} is the base domain's {other.description}, which is not "
                                     "a free pcie-root-port", span, Label(other.span, "that controller"),
                            help="pin the NIC to another bus, or drop `address` and let teamc place it"))
    if vm.machine_family == "pc":
        out += [diag("E0403", "the base domain has no free slot on pci.0 for " + d.nic.label, base.devices_span,
                     Label(d.nic.span, "this NIC"), help="free a slot in the base domain, or move it to q35")
                for d in layout.devices if d.nic.guest_address is None and d.address.slot > MAX_SLOT]
        return out
    taken = set(base.occupied.root_slots) | {d.address.slot for d in layout.devices if d.address.bus == 0
                                             and (0, d.address.slot, d.address.function) not in clashing}
    if not ports_fit(list(layout.root_ports), free_slots("q35", taken)):
        out.append(diag("E0403", f"the base domain has no room on pcie.0 for {len(layout.root_ports)} more "
                                 "pcie-root-ports", base.devices_span, Label(vm.name_span, "the VM"),
                        help="free slots of pcie.0 in the base domain"))
    return out


def apply_allow(graph: nx.DiGraph, diagnostics: list[Diagnostic], everywhere: frozenset[str] = frozenset()):
    """Honour `allow CODE` (inside the VM a diagnostic points into) and `--allow CODE` (everywhere).

    An allowed error becomes a warning, so the reason stays visible; an allowed
    warning is dropped, since the user has acknowledged it.
    """
    allowing = sorted((vm.span.start, vm.span.end, vm.allowed) for vm in vms(graph) if vm.allowed)
    starts = [start for start, _, _ in allowing]
    out = []
    for d in diagnostics:
        allowed = d.code in everywhere
        if not allowed and allowing and d.span is not None:
            i = bisect.bisect_right(starts, d.span.start) - 1
            allowed = i >= 0 and d.span.start < allowing[i][1] and d.code in allowing[i][2]
        if not allowed:
            out.append(d)
        elif d.is_error:
            out.append(d.downgraded())
    return out
