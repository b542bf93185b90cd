"""Lower phase: AST -> IR graph (teamc.ir), plus value diagnostics.

Both surface forms, derived aliases, MACs and UUIDs, units, defaults, `allow`
and the duplicate-name/setting diagnostics, on small inline programs.
"""

import re

import pytest

from teamc.ir import PERSISTENT, TRANSIENT, PciAddress, nic_key, nics, partner, transients_of, vms
from teamc.lower import derive_mac, derive_uuid, lower
from teamc.parser import parse
from teamc.source import SourceFile

HOSTDEV = "0000:03:07.1"


def lowered(text: str):
    module, diags = parse(SourceFile("t.team", text))
    assert diags == [], [(d.code, d.message) for d in diags]
    return lower(module)


def clean(text: str):
    """The graph of a program that lowers without diagnostics."""
    result = lowered(text)
    assert result.diagnostics == [], [(d.code, d.span.line_col, d.message) for d in result.diagnostics]
    return result.graph


def summary(result) -> list[tuple]:
    return [(d.code, d.span.line_col, d.message) for d in result.diagnostics]


def the_vm(graph):
    (vm,) = vms(graph)
    return vm


def nic(graph, *key):
    return graph.nodes[nic_key(*key)]["nic"]


# --- the two surface forms lower to the same NICs -----------------------------------

TEAM_FORM = "vm a {\n  team up0 { persistent virtio bridge br0; transient hostdev 0000:03:07.1 }\n}"
EXPLICIT_FORM = ("vm a {\n"
                 "  nic ua-up0 { model virtio; source bridge br0; teaming persistent }\n"
                 "  nic vf0 { source hostdev 0000:03:07.1; teaming transient ua-up0 }\n"
                 "}")


def _essentials(graph):
    rows = []
    for _, spec in nics(graph):
        rows.append((spec.role, spec.alias, spec.mac, spec.mac_derived, spec.source_kind, spec.source_target,
                     spec.host_address, spec.model if spec.role == PERSISTENT else None))
    return rows


def test_team_and_explicit_forms_lower_alike():
    team, explicit = clean(TEAM_FORM), clean(EXPLICIT_FORM)
    mac = "52:54:00:4b:e7:f8"
    expected = [
        (PERSISTENT, "ua-up0", mac, True, "bridge", "br0", None, "virtio"),
        (TRANSIENT, None, mac, True, "hostdev", None, PciAddress(0, 3, 7, 1), None),
    ]
    assert _essentials(team) == expected
    assert _essentials(explicit) == expected


def test_team_form_keys_and_pairs_with_edge():
    graph = clean(TEAM_FORM)
    p, t = nic_key("a", "up0", PERSISTENT), nic_key("a", "up0", TRANSIENT)
    assert [key for key, _ in nics(graph)] == [p, t]
    assert partner(graph, t) == p
    assert partner(graph, p) is None
    assert transients_of(graph, p) == [t]
    assert graph.edges[t, p]["kind"] == "pairs-with"
    assert graph.edges[p, ("vm", "a")]["kind"] == "belongs-to"
    assert graph.edges[t, ("vm", "a")]["kind"] == "belongs-to"
    assert nic(graph, "a", "up0", TRANSIENT).pairs_with == "up0"
    assert nic(graph, "a", "up0", PERSISTENT).team == "up0"


def test_explicit_form_keys_and_pairs_with_edge():
    graph = clean(EXPLICIT_FORM)
    p, t = nic_key("a", "ua-up0"), nic_key("a", "vf0")
    assert [key for key, _ in nics(graph)] == [p, t]
    assert partner(graph, t) == p
    assert transients_of(graph, p) == [t]
    assert nic(graph, "a", "vf0").pairs_with == "ua-up0"
    assert nic(graph, "a", "vf0").pairs_with_span.text == "ua-up0"
    assert nic(graph, "a", "ua-up0").team is None


