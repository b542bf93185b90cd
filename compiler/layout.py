"""Layout phase: IR graph -> per-VM device layout (`VmLayout`: guest PCI placement, ids).

Placement follows what libvirt does for the same domain, so that the QEMU argv
teamc prints and the argv libvirt builds from teamc's XML agree (the slot and
root-port rules themselves are placement.py's):
  q35  one `pcie-root-port` per NIC plus one spare for hot-plug (none if a
       port is left empty anyway, or no NIC needs one); each NIC sits at slot 0
       of its own port.
  pc   every NIC on pci.0 from slot 2 up (i440fx; only with the opt-in).
Addresses are handed out in libvirt's order: interfaces that are not hostdevs
(in source order), then hostdev interfaces, then plain <hostdev>s. Pinned
addresses are kept and their buses and slots skipped; function 0 of a slot
with pinned devices on other functions is marked multifunction, as libvirt does.
A VM whose NICs do not fit is laid out all the same, past the machine's slots:
the capacity check (checks.check_layouts) refuses that layout with E0403.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from .ir import PERSISTENT, TRANSIENT, NicSpec, PciAddress, VmSpec, nics, partner, vms
from .placement import FIRST_NIC_SLOT, RootPort, free_slots, root_ports


@dataclass(frozen=True, slots=True)
class Device:
    """One NIC as placed in the guest."""

    nic: NicSpec
    element: str  # "interface" | "hostdev" (the libvirt element that carries it)
    address: PciAddress  # guest address
    bus_id: str  # QEMU bus name: pcie.0 / pci.0 / pci.N
    qemu_id: str  # -device id; the libvirt alias for a persistent
    failover_pair_id: str | None  # the persistent's id, for a transient with a partner
    multifunction: bool = False  # function 0 of a slot whose other functions are in use


@dataclass(frozen=True, slots=True)
class VmLayout:
    vm: VmSpec
    root_ports: tuple[RootPort, ...]
    interfaces: tuple[Device, ...]  # <interface> elements, in source order
    hostdevs: tuple[Device, ...]  # plain <hostdev> elements, in source order

    @property
    def devices(self) -> tuple[Device, ...]:
        return self.interfaces + self.hostdevs


def _element(nic: NicSpec) -> str:
    return "hostdev" if nic.source_kind == "pci-hostdev" else "interface"


def _is_vfio(nic: NicSpec) -> bool:
    """A NIC that becomes a vfio-pci device (QEMU) / gets a hostdevN alias (libvirt)."""
    return nic.role == TRANSIENT and nic.source_kind in ("hostdev", "pci-hostdev", "network")


def layout_vm(graph: nx.DiGraph, vm: VmSpec, partners: dict[tuple, tuple] | None = None) -> VmLayout:
    """`partners`: every transient -> the NIC it pairs with (`layout` gathers them in one pass over the links;
    without it, each transient asks the graph)."""
    members = nics(graph, vm.name)
    interfaces = [(k, nic) for k, nic in members if _element(nic) == "interface"]
    hostdevs = [(k, nic) for k, nic in members if _element(nic) == "hostdev"]
    # libvirt's address order: non-hostdev interfaces, then hostdev interfaces, then <hostdev>s.
    address_order = (
        [(k, nic) for k, nic in interfaces if nic.source_kind != "hostdev"]
        + [(k, nic) for k, nic in interfaces if nic.source_kind == "hostdev"]
        + hostdevs
    )
    q35 = vm.machine_family == "q35"
    pinned = {k: nic.guest_address for k, nic in members if nic.guest_address is not None}
    used_buses = {a.bus for a in pinned.values() if a.bus != 0}
    used_root_slots = {a.slot for a in pinned.values() if a.bus == 0}

    addresses: dict = {}
    next_free = FIRST_NIC_SLOT[vm.machine_family]
    for key, _ in address_order:
        if key in pinned:
            addresses[key] = pinned[key]
            continue
        taken = used_buses if q35 else used_root_slots
        while next_free in taken:
            next_free += 1
        addresses[key] = PciAddress(0, next_free, 0, 0) if q35 else PciAddress(0, 0, next_free, 0)
        taken.add(next_free)

    ports: list[RootPort] = []
    if q35:
        # A port for every bus up to the highest in use, plus one spare for hot-plug, but only as
        # libvirt adds it (qemuDomainAssignPCIAddresses): when it had to add ports at all and none of
        # them was left empty. So no port for a VM without NICs on root ports, and no spare when
        # a pinned bus leaves a lower port free.
        highest = max(used_buses, default=0)
        count = highest + 1 if highest and len(used_buses) == highest else highest
        ports = root_ports(list(range(1, count + 1)), free_slots("q35", used_root_slots))

    # Ids: a persistent keeps its alias; VFs are hostdevN in libvirt's alias order.
    ids: dict = {}
    hostdev_n = 0
    for key, nic in interfaces + hostdevs:
        if nic.alias is not None:
            ids[key] = nic.alias
        elif _is_vfio(nic):
            ids[key] = f"hostdev{hostdev_n}"
            hostdev_n += 1
        else:
            ids[key] = f"net{len(ids)}"

    # QEMU refuses a device on function N>0 of a slot whose function 0 is not multifunction
    # ("single function device can't be populated in function N.1"); libvirt sets it on function 0.
    shared_slots = {(a.bus, a.slot) for a in pinned.values() if a.function != 0}

    def device(key, nic: NicSpec) -> Device:
        addr = addresses[key]
        bus_id = (f"pci.{addr.bus}" if addr.bus else "pcie.0") if q35 else "pci.0"
        if nic.role != TRANSIENT:
            target = None  # only a transient has a pairs-with link
        else:
            target = partners.get(key) if partners is not None else partner(graph, key)
        pair = ids.get(target) if target is not None and graph.nodes[target]["nic"].role == PERSISTENT else None
        multifunction = addr.function == 0 and (addr.bus, addr.slot) in shared_slots
        return Device(nic, _element(nic), addr, bus_id, ids[key], pair, multifunction)

    return VmLayout(
        vm,
        tuple(ports),
        tuple(device(k, nic) for k, nic in interfaces),
        tuple(device(k, nic) for k, nic in hostdevs),
    )


def layout(graph: nx.DiGraph) -> list[VmLayout]:
    partners = {u: v for u, v, kind in graph.edges(data="kind") if kind == "pairs-with"}
    return [layout_vm(graph, vm, partners) for vm in vms(graph)]
