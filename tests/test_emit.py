"""`compile --emit interfaces|json|dot`: NIC fragments for virsh, the IR as JSON, the teaming graph."""

from __future__ import annotations

import json
import subprocess

import pytest
from lxml import etree

from helpers import EXAMPLES, ROOT, VIRSH, teamc
from teamc.pipeline import Options, compile_source, load
from test_conformance import nic_elements

SCHEMAS = "/usr/share/libvirt/schemas"
# libvirt's own grammar for one <interface> or <hostdev>: what attach-device parses.
FRAGMENT_RNG = f"""<grammar xmlns="http://relaxng.org/ns/structure/1.0"
    datatypeLibrary="http://www.w3.org/2001/XMLSchema-datatypes">
  <start><choice><ref name="interface"/><ref name="hostdev"/></choice></start>
  <include href="{SCHEMAS}/domaincommon.rng"/>
</grammar>"""


def artifacts(path, *emit) -> dict[str, str]:
    result = compile_source(load(str(path.relative_to(ROOT)))[0], Options(emit=emit))
    assert not result.failed, result.diagnostics
    return {a.name: a.text for a in result.artifacts}


def attach_all(domain_xml: str, fragments: list[str], name: str, tmp_path) -> str:
    """virsh attach-device --config of every fragment into `domain_xml` minus its NICs, in libvirt's
    test driver; returns dumpxml. libvirt 9.0's test driver has no attach-device, so there the
    fragments are put into <devices> as attach-device --config would, and the domain is defined."""
    base = etree.fromstring(domain_xml.encode())
    devices = base.find("devices")
    for el in [el for el in devices if el.find("teaming") is not None]:
        devices.remove(el)
    base_path = tmp_path / f"{name}-base.xml"
    base_path.write_bytes(etree.tostring(base))
    paths = []
    for i, fragment in enumerate(fragments):
        paths.append(tmp_path / f"{name}-{i}.xml")
        paths[-1].write_text(fragment)
    script = f"define {base_path}; " + "".join(f"attach-device {name} {p} --config; " for p in paths)
    proc = subprocess.run([VIRSH, "-q", "-c", "test:///default", script + f"dumpxml {name} --inactive"],
                          capture_output=True, text=True, timeout=60, check=False)
    if "not supported by the connection driver" in proc.stderr:
        for fragment in fragments:
            devices.append(etree.fromstring(fragment.encode()))
        base_path.write_bytes(etree.tostring(base))
        proc = subprocess.run([VIRSH, "-q", "-c", "test:///default", f"define {base_path}; dumpxml {name}"],
                              capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "error" not in proc.stderr, proc.stderr
    dump = etree.fromstring(proc.stdout[proc.stdout.index("<domain"):].encode())
    for target in dump.findall("devices/interface/target"):  # the test driver's made-up host device
        target.getparent().remove(target)
    return etree.tostring(dump, encoding="unicode")


@pytest.mark.libvirt
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_interfaces_are_accepted_one_by_one(example, tmp_path):
    out = artifacts(example, "xml", "interfaces")
    schema = etree.RelaxNG(etree.fromstring(FRAGMENT_RNG.encode()))
    for vm in [name.removesuffix(".xml") for name in out if name.count(".") == 1]:
        fragments = [text for name, text in sorted(out.items()) if name.startswith(f"{vm}.") and name.count(".") > 1]
        assert fragments
        for fragment in fragments:
            assert schema.validate(etree.fromstring(fragment.encode())), (fragment, schema.error_log)
        dump = attach_all(out[f"{vm}.xml"], fragments, vm, tmp_path)
        # The same NICs as in teamc's full domain; libvirt places the unpinned ones itself.
        assert nic_elements(dump, False) == nic_elements(out[f"{vm}.xml"], False)


def test_interface_files_are_named_after_the_nic():
    names = sorted(artifacts(EXAMPLES[0].parent / "fleet.team", "interfaces"))
    assert "cache.ua-data0.xml" in names and "cache.vf-data0.xml" in names
    assert "edge-a.ua-wan.xml" in names and "edge-a.wan.transient.xml" in names
    pinned = artifacts(EXAMPLES[0].parent / "fleet.team", "interfaces")["cache.vf-data0.xml"]
    assert "<address type='pci' domain='0x0000' bus='0x06'" in pinned  # pinned in the .team: kept
    free = artifacts(EXAMPLES[0].parent / "fleet.team", "interfaces")["edge-a.ua-wan.xml"]
    assert "<address type='pci'" not in free


def test_json_is_the_ir():
    doc = json.loads(artifacts(EXAMPLES[0].parent / "fleet.team", "json")["cache.json"])
    assert doc["version"] == 1 and doc["vm"]["name"] == "cache" and doc["vm"]["memory_kib"] == 8 * 1024 * 1024
    ids = [tuple(nic["id"]) for nic in doc["nics"]]
    assert ids[0] == ("nic", "cache", "ua-data0", "")
    pairs = [(tuple(e["from"]), tuple(e["to"])) for e in doc["edges"] if e["kind"] == "pairs-with"]
    assert (("nic", "cache", "vf-data0", ""), ("nic", "cache", "ua-data0", "")) in pairs
    assert {e["kind"] for e in doc["edges"]} == {"pairs-with", "belongs-to"}
    data0 = doc["nics"][0]
    assert data0["guest_address"] == "0000:05:00.0" and data0["mac"] == "52:54:00:30:00:01"
    text = (EXAMPLES[0].parent / "fleet.team").read_text()
    span = data0["mac_span"]
    assert text[span["start"]:span["end"]] == "52:54:00:30:00:01" and span["file"] == "examples/fleet.team"
    assert doc["diagnostics"] == []


def test_json_and_dot_are_written_despite_errors(tmp_path):
    code, out, err = teamc("compile", "tests/cases/teaming-cycle.team", "--emit", "json,dot", "-o", str(tmp_path))
    assert code == 1 and "error[E0305]" in err
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["web.dot", "web.json"]
    doc = json.loads((tmp_path / "web.json").read_text())
    assert {d["code"] for d in doc["diagnostics"]} == {"E0305"}
    assert 'color="red"' in (tmp_path / "web.dot").read_text()
    code, out, _ = teamc("compile", "tests/cases/teaming-cycle.team", "--emit", "xml,dot")
    assert code == 1 and out.startswith("digraph") and "<domain" not in out


@pytest.mark.graphviz
@pytest.mark.parametrize("case", [*EXAMPLES, *sorted(ROOT.glob("tests/cases/*.team"))],
                         ids=lambda p: p.stem)
def test_graphviz_reads_every_teaming_graph(case):
    result = compile_source(load(str(case.relative_to(ROOT)))[0], Options(emit=("dot",)))
    for artifact in result.artifacts:
        proc = subprocess.run(["dot", "-Tsvg"], input=artifact.text, capture_output=True, text=True, timeout=60,
                              check=False)
        assert proc.returncode == 0 and "<svg" in proc.stdout, (proc.stderr, artifact.text)
        assert proc.stderr == "", proc.stderr
    errors = [d for d in result.diagnostics if d.is_error]
    if errors and result.artifacts:
        assert any('="red"' in a.text for a in result.artifacts)


# --- the emitter registry ------------------------------------------------------------------------


def test_the_cli_api_and_output_folder_take_their_kinds_from_the_registry():
    from teamc.api import OptionError, make_options
    from teamc.emitters import registry
    from teamc.outdir import output_name

    kinds = list(registry())
    assert kinds == ["xml", "interfaces", "qemu", "json", "dot"]  # artifact order within a VM
    code, out, _ = teamc("compile", "--help")
    assert code == 0
    help_text = " ".join(out.split())
    for emitter in registry().values():
        assert f"{emitter.kind} ({emitter.help})" in help_text
        assert make_options(emit=[emitter.kind]).emit == (emitter.kind,)
        assert all(output_name(f"vm{suffix}") for suffix in emitter.suffixes)
    with pytest.raises(OptionError, match=f"choose from {', '.join(kinds)}"):
        make_options(emit=["pdf"])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_emitter_writes_only_its_own_suffixes_and_analysis_kinds_say_so(path):
    from teamc.emitters import registry

    for emitter in registry().values():
        result = compile_source(load(str(path.relative_to(ROOT)))[0], Options(emit=(emitter.kind,)))
        assert not result.failed
        assert result.artifacts
        assert all(a.name.endswith(emitter.suffixes) and a.analysis == emitter.analysis for a in result.artifacts)


def test_a_new_output_kind_is_one_module(tmp_path, monkeypatch):
    """What docs/architecture.md promises: a module in emitters/ defining EMITTER is a kind, with no
    other change (the pipeline and the option check find it)."""
    from teamc import emitters

    (tmp_path / "names.py").write_text(
        "from teamc.emitters import Emitter\n"
        "from teamc.pipeline import Artifact\n"
        "def emit(subject, options):\n"
        "    return [Artifact(f'{subject.vm.name}.names', ' '.join(d.nic.name for d in subject.layout.devices))]\n"
        "EMITTER = Emitter('names', 'NIC names', 60, ('.names',), emit)\n")
    monkeypatch.setattr(emitters, "__path__", [*emitters.__path__, str(tmp_path)])
    emitters.registry.cache_clear()
    try:
        from teamc.api import make_options

        result = compile_source(load("examples/seed.team")[0], make_options(emit=["xml", "names"]))
        assert [a.name for a in result.artifacts] == ["QEMUGuest1.xml", "QEMUGuest1.names"]
        assert result.artifacts[1].text == "backup0 backup0 backup1 backup1"
    finally:
        monkeypatch.undo()
        emitters.registry.cache_clear()
