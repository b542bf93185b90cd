"""QEMU backend: `layout.VmLayout` -> `QemuCommand`, a structured QEMU command line.

A command is the emulator and a list of `Flag`s, each a flag name with an ordered
property map in libvirt's key order. Nothing is encoded until the end: `encode`
writes a flag's map as JSON (`-device '{"driver":…}'`, what libvirt emits today,
for -device and -netdev) or as keyval (`virtio-net-pci,failover=on,…`, where a
`,` inside a value is doubled), and the `qemu` emitter quotes the argv for the
shell. Whoever rewrites a command (verify's stand-ins, the tests) rewrites the
maps, never the encoded text. Older libvirt printed `failover_pair_id` last in
keyval; the keyval encoder does the same so that its lines equal libvirt's fixtures.

Some things libvirt resolves on the host cannot be written as a plain command
line: a VF picked from a hostdev-pool network (unless a concrete `vf` is given),
a libvirt network (unless a host `bridge` is given) and macvtap (which needs an
open file descriptor). For such a VM no argv is produced and a warning says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cache

from ..diagnostics import Diagnostic, diag
from ..ir import PERSISTENT, NicSpec
from ..layout import Device, VmLayout
from ..nicsettings import device_props, libvirt_only
from ..placement import RootPort

JSON_FLAGS = ("-device", "-netdev", "-object")  # the flags libvirt 9.0 writes as JSON in the json syntax
KEYVAL_LAST = ("failover_pair_id",)  # older libvirt's keyval order (its fixtures)


@dataclass(frozen=True, slots=True)
class Flag:
    """One option of the command line: `-device` with its properties, `-accel` with `{"accel": "kvm"}`."""

    name: str
    # Ordered; values str, int or bool (on/off in keyval). Never changed in place: VMs share flags (`_shared`),
    # so a rewrite makes a new flag (`with_props`).
    props: dict = field(default_factory=dict)
    head: str | None = None  # the key whose value leads bare in keyval (`driver`, `type`); None: all key=value

    def get(self, key: str, default=None):
        return self.props.get(key, default)

    def with_props(self, props: dict) -> Flag:
        return replace(self, props=props)


@dataclass(frozen=True, slots=True)
class QemuCommand:
    vm: str
    emulator: str
    flags: tuple[Flag, ...]  # empty if the VM has no plain command line (see `unexpressible`)

    def devices(self, driver: str | None = None) -> list[Flag]:
        """The -device flags, those of one driver if named."""
        return [f for f in self.flags if f.name == "-device" and (driver is None or f.props["driver"] == driver)]

    def device(self, ident: str) -> Flag | None:
        return next((f for f in self.devices() if f.props.get("id") == ident), None)

    def groups(self, syntax: str = "json") -> list[tuple[str, ...]]:
        """The argv, one flag with its encoded value per group; empty if there is no command."""
        if not self.flags:
            return []
        return [(self.emulator,), *((f.name, *encode(f, syntax)) for f in self.flags)]

    def argv(self, syntax: str = "json") -> list[str]:
        return [arg for group in self.groups(syntax) for arg in group]


def _keyval_value(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value).replace(",", ",,")


# One encoder for every flag (`json.dumps` with options builds a new one per call); a flag's map holds
# only strings, numbers and booleans, so there is no cycle to look for.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


# Flags that are the same in many VMs of a fleet (the fixed ones, a machine type's, a root port's) are made
# once (`_shared`) and each is encoded once per syntax: by identity, each kept here with its encodings.
_SHARED: dict[int, tuple[Flag, dict[str, tuple[str, ...]]]] = {}


def _shared(flag: Flag) -> Flag:
    _SHARED[id(flag)] = (flag, {})
    return flag


def encode(flag: Flag, syntax: str) -> tuple[str, ...]:
    """A flag's value as QEMU reads it: () for a bare flag, else one argument."""
    shared = _SHARED.get(id(flag))
    if shared is not None and shared[0] is flag:
        encoded = shared[1].get(syntax)
        if encoded is None:
            encoded = shared[1][syntax] = _encode(flag, syntax)
        return encoded
    return _encode(flag, syntax)


