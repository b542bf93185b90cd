"""Golden diagnostics: the rendered text for one broken input per code.

tests/cases/<slug>.team is named after the check it shows (a suffix may follow
the slug); tests/golden/diagnostics/<case>.txt is what `teamc check` prints,
which is what `teamc compile` prints too (the QEMU backend's warnings included);
tests/cases/<slug>.xml is libvirt XML, which goes through `teamc import`.
"""

import pytest

from compiler.diagnostics import CODES, SLUGS
from helpers import GOLDEN, TESTS, check_golden, teamc

CASES = sorted([*(TESTS / "cases").glob("*.team"), *(TESTS / "cases").glob("*.xml")])


def slug_of(case) -> str:
    return next(slug for slug in sorted(SLUGS, key=len, reverse=True) if case.stem.startswith(slug))


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_diagnostics_golden(case, tmp_path, update_golden):
    slug = slug_of(case)
    rel = f"tests/cases/{case.name}"
    if case.suffix == ".xml":
        code, out, err = teamc("import", rel, "-o", str(tmp_path))
    else:
        code, out, err = teamc("check", rel)
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
        _, _, err = teamc(*args, "--format", "json")
        for d in json.loads(err)["diagnostics"]:
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
