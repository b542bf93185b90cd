"""The verification argv: the compiled QEMU argv with only what this machine cannot have replaced.

- each VFIO primary (`vfio-pci,failover_pair_id=…`) becomes an emulated e1000e that keeps
  the VF's id, bus, addr, MAC and `failover_pair_id`, with `romfile=""` (no option ROM: a
  ROM ramblock the hidden primary of the migration target lacks would make it refuse the
  migration) and its own user-networking backend (the VF's wire);
- a bridge backend (`-netdev bridge`) becomes user networking with the same id;
- the accelerator becomes TCG when KVM is not usable (or when asked).

Everything else — machine, memory, root ports, the standby with `failover=on`, ids, buses,
addresses — is exactly what `teamc compile` writes. What cannot be written as a plain
command line at all (a libvirt network or macvtap on the standby, a VF picked from a
hostdev pool) is first given the nearest plain form (user networking, a placeholder VF
address the stand-in does not use); every such change is listed in `VmPlan.changes`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field, replace

from ..backends.qemu import encode
from ..ir import PERSISTENT, PciAddress

STANDIN = "e1000e"  # an emulated PCI Express NIC the Debian kernel drives (CONFIG_E1000E=m)
PLACEHOLDER_VF = PciAddress(0, 0, 0, 0)


@dataclass(frozen=True)
class TeamPlan:
    name: str  # the persistent NIC's name in the source (team name or explicit NIC name)
    standby: str  # virtio-net device id (the libvirt alias)
    primary: str  # the primary's device id (hostdevN)
    mac: str  # the standby's MAC: the failover master's MAC in the guest
    primary_mac: str  # the VF's MAC, which the stand-in takes
    primary_bus: str
    primary_addr: str


@dataclass
class VmPlan:
    vm: str
    compiled: list[str]  # the argv `teamc compile` writes (JSON syntax)
    argv: list[str]  # the verification argv (before the runner adds kernel, serial and QMP)
    teams: list[TeamPlan]
    accel: str
    changes: list[str] = field(default_factory=list)  # each difference from the compiled argv, in words


def decode(arg: str, head: str) -> dict:
    """A -device/-netdev value as a dict, from JSON or keyval (`,,` is a literal comma)."""
    if arg.startswith("{"):
        return json.loads(arg)
    parts = arg.replace(",,", "\0").split(",")
    props = {head: parts[0].replace("\0", ",")}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        props[key] = value.replace("\0", ",")
    return props


def _syntax(json_syntax: bool) -> str:
    return "json" if json_syntax else "keyval"


def kvm_usable() -> bool:
    """/dev/kvm exists and can be opened read-write (what QEMU needs)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def choose_accel(compiled: str, wanted: str = "auto", kvm_check=None) -> tuple[str, str | None]:
    """(accelerator, why it differs from the compiled one or None). `kvm_check()` -> (works, why not)
    decides `auto` for a KVM VM; by default, whether /dev/kvm opens."""
    if wanted == "tcg":
        return "tcg", None if compiled == "tcg" else "accel kvm -> tcg (--accel tcg)"
    if wanted == "kvm":
        return "kvm", None if compiled == "kvm" else "accel tcg -> kvm (--accel kvm)"
    if compiled == "kvm":
        works, why = kvm_check() if kvm_check else (kvm_usable(), "/dev/kvm is not usable here")
        if not works:
            return "tcg", f"accel kvm -> tcg ({why})"
    return compiled, None


def _plain_layout(vm_layout):
    """Give what has no plain QEMU form its nearest plain form, for verification only."""
    changes = []
    devices = []
    for device in vm_layout.devices:
        nic = device.nic
        if nic.role == PERSISTENT and (nic.source_kind == "direct"
                                       or (nic.source_kind == "network" and nic.via_bridge is None)):
            what = (f"macvtap on {nic.source_target}" if nic.source_kind == "direct"
                    else f"libvirt network `{nic.source_target}`")
            changes.append(f"{device.qemu_id}: {what} (no plain QEMU form) -> user networking")
            device = replace(device, nic=replace(nic, source_kind="user"))
        elif nic.role != PERSISTENT and nic.source_kind == "network" and nic.host_address is None:
            changes.append(f"{device.qemu_id}: VF from hostdev pool `{nic.source_target}` (picked by libvirt) "
                           "-> placeholder, replaced by the stand-in")
            device = replace(device, nic=replace(nic, host_address=PLACEHOLDER_VF))
        devices.append(device)
    n = len(vm_layout.interfaces)
    return replace(vm_layout, interfaces=tuple(devices[:n]), hostdevs=tuple(devices[n:])), changes