def test_explicit_transient_may_name_a_team_by_its_name():
    result = lowered("vm a {\n  team up0 { persistent virtio user; transient hostdev 0000:03:07.1 }\n"
                     "  nic vf9 { source hostdev 0000:03:07.2; teaming transient up0 }\n}")
    assert result.diagnostics == []
    assert partner(result.graph, nic_key("a", "vf9")) == nic_key("a", "up0", PERSISTENT)


def test_explicit_persistent_defaults_to_virtio_and_transient_has_no_model():
    graph = clean("vm a {\n  nic ua-up0 { source user; teaming persistent }\n"
                  "  nic vf0 { source hostdev 0000:03:07.1; teaming transient ua-up0 }\n}")
    assert nic(graph, "a", "ua-up0").model == "virtio"
    assert nic(graph, "a", "ua-up0").model_span is None
    assert nic(graph, "a", "vf0").model is None


def test_labels():
    team, explicit = clean(TEAM_FORM), clean(EXPLICIT_FORM)
    assert nic(team, "a", "up0", PERSISTENT).label == "the persistent NIC of team `up0`"
    assert nic(team, "a", "up0", TRANSIENT).label == "the transient NIC of team `up0`"
    assert nic(explicit, "a", "ua-up0").label == "persistent nic `ua-up0`"
    assert nic(explicit, "a", "vf0").label == "transient nic `vf0`"


def test_sources_and_options_are_lowered():
    graph = clean("vm a {\n"
                  "  team t1 { persistent virtio direct eth0 mode bridge { mtu 9000; boot 1 }\n"
                  "            transient hostdev 0000:3b:02.1 managed no { rom bar off; address 0000:05:00.0 } }\n"
                  "  team t2 { persistent virtio network net0 bridge virbr0\n"
                  "            transient network pool vf 0001:02:03.4 }\n"
                  "}")
    p1, t1 = nic(graph, "a", "t1", PERSISTENT), nic(graph, "a", "t1", TRANSIENT)
    assert (p1.source_kind, p1.source_target, p1.mode, p1.mtu, p1.boot) == ("direct", "eth0", "bridge", 9000, 1)
    assert (t1.host_address, t1.managed, t1.rom_bar, t1.guest_address) == (
        PciAddress(0, 0x3B, 2, 1), False, "off", PciAddress(0, 5, 0, 0))
    assert t1.host_address_span.text == "0000:3b:02.1"
    assert t1.guest_address_span.text == "0000:05:00.0"
    p2, t2 = nic(graph, "a", "t2", PERSISTENT), nic(graph, "a", "t2", TRANSIENT)
    assert (p2.source_kind, p2.source_target, p2.via_bridge) == ("network", "net0", "virbr0")
    assert (t2.source_kind, t2.source_target, t2.host_address) == ("network", "pool", PciAddress(1, 2, 3, 4))


# --- aliases ----------------------------------------------------------------------


def test_team_alias_is_derived_with_ua_prefix():
    graph = clean(TEAM_FORM)
    spec = nic(graph, "a", "up0", PERSISTENT)
    assert spec.alias == "ua-up0"
    assert spec.alias_span.text == "up0"
    assert nic(graph, "a", "up0", TRANSIENT).alias is None


def test_team_already_named_ua_keeps_its_name():
    graph = clean("vm a { team ua-x { persistent virtio user; transient hostdev 0000:03:07.1 } }")
    assert nic(graph, "a", "ua-x", PERSISTENT).alias == "ua-x"


def test_explicit_nic_alias_only_with_ua_prefix():
    graph = lowered("vm a { nic p { model virtio; source user; teaming persistent } }").graph
    assert nic(graph, "a", "p").alias is None  # checks report E0201


# --- MACs -------------------------------------------------------------------------


def test_derived_mac_is_deterministic_and_under_qemu_prefix():
    first = nic(clean(TEAM_FORM), "a", "up0", PERSISTENT).mac
    second = nic(clean(TEAM_FORM), "a", "up0", PERSISTENT).mac
    assert first == second == "52:54:00:4b:e7:f8" == derive_mac("a", "ua-up0")
    assert re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", first)


