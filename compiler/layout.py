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

For a merge (`--into`), `layout_around` places a VM's NICs again around what a base domain's devices
already hold (`placement.Occupied`); checks.check_base judges that layout against the base.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import networkx as nx

from .ir import PERSISTENT, TRANSIENT, NicSpec, PciAddress, VmSpec, nics, partner, vms
from .placement import FIRST_NIC_SLOT, MAX_SLOT, Occupied, RootPort, free_slots, root_ports


@dataclass(slots=True)  # read-only by convention, as NicSpec: made by the ten thousand
class Device:
    """One NIC as placed in the guest."""

    nic: NicSpec
    element: str  # "interface" | "hostdev" (the libvirt element that carries it)
    address: PciAddress  # guest address
    bus_id: str  # QEMU bus name: pcie.0 / pci.0 / pci.N
    qemu_id: str  # -device id; the libvirt alias for a persistent
    failover_pair_id: str | None  # the persistent's id, for a transient with a partner
    multifunction: bool = False  # function 0 of a slot whose other functions are in use


@dataclass(slots=True)  # read-only by convention
class VmLayout:
    vm: VmSpec
    root_ports: tuple[RootPort, ...]
    interfaces: tuple[Device, ...]  # <interface> elements, in source order
    hostdevs: tuple[Device, ...]  # plain <hostdev> elements, in source order

    @property
    def devices(self) -> tuple[Device, ...]:
        return self.interfaces + self.hostdevs

    @property
    def shared_memory(self) -> bool:
        """Whether the guest's memory must be shared with a backend: a vhost-user NIC's backend maps it
        (libvirt's memfd `<memoryBacking>` with `<access mode='shared'/>`, QEMU's shared memory backend)."""
        return any(d.nic.source_kind == "vhostuser" for d in self.devices)


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
    partners = {u: v for u, v, data in graph.edges(data=True) if data.get("kind") == "pairs-with"}
    return [layout_vm(graph, vm, partners) for vm in vms(graph)]


def layout_around(layout: VmLayout, base: Occupied) -> VmLayout:
    """The VM's NICs placed around what a base domain already holds; the root ports are the new ones only.

    q35: each NIC takes a free pcie-root-port of the base, or a new one numbered after the base's highest
    controller index, on free slots of pcie.0, plus one spare port for hot-plug if no free port is left.
    pc: each NIC takes the lowest free slot of pci.0 from 2 up. Pinned addresses are kept. Like `layout_vm`
    it never refuses: a pinned address the base uses, or NICs past the machine's slots, are for
    checks.check_base to judge. Unpinned NICs are placed in the order `layout_vm` gave them addresses."""
    family = layout.vm.machine_family
    free_ports = list(base.free_ports)
    taken_slots = set(base.root_slots)
    new_indexes: list[int] = []
    placed: dict[int, PciAddress] = {}
    for device in layout.devices:
        pinned = device.nic.guest_address
        if pinned is None:
            continue
        placed[id(device)] = pinned
        if (pinned.bus, pinned.slot, pinned.function) in base.addresses:
            continue  # a clash (E0403) holds nothing more
        if pinned.bus == 0:
            taken_slots.add(pinned.slot)
        elif pinned.bus in base.controllers:
            if pinned.bus in free_ports:
                free_ports.remove(pinned.bus)
        elif pinned.bus not in new_indexes:
            new_indexes.append(pinned.bus)

    next_index = max([*base.controllers, *new_indexes, 0]) + 1
    unpinned = sorted((d for d in layout.devices if d.nic.guest_address is None),
                      key=lambda d: (d.address.bus, d.address.slot))
    for device in unpinned:
        if family == "pc":
            slot = next(iter(free_slots(family, taken_slots)), max([MAX_SLOT, *taken_slots]) + 1)
            taken_slots.add(slot)
            placed[id(device)] = PciAddress(0, 0, slot, 0)
        elif free_ports:
            placed[id(device)] = PciAddress(0, free_ports.pop(0), 0, 0)
        else:
            new_indexes.append(next_index)
            placed[id(device)] = PciAddress(0, next_index, 0, 0)
            next_index += 1
    ports: list[RootPort] = []
    if family == "q35":
        if not free_ports:
            new_indexes.append(next_index)  # a spare port, so that a VF can be hot-plugged back
        ports = root_ports(sorted(new_indexes), free_slots(family, taken_slots))

    def moved(device: Device) -> Device:
        address = placed[id(device)]
        bus_id = (f"pci.{address.bus}" if address.bus else "pcie.0") if family == "q35" else "pci.0"
        return replace(device, address=address, bus_id=bus_id)

    return VmLayout(layout.vm, tuple(ports), tuple(moved(d) for d in layout.interfaces),
                    tuple(moved(d) for d in layout.hostdevs))
