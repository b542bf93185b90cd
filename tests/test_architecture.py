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


def _source(module: str) -> str:
    return (ROOT / "compiler" / module).read_text()


def test_merge_keeps_only_what_is_merge_specific():
    """The merge reads the base and splices text; the compile path's phases place, check and render."""
    text = _source("merge.py")
    for code in ("E0102", "E0309", "E0310", "E0403", "E0405"):
        assert f'"{code}"' not in text, f"merge.py raises {code} itself; checks.check_base is where it belongs"
        assert f'"{code}"' in _source("checks.py")
    for name in ("render(", ".j2", "free_slots", "root_ports(", "ports_fit", "RESERVED_SLOTS"):
        assert name not in text, f"merge.py uses {name}: a second render or placement phase"
    assert "layout_around" in text and "nic_element" in text and "root_port_element" in text


def test_verify_prints_diagnostics_as_every_command_does():
    text = _source("verify/__init__.py")
    assert "add_diagnostic_options(" in text and "print_diagnostics(" in text and "add_allow_option(" in text
    assert "render_human" not in text and '"--format"' not in text and '"--allow"' not in text


def test_the_language_server_gets_its_layouts_from_the_pipeline():
    for module in sorted((ROOT / "compiler" / "lsp").glob("*.py")):
        text = module.read_text()
        assert "layout_vm" not in text and "from ..layout import layout" not in text, module.name
        assert "render(" not in text and ".j2" not in text, module.name