def test_derived_mac_is_shared_by_both_members():
    graph = clean(TEAM_FORM)
    p, t = nic(graph, "a", "up0", PERSISTENT), nic(graph, "a", "up0", TRANSIENT)
    assert p.mac == t.mac
    assert p.mac_derived is t.mac_derived is True
    assert p.mac_span is None and t.mac_span is None


def test_derived_macs_differ_between_teams_and_vms():
    graph = clean("vm a {\n"
                  "  team up0 { persistent virtio user; transient hostdev 0000:03:07.1 }\n"
                  "  team up1 { persistent virtio user; transient hostdev 0000:03:07.2 }\n"
                  "}\n"
                  "vm b {\n"
                  "  team up0 { persistent virtio user; transient hostdev 0000:03:07.3 }\n"
                  "}")
    macs = [nic(graph, vm, team, PERSISTENT).mac for vm, team in (("a", "up0"), ("a", "up1"), ("b", "up0"))]
    assert macs == ["52:54:00:4b:e7:f8", "52:54:00:96:ac:15", "52:54:00:b0:86:df"]


def test_given_mac_is_normalised_and_shared():
    graph = clean("vm a { team up0 { mac 52:54:00:AA:bb:0C; persistent virtio user; transient hostdev 0000:03:07.1 } }")
    p, t = nic(graph, "a", "up0", PERSISTENT), nic(graph, "a", "up0", TRANSIENT)
    assert p.mac == t.mac == "52:54:00:aa:bb:0c"
    assert p.mac_derived is t.mac_derived is False
    assert p.mac_span.text == t.mac_span.text == "52:54:00:AA:bb:0C"


@pytest.mark.parametrize("side", ["persistent", "transient"])
def test_explicit_form_copies_the_one_given_mac_to_the_partner(side):
    pers_mac = "mac 52:54:00:01:02:03; " if side == "persistent" else ""
    vf_mac = "mac 52:54:00:01:02:03; " if side == "transient" else ""
    graph = clean("vm a {\n"
                  f"  nic ua-up0 {{ model virtio; source user; {pers_mac}teaming persistent }}\n"
                  f"  nic vf0 {{ source hostdev 0000:03:07.1; {vf_mac}teaming transient ua-up0 }}\n"
                  "}")
    p, t = nic(graph, "a", "ua-up0"), nic(graph, "a", "vf0")
    assert p.mac == t.mac == "52:54:00:01:02:03"
    assert (p.mac_derived, t.mac_derived) == (False, False)
    # Only the NIC that states the MAC has its span.
    assert (p.mac_span is not None, t.mac_span is not None) == (side == "persistent", side == "transient")


def test_explicit_transient_copies_mac_regardless_of_order():
    graph = clean("vm a {\n"
                  "  nic vf0 { source hostdev 0000:03:07.1; teaming transient ua-up0 }\n"
                  "  nic ua-up0 { model virtio; source user; mac 52:54:00:01:02:03; teaming persistent }\n"
                  "}")
    assert nic(graph, "a", "vf0").mac == "52:54:00:01:02:03"


def test_bad_mac_is_reported_and_not_derived():
    result = lowered("vm a { team up0 { mac 01:00:00:00:00:00; persistent virtio user; "
                     "transient hostdev 0000:03:07.1 } }")
    assert summary(result) == [("E0203", (1, 23), ("MAC `01:00:00:00:00:00` is a multicast address "
                                                    "(the low bit of the first octet is set)"))]
    assert nic(result.graph, "a", "up0", PERSISTENT).mac is None


@pytest.mark.parametrize(
    ("mac", "message"),
    [
        ("52:54:00:00:00", "`52:54:00:00:00` is not a MAC address"),
        ("ff:ff:ff:ff:ff:ff", "MAC `ff:ff:ff:ff:ff:ff` is the broadcast address"),
        ("00:00:00:00:00:00", "MAC `00:00:00:00:00:00` is all zeros"),
    ],
)
def test_bad_macs(mac, message):
    result = lowered(f"vm a {{ team up0 {{ mac {mac}; persistent virtio user; transient hostdev 0000:03:07.1 }} }}")
    assert summary(result) == [("E0203", (1, 23), message)]


# --- UUID -------------------------------------------------------------------------