def _encode(flag: Flag, syntax: str) -> tuple[str, ...]:
    props = flag.props
    if not props:
        return ()
    if syntax == "json" and flag.name in JSON_FLAGS:
        return (_JSON(props),)
    head = flag.head
    parts = [_keyval_value(props[head])] if head is not None else []
    parts += [f"{key}={_keyval_value(value)}" for key, value in props.items() if key != head and key not in KEYVAL_LAST]
    parts += [f"{key}={_keyval_value(props[key])}" for key in KEYVAL_LAST if key in props]
    return (",".join(parts),)


def device(props: dict) -> Flag:
    return Flag("-device", props, "driver")


def netdev(props: dict) -> Flag:
    return Flag("-netdev", props, "type")


def _addr(device: Device) -> dict:
    a = device.address
    return {"bus": device.bus_id, **({"multifunction": True} if device.multifunction else {}),
            "addr": _slot_function(a.slot, a.function)}


def _slot_function(slot: int, function: int) -> str:
    """A device's `addr` on its bus, as libvirt writes it: `0xS`, or `0xS.0xF` for a function other than 0."""
    return f"0x{slot:x}" if function == 0 else f"0x{slot:x}.0x{function:x}"


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
    if nic.source_kind == "vhostuser":
        driver = nic.setting("driver")
        queues = int(driver.get("queues") or 1) if driver is not None else 1
        return {"type": "vhost-user", "chardev": "char" + netdev_id.removeprefix("host"),
                **({"queues": queues} if queues > 1 else {}), "id": netdev_id}
    if nic.source_kind == "ethernet":
        # The host's own tap, as libvirt opens it (`<target dev managed='no'/>`: by name, no scripts); without a
        # target QEMU makes a tap itself, as libvirt makes one (which needs CAP_NET_ADMIN either way).
        target = nic.setting("target")
        ifname = {"ifname": target.get("dev")} if target is not None else {}
        return {"type": "tap", **ifname, "script": "no", "downscript": "no", "id": netdev_id}
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


def _vfio(device: Device) -> dict:
    nic = device.nic
    props: dict = {"driver": "vfio-pci", "host": str(nic.host_address), "id": device.qemu_id}
    if nic.boot is not None:
        props["bootindex"] = nic.boot
    pair = {"failover_pair_id": device.failover_pair_id} if device.failover_pair_id else {}
    # libvirt gives a VF its `acpi-index` too, before the ROM's properties (tests/oracle/nic-vf-acpi.args).
    return props | pair | _addr(device) | device_props(nic.settings)[1] | _rom(nic)


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


def _libvirt_only(nic: NicSpec) -> list[tuple[list[str], str]]:
    """`nicsettings.libvirt_only` of the NIC's settings, and its network's portgroup (libvirt resolves it)."""
    portgroup = [(["portgroup"], f"portgroup {nic.portgroup}")] if nic.portgroup is not None else []
    vf = nic.source_kind in ("hostdev", "pci-hostdev") or nic.role != PERSISTENT
    # An ethernet NIC's tap is the command line's `ifname`; a vhost-user netdev takes the queues.
    settings = tuple(e for e in nic.settings if not (nic.source_kind == "ethernet" and e.tag == "target"))
    if nic.source_kind == "vhostuser":
        settings = tuple(e._replace(attrs=tuple(a for a in e.attrs if a[0] != "queues")) if e.tag == "driver" else e
                         for e in settings)
    return portgroup + libvirt_only(settings, vf)


def libvirt_only_settings(layout: VmLayout) -> list[Diagnostic]:
    """W0509 for each NIC whose stated settings only libvirt applies: the QEMU command line goes without them."""
    out = []
    for device in layout.devices:
        nic = device.nic
        missing = [name for names, _ in _libvirt_only(nic) for name in names]
        if missing:
            span = nic.source_span if nic.portgroup is not None else (
                nic.setting_spans[0] if nic.setting_spans else nic.span)
            out.append(diag("W0509", f"the QEMU command line cannot apply {', '.join(f'`{m}`' for m in missing)} of "
                                     f"{nic.label}; only libvirt does", span,
                            help="start the VM with libvirt (the XML has them), or `allow libvirt-only-setting` if "
                                 "the QEMU command line is for testing"))
    return out


