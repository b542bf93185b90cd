"""Every emitted argv starts the real QEMU (paused, TCG) and answers QMP.

QEMU hides a failover primary until the guest negotiates VIRTIO_NET_F_STANDBY,
so the VF (which does not exist here) is accepted at start-up. The stand-in run
replaces each VF by an emulated e1000e on the same id/bus/addr with the
standby's failover off: QEMU then realizes the primary at once, and its own
failover placement checks (PCI Express bus, alone in its slot, hot-pluggable)
run on teamc's layout.
"""

import subprocess

import pytest

from helpers import (
    EXAMPLES,
    QEMU,
    QTREE,
    TESTS,
    expected_placement,
    qemu_commands,
    qtree_placement,
    runnable_here,
    standin,
    start_qemu,
    without_device,
)
from teamc.pipeline import Options, compile_source, load
from teamc.source import SourceFile

pytestmark = pytest.mark.qemu


def scripts(path, syntax="json"):
    result = compile_source(load(str(path))[0], Options(qemu_syntax=syntax))
    assert not result.failed
    return [a for a in result.artifacts if a.name.endswith(".sh")]


def commands(path, syntax="json"):
    return qemu_commands(load(str(path))[0], syntax)


EXAMPLE_SCRIPTS = [(p, s) for p in EXAMPLES for s in ("json", "keyval")]


@pytest.mark.parametrize("path,syntax", EXAMPLE_SCRIPTS, ids=lambda v: getattr(v, "stem", v))
def test_qemu_starts_every_example(path, syntax):
    for command in commands(path, syntax):
        command = runnable_here(command)
        code, stderr, (qtree,) = start_qemu(command.argv(syntax), QTREE)
        assert code == 0, stderr
        assert "error" not in stderr.lower(), stderr
        placed = qtree_placement(qtree["return"])
        wanted = expected_placement(command)
        # Every device but the hidden primaries is realized exactly where teamc put it.
        hidden = {i for i, (driver, _, _) in wanted.items() if driver == "vfio-pci"}
        assert hidden
        assert {i: placed.get(i) for i in wanted if i not in hidden} == {
            i: p for i, p in wanted.items() if i not in hidden}


@pytest.mark.parametrize("path,syntax", EXAMPLE_SCRIPTS, ids=lambda v: getattr(v, "stem", v))
def test_qemu_accepts_primaries_in_place_with_standin(path, syntax):
    for command in commands(path, syntax):
        command = standin(runnable_here(command))
        code, stderr, (qtree,) = start_qemu(command.argv(syntax), QTREE)
        assert code == 0, stderr
        wanted = expected_placement(command)
        assert any(driver == "e1000e" for driver, _, _ in wanted.values())
        assert {i: qtree_placement(qtree["return"]).get(i) for i in wanted} == wanted


