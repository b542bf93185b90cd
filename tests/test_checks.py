"""Check phase: one minimal program per graph rule of compiler/checks.py that
triggers it, and a near-identical one that does not.

Every program here lowers cleanly (no lowering diagnostics), so the
diagnostics asserted are exactly those of `check(graph)`, counted exactly.
"""

import pytest

from teamc.checks import RULES, apply_allow, check, check_layouts
from teamc.diagnostics import Severity
from teamc.lower import lower
from teamc.parser import parse
from teamc.source import SourceFile

P = "nic ua-p { model virtio; source user; teaming persistent }"


def graph_of(text: str):
    module, diags = parse(SourceFile("t.team", text))
    assert diags == [], [(d.code, d.message) for d in diags]
    result = lower(module)
    assert result.diagnostics == [], [(d.code, d.span.line_col, d.message) for d in result.diagnostics]
    return result.graph


def diagnostics(text: str):
    return check(graph_of(text))


def codes(text: str) -> list[tuple[str, tuple[int, int]]]:
    """(code, line:col of the primary span) of every check diagnostic, in rule order."""
    return [(d.code, d.span.line_col) for d in diagnostics(text)]


def one(text: str, code: str):
    found = diagnostics(text)
    assert [d.code for d in found] == [code], [(d.code, d.message) for d in found]
    return found[0]


def labels(d) -> list[tuple[tuple[int, int], str]]:
    return [(lab.span.line_col, lab.message) for lab in d.labels]


def vm(*lines: str, name: str = "a") -> str:
    return f"vm {name} {{\n" + "".join(f"  {line}\n" for line in lines) + "}\n"


def team(name: str = "x", pers: str = "virtio user", trans: str = "hostdev 0000:03:07.1", mac: str = "") -> str:
    mac_stmt = f"mac {mac}; " if mac else ""
    return f"team {name} {{ {mac_stmt}persistent {pers}; transient {trans} }}"


def test_every_rule_is_covered_here():
    # If a rule is added to checks.py, add a trigger/non-trigger pair for it below.
    assert [r.__name__ for r in RULES] == [
        "persistent_alias", "persistent_is_virtio", "transient_is_hostdev", "options_apply", "transient_targets",
        "teaming_cycles", "one_transient_per_persistent", "persistent_has_transient", "mac_mismatch",
        "pair_network", "mac_unique", "vf_unique", "hostdev_warnings", "fw_cfg_rom_unique", "boot_order_unique",
        "machine_hosts_team", "guest_placement",
    ]  # and the capacity check over the layout, check_layouts (E0403 below)


def test_valid_programs_have_no_diagnostics():
    assert diagnostics(vm(team("x"), team("y", trans="hostdev 0000:03:07.2"))) == []
    assert diagnostics(vm(P, "nic vf { source hostdev 0000:03:07.1; teaming transient ua-p }")) == []


# --- E0201 persistent_alias --------------------------------------------------------


def test_e0201_persistent_without_ua_alias():
    d = one(vm("nic p { model virtio; source user; teaming persistent }",
               "nic vf { source hostdev 0000:03:07.1; teaming transient p }"), "E0201")
    assert (d.span.line_col, d.span.text) == ((2, 7), "p")
    assert d.message == "persistent nic `p` needs an alias that starts with `ua-`"


def test_e0201_not_with_ua_alias():
    assert codes(vm(P, "nic vf { source hostdev 0000:03:07.1; teaming transient ua-p }")) == []


# --- E0301 persistent_is_virtio ----------------------------------------------------


def test_e0301_persistent_model_not_virtio():
    d = one(vm(team(pers="e1000e user")), "E0301")
    assert (d.span.line_col, d.span.text) == ((2, 23), "e1000e")
    assert d.message == "the persistent NIC of team `x` must have model virtio, not `e1000e`"


@pytest.mark.parametrize("model", ["virtio", "virtio-transitional", "virtio-non-transitional"])
def test_e0301_not_with_virtio_models(model):
    assert codes(vm(team(pers=f"{model} user"))) == []


def test_e0301_persistent_is_a_hostdev():
    d = one(vm(team(pers="virtio hostdev 0000:03:07.2")), "E0301")
    assert (d.span.line_col, d.span.text) == ((2, 30), "hostdev 0000:03:07.2")
    assert d.message == "the persistent NIC of team `x` is a hostdev, not a virtio interface"


def test_e0301_explicit_model():
    d = one(vm("nic ua-p { model rtl8139; source user; teaming persistent }",
               "nic vf { source hostdev 0000:03:07.1; teaming transient ua-p }"), "E0301")
    assert (d.span.text, d.message) == ("rtl8139", "persistent nic `ua-p` must have model virtio, not `rtl8139`")


