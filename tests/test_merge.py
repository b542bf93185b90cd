"""`compile --into BASE.xml`: teams merged into the user's domain, everything else byte for byte.

Golden merged domains in tests/golden/merge/, each valid against libvirt's RNG
and defined by `virsh -c test:///default`; merging the result again changes
nothing; conflicts with the base are diagnostics pointing into the base.
"""

from __future__ import annotations

import difflib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import GOLDEN, TESTS, check_golden, rng_errors, teamc, virsh_define_dumpxml

MERGE = TESTS / "merge"
FIXTURE = "tests/conformance/libvirt/net-virtio-teaming.xml"

# (case, .team file, base domain, VM name)
CASES = [
    ("web01", "tests/merge/web01.team", "tests/merge/web01-base.xml", "web01"),
    ("fixture-imported", "tests/merge/net-virtio-teaming.team", FIXTURE, "QEMUGuest1"),
]


def merged(team: str, base: str, *extra: str) -> str:
    code, out, err = teamc("compile", team, "--into", base, *extra)
    assert code == 0 and "error[" not in err, err
    return out


@pytest.mark.libvirt
@pytest.mark.parametrize("case,team,base,vm", CASES, ids=[c[0] for c in CASES])
def test_merge_golden_valid_and_defined(case, team, base, vm, tmp_path, update_golden):
    text = merged(team, base)
    check_golden(GOLDEN / "merge" / f"{case}.xml", text, update_golden)
    assert rng_errors(text) == []
    path = tmp_path / "merged.xml"
    path.write_text(text)
    dump = virsh_define_dumpxml(path, vm)
    assert dump.count("<teaming") == text.count("<teaming")
    # Merging into the merged domain changes nothing.
    assert merged(team, str(path)) == text


def test_untouched_parts_keep_every_byte():
    base = (MERGE / "web01-base.xml").read_text()
    text = merged("tests/merge/web01.team", "tests/merge/web01-base.xml")
    ops = difflib.SequenceMatcher(None, base.splitlines(True), text.splitlines(True), autojunk=False).get_opcodes()
    assert {op for op, *_ in ops} == {"equal", "insert"}, "the base lost or changed a line"
    assert "<!-- management network: not part of any team, stays as it is -->" in text


