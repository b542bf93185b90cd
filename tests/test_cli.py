"""The `teamc` command: exit codes, outputs, atomic writes, options."""

import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, teamc, teamc_process

SEED = "examples/seed.team"
BROKEN = "tests/cases/mac-mismatch.team"


def test_check_ok_prints_nothing():
    assert teamc("check", SEED) == (0, "", "")


def test_check_errors_exit_1():
    code, out, err = teamc("check", BROKEN)
    assert code == 1 and out == ""
    assert "error[E0308]" in err and err.endswith("teamc: 1 error\n")


def test_usage_errors_exit_2():
    assert teamc("frobnicate")[0] == 2
    assert teamc("check")[0] == 2
    code, _, err = teamc("check", "no/such/file.team")
    assert code == 2 and "cannot read no/such/file.team" in err
    assert teamc("compile", SEED, "--emit", "pdf")[0] == 2
    assert teamc("compile", SEED, "--vf", "nonsense")[0] == 2
    assert teamc("check", SEED, "--allow", "E0308")[0] == 2  # not an allowable check


def test_version():
    from teamc import __version__

    proc = teamc_process("--version")
    assert (proc.returncode, proc.stdout.decode(), proc.stderr) == (0, f"teamc {__version__}\n", b"")


def test_compile_to_stdout_single_artifact_is_raw():
    code, out, err = teamc("compile", SEED, "--emit", "xml")
    assert code == 0 and err == ""
    assert out.startswith("<domain type='kvm'>") and out.endswith("</domain>\n")


def test_compile_to_stdout_several_artifacts_are_headed():
    code, out, _ = teamc("compile", SEED)
    assert code == 0
    assert out.startswith("==> QEMUGuest1.xml <==\n<domain")
    assert "\n==> QEMUGuest1.sh <==\n#!/bin/sh\n" in out


def test_compile_writes_files(tmp_path):
    code, out, err = teamc("compile", SEED, "examples/fleet.team", "-o", str(tmp_path / "out"))
    assert (code, out, err) == (0, "", "")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [".teamc-manifest.json", "QEMUGuest1.sh", "QEMUGuest1.xml", "cache.sh", "cache.xml", "edge-a.sh",
                     "edge-a.xml", "edge-b.sh", "edge-b.xml"]
    script = tmp_path / "out" / "QEMUGuest1.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    assert (ROOT / "tests/golden/compile/seed/json/QEMUGuest1.sh").read_text() == script.read_text()


def test_a_file_with_errors_gets_no_outputs_and_the_others_do(tmp_path):
    out = tmp_path / "out"
    code, _, err = teamc("compile", SEED, BROKEN, "-o", str(out))
    assert code == 1 and "E0308" in err
    assert sorted(p.name for p in out.iterdir()) == [".teamc-manifest.json", "QEMUGuest1.sh", "QEMUGuest1.xml"]


def test_nothing_is_printed_to_stdout_when_any_file_has_errors():
    code, out, _ = teamc("compile", SEED, BROKEN)
    assert code == 1 and out == ""


def test_rewrite_replaces_atomically_and_leaves_no_temp_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "QEMUGuest1.xml").write_text("old")
    assert teamc("compile", SEED, "-o", str(out))[0] == 0
    assert (out / "QEMUGuest1.xml").read_text().startswith("<domain")
    assert sorted(os.listdir(out)) == [".teamc-manifest.json", "QEMUGuest1.sh", "QEMUGuest1.xml"]


def test_stdin_input():
    text = (ROOT / SEED).read_text()
    code, out, _ = teamc("compile", "-", "--emit", "xml", stdin=text)
    assert code == 0 and "<name>QEMUGuest1</name>" in out
    code, _, err = teamc("check", "-", stdin="vm x { bogus }\n")
    assert code == 1 and "<stdin>:1:8" in err


def test_keyval_and_lines_formats():
    code, out, _ = teamc("compile", SEED, "--emit", "qemu", "--qemu-syntax", "keyval", "--qemu-format", "lines")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "/usr/bin/qemu-system-x86_64"
    assert "vfio-pci,host=0000:03:07.1,id=hostdev0,bus=pci.3,addr=0x0,failover_pair_id=ua-backup0" in lines


