"""Shared test helpers: paths, running teamc, golden files, libvirt and QEMU."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from lxml import etree

from teamc.backends.qemu import QemuCommand, qemu_command

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
EXAMPLES = sorted((ROOT / "examples").glob("*.team"))
GOLDEN = TESTS / "golden"
DOMAIN_RNG = Path("/usr/share/libvirt/schemas/domain.rng")
QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
VIRSH = shutil.which("virsh") or "/usr/bin/virsh"


def teamc(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from teamc.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse usage errors
                code = exc.code
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def teamc_process(*args: str, cwd: Path | None = None, env: dict | None = None, stdin: bytes | None = None):
    """Run teamc as a separate process (what a pipeline does)."""
    return subprocess.run([sys.executable, "-m", "teamc", *args], cwd=cwd or ROOT, capture_output=True,
                          input=stdin, env={**os.environ, **(env or {})}, timeout=120, check=False)


def check_golden(path: Path, actual: str, update: bool) -> None:
    """Compare with a golden file; --update-golden rewrites it, a missing one is written and fails."""
    if update or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        path.write_text(actual, encoding="utf-8")
        if not update and not existed:
            raise AssertionError(f"golden file {path} was missing and has been written; review it and rerun")
        return
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"output differs from {path} (rerun with --update-golden after review)"


# --- libvirt ------------------------------------------------------------------

_RNG = None


def rng_errors(xml_text: str) -> list[str]:
    global _RNG
    if _RNG is None:
        _RNG = etree.RelaxNG(etree.parse(str(DOMAIN_RNG)))
    ok = _RNG.validate(etree.fromstring(xml_text.encode()))
    return [] if ok else [str(e) for e in _RNG.error_log]


def virsh_define_dumpxml(xml_path: Path, name: str) -> str:
    """Define the domain in libvirt's test driver and return its dumpxml."""
    proc = subprocess.run([VIRSH, "-q", "-c", "test:///default", f"define {xml_path}; dumpxml {name}"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout[proc.stdout.index("<domain"):]


# --- QEMU ---------------------------------------------------------------------


def argv_from_script(script: str) -> list[str]:
    """The argv a generated <vm>.sh runs (without the "$@" it appends)."""
    body = "\n".join(line for line in script.splitlines() if not line.startswith("#"))
    words = shlex.split(body.replace("\\\n", ""))  # backslash-newline continues the line, as in sh
    assert words[0] == "exec" and words[-1] == "$@", words
    return words[1:-1]


def qemu_commands(source, syntax: str = "json") -> list[QemuCommand]:
    """The structured QEMU commands of a source, each checked to be exactly what its compiled <vm>.sh runs."""
    from teamc.layout import layout
    from teamc.pipeline import Options, check_source, compile_source

    result = compile_source(source, Options(qemu_syntax=syntax))
    assert not result.failed, [d.message for d in result.diagnostics]
    graph, _ = check_source(source)
    commands = [c for c in map(qemu_command, layout(graph)) if c.flags]
    assert {f"{c.vm}.sh": c.argv(syntax) for c in commands} == {
        a.name: argv_from_script(a.text) for a in result.artifacts if a.name.endswith(".sh")}
    return commands


def runnable_here(command: QemuCommand) -> QemuCommand:
    """What must change for this machine, and only that: TCG instead of KVM, and
    user networking instead of a host bridge (no bridge or bridge helper here)."""
    flags = []
    for flag in command.flags:
        if flag.name == "-accel":
            flag = flag.with_props({"accel": "tcg"})
        elif flag.name == "-netdev" and flag.props["type"] == "bridge":
            flag = flag.with_props({"type": "user", "id": flag.props["id"]})
        flags.append(flag)
    return replace(command, flags=tuple(flags))


def standin(command: QemuCommand) -> QemuCommand:
    """Each VFIO primary becomes an emulated e1000e keeping id, bus, addr, MAC and
    failover_pair_id; the standby's failover is switched off so QEMU realizes the
    primary at once and runs its failover placement checks (PCIe, own slot, hotplug)."""
    macs = {f.props["id"]: f.props["mac"] for f in command.devices() if "mac" in f.props}
    flags = []
    for flag in command.flags:
        props = flag.props
        if flag.name == "-device" and props["driver"] == "vfio-pci":
            props = {"driver": "e1000e", **{k: v for k, v in props.items() if k not in ("driver", "host")}}
            flag = flag.with_props(props | {"mac": macs[props["failover_pair_id"]], "romfile": ""})
        elif flag.name == "-device" and props.get("failover") is True:
            flag = flag.with_props(props | {"failover": False})
        flags.append(flag)
    return replace(command, flags=tuple(flags))


def without_device(command: QemuCommand, ident: str) -> QemuCommand:
    return replace(command, flags=tuple(f for f in command.flags if f.props.get("id") != ident or f.name != "-device"))


def start_qemu(argv: list[str], commands: list[dict] | None = None, timeout: int = 60) -> tuple[int, str, list]:
    """Start QEMU paused with QMP on stdio, run `commands`, then `quit`.

    Returns (exit code, stderr, the QMP replies to `commands`)."""
    script = [{"execute": "qmp_capabilities"}, *(commands or []), {"execute": "quit"}]
    proc = subprocess.run([*argv, "-S", "-qmp", "stdio"], input="".join(json.dumps(c) + "\n" for c in script),
                          capture_output=True, text=True, timeout=timeout, check=False)
    replies = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    answers = [r for r in replies if "return" in r or "error" in r][1:1 + len(commands or [])]
    return proc.returncode, proc.stderr, answers


QTREE = [{"execute": "human-monitor-command", "arguments": {"command-line": "info qtree"}}]


def qtree_placement(qtree: str) -> dict[str, tuple[str, str, str]]:
    """id -> (driver, bus, "SS.F") for every PCI device QEMU realized, from `info qtree`."""
    placed, buses, current = {}, [], None
    for line in qtree.splitlines():
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        while buses and buses[-1][0] >= indent:
            buses.pop()
        if text.startswith("bus: "):
            buses.append((indent, text[5:]))
        elif text.startswith("dev: "):
            driver, _, ident = text[5:].partition(", id ")
            current = (driver, ident.strip('"'), buses[-1][1] if buses else "", indent)
        elif text.startswith("addr = ") and current and indent == current[3] + 2 and current[1]:
            placed[current[1]] = (current[0], current[2], text[7:])
            current = None
    return placed


def expected_placement(command: QemuCommand) -> dict[str, tuple[str, str, str]]:
    """id -> (driver, bus, "SS.F") as the command asks for it."""
    wanted = {}
    for flag in command.devices():
        slot, _, function = flag.props["addr"].partition(".")
        wanted[flag.props["id"]] = (flag.props["driver"], flag.props["bus"],
                                    f"{int(slot, 16):02x}.{int(function, 16) if function else 0:x}")
    return wanted


def decode_option(arg: str, head: str) -> dict:
    """A -device/-netdev value read back from an output file, from JSON or keyval (`,,` is a literal
    comma): the tests' own reading of what teamc wrote, independent of the backend's encoder."""
    if arg.startswith("{"):
        return json.loads(arg)
    parts = arg.replace(",,", "\0").split(",")
    props = {head: parts[0].replace("\0", ",")}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        assert sep, f"keyval part without '=': {part!r}"
        props[key] = value.replace("\0", ",")
    return props