# --- E0302 transient_is_hostdev ----------------------------------------------------


def test_e0302_transient_on_a_bridge():
    d = one(vm(team(trans="bridge br0")), "E0302")
    assert (d.span.line_col, d.span.text) == ((2, 46), "bridge br0")
    assert d.message == "the transient NIC of team `x` must be a hostdev, not a `bridge` interface"


@pytest.mark.parametrize("trans", ["hostdev 0000:03:07.1", "network pool vf 0000:03:07.1", "network pool"])
def test_e0302_not_for_hostdev_or_pool(trans):
    assert codes(vm(team(trans=trans))) == []


def test_e0302_pci_hostdev_is_hostdev_form():
    assert [d.code for d in diagnostics(vm(team(trans="pci-hostdev 0000:03:07.1")))] == ["W0502"]


# --- E0105 options_apply -----------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "good", "where", "message"),
    [
        (team(pers="virtio user { managed }"), team(trans="hostdev 0000:03:07.1 managed"), "managed",
         "`managed` applies to host devices, not to a `user` source"),
        (team(pers="virtio network n vf 0000:03:07.7"), team(pers="virtio network n bridge br0"), "0000:03:07.7",
         "`vf` names a VF, but this network is the persistent (virtio) side"),
        (team(trans="network pool bridge br0"), team(trans="network pool vf 0000:03:07.1"),
         "network pool bridge br0", "`bridge` applies to the persistent side's network"),
        (team(trans="hostdev 0000:03:07.1 { mtu 1500 }"), team(pers="virtio bridge br0 { mtu 1500 }"), "mtu 1500",
         "`mtu` cannot be set on the VF"),
        # libvirt 9.0's QEMU driver: "setting MTU on interface type user is not supported yet".
        (team(pers="virtio user { mtu 9000 }"), team(pers="virtio network default { mtu 9000 }"), "mtu 9000",
         "`mtu` cannot be set on a `user` interface"),
        (team(pers="virtio direct eth0 mode bridge { mtu 9000 }"), team(pers="virtio direct eth0 mode bridge"),
         "mtu 9000", "`mtu` cannot be set on a `direct` interface"),
        (team(pers="virtio user { rom enabled no; rom bar on }"), team(pers="virtio user { rom enabled no }"),
         "rom bar on", "`rom bar` cannot be set together with `rom enabled no`"),
        # QEMU hot-plugs the VF: "Hot-plugged device without ROM bar can't have an option ROM".
        (team(trans="hostdev 0000:03:07.1 { rom bar off; rom file /r.rom }"),
         team(trans="hostdev 0000:03:07.1 { rom bar off }"), "rom file /r.rom",
         "`rom file` cannot be loaded with `rom bar off` on the VF"),
    ],
    ids=["managed-on-user", "vf-on-persistent-network", "bridge-on-transient-network", "mtu-on-vf", "mtu-on-user",
         "mtu-on-direct", "rom-bar-on-disabled-rom", "rom-file-without-bar-on-vf"],
)
def test_e0105_option_not_allowed(bad, good, where, message):
    d = one(vm(bad), "E0105")
    assert (d.span.text, d.message) == (where, message)
    assert codes(vm(good)) == []


def test_e0105_model_on_a_plain_pci_hostdev():
    text = vm(P, "nic vf { model virtio; source pci-hostdev 0000:03:07.1; teaming transient ua-p }")
    found = diagnostics(text)
    assert [(d.code, d.span.text, d.message) for d in found] == [
        ("E0105", "virtio", "a plain PCI hostdev has no `model`"),
        ("W0502", "pci-hostdev 0000:03:07.1",
         "transient nic `vf` is a plain <hostdev>: libvirt will not set the VF's MAC"),
    ]
    # The same NIC as a hostdev interface may carry a model.
    assert codes(vm(P, "nic vf { model virtio; source hostdev 0000:03:07.1; teaming transient ua-p }")) == []


# --- E0106 boot_order_unique -------------------------------------------------------


def test_e0106_boot_order_given_twice():
    d = one(vm(team("x", pers="virtio bridge br0 { boot 1 }"),
               team("y", pers="virtio bridge br0 { boot 1 }", trans="hostdev 0000:03:07.2"),
               team("z", pers="virtio bridge br0 { boot 1 }", trans="hostdev 0000:03:07.3")), "E0106")
    assert (d.span.line_col, d.message) == ((3, 43), "boot order 1 is given to 3 NICs of VM `a`")
    assert labels(d) == [((2, 43), "the persistent NIC of team `x`"), ((4, 43), "the persistent NIC of team `z`")]