def test_pool_vf_without_concrete_vf_warns_and_still_succeeds(tmp_path):
    case = "tests/cases/vf-unresolved.team"
    code, _, err = teamc("compile", case, "-o", str(tmp_path))
    assert code == 0 and "warning[W0504]" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".teamc-manifest.json", "web.xml"]
    code, _, err = teamc("compile", case, "-o", str(tmp_path), "--vf", "web:up0=0000:03:10.2")
    assert (code, err) == (0, "")
    assert '"host":"0000:03:10.2"' in (tmp_path / "web.sh").read_text()


def test_vf_naming_nothing_is_a_usage_error():
    code, _, err = teamc("compile", SEED, "--vf", "QEMUGuest1:nope=0000:03:10.2")
    assert code == 2 and "no hostdev-pool transient" in err


def test_allow_on_the_command_line_downgrades():
    case = "tests/cases/pc-machine-team.team"
    assert teamc("check", case)[0] == 1
    code, _, err = teamc("check", case, "--allow", "pc-machine-team")
    assert code == 0 and "warning[E0401]" in err


def test_duplicate_vm_across_files(tmp_path):
    copy = tmp_path / "copy.team"
    copy.write_text((ROOT / SEED).read_text())
    code, _, err = teamc("compile", SEED, str(copy))
    assert code == 1 and "error[E0101]: VM `QEMUGuest1` is defined in two input files" in err
    assert teamc("check", SEED, str(copy))[0] == 0  # only output file names can clash
    assert teamc("compile", SEED, SEED)[0] == 0  # the same path twice is one input


def test_concise_and_json_formats():
    code, _, err = teamc("check", BROKEN, "--format", "concise")
    assert code == 1
    assert err.splitlines()[0].startswith(f"{BROKEN}:3:48: E0308 transient nic `vf0` has MAC")
    import json

    code, out, err = teamc("check", BROKEN, "--format", "json")
    data = json.loads(out)  # a document for a program: on stdout, stderr stays empty
    assert err == "" and data["version"] == 1 and data["diagnostics"][0]["code"] == "E0308"


def test_python_dash_m_and_console_script_agree(tmp_path):
    proc = teamc_process("compile", SEED, "--emit", "xml")
    assert proc.returncode == 0
    assert proc.stdout.decode() == teamc("compile", SEED, "--emit", "xml")[1]


# --- the environment's streams and file systems: exit 2 and a message, never "internal error" -------

UGLY = "vm web {\n  team up0 { persistent virtio user; transient hostdev 0000:03:07.1 }\n}\n"  # fmt re-indents it


