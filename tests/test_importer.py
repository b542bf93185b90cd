"""`teamc import`: libvirt XML -> .team that compiles back to the same NICs.

Round trips on every example (compile, import, compile: byte-identical XML)
and on libvirt's three teaming fixtures (import, compile: the same NIC
elements), `virsh dumpxml` output of a running domain, and mutated XML that
must get diagnostics, never a crash.
"""

from __future__ import annotations

import random
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from helpers import EXAMPLES, TESTS, VIRSH, teamc
from teamc.importer import import_xml
from teamc.pipeline import Options, check_source, compile_source, load
from teamc.source import SourceFile
from test_conformance import nic_elements

FIXTURES = sorted((TESTS / "conformance" / "libvirt").glob("*.xml"))


def imported(xml: str, name: str = "domain.xml") -> str:
    result = import_xml(SourceFile(name, xml))
    assert not result.failed, [f"{d.span}: {d.code} {d.message}" for d in result.diagnostics]
    return result.text


def compiled(team_text: str, name: str = "imported.team") -> dict[str, str]:
    result = compile_source(SourceFile(name, team_text), Options())
    assert not result.failed, [f"{d.span}: {d.code} {d.message}" for d in result.diagnostics]
    return {a.name: a.text for a in result.artifacts}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_compile_import_compile_is_byte_identical(example):
    first = compiled(example.read_text(), f"examples/{example.name}")
    for name, xml in first.items():
        if not name.endswith(".xml"):
            continue
        second = compiled(imported(xml, name))
        assert second[name] == xml
        # The QEMU command line too, where the XML holds everything it needs (a network's host
        # bridge and a pool's concrete VF live only in the .team file, for the command line).
        script = name.removesuffix(".xml") + ".sh"
        if script in second:
            assert second[script] == first[script]


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_libvirt_fixture_round_trips_to_the_same_nics(fixture):
    xml = fixture.read_text()
    text = imported(xml, fixture.name)
    (domain,) = [t for n, t in compiled(text).items() if n.endswith(".xml")]
    # Guest addresses compare when the fixture pins them; else teamc's layout places the NICs.
    with_address = any(el.find("address") is not None for el in etree.fromstring(xml.encode()).find("devices"))
    assert nic_elements(domain, with_address) == nic_elements(xml, with_address)


def test_pc_fixture_gets_the_opt_in_with_the_reason():
    text = imported((TESTS / "conformance/libvirt/net-virtio-teaming.xml").read_text())
    lines = text.splitlines()
    at = lines.index("    machine pc")
    assert lines[at + 1] == "    allow pc-machine-team"
    assert "failover primary device must be" in lines[at - 2] and "QEMU will not start it" in lines[at - 1]


def test_import_cli_writes_one_team_file_per_input(tmp_path):
    fixtures = [str(p.relative_to(TESTS.parent)) for p in FIXTURES]
    code, out, err = teamc("import", *fixtures, "-o", str(tmp_path))
    assert code == 0 and out == "" and err.count("warning[E0401]") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.stem + ".team" for p in FIXTURES)
    for path in tmp_path.iterdir():
        assert teamc("fmt", "--check", str(path))[0] == 0  # import writes formatted source


def test_teams_are_used_when_they_keep_libvirt_order():
    text = imported((TESTS / "conformance/libvirt/net-virtio-teaming-hostdev.xml").read_text())
    assert "    team backup0 {" in text and "    nic " not in text
    text = imported((TESTS / "conformance/libvirt/net-virtio-teaming.xml").read_text())
    assert "    nic ua-backup0 {" in text and "    team " not in text  # persistents first, then the VFs


def test_not_teamed_nics_are_reported_and_nic_settings_imported(tmp_path):
    code, out, err = teamc("import", "tests/cases/left-out.xml")
    assert code == 0 and err.count("warning[W0506]") == 1
    assert "    # not imported: <interface type='network'> at line 9 (MAC 52:54:00:00:00:10), no <teaming>; " \
           "it stays in the base domain\n" in out
    assert "persistent virtio bridge br0 { driver name vhost queues 4 }" in out  # the settings table's statement
    assert teamc("import", "tests/cases/left-out.xml", "--allow", "left-out")[2] == ""