def test_e0106_not_for_distinct_orders_or_other_vms():
    assert codes(vm(team("x", pers="virtio bridge br0 { boot 1 }"),
                    team("y", pers="virtio bridge br0 { boot 2 }", trans="hostdev 0000:03:07.2"))) == []
    assert codes(vm(team("x", pers="virtio bridge br0 { boot 1 }")) + vm(
        team("y", pers="virtio bridge br0 { boot 1 }", trans="hostdev 0000:03:07.2"), name="b")) == []


# --- E0107 fw_cfg_rom_unique --------------------------------------------------------


def test_e0107_rom_bar_off_on_two_virtio_nics():
    d = one(vm(team("x", pers="virtio user { rom bar off }"),
               team("y", pers="virtio-transitional user { rom bar off }", trans="hostdev 0000:03:07.2")), "E0107")
    assert (d.span.text, d.message) == (
        "rom bar off", "2 NICs of VM `a` put the option ROM `efi-virtio.rom` into fw_cfg")
    assert labels(d) == [((2, 37), "the persistent NIC of team `x`")]
    # Named ROM files clash by their file name, wherever they are.
    assert [c for c, _ in codes(vm(team("x", pers="virtio user { rom bar off; rom file /a/pxe.rom }"), team(
        "y", pers="virtio user { rom bar off; rom file /b/pxe.rom }", trans="hostdev 0000:03:07.2")))] == ["E0107"]


def test_e0107_not_with_one_fw_cfg_rom():
    assert codes(vm(team("x", pers="virtio user { rom bar off }"),
                    team("y", pers="virtio user { rom enabled no }", trans="hostdev 0000:03:07.2"),
                    team("z", pers="virtio user { rom bar off; rom file /r/other.rom }", trans="hostdev 0000:03:07.3"),
                    team("w", pers="virtio user", trans="hostdev 0000:03:07.4 { rom bar off }"))) == []


# --- E0303 / E0304 transient_targets ------------------------------------------------


def test_e0303_target_missing():
    d = one(vm(P, "nic vf { source hostdev 0000:03:07.1; teaming transient ua-q }",
               "nic vf2 { source hostdev 0000:03:07.2; teaming transient ua-p }"), "E0303")
    assert (d.span.line_col, d.span.text) == ((3, 59), "ua-q")
    assert d.message == "transient nic `vf` names `ua-q`, which is not a NIC of VM `a`"


def test_e0303_not_when_the_target_exists():
    assert codes(vm(P, "nic vf { source hostdev 0000:03:07.1; teaming transient ua-p }")) == []


def test_e0303_target_in_another_vm():
    text = vm(P, "nic vf0 { source hostdev 0000:03:07.1; teaming transient ua-p }") + vm(
        "nic vf { source hostdev 0000:03:07.2; teaming transient ua-p }", name="b")
    d = one(text, "E0303")
    assert (d.span.line_col, d.message) == ((6, 59), "transient nic `vf` names `ua-p`, which is not a NIC of VM `b`")


def test_e0304_transient_names_a_transient():
    text = vm(P, "nic vf1 { source hostdev 0000:03:07.1; teaming transient vf2 }",
              "nic vf2 { source hostdev 0000:03:07.2; teaming transient ua-p }")
    d = one(text, "E0304")
    assert (d.span.line_col, d.span.text) == ((3, 60), "vf2")
    assert d.message == "transient nic `vf1` names transient nic `vf2`, which is itself transient"
    assert [(lab.span.text, lab.message) for lab in d.labels] == [("teaming transient ua-p", "declared transient here")]


def test_e0304_not_when_naming_the_persistent():
    text = vm(P, "nic vf1 { source hostdev 0000:03:07.1; teaming transient ua-p }",
              "nic ua-q { model virtio; source user; teaming persistent }",
              "nic vf2 { source hostdev 0000:03:07.2; teaming transient ua-q }")
    assert codes(text) == []


def test_e0304_names_a_team_transient_by_its_team_name_resolves_to_the_persistent():
    # `teaming transient x` names team x, whose persistent is the target: no E0304,
    # but team x now has two transients.
    text = vm(team("x"), "nic vf { source hostdev 0000:03:07.2; teaming transient x }")
    assert [d.code for d in diagnostics(text)] == ["E0306"]


# --- E0305 teaming_cycles -----------------------------------------------------------


def test_e0305_two_cycle_reported_once():
    text = vm("nic v1 { source hostdev 0000:03:07.1; teaming transient v2 }",
              "nic v2 { source hostdev 0000:03:07.2; teaming transient v1 }")
    d = one(text, "E0305")  # once, and no E0304 for its members
    assert (d.span.line_col, d.span.text) == ((2, 59), "v2")
    assert d.message == ("transients name each other in a loop: "
                         "transient nic `v1` -> transient nic `v2` -> transient nic `v1`")
    assert labels(d) == [((3, 59), "transient nic `v2` names `v1`")]