def test_uuid_derived_deterministically_when_missing():
    assert the_vm(clean("vm a {}")).uuid == "fd9c31ce-f143-56ca-86a7-1941c5c41ffc" == derive_uuid("a")
    assert the_vm(clean("vm web {}")).uuid == "f3a3da7b-9337-5bef-a06a-e88dbaea08db"


@pytest.mark.parametrize("name", ["a", "web", "vm000042", "x" * 200, "ü-ñ.+_"])
def test_derived_uuid_is_the_standard_uuid5(name):
    import uuid

    assert derive_uuid(name) == str(uuid.uuid5(uuid.UUID("6f1c1f4e-2a57-4c1e-9d8e-7465616d6301"), name))


@pytest.mark.parametrize("given", ["C7A5FDBD-EDAF-9455-926A-D65C16DB1809", "c7a5fdbdedaf9455926ad65c16db1809",
                                   "c7a5fdbd-edaf-9455-926a-d65c16db1809"])
def test_uuid_normalised_when_given(given):
    assert the_vm(clean(f"vm a {{ uuid {given} }}")).uuid == "c7a5fdbd-edaf-9455-926a-d65c16db1809"


def test_bad_uuid():
    result = lowered("vm a { uuid nope }")
    assert summary(result) == [("E0205", (1, 13), "`nope` is not a UUID")]
    assert the_vm(result.graph).uuid == derive_uuid("a")


# --- memory -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory", "kib"),
    [("214 MiB", 219136), ("2 GiB", 2097152), ("1 MiB", 1024), ("2 GB", 1953125), ("4096 KiB", 4096),
     ("1 T", 1024**3), ("16 TiB", 16 * 1024**3)],
)
def test_memory_units(memory, kib):
    assert the_vm(clean(f"vm a {{ memory {memory} }}")).memory_kib == kib


def test_memory_without_unit_is_e0205():
    result = lowered("vm a {\n  memory 2\n}")
    assert summary(result) == [("E0205", (2, 10), "memory needs a unit")]
    assert result.diagnostics[0].help == "write e.g. `memory 2 MiB`"
    assert the_vm(result.graph).memory_kib == 1024 * 1024  # the default stays


@pytest.mark.parametrize(
    ("memory", "where", "message"),
    [
        ("1 B", (1, 8), "memory must be between 1 MiB and 16 TiB"),
        ("17 TiB", (1, 8), "memory must be between 1 MiB and 16 TiB"),
        ("1.5 GiB", (1, 15), "memory must be a whole number from 1 to 1125899906842624, not `1.5`"),
        ("0 MiB", (1, 15), "memory must be a whole number from 1 to 1125899906842624, not `0`"),
    ],
)
def test_memory_out_of_range(memory, where, message):
    assert summary(lowered(f"vm a {{ memory {memory} }}")) == [("E0205", where, message)]


# --- defaults and settings --------------------------------------------------------


def test_defaults():
    vm = the_vm(clean("vm a {}"))
    assert (vm.name, vm.machine, vm.machine_family, vm.arch, vm.emulator, vm.accel, vm.vcpus, vm.memory_kib) == (
        "a", "q35", "q35", "x86_64", "/usr/bin/qemu-system-x86_64", "kvm", 1, 1024 * 1024)
    assert vm.allowed == frozenset()
    assert vm.machine_span is None
    assert vm.name_span.text == "a"
    assert vm.span.text == "vm a {}"


def test_i686_uses_qemu_system_i386():
    vm = the_vm(clean("vm a { arch i686 }"))
    assert (vm.arch, vm.emulator) == ("i686", "/usr/bin/qemu-system-i386")


def test_explicit_emulator_wins_over_arch():
    vm = the_vm(clean("vm a { arch i686; emulator /opt/qemu/bin/qemu; accel tcg; vcpus 8 }"))
    assert (vm.emulator, vm.accel, vm.vcpus) == ("/opt/qemu/bin/qemu", "tcg", 8)