def plan_vm(vm_layout, accel: str = "auto", qemu: str | None = None, kvm_check=None) -> VmPlan:
    """The verification plan of one laid-out VM. `kvm_check(emulator)` -> (works, why not) decides
    whether `auto` keeps KVM (default: whether /dev/kvm opens)."""
    from ..backends.qemu import qemu_command

    vm_layout, changes = _plain_layout(vm_layout)
    compiled = qemu_command(vm_layout, "json").argv
    by_id = {d.qemu_id: d for d in vm_layout.devices}
    teams = []
    for device in vm_layout.devices:
        if device.failover_pair_id is None or device.failover_pair_id not in by_id:
            continue
        standby = by_id[device.failover_pair_id]
        teams.append(TeamPlan(
            name=standby.nic.name, standby=standby.qemu_id, primary=device.qemu_id, mac=standby.nic.mac,
            primary_mac=device.nic.mac or standby.nic.mac, primary_bus=device.bus_id,
            primary_addr=f"{device.address.slot:02x}.{device.address.function:x}"))
    emulator = qemu or compiled[0]
    if qemu is not None:
        changes.append(f"emulator {compiled[0]} -> {qemu} (--qemu)")
    else:
        if vm_layout.vm.arch == "i686":
            emulator = "qemu-system-x86_64"
            changes.append(f"emulator {compiled[0]} -> {emulator} (the guest kernel is x86_64; the devices are "
                           "the same)")
        if shutil.which(emulator) is None and shutil.which("qemu-system-x86_64"):
            found = shutil.which("qemu-system-x86_64")
            changes.append(f"emulator {emulator} (not on this machine) -> {found}")
            emulator = found
    check = (lambda: kvm_check(emulator)) if kvm_check else None
    chosen, why = choose_accel(vm_layout.vm.accel, accel, check)
    if why:
        changes.append(why)
    argv = verification_argv(compiled, {t.primary: t.primary_mac for t in teams}, chosen, changes)
    argv[0] = emulator
    return VmPlan(vm_layout.vm.name, compiled, argv, teams, chosen, changes)


def verification_argv(compiled: list[str], primary_macs: dict[str, str], accel: str,
                      changes: list[str] | None = None) -> list[str]:
    """Apply the substitutions described in the module docstring to a compiled argv."""
    changes = [] if changes is None else changes
    out: list[str] = []
    i = 0
    while i < len(compiled):
        arg = compiled[i]
        value = compiled[i + 1] if i + 1 < len(compiled) else None
        if arg == "-accel" and value is not None:
            out += [arg, accel]
            i += 2
            continue
        if arg == "-netdev" and value is not None:
            props = decode(value, "type")
            if props["type"] in ("bridge", "tap"):
                where = props.get("br") or props.get("ifname") or ""
                changes.append(f"{props['id']}: {props['type']} {where} -> user networking".replace("  ", " "))
                value = encode("type", {"type": "user", "id": props["id"]}, _syntax(value.startswith("{")))
            out += [arg, value]
            i += 2
            continue
        if arg == "-device" and value is not None:
            props = decode(value, "driver")
            if props["driver"] == "vfio-pci":
                json_syntax = value.startswith("{")
                ident = props["id"]
                netdev = f"teamc-{ident}"
                standin = {"driver": STANDIN, "id": ident, "netdev": netdev}
                if ident in primary_macs:
                    standin["mac"] = primary_macs[ident]
                for key in ("failover_pair_id", "bus", "addr", "bootindex"):
                    if key in props:
                        standin[key] = props[key]
                standin["romfile"] = ""
                out += ["-netdev", encode("type", {"type": "user", "id": netdev}, _syntax(json_syntax)),
                        arg, encode("driver", standin, _syntax(json_syntax))]
                host = props.get("host", "")
                host = "" if host == str(PLACEHOLDER_VF) else f" {host}"
                changes.append(f"{ident}: vfio-pci{host} -> emulated {STANDIN} stand-in "
                               f"(MAC {standin.get('mac', '?')}, same id/bus/addr/failover_pair_id, no ROM, "
                               "user networking)")
                i += 2
                continue
        out.append(arg)
        i += 1
    return out
