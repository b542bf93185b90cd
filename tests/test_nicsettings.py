"""The NIC settings table (compiler/nicsettings.py): its statements through every phase.

Parse -> XML -> import -> `.team` gives each setting back; merge keeps what the base NIC states; libvirt's
refusals are refused; the virtio-net-pci properties equal libvirt's own generator (a committed oracle answer).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import GOLDEN, ROOT, argv_from_script, check_golden, rng_errors, teamc, virsh_define_dumpxml
from teamc import nicsettings as ns

ORACLE = GOLDEN / "oracle"
OVS_TEAM = """vm db7 {
    team up0 {
        mac 52:54:00:aa:00:01
        persistent virtio bridge ovsbr0 {
            virtualport openvswitch interfaceid 09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f
            vlan 42
            target vnet-db7
            driver name vhost queues 4 rx_queue_size 1024 host csum off
            link up
            trust-guest-rx-filters no
            tune sndbuf 1600
            acpi 5
            coalesce rx-frames 7
            libvirt "<guest dev='eth1'/>"
        }
        transient hostdev 0000:03:07.1 { vlan 42 }
    }
}
"""


def compile_xml(team: str, tmp_path: Path, *extra: str) -> str:
    src = tmp_path / "in.team"
    src.write_text(team)
    code, out, err = teamc("compile", str(src), "--emit", "xml", *extra)
    assert code == 0, err
    return out


def test_the_grammar_has_one_keyword_per_row():
    grammar = (ROOT / "grammar" / "team.lark").read_text()
    rule = re.search(r"_nic_setting_kw:(.*?)\n(?!\s*\|)", grammar, re.DOTALL).group(1)
    assert re.findall(r'"([^"]+)"', rule) == [row.keyword for row in ns.ROWS]


def test_the_documented_table_is_the_table():
    page = (ROOT / "docs" / "nic-settings.md").read_text()
    block = page.split("<!-- nicsettings:begin -->\n", 1)[1].split("\n<!-- nicsettings:end -->", 1)[0]
    assert block == ns.readme_table()


@pytest.mark.parametrize("row", ns.ROWS, ids=[r.keyword for r in ns.ROWS])
def test_every_example_round_trips_through_its_row(row):
    words = shlex.split(row.example.split(" ", 1)[1])
    elem = row.parse(words)
    assert ns.statement(elem) == (row.keyword, words)


def test_the_ovs_vlan_multiqueue_domain_round_trips_with_every_setting(tmp_path):
    xml = compile_xml(OVS_TEAM, tmp_path, "--allow", "W0509")
    assert rng_errors(xml) == []
    for needle in ("<vlan>", "<tag id='42'/>", "<virtualport type='openvswitch'>", "<target dev='vnet-db7'/>",
                   "queues='4'", "rx_queue_size='1024'", "<host csum='off'/>", "<link state='up'/>",
                   "trustGuestRxFilters='no'", "<sndbuf>1600</sndbuf>", "<frames max='7'/>", "<acpi index='5'/>"):
        assert needle in xml, needle
    base = tmp_path / "db7.xml"
    base.write_text(xml)
    code, imported, err = teamc("import", str(base))
    assert code == 0 and "W0506" not in err, err
    (tmp_path / "back.team").write_text(imported)
    code, merged, err = teamc("compile", str(tmp_path / "back.team"), "--into", str(base))
    assert (code, err) == (0, "")
    assert merged == xml  # every setting, in libvirt's order, byte for byte


def test_merge_keeps_what_the_base_nic_states_and_the_team_does_not(tmp_path):
    xml = compile_xml(OVS_TEAM, tmp_path, "--allow", "W0509")
    base = tmp_path / "db7.xml"
    base.write_text(xml)
    team = tmp_path / "small.team"
    team.write_text("vm db7 {\n team up0 { mac 52:54:00:aa:00:01; persistent virtio bridge ovsbr0 "
                    "{ address 0000:01:00.0; link down }\n transient hostdev 0000:03:07.1 { address 0000:02:00.0 } }\n"
                    "allow standby-link-down\n}\n")
    code, merged, err = teamc("compile", str(team), "--into", str(base))
    assert code == 0 and "W0506" not in err, err
    assert merged == xml.replace("<link state='up'/>", "<link state='down'/>")  # the team's wins, the rest stays


@pytest.mark.libvirt
def test_the_settings_domain_is_defined_by_libvirt(tmp_path):
    xml = compile_xml(OVS_TEAM, tmp_path, "--allow", "W0509")
    path = tmp_path / "db7.xml"
    path.write_text(xml)
    dump = virsh_define_dumpxml(path, "db7")
    for needle in ("<tag id='42'/>", "queues='4'", "<link state='up'/>", "<acpi index='5'/>"):
        assert needle in dump


def test_the_virtio_net_properties_equal_libvirts_generator(tmp_path):
    out = tmp_path / "out"
    code, _, err = teamc("compile", str(ORACLE / "nic-driver.team"), "-o", str(out))
    assert code == 0 and "W0509" in err and "`driver name`, `driver queues`" in err, err
    ours = [json.loads(a) for a in argv_from_script((out / "db7.sh").read_text()) if "virtio-net-pci" in a]
    theirs = [line for line in (ORACLE / "nic-driver.args").read_text().splitlines() if "virtio-net-pci" in line]
    assert ours == [json.loads(shlex.split(theirs[0].rstrip(" \\"))[1])]


def test_the_sh_states_each_setting_it_cannot_apply(tmp_path, update_golden):
    """The `.sh` lists, per QEMU device, the settings only libvirt applies (W0509's list, with the values), allowed
    or not; the VF's VLAN too. The argv is the same as without the comment."""
    (tmp_path / "db7.team").write_text(OVS_TEAM)
    for allow in ((), ("--allow", "W0509")):
        out = tmp_path / f"out{len(allow)}"
        code, _, err = teamc("compile", str(tmp_path / "db7.team"), "--emit", "qemu", "-o", str(out), *allow)
        assert code == 0 and ("W0509" in err) == (not allow), err
        check_golden(GOLDEN / "nicsettings" / "db7.sh", (out / "db7.sh").read_text(), update_golden)


def test_the_sh_comment_is_one_line_per_setting_whatever_the_value():
    # A newline in a value would end the comment and run the rest as a command. The checks refuse every newline
    # that reaches a setting today; the note does not rely on that.
    from types import SimpleNamespace

    from teamc.backends.qemu import libvirt_only_notes

    guest = ns.Elem("guest", (("dev", "a\ntouch x\r"),))
    nic = SimpleNamespace(settings=(guest,), portgroup="p\x7fg", source_kind="bridge", role="persistent")
    layout = SimpleNamespace(devices=[SimpleNamespace(qemu_id="ua-up0", nic=nic)])
    assert libvirt_only_notes(layout) == ["ua-up0: portgroup p g", "ua-up0: libvirt <guest dev='a touch x '/>"]


def test_a_sh_without_libvirt_only_settings_has_no_such_comment(tmp_path):
    code, _, err = teamc("compile", str(ORACLE / "nic-driver.team"), "--emit", "qemu", "-o", str(tmp_path))
    assert code == 0, err
    assert "#   ua-up0: driver name vhost queues 4\n" in (tmp_path / "db7.sh").read_text()
    src = tmp_path / "plain.team"
    src.write_text("vm web {\n team up0 { persistent virtio bridge br0 { acpi 3 }; "
                   "transient hostdev 0000:03:07.1 }\n}\n")
    code, _, err = teamc("compile", str(src), "--emit", "qemu", "-o", str(tmp_path / "plain"))
    assert (code, err) == (0, "")
    assert "Only libvirt" not in (tmp_path / "plain" / "web.sh").read_text()


PORTGROUP_TEAM = """vm web {
    team up0 {
        mac 52:54:00:aa:00:02
        persistent virtio network rednet bridge virbr0 portgroup bob
        transient network pool vf 0000:03:07.1 portgroup vfs
    }
}
"""


def test_a_network_portgroup_goes_through_every_phase(tmp_path, update_golden):
    src = tmp_path / "web.team"
    src.write_text(PORTGROUP_TEAM)
    code, _, err = teamc("compile", str(src), "-o", str(tmp_path / "out"))
    assert code == 0 and "cannot apply `portgroup` of the persistent NIC" in err, err
    xml = (tmp_path / "out" / "web.xml").read_text()
    assert "<source network='rednet' portgroup='bob'/>" in xml and "<source network='pool' portgroup='vfs'/>" in xml
    assert rng_errors(xml) == []
    check_golden(GOLDEN / "nicsettings" / "portgroup.sh", (tmp_path / "out" / "web.sh").read_text(), update_golden)
    code, imported, err = teamc("import", str(tmp_path / "out" / "web.xml"))
    assert code == 0, err
    assert "network rednet portgroup bob" in imported and "network pool portgroup vfs" in imported
    code, formatted, _ = teamc("fmt", "-", stdin=PORTGROUP_TEAM)
    assert (code, formatted) == (0, PORTGROUP_TEAM)


def test_merge_keeps_the_base_portgroup_unless_the_team_states_one(tmp_path):
    base = tmp_path / "base.xml"
    base.write_text(compile_xml(PORTGROUP_TEAM, tmp_path, "--allow", "W0509").replace(
        "portgroup='bob'/>", "portgroup='bob' portid='873be5a0-6b8a-4a0b-a1df-ef3659cd64bc'/>"))
    for statement, want in (("", "bob"), (" portgroup sam", "sam")):
        team = tmp_path / "t.team"
        team.write_text(PORTGROUP_TEAM.replace(" portgroup bob", statement))
        code, merged, err = teamc("compile", str(team), "--into", str(base), "--allow", "W0509")
        assert code == 0, err
        assert (f"<source network='rednet' portgroup='{want}' portid='873be5a0-6b8a-4a0b-a1df-ef3659cd64bc'/>"
                in merged), merged
        assert rng_errors(merged) == []


def test_a_portgroup_name_is_a_device_name(tmp_path):
    src = tmp_path / "web.team"
    src.write_text(PORTGROUP_TEAM.replace("portgroup bob", 'portgroup "b ob"'))
    status, _, err = teamc("check", str(src))
    assert status == 1 and "error[E0205]: `b ob` is not a valid portgroup name" in err, err


@pytest.mark.libvirt
def test_libvirt_defines_a_domain_with_portgroups(tmp_path):
    path = tmp_path / "web.xml"
    path.write_text(compile_xml(PORTGROUP_TEAM, tmp_path, "--allow", "W0509"))
    dump = virsh_define_dumpxml(path, "web")
    assert "<source network='rednet' portgroup='bob'/>" in dump and "<source network='pool' portgroup='vfs'/>" in dump


@pytest.mark.parametrize("statement,code,words", [
    ("driver rx_queue_size 300", "E0205", "power of two"),  # libvirt: has to be a power of two (oracle)
    ("driver rx_queue_size 128", "E0205", "power of two"),  # QEMU: between 256 and 1024 (oracle)
    ("driver tx_queue_size 2048", "E0205", "power of two"),
    ("vlan 42", "E0206", "vlan tag not supported"),  # libvirt refuses it on a plain bridge (oracle)
    ("vlan 10 20", "E0205", "trunk"),
    ("virtualport openvswitch; filterref clean-traffic", "E0206", "filterref is not supported"),
    ("virtualport openvswitch; port isolated yes", "E0206", "isolated"),
    ("virtualport 802.1Qbg", "E0206", "openvswitch"),
    ("target vnet0 managed no", "E0206", "unmanaged target dev"),
    ("libvirt \"<mac address='52:54:00:00:00:01'/>\"", "E0205", "teamc writes it itself"),
    ("libvirt \"<coalesce>\"", "E0205", "well-formed"),
    ("link sideways", "E0205", "`up`"),
    ("link up; link down", "E0103", "twice"),
])
def test_libvirts_refusals_are_refused(statement, code, words, tmp_path):
    src = tmp_path / "x.team"
    src.write_text(f"vm web {{\n team up0 {{ persistent virtio bridge br0 {{ {statement} }}; "
                   "transient hostdev 0000:03:07.1 }\n}\n")
    status, _, err = teamc("check", str(src))
    assert status == 1 and f"error[{code}]" in err and words in err, err


@pytest.mark.libvirt
def test_an_8021qbg_virtualport_on_a_bridge_is_refused_though_libvirt_defines_it(tmp_path):
    # libvirt's validation takes it; when the VM starts, the tap joins no bridge (virnetdevtap.c adds a tap
    # with a virtualport only through OVS or Midonet): refused, as the message says.
    qbg = "virtualport 802.1Qbg managerid 11 typeid 1193047 typeidversion 2"
    src = tmp_path / "x.team"
    src.write_text(f"vm web {{\n team up0 {{ persistent virtio bridge br0 {{ {qbg} }}; "
                   "transient hostdev 0000:03:07.1 }\n}\n")
    status, _, err = teamc("check", str(src))
    assert status == 1 and "error[E0206]" in err and "joins no bridge" in err, err
    path = tmp_path / "web.xml"
    path.write_text(compile_xml(src.read_text().replace(f" {{ {qbg} }}", ""), tmp_path).replace(
        "<source bridge='br0'/>", "<source bridge='br0'/><virtualport type='802.1Qbg'><parameters managerid='11' "
        "typeid='1193047' typeidversion='2' instanceid='09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f'/></virtualport>"))
    assert "type='802.1Qbg'" in virsh_define_dumpxml(path, "web")


@pytest.mark.parametrize("source,statement", [
    ("hostdev 0000:03:07.1", "driver iommu on"),  # libvirt: only supported for virtio devices (oracle)
    ("hostdev 0000:03:07.1", "bandwidth inbound average 10"),
    ("hostdev 0000:03:07.1", "backend tap /dev/net/tun"),
    ("pci-hostdev 0000:03:07.1", "vlan 42"),
])
def test_the_vf_takes_only_what_libvirt_allows_there(source, statement, tmp_path):
    src = tmp_path / "x.team"
    src.write_text(f"vm web {{\n team up0 {{ persistent virtio user; transient {source} {{ {statement} }} }}\n}}\n")
    status, _, err = teamc("check", str(src))
    assert status == 1 and "error[E0206]" in err, err


# libvirt 9.0's own generator on tests/oracle/nic-*.xml (recorded answers, see tests/oracle/README.md): what it
# said, and teamc's verdict on the `.team` that states the same (an error code, or None: accepted).
NIC_ORACLE = {
    "nic-mtu-vf": ("setting MTU on interface type hostdev is not supported yet", "E0105"),
    "nic-mtu-direct": ("setting MTU on interface type direct is not supported yet", "E0105"),
    "nic-queues-user": ("multiqueue is not supported for network interfaces of type user", "E0206"),
    "nic-vlan-user": ("vlan tag not supported for this connection type", "E0206"),
    "nic-coalesce-direct": ("coalesce settings on interface type direct are not supported", "E0206"),
    "nic-port-isolated-user": ("<port isolated='yes'/> is not supported for network interfaces with type='user'",
                               "E0206"),
    "nic-backend-tap-user": ("custom tap device path is not supported for network interfaces of type user", "E0206"),
    "nic-target-unmanaged-user": ("unmanaged target dev is not supported on interfaces of type 'user'", "E0206"),
    "nic-vf-bandwidth": ("bandwidth settings are not supported for hostdev interfaces", "E0206"),
    "nic-vf-coalesce": ("coalesce settings on interface type hostdev are not supported", "E0206"),
    "nic-vf-iommu": ("iommu driver option is only supported for virtio devices", "E0206"),
    "nic-vf-driver-vhost": ("Invalid value for attribute 'name' in element 'driver': 'vhost'", "E0206"),
    "nic-qbh-no-profileid": ("missing profileid in <virtualport type='802.1Qbh'>", "E0206"),
    "nic-qbg-no-typeid": ("missing typeid in <virtualport type='802.1Qbg'>", "E0206"),
    # libvirt takes these (and applies little of it on the VF): teamc must too, or import loses such a domain.
    "nic-vf-accepted": ("== 7.2.0: OK", None),
    "nic-user-accepted": ("== 7.2.0: OK", None),
}


@pytest.mark.parametrize("case", sorted(NIC_ORACLE))
def test_teamc_refuses_a_nic_setting_exactly_where_libvirt_does(case):
    said, code = NIC_ORACLE[case]
    oracle = ROOT / "tests" / "oracle"
    assert said in (oracle / f"{case}.args").read_text()
    status, _, err = teamc("check", str(oracle / f"{case}.team"))
    if code is None:
        assert (status, err) == (0, ""), err
    else:
        assert status == 1 and f"error[{code}]" in err, err


def test_the_vf_gets_its_acpi_index_where_libvirt_gives_it(tmp_path):
    # Recorded: libvirt_argv.sh tests/oracle/nic-vf-acpi.xml 7.2.0 (the domain teamc writes for the .team).
    code, _, err = teamc("compile", str(ROOT / "tests/oracle/nic-vf-acpi.team"), "--emit", "qemu", "-o", str(tmp_path))
    assert (code, err) == (0, ""), err
    ours = [a for a in argv_from_script((tmp_path / "nic.sh").read_text())
            if '"virtio-net-pci"' in a or '"vfio-pci"' in a]
    oracle = (ROOT / "tests/oracle/nic-vf-acpi.args").read_text()
    theirs = [shlex.split(line.rstrip(" \\"))[1] for line in oracle.splitlines()
              if '"virtio-net-pci"' in line or '"vfio-pci"' in line]
    assert ours == theirs and '"acpi-index":3' in ours[1]


ETHERNET_TEAM = """vm web {
    allow libvirt-only-setting
    team up0 {
        mac 52:54:00:aa:00:01
        persistent virtio ethernet {
            target tap-web0 managed no
            driver queues 2
            backend tap /dev/net/tun
            tune sndbuf 1600
        }
        transient hostdev 0000:03:07.1
    }
}
"""


def test_an_ethernet_standby_goes_through_every_phase(tmp_path, update_golden):
    """`ethernet`: the host's own tap (<interface type='ethernet'>, `target … managed no`), `-netdev tap` with its
    `ifname` and no scripts (QEMU 7.2 takes that netdev: it opened the tap when tried by hand)."""
    src = tmp_path / "web.team"
    src.write_text(ETHERNET_TEAM)
    code, _, err = teamc("compile", str(src), "-o", str(tmp_path / "out"))
    assert (code, err) == (0, ""), err
    xml = (tmp_path / "out" / "web.xml").read_text()
    assert "<interface type='ethernet'>" in xml and "<target dev='tap-web0' managed='no'/>" in xml
    assert rng_errors(xml) == []
    check_golden(GOLDEN / "nicsettings" / "ethernet.sh", (tmp_path / "out" / "web.sh").read_text(), update_golden)
    code, imported, err = teamc("import", str(tmp_path / "out" / "web.xml"))
    assert code == 0, err
    assert "persistent virtio ethernet {" in imported and "target tap-web0 managed no" in imported
    (tmp_path / "back.team").write_text(imported)
    code, merged, err = teamc("compile", str(tmp_path / "back.team"), "--into", str(tmp_path / "out" / "web.xml"))
    assert (code, merged) == (0, xml), err


@pytest.mark.libvirt
def test_libvirt_defines_an_ethernet_standby(tmp_path):
    path = tmp_path / "web.xml"
    path.write_text(compile_xml(ETHERNET_TEAM, tmp_path))
    assert "<target dev='tap-web0' managed='no'/>" in virsh_define_dumpxml(path, "web")


def test_an_ethernet_standby_gives_libvirts_device(tmp_path):
    # Recorded: libvirt_argv.sh tests/oracle/nic-ethernet.xml 7.2.0 (libvirt opens the tap and passes its fd).
    code, _, err = teamc("compile", str(ROOT / "tests/oracle/nic-ethernet.team"), "--emit", "qemu", "-o", str(tmp_path))
    assert (code, err) == (0, ""), err
    args = (ROOT / "tests/oracle/nic-ethernet.args").read_text()
    ours = [a for a in argv_from_script((tmp_path / "nic.sh").read_text()) if a.startswith('{"driver":"v')]
    theirs = [shlex.split(line.rstrip(" \\"))[1] for line in args.splitlines()
              if line.startswith("-device '{\"driver\":\"v")]
    assert ours == theirs and '"type":"tap"' in args


@pytest.mark.parametrize("source,statement,words", [
    # the oracle's words in each comment
    ("ethernet", "vlan 42", "refuses `vlan` on an `ethernet` NIC"),  # vlan tag not supported for this connection type
    ("ethernet", "coalesce rx-frames 7", "refuses `coalesce`"),  # coalesce settings on interface type ethernet
    ("ethernet", "port isolated yes", "type='ethernet'"),  # <port isolated='yes'/> is not supported ... 'ethernet'
    ("ethernet", "virtualport openvswitch", "refuses `virtualport`"),  # <virtualport> element unsupported for ethernet
    ("vhostuser /run/s0", "vlan 42", "refuses `vlan`"),  # vlan tag not supported for this connection type
    ("vhostuser /run/s0", "coalesce rx-frames 7", "refuses `coalesce`"),  # coalesce settings on ... vhostuser
    ("vhostuser /run/s0", "port isolated yes", "type='vhostuser'"),  # <port isolated='yes'/> ... 'vhostuser'
    ("vhostuser /run/s0", "backend tap /dev/net/tun", "custom tap device path"),  # the same words
    ("vhostuser /run/s0", "virtualport openvswitch", "refuses `virtualport`"),  # <virtualport> element unsupported
])
def test_libvirts_refusals_on_an_ethernet_or_vhostuser_standby(source, statement, words, tmp_path):
    src = tmp_path / "x.team"
    src.write_text(f"vm web {{\n team up0 {{ persistent virtio {source} {{ {statement} }}; "
                   "transient hostdev 0000:03:07.1 }\n}\n")
    status, _, err = teamc("check", str(src))
    assert status == 1 and "error[E0206]" in err and words in err, err


@pytest.mark.parametrize("source", ["ethernet", "vhostuser /run/s0"])
def test_an_ethernet_or_vhostuser_nic_is_no_vf(source, tmp_path):
    src = tmp_path / "x.team"
    src.write_text(f"vm web {{\n team up0 {{ persistent virtio user; transient {source} }}\n}}\n")
    status, _, err = teamc("check", str(src))
    assert status == 1 and "error[E0302]" in err, err


VHOSTUSER_ORACLE = ROOT / "tests" / "oracle" / "nic-vhostuser"


def test_a_vhostuser_standby_gives_libvirts_argv(tmp_path):
    """`vhostuser SOCKET [mode server]`: its chardev, netdev (with the queues), device and the shared memfd memory it
    needs equal libvirt's own generator's (recorded: libvirt_argv.sh tests/oracle/nic-vhostuser.xml 7.2.0, the domain
    teamc writes for the .team; a `,` in the socket's path doubled as libvirt doubles it)."""
    code, _, err = teamc("compile", str(VHOSTUSER_ORACLE.with_suffix(".team")), "-o", str(tmp_path))
    assert (code, err) == (0, ""), err
    assert (tmp_path / "nic.xml").read_text() == VHOSTUSER_ORACLE.with_suffix(".xml").read_text()
    wanted = ("-object", "-chardev socket,id=charua", "-netdev", "-device '{\"driver\":\"v", "-machine")

    def lines(text: str) -> list[str]:
        return [line.removesuffix(' "$@"').rstrip(" \\").replace("pc-q35-7.2,", "q35,") for line in text.splitlines()
                if line.startswith(wanted) and "masterKey" not in line]

    args = VHOSTUSER_ORACLE.with_suffix(".args").read_text()
    assert args.startswith("== 7.2.0: OK")
    assert lines((tmp_path / "nic.sh").read_text()) == lines(args)


def test_a_vhostuser_domain_is_valid_and_round_trips(tmp_path):
    xml = VHOSTUSER_ORACLE.with_suffix(".xml").read_text()
    assert rng_errors(xml) == []
    assert "<memoryBacking>\n    <source type='memfd'/>\n    <access mode='shared'/>\n  </memoryBacking>" in xml
    base = tmp_path / "nic.xml"
    base.write_text(xml)
    code, imported, err = teamc("import", str(base))
    assert code == 0, err
    assert "persistent virtio vhostuser /run/vhost/sock0 mode client {" in imported
    assert "persistent virtio vhostuser /run/vhost/sock,1 mode server {" in imported
    (tmp_path / "back.team").write_text(imported)
    code, merged, err = teamc("compile", str(tmp_path / "back.team"), "--into", str(base))
    assert (code, merged) == (0, xml), err


@pytest.mark.libvirt
def test_libvirt_defines_a_vhostuser_standby(tmp_path):
    path = tmp_path / "nic.xml"
    path.write_text(VHOSTUSER_ORACLE.with_suffix(".xml").read_text())
    dump = virsh_define_dumpxml(path, "nic")
    assert "<source type='unix' path='/run/vhost/sock0' mode='client'/>" in dump and "<access mode='shared'/>" in dump


@pytest.mark.qemu
def test_qemu_starts_a_vhostuser_vms_verification_command():
    """QEMU 7.2 takes the memfd memory backend and the devices. The vhost-user netdev needs a backend on its socket,
    which this machine has not: `teamc verify`'s command makes it user networking and drops the chardev."""
    from helpers import qemu_commands, start_qemu
    from teamc.source import SourceFile
    from teamc.verify.plan import verification_command

    source = SourceFile(str(VHOSTUSER_ORACLE.with_suffix(".team")), VHOSTUSER_ORACLE.with_suffix(".team").read_text())
    (command,) = qemu_commands(source)
    changes: list[str] = []
    verify = verification_command(command, {}, "tcg", changes)
    assert [f.name for f in verify.flags].count("-chardev") == 0 and "hostua-up1: vhost-user charua-up1 -> user " \
        "networking" in changes
    assert any(f.name == "-object" and f.props["share"] is True for f in verify.flags)
    code, stderr, _ = start_qemu(verify.argv("json"))
    assert code == 0, stderr


@pytest.mark.parametrize("source,code,words", [
    ("vhostuser run/s0", "E0205", "not an absolute path"),
    ("vhostuser /run/s0 mode listen", "E0205", "vhost-user socket mode"),
])
def test_a_vhostuser_source_is_checked(source, code, words, tmp_path):
    src = tmp_path / "x.team"
    src.write_text(f"vm web {{\n team up0 {{ persistent virtio {source}; transient hostdev 0000:03:07.1 }}\n}}\n")
    status, _, err = teamc("check", str(src))
    assert status == 1 and f"error[{code}]" in err and words in err, err


_ON_OFF = st.sampled_from(["on", "off"])
_DRIVER = st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["qemu", "vhost"]), "txmode": st.sampled_from(["iothread", "timer"]),
    "ioeventfd": _ON_OFF, "event_idx": _ON_OFF, "queues": st.integers(1, 256).map(str),
    "rx_queue_size": st.sampled_from(["256", "512", "1024"]), "tx_queue_size": st.sampled_from(["256", "512"]),
    "rss": _ON_OFF, "iommu": _ON_OFF, "packed": _ON_OFF})
