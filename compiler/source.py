"""Source files and spans.

A `Span` is a pair of character offsets into one `SourceFile`; line and column
numbers are computed on demand, so spans stay cheap to create by the thousand.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SourceFile:
    """The text of one input, with the name used in diagnostics."""

    name: str
    text: str = field(repr=False)
    bom: bool = False  # the file began with a UTF-8 byte-order mark (not part of `text`; kept when rewritten)
    _line_starts: list[int] = field(default_factory=list, compare=False, repr=False)

    def line_starts(self) -> list[int]:
        if not self._line_starts:
            starts = [0]
            find = self.text.find
            pos = find("\n")
            while pos != -1:
                starts.append(pos + 1)
                pos = find("\n", pos + 1)
            self._line_starts.extend(starts)
        return self._line_starts

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset."""
        starts = self.line_starts()
        line = bisect.bisect_right(starts, offset) - 1
        return line + 1, offset - starts[line] + 1

    def line_text(self, line: int) -> str:
        starts = self.line_starts()
        start = starts[line - 1]
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[start:end].rstrip("\r")


# Read-only by convention, like the AST (compiler/nodes.py), not `frozen`: a frozen dataclass sets its fields
# through `object.__setattr__`, and a large file makes spans by the hundred thousand.
@dataclass(slots=True, unsafe_hash=True)
class Span:
    """A half-open range [start, end) of character offsets in `source`."""

    source: SourceFile
    start: int
    end: int

    @property
    def line_col(self) -> tuple[int, int]:
        return self.source.line_col(self.start)

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    def __repr__(self) -> str:
        return f"Span({self}+{self.end - self.start})"

    def __str__(self) -> str:
        line, col = self.line_col
        return f"{self.source.name}:{line}:{col}"

    def sort_key(self) -> tuple[str, int, int]:
        return (self.source.name, self.start, self.end)
