"""Layout phase: checked IR -> per-VM device layout (root ports, guest PCI
addresses, QEMU ids, failover pairs), on small inline programs.
"""

import pytest

from helpers import ROOT
from teamc.checks import apply_allow, check
from teamc.ir import PciAddress
from teamc.layout import layout
from teamc.lower import lower
from teamc.parser import parse
from teamc.source import SourceFile


def layouts(text: str):
    module, diags = parse(SourceFile("t.team", text))
    assert diags == [], [(d.code, d.message) for d in diags]
    result = lower(module)
    found = apply_allow(result.graph, [*result.diagnostics, *check(result.graph)])
    errors = [(d.code, d.span.line_col, d.message) for d in found if d.is_error]
    assert errors == []
    return layout(result.graph)


def one_layout(text: str):
    (vm_layout,) = layouts(text)
    return vm_layout


def ports(vm_layout) -> list[tuple]:
    return [(p.id, p.index, p.chassis, p.port, p.slot, p.function, p.multifunction) for p in vm_layout.root_ports]


def placed(vm_layout) -> list[tuple]:
    """(name, role, element, guest address, bus id, qemu id, failover pair id) in device order."""
    return [(d.nic.name, d.nic.role, d.element, str(d.address), d.bus_id, d.qemu_id, d.failover_pair_id)
            for d in vm_layout.devices]


def team(name: str, vf: str, pers: str = "virtio user", kind: str = "hostdev") -> str:
    return f"  team {name} {{ persistent {pers}; transient {kind} {vf} }}\n"


def vm(*teams: str, head: str = "") -> str:
    return "vm a {\n" + head + "".join(teams) + "}\n"


TWO_TEAMS = vm(team("backup0", "0000:03:07.1"), team("backup1", "0000:03:07.2"))


# --- q35 ---------------------------------------------------------------------------


def test_q35_two_teams_root_ports():
    vm_layout = one_layout(TWO_TEAMS)
    assert vm_layout.vm.name == "a"
    # 4 NICs + 1 spare; chassis = index; port = slot * 8 + function; pcie.0 slot 1, functions 0..4
    assert ports(vm_layout) == [
        ("pci.1", 1, 1, 8, 1, 0, True),
        ("pci.2", 2, 2, 9, 1, 1, False),
        ("pci.3", 3, 3, 10, 1, 2, False),
        ("pci.4", 4, 4, 11, 1, 3, False),
        ("pci.5", 5, 5, 12, 1, 4, False),
    ]


def test_q35_two_teams_devices():
    vm_layout = one_layout(TWO_TEAMS)
    # Persistents take the first buses, then the hostdev interfaces; devices stay in source order.
    assert placed(vm_layout) == [
        ("backup0", "persistent", "interface", "0000:01:00.0", "pci.1", "ua-backup0", None),
        ("backup0", "transient", "interface", "0000:03:00.0", "pci.3", "hostdev0", "ua-backup0"),
        ("backup1", "persistent", "interface", "0000:02:00.0", "pci.2", "ua-backup1", None),
        ("backup1", "transient", "interface", "0000:04:00.0", "pci.4", "hostdev1", "ua-backup1"),
    ]
    assert vm_layout.hostdevs == ()
    assert vm_layout.devices == vm_layout.interfaces


def test_q35_explicit_form_ids_and_failover_pair():
    vm_layout = one_layout(vm(
        "  nic ua-data0 { model virtio; source bridge br0; teaming persistent }\n"
        "  nic vf-data0 { source hostdev 0000:3b:03.0 managed; teaming transient ua-data0 }\n"))
    assert placed(vm_layout) == [
        ("ua-data0", "persistent", "interface", "0000:01:00.0", "pci.1", "ua-data0", None),
        ("vf-data0", "transient", "interface", "0000:02:00.0", "pci.2", "hostdev0", "ua-data0"),
    ]
    assert [p.id for p in vm_layout.root_ports] == ["pci.1", "pci.2", "pci.3"]


def test_q35_one_team():
    vm_layout = one_layout(vm(team("up0", "0000:03:07.1")))
    assert ports(vm_layout) == [("pci.1", 1, 1, 8, 1, 0, True), ("pci.2", 2, 2, 9, 1, 1, False),
                                ("pci.3", 3, 3, 10, 1, 2, False)]


def test_q35_no_nics_has_no_root_port():
    # libvirt adds a spare port only when it had to add ports at all (tests/oracle/no-nics.args).
    vm_layout = one_layout("vm a {}")
    assert ports(vm_layout) == []
    assert vm_layout.devices == ()


