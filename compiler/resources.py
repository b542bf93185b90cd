"""The one place that finds the grammar and the templates.

Installed from a wheel they live inside the package (`compiler/grammar`,
`compiler/templates`); in a source checkout they sit at the top of the tree.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"teamc resource folder {name!r} not found next to {_PACKAGE}")