def sh(script: str, **env: str) -> subprocess.CompletedProcess:
    """Run a shell line in which `$TEAMC` is this checkout's teamc, as a separate process."""
    return subprocess.run(["sh", "-c", script], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TEAMC": f"{shlex.quote(sys.executable)} -m teamc", **env})


def test_closed_standard_input_for_dash():
    proc = sh("$TEAMC check - 0<&-")
    assert (proc.returncode, proc.stderr) == (2, "teamc: error: standard input: it is closed\n")


def test_closed_standard_output():
    proc = sh(f"$TEAMC compile {SEED} --emit xml 1>&-")
    assert (proc.returncode, proc.stderr) == (2, "teamc: error: standard output: it is closed\n")
    proc = sh(f"$TEAMC check {BROKEN} --format sarif 1>&-")
    assert (proc.returncode, proc.stderr) == (2, "teamc: error: standard output: it is closed\n")
    assert sh(f"$TEAMC check {SEED} 1>&-").returncode == 0  # nothing to print: nothing lost


def test_closed_standard_error_still_gives_the_exit_status():
    assert sh(f"$TEAMC check {BROKEN} 2>&-").returncode == 2


@pytest.mark.parametrize("command", [f"fmt - < {SEED}", "import tests/conformance/libvirt/net-virtio-teaming.xml",
                                     f"compile {SEED}", f"check {BROKEN} --format junit"])
def test_a_full_disk_on_standard_output(command):
    proc = sh(f"$TEAMC {command} > /dev/full")
    assert proc.returncode == 2 and proc.stderr.endswith("teamc: error: standard output: No space left on device\n")


def in_unwritable_folder(tmp_path: Path, script: str, files: dict[str, str],
                         size: str = "") -> subprocess.CompletedProcess:
    """Run `script` (sh) with `$D` a folder holding `files` that cannot be written: as root (who
    ignores permission bits) a read-only tmpfs, or with `size` a full one, mounted in a mount
    namespace of its own so that nothing outside sees it; otherwise a folder without write permission."""
    source, folder = tmp_path / "src", tmp_path / "ro"
    source.mkdir()
    folder.mkdir()
    for name, text in files.items():
        (source / name).write_text(text)
    env = {"D": str(folder), "SRC": str(source), "SCRIPT": script}
    if os.geteuid() != 0:
        shutil.copytree(source, folder, dirs_exist_ok=True)
        folder.chmod(0o555)
        return sh(script, **env)
    if size:  # fill it up: dd stops when the file system is full
        setup = f'mount -t tmpfs -o size={size} tmpfs "$D" && cp -a "$SRC/." "$D/" && ' \
                '{ dd if=/dev/zero of="$D/.fill" bs=4k 2>/dev/null; true; }'
    else:
        setup = 'mount -t tmpfs tmpfs "$D" && cp -a "$SRC/." "$D/" && mount -o remount,ro "$D"'
    return sh(f'exec unshare -m sh -c \'{setup} && exec sh -c "$SCRIPT"\'', **env)


def test_fmt_on_a_read_only_file_system(tmp_path):
    proc = in_unwritable_folder(tmp_path, '$TEAMC fmt "$D/web.team"; echo "$?"; cat "$D/web.team"', {"web.team": UGLY})
    assert proc.stdout == "2\n" + UGLY  # the file is left as it was
    assert "teamc: error: cannot rewrite " in proc.stderr and "/web.team: " in proc.stderr
    assert "internal error" not in proc.stderr


def test_fmt_on_a_full_file_system(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a full file system needs a tmpfs of its own, which needs root")
    proc = in_unwritable_folder(tmp_path, '$TEAMC fmt "$D/web.team"; echo "$?"; cat "$D/web.team"; ls -A "$D"',
                                {"web.team": UGLY}, size="64k")
    assert proc.stdout == "2\n" + UGLY + ".fill\nweb.team\n"  # unchanged, and no temporary file left
    assert proc.stderr.endswith("/web.team: No space left on device\n")


def test_import_and_reports_into_a_read_only_folder(tmp_path):
    proc = in_unwritable_folder(tmp_path, '$TEAMC import tests/conformance/libvirt/net-virtio-teaming.xml '
                                f'-o "$D/teams" 2>&1; echo "$?"; $TEAMC check {BROKEN} --format sarif '
                                '--output-file "$D/r.sarif" 2>&1; echo "$?"', {})
    lines = proc.stdout.splitlines()
    assert lines[-1] == "2" and "cannot write " in lines[-2] and "/r.sarif" in lines[-2]
    assert "2" in lines and any(line.startswith("teamc: error: cannot write ") and "/teams" in line for line in lines)
    assert "internal error" not in proc.stdout


@pytest.mark.parametrize("arg", ["{d}", "{d}/", "{d}/./a", ".", "./", "a", "./a/", "a//b"])
def test_a_folder_gives_its_team_files_as_pathlib_names_them(tmp_path, monkeypatch, arg):
    # The scandir walk that replaced Path.rglob names and picks the same files: hidden ones, a link to a
    # file, not a link to a folder (not entered), not a broken link or a folder named *.team.
    from teamc.batch import expand_inputs

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".h").mkdir()
    (tmp_path / "a" / "dir.team").mkdir()
    for name in ("x.team", "a/y.team", "a/b/z.team", ".h/w.team", "a/.team", "a/other.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "a" / "linked").symlink_to(tmp_path / "a" / "b")
    (tmp_path / "link.team").symlink_to(tmp_path / "x.team")
    (tmp_path / "broken.team").symlink_to(tmp_path / "nowhere")
    monkeypatch.chdir(tmp_path)
    path = arg.format(d=tmp_path)
    assert expand_inputs([path]) == sorted(str(p) for p in Path(path).rglob("*.team") if p.is_file())