@pytest.mark.parametrize(("machine", "family"), [("q35", "q35"), ("pc-q35-7.2", "q35"), ("pc", "pc"),
                                                 ("pc-i440fx-7.2", "pc")])
def test_machine_family(machine, family):
    vm = the_vm(clean(f"vm a {{ machine {machine} }}"))
    assert (vm.machine, vm.machine_family, vm.machine_span.text) == (machine, family, machine)


def test_unsupported_machine_is_e0405():
    result = lowered("vm a { machine microvm }")
    assert summary(result) == [("E0405", (1, 16), "machine `microvm` cannot host a failover team")]


def test_bad_settings():
    result = lowered("vm a { arch arm; accel xen; vcpus 0; emulator qemu }")
    assert sorted(summary(result)) == [
        ("E0205", (1, 13), "`arm` is not a valid architecture"),
        ("E0205", (1, 24), "`xen` is not a valid accelerator"),
        ("E0205", (1, 35), "vcpus must be a whole number from 1 to 4096, not `0`"),
        ("E0205", (1, 47), "emulator `qemu` is not an absolute path"),
    ]


def test_boot_order_takes_what_qemu_takes():
    # QEMU's bootindex is an int32; libvirt writes any order as given.
    text = "vm a {{ team x {{ persistent virtio user {{ boot {} }}; transient hostdev 0000:03:07.1 }} }}"
    assert nic(clean(text.format(2147483647)), "a", "x", PERSISTENT).boot == 2147483647
    assert summary(lowered(text.format(2147483648))) == [
        ("E0205", (1, 47), "boot order must be a whole number from 1 to 2147483647, not `2147483648`")]


