"""`teamc explain CODE`: the long explanation of a diagnostic code.

Each code has `explanations/<CODE>.md` in the package: what the check guards against and why,
a broken example and the fixed one (tests/test_diagnostics.py proves that the broken example
shows the code and the fixed one is clean).
"""

from __future__ import annotations

from pathlib import Path

EXPLANATIONS = Path(__file__).resolve().parent / "explanations"


def explanation(code: str) -> str:
    """The text for a registered code (`E0308`)."""
    return (EXPLANATIONS / f"{code}.md").read_text(encoding="utf-8")
