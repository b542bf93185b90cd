"""teamc's lines for libvirt's own teaming fixtures equal libvirt's lines.

libvirt's fixtures use the i440fx `pc` machine, so the cases in
tests/conformance/ carry `allow pc-machine-team`. The comparison covers the
lines of the teams: each persistent's -netdev/-device pair and each VF's
-device, in order, in today's JSON syntax and in the older keyval syntax.
"""

import itertools
import shlex

import pytest
from lxml import etree

from helpers import TESTS, argv_from_script
from teamc.pipeline import Options, compile_source, load

CASES = TESTS / "conformance"
FIXTURES = CASES / "libvirt"

# (teamc case, libvirt fixture .args, syntax)
PAIRS = [
    ("net-virtio-teaming", "net-virtio-teaming.x86_64-latest.args", "json"),
    ("net-virtio-teaming-old", "net-virtio-teaming.args", "keyval"),
    ("net-virtio-teaming-hostdev", "net-virtio-teaming-hostdev.x86_64-latest.args", "json"),
    ("net-virtio-teaming-hostdev", "net-virtio-teaming-hostdev.args", "keyval"),
    ("net-virtio-teaming-network", "net-virtio-teaming-network.x86_64-latest.args", "json"),
]


def team_lines(argv: list[str]) -> list[tuple[str, str]]:
    """The (option, value) pairs that belong to teams."""
    pairs = list(itertools.pairwise(argv))
    return [(opt, val) for opt, val in pairs if opt in ("-netdev", "-device")
            and any(key in val for key in ("virtio-net-pci", "vfio-pci", "hostua-"))]


def libvirt_argv(fixture: str) -> list[str]:
    text = (FIXTURES / fixture).read_text()
    return shlex.split(text.replace("\\\n", " "))


def teamc_argv(case: str, syntax: str) -> list[str]:
    result = compile_source(load(f"tests/conformance/{case}.team")[0], Options(qemu_syntax=syntax))
    assert not result.failed, result.diagnostics
    (script,) = [a for a in result.artifacts if a.name.endswith(".sh")]
    return argv_from_script(script.text)


@pytest.mark.parametrize("case,fixture,syntax", PAIRS, ids=[p[1] for p in PAIRS])
def test_team_lines_equal_libvirt(case, fixture, syntax):
    ours, theirs = team_lines(teamc_argv(case, syntax)), team_lines(libvirt_argv(fixture))
    assert theirs, "the fixture has team lines"
    if case == "net-virtio-teaming-network":
        # libvirt hands QEMU a tap fd it opened on the network's bridge; a plain
        # command line uses -netdev bridge instead. Everything else is equal.
        assert theirs[0][1].startswith('{"type":"tap","fd":') and ours[0][1].startswith('{"type":"bridge"')
        ours, theirs = ours[1:], theirs[1:]
    assert ours == theirs


def nic_elements(xml_text: str, keep_guest_address: bool) -> list:
    """Teamed <interface>/<hostdev> elements as comparable trees (attribute order ignored)."""

    def tree(el):
        children = [tree(c) for c in el if isinstance(c.tag, str)
                    and (keep_guest_address or not (c.tag == "address" and c.get("type") == "pci"
                                                    and el.tag in ("interface", "hostdev")))]
        return (el.tag, tuple(sorted(el.attrib.items())), tuple(sorted(children)))

    root = etree.fromstring(xml_text.encode())
    return sorted(tree(el) for el in root.find("devices") if el.find("teaming") is not None)


XML_PAIRS = [
    ("net-virtio-teaming", "net-virtio-teaming.xml", False),
    ("net-virtio-teaming-hostdev", "net-virtio-teaming-hostdev.xml", True),
    ("net-virtio-teaming-network", "net-virtio-teaming-network.xml", False),
]


@pytest.mark.parametrize("case,fixture,with_address", XML_PAIRS, ids=[p[1] for p in XML_PAIRS])
def test_nic_elements_equal_libvirt_fixture(case, fixture, with_address):
    result = compile_source(load(f"tests/conformance/{case}.team")[0])
    (domain,) = [a for a in result.artifacts if a.name.endswith(".xml")]
    expected = nic_elements((FIXTURES / fixture).read_text(), with_address)
    assert nic_elements(domain.text, with_address) == expected