def test_replacing_a_team_changes_only_its_lines(tmp_path):
    first = tmp_path / "first.xml"
    first.write_text(merged("tests/merge/web01.team", "tests/merge/web01-base.xml"))
    team = tmp_path / "web01.team"
    team.write_text((MERGE / "web01.team").read_text().replace("mtu 9000", "mtu 1500"))
    second = merged(str(team), str(first))
    diff = [line for line in difflib.unified_diff(first.read_text().splitlines(), second.splitlines(), lineterm="")
            if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert diff == ["-      <mtu size='9000'/>", "+      <mtu size='1500'/>"]


def test_import_edit_fmt_merge_round_trip(tmp_path):
    """docs/import-and-merge.md's walk-through: import libvirt's fixture, edit, fmt, compile --into the fixture."""
    code, _, _ = teamc("import", FIXTURE, "-o", str(tmp_path))
    assert code == 0
    team = tmp_path / "net-virtio-teaming.team"
    assert merged(str(team), FIXTURE).count("<interface") == 4  # unchanged teams merge back
    team.write_text(team.read_text().replace("mac 66:44:33:22:11:00", "mac 52:54:00:66:11:00"))
    assert teamc("fmt", "--check", str(team))[0] == 0
    assert merged(str(team), FIXTURE) == merged("tests/merge/net-virtio-teaming.team", FIXTURE)


def conflict(tmp_path, base_edit, team_edit=lambda t: t) -> str:
    base = tmp_path / "base.xml"
    base.write_text(base_edit((MERGE / "web01-base.xml").read_text()))
    team = tmp_path / "web01.team"
    team.write_text(team_edit((MERGE / "web01.team").read_text()))
    code, out, err = teamc("compile", str(team), "--into", str(base), "--format", "concise")
    assert code == 1 and out == "", err
    return err


def test_conflicts_with_the_base_are_refused(tmp_path):
    err = conflict(tmp_path, lambda b: b.replace("machine='pc-q35-7.2'", "machine='pc-i440fx-7.2'"))
    assert "base.xml:10:34: E0405 the base domain's machine `pc-i440fx-7.2` is not of the VM's" in err
    err = conflict(tmp_path, lambda b: b.replace("machine='pc-q35-7.2'", "machine='virt'"))
    assert "E0405 the base domain's machine `virt` cannot host a failover team" in err
    err = conflict(tmp_path, lambda b: b.replace("<target dev='vda' bus='virtio'/>",
                                                 "<target dev='vda' bus='virtio'/>\n      <alias name='ua-uplink'/>"))
    assert "E0102 alias `ua-uplink` is already used by the base domain's <disk 'file'>" in err
    err = conflict(tmp_path, lambda b: b.replace("52:54:00:6b:3c:58", "52:54:00:10:00:01"))
    assert "E0309 MAC 52:54:00:10:00:01 is also used by the base domain's <interface 'network'>" in err
    err = conflict(tmp_path, lambda b: b, lambda t: t.replace("{ mtu 9000 }", "{ mtu 9000; address 0000:04:00.0 }"))
    assert "E0403 guest PCI address 0000:04:00.0 is already used by the base domain's <disk 'file'>" in err
    err = conflict(tmp_path, lambda b: b, lambda t: t.replace("{ mtu 9000 }", "{ mtu 9000; address 0000:02:00.0 }"))
    assert "E0403 guest PCI address 0000:02:00.0 is already used by the base domain's <controller 'qemu-xhci'>" in err
    hostdev = ("<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x5e' "
               "slot='0x02' function='0x1'/></source></hostdev>\n    <memballoon")
    err = conflict(tmp_path, lambda b: b.replace("<memballoon", hostdev, 1))
    assert "E0310 host VF 0000:5e:02.1 is also assigned by the base domain's <hostdev 'pci'>" in err


def test_a_setting_of_a_replaced_nic_that_the_team_does_not_state_is_kept(tmp_path):
    base = tmp_path / "base.xml"
    first = merged("tests/merge/web01.team", "tests/merge/web01-base.xml")
    # Out of libvirt's order in the base; the merge writes it at its place (after <teaming>).
    base.write_text(first.replace("<source bridge='br0'/>", "<source bridge='br0'/>\n      <link state='down'/>"))
    code, out, err = teamc("compile", "tests/merge/web01.team", "--into", str(base))
    assert (code, err) == (0, "")
    teaming = "<teaming type='persistent'/>"
    assert out == first.replace(teaming, f"{teaming}\n      <link state='down'/>", 1)
    assert rng_errors(out) == []


def test_usage_errors(tmp_path):
    code, _, err = teamc("compile", "tests/merge/web01.team", "--into", "tests/merge/web01-base.xml", "--emit", "qemu")
    assert code == 2 and "--into" in err
    code, _, err = teamc("compile", "examples/fleet.team", "--into", "tests/merge/web01-base.xml")
    assert code == 2 and "0 VMs to merge" in err
    code, _, err = teamc("compile", "tests/merge/web01.team", "--into", "no/such.xml")
    assert code == 2 and "cannot read no/such.xml" in err
    code, _, err = teamc("compile", "tests/merge/web01.team", "--into", "tests/cases/bad-xml.xml")
    assert code == 1 and "error[E0004]" in err


def test_output_folder_gets_the_vm_file(tmp_path):
    code, out, err = teamc("compile", "tests/merge/web01.team", "--into", "tests/merge/web01-base.xml",
                           "-o", str(tmp_path))
    assert (code, out, err) == (0, "", "")
    assert (tmp_path / "web01.xml").read_text() == (GOLDEN / "merge" / "web01.xml").read_text()


@pytest.mark.slow
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(rng=st.randoms(use_true_random=False), steps=st.integers(1, 6), kind=st.sampled_from(["tree", "text"]))
def test_merge_never_crashes_on_a_mutated_base(rng, steps, kind):
    """Whatever the base holds: a diagnostic, or well-formed XML."""
    from lxml import etree

    from teamc.pipeline import Options, compile_source, load
    from teamc.source import SourceFile
    from test_importer import mutate_text, mutate_tree

    base = (mutate_tree if kind == "tree" else mutate_text)((MERGE / "web01-base.xml").read_text(), rng, steps)
    result = compile_source(load("tests/merge/web01.team")[0], Options(emit=("xml",), into=SourceFile("b.xml", base)))
    assert all(d.help and d.span is not None for d in result.diagnostics)
    if not result.failed:
        for artifact in result.artifacts:
            etree.fromstring(artifact.text.encode())


# --- hostile and unusual bases: bounded cost, the base's own bytes kept ----------------------------------------


def _merge_seconds(base_text: str) -> float:
    """In-process time of one merge (no interpreter start-up to blur the growth)."""
    import time

    from teamc.pipeline import Options, compile_source, load
    from teamc.source import SourceFile

    source, _ = load("tests/merge/web01.team")
    options = Options(emit=("xml",), into=SourceFile("base.xml", base_text))
    start = time.perf_counter()
    result = compile_source(source, options)
    elapsed = time.perf_counter() - start
    assert not result.failed, result.diagnostics
    return elapsed


def _one_line_base(children: str) -> str:
    head, devices = (MERGE / "web01-base.xml").read_text().split("<devices>", 1)
    return head + "<devices>" + children + devices.split("</devices>", 1)[0].replace("\n", "") + "</devices></domain>\n"


@pytest.mark.slow
@pytest.mark.parametrize("child", [
    "<serial type='pty'/>",  # every child's indentation was looked for back to the start of the line
    # every one is removed (a second transient of the team's persistent NIC): one copy of the text per removal
    "<interface type='user'><teaming type='transient' persistent='ua-uplink'/></interface>",
], ids=["kept", "removed"])
def test_merge_cost_grows_linearly_with_devices_on_one_line(child):
    small, large = 20_000, 80_000
    # The best of two runs each, against a shared machine's noise; linear growth gives about 4, quadratic 16.
    ratio = (min(_merge_seconds(_one_line_base(child * large)) for _ in range(2))
             / min(_merge_seconds(_one_line_base(child * small)) for _ in range(2)))
    assert ratio < 8, f"{large // small}x the devices took {ratio:.1f}x the time"


def test_a_crlf_base_with_a_byte_order_mark_keeps_both(tmp_path):
    base = tmp_path / "base.xml"
    base.write_bytes(b"\xef\xbb\xbf" + (MERGE / "web01-base.xml").read_bytes().replace(b"\n", b"\r\n"))
    code, out, err = teamc("compile", "tests/merge/web01.team", "--into", str(base), "-o", str(tmp_path / "out"))
    assert (code, out, err) == (0, "", "")
    data = (tmp_path / "out" / "web01.xml").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf<?xml")
    assert b"\n" not in data.replace(b"\r\n", b"")  # no bare LF among the CRLF lines
    lf = (GOLDEN / "merge" / "web01.xml").read_bytes()
    assert data == b"\xef\xbb\xbf" + lf.replace(b"\n", b"\r\n")
    # Merging again changes nothing.
    code, again, _ = teamc("compile", "tests/merge/web01.team", "--into", str(tmp_path / "out" / "web01.xml"))
    assert code == 0 and again.encode() == data


@pytest.mark.parametrize("where", ["comment", "pi", "cdata"])
def test_doctype_mentioned_in_a_comment_is_no_doctype(tmp_path, where):
    mention = {"comment": "<!-- no <!DOCTYPE here -->", "pi": "<?note no <!DOCTYPE here?>",
               "cdata": "<description><![CDATA[no <!DOCTYPE here]]></description>"}[where]
    text = (MERGE / "web01-base.xml").read_text()
    text = text.replace("<name>web01</name>", "<name>web01</name>" + mention) if where == "cdata" else \
        text.replace("<domain", mention + "\n<domain", 1)
    base = tmp_path / "base.xml"
    base.write_text(text)
    code, out, err = teamc("compile", "tests/merge/web01.team", "--into", str(base))
    assert code == 0 and mention in out, err


def test_a_real_doctype_is_still_refused(tmp_path):
    base = tmp_path / "base.xml"
    base.write_text("<?xml version='1.0'?>\n<!-- a comment -->\n<!DOCTYPE domain>\n"
                    + (MERGE / "web01-base.xml").read_text().split("\n", 1)[1])
    code, _, err = teamc("compile", "tests/merge/web01.team", "--into", str(base))
    assert code == 1 and "error[E0004]" in err and "has a DOCTYPE" in err and ":3:1" in err


def test_two_nics_pinned_to_one_free_root_port_of_the_base_share_it(tmp_path):
    """Functions 0 and 1 behind one free pcie-root-port of the base are one slot, as in a compile without a
    base; the merge's own placement took the port for the first NIC and refused the second (E0403 'not a
    free pcie-root-port')."""
    port = ("<controller type='pci' index='6' model='pcie-root-port'>\n      <model name='pcie-root-port'/>\n"
            "      <target chassis='6' port='0x15'/>\n"
            "      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x5'/>\n    </controller>\n"
            "    <controller type='sata' index='0'>")
    base = tmp_path / "base.xml"
    base.write_text((MERGE / "web01-base.xml").read_text().replace("<controller type='sata' index='0'>", port, 1))
    team = tmp_path / "web01.team"
    team.write_text((MERGE / "web01.team").read_text()
                    .replace("{ mtu 9000 }", "{ mtu 9000; address 0000:06:00.0 }")
                    .replace("bridge br-storage;", "bridge br-storage { address 0000:06:00.1 };"))
    text = merged(str(team), str(base))
    assert "bus='0x06' slot='0x00' function='0x0' multifunction='on'/>" in text
    assert "bus='0x06' slot='0x00' function='0x1'/>" in text
    assert text.count("index='6'") == 1  # the base's port, no new one for bus 6
    assert rng_errors(text) == []