def test_e0305_self_reference():
    d = one(vm("nic v1 { source hostdev 0000:03:07.1; teaming transient v1 }"), "E0305")
    assert (d.span.line_col, d.span.text) == ((2, 59), "v1")
    assert d.message == "transient nic `v1` names itself as its persistent partner"
    assert d.labels == ()


def test_e0305_three_cycle():
    text = vm("nic v1 { source hostdev 0000:03:07.1; teaming transient v2 }",
              "nic v2 { source hostdev 0000:03:07.2; teaming transient v3 }",
              "nic v3 { source hostdev 0000:03:07.3; teaming transient v1 }")
    d = one(text, "E0305")
    assert d.span.line_col == (2, 59)
    assert d.message == ("transients name each other in a loop: transient nic `v1` -> transient nic `v2` -> "
                         "transient nic `v3` -> transient nic `v1`")
    assert labels(d) == [((3, 59), "transient nic `v2` names `v3`"), ((4, 59), "transient nic `v3` names `v1`")]


def test_e0305_cycle_and_self_reference_are_separate():
    text = vm("nic v1 { source hostdev 0000:03:07.1; teaming transient v2 }",
              "nic v2 { source hostdev 0000:03:07.2; teaming transient v1 }",
              "nic v3 { source hostdev 0000:03:07.3; teaming transient v3 }")
    assert sorted(codes(text)) == [("E0305", (2, 59)), ("E0305", (4, 59))]


def test_e0304_for_a_transient_pointing_into_a_cycle():
    text = vm("nic v1 { source hostdev 0000:03:07.1; teaming transient v2 }",
              "nic v2 { source hostdev 0000:03:07.2; teaming transient v1 }",
              "nic v3 { source hostdev 0000:03:07.3; teaming transient v1 }")
    assert codes(text) == [("E0304", (4, 59)), ("E0305", (2, 59))]


def test_e0305_not_without_a_loop():
    text = vm(P, "nic v1 { source hostdev 0000:03:07.1; teaming transient ua-p }")
    assert codes(text) == []


# --- E0306 one_transient_per_persistent ---------------------------------------------


def test_e0306_two_transients_on_one_persistent():
    text = vm(P, "nic v1 { source hostdev 0000:03:07.1; teaming transient ua-p }",
              "nic v2 { source hostdev 0000:03:07.2; teaming transient ua-p }")
    d = one(text, "E0306")
    assert (d.span.line_col, d.span.text) == ((4, 59), "ua-p")
    assert d.message == "2 transients name persistent nic `ua-p`"
    assert labels(d) == [((3, 59), "transient nic `v1` names it here"), ((2, 7), "the persistent NIC")]


def test_e0306_three_transients():
    text = vm(P, "nic v1 { source hostdev 0000:03:07.1; teaming transient ua-p }",
              "nic v2 { source hostdev 0000:03:07.2; teaming transient ua-p }",
              "nic v3 { source hostdev 0000:03:07.3; teaming transient ua-p }")
    d = one(text, "E0306")
    assert d.message == "3 transients name persistent nic `ua-p`"
    assert labels(d) == [((3, 59), "transient nic `v1` names it here"), ((5, 59), "transient nic `v3` names it here"),
                         ((2, 7), "the persistent NIC")]


def test_e0306_not_with_one_transient():
    assert codes(vm(P, "nic v1 { source hostdev 0000:03:07.1; teaming transient ua-p }")) == []


# --- W0501 persistent_has_transient -------------------------------------------------


def test_w0501_persistent_alone():
    d = one(vm(P), "W0501")
    assert (d.span.line_col, d.message) == ((2, 7), "persistent nic `ua-p` has no transient partner")
    assert d.severity is Severity.WARNING


def test_w0501_not_with_a_partner():
    assert codes(vm(P, "nic vf { source hostdev 0000:03:07.1; teaming transient ua-p }")) == []


# --- E0308 mac_mismatch -------------------------------------------------------------


def test_e0308_both_macs_given_and_different():
    text = vm("nic ua-p { model virtio; source user; mac 52:54:00:00:00:01; teaming persistent }",
              "nic vf { source hostdev 0000:03:07.1; mac 52:54:00:00:00:02; teaming transient ua-p }")
    d = one(text, "E0308")
    assert (d.span.line_col, d.span.text) == ((3, 45), "52:54:00:00:00:02")
    assert d.message == ("transient nic `vf` has MAC 52:54:00:00:00:02 but its partner persistent nic `ua-p` "
                         "has 52:54:00:00:00:01")
    assert labels(d) == [((2, 45), "partner's MAC")]