_VLAN = st.lists(st.integers(0, 4095), min_size=1, max_size=3, unique=True)


@settings(max_examples=40, deadline=None)
@given(driver=_DRIVER, tags=_VLAN, link=st.sampled_from(["up", "down"]))
def test_settings_round_trip_team_xml_import_team(driver, tags, link):
    # The canonical order of the row (what import and fmt write), whatever order the statement had.
    words = ns.statement(ns.BY_KEYWORD["driver"].parse([w for k, v in driver.items() for w in (k, v)]))[1] \
        if driver else []
    stmts = [f"vlan {' '.join(map(str, tags))}{' trunk' if len(tags) > 1 else ''}", f"link {link}",
             "virtualport openvswitch"] + ([f"driver {' '.join(words)}"] if words else [])
    team = ("vm v {\n allow standby-link-down\n team t { mac 52:54:00:00:00:01\n persistent virtio bridge br0 { "
            + "; ".join(stmts) + " }\n transient hostdev 0000:03:07.1 { vlan " + " ".join(map(str, tags))
            + (" trunk" if len(tags) > 1 else "") + " } }\n}\n")
    code, xml, err = teamc("compile", "-", "--emit", "xml", stdin=team)
    assert code == 0, err
    assert rng_errors(xml) == []
    code, imported, err = teamc("import", "-", stdin=xml)
    assert code == 0 and "W0506" not in err, err
    for stmt in stmts:
        assert stmt in imported.replace("\n            ", "; "), (stmt, imported)
    code, formatted, _ = teamc("fmt", "-", stdin=imported)
    assert code == 0 and formatted == imported


