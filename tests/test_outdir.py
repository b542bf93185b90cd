"""The output folder: nothing written or removed outside it, whatever the names, the manifest or the timing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import ROOT, teamc, teamc_process
from teamc import outdir
from teamc.outdir import MANIFEST
from teamc.pipeline import Artifact
from test_scale import fleet

ALL_KINDS = "xml,qemu,interfaces,json,dot"


def vm(name: str, function: int = 1) -> str:
    return (f'vm "{name}" {{ team t {{ persistent virtio user; transient hostdev 0000:03:07.{function} }} }}\n')


def tree(root: Path) -> set[str]:
    """Every path below `root` (files, links and folders), relative to it."""
    out = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(folder, name), root))
    return out


def outputs(out: Path) -> set[str]:
    return {name for name in os.listdir(out) if not name.startswith(".")}


def manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST).read_text())["inputs"]


# --- 10: writes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["./../../escaped", "../escaped", "{root}/escaped", "sub/escaped", "..", ".hidden"])
def test_a_refused_vm_name_gets_no_file_anywhere(tmp_path, name):
    root = tmp_path / "root"
    out = root / "a" / "b"  # ../../ from here is `root`, still inside tmp_path
    src = tmp_path / "in.team"
    src.write_text(vm(name.format(root=root)))
    code, _, err = teamc("compile", str(src), "-o", str(out), "--emit", ALL_KINDS)
    assert code == 1 and "error[E0205]" in err
    assert tree(tmp_path) == {"in.team", "root", "root/a", "root/a/b", f"root/a/b/{MANIFEST}"}
    # Printed rather than written, it is left out too.
    code, printed, _ = teamc("compile", str(src), "--emit", "json,dot")
    assert code == 1 and printed == ""


# Names a .team file can spell, with path separators and dots where they do harm.
_HOSTILE = st.lists(st.sampled_from(["/", ".", "..", "a", "-", "_", " ", "\\", "~", "é", "x.xml", "/tmp"]),
                    min_size=1, max_size=8).map("".join)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(names=st.lists(_HOSTILE, min_size=1, max_size=3, unique=True))
def test_nothing_is_written_outside_the_folder_whatever_the_names(tmp_path_factory, names):
    base = tmp_path_factory.mktemp("names")
    out = base / "deep" / "er" / "out"
    src = base / "in.team"
    src.write_text("".join(vm(name, i) for i, name in enumerate(names)))
    teamc("compile", str(src), "-o", str(out), "--emit", ALL_KINDS)
    assert tree(base) - {"deep", "deep/er", "deep/er/out"} - {f"deep/er/out/{n}" for n in os.listdir(out)} == {
        "in.team"}
    assert all(outdir.plain_name(n) for n in outputs(out)) and not any(os.path.isdir(out / n) for n in os.listdir(out))


def test_a_name_that_is_not_plain_is_refused_by_the_writer(tmp_path):
    from teamc.pipeline import Artifact

    for name in ["../x.xml", "/x.xml", "a/b.xml", ".x.xml", "..", ".", "", "x\0.xml"]:
        with pytest.raises(ValueError):
            outdir.write_files(tmp_path, [Artifact(name, "text")])
    assert tree(tmp_path) == set()


# --- 11: removals --------------------------------------------------------------------------------


def _compile_then_rename(tmp_path, edit_manifest) -> tuple[Path, int, str]:
    """Compile VM `old`, let `edit_manifest` change the manifest, then rename the VM (old's outputs are stale)."""
    src, out = tmp_path / "in.team", tmp_path / "out"
    src.write_text(vm("old"))
    assert teamc("compile", str(src), "-o", str(out))[0] == 0
    data = json.loads((out / MANIFEST).read_text())
    edit_manifest(data["inputs"][str(src)]["outputs"])
    (out / MANIFEST).write_text(json.dumps(data))
    src.write_text(vm("new"))
    code, _, err = teamc("compile", str(src), "-o", str(out))
    return out, code, err


def test_a_hostile_manifest_removes_nothing_outside_the_folder(tmp_path):
    victims = [tmp_path / "victim", tmp_path / "abs" / "victim", tmp_path / "linked" / "f"]
    for victim in victims:
        victim.parent.mkdir(exist_ok=True)
        victim.write_text("precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "linked")
    (tmp_path / "out" / "notes.txt").write_text("the user's own")
    out, code, err = _compile_then_rename(tmp_path, lambda names: names.extend(
        [str(victims[1]), "../victim", "link/f", "notes.txt", "link", "..", ""]))
    assert code == 0 and "teamc: warning: ignoring" in err
    assert all(v.read_text() == "precious" for v in victims)
    assert (out / "notes.txt").exists() and (out / "link").is_symlink()


def test_only_regular_files_inside_the_folder_are_removed(tmp_path):
    outside = tmp_path / "outside.xml"
    outside.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "dir.xml").mkdir()
    (out / "dir.xml" / "f").write_text("kept")
    (out / "link.xml").symlink_to(outside)
    out, code, err = _compile_then_rename(tmp_path, lambda names: names.extend(["dir.xml", "link.xml"]))
    assert (code, err) == (0, "")
    assert outputs(out) == {"dir.xml", "link.xml", "new.xml", "new.sh"}  # old.* were teamc's: removed
    assert (out / "dir.xml" / "f").read_text() == "kept" and (out / "link.xml").is_symlink()
    assert outside.read_text() == "precious"


# --- 12: a VM that moves between files ---------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_vm_moved_to_another_file_keeps_its_fresh_outputs(tmp_path, jobs):
    a, b, out = tmp_path / "a.team", tmp_path / "b.team", tmp_path / "out"
    a.write_text(vm("x"))
    assert teamc("compile", str(a), "-o", str(out), "-j", jobs)[0] == 0
    a.write_text(vm("y"))
    b.write_text(vm("x", 2))
    assert teamc("compile", str(a), str(b), "-o", str(out), "-j", jobs)[0] == 0
    assert outputs(out) == {"x.xml", "x.sh", "y.xml", "y.sh"}
    assert "0000:03:07.2" in (out / "x.sh").read_text()  # b's x, not a's old one
    assert manifest(out)[str(b)]["outputs"] == ["x.xml", "x.sh"]
    # and back again
    a.write_text(vm("x"))
    b.write_text(vm("z", 2))
    assert teamc("compile", str(a), str(b), "-o", str(out), "-j", jobs)[0] == 0
    assert outputs(out) == {"x.xml", "x.sh", "z.xml", "z.sh"}


# --- 13: a corrupt manifest ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "[]", "null", "not json", "\xff", '{"version": 1, "inputs": []}', '{"version": 2, "inputs": {}}',
    '{"version": 1, "inputs": {"IN": {"key": "k", "stamp": [], "options": "o", "outputs": null, "vms": []}}}',
    '{"version": 1, "inputs": {"IN": []}}',
    '{"version": 1, "inputs": {"IN": {"key": "k", "stamp": [], "options": "o", "outputs": {"a": 1}, "vms": []}}}',
    '{"version": 1, "inputs": {"IN": {"key": "k", "stamp": ["x"], "options": "o", "outputs": [], "vms": []}}}',
    '{"version": 1, "inputs": {"IN": {"key": 1, "stamp": [], "options": "o", "outputs": [], "vms": [2]}}}',
], ids=lambda t: t[:40])
def test_a_corrupt_manifest_is_ignored_with_a_warning(tmp_path, text):
    src, out = tmp_path / "in.team", tmp_path / "out"
    src.write_text(vm("web"))
    out.mkdir()
    (out / MANIFEST).write_text(text.replace("IN", str(src)), encoding="utf-8", errors="surrogateescape")
    code, _, err = teamc("compile", str(src), "-o", str(out))
    assert code == 0 and err.startswith(f"teamc: warning: ignoring {out / MANIFEST}: ") and err.count("\n") == 1
    assert outputs(out) == {"web.xml", "web.sh"}
    assert teamc("compile", str(src), "-o", str(out)) == (0, "", "")  # written anew: no warning again
    assert manifest(out)[str(src)]["outputs"] == ["web.xml", "web.sh"]


