"""The README and docs/ stay true: the code table is the registry, every transcript is real output, every link lands."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from teamc.diagnostics import CODES

README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# What a transcript may read, copied into its sandbox.
INPUTS = ("examples", "tests/cases", "tests/conformance/libvirt")
# A `teamc verify` run boots the guest for minutes and its times and counts vary: tests/test_verify.py runs the
# one in docs/verify.md and compares its shape instead.
VERIFY_RUN = "$ teamc verify "


def test_code_table_lists_every_code_once():
    rows = re.findall(r"^\| ([EW]\d{4}) \| ([a-z0-9-]+) \|", README, re.MULTILINE)
    assert sorted(rows) == sorted((c.code, c.slug) for c in CODES.values())


def test_allowable_codes_are_marked_allowable():
    for code in CODES.values():
        row = re.search(rf"^\| {code.code} \|.*$", README, re.MULTILINE).group(0)
        assert ("allowable" in row) == code.allowable, row


def _console_blocks(page: Path) -> list[str]:
    return re.findall(r"^```console\n(.*?)^```", page.read_text(), re.DOTALL | re.MULTILINE)


def _run_transcript(block: str, cwd: Path, env: dict[str, str]) -> None:
    """Each `$ command` runs in `cwd`; what follows it, up to the next `$ `, is its exact output."""
    steps = re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]
    assert steps, block
    for step in steps:
        command, _, expected = step.partition("\n")
        proc = subprocess.run(["bash", "-c", command], check=False, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.stdout + proc.stderr == expected, f"$ {command}"


def _sandbox(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder with the files transcripts read, and `teamc` on PATH running this checkout."""
    for rel in INPUTS:
        shutil.copytree(ROOT / rel, tmp_path / rel)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "teamc").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m teamc "$@"\n')
    (bin_dir / "teamc").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return tmp_path, env


@pytest.mark.parametrize("page", [p for p in PAGES if _console_blocks(p)], ids=lambda p: p.name)
def test_every_transcript_is_the_real_output(page, tmp_path):
    # The blocks of one page run in order in one sandbox: a walk-through's later steps use what earlier ones wrote.
    cwd, env = _sandbox(tmp_path)
    for block in _console_blocks(page):
        if not block.startswith(VERIFY_RUN):
            _run_transcript(block, cwd, env)


def test_transcripts_left_to_other_tests_are_only_the_verify_run():
    left = [(p.name, b.partition("\n")[0]) for p in PAGES for b in _console_blocks(p) if b.startswith(VERIFY_RUN)]
    assert left == [("verify.md", "$ teamc verify --scenario migrate examples/seed.team")]


def test_the_walkthroughs_are_where_the_readme_says():
    # Pages whose transcripts the README's "More" list and the docs promise; moving one must not lose it.
    counts = {p.name: len(_console_blocks(p)) for p in PAGES}
    assert counts["README.md"] == 2 and counts["import-and-merge.md"] == 3 and counts["outputs.md"] == 1


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.DOTALL | re.MULTILINE)
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE):
        slug = _slug(heading)
        anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.DOTALL | re.MULTILINE)
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_lands(page):
    broken = []
    for link in _links(page):
        if re.match(r"[a-z]+:", link):
            continue  # https:, mailto:: not ours to check offline
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists() or (anchor and target.suffix == ".md" and anchor not in _anchors(target)):
            broken.append(link)
    assert broken == []


def test_the_link_checker_sees_links_and_anchors():
    # So that the test above cannot pass by finding nothing.
    assert "docs/import-and-merge.md" in _links(ROOT / "README.md")
    assert "../README.md#transient-sources-vf-side" in _links(ROOT / "docs" / "usage.md")
    assert {"the-pc-machine", "transient-sources-vf-side", "a-first-example"} <= _anchors(ROOT / "README.md")
    assert _slug("A run, in full") == "a-run-in-full"


def test_the_readme_links_every_page_of_docs():
    linked = {link.partition("#")[0] for link in _links(ROOT / "README.md")}
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= linked