PASS_THROUGHS = [  # (element, whether domain.rng takes it inside an <interface type='bridge'>)
    ("<guest dev='eth1' actual='vnet3'/>", True), ("<guest dev='eth 1'/>", False), ("<guest name='x'/>", False),
    ("<guest>eth1</guest>", False), ("<ip address='192.168.0.7' prefix='24'/>", True),
    ("<ip address='fe80::1' family='ipv6' prefix='64' peer='fe80::2'/>", True), ("<ip prefix='24'/>", False),
    ("<ip address='192.168.0.300'/>", False), ("<ip address='10.0.0.1' prefix='129'/>", False),
    ("<route address='10.1.0.0' prefix='16' gateway='10.0.0.1' metric='5'/>", True),
    ("<route address='10.1.0.0' prefix='16'/>", False),
    ("<route family='ipx' address='10.1.0.0' gateway='10.0.0.1'/>", False),
    (("<portForward proto='tcp' dev='eth0'><range start='22' to='2022'/><range start='80' exclude='yes'/>"
      "</portForward>"), True),
    ("<portForward proto='sctp'/>", False), ("<portForward proto='tcp'><range to='1'/></portForward>", False),
    ("<portForward proto='tcp'><port start='1'/></portForward>", False),
    ("<portForward proto='udp'><range start='70000'/></portForward>", False),
    ("<script path='/etc/qemu-ifup'/>", True), ("<script/>", False), ("<downscript path='/etc/qemu-ifdown'/>", True),
    ("<backenddomain name='dom0'/>", True), ("<backenddomain name='dom0' id='1'/>", False),
]


