"""Every emitted domain is valid for libvirt: its RNG schema and its test driver."""

import pytest
from lxml import etree

from compiler.pipeline import compile_source, load
from helpers import EXAMPLES, TESTS, rng_errors, virsh_define_dumpxml

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