# --- 14: temporary files of killed runs -------------------------------------------------------------------


def test_leftover_temporary_files_are_removed_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    leftovers = [".web.xml.1a2b3c4d.tmp", ".web.sh.k3j_ab9z.tmp", f".{MANIFEST}.0f0f0f0f.tmp", ".gone.dot.abcdabcd.tmp"]
    kept = [".notes.txt.1a2b3c4d.tmp", "web.xml.1a2b3c4d.tmp", ".web.xml.tmp", ".x.xml.1a2b3c4d5.tmp"]
    for name in leftovers + kept:
        (out / name).write_text("partial")
    (out / ".d.xml.1a2b3c4d.tmp").mkdir()
    src = tmp_path / "in.team"
    src.write_text(vm("web"))
    assert teamc("compile", str(src), "-o", str(out)) == (0, "", "")
    assert set(os.listdir(out)) == {MANIFEST, "web.xml", "web.sh", ".d.xml.1a2b3c4d.tmp", *kept}


def test_a_temporary_name_that_is_taken_is_drawn_again_never_followed(tmp_path, monkeypatch):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.write_text("keep")
    (out / ".a.xml.aaaaaaaa.tmp").symlink_to(outside)  # what a leftover (or a hostile link) might be called
    (out / ".b.xml.aaaaaaaa.tmp").write_text("partial")
    tokens = iter(["aaaaaaaa", "bbbbbbbb", "cccccccc"])
    monkeypatch.setattr(outdir.secrets, "token_hex", lambda n: next(tokens))
    outdir.write_files(out, [Artifact("a.xml", "<a/>"), Artifact("b.xml", "<b/>")])
    assert outside.read_text() == "keep"
    assert (out / "a.xml").read_text() == "<a/>" and (out / "b.xml").read_text() == "<b/>"
    assert sorted(os.listdir(out)) == [".a.xml.aaaaaaaa.tmp", ".b.xml.aaaaaaaa.tmp", "a.xml", "b.xml"]