def _with_element(xml: str, element: str) -> str:
    """The compiled domain with `element` as the last child of its first <interface> (before <alias>)."""
    head, tail = xml.split("<alias name='ua-up0'/>", 1)
    return f"{head}{element}\n      <alias name='ua-up0'/>{tail}"


@pytest.mark.parametrize("element,valid", PASS_THROUGHS, ids=[e for e, _ in PASS_THROUGHS])
def test_a_pass_through_is_taken_exactly_when_libvirts_schema_takes_it(element, valid, tmp_path):
    base = "vm web {\n team up0 { persistent virtio bridge br0 { STMT }; transient hostdev 0000:03:07.1 }\n}\n"
    plain = compile_xml(base.replace(" { STMT }", ""), tmp_path)
    assert (rng_errors(_with_element(plain, element)) == []) is valid  # the schema's own verdict
    quoted = element.replace('"', '\\"')
    code, xml, err = teamc("compile", "-", "--emit", "xml", "--allow", "W0509",
                           stdin=base.replace("STMT", f'libvirt "{quoted}"'))
    if valid:
        assert code == 0, err
        assert rng_errors(xml) == []
    else:
        assert code == 1 and "error[E0205]" in err, err


def test_a_pass_through_of_what_a_statement_says_is_refused(tmp_path):
    src = tmp_path / "web.team"
    src.write_text("vm web {\n team up0 { persistent virtio bridge br0 { libvirt \"<link state='up'/>\" }; "
                   "transient hostdev 0000:03:07.1 }\n}\n")
    status, _, err = teamc("check", str(src))
    assert status == 1 and "error[E0205]: `<link>` has its own statement" in err and "write `link up`:" in err, err


