"""Every emitted domain is valid for libvirt: its RNG schema and its test driver."""

import pytest
from lxml import etree

from helpers import EXAMPLES, TESTS, rng_errors, virsh_define_dumpxml
from teamc.pipeline import compile_source, load

pytestmark = pytest.mark.libvirt

CONFORMANCE = sorted((TESTS / "conformance").glob("*.team"))


def domains(path):
    result = compile_source(load(str(path))[0])
    assert not result.failed
    return [a for a in result.artifacts if a.name.endswith(".xml")]


def teaming_elements(xml_text):
    """(element, mac, teaming type, persistent=, alias) of each teamed NIC, in order."""
    root = etree.fromstring(xml_text.encode())
    out = []
    for el in root.find("devices"):
        teaming = el.find("teaming")
        if teaming is None:
            continue
        mac, alias = el.find("mac"), el.find("alias")
        out.append((el.tag, mac.get("address") if mac is not None else None, teaming.get("type"),
                    teaming.get("persistent"), alias.get("name") if alias is not None else None))
    return out


@pytest.mark.parametrize("path", EXAMPLES + CONFORMANCE, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_domains_validate_against_libvirt_rng(path):
    for artifact in domains(path):
        assert rng_errors(artifact.text) == [], artifact.name


@pytest.mark.parametrize("path", EXAMPLES + CONFORMANCE, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_virsh_defines_domain_and_keeps_teaming(path, tmp_path):
    for artifact in domains(path):
        xml_path = tmp_path / artifact.name
        xml_path.write_text(artifact.text)
        dumped = virsh_define_dumpxml(xml_path, artifact.name.removesuffix(".xml"))
        ours = teaming_elements(artifact.text)
        assert ours, "every example has teamed NICs"
        assert teaming_elements(dumped) == ours


ALIAS_PROBES = ["ua-wan_v10-x", "ua-wan.v10", "ua-a b", "ua-a:b", "ua-a/b", "ua-é", "ua-A9_z-"]


def test_e0202_accepts_exactly_the_aliases_libvirt_keeps(tmp_path):
    """E0202's rule is libvirt's: the test driver keeps an alias teamc accepts, and drops the others."""
    from teamc.lower import lower
    from teamc.parser import parse
    from teamc.source import SourceFile

    nics = "".join(f"<interface type='user'><mac address='52:54:00:00:00:{i:02x}'/><model type='virtio'/>"
                   f"<alias name='{alias}'/></interface>" for i, alias in enumerate(ALIAS_PROBES))
    xml_path = tmp_path / "aliases.xml"
    xml_path.write_text(f"<domain type='qemu'><name>aliases</name><memory>262144</memory><os><type arch='x86_64' "
                        f"machine='q35'>hvm</type></os><devices>{nics}</devices></domain>")
    kept = {el.get("name") for el in etree.fromstring(virsh_define_dumpxml(xml_path, "aliases").encode()).iter("alias")}

    def teamc_accepts(alias: str) -> bool:
        module, _ = parse(SourceFile("t.team", f'vm a {{ nic "{alias}" {{ source user; teaming persistent }} }}'))
        return not any(d.code == "E0202" for d in lower(module).diagnostics)

    assert {alias for alias in ALIAS_PROBES if teamc_accepts(alias)} == kept == {"ua-wan_v10-x", "ua-A9_z-"}


EDGE_PROGRAMS = {
    # A plain <hostdev> VF with boot and rom: <teaming> must come before <boot>/<rom> there.
    "hostdev-boot-rom": "vm a { allow primary-boot-or-rom; allow hostdev-mac-preset\n"
                        " team x { persistent virtio user; transient pci-hostdev 0000:03:07.1 { boot 1; rom bar off } }"
                        " }",
    # Two standbys on functions 0 and 1 of one slot: function 0 carries multifunction='on'.
    "multifunction": "vm a { team x { persistent virtio user { address 0000:00:05.0 }; "
                     "transient hostdev 0000:03:07.1 }\n"
                     " team y { persistent virtio user { address 0000:00:05.1 }; transient hostdev 0000:03:07.2 } }",
}


@pytest.mark.parametrize("name", sorted(EDGE_PROGRAMS))
def test_edge_programs_validate_and_define(name, tmp_path):
    from teamc.pipeline import compile_source
    from teamc.source import SourceFile

    result = compile_source(SourceFile(f"{name}.team", EDGE_PROGRAMS[name]))
    assert not result.failed, [d.message for d in result.diagnostics]
    (domain,) = [a for a in result.artifacts if a.name.endswith(".xml")]
    assert rng_errors(domain.text) == []
    xml_path = tmp_path / domain.name
    xml_path.write_text(domain.text)
    assert teaming_elements(virsh_define_dumpxml(xml_path, "a")) == teaming_elements(domain.text)
