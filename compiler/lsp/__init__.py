"""The `teamc lsp` command: a language server for .team files over standard input and output.

pygls and lsprotocol are an optional extra (`pip install 'teamc[lsp]'`); this module imports them only when
the command runs, so `teamc check` never pays for them and a missing extra is a clear usage error (exit 2).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("lsp", help="run the language server (LSP over standard input/output)",
                              description="Run the .team language server. Editors start it themselves; see "
                                          "docs/editors.md. Needs the `lsp` extra: pip install 'teamc[lsp]'.")
    p.add_argument("--stdio", action="store_true", help="talk LSP over standard input/output (the default; "
                                                        "accepted because some editors always pass it)")


def run(args: argparse.Namespace) -> int:
    from ..cli import UsageError

    try:
        import lsprotocol  # noqa: F401
        import pygls  # noqa: F401
    except ImportError as err:
        raise UsageError(f"`teamc lsp` needs the {err.name} package: pip install 'teamc[lsp]'") from err
    from .server import serve

    serve()
    return 0