def test_address_order_network_pool_hostdev_interface_then_plain_hostdev():
    vm_layout = one_layout(vm(
        team("up0", "0000:03:07.1", pers="virtio bridge br0", kind="pci-hostdev"),
        team("up1", "0000:03:07.2"),
        team("up2", "vf 0000:03:07.3", pers="virtio network n", kind="network pool"),
        team("up3", "0000:03:07.4"),
        head="  allow hostdev-mac-preset\n"))
    by_name = {(d.nic.name, d.nic.role): (str(d.address), d.qemu_id, d.element) for d in vm_layout.devices}
    # 1) non-hostdev interfaces in source order: the persistents and the network-pool transient
    assert by_name[("up0", "persistent")] == ("0000:01:00.0", "ua-up0", "interface")
    assert by_name[("up1", "persistent")] == ("0000:02:00.0", "ua-up1", "interface")
    assert by_name[("up2", "persistent")] == ("0000:03:00.0", "ua-up2", "interface")
    assert by_name[("up2", "transient")] == ("0000:04:00.0", "hostdev1", "interface")
    assert by_name[("up3", "persistent")] == ("0000:05:00.0", "ua-up3", "interface")
    # 2) hostdev interfaces
    assert by_name[("up1", "transient")] == ("0000:06:00.0", "hostdev0", "interface")
    assert by_name[("up3", "transient")] == ("0000:07:00.0", "hostdev2", "interface")
    # 3) plain <hostdev>s, whose ids come after every interface's
    assert by_name[("up0", "transient")] == ("0000:08:00.0", "hostdev3", "hostdev")
    assert [(d.nic.name, d.nic.role) for d in vm_layout.interfaces] == [
        ("up0", "persistent"), ("up1", "persistent"), ("up1", "transient"), ("up2", "persistent"),
        ("up2", "transient"), ("up3", "persistent"), ("up3", "transient")]
    assert [(d.nic.name, d.bus_id, d.failover_pair_id) for d in vm_layout.hostdevs] == [("up0", "pci.8", "ua-up0")]


def test_vf_ids_follow_interfaces_then_hostdevs():
    vm_layout = one_layout(vm(team("a0", "0000:03:07.1", kind="pci-hostdev"), team("a1", "0000:03:07.2"),
                              head="  allow hostdev-mac-preset\n"))
    assert [(d.nic.name, d.qemu_id, d.failover_pair_id) for d in vm_layout.devices if d.nic.role == "transient"] == [
        ("a1", "hostdev0", "ua-a1"), ("a0", "hostdev1", "ua-a0")]


def test_ninth_root_port_moves_to_slot_2():
    teams = [team(f"t{i}", f"0000:03:07.{i}") for i in range(4)]  # 8 NICs + 1 spare
    vm_layout = one_layout(vm(*teams))
    got = ports(vm_layout)
    assert got[:8] == [(f"pci.{i}", i, i, 7 + i, 1, i - 1, i == 1) for i in range(1, 9)]
    assert got[8] == ("pci.9", 9, 9, 16, 2, 0, False)  # alone in slot 2: no multifunction
    assert len(got) == 9


def test_tenth_root_port_makes_slot_2_multifunction():
    teams = [team(f"t{i}", f"0000:03:07.{i}") for i in range(4)]
    teams.append("  nic ua-solo { source user; teaming persistent }\n")  # a 9th NIC (W0501 only)
    (vm_layout,) = layouts(vm(*teams))
    assert ports(vm_layout)[8:] == [("pci.9", 9, 9, 16, 2, 0, True), ("pci.10", 10, 10, 17, 2, 1, False)]


def test_pinned_addresses_are_kept_and_their_buses_skipped():
    vm_layout = one_layout(vm(
        "  team up0 { persistent virtio user { address 0000:02:00.0 }; "
        "transient hostdev 0000:03:07.1 { address 0000:05:00.0 } }\n",
        team("up1", "0000:03:07.2")))
    assert placed(vm_layout) == [
        ("up0", "persistent", "interface", "0000:02:00.0", "pci.2", "ua-up0", None),
        ("up0", "transient", "interface", "0000:05:00.0", "pci.5", "hostdev0", "ua-up0"),
        ("up1", "persistent", "interface", "0000:01:00.0", "pci.1", "ua-up1", None),
        ("up1", "transient", "interface", "0000:03:00.0", "pci.3", "hostdev1", "ua-up1"),
    ]
    # every bus up to the highest one used; no spare, since port pci.4 is left free
    assert [p.id for p in vm_layout.root_ports] == [f"pci.{i}" for i in range(1, 6)]


