"""Character offsets (what the compiler's spans hold) <-> LSP positions, in the negotiated encoding.

LSP lines end at `\\n`, `\\r\\n` or `\\r`; columns count UTF-16 code units unless client and server agreed on
UTF-8 or UTF-32. Every conversion in the server goes through `LineIndex`, so no handler counts columns itself.
"""

from __future__ import annotations

import bisect
import re

from lsprotocol import types as lsp

_BREAK = re.compile(r"\r\n|\r|\n")


def _units(text: str, encoding: str) -> int:
    if encoding == lsp.PositionEncodingKind.Utf32:
        return len(text)
    if encoding == lsp.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


class LineIndex:
    """Line starts of one text; converts both ways, clamping positions past a line or the file."""

    def __init__(self, text: str, encoding: str = lsp.PositionEncodingKind.Utf16) -> None:
        self.text = text
        self.encoding = encoding
        self.starts = [0]
        self.ends = []  # where each line's text stops (before its line break)
        for m in _BREAK.finditer(text):
            self.ends.append(m.start())
            self.starts.append(m.end())
        self.ends.append(len(text))

    def position(self, offset: int) -> lsp.Position:
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.starts, offset) - 1
        start = self.starts[line]
        # An offset inside a line break (between `\r` and `\n`) counts as the end of its line.
        return lsp.Position(line=line, character=_units(self.text[start:min(offset, self.ends[line])], self.encoding))

    def range(self, start: int, end: int) -> lsp.Range:
        return lsp.Range(start=self.position(start), end=self.position(max(start, end)))

    def offset(self, position: lsp.Position) -> int:
        if position.line >= len(self.starts):
            return len(self.text)
        start, stop = self.starts[position.line], self.ends[position.line]
        if self.encoding == lsp.PositionEncodingKind.Utf32:
            return min(start + position.character, stop)
        units = 0
        for i in range(start, stop):
            if units >= position.character:
                return i
            units += _units(self.text[i], self.encoding)
        return stop
