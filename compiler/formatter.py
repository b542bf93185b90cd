"""Format phase and the `teamc fmt` command: AST (+ comments) -> canonical `.team` text.

The parser drops comments, so `scan_comments` finds them in the text (a `#`
outside a string) and the printer puts them back by position: a comment alone
on its line stays before the statement that follows it, a comment after code
stays at the end of that code's line. Every comment is printed exactly once,
in its original order, so none can be lost.

The canonical layout: four spaces of indentation, one statement a line, one
space between words, at most one blank line where the source had blank lines
(none right after `{`), one blank line between VMs, trailing comments of
consecutive lines aligned two spaces after the longest code. A `{ … }` block
written on one line stays on one line (`{ a; b }`) while it fits in 120
columns; otherwise each statement gets its own line. Values keep their
quoting (a quoted value is re-escaped canonically), so the AST of the
formatted text equals the AST of the input, spans aside.

`teamc import` prints the AST it builds from libvirt XML with the same printer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import nodes as n

INDENT = "    "
WIDTH = 120


@dataclass(frozen=True, slots=True)
class Comment:
    start: int  # offset in the text the AST's spans point into
    text: str  # from `#` to the end of the line, trailing white space removed
    own_line: bool  # nothing but white space before it on its line


def scan_comments(text: str) -> list[Comment]:
    """Every `#` comment of a file that parses, in order (read with the grammar's own tokens)."""
    from .parser import grammar

    out = []
    for m in grammar().lexer.finditer(text):
        if m.lastgroup == "COMMENT":
            line_start = text.rfind("\n", 0, m.start()) + 1
            out.append(Comment(m.start(), m.group(0).rstrip(), not text[line_start:m.start()].strip()))
    return out


def quote(value: n.Value) -> str:
    """A value as it is written: a bare word, or a canonically escaped string."""
    from .parser import grammar

    text = value.text
    words = grammar()
    if not value.quoted and words.patterns[words.word].fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


@dataclass(slots=True)
class _Line:
    depth: int
    code: str
    comment: str | None = None  # a trailing comment
    is_comment: bool = False  # the line is a comment of its own

    def render(self) -> str:
        return INDENT * self.depth + self.code


class _Printer:
    def __init__(self, comments, text: str | None, one_line: Callable | None, blank_before: frozenset[int]):
        self.comments = list(comments)
        self.next_comment = 0
        self.text = text
        self.one_line_pred = one_line
        self.blank_before = blank_before
        self.lines: list[_Line | None] = []  # None is a blank line
        self.last_end = 0  # source offset just after the last thing printed
        self.first_in_block = True

    # --- comments and blank lines ---------------------------------------------

    def _blank_between(self, start: int, end: int) -> bool:
        if end in self.blank_before:
            return True
        if self.text is None:
            return False
        return any(not line.strip() for line in self.text[start:end].split("\n")[1:-1])

    def _before(self, start: int, depth: int, force_blank: bool = False, statement: bool = True) -> None:
        """Print the comments that come before `start`, then (unless it closes a block) make room
        for the statement at `start`."""
        while self.next_comment < len(self.comments) and self.comments[self.next_comment].start < start:
            comment = self.comments[self.next_comment]
            self.next_comment += 1
            last = self.lines[-1] if self.lines else None
            if not comment.own_line and last is not None and last.comment is None and not last.is_comment:
                last.comment = comment.text
            else:
                self._space(comment.start, force_blank)
                force_blank = False
                self.lines.append(_Line(depth, comment.text, is_comment=True))
            self.last_end = comment.start + len(comment.text)
        if statement:
            self._space(start, force_blank)

    def _space(self, start: int, force_blank: bool) -> None:
        if not self.first_in_block and (force_blank or self._blank_between(self.last_end, start)):
            if self.lines and self.lines[-1] is not None:
                self.lines.append(None)
        self.first_in_block = False

    def _emit(self, depth: int, code: str, end: int) -> None:
        self.lines.append(_Line(depth, code))
        self.last_end = end

    # --- blocks ---------------------------------------------------------------

    def _fits_on_one_line(self, node) -> bool:
        if self.one_line_pred is not None:
            return self.one_line_pred(node)
        if self.text is None:  # (format_module is given the source text or a predicate)
            return False
        line = self.text.count("\n", 0, node.span.start)
        return line == self.text.count("\n", 0, node.span.end)

    def _block(self, head: str, items, node, depth: int) -> None:
        """`head { items }`: on one line when it was and still fits, else one statement a line."""
        if not items:
            self._emit(depth, head + " {}", node.span.end)
            return
        if self._fits_on_one_line(node):
            flat = f"{head} {{ {'; '.join(self._flat(item) for item in items)} }}"
            if len(INDENT * depth + flat) <= WIDTH:
                self._emit(depth, flat, node.span.end)
                return
        self._emit(depth, head + " {", node.span.start)
        self.first_in_block = True
        for item in items:
            self._before(item.span.start, depth + 1)
            self._statement(item, depth + 1)
        self._before(node.span.end - 1, depth + 1, statement=False)
        self.first_in_block = False
        self._emit(depth, "}", node.span.end)

    def _flat(self, item) -> str:
        """A statement on one line (its blocks inline)."""
        head, items = self._parts(item)
        if items is None:
            return head
        return f"{head} {{ {'; '.join(self._flat(i) for i in items)} }}" if items else f"{head} {{}}"

    def _statement(self, item, depth: int) -> None:
        head, items = self._parts(item)
        if items is None:
            self._emit(depth, head, item.span.end)
        else:
            self._block(head, items, item, depth)

    # --- statements -----------------------------------------------------------

    def _parts(self, item) -> tuple[str, tuple | None]:
        """The words before a block, and the block's statements (None: no block)."""
        if isinstance(item, n.Vm):
            return f"vm {quote(item.name)}", item.items
        if isinstance(item, n.Team):
            return f"team {quote(item.name)}", item.items
        if isinstance(item, n.Nic):
            return f"nic {quote(item.name)}", item.items
        if isinstance(item, n.Persistent):
            return f"persistent {quote(item.model)} {_source(item.source)}", item.options or None
        if isinstance(item, n.Transient):
            return f"transient {_source(item.source)}", item.options or None
        if isinstance(item, n.Setting):
            unit = f" {quote(item.unit)}" if item.unit is not None else ""
            return f"{item.key} {quote(item.value)}{unit}", None
        if isinstance(item, n.Mac):
            return f"mac {quote(item.value)}", None
        if isinstance(item, n.Model):
            return f"model {quote(item.value)}", None
        if isinstance(item, n.NicSource):
            return f"source {_source(item.source)}", None
        if isinstance(item, n.Teaming):
            return ("teaming persistent" if item.target is None else f"teaming transient {quote(item.target)}"), None
        if isinstance(item, n.NicSetting):
            return " ".join([item.key, *map(quote, item.values)]), None
        if isinstance(item, n.Option):
            return (item.key if item.value is None else f"{item.key} {quote(item.value)}"), None
        raise TypeError(f"cannot print {type(item).__name__}")

    def module(self, module: n.Module) -> str:
        for vm in module.vms:
            self._before(vm.span.start, 0, force_blank=True)
            self._statement(vm, 0)
        self._before(len(self.text) + 1 if self.text is not None else 1 << 62, 0, force_blank=True)
        return _render(self.lines)


def _source(src: n.Source) -> str:
    words = [src.kind]
    if src.target is not None:
        words.append(quote(src.target))
    if src.mode is not None:
        words += ["mode", quote(src.mode)]
    if src.via_bridge is not None:
        words += ["bridge", quote(src.via_bridge)]
    if src.via_vf is not None:
        words += ["vf", quote(src.via_vf)]
    if src.portgroup is not None:
        words += ["portgroup", quote(src.portgroup)]
    if src.managed is not None:
        words += ["managed", "yes" if src.managed.enabled else "no"]
    return " ".join(words)


def _render(lines: list[_Line | None]) -> str:
    while lines and lines[-1] is None:
        lines.pop()
    out: list[str] = []
    run: list[_Line] = []

    def flush() -> None:
        column = max(len(line.render()) for line in run) + 2
        out.extend(f"{line.render().ljust(column)}{line.comment}" for line in run)
        run.clear()

    for line in lines:
        if line is not None and line.comment is not None:
            run.append(line)
            continue
        if run:
            flush()
        out.append("" if line is None else line.render())
    if run:
        flush()
    return "\n".join(out) + "\n" if out else ""


def format_module(module: n.Module, comments=(), text: str | None = None, one_line: Callable | None = None,
                  blank_before: frozenset[int] = frozenset()) -> str:
    """Print a module. `text` is the source its spans point into (for blank lines and
    one-line blocks); without it, `one_line(node)` decides and `blank_before` holds the
    start offsets of the statements that get a blank line before them."""
    return _Printer(comments, text, one_line, blank_before).module(module)


def format_source(source) -> tuple[str | None, list]:
    """Parse and format one file; None and the syntax diagnostics if it does not parse."""
    from .parser import parse

    module, diagnostics = parse(source)
    if module is None:
        return None, diagnostics
    return format_module(module, scan_comments(source.text), source.text), []


# --- the `teamc fmt` command ---------------------------------------------------------


def add_parser(subparsers) -> None:
    from .cli import add_diagnostic_options

    p = subparsers.add_parser("fmt", help="rewrite .team files in the canonical format (keeps comments)")
    p.add_argument("files", nargs="+", metavar="FILE", help=".team files ('-' reads standard input, writes stdout)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would be reformatted")
    p.add_argument("--diff", action="store_true", help="write nothing; print a unified diff of the changes")
    add_diagnostic_options(p)


def run(args) -> int:
    import difflib
    import sys

    from .cli import EXIT_ERRORS, EXIT_OK, UsageError, print_diagnostics
    from .diagnostics import Diagnostic, sorted_unique
    from .pipeline import load

    diagnostics: list[Diagnostic] = []
    changed, unchanged = [], 0
    for path in args.files:
        try:
            source, read_errors = load(path)
        except OSError as err:
            raise UsageError(f"cannot read {path}: {err.strerror or err}") from err
        formatted, errors = (None, read_errors) if read_errors else format_source(source)
        if formatted is None:
            diagnostics.extend(errors)
            continue
        if formatted == source.text:
            unchanged += 1
        else:
            changed.append(source.name)
        if args.diff and formatted != source.text:
            sys.stdout.writelines(difflib.unified_diff(source.text.splitlines(keepends=True),
                                                       formatted.splitlines(keepends=True),
                                                       f"{source.name}", f"{source.name} (formatted)"))
        elif path == "-" and not args.check and not args.diff:
            sys.stdout.write(formatted)
        elif formatted != source.text and not args.check and not args.diff:
            try:
                _rewrite(path, formatted)
            except OSError as err:  # a full disk, a read-only file system: the file is left as it was
                raise UsageError(f"cannot rewrite {path}: {err.strerror or err}") from err
    print_diagnostics(sorted_unique(diagnostics), args, inputs=[p if p != "-" else "<stdin>" for p in args.files])
    for name in changed:
        if name == "<stdin>" and not (args.check or args.diff):
            continue  # the formatted text itself went to stdout
        sys.stderr.write(f"{'would reformat' if args.check or args.diff else 'reformatted'} {name}\n")
    if diagnostics:
        return EXIT_ERRORS
    return EXIT_ERRORS if args.check and changed else EXIT_OK


def _rewrite(path: str, text: str) -> None:
    """Replace the file atomically, keeping its mode; a symbolic link stays one, its target is rewritten."""
    import os
    from pathlib import Path

    from .outdir import replace_file

    target = Path(os.path.realpath(path))
    replace_file(target, text, target.stat().st_mode & 0o7777)