def test_e0308_not_when_equal_up_to_case():
    text = vm("nic ua-p { model virtio; source user; mac 52:54:00:AA:00:01; teaming persistent }",
              "nic vf { source hostdev 0000:03:07.1; mac 52:54:00:aa:00:01; teaming transient ua-p }")
    assert codes(text) == []


@pytest.mark.parametrize("side", ["persistent", "transient", "neither"])
def test_e0308_not_when_only_one_mac_given(side):
    pm = "mac 52:54:00:00:00:01; " if side == "persistent" else ""
    tm = "mac 52:54:00:00:00:02; " if side == "transient" else ""
    text = vm(f"nic ua-p {{ model virtio; source user; {pm}teaming persistent }}",
              f"nic vf {{ source hostdev 0000:03:07.1; {tm}teaming transient ua-p }}")
    assert codes(text) == []


# --- E0309 mac_unique ---------------------------------------------------------------


def test_e0309_same_mac_in_two_teams():
    text = vm(team("x", mac="52:54:00:00:00:01"), team("y", trans="hostdev 0000:03:07.2", mac="52:54:00:00:00:01"))
    d = one(text, "E0309")
    assert (d.span.line_col, d.span.text) == ((3, 16), "52:54:00:00:00:01")
    assert d.message == "MAC 52:54:00:00:00:01 is used by 2 teams"
    assert labels(d) == [((2, 16), "the persistent NIC of team `x`")]


def test_e0309_across_two_vms_of_one_file():
    text = vm(team("x", mac="52:54:00:00:00:01")) + vm(
        team("y", trans="hostdev 0000:03:07.2", mac="52:54:00:00:00:01"), name="b")
    d = one(text, "E0309")
    assert (d.span.line_col, d.message) == ((5, 16), "MAC 52:54:00:00:00:01 is used by 2 teams")
    assert labels(d) == [((2, 16), "the persistent NIC of team `x`")]


def test_e0309_team_form_and_explicit_form():
    text = vm(team("x", mac="52:54:00:00:00:01"),
              "nic ua-y { model virtio; source user; mac 52:54:00:00:00:01; teaming persistent }",
              "nic vy { source hostdev 0000:03:07.2; teaming transient ua-y }")
    d = one(text, "E0309")
    assert d.span.line_col == (3, 45)


def test_e0309_three_teams_reported_once():
    mac = "52:54:00:00:00:01"
    text = vm(team("x", mac=mac), team("y", trans="hostdev 0000:03:07.2", mac=mac),
              team("z", trans="hostdev 0000:03:07.3", mac=mac))
    d = one(text, "E0309")
    assert d.message == "MAC 52:54:00:00:00:01 is used by 3 teams"
    assert labels(d) == [((2, 16), "the persistent NIC of team `x`"), ((4, 16), "the persistent NIC of team `z`")]


def test_e0309_not_with_different_macs():
    text = vm(team("x", mac="52:54:00:00:00:01"), team("y", trans="hostdev 0000:03:07.2", mac="52:54:00:00:00:02"))
    assert codes(text) == []
    # nor with derived ones, in one VM or two
    assert codes(vm(team("x"), team("y", trans="hostdev 0000:03:07.2"))) == []
    assert codes(vm(team("x")) + vm(team("x", trans="hostdev 0000:03:07.2"), name="b")) == []


# --- E0310 vf_unique ----------------------------------------------------------------


def test_e0310_same_vf_twice():
    d = one(vm(team("x"), team("y")), "E0310")
    assert (d.span.line_col, d.span.text) == ((3, 54), "0000:03:07.1")
    assert d.message == "host VF 0000:03:07.1 is given twice"
    assert labels(d) == [((2, 54), "also used by the transient NIC of team `x`")]


def test_e0310_same_vf_written_differently_and_via_a_pool():
    d = one(vm(team("x", trans="hostdev 03:07.1"), team("y", trans="network pool vf 0000:03:07.1")), "E0310")
    assert d.message == "host VF 0000:03:07.1 is given twice"


def test_e0310_not_with_different_vfs():
    assert codes(vm(team("x"), team("y", trans="hostdev 0000:03:07.2"))) == []


# --- W0502 / W0503 hostdev_warnings -------------------------------------------------


def test_w0502_plain_pci_hostdev():
    d = one(vm(team(trans="pci-hostdev 0000:03:07.1")), "W0502")
    assert (d.span.line_col, d.span.text) == ((2, 46), "pci-hostdev 0000:03:07.1")
    assert d.message == "the transient NIC of team `x` is a plain <hostdev>: libvirt will not set the VF's MAC"
    assert d.severity is Severity.WARNING


def test_w0502_not_for_a_hostdev_interface():
    assert codes(vm(team(trans="hostdev 0000:03:07.1"))) == []


