"""The verification command: the compiled QEMU command with only what this machine cannot have replaced.

- each VFIO primary (`vfio-pci,failover_pair_id=…`) becomes an emulated e1000e that keeps
  the VF's id, bus, addr, MAC and `failover_pair_id`, with `romfile=""` (no option ROM: a
  ROM ramblock the hidden primary of the migration target lacks would make it refuse the
  migration) and its own user-networking backend (the VF's wire);
- a bridge backend (`-netdev bridge`), a tap (`ethernet`) or a vhost-user backend (whose `-chardev`
  socket goes, as there is no backend on it here) becomes user networking with the same id;
- the accelerator becomes TCG when KVM is not usable (or when asked).

Everything else — machine, memory, root ports, the standby with `failover=on`, ids, buses,
addresses — is exactly what `teamc compile` writes. What cannot be written as a plain
command line at all (a libvirt network or macvtap on the standby, a VF picked from a
hostdev pool) is first given the nearest plain form (user networking, a placeholder VF
address the stand-in does not use); every such change is listed in `VmPlan.changes`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field, replace

from ..backends.qemu import Flag, QemuCommand, device, netdev
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
    compiled: QemuCommand  # what `teamc compile` writes
    command: QemuCommand  # the verification command (before the runner adds kernel, serial and QMP)
    teams: list[TeamPlan]
    accel: str
    changes: list[str] = field(default_factory=list)  # each difference from the compiled command, in words

    @property
    def argv(self) -> list[str]:
        """The verification argv, in the JSON syntax `teamc compile` writes by default."""
        return self.command.argv("json")


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
    for placed in vm_layout.devices:
        nic = placed.nic
        if nic.role == PERSISTENT and (nic.source_kind == "direct"
                                       or (nic.source_kind == "network" and nic.via_bridge is None)):
            what = (f"macvtap on {nic.source_target}" if nic.source_kind == "direct"
                    else f"libvirt network `{nic.source_target}`")
            changes.append(f"{placed.qemu_id}: {what} (no plain QEMU form) -> user networking")
            placed = replace(placed, nic=replace(nic, source_kind="user"))
        elif nic.role != PERSISTENT and nic.source_kind == "network" and nic.host_address is None:
            changes.append(f"{placed.qemu_id}: VF from hostdev pool `{nic.source_target}` (picked by libvirt) "
                           "-> placeholder, replaced by the stand-in")
            placed = replace(placed, nic=replace(nic, host_address=PLACEHOLDER_VF))
        devices.append(placed)
    n = len(vm_layout.interfaces)
    return replace(vm_layout, interfaces=tuple(devices[:n]), hostdevs=tuple(devices[n:])), changes


def plan_vm(vm_layout, accel: str = "auto", qemu: str | None = None, kvm_check=None) -> VmPlan:
    """The verification plan of one laid-out VM. `kvm_check(emulator)` -> (works, why not) decides
    whether `auto` keeps KVM (default: whether /dev/kvm opens)."""
    from ..backends.qemu import qemu_command

    vm_layout, changes = _plain_layout(vm_layout)
    compiled = qemu_command(vm_layout)
    by_id = {d.qemu_id: d for d in vm_layout.devices}
    teams = []
    for placed in vm_layout.devices:
        if placed.failover_pair_id is None or placed.failover_pair_id not in by_id:
            continue
        standby = by_id[placed.failover_pair_id]
        teams.append(TeamPlan(
            name=standby.nic.name, standby=standby.qemu_id, primary=placed.qemu_id, mac=standby.nic.mac,
            primary_mac=placed.nic.mac or standby.nic.mac, primary_bus=placed.bus_id,
            primary_addr=f"{placed.address.slot:02x}.{placed.address.function:x}"))
    emulator = qemu or compiled.emulator
    if qemu is not None:
        changes.append(f"emulator {compiled.emulator} -> {qemu} (--qemu)")
    else:
        if vm_layout.vm.arch == "i686":
            emulator = "qemu-system-x86_64"
            changes.append(f"emulator {compiled.emulator} -> {emulator} (the guest kernel is x86_64; the devices "
                           "are the same)")
        if shutil.which(emulator) is None and (found := shutil.which("qemu-system-x86_64")):
            changes.append(f"emulator {emulator} (not on this machine) -> {found}")
            emulator = found
    check = (lambda: kvm_check(emulator)) if kvm_check else None
    chosen, why = choose_accel(vm_layout.vm.accel, accel, check)
    if why:
        changes.append(why)
    command = verification_command(compiled, {t.primary: t.primary_mac for t in teams}, chosen, changes)
    return VmPlan(vm_layout.vm.name, compiled, replace(command, emulator=emulator), teams, chosen, changes)


def verification_command(compiled: QemuCommand, primary_macs: dict[str, str], accel: str,
                         changes: list[str] | None = None) -> QemuCommand:
    """Apply the substitutions described in the module docstring to a compiled command."""
    changes = [] if changes is None else changes
    out: list[Flag] = []
    vhost_user = {f.props["chardev"] for f in compiled.flags if f.name == "-netdev" and f.props["type"] == "vhost-user"}
    for flag in compiled.flags:
        if flag.name == "-chardev" and flag.props.get("id") in vhost_user:
            continue
        if flag.name == "-accel":
            flag = flag.with_props({"accel": accel})
        elif flag.name == "-netdev" and flag.props["type"] in ("bridge", "tap", "vhost-user"):
            props = flag.props
            where = props.get("br") or props.get("ifname") or props.get("chardev") or ""
            changes.append(f"{props['id']}: {props['type']} {where} -> user networking".replace("  ", " "))
            flag = flag.with_props({"type": "user", "id": props["id"]})
        elif flag.name == "-device" and flag.props["driver"] == "vfio-pci":
            props = flag.props
            ident = props["id"]
            backend = f"teamc-{ident}"
            standin = {"driver": STANDIN, "id": ident, "netdev": backend}
            if ident in primary_macs:
                standin["mac"] = primary_macs[ident]
            kept = ("failover_pair_id", "bus", "addr", "bootindex")
            standin.update((key, props[key]) for key in kept if key in props)
            standin["romfile"] = ""
            out.append(netdev({"type": "user", "id": backend}))
            flag = device(standin)
            host = "" if props["host"] == str(PLACEHOLDER_VF) else f" {props['host']}"
            changes.append(f"{ident}: vfio-pci{host} -> emulated {STANDIN} stand-in "
                           f"(MAC {standin.get('mac', '?')}, same id/bus/addr/failover_pair_id, no ROM, "
                           "user networking)")
        out.append(flag)
    return replace(compiled, flags=tuple(out))
