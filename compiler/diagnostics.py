"""Diagnostics: the code registry, the `Diagnostic` record and its renderers.

Every user mistake is reported as a `Diagnostic` with a stable code and slug
from `CODES`, a primary span, optional secondary labels and a `help:` line.
Phases return lists of diagnostics; the CLI sorts, dedupes and renders them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import Enum

from .source import Span


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    slug: str
    severity: Severity
    summary: str
    allowable: bool = False  # `allow` / `--allow` downgrades this error, or silences this warning


def _codes(*entries: Code) -> dict[str, Code]:
    return {c.code: c for c in entries}


E, W = Severity.ERROR, Severity.WARNING

#: The registry: the single source of truth for codes, slugs and severities.
CODES: dict[str, Code] = _codes(
    Code("E0001", "syntax-error", E, "the text is not valid .team syntax"),
    Code("E0002", "unknown-keyword", E, "a statement starts with a word that is not a keyword here"),
    Code("E0003", "unreadable-input", E, "the input is not UTF-8 text"),
    Code("E0101", "duplicate-vm", E, "two VMs in one file have the same name"),
    Code("E0102", "duplicate-nic", E, "two NICs or teams of a VM have the same name or alias"),
    Code("E0103", "duplicate-setting", E, "a setting is given twice in one block"),
    Code("E0104", "missing-setting", E, "a required setting is missing"),
    Code("E0105", "option-not-allowed", E, "an option does not apply to this NIC or source"),
    Code("E0201", "alias-prefix", E, "a persistent NIC's alias does not start with `ua-`"),
    Code("E0202", "alias-chars", E, "a name has characters libvirt does not accept in an alias"),
    Code("E0203", "bad-mac", E, "a MAC address is malformed, multicast, all-zero or broadcast"),
    Code("E0204", "bad-pci-address", E, "a PCI address is malformed or out of range"),
    Code("E0205", "invalid-value", E, "a setting has a value teamc does not accept"),
    Code("E0301", "persistent-not-virtio", E, "the persistent NIC is not a virtio interface"),
    Code("E0302", "transient-not-hostdev", E, "the transient NIC is not a hostdev form"),
    Code("E0303", "transient-target-missing", E, "a transient names a NIC that does not exist"),
    Code("E0304", "transient-target-transient", E, "a transient names another transient"),
    Code("E0305", "teaming-cycle", E, "transients name each other in a loop"),
    Code("E0306", "persistent-shared", E, "two transients name the same persistent NIC"),
    Code("E0307", "teaming-both", E, "a NIC is declared both persistent and transient"),
    Code("E0308", "mac-mismatch", E, "the two NICs of a team have different MACs"),
    Code("E0309", "mac-duplicate", E, "two teams use the same MAC"),
    Code("E0310", "vf-duplicate", E, "the same host VF is given twice"),
    Code("E0311", "teaming-missing", E, "a NIC in the explicit form has no teaming role"),
    Code("E0401", "pc-machine-team", E, "a team on the i440fx `pc` machine, which QEMU refuses", allowable=True),
    Code("E0402", "primary-not-alone", E, "the VF does not sit alone at function 0 of its slot"),
    Code("E0403", "pci-address-clash", E, "two devices are pinned to the same guest PCI address"),
    Code("E0404", "primary-not-hotpluggable", E, "the VF is pinned to a bus without hot-plug"),
    Code("E0405", "unsupported-machine", E, "the machine type cannot host a failover team"),
    Code("W0501", "persistent-alone", W, "a persistent NIC has no transient partner"),
    Code("W0502", "hostdev-mac-preset", W, "a plain <hostdev> VF needs its MAC preset on the host", allowable=True),
    Code("W0503", "primary-boot-or-rom", W, "boot order or option ROM set on the VF", allowable=True),
    Code("W0504", "vf-unresolved", W, "a hostdev-pool VF is picked by libvirt; no QEMU argv without a concrete VF", allowable=True),
    Code("W0505", "no-qemu-backend", W, "a persistent source has no plain-QEMU equivalent; no QEMU argv written", allowable=True),
)

SLUGS: dict[str, Code] = {c.slug: c for c in CODES.values()}


def lookup(name: str) -> Code | None:
    """Find a code by its code (`E0401`) or slug (`pc-machine-team`)."""
    return CODES.get(name.upper()) or SLUGS.get(name.lower())


@dataclass(frozen=True, slots=True)
class Label:
    span: Span
    message: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None
    labels: tuple[Label, ...] = ()
    help: str | None = None
    severity: Severity = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.severity is None:
            object.__setattr__(self, "severity", CODES[self.code].severity)

    @property
    def slug(self) -> str:
        return CODES[self.code].slug

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def downgraded(self) -> Diagnostic:
        return replace(self, severity=Severity.WARNING)

    def sort_key(self) -> tuple:
        where = self.span.sort_key() if self.span else ("", -1, -1)
        return (*where, self.code, self.message)


def diag(code: str, message: str, span: Span | None, *labels: Label, help: str | None = None) -> Diagnostic:
    return Diagnostic(code, message, span, tuple(labels), help)


def sorted_unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    seen: set = set()
    out = []
    for d in sorted(diagnostics, key=Diagnostic.sort_key):
        key = d.sort_key()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


# --- renderers ---------------------------------------------------------------


def _snippet(span: Span, label: str, gutter: int) -> list[str]:
    line, col = span.line_col
    text = span.source.line_text(line)
    # A span that runs past its line is underlined to the end of the line; an
    # empty span (end of file) still gets one caret.
    width = max(1, min(span.end - span.start, len(text) - col + 1))
    pad = " " * gutter
    caret = " " * (col - 1) + "^" * width
    return [
        f"{str(line).rjust(gutter)} | {text.expandtabs(1)}",
        f"{pad} | {caret}" + (f" {label}" if label else ""),
    ]


def render_human(d: Diagnostic) -> str:
    """rustc-style text: header, location, the source line with a caret, help."""
    out = [f"{d.severity.value}[{d.code}]: {d.message}"]
    spans = ([Label(d.span, "")] if d.span else []) + list(d.labels)
    gutter = max((len(str(lab.span.line_col[0])) for lab in spans), default=1)
    pad = " " * gutter
    for i, lab in enumerate(spans):
        arrow = "-->" if i == 0 else ":::"
        out.append(f"{pad}{arrow} {lab.span}")
        out.extend(_snippet(lab.span, lab.message, gutter))
    if d.help:
        out.append(f"{pad} = help: {d.help}")
    return "\n".join(out) + "\n"


def render_concise(d: Diagnostic) -> str:
    """`file:line:col: CODE message`, one line each, for editors and grep."""
    where = f"{d.span}: " if d.span else ""
    return f"{where}{d.code} {d.message}\n"


def to_json(d: Diagnostic) -> dict:
    def loc(span: Span) -> dict:
        line, col = span.line_col
        end_line, end_col = span.source.line_col(span.end)
        return {"file": span.source.name, "line": line, "column": col, "end_line": end_line, "end_column": end_col}

    return {
        "code": d.code,
        "slug": d.slug,
        "severity": d.severity.value,
        "message": d.message,
        "location": loc(d.span) if d.span else None,
        "labels": [{"message": lab.message, "location": loc(lab.span)} for lab in d.labels],
        "help": d.help,
    }


def render_json(diagnostics: list[Diagnostic]) -> str:
    return json.dumps({"version": 1, "diagnostics": [to_json(d) for d in diagnostics]}, indent=2) + "\n"