def test_w0502_silenced_by_allow():
    graph = graph_of(vm("allow hostdev-mac-preset", team(trans="pci-hostdev 0000:03:07.1")))
    found = check(graph)
    assert [d.code for d in found] == ["W0502"]
    assert apply_allow(graph, found) == []


def test_w0502_silenced_by_allow_everywhere():
    graph = graph_of(vm(team(trans="pci-hostdev 0000:03:07.1")))
    assert [d.code for d in apply_allow(graph, check(graph))] == ["W0502"]
    assert apply_allow(graph, check(graph), frozenset({"W0502"})) == []


@pytest.mark.parametrize(
    ("options", "where", "message"),
    [
        ("boot 1", "boot 1",
         "the transient NIC of team `x` has a boot order, but the VF is unplugged during migration"),
        ("rom bar on", "rom bar on",
         "the transient NIC of team `x` loads an option ROM, which the migration target may not have"),
        ("rom file /x.rom", "rom file /x.rom",
         "the transient NIC of team `x` loads an option ROM, which the migration target may not have"),
    ],
)
def test_w0503_boot_or_rom_on_the_vf(options, where, message):
    d = one(vm(team(trans=f"hostdev 0000:03:07.1 {{ {options} }}")), "W0503")
    assert (d.span.text, d.message) == (where, message)


def test_w0503_not_for_rom_bar_off_or_boot_on_the_persistent():
    text = vm(team(pers="virtio user { boot 1; rom bar on }", trans="hostdev 0000:03:07.1 { rom bar off }"))
    assert codes(text) == []


def test_w0503_boot_and_rom_give_two_warnings():
    assert [d.code for d in diagnostics(vm(team(trans="hostdev 0000:03:07.1 { boot 1; rom bar on }")))] == [
        "W0503", "W0503"]


# --- E0401 machine_hosts_team --------------------------------------------------------


PC_TEAM = vm("machine pc", team())


def test_e0401_team_on_pc():
    d = one(PC_TEAM, "E0401")
    assert (d.span.line_col, d.span.text) == ((2, 11), "pc")
    assert d.message == "VM `a` puts a team on the i440fx machine `pc`"
    assert d.severity is Severity.ERROR


def test_e0401_not_on_q35_nor_on_pc_without_a_team():
    assert codes(vm("machine q35", team())) == []
    assert codes(vm("machine pc-q35-7.2", team())) == []
    assert codes(vm("machine pc")) == []


def test_e0401_on_versioned_i440fx():
    assert codes(vm("machine pc-i440fx-7.2", team())) == [("E0401", (2, 11))]


def test_e0401_downgraded_by_allow_in_the_vm():
    graph = graph_of(vm("machine pc", "allow pc-machine-team", team()))
    (d,) = apply_allow(graph, check(graph))
    assert (d.code, d.severity, d.is_error) == ("E0401", Severity.WARNING, False)
    assert d.message == "VM `a` puts a team on the i440fx machine `pc`"


def test_e0401_downgraded_by_allow_everywhere():
    graph = graph_of(PC_TEAM)
    (kept,) = apply_allow(graph, check(graph))
    assert kept.severity is Severity.ERROR
    (d,) = apply_allow(graph, check(graph), frozenset({"E0401"}))
    assert (d.code, d.severity) == ("E0401", Severity.WARNING)


def test_e0401_allow_in_another_vm_does_not_apply():
    graph = graph_of(vm("machine pc", team()) + vm("machine pc", "allow pc-machine-team",
                                                    team(trans="hostdev 0000:03:07.2"), name="b"))
    got = [(d.code, d.span.line_col, d.severity) for d in apply_allow(graph, check(graph))]
    assert got == [("E0401", (2, 11), Severity.ERROR), ("E0401", (6, 11), Severity.WARNING)]


# --- guest_placement: E0204 / E0402 / E0403 / E0404 ------------------------------------


def pinned(pers_addr: str | None = None, trans_addr: str | None = None, machine: str = "q35") -> str:
    pers = f"virtio user {{ address {pers_addr} }}" if pers_addr else "virtio user"
    trans = f"hostdev 0000:03:07.1 {{ address {trans_addr} }}" if trans_addr else "hostdev 0000:03:07.1"
    lines = [f"machine {machine}"] + (["allow pc-machine-team"] if machine == "pc" else [])
    return vm(*lines, team(pers=pers, trans=trans))


def placement(text: str) -> list[tuple[str, str, str]]:
    """Check diagnostics without the pc-machine E0401 (allowed in these programs)."""
    return [(d.code, d.span.text, d.message) for d in diagnostics(text) if d.code != "E0401"]