def test_pinned_pcie0_slot_is_skipped_by_root_ports():
    vm_layout = one_layout(vm(
        "  team up0 { persistent virtio user { address 0000:00:01.0 }; transient hostdev 0000:03:07.1 }\n",
        team("up1", "0000:03:07.2")))
    assert placed(vm_layout) == [
        ("up0", "persistent", "interface", "0000:00:01.0", "pcie.0", "ua-up0", None),
        ("up0", "transient", "interface", "0000:02:00.0", "pci.2", "hostdev0", "ua-up0"),
        ("up1", "persistent", "interface", "0000:01:00.0", "pci.1", "ua-up1", None),
        ("up1", "transient", "interface", "0000:03:00.0", "pci.3", "hostdev1", "ua-up1"),
    ]
    assert ports(vm_layout) == [("pci.1", 1, 1, 16, 2, 0, True), ("pci.2", 2, 2, 17, 2, 1, False),
                                ("pci.3", 3, 3, 18, 2, 2, False), ("pci.4", 4, 4, 19, 2, 3, False)]


def test_ninth_root_port_skips_a_pinned_slot_2():
    teams = [team(f"t{i}", f"0000:03:07.{i}") for i in range(4)]
    pinned = "  team p { persistent virtio user { address 0000:00:02.0 }; transient hostdev 0000:03:06.0 }\n"
    vm_layout = one_layout(vm(*teams, pinned))
    assert [(p.id, p.slot, p.function) for p in vm_layout.root_ports[8:]] == [("pci.9", 3, 0), ("pci.10", 3, 1)]


def test_one_layout_per_vm():
    both = layouts(TWO_TEAMS + "vm b {\n" + team("up0", "0000:03:07.6") + "}\n")
    assert [v.vm.name for v in both] == ["a", "b"]
    assert [(d.qemu_id, str(d.address)) for d in both[1].devices] == [("ua-up0", "0000:01:00.0"),
                                                                       ("hostdev0", "0000:02:00.0")]


# --- pc (i440fx, with the opt-in) ------------------------------------------------------


PC = "  machine pc\n  allow pc-machine-team\n"


def test_pc_layout_all_on_pci0_from_slot_2_without_root_ports():
    vm_layout = one_layout(vm(team("backup0", "0000:03:07.1"), team("backup1", "0000:03:07.2"), head=PC))
    assert vm_layout.root_ports == ()
    assert placed(vm_layout) == [
        ("backup0", "persistent", "interface", "0000:00:02.0", "pci.0", "ua-backup0", None),
        ("backup0", "transient", "interface", "0000:00:04.0", "pci.0", "hostdev0", "ua-backup0"),
        ("backup1", "persistent", "interface", "0000:00:03.0", "pci.0", "ua-backup1", None),
        ("backup1", "transient", "interface", "0000:00:05.0", "pci.0", "hostdev1", "ua-backup1"),
    ]


def test_pc_layout_skips_pinned_slots():
    vm_layout = one_layout(vm(
        "  team up0 { persistent virtio user { address 0000:00:03.0 }; transient hostdev 0000:03:07.1 }\n",
        team("up1", "0000:03:07.2"), head=PC))
    assert vm_layout.root_ports == ()
    assert [(d.nic.name, d.nic.role, str(d.address), d.bus_id) for d in vm_layout.devices] == [
        ("up0", "persistent", "0000:00:03.0", "pci.0"),
        ("up0", "transient", "0000:00:04.0", "pci.0"),
        ("up1", "persistent", "0000:00:02.0", "pci.0"),
        ("up1", "transient", "0000:00:05.0", "pci.0"),
    ]


def test_pc_layout_plain_hostdev_last():
    vm_layout = one_layout(vm(team("h", "0000:03:07.1", kind="pci-hostdev"), team("i", "0000:03:07.2"),
                              head=PC + "  allow hostdev-mac-preset\n"))
    assert [(d.nic.name, d.nic.role, d.element, str(d.address), d.qemu_id) for d in vm_layout.devices] == [
        ("h", "persistent", "interface", "0000:00:02.0", "ua-h"),
        ("i", "persistent", "interface", "0000:00:03.0", "ua-i"),
        ("i", "transient", "interface", "0000:00:04.0", "hostdev0"),
        ("h", "transient", "hostdev", "0000:00:05.0", "hostdev1"),
    ]


def test_addresses_are_pci_addresses():
    vm_layout = one_layout(TWO_TEAMS)
    assert vm_layout.devices[0].address == PciAddress(0, 1, 0, 0)


