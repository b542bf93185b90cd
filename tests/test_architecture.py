"""docs/architecture.md names every module of the compiler with its job, and the phase picture
matches the pipeline's order."""

from __future__ import annotations

import re

from helpers import ROOT

DOC = ROOT / "docs" / "architecture.md"


def test_every_module_is_in_the_table():
    text = DOC.read_text()
    named = set(re.findall(r"^\| `([^`]+\.py)`", text, re.MULTILINE)) | set(re.findall(r"`(__\w+__\.py)`", text))
    modules = {p.relative_to(ROOT / "compiler").as_posix() for folder in ("", "backends", "emitters")
               for p in (ROOT / "compiler" / folder).glob("*.py")}
    missing = {m for m in modules if m not in named and m.rsplit("/", 1)[-1] not in named}
    assert not missing, f"docs/architecture.md does not name {sorted(missing)}"
    assert not {m for m in named if "/" in m} - modules  # no module that is gone


def test_the_picture_names_every_output_kind_in_registry_order():
    from teamc.emitters import registry

    picture = DOC.read_text().split("```")[1]
    kinds = [line.split()[1] for line in picture.splitlines() if re.match(r"\s+\|   \w+ ", line)]
    assert kinds == list(registry())