def test_several_ip_pass_throughs_survive_import_and_merge(tmp_path):
    team = ("vm web {\n team up0 { persistent virtio bridge br0 { libvirt \"<ip address='10.0.0.2' prefix='24'/>\"; "
            "libvirt \"<ip address='fe80::2' family='ipv6' prefix='64'/>\"; libvirt \"<route address='10.1.0.0' "
            "prefix='16' gateway='10.0.0.1'/>\" }; transient hostdev 0000:03:07.1 }\n}\n")
    xml = compile_xml(team, tmp_path, "--allow", "W0509")
    assert rng_errors(xml) == [] and xml.count("<ip address=") == 2
    base = tmp_path / "web.xml"
    base.write_text(xml)
    code, imported, err = teamc("import", str(base))
    assert code == 0, err
    (tmp_path / "back.team").write_text(imported)
    code, merged, err = teamc("compile", str(tmp_path / "back.team"), "--into", str(base), "--allow", "W0509")
    assert (code, merged) == (0, xml), err


def test_fmt_keeps_a_pass_through_verbatim():
    text = "vm v {\n    nic ua-a {\n        libvirt \"<coalesce><rx><frames max='7'/></rx></coalesce>\"\n    }\n}\n"
    code, out, _ = teamc("fmt", "-", stdin=text)
    assert (code, out) == (0, text)


