"""teamc in pipelines: many files, formats, determinism, caching, integration."""

import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from helpers import EXAMPLES, ROOT, teamc, teamc_process

SEED = "examples/seed.team"
BROKEN = "tests/cases/mac-mismatch.team"


def tree_hashes(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.name != ".teamc-manifest.json"}


# --- many inputs -------------------------------------------------------------------------


def test_a_folder_means_every_team_file_below_it(tmp_path):
    (tmp_path / "src" / "deep").mkdir(parents=True)
    shutil.copy(ROOT / SEED, tmp_path / "src" / "deep" / "seed.team")
    shutil.copy(ROOT / "examples/fleet.team", tmp_path / "src" / "fleet.team")
    (tmp_path / "src" / "notes.txt").write_text("not a team file")
    code, _, err = teamc("compile", str(tmp_path / "src"), "-o", str(tmp_path / "out"))
    assert (code, err) == (0, "")
    assert len(tree_hashes(tmp_path / "out")) == 8


def test_every_failing_file_is_reported(tmp_path):
    code, _, err = teamc("check", BROKEN, "tests/cases/teaming-cycle.team", SEED, "tests/cases/bad-mac.team")
    assert code == 1
    for name in ("mac-mismatch", "teaming-cycle", "bad-mac"):
        assert f"tests/cases/{name}.team:" in err


def test_stale_outputs_of_a_file_that_now_fails_are_removed(tmp_path):
    src = tmp_path / "web.team"
    src.write_text("vm web { team up0 { persistent virtio user; transient hostdev 0000:03:07.1 } }\n")
    out = tmp_path / "out"
    assert teamc("compile", str(src), SEED, "-o", str(out))[0] == 0
    assert {"web.xml", "web.sh", "QEMUGuest1.xml"} <= set(tree_hashes(out))
    src.write_text("vm web { team up0 { persistent virtio user; transient hostdev 0000:03:07 } }\n")
    code, _, err = teamc("compile", str(src), SEED, "-o", str(out))
    assert code == 1 and "E0204" in err
    assert set(tree_hashes(out)) == {"QEMUGuest1.xml", "QEMUGuest1.sh"}


def test_a_renamed_vm_leaves_no_stale_output(tmp_path):
    src = tmp_path / "a.team"
    src.write_text("vm old { team t { persistent virtio user; transient hostdev 0000:03:07.1 } }\n")
    out = tmp_path / "out"
    teamc("compile", str(src), "-o", str(out))
    src.write_text("vm new { team t { persistent virtio user; transient hostdev 0000:03:07.1 } }\n")
    teamc("compile", str(src), "-o", str(out))
    assert set(tree_hashes(out)) == {"new.xml", "new.sh"}


def test_parallel_output_equals_serial_output(tmp_path):
    inputs = [str(p.relative_to(ROOT)) for p in EXAMPLES] + ["tests/cases/bad-mac.team", BROKEN]
    serial = teamc_process("compile", *inputs, "-o", str(tmp_path / "j1"), "-j", "1")
    parallel = teamc_process("compile", *inputs, "-o", str(tmp_path / "j2"), "-j", "2")
    assert serial.returncode == parallel.returncode == 1
    assert serial.stderr == parallel.stderr
    assert tree_hashes(tmp_path / "j1") == tree_hashes(tmp_path / "j2")


def test_unchanged_inputs_are_not_compiled_again(tmp_path):
    out = tmp_path / "out"
    src = tmp_path / "a.team"
    shutil.copy(ROOT / SEED, src)
    shutil.copy(ROOT / "examples/fleet.team", tmp_path / "b.team")
    assert teamc("compile", str(tmp_path), "-o", str(out))[0] == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert teamc("compile", str(tmp_path), "-o", str(out))[0] == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".teamc-manifest.json"} == {
        k: v for k, v in before.items() if k != ".teamc-manifest.json"}
    src.write_text(src.read_text().replace("vcpus 1", "vcpus 2"))
    assert teamc("compile", str(tmp_path), "-o", str(out))[0] == 0
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert after["QEMUGuest1.xml"] != before["QEMUGuest1.xml"] and after["cache.xml"] == before["cache.xml"]
    assert "<vcpu placement='static'>2</vcpu>" in (out / "QEMUGuest1.xml").read_text()
    # a deleted output is written again, and different options are a different build
    (out / "cache.xml").unlink()
    assert teamc("compile", str(tmp_path), "-o", str(out))[0] == 0 and (out / "cache.xml").exists()
    assert teamc("compile", str(tmp_path), "-o", str(out), "--qemu-syntax", "keyval")[0] == 0
    assert "virtio-net-pci,failover=on" in (out / "cache.sh").read_text()


