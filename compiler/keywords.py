"""The keywords of the .team language: syntax, where each may appear, and what it means.

One table feeds the language server's hover and completion; the README's "The language" section says the
same. The grammar is the source of the words themselves: tests/test_lsp_features.py checks that every keyword
of the grammar is here and in the README's grammar block, and tests/test_parser.py that each entry's `blocks`,
SOURCE_WORDS and the units are the ones the grammar's rules give (`compiler.parser.grammar()`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .nicsettings import ROWS


@dataclass(frozen=True, slots=True)
class Keyword:
    word: str
    syntax: str
    doc: str
    blocks: tuple[str, ...]  # where a statement may start with it: file, vm, team, nic, options; () if inside one


def _table(*entries: Keyword) -> dict[str, Keyword]:
    return {k.word: k for k in entries}


KEYWORDS: dict[str, Keyword] = _table(
    Keyword("vm", "vm NAME { … }", "A virtual machine: its settings, teams and NICs. The name becomes the domain's "
            "`<name>` and the output file names.", ("file",)),
    Keyword("uuid", "uuid UUID", "The domain's `<uuid>`. Default: derived from the VM name (UUIDv5), so stable.",
            ("vm",)),
    Keyword("machine", "machine MACHINE", "The QEMU machine type: `q35` or `pc-q35-*` (default `q35`). A team on "
            "the i440fx `pc` machine is refused (E0401): the VF needs a PCI Express, hot-pluggable slot.", ("vm",)),
    Keyword("arch", "arch x86_64|i686", "The guest architecture (default `x86_64`); it picks the default emulator.",
            ("vm",)),
    Keyword("memory", "memory N UNIT", "Guest memory with a unit: B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB). "
            "Default 1 GiB.", ("vm",)),
    Keyword("vcpus", "vcpus N", "Number of virtual CPUs (default 1).", ("vm",)),
    Keyword("emulator", "emulator PATH", "Absolute path of the QEMU binary (default from `arch`).", ("vm",)),
    Keyword("accel", "accel kvm|tcg", "`kvm` (default, `<domain type='kvm'>`) or `tcg` (`type='qemu'`).", ("vm",)),
    Keyword("allow", "allow CODE-OR-SLUG", "Acknowledge an allowable check in this VM: its error becomes a "
            "warning, or its warning is silenced.", ("vm",)),
    Keyword("team", "team NAME { … }", "A failover pair: one persistent virtio NIC (the standby) and one transient "
            "VF (the primary). The persistent NIC's alias is `ua-NAME`.", ("vm",)),
    Keyword("nic", "nic NAME { … }", "One NIC of a pair in the explicit form, linked to its partner by name. A "
            "persistent NIC's name is its alias and must start with `ua-`.", ("vm",)),
    Keyword("mac", "mac MAC", "The MAC address both NICs of the pair share (the guest pairs them by MAC). "
            "Default: derived from the VM and NIC names under 52:54:00.", ("team", "nic")),
    Keyword("persistent", "persistent MODEL SOURCE [{ options }]", "The team's standby: a virtio NIC "
            "(`<teaming type='persistent'/>`).", ("team",)),
    Keyword("transient", "transient SOURCE [{ options }]", "The team's primary: the VF that is unplugged for "
            "migration (`<teaming type='transient' persistent='ua-…'/>`).", ("team",)),
    Keyword("model", "model MODEL", "The NIC model: `virtio` (or virtio-transitional, virtio-non-transitional) "
            "on the persistent side.", ("nic",)),
    Keyword("source", "source SOURCE", "Where the NIC is connected: user, bridge, network, direct, hostdev or "
            "pci-hostdev.", ("nic",)),
    Keyword("teaming", "teaming persistent | teaming transient NAME", "The NIC's role in its pair; a transient "
            "names its persistent NIC (by name or alias).", ("nic",)),
    Keyword("address", "address DDDD:BB:SS.F", "Pin the guest PCI address. q35: bus 0 is pcie.0, bus N is the "
            "root port `pci.N` (slot 0 only). Checked for clashes (E0403).", ("nic", "options")),
    Keyword("boot", "boot N", "Boot order (`<boot order='N'/>`, QEMU `bootindex`). Warns on the VF (W0503).",
            ("nic", "options")),
    Keyword("mtu", "mtu N", "The persistent NIC's MTU (`<mtu size='N'/>`, QEMU `host_mtu`).", ("nic", "options")),
    Keyword("rom", "rom bar on|off | rom file PATH | rom enabled yes|no", "The NIC's option ROM (`<rom …/>`). "
            "A ROM on the VF warns (W0503).", ("nic", "options")),
    Keyword("managed", "managed [yes|no]", "Whether libvirt detaches the VF from its host driver (default yes).",
            ("nic", "options")),
    Keyword("user", "user", "User-mode networking (`<interface type='user'>`, `-netdev user`).", ()),
    Keyword("ethernet", "ethernet", "A tap device of the host's own (`<interface type='ethernet'>`, `-netdev tap`): "
            "name an existing one with `target TAP managed no`, which the QEMU command line opens as `ifname`.", ()),
    Keyword("vhostuser", "vhostuser SOCKET [mode client|server]", "A vhost-user backend on a unix socket "
            "(`<interface type='vhostuser'>`, `-chardev socket` + `-netdev vhost-user`); the VM's memory becomes "
            "shared memfd memory, which vhost-user needs.", ()),
    Keyword("bridge", "bridge BRIDGE", "A host bridge (`<interface type='bridge'>`, `-netdev bridge`); after "
            "`network NAME`, the bridge the QEMU command line uses.", ()),
    Keyword("network", "network NAME [bridge BRIDGE] [vf PCI] [portgroup NAME]", "A libvirt network; for a "
            "transient, a hostdev pool each host picks a free VF from.", ()),
    Keyword("direct", "direct DEV [mode MODE]", "macvtap on a host device (`<interface type='direct'>`); "
            "libvirt only (W0505).", ()),
    Keyword("hostdev", "hostdev PCI [managed]", "A host VF as `<interface type='hostdev'>`: libvirt sets its "
            "MAC through the PF.", ()),
    Keyword("pci-hostdev", "pci-hostdev PCI [managed]", "A host VF as a plain `<hostdev>` with `<teaming>`; its "
            "MAC must be preset on the host (W0502).", ()),
    Keyword("mode", "mode vepa|bridge|private|passthrough", "The macvtap mode of a `direct` source; of a "
            "`vhostuser` source, `client` (default) or `server`.", ()),
    Keyword("vf", "vf PCI", "The concrete VF of a hostdev-pool network, for the QEMU command line.", ()),
    Keyword("portgroup", "portgroup NAME", "The portgroup of a `network` source (`<source network='N' "
            "portgroup='NAME'/>`): its VLAN, bandwidth and virtualport apply. libvirt only (W0509).", ()),
    Keyword("bar", "rom bar on|off", "Whether the ROM BAR is visible to the guest.", ()),
    Keyword("file", "rom file PATH", "The ROM image, an absolute path.", ()),
    Keyword("enabled", "rom enabled yes|no", "`no` loads no ROM at all.", ()),
    Keyword("yes", "yes", "Yes.", ()),
    Keyword("no", "no", "No.", ()),
    # The NIC settings, one per row of compiler/nicsettings.py's table.
    *(Keyword(row.keyword, row.example, f"The NIC's {row.xml_form()} (README: NIC settings). QEMU: {row.qemu}.",
              ("nic", "options")) for row in ROWS),
)

SOURCE_WORDS = ("user", "ethernet", "vhostuser", "bridge", "network", "direct", "hostdev", "pci-hostdev")
# The grammar's memory units (its `unit` rule, in its order) and how many bytes each is.
UNIT_BYTES = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
              "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
              "k": 1024, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}  # fmt: skip
UNIT_WORDS = tuple(UNIT_BYTES)