def test_pinned_addresses_that_are_fine():
    assert placement(pinned("0000:05:00.0", "0000:06:00.0")) == []
    assert placement(pinned("0000:00:05.0", "0000:06:00.0")) == []  # a persistent may sit on pcie.0
    assert placement(pinned("0000:00:05.0", "0000:00:06.0", machine="pc")) == []


def test_e0204_guest_domain():
    assert placement(pinned("0001:05:00.0")) == [
        ("E0204", "0001:05:00.0", "guest PCI domain 0x1 does not exist")]


def test_e0204_root_port_has_only_slot_0():
    assert placement(pinned("0000:05:01.0")) == [
        ("E0204", "0000:05:01.0", "bus 0x05 is a pcie-root-port, which has only slot 0")]


def test_e0204_pc_has_only_bus_0():
    assert placement(pinned("0000:05:00.0", machine="pc")) == [
        ("E0204", "0000:05:00.0", "the `pc` machine has only PCI bus 0, not 0x05")]


@pytest.mark.parametrize(
    ("machine", "address", "what"),
    [("q35", "0000:00:00.0", "the host bridge"),
     ("q35", "0000:00:1f.0", "the ICH9 LPC, SATA and SMBus functions"),
     ("pc", "0000:00:00.0", "the host bridge"),
     ("pc", "0000:00:01.0", "the PIIX3 ISA, IDE and USB functions")],
)
def test_e0403_reserved_slot(machine, address, what):
    slot = address[8:10]
    assert placement(pinned(address, machine=machine)) == [
        ("E0403", address, f"guest slot 00:{slot} is taken by {what}")]


def test_e0403_not_for_the_next_slot():
    assert placement(pinned("0000:00:1e.0")) == []
    assert placement(pinned("0000:00:02.0", machine="pc")) == []


def test_e0403_two_nics_at_one_address():
    text = vm(team("x", pers="virtio user { address 0000:00:05.0 }"),
              team("y", pers="virtio user { address 0000:00:05.0 }", trans="hostdev 0000:03:07.2"))
    d = one(text, "E0403")
    assert (d.span.line_col, d.message) == ((3, 45), "guest PCI address 0000:00:05.0 is given to 2 NICs")
    assert labels(d) == [((2, 45), "the persistent NIC of team `x`")]


def test_e0403_vf_and_persistent_at_one_address_is_not_also_e0402():
    assert placement(pinned("0000:05:00.0", "0000:05:00.0")) == [
        ("E0403", "0000:05:00.0", "guest PCI address 0000:05:00.0 is given to 2 NICs")]


def test_e0403_not_for_two_functions_of_one_slot_without_a_vf():
    text = vm(team("x", pers="virtio user { address 0000:00:05.0 }"),
              team("y", pers="virtio user { address 0000:00:05.1 }", trans="hostdev 0000:03:07.2"))
    assert codes(text) == []


def test_e0404_vf_on_pcie0():
    assert placement(pinned(trans_addr="0000:00:05.0")) == [
        ("E0404", "0000:00:05.0",
         "the transient NIC of team `x` is pinned to pcie.0, which does not support hot-plug")]


def test_e0404_not_on_a_root_port_nor_on_pc():
    assert placement(pinned(trans_addr="0000:05:00.0")) == []
    assert placement(pinned(trans_addr="0000:00:05.0", machine="pc")) == []


def test_e0402_vf_not_at_function_0():
    assert placement(pinned(trans_addr="0000:05:00.1")) == [
        ("E0402", "0000:05:00.1", "the transient NIC of team `x` is pinned to function 1")]
    assert placement(pinned(trans_addr="0000:00:05.3", machine="pc")) == [
        ("E0402", "0000:00:05.3", "the transient NIC of team `x` is pinned to function 3")]


def test_e0402_vf_shares_its_slot():
    text = pinned("0000:05:00.1", "0000:05:00.0")
    d = one(text, "E0402")
    assert (d.span.text, d.message) == ("0000:05:00.0",
                                       "the transient NIC of team `x` shares its guest slot with other devices")
    assert [(lab.span.text, lab.message) for lab in d.labels] == [
        ("0000:05:00.1", "the persistent NIC of team `x`")]


def test_e0402_shared_slot_on_pc():
    assert [c for c, _, _ in placement(pinned("0000:00:05.1", "0000:00:05.0", machine="pc"))] == ["E0402"]


def test_e0402_not_when_alone_in_its_slot():
    assert placement(pinned("0000:05:00.0", "0000:06:00.0")) == []
    assert placement(pinned(trans_addr="0000:00:06.0", machine="pc")) == []


def test_placement_is_per_vm():
    text = pinned("0000:05:00.0") + vm(team(pers="virtio user { address 0000:05:00.0 }",
                                            trans="hostdev 0000:03:07.2"), name="b")
    assert codes(text) == []


# --- E0403 check_layouts: the capacity check over the layout phase's result -----------------------