def test_a_batch_lands_in_the_folder_it_started_in_even_if_the_path_changes(tmp_path):
    """Names are resolved against the folder's descriptor, not its path: a folder renamed (and its path
    taken by a link elsewhere) while a batch is written cannot split the batch between two places."""
    out, moved, elsewhere = tmp_path / "out", tmp_path / "moved", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()

    class Swapping:
        name = "b.xml"

        @property
        def text(self) -> str:  # read while the batch is being staged
            out.rename(moved)
            out.symlink_to(elsewhere)
            return "<b/>"

    outdir.write_files(out, [Artifact("a.xml", "<a/>"), Swapping(), Artifact("c.xml", "<c/>")])
    assert sorted(os.listdir(moved)) == ["a.xml", "b.xml", "c.xml"]
    assert os.listdir(elsewhere) == []


def test_a_failed_rename_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "out"
    (out / "b.xml").mkdir(parents=True)  # not a file: the rename onto it fails
    (out / "b.xml" / "inside").write_text("")
    with pytest.raises(OSError):
        outdir.write_files(out, [Artifact("a.xml", "<a/>"), Artifact("b.xml", "<b/>"), Artifact("c.xml", "<c/>")])
    assert sorted(os.listdir(out)) == ["a.xml", "b.xml"]
    assert (out / "a.xml").read_text() == "<a/>"


