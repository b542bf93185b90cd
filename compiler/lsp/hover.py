"""textDocument/hover: a diagnostic's explanation, a keyword's docs, or what a team or NIC compiles to.

What a team or NIC compiles to comes from the compile path itself: the layout the analysis's layout phase
gave (`Analysis.layouts`), the libvirt `<interface>` / `<hostdev>` element as `--emit interfaces` renders
it (`emitters.interfaces.nic_element`), and its `-device` flag of the QEMU command line as the `qemu`
emitter quotes it for the shell (`emitters.qemu.shell_line`).
"""

from __future__ import annotations

import re

from ..diagnostics import CODES, Diagnostic
from ..keywords import KEYWORDS
from .analysis import Analysis, Symbol

_WORD = re.compile(r'[^\s{};#"]+')


def word_at(text: str, offset: int) -> tuple[int, int] | None:
    """The bounds of the word (in the lexer's sense) that touches `offset`."""
    start = offset
    while start > 0 and _WORD.fullmatch(text[start - 1]):
        start -= 1
    end = offset
    while end < len(text) and _WORD.fullmatch(text[end]):
        end += 1
    return (start, end) if start < end else None


def hover_markdown(analysis: Analysis, offset: int, docs_href) -> tuple[str, tuple[int, int]] | None:
    """Markdown for the hover at `offset`, and the range (offsets) it is about."""
    parts: list[str] = []
    where: tuple[int, int] | None = None
    for d in analysis.diagnostics:
        if d.span is not None and d.span.start <= offset <= max(d.span.end, d.span.start + 1):
            parts.append(explain(d, docs_href(d.code)))
            where = where or (d.span.start, d.span.end)
    hit = analysis.index.at(offset)
    if hit is not None and hit.target is not None:
        parts.append(describe_symbol(analysis, hit.target))
        where = (hit.span.start, hit.span.end)
    elif hit is None:
        word = word_at(analysis.source.text, offset)
        if word is not None and not analysis.index.in_value(offset):
            keyword = KEYWORDS.get(analysis.source.text[word[0]:word[1]])
            if keyword is not None:
                parts.append(f"```team\n{keyword.syntax}\n```\n\n{keyword.doc}")
                where = word
    if not parts:
        return None
    return "\n\n---\n\n".join(parts), where or (offset, offset)


def explain(d: Diagnostic, href: str | None) -> str:
    """The code, its summary and this diagnostic's help, then the long text of `teamc explain CODE`."""
    from ..api import explain as long_text

    code = CODES[d.code]
    text = f"**{d.code}** `{code.slug}` ({code.severity.value}): {code.summary}."
    if d.help:
        text += f"\n\nhelp: {d.help}"
    if code.allowable:
        text += f"\n\nAllowable: `allow {code.slug}` in the VM, or `--allow {d.code}`."
    body = long_text(d.code).split("\n", 1)[1].strip()  # its first line is a heading that repeats the code
    text += f"\n\n{body}"
    if href:
        text += f"\n\n[{d.code} in the teamc documentation]({href})"
    return text


def describe_symbol(analysis: Analysis, symbol: Symbol) -> str:
    head = {"vm": "VM", "team": "team", "nic": "nic"}[symbol.kind]
    text = f"**{head} `{symbol.name}`**"
    if symbol.kind != "vm":
        text += f" in VM `{symbol.vm}`"
        if symbol.alias:
            text += f", alias `{symbol.alias}`"
        if symbol.kind == "nic" and symbol.role:
            text += f", {symbol.role}"
    layout = analysis.layouts.get(symbol.vm)
    if symbol.kind == "vm" or layout is None:
        if symbol.kind != "vm":
            text += "\n\n(fix the errors in this VM to see the XML and QEMU arguments it compiles to)"
        return text
    from ..backends.libvirt import nic_view
    from ..backends.qemu import encode, qemu_command
    from ..emitters.interfaces import nic_element
    from ..emitters.qemu import shell_line

    devices = [d for d in layout.devices if d.nic.name == symbol.name]
    command = qemu_command(layout)  # JSON syntax, as `teamc compile` writes by default
    for device in devices:
        text += f"\n\n{device.nic.label}:\n\n```xml\n{nic_element(nic_view(device))}\n```"
        flag = command.device(device.qemu_id)
        if flag is not None:
            text += f"\n\n```sh\n{shell_line((flag.name, *encode(flag, 'json')))}\n```"
    return text