def libvirt_only_notes(layout: VmLayout) -> list[str]:
    """What W0509 says, as the `.sh` states it: `DEVICE-ID: STATEMENT` per libvirt-only setting, in device order.
    The values come from the user's `.team`; a control character (a newline would end the shell comment) is
    written as a space, so the note is one comment line whatever the value."""
    notes = []
    for device in layout.devices:
        for _, text in _libvirt_only(device.nic):
            notes.append("".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in f"{device.qemu_id}: {text}"))
    return notes


def unexpressible(layout: VmLayout) -> list[Diagnostic]:
    """Why this VM has no plain QEMU command line (W0504, W0505), if it has none."""
    return [d for d in map(_unexpressible, layout.devices) if d is not None]


def qemu_command(layout: VmLayout) -> QemuCommand:
    vm = layout.vm
    if unexpressible(layout):
        return QemuCommand(vm.name, vm.emulator, ())
    # libvirt's <memoryBacking> memfd/shared is this memory backend (tests/oracle/nic-vhostuser.args).
    shared = layout.shared_memory
    flags: list[Flag] = [
        Flag("-name", {"guest": vm.name, "debug-threads": True}),
        _machine(vm.machine, shared),
        _accel(vm.accel),
        _memory(vm.memory_kib),
        *([Flag("-object", {"qom-type": "memory-backend-memfd", "id": "pc.ram", "share": True,
                            "x-use-canonical-path-for-ramblock-id": False, "size": vm.memory_kib * 1024},
                "qom-type")] if shared else []),
        _smp(vm.vcpus),
        Flag("-uuid", {"uuid": vm.uuid}, "uuid"),
        *_FIXED,
        *map(_root_port, layout.root_ports),
    ]
    vfio = []
    for placed in layout.devices:
        if placed.nic.source_kind in ("hostdev", "pci-hostdev") or placed.nic.role != PERSISTENT:
            vfio.append(placed)
            continue
        netdev_id = "host" + placed.qemu_id
        if placed.nic.source_kind == "vhostuser":
            server = {"server": True} if placed.nic.mode == "server" else {}
            flags.append(Flag("-chardev", {"backend": "socket", "id": "char" + placed.qemu_id,
                                           "path": placed.nic.source_target, **server}, "backend"))
        backend_props = _netdev(placed.nic, netdev_id)
        assert backend_props is not None  # else unexpressible() (W0505) returned early
        flags.append(netdev(backend_props))
        flags.append(device(_virtio_net(placed, netdev_id)))
    flags.extend(device(_vfio(placed)) for placed in vfio)
    return QemuCommand(vm.name, vm.emulator, tuple(flags))


_FIXED = tuple(_shared(flag) for flag in (Flag("-display", {"type": "none"}, "type"), Flag("-no-user-config"),
                                          Flag("-nodefaults")))


@cache  # one flag for each machine type of the fleet, and so on below
def _machine(machine: str, shared_memory: bool) -> Flag:
    backend = {"memory-backend": "pc.ram"} if shared_memory else {}
    return _shared(Flag("-machine", {"type": machine, "usb": False, "dump-guest-core": False, **backend}, "type"))


@cache
def _accel(accel: str) -> Flag:
    return _shared(Flag("-accel", {"accel": accel}, "accel"))


@cache
def _memory(kib: int) -> Flag:
    return _shared(Flag("-m", {"size": f"{kib}k"}))


@cache
def _smp(vcpus: int) -> Flag:
    return _shared(Flag("-smp", {"cpus": vcpus, "sockets": vcpus, "cores": 1, "threads": 1}, "cpus"))


@cache
def _root_port(port: RootPort) -> Flag:
    props: dict = {"driver": "pcie-root-port", "port": port.port, "chassis": port.chassis, "id": port.id,
                   "bus": "pcie.0"}
    if port.multifunction:
        props["multifunction"] = True
    props["addr"] = _slot_function(port.slot, port.function)
    return _shared(device(props))