@pytest.mark.libvirt
def test_virsh_dumpxml_of_a_running_domain_imports(tmp_path):
    """Addresses, aliases, target devs and a domain id, as `virsh dumpxml` prints them."""
    source = compiled((EXAMPLES[0].parent / "seed.team").read_text())
    path = tmp_path / "QEMUGuest1.xml"
    path.write_text(source["QEMUGuest1.xml"])
    script = f"define {path}; start QEMUGuest1; dumpxml QEMUGuest1"
    proc = subprocess.run([VIRSH, "-q", "-c", "test:///default", script], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    dump = proc.stdout[proc.stdout.index("<domain"):]
    assert "<target dev=" in dump and " id=" in dump.splitlines()[0]
    again = compiled(imported(dump, "dump.xml"))
    assert again["QEMUGuest1.xml"] == source["QEMUGuest1.xml"]


def test_runtime_aliases_name_the_nics_but_are_not_kept():
    xml = """<domain type='kvm'><name>w</name><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>
      <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/>
        <teaming type='persistent'/><alias name='ua-a'/></interface>
      <hostdev mode='subsystem' type='pci' managed='no'><driver name='vfio'/>
        <source><address domain='0x0000' bus='0x03' slot='0x07' function='0x1'/></source>
        <teaming type='transient' persistent='ua-a'/><alias name='hostdev0'/></hostdev>
      <interface type='user'><mac address='52:54:00:00:00:02'/><model type='virtio'/>
        <teaming type='persistent'/><alias name='ua-b'/></interface>
      <interface type='hostdev'><mac address='52:54:00:00:00:02'/>
        <source><address type='pci' domain='0x0000' bus='0x03' slot='0x07' function='0x2'/></source>
        <teaming type='transient' persistent='ua-b'/><alias name='ua-vf-b'/></interface>
    </devices></domain>"""
    text = imported(xml)
    assert "team a {" in text and "transient pci-hostdev 0000:03:07.1 managed no" in text
    assert "nic ua-vf-b {" in text and "nic ua-b {" in text  # its own ua- alias: kept, so no team form
    assert "hostdev0" not in text


# --- mutated XML: diagnostics, never a crash --------------------------------------------------

SEED_XML = [p.read_text() for p in FIXTURES] + [(TESTS / "cases/left-out.xml").read_text()]
VALUES = ["", "ua-backup0", "ua-x", "backup0", "persistent", "transient", "none", "hostdev", "network", "user",
          "bridge", "direct", "ethernet", "vhostuser", "virtio", "e1000e", "pc", "q35", "pc-q35-8.0", "virt", "kvm",
          "qemu", "xen", "0x0000", "0x03", "0xzz", "0x100", "-1", "99999999999999999999", "52:54:00:00:00:01",
          "ff:ff:ff:ff:ff:ff", "nonsense", "yes", "no", "subsystem", "pci", "usb", "KiB", "GiB", "PiB", "bytes",
          "x86_64", "i686", "aarch64", "a b", "#", '"', "<", "&", "\u00e9", "ua-\u00e9", "\x01"]


def mutate_tree(xml: str, rng: random.Random, steps: int) -> str:
    root = etree.fromstring(xml.encode())
    for _ in range(steps):
        elements = list(root.iter(tag=etree.Element))
        el = rng.choice(elements)
        op = rng.randrange(6)
        if op == 0 and el is not root:
            el.getparent().remove(el)
        elif op == 1 and el.attrib:
            el.attrib[rng.choice(sorted(el.attrib))] = rng.choice(VALUES).replace("\x01", "")
        elif op == 2 and el.attrib:
            del el.attrib[rng.choice(sorted(el.attrib))]
        elif op == 3 and el is not root:
            el.addnext(etree.fromstring(etree.tostring(el)))
        elif op == 4:
            el.text = rng.choice(VALUES).replace("\x01", "")
        else:
            other = rng.choice(elements)
            if other is not el and el not in other.iterancestors() and other not in el.iterancestors():
                el.addprevious(etree.fromstring(etree.tostring(other)))
    return etree.tostring(root, encoding="unicode")


def mutate_text(xml: str, rng: random.Random, steps: int) -> str:
    for _ in range(steps):
        at = rng.randrange(len(xml) + 1)
        op = rng.randrange(3)
        if op == 0:
            xml = xml[:at] + xml[at + rng.randrange(1, 8):]
        elif op == 1:
            xml = xml[:at] + rng.choice(["<", ">", "/", "'", '"', "&", "&amp;", "]]>", "<!--", "-->", "<a>", "</a>",
                                         "<?x?>", "<![CDATA[", "\x00", "\ufeff", "\n", *VALUES]) + xml[at:]
        else:
            end = min(len(xml), at + rng.randrange(1, 40))
            xml = xml[:at] + xml[at:end] + xml[at:]
    return xml


def assert_import_handles(xml: str) -> None:
    result = import_xml(SourceFile("mutated.xml", xml))
    for d in result.diagnostics:
        assert d.span is not None and d.help, d
        assert d.span.source.name == "mutated.xml" and 0 <= d.span.start <= d.span.end <= len(xml), d
    if result.failed:
        assert result.text is None
        return
    # Whatever import accepts, compile accepts.
    graph, checked = check_source(SourceFile("imported.team", result.text))
    assert graph is not None and not checked.failed, (xml, result.text, checked.diagnostics)


@pytest.mark.slow
@settings(max_examples=250, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, len(SEED_XML) - 1), rng=st.randoms(use_true_random=False), steps=st.integers(1, 6),
       kind=st.sampled_from(["tree", "text"]))
def test_import_never_crashes_on_mutated_xml(seed, rng, steps, kind):
    mutate = mutate_tree if kind == "tree" else mutate_text
    assert_import_handles(mutate(SEED_XML[seed], rng, steps))


def test_safe_parsing_refuses_entities_and_bounds_size(tmp_path):
    code, _, err = teamc("import", "tests/cases/bad-xml-doctype.xml")
    assert code == 1 and "error[E0004]" in err
    xxe = "<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><domain type='kvm'><name>&x;</name></domain>"
    assert import_xml(SourceFile("x.xml", xxe)).diagnostics[0].code == "E0004"
    big = tmp_path / "big.xml"
    big.write_bytes(b"<domain>" + b" " * (64 * 1024 * 1024) + b"</domain>")
    code, _, err = teamc("import", str(big))
    assert code == 1 and "error[E0003]" in err and "larger than" in err
    assert load(str(big))[1][0].code == "E0003"