# --- refused before layout ------------------------------------------------------------


def errors(text: str) -> list[tuple]:
    """(code, line:col, message) of every error the checks give, over the IR and over its layout."""
    from teamc.pipeline import check_and_lay_out

    module, _ = parse(SourceFile("t.team", text))
    result = lower(module)
    found = apply_allow(result.graph, [*result.diagnostics, *check_and_lay_out(result.graph)[0]])
    return [(d.code, d.span.line_col, d.message) for d in found if d.is_error]


# A q35 address pinned to bus >= 0xf1 needs a root port for every bus up to it, more than the 240
# pcie.0 holds (0xf0 just fits: no spare beside the free lower ports): refused by the capacity check
# over the layout (which once crashed on it: IndexError, exit 3).
def test_pinned_high_bus_is_refused_by_the_capacity_check():
    text = "vm a { team t { persistent virtio user { address 0000:f1:00.0 }; transient hostdev 0000:03:07.1 } }"
    [(code, where, message)] = errors(text)
    assert (code, where) == ("E0403", (1, 4))
    assert message.startswith("VM `a` does not fit its guest PCI topology: ") and "room for 240 on pcie.0" in message


# 32 NICs on `pc` need slots past 0x1f on pci.0, which do not exist: refused by the capacity check,
# where the layout once placed them at 0x20 and 0x21 without a word.
def test_pc_nics_past_slot_0x1f_are_refused_by_the_capacity_check():
    body = "".join(f"  team t{i} {{ persistent virtio user; transient hostdev 0000:{i + 1:02x}:00.1 }}\n"
                   for i in range(16))
    assert errors(vm(body, head=PC)) == [
        ("E0403", (1, 4),
         "VM `a` does not fit its guest PCI topology: the `pc` machine has 30 slots for NICs on pci.0")]


# --- libvirt's own placement (tests/oracle, recorded from libvirt 9.0's generator) --------------------

ORACLE = ROOT / "tests" / "oracle"


def libvirt_lines(case: str) -> list[str]:
    """The -netdev/-device arguments of libvirt's argv for tests/oracle/CASE.xml."""
    lines = (ORACLE / f"{case}.args").read_text().splitlines()
    assert lines[0] == "== 7.2.0: OK"
    args = [line.removesuffix(" \\") for line in lines[1:]]
    return [f"{arg} {value}" for arg, value in (a.split(" ", 1) for a in args if " " in a)
            if arg in ("-netdev", "-device")]


def teamc_lines(case: str) -> list[str]:
    import shlex

    from teamc.backends.qemu import qemu_command
    from teamc.pipeline import check_source, load

    graph, result = check_source(load(str(ORACLE / f"{case}.team"))[0])
    assert not result.failed
    (vm_layout,) = layout(graph)
    return [f"{group[0]} {shlex.quote(group[1])}" for group in qemu_command(vm_layout).groups()
            if group[0] in ("-netdev", "-device")]


@pytest.mark.parametrize("case", ["two-teams", "many-teams", "no-nics", "pinned-all", "pinned-bus",
                                  "pinned-bus-low", "pinned-pcie0", "multifunction", "pc-multifunction"])
def test_q35_layout_is_libvirts(case):
    """Root ports (count, spare, numbering), addresses, ids and multifunction as libvirt picks them for
    the same domain left without controllers and unpinned addresses."""
    assert teamc_lines(case) == libvirt_lines(case)


def test_transitional_standby_keeps_its_own_root_port():
    """libvirt puts a virtio-transitional NIC (a conventional PCI device to it) behind a pcie-pci-bridge,
    for a legacy driver's I/O port BAR. A failover standby gets nothing from that: VIRTIO_NET_F_STANDBY
    is feature bit 62, which only a modern (virtio 1.0) driver can negotiate, so teamc keeps the one
    port per NIC rule (README, "Layout (q35)"); tests/test_qemu.py starts it."""
    ours, libvirts = teamc_lines("transitional"), libvirt_lines("transitional")
    assert any('"driver":"pcie-pci-bridge"' in line for line in libvirts)
    assert not any("pcie-pci-bridge" in line for line in ours)
    standby = next(line for line in ours if "virtio-net-pci-transitional" in line)
    assert '"bus":"pci.1","addr":"0x0"' in standby
    # Everything but the bridge and where the standby sits is libvirt's: the same devices in the same order.
    assert len(ours) == len(libvirts) - 1
    # And libvirt runs exactly teamc's argv for teamc's domain, which pins every address.
    assert ours == libvirt_lines("transitional-pinned")