def test_outputs_get_their_mode_whatever_the_umask(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    old = os.umask(0o077)
    try:
        outdir.write_files(out, [Artifact("a.xml", "<a/>"), Artifact("a.sh", "#!/bin/sh\n")])
    finally:
        os.umask(old)
    assert (out / "a.xml").stat().st_mode & 0o777 == 0o644 and (out / "a.sh").stat().st_mode & 0o777 == 0o755


@pytest.mark.slow
def test_a_run_killed_while_writing_is_cleaned_up_by_the_next(tmp_path):
    src, out = tmp_path / "fleet.team", tmp_path / "out"
    src.write_text(fleet(2000))
    proc = subprocess.Popen([sys.executable, "-m", "teamc", "compile", str(src), "-o", str(out), "-j", "1"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_dir() and sum(name.endswith(".tmp") for name in os.listdir(out)) >= 100:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the compile ended before it could be killed mid-write"
    assert sum(name.endswith(".tmp") for name in os.listdir(out)) >= 100
    done = teamc_process("compile", str(src), "-o", str(out), "-j", "1")
    assert done.returncode == 0, done.stderr
    names = os.listdir(out)
    assert not [n for n in names if n.endswith(".tmp")] and len(names) == 2 * 2000 + 1


# --- 15: two runs into one folder at once ---------------------------------------------------------------


@pytest.mark.slow
def test_a_run_waits_while_another_holds_the_folder(tmp_path):
    src, out = tmp_path / "in.team", tmp_path / "out"
    src.write_text(vm("web"))
    with outdir.locked(out):
        proc = subprocess.Popen([sys.executable, "-m", "teamc", "compile", str(src), "-o", str(out)], cwd=ROOT)
        try:
            time.sleep(2)
            assert proc.poll() is None and not (out / "web.xml").exists()
        except BaseException:
            proc.kill()
            raise
    assert proc.wait(timeout=60) == 0 and (out / "web.xml").exists()


@pytest.mark.slow
def test_concurrent_runs_with_disjoint_inputs_keep_every_manifest_entry(tmp_path):
    # Without the lock, a run saving the manifest between another's reading and saving it drops that
    # one's entries (about one round in three loses some, so this is the end-to-end check; the test above
    # is the deterministic one).
    out = tmp_path / "out"
    folders = [tmp_path / f"part{p}" for p in range(3)]
    for p, folder in enumerate(folders):
        folder.mkdir()
        for i in range(150):
            (folder / f"f{i:03d}.team").write_text(fleet(1, start=150 * p + i))
    procs = [subprocess.Popen([sys.executable, "-m", "teamc", "compile", str(folder), "-o", str(out), "-j", "1"],
                              cwd=ROOT, stderr=subprocess.PIPE) for folder in folders]
    results = [p.communicate(timeout=120) for p in procs]
    assert [(p.returncode, err) for p, (_, err) in zip(procs, results, strict=True)] == [(0, b"")] * 3
    assert set(manifest(out)) == {str(f) for folder in folders for f in folder.iterdir()}
    assert len(outputs(out)) == 2 * 450
    # Every entry is trusted: nothing is compiled again.
    before = {name: os.stat(out / name).st_mtime_ns for name in outputs(out)}
    assert teamc("compile", *map(str, folders), "-o", str(out))[0] == 0
    assert {name: os.stat(out / name).st_mtime_ns for name in outputs(out)} == before


def test_import_into_a_folder_writes_only_plain_names(tmp_path):
    hidden = tmp_path / ".hidden.xml"
    hidden.write_text((ROOT / "tests/conformance/libvirt/net-virtio-teaming.xml").read_text().replace("'pc'", "'q35'"))
    out = tmp_path / "out"
    code, _, err = teamc("import", str(hidden), "-o", str(out))
    assert code == 2 and f"cannot be written into {out} as `.hidden.team`" in err and "internal error" not in err
    assert not out.exists() or os.listdir(out) == []
    visible = tmp_path / "domain.xml"
    hidden.rename(visible)
    assert teamc("import", str(visible), "-o", str(out))[0] == 0
    assert os.listdir(out) == ["domain.team"]


def test_remove_outputs_refuses_what_is_not_a_plain_output_name(tmp_path):
    """The last line of defence, whatever reaches it: nothing but DIR/NAME.suffix regular files go."""
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    for path in [tmp_path / "victim.xml", out / "sub" / "f.xml", out / ".hidden.xml", out / "notes.txt",
                 out / "web.xml"]:
        path.write_text("x")
    outdir.remove_outputs(out, [str(tmp_path / "victim.xml"), "../victim.xml", "sub/f.xml", ".hidden.xml",
                                "notes.txt", "sub", ".", "..", "", "web.xml", "gone.xml"])
    assert tree(tmp_path) == {"victim.xml", "out", "out/sub", "out/sub/f.xml", "out/.hidden.xml", "out/notes.txt"}


def test_a_rebuild_writes_the_manifest_a_full_build_writes(tmp_path):
    """The lines of unchanged inputs are written again as read (not encoded again): the manifest after a
    rebuild is the one encoding every entry gives, even with names JSON must escape."""
    from teamc.batch import Manifest

    src = tmp_path / "src"
    src.mkdir()
    names = ["a.team", "b c.team", 'q"uote.team', "\u00e9t\u00e9.team", "z.team"]
    for i, name in enumerate(names):
        (src / name).write_text(f"vm v{i} {{\n  team t {{ persistent virtio user; "
                                f"transient hostdev 0000:01:00.{i} }}\n}}\n")
    out = tmp_path / "out"
    assert teamc("compile", str(src), "-o", str(out))[0] == 0
    (src / "b c.team").write_text((src / "b c.team").read_text().replace("user", "bridge br0"))
    (src / "z.team").unlink()
    assert teamc("compile", str(src), "-o", str(out))[0] == 0
    manifest = Manifest.load(out)
    assert manifest.lines and set(manifest.lines) < set(manifest.entries)  # (the escaped names are encoded)
    written = (out / ".teamc-manifest.json").read_text()
    Manifest(out, dict(manifest.entries)).save()  # every entry encoded
    assert (out / ".teamc-manifest.json").read_text() == written
