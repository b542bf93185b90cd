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