def test_machine_types_are_qemu_72s():
    """Exactly the q35 and i440fx types (and aliases) `qemu-system-x86_64 -machine help` lists."""
    import subprocess

    from teamc.lower import QEMU_MACHINES

    listing = subprocess.run(["qemu-system-x86_64", "-machine", "help"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    qemu = {line.split()[0] for line in listing.splitlines()[1:] if line.startswith(("pc", "q35"))}
    assert QEMU_MACHINES == qemu
    for machine in ("pc-q35-8.0", "pc-q35-2.3", "pc-i440fx-1.3"):
        assert summary(lowered(f"vm a {{ machine {machine} }}")) == [
            ("E0405", (1, 16), f"machine `{machine}` is not a machine type of QEMU 7.2")]


@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_vcpus_above_255_are_e0205(machine):
    # libvirt 9.0 with QEMU 7.2 (tests/oracle/vcpus-*.out): q35 takes 288, but more than 255 need an
    # IOMMU in extended interrupt mode; i440fx takes 255.
    text = f"vm a {{ machine {machine}; vcpus 256 }}"
    assert summary(lowered(text)) == [
        ("E0205", (1, text.index("256") + 1),
         f"256 vCPUs are more than the `{machine}` machine takes here: at most 255")]
    assert the_vm(clean(f"vm a {{ machine {machine}; vcpus 255 }}")).vcpus == 255


def test_allow_is_recorded():
    vm = the_vm(clean("vm a {\n  machine pc\n  allow pc-machine-team\n  allow W0502\n}"))
    assert vm.allowed == frozenset({"E0401", "W0502"})
    assert [s.text for s in vm.allow_spans] == ["allow pc-machine-team", "allow W0502"]


def test_allow_of_a_code_that_is_not_allowable():
    result = lowered("vm a { allow mac-mismatch; allow nonsense }")
    assert summary(result) == [("E0205", (1, 14), "`mac-mismatch` cannot be allowed"),
                               ("E0205", (1, 34), "`nonsense` cannot be allowed")]
    assert the_vm(result.graph).allowed == frozenset()


# --- duplicates ---------------------------------------------------------------------


def test_duplicate_vm_is_e0101():
    result = lowered("vm a { vcpus 2 }\nvm b {}\nvm a { vcpus 4 }")
    (d,) = result.diagnostics
    assert (d.code, d.span.line_col, d.message) == ("E0101", (3, 4), "VM `a` is defined twice")
    assert [(lab.span.line_col, lab.message) for lab in d.labels] == [((1, 4), "first defined here")]
    # The first definition is kept.
    assert [vm.name for vm in vms(result.graph)] == ["a", "b"]
    assert vms(result.graph)[0].vcpus == 2


def test_duplicate_team_is_e0102():
    result = lowered("vm a {\n"
                     "  team x { persistent virtio user; transient hostdev 0000:03:07.1 }\n"
                     "  team x { persistent virtio user; transient hostdev 0000:03:07.2 }\n"
                     "}")
    (d,) = result.diagnostics
    assert (d.code, d.span.line_col, d.message) == ("E0102", (3, 8), "`x` is defined twice in VM `a`")
    assert [(lab.span.line_col, lab.message) for lab in d.labels] == [((2, 8), "first defined here")]
    assert nic(result.graph, "a", "x", TRANSIENT).host_address == PciAddress(0, 3, 7, 1)


def test_duplicate_nic_is_e0102():
    result = lowered("vm a {\n"
                     "  nic ua-x { model virtio; source user; teaming persistent }\n"
                     "  nic vf { source hostdev 0000:03:07.1; teaming transient ua-x }\n"
                     "  nic vf { source hostdev 0000:03:07.2; teaming transient ua-x }\n"
                     "}")
    (d,) = result.diagnostics
    assert (d.code, d.span.line_col, d.message) == ("E0102", (4, 7), "`vf` is defined twice in VM `a`")
    assert [(lab.span.line_col, lab.message) for lab in d.labels] == [((3, 7), "first defined here")]


def test_team_and_nic_with_the_same_alias_is_e0102():
    result = lowered("vm a {\n"
                     "  team x { persistent virtio user; transient hostdev 0000:03:07.1 }\n"
                     "  nic ua-x { model virtio; source user; teaming persistent }\n"
                     "}")
    (d,) = result.diagnostics
    assert (d.code, d.span.line_col, d.message) == ("E0102", (3, 7), "alias `ua-x` is used twice in VM `a`")
    assert [(lab.span.line_col, lab.message) for lab in d.labels] == [((2, 8), "also used here")]


def test_same_names_in_two_vms_are_fine():
    clean("vm a { team x { persistent virtio user; transient hostdev 0000:03:07.1 } }\n"
          "vm b { team x { persistent virtio user; transient hostdev 0000:03:07.2 } }")


def test_duplicate_setting_is_e0103():
    result = lowered("vm a {\n  memory 2 GiB\n  vcpus 2\n  memory 3 GiB\n}")
    (d,) = result.diagnostics
    assert (d.code, d.span.line_col, d.message) == ("E0103", (4, 3), "setting `memory` is given twice")
    assert [(lab.span.line_col, lab.message, lab.span.text) for lab in d.labels] == [
        ((2, 3), "first given here", "memory 2 GiB")]
    assert the_vm(result.graph).memory_kib == 2 * 1024 * 1024  # the first one counts


def test_several_allows_are_not_duplicates():
    clean("vm a { allow pc-machine-team; allow hostdev-mac-preset }")


def test_duplicate_statements_in_a_team_and_options():
    result = lowered("vm a { team x {\n"
                     "  mac 52:54:00:00:00:01\n"
                     "  mac 52:54:00:00:00:02\n"
                     "  persistent virtio user { mtu 1500; mtu 9000 }\n"
                     "  transient hostdev 0000:03:07.1\n"
                     "} }")
    got = [(d.code, d.span.line_col, d.message, [(lab.span.line_col, lab.message) for lab in d.labels])
           for d in result.diagnostics]
    assert got == [
        ("E0103", (3, 3), "statement `mac` is given twice", [((2, 3), "first given here")]),
        ("E0103", (4, 38), "option `mtu` is given twice", [((4, 28), "first given here")]),
    ]
    assert nic(result.graph, "a", "x", PERSISTENT).mac == "52:54:00:00:00:01"
    assert nic(result.graph, "a", "x", PERSISTENT).mtu == 1500


def test_duplicate_statement_in_a_nic():
    result = lowered("vm a { nic ua-x { model virtio; source user; source user; teaming persistent } }")
    assert [(d.code, d.span.line_col, d.message) for d in result.diagnostics] == [
        ("E0103", (1, 46), "statement `source` is given twice")]


# --- missing statements and roles ---------------------------------------------------


def test_team_without_members_is_e0104():
    result = lowered("vm a { team x { } }")
    assert summary(result) == [("E0104", (1, 13), "team `x` has no `persistent` NIC"),
                               ("E0104", (1, 13), "team `x` has no `transient` NIC")]


def test_nic_without_source_is_e0104():
    result = lowered("vm a { nic ua-x { model virtio; teaming persistent } }")
    assert summary(result) == [("E0104", (1, 12), "nic `ua-x` has no `source`")]
    assert nics(result.graph) == []


def test_nic_without_teaming_is_e0311():
    result = lowered("vm a { nic ua-x { model virtio; source user } }")
    assert summary(result) == [("E0311", (1, 12), "nic `ua-x` has no `teaming` statement")]
    assert nic(result.graph, "a", "ua-x").role is None


def test_nic_with_both_roles_is_e0307():
    result = lowered("vm a { nic ua-x { source user; teaming persistent; teaming transient y } }")
    (d,) = result.diagnostics
    assert (d.code, d.span.line_col, d.message) == (
        "E0307", (1, 52), "nic `ua-x` is declared both persistent and transient")
    assert [(lab.span.text, lab.message) for lab in d.labels] == [("teaming persistent", "declared persistent here")]


def test_alias_characters_are_e0202():
    result = lowered('vm a { team "x y" { persistent virtio user; transient hostdev 0000:03:07.1 } }')
    assert summary(result) == [
        ("E0202", (1, 13), "alias `ua-x y` has characters libvirt does not keep in an alias: ' '")]


def test_a_dot_in_an_alias_is_e0202():
    # libvirt's USER_ALIAS_CHARS has no `.`: it drops `ua-wan.v10` and the VF's persistent= dangles.
    result = lowered("vm a {\n team wan.v10 { persistent virtio user; transient hostdev 0000:03:07.1 }\n"
                     " nic ua-lan.v20 { source user; teaming persistent }\n"
                     " nic vf.1 { source hostdev 0000:03:07.2; teaming transient ua-lan.v20 }\n}")
    assert summary(result) == [
        ("E0202", (2, 7), "alias `ua-wan.v10` has characters libvirt does not keep in an alias: '.'"),
        ("E0202", (3, 6), "alias `ua-lan.v20` has characters libvirt does not keep in an alias: '.'"),
    ]


def test_a_nic_name_that_is_no_alias_may_have_a_dot():
    clean("vm a {\n nic ua-wan_v10 { source user; teaming persistent }\n"
          " nic vf.1 { source hostdev 0000:03:07.2; teaming transient ua-wan_v10 }\n}")


@pytest.mark.parametrize(
    ("address", "message"),
    [("zz", "`zz` is not a PCI address"),
     ("0000:00:20.0", "PCI slot 0x20 is out of range in `0000:00:20.0`"),
     ("0000:00:01.8", "PCI function 0x8 is out of range in `0000:00:01.8`")],
)
def test_bad_guest_address_is_e0204_in_lowering(address, message):
    result = lowered(f"vm a {{ team x {{ persistent virtio user {{ address {address} }}; "
                     f"transient hostdev {HOSTDEV} }} }}")
    assert summary(result) == [("E0204", (1, 50), message)]


# `rom bar|file|enabled` without its value once reached lowering, which crashed on the
# missing value (exit 3); the grammar requires the value, so it is a syntax error.
@pytest.mark.parametrize("option", ["rom bar", "rom enabled", "rom file"])
def test_rom_option_without_value_is_a_diagnostic_not_a_crash(option):
    text = f"vm a {{ team x {{ persistent virtio user; transient hostdev 0000:03:07.1 {{ {option} }} }} }}"
    module, diags = parse(SourceFile("t.team", text))
    assert module is None
    assert [(d.code, d.message, d.span.text) for d in diags] == [("E0001", "unexpected `}`; expected a value", "}")]
