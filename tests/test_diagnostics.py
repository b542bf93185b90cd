"""Golden diagnostics: the rendered text for one broken input per code.

tests/cases/<slug>.team is named after the check it shows (a suffix may follow
the slug); tests/golden/diagnostics/<case>.txt is what `teamc check` prints,
which is what `teamc compile` prints too (the QEMU backend's warnings included);
tests/cases/<slug>.xml is libvirt XML, which goes through `teamc import`.
"""

import re

import pytest

from helpers import GOLDEN, TESTS, check_golden, teamc
from teamc.diagnostics import CODES, SLUGS

CASES = sorted([*(TESTS / "cases").glob("*.team"), *(TESTS / "cases").glob("*.xml")])


def slug_of(case) -> str:
    return next(slug for slug in sorted(SLUGS, key=len, reverse=True) if case.stem.startswith(slug))


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_diagnostics_golden(case, tmp_path, update_golden):
    slug = slug_of(case)
    rel = f"tests/cases/{case.name}"
    if case.suffix == ".xml":
        code, _, err = teamc("import", rel, "-o", str(tmp_path))
    else:
        code, _, err = teamc("check", rel)
        assert teamc("compile", rel, "-o", str(tmp_path))[2] == err
    code_of_slug = SLUGS[slug].code
    assert f"[{code_of_slug}]" in err, f"{case.name} does not show {code_of_slug}"
    has_errors = any(line.startswith("error[") for line in err.splitlines())
    assert code == (1 if has_errors else 0)
    assert "Traceback" not in err
    check_golden(GOLDEN / "diagnostics" / f"{case.stem}.txt", err, update_golden)


def test_every_code_has_a_case():
    shown = {slug_of(case) for case in CASES}
    assert shown == set(SLUGS), f"codes without a case: {sorted(set(SLUGS) - shown)}"


def test_every_diagnostic_has_location_and_help(tmp_path):
    import json

    for case in CASES:
        args = ("check", f"tests/cases/{case.name}")
        if case.suffix == ".xml":
            args = ("import", f"tests/cases/{case.name}", "-o", str(tmp_path))
        _, out, err = teamc(*args, "--format", "json")
        for d in json.loads(out if args[0] == "check" else err)["diagnostics"]:
            assert d["help"], d
            assert d["location"] and d["location"]["line"] >= 1, d
            first_word = d["message"].split()[0]
            # lowercase, no trailing period (a quoted value, or an acronym such as MAC, VM or PCI, may lead)
            assert not d["message"].endswith(".")
            assert first_word.startswith("`") or first_word.upper() == first_word or first_word[0].islower()


def test_registry_codes_are_unique_and_well_formed():
    assert len({c.slug for c in CODES.values()}) == len(CODES)
    for code in CODES.values():
        assert code.code[0] in "EW" and len(code.code) == 5
        assert (code.code[0] == "E") == (code.severity.value == "error")


# --- teamc explain --------------------------------------------------------------------------

EXAMPLE = re.compile(r"^(Broken|Fixed):\n\n```(team|xml)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def shown(code: str, kind: str, lang: str, text: str) -> list:
    """The diagnostics of an example, from the command that shows its code."""
    import teamc

    if lang == "xml":
        return teamc.import_xml(text, "example.xml").diagnostics
    if code == "E0003" and kind == "Broken":  # the example saved as Latin-1
        from teamc.pipeline import read_source

        return read_source("example.team", text.encode("latin-1"))[1]
    if code in ("W0504", "W0505"):  # from the QEMU backend: only when compiling
        return teamc.compile_text(text, "example.team").diagnostics
    return teamc.check_text(text, "example.team").diagnostics


@pytest.mark.parametrize("code", sorted(CODES))
def test_explain_shows_a_broken_example_that_has_the_code_and_a_fixed_one_that_is_clean(code):
    status, text, err = teamc("explain", code)
    assert (status, err) == (0, "")
    assert text.startswith(f"# {code} {CODES[code].slug}: ") and teamc("explain", CODES[code].slug)[1] == text
    examples = {kind: (lang, body) for kind, lang, body in EXAMPLE.findall(text)}
    assert set(examples) == {"Broken", "Fixed"}, "an explanation needs a broken and a fixed example"
    broken = shown(code, "Broken", *examples["Broken"])
    fixed = shown(code, "Fixed", *examples["Fixed"])
    assert code in {d.code for d in broken}, f"the broken example does not show {code}"
    assert code not in {d.code for d in fixed} and not any(d.is_error for d in fixed), fixed


def test_explain_lists_every_code_and_refuses_an_unknown_one():
    status, text, _ = teamc("explain")
    assert status == 0 and [line.split()[0] for line in text.splitlines()] == list(CODES)
    status, _, err = teamc("explain", "E9999")
    assert status == 2 and "explain E9999: no such code" in err