def test_depfile_lists_each_inputs_outputs(tmp_path):
    out, dep = tmp_path / "out", tmp_path / "deps" / "teamc.d"
    assert teamc("compile", SEED, "examples/fleet.team", "-o", str(out), "--depfile", str(dep))[0] == 0
    rules = dep.read_text().splitlines()
    assert rules == [f"{out}/QEMUGuest1.xml {out}/QEMUGuest1.sh: {SEED}",
                     (f"{out}/edge-a.xml {out}/edge-a.sh {out}/edge-b.xml {out}/edge-b.sh {out}/cache.xml "
                      f"{out}/cache.sh: examples/fleet.team")]
    assert teamc("compile", SEED, "--depfile", str(dep))[0] == 2  # needs -o


def test_make_rebuilds_only_what_changed(tmp_path):
    """The depfile in a real make: a second make does nothing, a touched input rebuilds."""
    if shutil.which("make") is None:
        pytest.fail("make is needed for this test")
    (tmp_path / "src").mkdir()
    shutil.copy(ROOT / SEED, tmp_path / "src" / "seed.team")
    (tmp_path / "Makefile").write_text(
        f"out/.stamp: $(wildcard src/*.team)\n\t{sys.executable} -m teamc compile src -o out --depfile out.d"
        " && touch out/.stamp\n-include out.d\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(["make", "-C", str(tmp_path)], capture_output=True, text=True, env=env, check=False)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(["make", "-C", str(tmp_path)], capture_output=True, text=True, env=env, check=False)
    assert "Nothing to be done" in again.stdout or "up to date" in again.stdout


# --- formats -------------------------------------------------------------------------------


GITHUB_COMMAND = re.compile(
    r"^::(error|warning) file=[^,:]+,line=\d+,col=\d+,endLine=\d+,endColumn=\d+,title=[EW]\d{4} [a-z-]+::[^\r\n]+$")


def test_github_annotations_follow_the_workflow_command_syntax():
    code, _, err = teamc("check", BROKEN, "tests/cases/persistent-alone.team", "tests/cases/bad-mac.team",
                         "--format", "github")
    lines = err.splitlines()
    assert code == 1 and len(lines) == 6
    assert all(GITHUB_COMMAND.match(line) for line in lines), lines
    assert lines[-1].startswith("::warning file=tests/cases/persistent-alone.team,line=2,col=9")


def test_github_escapes_percent_and_newlines():
    from teamc.diagnostics import diag, render_github
    from teamc.source import SourceFile, Span

    source = SourceFile("a,b:c.team", "vm x {}\n")
    line = render_github(diag("E0205", "100% bad\nvalue", Span(source, 3, 4), help="fix"))
    assert line == ("::error file=a%2Cb%3Ac.team,line=1,col=4,endLine=1,endColumn=5,"
                    "title=E0205 invalid-value::100%25 bad%0Avalue (help: fix)\n")


def test_concise_format():
    _, _, err = teamc("check", "tests/cases/bad-mac.team", "--format", "concise")
    assert err.splitlines()[0] == "tests/cases/bad-mac.team:2:18: E0203 `52:54:00:aa:00` is not a MAC address"


def test_colour_only_when_asked_or_on_a_terminal(monkeypatch):
    from teamc.cli import _terminal_wants_color

    assert "\033[" in teamc("check", BROKEN, "--color", "always")[2]
    assert "\033[" not in teamc("check", BROKEN)[2]  # not a terminal

    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert _terminal_wants_color(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _terminal_wants_color(Tty())


def test_werror_turns_warnings_into_errors():
    case = "tests/cases/persistent-alone.team"
    assert teamc("check", case)[0] == 0
    code, _, err = teamc("check", case, "--werror")
    assert code == 1 and "error[W0501]" in err


# --- determinism ----------------------------------------------------------------------------


@pytest.mark.slow
def test_outputs_do_not_depend_on_hash_seed_order_cwd_locale_or_time(tmp_path):
    inputs = [str(p) for p in EXAMPLES]  # absolute paths, so the run may start anywhere
    runs = []
    variants = [
        ({"PYTHONHASHSEED": "0"}, inputs, ROOT),
        ({"PYTHONHASHSEED": "1"}, inputs[::-1], tmp_path),
        ({"PYTHONHASHSEED": "12345", "LC_ALL": "C", "TZ": "Asia/Kolkata"}, inputs[1:] + inputs[:1], ROOT),
        ({"PYTHONHASHSEED": "random", "LC_ALL": "C.UTF-8", "TZ": "UTC", "SOURCE_DATE_EPOCH": "1"}, inputs, tmp_path),
    ]
    for i, (env, order, cwd) in enumerate(variants):
        out = tmp_path / f"out{i}"
        proc = subprocess.run([sys.executable, "-m", "teamc", "compile", *order, "-o", str(out), "-j", "2"],
                              cwd=cwd, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                              check=False)
        assert proc.returncode == 0, proc.stderr
        runs.append(tree_hashes(out))
    assert len(runs[0]) == 17
    assert all(run == runs[0] for run in runs)


def test_diagnostics_do_not_depend_on_the_order_of_inputs():
    files = ["tests/cases/bad-mac.team", BROKEN, "tests/cases/teaming-cycle.team"]
    assert teamc("check", *files)[2] == teamc("check", *files[::-1])[2]


# --- integration -----------------------------------------------------------------------------


def test_pre_commit_hooks_run_teamc():
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    by_id = {h["id"]: h for h in hooks}
    assert by_id["teamc-check"]["entry"] == "teamc check"
    assert by_id["teamc-fmt"]["entry"] == "teamc fmt --check"
    for hook in hooks:
        assert hook["language"] == "python" and re.search(hook["files"], "x/y.team")


def test_bash_completion_is_valid_bash_and_knows_the_commands(tmp_path):
    code, script, _ = teamc("completion", "bash")
    assert code == 0
    path = tmp_path / "teamc.bash"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0
    probe = subprocess.run(["bash", "-c", (f'source {path}; COMP_WORDS=(teamc co); COMP_CWORD=1; _teamc; '
                                           'echo "${COMPREPLY[@]}"')], capture_output=True, text=True, check=False)
    assert probe.stdout.split() == ["compile", "completion"]
    probe = subprocess.run(["bash", "-c", (f'source {path}; COMP_WORDS=(teamc compile --qemu-s); COMP_CWORD=2; '
                                           '_teamc; echo "${COMPREPLY[@]}"')],
                           capture_output=True, text=True, check=False)
    assert probe.stdout.split() == ["--qemu-syntax"]


def test_zsh_completion_names_every_command():
    code, script, _ = teamc("completion", "zsh")
    assert code == 0 and script.startswith("#compdef teamc")
    for command in ("check", "compile", "completion"):
        assert f"{command})" in script


def test_a_vm_in_two_inputs_fails_both_and_leaves_neither_output(tmp_path):
    a, b = tmp_path / "a.team", tmp_path / "b.team"
    a.write_text("vm web { team t { persistent virtio user; transient hostdev 0000:03:07.1 } }\n"
                 "vm db { team t { persistent virtio user; transient hostdev 0000:03:07.2 } }\n")
    b.write_text("vm web { team t { persistent virtio user; transient hostdev 0000:03:07.3 } }\n")
    out = tmp_path / "out"
    code, _, err = teamc("compile", str(a), str(b), "-o", str(out), "-j", "2")
    assert code == 1 and err.count("error[E0101]") == 1
    assert tree_hashes(out) == {}  # neither input keeps outputs: web.xml would be one or the other