def capacity(text: str) -> list:
    from teamc.layout import layout

    return check_layouts(layout(graph_of(text)))


def test_e0403_pc_runs_out_of_slots():
    teams = [team(f"t{i}", trans=f"hostdev 0000:03:{i:02x}.1") for i in range(16)]
    found = capacity("vm big {\n  machine pc\n  allow pc-machine-team\n" + "\n".join(teams) + "\n}\n")
    (d,) = [d for d in found if d.code == "E0403"]
    assert d.message == "VM `big` does not fit its guest PCI topology: the `pc` machine has 30 slots for NICs on pci.0"
    fifteen = [team(f"t{i}", trans=f"hostdev 0000:03:{i:02x}.1") for i in range(15)]
    assert capacity("vm ok {\n  machine pc\n  allow pc-machine-team\n" + "\n".join(fifteen) + "\n}\n") == []


def test_e0406_a_nic_alone_on_function_1():
    d = one(vm(team(pers="virtio user { address 0000:00:05.1 }")), "E0406")
    assert (d.span.text, d.message) == (
        "0000:00:05.1",
        ("the persistent NIC of team `x` is on function 1 of slot 00:05, which has nothing on function 0: the guest "
         "will not see it"))
    two = one(vm(team(pers="virtio user { address 0000:06:00.2 }"),
                 team("y", pers="virtio user { address 0000:06:00.3 }", trans="hostdev 0000:03:07.2")), "E0406")
    assert labels(two) == [((3, 45), "the persistent NIC of team `y`")]


def test_e0406_not_with_function_0_in_use():
    assert codes(vm(team(pers="virtio user { address 0000:00:05.0 }"),
                    team("y", pers="virtio user { address 0000:00:05.1 }", trans="hostdev 0000:03:07.2"))) == []
    # A function 0 refused for its own reason (here the VF on pcie.0, E0404) is still there.
    assert [c for c, _ in codes(vm(team(pers="virtio user { address 0000:00:05.1 }",
                                        trans="hostdev 0000:03:07.1 { address 0000:00:05.0 }")))] == ["E0404"]


def test_e0403_q35_pinned_bus_beyond_the_root_ports():
    (d,) = capacity(vm(team(pers="virtio user { address 0000:f1:00.0 }")))
    assert "241 pcie-root-ports are needed, but q35 has room for 240 on pcie.0" in d.message
    # Bus 0xf0 needs ports 1..240 and no spare (lower ports stay free), which just fits.
    assert capacity(vm(team(pers="virtio user { address 0000:f0:00.0 }"))) == []
    assert diagnostics(vm(team(pers="virtio user { address 0000:f1:00.0 }"))) == []  # not a rule over the IR


# --- what libvirt 9.0 itself refuses (tests/oracle, recorded from its generator) ----------------------

ORACLE_REFUSALS = {
    # case: (what libvirt said about the domain teamc used to write, the code teamc now gives)
    "mtu-user": ("setting MTU on interface type user is not supported yet", "E0105"),
    "boot-order-duplicate": ("boot order '1' used for more than one device", "E0106"),
    "vcpus-289": ("Maximum CPUs greater than specified machine type limit 288", "E0205"),
    "vcpus-256": ("more than 255 vCPUs require extended interrupt mode enabled on the iommu device", "E0205"),
    "machine-newer": ("does not support machine type 'pc-q35-8.0'", "E0405"),
    "rom-disabled-tuned": ("ROM tuning is not supported when ROM is disabled", "E0105"),
    # libvirt accepts this one but drops the alias: the standby becomes net0, the VF's pair names nothing.
    "alias-dot": ('"id":"net0"', "E0202"),
}


@pytest.mark.parametrize("case", sorted(ORACLE_REFUSALS))
def test_teamc_refuses_what_libvirt_refuses(case):
    from pathlib import Path

    from teamc.pipeline import check_source, load

    oracle = Path(__file__).parent / "oracle"
    said, code = ORACLE_REFUSALS[case]
    assert said in (oracle / f"{case}.args").read_text()
    _, result = check_source(load(str(oracle / f"{case}.team"))[0])
    assert code in [d.code for d in result.diagnostics if d.is_error]


def test_the_checks_leave_the_ir_as_they_found_it():
    """The IR is the phases' shared input: no rule caches its results in it."""
    graph = graph_of(vm(team("x"),
                        team("y", trans="hostdev 0000:03:07.2", pers="virtio user { address 0000:00:05.1 }")))
    before = (dict(graph.graph), dict(graph.nodes(data=True)), list(graph.edges(data=True)))
    assert check(graph)
    assert (dict(graph.graph), dict(graph.nodes(data=True)), list(graph.edges(data=True))) == before
