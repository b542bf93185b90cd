"""libvirt backend: `layout.VmLayout` -> `DomainView` for templates/libvirt/.

Every value the template prints is computed here, as a string; the template only
places elements. Element order follows libvirt's own formatter: inside
<interface> mac, source, model, boot, rom, teaming, mtu, alias, address; inside
a PCI <hostdev> source, teaming, boot, rom, alias, address (domain.rng puts
<teaming> with the PCI source there and refuses it after <boot>/<rom>).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from markupsafe import Markup

from ..ir import PERSISTENT, TRANSIENT, PciAddress
from ..layout import Device, VmLayout
from ..nicsettings import ANCHORS, by_anchor, to_xml
from ..placement import RootPort


@dataclass(frozen=True, slots=True)
class PciView:
    """A PCI address as XML attributes. Every character of `attrs` is formatted by
    teamc from integers (no user text), so it is safe markup as it stands."""

    attrs: Markup


@lru_cache(maxsize=4096)  # a fleet's VMs mostly share guest addresses: one view each, not one per NIC
def pci_view(address: PciAddress, multifunction: bool = False) -> PciView:
    return PciView(Markup(
        f"domain='0x{address.domain:04x}' bus='0x{address.bus:02x}' slot='0x{address.slot:02x}' "
        f"function='0x{address.function:x}'" + (" multifunction='on'" if multifunction else "")))


@dataclass(frozen=True, slots=True)
class ControllerView:
    index: int
    chassis: int
    port: str
    address: PciView


@dataclass(slots=True)  # read-only by convention: a frozen dataclass sets each field through object.__setattr__
class NicView:
    element: str  # interface | hostdev
    type: str  # interface type: user, bridge, network, direct, hostdev
    managed: str | None  # "yes" | "no" | None
    mac: str | None
    source_attrs: tuple[tuple[str, str], ...]  # attributes of <source/> for interface types with one
    host_address: PciView | None
    model: str | None
    boot: int | None
    rom_attrs: tuple[tuple[str, str], ...]
    teaming_type: str | None
    teaming_persistent: str | None
    mtu: int | None
    alias: str | None
    address: PciView | None  # None in a fragment for `virsh attach-device`: libvirt places it
    # The table's settings (compiler/nicsettings.py): attributes of the element, and per template anchor
    # (`nicsettings.ANCHORS`) the elements that follow it, as XML the table serialised (values escaped there);
    # None for a NIC without settings.
    attrs: tuple[tuple[str, str], ...] = ()
    after: dict[str, Markup] | None = None


@dataclass(slots=True)  # read-only by convention
class DomainView:
    type: str
    name: str
    uuid: str
    memory_kib: int
    vcpus: int
    arch: str
    machine: str
    emulator: str
    pcie: bool
    shared_memory: bool  # a vhost-user NIC needs the guest's memory shared with its backend (memfd)
    root_ports: tuple[ControllerView, ...]
    nics: tuple[NicView, ...]  # the <interface>s, then the <hostdev>s, as libvirt orders them


@lru_cache(maxsize=1024)  # the root ports of one machine type are the same in every VM
def controller_view(port: RootPort) -> ControllerView:
    return ControllerView(port.index, port.chassis, f"0x{port.port:x}",
                          pci_view(PciAddress(0, 0, port.slot, port.function), port.multifunction))


_NO_SETTINGS = {key: Markup("") for key in ANCHORS}


def nic_view(device: Device, placed: bool = True) -> NicView:
    """One NIC element; `placed=False` leaves out the guest address the user did not pin."""
    nic = device.nic
    kind = nic.source_kind
    source: tuple[tuple[str, str], ...] = ()
    target = nic.source_target or ""  # (a bridge, network or direct NIC has one: lowering refuses it without)
    if kind == "bridge":
        source = (("bridge", target),)
    elif kind == "network":
        source = (("network", target),) + ((("portgroup", nic.portgroup),) if nic.portgroup else ())
    elif kind == "direct":
        source = (("dev", target), ("mode", nic.mode or "vepa"))
    elif kind == "vhostuser":
        source = (("type", "unix"), ("path", target), ("mode", nic.mode or "client"))
    host = kind in ("hostdev", "pci-hostdev")
    rom: list[tuple[str, str]] = []
    if nic.rom_enabled is not None:
        rom.append(("enabled", "yes" if nic.rom_enabled else "no"))
    if nic.rom_bar is not None:
        rom.append(("bar", nic.rom_bar))
    if nic.rom_file is not None:
        rom.append(("file", nic.rom_file))
    groups = by_anchor(nic.settings) if nic.settings else {}
    after = _NO_SETTINGS | {key: Markup("".join("\n  " + to_xml(e).replace("\n", "\n  ") for e in elems))
                            for key, elems in groups.items() if key != "@"} if groups else None
    return NicView(
        attrs=tuple((e.tag[1:], e.get("value") or "") for e in groups.get("@", ())),
        after=after,
        element=device.element,
        type="hostdev" if kind == "hostdev" else kind,
        managed=("no" if nic.managed is False else "yes") if host else None,
        # A plain <hostdev> has no <mac>: libvirt cannot program it; the host must.
        mac=nic.mac if device.element == "interface" else None,
        source_attrs=source,
        host_address=pci_view(nic.host_address) if host and nic.host_address else None,
        model=nic.model if device.element == "interface" and kind != "hostdev" else None,
        boot=nic.boot,
        rom_attrs=tuple(rom),
        teaming_type=nic.role,
        teaming_persistent=device.failover_pair_id if nic.role == TRANSIENT else None,
        mtu=nic.mtu if nic.role == PERSISTENT else None,
        alias=nic.alias,
        address=pci_view(device.address, device.multifunction) if placed or nic.guest_address is not None else None,
    )


def domain_view(layout: VmLayout) -> DomainView:
    vm = layout.vm
    return DomainView(
        type="kvm" if vm.accel == "kvm" else "qemu",
        name=vm.name,
        uuid=vm.uuid,
        memory_kib=vm.memory_kib,
        vcpus=vm.vcpus,
        arch=vm.arch,
        machine=vm.machine,
        emulator=vm.emulator,
        pcie=vm.machine_family == "q35",
        shared_memory=layout.shared_memory,
        root_ports=tuple(controller_view(p) for p in layout.root_ports),
        nics=tuple(nic_view(d) for d in layout.devices),
    )