LIBVIRT_NET = sorted((ROOT / "tests" / "conformance" / "libvirt-net").glob("net-*.xml"))
REFUSED = {"net-virtio-rxqueuesize-invalid-size": "E0205",  # libvirt: rx_queue_size has to be a power of two
           "net-hostdev-fail": "E0206"}  # libvirt: custom tap device path is not supported ... of type hostdev


def teamed(text: str) -> str:
    """The domain on q35 with each virtio <interface> the persistent of a team with a hostdev VF partner, and each
    hostdev <interface> (a domain with no virtio NIC) the transient of a team with a `user` virtio partner."""
    from lxml import etree

    root = etree.fromstring(text.encode())
    root.find("os/type").attrib.update({"machine": "q35", "arch": "x86_64"})
    devices = root.find("devices")
    for element in devices.findall("controller"):
        if element.get("type") == "pci":
            devices.remove(element)
    virtio = [i for i in devices.findall("interface")
              if i.find("model") is not None and i.find("model").get("type") == "virtio" and i.get("type") != "hostdev"]
    for n, iface in enumerate(virtio):
        for child in iface.findall("alias") + iface.findall("address"):
            iface.remove(child)
        etree.SubElement(iface, "teaming", type="persistent")
        etree.SubElement(iface, "alias", name=f"ua-n{n}")
        vf = etree.SubElement(devices, "interface", type="hostdev", managed="yes")
        etree.SubElement(vf, "mac", address=iface.find("mac").get("address"))
        etree.SubElement(etree.SubElement(vf, "source"), "address", type="pci", domain="0x0000", bus="0x03",
                         slot="0x07", function=f"0x{n:x}")
        etree.SubElement(vf, "teaming", type="transient", persistent=f"ua-n{n}")
    if not virtio:
        for n, vf in enumerate(devices.findall("interface[@type='hostdev']")):
            for child in vf.findall("alias") + vf.findall("address"):
                vf.remove(child)
            etree.SubElement(vf, "teaming", type="transient", persistent=f"ua-v{n}")
            standby = etree.Element("interface", type="user")
            etree.SubElement(standby, "mac", address=vf.find("mac").get("address"))
            etree.SubElement(standby, "model", type="virtio")
            etree.SubElement(standby, "teaming", type="persistent")
            etree.SubElement(standby, "alias", name=f"ua-v{n}")
            vf.addprevious(standby)
    return etree.tostring(root, encoding="unicode")


