"""libvirt XML as a source: a safe lxml parse plus the exact text position of every element.

`teamc import` reports mistakes in the XML with the same diagnostics as in
`.team` source, and `teamc compile --into` splices text into a base domain; both
need character offsets, which lxml does not give (its `sourceline` is the line
where a start tag *ends*). So the text is parsed twice: lxml decides whether
it is well-formed and builds the tree, then a small scanner walks the same
text and records, for each element in document order, where its start tag,
attribute values, text and end tag are. Both walks see the same elements in
the same order, which `parse_xml` verifies.

Safety: no DTD is read and a DOCTYPE is refused (libvirt never writes one), no
entity is expanded, nothing is fetched from the network, and libxml2's limits
on depth and text size stay on (`huge_tree=False`). The size bound is the one
of every teamc input (`pipeline.load`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .diagnostics import Diagnostic, diag
from .source import SourceFile, Span

if TYPE_CHECKING:  # lxml is imported when XML is read, not with the compiler
    from lxml.etree import _Element

_NAME = r"[^\s/>=\"'<]+"
_TOKEN = re.compile(
    r"<!--.*?-->"  # comment
    r"|<\?.*?\?>"  # processing instruction / XML declaration
    r"|<!\[CDATA\[.*?\]\]>"
    r"|<!DOCTYPE"  # refused by the caller before scanning
    rf"|</(?P<end>{_NAME})\s*>"
    rf"|<(?P<start>{_NAME})(?P<attrs>(?:\s+{_NAME}\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*(?P<empty>/?)>",
    re.S,
)
_ATTR = re.compile(rf"({_NAME})\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_ENCODING = re.compile(r"""<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")


@dataclass(slots=True)
class Position:
    """Where one element sits in the text: [start, end) covers `<tag …>` to `</tag>` (or `/>`)."""

    start: int
    start_tag_end: int
    end: int = -1
    attrs: dict[str, tuple[int, int]] = field(default_factory=dict)  # attribute -> value range, quotes excluded
    content_end: int = -1  # where the element's content ends (the `<` of its end tag)


@dataclass(slots=True)
class XmlDocument:
    source: SourceFile
    root: _Element
    positions: dict[_Element, Position]

    def span(self, element) -> Span:
        pos = self.positions[element]
        return Span(self.source, pos.start, pos.end)

    def tag_span(self, element) -> Span:
        """The start tag, where a caret on "this element" belongs."""
        pos = self.positions[element]
        return Span(self.source, pos.start, pos.start_tag_end)

    def attr_span(self, element, name: str) -> Span:
        """The value of an attribute (without quotes), or the start tag if it is missing."""
        pos = self.positions[element]
        if name in pos.attrs:
            return Span(self.source, *pos.attrs[name])
        return self.tag_span(element)

    def text_span(self, element) -> Span:
        """The element's text content, trimmed of white space."""
        pos = self.positions[element]
        if pos.content_end < 0:
            return self.tag_span(element)
        text = self.source.text
        start, end = pos.start_tag_end, pos.content_end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        return Span(self.source, start, end)


def parse_xml(source: SourceFile) -> tuple[XmlDocument | None, list[Diagnostic]]:
    """Parse XML text safely; a malformed document becomes an E0004 diagnostic."""
    from lxml import etree

    text = source.text
    declared = _ENCODING.match(text.lstrip("\ufeff"))
    if declared and declared.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        return None, [_bad(source, declared.start(1), declared.end(1),
                           f"the XML declares the encoding `{declared.group(1)}`; teamc reads UTF-8 XML only",
                           "save the file as UTF-8 (libvirt always writes UTF-8)")]
    doctype = _doctype(text)
    if doctype >= 0:
        return None, [_bad(source, doctype, doctype + len("<!DOCTYPE"),
                           "the XML has a DOCTYPE; teamc reads no DTDs and expands no entities",
                           "remove the <!DOCTYPE …> declaration: libvirt domain XML has none")]
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False,
                             remove_comments=False, remove_pis=False, collect_ids=False)
    try:
        root = etree.fromstring(text.encode("utf-8"), parser)
    except etree.XMLSyntaxError as err:
        line, column = err.position if err.position else (1, 1)
        starts = source.line_starts()
        line = min(max(line, 1), len(starts))
        at = min(starts[line - 1] + max(column - 1, 0), len(text))
        message = (err.msg or "not well-formed").split(", line ")[0]
        return None, [_bad(source, at, min(at + 1, len(text)), f"the XML is not well-formed: {message}",
                           "fix the XML (e.g. `xmllint --noout FILE` shows the same error), then rerun")]
    elements = list(root.iter(tag=etree.Element))
    positions = _scan(text, elements)
    if positions is None:  # the two walks disagree: something the scanner does not know (never seen in libvirt XML)
        return None, [_bad(source, 0, 0, "the XML uses a construct teamc cannot locate in the text",
                           "write the domain as `virsh dumpxml` does: plain elements, attributes and comments")]
    return XmlDocument(source, root, positions), []


def _doctype(text: str) -> int:
    """Where a DOCTYPE declaration starts, or -1. It can only come before the root element, between
    the XML declaration, comments and processing instructions, so `<!DOCTYPE` inside any of those
    (or anywhere after the root's start tag) is not one."""
    at = 0
    while True:
        while at < len(text) and text[at] in " \t\r\n\ufeff":
            at += 1
        if text.startswith("<!DOCTYPE", at):
            return at
        closing = "-->" if text.startswith("<!--", at) else "?>" if text.startswith("<?", at) else None
        if closing is None:
            return -1  # the root element (or text lxml refuses anyway)
        end = text.find(closing, at + 2)
        if end < 0:
            return -1
        at = end + len(closing)


def _bad(source: SourceFile, start: int, end: int, message: str, help: str) -> Diagnostic:
    return diag("E0004", message, Span(source, start, end), help=help)


def _scan(text: str, elements: list) -> dict | None:
    from lxml import etree

    positions: dict = {}
    stack: list[Position] = []
    index = 0
    for m in _TOKEN.finditer(text):
        if m.group("start"):
            if index >= len(elements) or etree.QName(elements[index]).localname != m.group("start").split(":")[-1]:
                return None
            pos = Position(m.start(), m.end())
            base = m.start("attrs")
            for a in _ATTR.finditer(m.group("attrs")):
                group = 2 if a.group(2) is not None else 3
                pos.attrs[a.group(1)] = (base + a.start(group), base + a.end(group))
            positions[elements[index]] = pos
            index += 1
            if m.group("empty"):
                pos.end = m.end()
            else:
                stack.append(pos)
        elif m.group("end"):
            if not stack:
                return None
            pos = stack.pop()
            pos.content_end, pos.end = m.start(), m.end()
    if index != len(elements) or stack:
        return None
    return positions