def test_generated_script_runs_as_is(tmp_path):
    """The .sh itself is runnable; extra arguments are appended to QEMU's."""
    (script,) = scripts(TESTS.parent / "examples" / "seed.team")
    path = tmp_path / script.name
    path.write_text(script.text)
    proc = subprocess.run(["sh", str(path), "-accel", "tcg", "-S", "-qmp", "stdio"],
                          input='{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n',
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert '"return"' in proc.stdout


def test_qemu_refuses_the_pc_layout_that_libvirt_accepts():
    """Why E0401 exists: on i440fx, QEMU rejects the primary once it is realized."""
    (command,) = commands(TESTS / "conformance" / "net-virtio-teaming.team")
    code, stderr, _ = start_qemu(standin(runnable_here(command)).argv())
    assert code != 0
    assert "failover primary device must be on PCIExpress bus" in stderr


def test_primary_hotplugs_on_its_root_port_but_not_on_pcie_root():
    """Why E0404 exists: QEMU plugs the primary in at negotiation and on the migration
    target; that hot-plug works on teamc's root port and fails on pcie.0."""
    (command,) = commands(TESTS.parent / "examples" / "seed.team")
    command = standin(runnable_here(command))
    primary = dict(command.device("hostdev0").props)
    without = without_device(command, "hostdev0").argv()
    on_root = dict(primary, bus="pcie.0", addr="0x9")
    code, stderr, (root_reply, port_reply) = start_qemu(
        without, [{"execute": "device_add", "arguments": on_root}, {"execute": "device_add", "arguments": primary}])
    assert code == 0, stderr
    assert "does not support hotplugging" in root_reply["error"]["desc"]
    assert port_reply == {"return": {}}


EDGE_PROGRAMS = {
    # Functions 0 and 1 of one slot: function 0 must be multifunction, or QEMU refuses function 1
    # ("single function device can't be populated in function 5.1"), on pcie.0 and on a root port.
    "multifunction": "vm a {\n"
                     " team x { persistent virtio user { address 0000:00:05.0 }; transient hostdev 0000:03:07.1 }\n"
                     " team y { persistent virtio user { address 0000:00:05.1 }; transient hostdev 0000:03:07.2 }\n"
                     " team z { persistent virtio user { address 0000:06:00.1 }; transient hostdev 0000:03:07.3 }\n"
                     " team w { persistent virtio user { address 0000:06:00.0 }; transient hostdev 0000:03:07.4 } }",
    # teamc keeps a transitional standby on its own root port (libvirt would use a pcie-pci-bridge).
    "transitional": "vm a { team x { persistent virtio-transitional user; transient hostdev 0000:03:07.1 } }",
    # The highest boot order (QEMU's bootindex is an int32), and one NIC's ROM through fw_cfg (E0107 allows one).
    "boot-max-rom-bar-off": "vm a { team x { persistent virtio user { boot 2147483647; rom bar off }; "
                            "transient hostdev 0000:03:07.1 { rom bar off } }\n"
                            " team y { persistent virtio user { rom enabled no }; transient hostdev 0000:03:07.2 } }",
    # The most vCPUs teamc lets through (E0205 above): QEMU's TCG refuses APIC ids above 255.
    "vcpus-255": "vm a { vcpus 255; accel tcg; team x { persistent virtio user; transient hostdev 0000:03:07.1 } }",
}


@pytest.mark.parametrize("name", sorted(EDGE_PROGRAMS))
def test_qemu_starts_edge_programs_with_every_device_in_place(name):
    (command,) = qemu_commands(SourceFile(f"{name}.team", EDGE_PROGRAMS[name]))
    command = standin(runnable_here(command))
    code, stderr, (qtree,) = start_qemu(command.argv(), QTREE, timeout=120)
    assert code == 0, stderr
    wanted = expected_placement(command)
    assert {i: qtree_placement(qtree["return"]).get(i) for i in wanted} == wanted


@pytest.mark.parametrize("case", ["vf-unresolved", "no-qemu-backend"])
def test_check_werror_fails_where_compile_werror_fails(case, tmp_path):
    """W0504/W0505 come from the QEMU backend; `check` runs it too (without writing anything)."""
    from helpers import teamc

    path = f"tests/cases/{case}.team"
    assert teamc("check", path)[0] == 0
    assert teamc("check", "--werror", path)[0] == teamc("compile", "--werror", path, "-o", str(tmp_path))[0] == 1


def test_qemu_refuses_two_fw_cfg_roms_of_one_name():
    """Why E0107 exists: `rom bar off` puts each virtio NIC's efi-virtio.rom into fw_cfg, once only."""
    nics = [arg for i in (1, 2)
            for arg in ("-netdev", f"user,id=n{i}", "-device", f"virtio-net-pci,netdev=n{i},rombar=0")]
    code, stderr, _ = start_qemu([QEMU, "-machine", "q35", "-accel", "tcg", "-display", "none", "-nodefaults", *nics])
    assert code != 0
    assert "duplicate fw_cfg file name: genroms/efi-virtio.rom" in stderr


def test_qemu_refuses_a_rom_file_without_rom_bar_on_a_plugged_primary():
    """Why E0105 refuses `rom file` with `rom bar off` on the VF: QEMU plugs the primary in later."""
    (command,) = commands(TESTS.parent / "examples" / "seed.team")
    command = standin(runnable_here(command))
    primary = dict(command.device("hostdev0").props)
    without = without_device(command, "hostdev0").argv()
    with_rom = dict(primary, rombar=0, romfile="efi-e1000e.rom")
    bare = dict(primary, rombar=0)
    code, stderr, (rom_reply, bare_reply) = start_qemu(
        without, [{"execute": "device_add", "arguments": with_rom}, {"execute": "device_add", "arguments": bare}])
    assert code == 0, stderr
    assert "Hot-plugged device without ROM bar can't have an option ROM" in rom_reply["error"]["desc"]
    assert bare_reply == {"return": {}}
