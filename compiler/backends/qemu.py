"""QEMU backend: `layout.VmLayout` -> the QEMU argv, as a list.

Devices are built as ordered property dicts in libvirt's key order, then encoded
either as JSON (`-device '{"driver":…}'`, what libvirt emits today) or as
keyval (`virtio-net-pci,failover=on,…`, where a `,` inside a value is doubled).
Older libvirt printed `failover_pair_id` last in keyval; teamc does the same so
that its keyval lines equal libvirt's fixtures.

Some things libvirt resolves on the host cannot be written as a plain command
line: a VF picked from a hostdev-pool network (unless a concrete `vf` is given),
a libvirt network (unless a host `bridge` is given) and macvtap (which needs an
open file descriptor). For such a VM no argv is produced and a warning says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..diagnostics import Diagnostic, diag
from ..ir import PERSISTENT, NicSpec
from ..layout import Device, VmLayout
from ..nicsettings import device_props, libvirt_only

SYNTAXES = ("json", "keyval")


@dataclass(frozen=True, slots=True)
class QemuCommand:
    vm: str
    groups: tuple[tuple[str, ...], ...]  # the argv, one option with its value per group; empty if unexpressible
    diagnostics: tuple[Diagnostic, ...] = ()  # why it is empty (W0504, W0505)

    @property
    def argv(self) -> list[str]:
        return [arg for group in self.groups for arg in group]


def keyval_escape(value: str) -> str:
    return value.replace(",", ",,")


def _keyval_value(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return keyval_escape(str(value))


def encode(head_key: str, props: dict, syntax: str) -> str:
    """One -device / -netdev value. `head_key` ("driver"/"type") leads in keyval."""
    if syntax == "json":
        return json.dumps(props, separators=(",", ":"), ensure_ascii=False)
    rest = [f"{key}={_keyval_value(value)}" for key, value in props.items() if key != head_key]
    return ",".join([keyval_escape(str(props[head_key])), *rest])


def _addr(device: Device) -> dict:
    a = device.address
    addr = f"0x{a.slot:x}" if a.function == 0 else f"0x{a.slot:x}.0x{a.function:x}"
    return {"bus": device.bus_id, **({"multifunction": True} if device.multifunction else {}), "addr": addr}


def _rom(nic: NicSpec) -> dict:
    props: dict = {}
    if nic.rom_bar is not None:
        props["rombar"] = 1 if nic.rom_bar == "on" else 0
    if nic.rom_enabled is False:
        props["romfile"] = ""
    elif nic.rom_file is not None:
        props["romfile"] = nic.rom_file
    return props


def _netdev(nic: NicSpec, netdev_id: str) -> dict | None:
    if nic.source_kind == "user":
        return {"type": "user", "id": netdev_id}
    bridge = nic.source_target if nic.source_kind == "bridge" else nic.via_bridge
    if bridge is not None and nic.source_kind in ("bridge", "network"):
        return {"type": "bridge", "br": bridge, "id": netdev_id}
    return None


def _virtio_net(device: Device, netdev_id: str) -> dict:
    nic = device.nic
    model = nic.model or "virtio"
    props: dict = {"driver": "virtio-net-pci" + model.removeprefix("virtio")}
    head, tail = device_props(nic.settings)
    props |= head
    if nic.mtu is not None:
        props["host_mtu"] = nic.mtu
    if nic.role == PERSISTENT:
        props["failover"] = True
    props.update(netdev=netdev_id, id=device.qemu_id, mac=nic.mac)
    if nic.boot is not None:
        props["bootindex"] = nic.boot
    return props | _addr(device) | _rom(nic) | tail


def _vfio(device: Device, syntax: str) -> dict:
    nic = device.nic
    props: dict = {"driver": "vfio-pci", "host": str(nic.host_address), "id": device.qemu_id}
    if nic.boot is not None:
        props["bootindex"] = nic.boot
    pair = {"failover_pair_id": device.failover_pair_id} if device.failover_pair_id else {}
    if syntax == "keyval":
        return props | _addr(device) | _rom(nic) | pair
    return props | pair | _addr(device) | _rom(nic)


def _unexpressible(device: Device) -> Diagnostic | None:
    nic = device.nic
    if device.element == "hostdev" or nic.source_kind == "hostdev":
        return None
    if nic.role != PERSISTENT:
        if nic.host_address is None:
            return diag("W0504", f"{nic.label} takes its VF from hostdev pool `{nic.source_target}`, which "
                                 f"libvirt resolves on the host; no QEMU command line for VM `{nic.vm}`",
                        nic.source_span,
                        help="name the VF to use with `network POOL vf 0000:03:07.1` or "
                             f"`--vf {nic.vm}:{nic.name}=ADDR` to get one")
        return None
    if _netdev(nic, "") is None:
        why = ("macvtap needs a file descriptor that libvirt opens" if nic.source_kind == "direct"
               else f"network `{nic.source_target}` is resolved by libvirt")
        fix = ("use a `bridge` source for a plain QEMU command line" if nic.source_kind == "direct"
               else f"name the host bridge with `network {nic.source_target} bridge BR`")
        return diag("W0505", f"{nic.label}: {why}; no QEMU command line for VM `{nic.vm}`", nic.source_span,
                    help=fix)
    return None


def libvirt_only_settings(layout: VmLayout) -> list[Diagnostic]:
    """W0509 for each NIC whose stated settings only libvirt applies: the QEMU command line goes without them."""
    out = []
    for device in layout.devices:
        nic = device.nic
        missing = libvirt_only(nic.settings)
        if missing:
            out.append(diag("W0509", f"the QEMU command line cannot apply {', '.join(f'`{m}`' for m in missing)} of "
                                     f"{nic.label}; only libvirt does", nic.setting_spans[0] if nic.setting_spans
                            else nic.span,
                            help="start the VM with libvirt (the XML has them), or `allow libvirt-only-setting` if "
                                 "the QEMU command line is for testing"))
    return out


def unexpressible(layout: VmLayout) -> list[Diagnostic]:
    """Why this VM has no plain QEMU command line (W0504, W0505), if it has none."""
    return [d for d in map(_unexpressible, layout.devices) if d is not None]


def qemu_command(layout: VmLayout, syntax: str = "json") -> QemuCommand:
    vm = layout.vm
    problems = unexpressible(layout)
    if problems:
        return QemuCommand(vm.name, (), tuple(problems))
    groups: list[tuple[str, ...]] = [
        (vm.emulator,),
        ("-name", f"guest={keyval_escape(vm.name)},debug-threads=on"),
        ("-machine", f"{keyval_escape(vm.machine)},usb=off,dump-guest-core=off"),
        ("-accel", vm.accel),
        ("-m", f"size={vm.memory_kib}k"),
        ("-smp", f"{vm.vcpus},sockets={vm.vcpus},cores=1,threads=1"),
        ("-uuid", vm.uuid),
        ("-display", "none"),
        ("-no-user-config",),
        ("-nodefaults",),
    ]
    for port in layout.root_ports:
        props = {"driver": "pcie-root-port", "port": port.port, "chassis": port.chassis, "id": port.id,
                 "bus": "pcie.0"}
        if port.multifunction:
            props["multifunction"] = True
        props["addr"] = f"0x{port.slot:x}" if port.function == 0 else f"0x{port.slot:x}.0x{port.function:x}"
        groups.append(("-device", encode("driver", props, syntax)))
    vfio = []
    for device in layout.devices:
        if device.nic.source_kind in ("hostdev", "pci-hostdev") or device.nic.role != PERSISTENT:
            vfio.append(device)
            continue
        netdev_id = "host" + device.qemu_id
        groups.append(("-netdev", encode("type", _netdev(device.nic, netdev_id), syntax)))
        groups.append(("-device", encode("driver", _virtio_net(device, netdev_id), syntax)))
    for device in vfio:
        groups.append(("-device", encode("driver", _vfio(device, syntax), syntax)))
    return QemuCommand(vm.name, tuple(groups))
