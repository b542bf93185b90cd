"""The README stays true: its code table is the registry, its transcript is real output."""

import re

from compiler.diagnostics import CODES
from helpers import ROOT, teamc

README = (ROOT / "README.md").read_text()


def test_code_table_lists_every_code_once():
    rows = re.findall(r"^\| ([EW]\d{4}) \| ([a-z0-9-]+) \|", README, re.M)
    assert sorted(rows) == sorted((c.code, c.slug) for c in CODES.values())


def test_allowable_codes_are_marked_allowable():
    for code in CODES.values():
        row = re.search(rf"^\| {code.code} \|.*$", README, re.M).group(0)
        assert ("allowable" in row) == code.allowable, row


def test_transcript_is_the_real_output():
    block = re.search(r"\$ teamc check tests/cases/mac-mismatch.team\n(.*?)```", README, re.S).group(1)
    assert teamc("check", "tests/cases/mac-mismatch.team")[2] == block


def _console_blocks(heading: str) -> list[str]:
    section = README.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```console\n(.*?)```", section, re.S)


def _run_transcript(block: str, cwd, env) -> None:
    """Each `$ command` runs in `cwd`; what follows it, up to the next `$ `, is its exact output."""
    import subprocess

    steps = re.split(r"^\$ ", block, flags=re.M)[1:]
    for step in steps:
        command, _, expected = step.partition("\n")
        proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        assert proc.stdout + proc.stderr == expected, f"$ {command}"


def _sandbox(tmp_path):
    """A folder with the README's input files, and `teamc` on PATH running this checkout."""
    import os
    import shutil
    import sys

    for rel in ("tests/conformance/libvirt/net-virtio-teaming.xml", "tests/cases/transient-target-missing.team"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "teamc").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m compiler "$@"\n')
    (bin_dir / "teamc").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return tmp_path, env


def test_walkthrough_import_edit_fmt_merge_is_real(tmp_path):
    blocks = _console_blocks("## Bringing in an existing domain")
    assert len(blocks) == 3
    cwd, env = _sandbox(tmp_path)
    for block in blocks:
        _run_transcript(block, cwd, env)


def test_teaming_graph_example_is_real(tmp_path):
    (block,) = [b for b in _console_blocks("## Outputs") if "--emit dot" in b]
    _run_transcript(block, *_sandbox(tmp_path))