def teamed_nics(text: str) -> list:
    """Each teamed NIC's attributes and children, as parsed XML (white space and order aside; guest address aside)."""
    from lxml import etree

    def canon(e):
        return (e.tag, sorted(e.attrib.items()), (e.text or "").strip(),
                sorted(canon(c) for c in e if isinstance(c.tag, str)))

    root = etree.fromstring(text.encode())
    return [(sorted(i.attrib.items()), sorted(canon(c) for c in i if isinstance(c.tag, str) and c.tag != "address"))
            for i in root.findall("devices/interface") if i.find("teaming") is not None]


@pytest.mark.parametrize("path", LIBVIRT_NET, ids=[p.stem for p in LIBVIRT_NET])
def test_libvirts_nic_domains_survive_import_and_merge(path, tmp_path):
    base = tmp_path / path.name
    base.write_text(teamed(path.read_text()))
    code, team, err = teamc("import", str(base))
    if path.stem in REFUSED:
        assert code == 1 and f"error[{REFUSED[path.stem]}]" in err, err
        return
    assert code == 0 and "left out" not in err, err  # W0506 only for NICs without <teaming>
    (tmp_path / "in.team").write_text(team)
    code, merged, err = teamc("compile", str(tmp_path / "in.team"), "--into", str(base))
    assert code == 0, err
    assert teamed_nics(merged) == teamed_nics(base.read_text())
    assert rng_errors(merged) == []


@pytest.mark.libvirt
@pytest.mark.parametrize("path", [p for p in LIBVIRT_NET if p.stem not in REFUSED], ids=lambda p: p.stem)
def test_libvirt_defines_each_merged_nic_domain(path, tmp_path):
    base = tmp_path / path.name
    # One name for all (some are `test`, the name of the test driver's own domain).
    base.write_text(re.sub(r"<name>[^<]*</name>", "<name>merged</name>", teamed(path.read_text()), count=1))
    code, team, err = teamc("import", str(base))
    assert code == 0, err
    (tmp_path / "in.team").write_text(team)
    code, merged, err = teamc("compile", str(tmp_path / "in.team"), "--into", str(base))
    assert code == 0, err
    (tmp_path / "merged.xml").write_text(merged)
    assert len(teamed_nics(virsh_define_dumpxml(tmp_path / "merged.xml", "merged"))) == len(teamed_nics(merged))


@pytest.mark.qemu
def test_qemu_starts_the_driver_settings():
    """QEMU 7.2 takes every virtio-net-pci property the driver settings give (the VF as its e1000e stand-in)."""
    from helpers import qemu_commands, runnable_here, standin, start_qemu
    from teamc.source import SourceFile

    source = SourceFile(str(ORACLE / "nic-driver.team"), (ORACLE / "nic-driver.team").read_text())
    (command,) = qemu_commands(source)
    code, stderr, _ = start_qemu(standin(runnable_here(command)).argv("json"))
    assert code == 0, stderr
    assert command.device("ua-up0").props["rx_queue_size"] == 1024
