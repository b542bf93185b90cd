"""Diagnostics: the code registry, the `Diagnostic` record and its renderers.

Every user mistake is reported as a `Diagnostic` with a stable code and slug
from `CODES`, a primary span, optional secondary labels and a `help:` line.
Phases return lists of diagnostics; the CLI sorts, dedupes and renders them.
"""

from __future__ import annotations

import os
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
    Code("E0004", "bad-xml", E, "libvirt XML that is not well-formed, not a domain, or has a DOCTYPE"),
    Code("E0101", "duplicate-vm", E, "two VMs in one file have the same name"),
    Code("E0102", "duplicate-nic", E, "two NICs or teams of a VM have the same name or alias"),
    Code("E0103", "duplicate-setting", E, "a setting is given twice in one block"),
    Code("E0104", "missing-setting", E, "a required setting is missing"),
    Code("E0105", "option-not-allowed", E, "an option does not apply to this NIC or source"),
    Code("E0106", "boot-order-duplicate", E, "two devices of a VM have the same boot order"),
    Code("E0107", "rom-file-duplicate", E, "two NICs of a VM load option ROMs of one file name through fw_cfg"),
    Code("E0201", "alias-prefix", E, "a persistent NIC's alias does not start with `ua-`"),
    Code("E0202", "alias-chars", E, "a name has characters libvirt does not accept in an alias"),
    Code("E0203", "bad-mac", E, "a MAC address is malformed, multicast, all-zero or broadcast"),
    Code("E0204", "bad-pci-address", E, "a PCI address is malformed or out of range"),
    Code("E0205", "invalid-value", E, "a setting has a value teamc does not accept"),
    Code("E0206", "setting-refused", E,
         "a NIC setting libvirt refuses on this NIC (its source kind, role or other settings)"),
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
    Code("E0312", "vlan-mismatch", E, "the two NICs of a team state different VLAN tags"),
    Code("E0401", "pc-machine-team", E, "a team on the i440fx `pc` machine, which QEMU refuses", allowable=True),
    Code("E0402", "primary-not-alone", E, "the VF does not sit alone at function 0 of its slot"),
    Code("E0403", "pci-address-clash", E, "two devices are pinned to the same guest PCI address"),
    Code("E0404", "primary-not-hotpluggable", E, "the VF is pinned to a bus without hot-plug"),
    Code("E0405", "unsupported-machine", E, "the machine type cannot host a failover team"),
    Code("E0406", "function-zero-missing", E, "a device sits on a function of a slot with nothing on function 0",
         allowable=True),
    Code("W0501", "persistent-alone", W, "a persistent NIC has no transient partner"),
    Code("W0502", "hostdev-mac-preset", W, "a plain <hostdev> VF needs its MAC preset on the host", allowable=True),
    Code("W0503", "primary-boot-or-rom", W, "boot order or option ROM set on the VF", allowable=True),
    Code("W0504", "vf-unresolved", W, "a hostdev-pool VF is picked by libvirt; no QEMU argv without a concrete VF",
         allowable=True),
    Code("W0505", "no-qemu-backend", W, "a persistent source has no plain-QEMU equivalent; no QEMU argv written",
         allowable=True),
    Code("W0506", "left-out", W, "a NIC without teaming, or a setting of a plain <hostdev> VF, is left out",
         allowable=True),
    Code("W0507", "vlan-one-side", W, "one NIC of a team states a VLAN, the other none", allowable=True),
    Code("W0508", "standby-link-down", W, "the virtio standby of a team has its link down", allowable=True),
    Code("W0509", "libvirt-only-setting", W,
         "a NIC setting that only libvirt applies: the QEMU command line goes without it", allowable=True),
    Code("W0510", "vhost-user-private-memory", W, "a vhost-user standby in a domain whose memory is not shared"),
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

    def as_error(self) -> Diagnostic:
        """`--werror`: every warning counts as an error."""
        return replace(self, severity=Severity.ERROR)

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


_COLORS = {"error": "\033[1;31m", "warning": "\033[1;33m", "bold": "\033[1m", "blue": "\033[1;34m",
           "reset": "\033[0m"}


def _paint(text: str, style: str, color: bool) -> str:
    return f"{_COLORS[style]}{text}{_COLORS['reset']}" if color else text


def _snippet(span: Span, label: str, gutter: int, style: str, color: bool) -> list[str]:
    line, col = span.line_col
    text = span.source.line_text(line)
    # A span that runs past its line is underlined to the end of the line; an
    # empty span (end of file) still gets one caret.
    width = max(1, min(span.end - span.start, len(text) - col + 1))
    pad = " " * gutter
    bar = _paint("|", "blue", color)
    caret = " " * (col - 1) + _paint("^" * width + (f" {label}" if label else ""), style, color)
    return [
        f"{_paint(str(line).rjust(gutter), 'blue', color)} {bar} {text.expandtabs(1)}",
        f"{pad} {bar} {caret}",
    ]


def render_human(d: Diagnostic, color: bool = False) -> str:
    """rustc-style text: header, location, the source line with a caret, help."""
    head = _paint(f"{d.severity.value}[{d.code}]", d.severity.value, color)
    out = [f"{head}{_paint(': ' + d.message, 'bold', color)}"]
    spans = ([Label(d.span, "")] if d.span else []) + list(d.labels)
    gutter = max((len(str(lab.span.line_col[0])) for lab in spans), default=1)
    pad = " " * gutter
    for i, lab in enumerate(spans):
        arrow = _paint("-->" if i == 0 else ":::", "blue", color)
        out.append(f"{pad}{arrow} {lab.span}")
        out.extend(_snippet(lab.span, lab.message, gutter, d.severity.value if i == 0 else "blue", color))
    if d.help:
        out.append(f"{pad} {_paint('=', 'blue', color)} {_paint('help', 'bold', color)}: {d.help}")
    return "\n".join(out) + "\n"


def summary(diagnostics: list[Diagnostic], color: bool = False) -> str:
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    parts = [f"{errors} error{'s' * (errors != 1)}"] if errors else []
    parts += [f"{warnings} warning{'s' * (warnings != 1)}"] if warnings else []
    return f"{_paint('teamc', 'bold', color)}: {', '.join(parts)}\n"


def render_concise(d: Diagnostic) -> str:
    """`file:line:col: CODE message`, one line each, for editors and grep."""
    where = f"{d.span}: " if d.span else ""
    return f"{where}{d.code} {d.message}\n"


def location(span: Span) -> dict:
    """A span as JSON: file, 1-based line and column of both ends."""
    line, col = span.line_col
    end_line, end_col = span.source.line_col(span.end)
    return {"file": span.source.name, "line": line, "column": col, "end_line": end_line, "end_column": end_col}


def to_json(d: Diagnostic) -> dict:
    return {
        "code": d.code,
        "slug": d.slug,
        "severity": d.severity.value,
        "message": d.message,
        "location": location(d.span) if d.span else None,
        "labels": [{"message": lab.message, "location": location(lab.span)} for lab in d.labels],
        "help": d.help,
    }


def render_json(diagnostics: list[Diagnostic]) -> str:
    """Schema version 1, documented in docs/outputs.md ("Diagnostics as JSON")."""
    import json

    return json.dumps({"version": 1, "diagnostics": [to_json(d) for d in diagnostics]}, indent=2) + "\n"


def _gh_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def render_github(d: Diagnostic) -> str:
    """A GitHub Actions workflow command: the diagnostic shows up on the pull request."""
    kind = "error" if d.is_error else "warning"
    props = [f"title={_gh_escape(f'{d.code} {d.slug}', prop=True)}"]
    if d.span is not None:
        line, col = d.span.line_col
        end_line, end_col = d.span.source.line_col(d.span.end)
        props = [f"file={_gh_escape(d.span.source.name, prop=True)}", f"line={line}", f"col={col}",
                 f"endLine={end_line}", f"endColumn={end_col}", *props]
    message = d.message + (f" (help: {d.help})" if d.help else "")
    return f"::{kind} {','.join(props)}::{_gh_escape(message)}\n"


def render_sarif(diagnostics: list[Diagnostic]) -> str:
    """A SARIF 2.1.0 log with one run; every registered code is a rule."""
    import json

    from . import __version__

    rules = list(CODES.values())
    index = {c.code: i for i, c in enumerate(rules)}

    def location(span: Span, message: str | None = None) -> dict:
        line, col = span.line_col
        end_line, end_col = span.source.line_col(span.end)
        loc: dict = {"physicalLocation": {
            "artifactLocation": {"uri": span.source.name.replace(os.sep, "/")},
            "region": {"startLine": line, "startColumn": col, "endLine": end_line,
                       "endColumn": max(end_col, col + 1) if end_line == line else end_col},
        }}
        if message:
            loc["message"] = {"text": message}
        return loc

    results = []
    for d in diagnostics:
        result: dict = {
            "ruleId": d.code, "ruleIndex": index[d.code],
            "level": "error" if d.is_error else "warning",
            "message": {"text": d.message + (f"\nhelp: {d.help}" if d.help else "")},
        }
        if d.span is not None:
            result["locations"] = [location(d.span)]
        if d.labels:
            result["relatedLocations"] = [dict(location(lab.span, lab.message or None), id=i)
                                          for i, lab in enumerate(d.labels)]
        results.append(result)
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "teamc", "version": __version__, "semanticVersion": __version__,
                "rules": [{"id": c.code, "name": c.slug, "shortDescription": {"text": c.summary},
                           "defaultConfiguration": {"level": c.severity.value}} for c in rules],
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
    return json.dumps(log, indent=2) + "\n"


def _files(diagnostics: list[Diagnostic], inputs: tuple[str, ...] | list[str]) -> list[str]:
    """Every input, in order, then any other file a diagnostic names (a base domain, `<stdin>`)."""
    named = [d.span.source.name for d in diagnostics if d.span is not None]
    return list(dict.fromkeys([*inputs, *named]))


def _xml(root) -> str:
    import xml.etree.ElementTree as ET

    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_junit(diagnostics: list[Diagnostic], inputs: tuple[str, ...] | list[str] = ()) -> str:
    """JUnit XML, as CI servers show test results: one test case per file, which fails with
    one <failure> per error; warnings are the case's <system-out>."""
    import xml.etree.ElementTree as ET

    files = _files(diagnostics, inputs)
    by_file: dict[str, list[Diagnostic]] = {name: [] for name in files}
    unplaced = [d for d in diagnostics if d.span is None]
    for d in diagnostics:
        if d.span is not None:
            by_file[d.span.source.name].append(d)
    if unplaced:  # no file to blame: a case of its own, so that the failure is not lost
        by_file["teamc"] = unplaced
    failed = sum(any(d.is_error for d in found) for found in by_file.values())
    counts = {"tests": str(len(by_file)), "failures": str(failed), "errors": "0", "skipped": "0"}
    suites = ET.Element("testsuites", {"name": "teamc", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": "teamc", **counts})
    for name, found in by_file.items():
        case = ET.SubElement(suite, "testcase", {"classname": "teamc", "name": name, "file": name})
        for d in found:
            if d.is_error:
                where = f"{d.span}: " if d.span else ""
                failure = ET.SubElement(case, "failure", {"type": f"{d.code} {d.slug}", "message": where + d.message})
                failure.text = render_human(d)
        warnings = [d for d in found if not d.is_error]
        if warnings:
            ET.SubElement(case, "system-out").text = "".join(render_human(d) for d in warnings)
    return _xml(suites)


def render_checkstyle(diagnostics: list[Diagnostic], inputs: tuple[str, ...] | list[str] = ()) -> str:
    """Checkstyle XML (read by Jenkins' warnings plugin, reviewdog, SonarQube, ...): a <file> per
    file, an <error> per diagnostic, errors and warnings told apart by `severity`."""
    import xml.etree.ElementTree as ET

    root = ET.Element("checkstyle", {"version": "4.3"})
    files = _files(diagnostics, inputs) + (["teamc"] if any(d.span is None for d in diagnostics) else [])
    elements = {name: ET.SubElement(root, "file", {"name": name}) for name in files}
    for d in diagnostics:
        where = {"line": "1"}  # no place in a file: the file `teamc` of its own, as for JUnit
        if d.span is not None:
            line, col = d.span.line_col
            where = {"line": str(line), "column": str(col)}
        ET.SubElement(elements[d.span.source.name if d.span is not None else "teamc"], "error", {
            **where, "severity": d.severity.value, "message": d.message + (f" (help: {d.help})" if d.help else ""),
            "source": f"teamc.{d.code}.{d.slug}"})
    return _xml(root)


def render_gitlab(diagnostics: list[Diagnostic]) -> str:
    """A GitLab Code Quality report (`artifacts:reports:codequality`): a JSON array of issues,
    each with a fingerprint that stays the same while the problem does."""
    import hashlib
    import json

    issues = []
    seen: dict[str, int] = {}
    for d in diagnostics:
        path, lines = ".", {"begin": 1}
        if d.span is not None:
            path = d.span.source.name.replace(os.sep, "/")
            lines = {"begin": d.span.line_col[0], "end": d.span.source.line_col(d.span.end)[0]}
        # Not the line: a problem moved down the file keeps its identity in GitLab's merge request
        # widget. The same message twice in a file is told apart by its rank (GitLab shows one
        # issue per fingerprint).
        identity = f"{path}\0{d.code}\0{d.message}"
        seen[identity] = seen.get(identity, -1) + 1
        identity += f"\0{seen[identity]}"
        issues.append({
            "description": d.message + (f" (help: {d.help})" if d.help else ""),
            "check_name": f"{d.code} {d.slug}",
            "fingerprint": hashlib.sha256(identity.encode()).hexdigest(),
            "severity": "major" if d.is_error else "minor",
            "location": {"path": path, "lines": lines},
        })
    return json.dumps(issues, indent=2) + "\n"


#: Formats that are one document for a program to read (written to stdout by `teamc check`).
MACHINE_FORMATS = ("json", "sarif", "junit", "gitlab", "checkstyle")
FORMATS = ("human", "concise", "github", *MACHINE_FORMATS)


def render(diagnostics: list[Diagnostic], fmt: str = "human", *, color: bool = False,
           inputs: tuple[str, ...] | list[str] = ()) -> str:
    """The diagnostics in one of `FORMATS`, as the whole text to print: what every command and the
    Python API use. `inputs` names the files that were read, so that the JUnit and Checkstyle
    reports list the clean ones too; the human format ends with the count of errors and warnings."""
    if fmt == "json":
        return render_json(diagnostics)
    if fmt == "sarif":
        return render_sarif(diagnostics)
    if fmt == "junit":
        return render_junit(diagnostics, inputs)
    if fmt == "checkstyle":
        return render_checkstyle(diagnostics, inputs)
    if fmt == "gitlab":
        return render_gitlab(diagnostics)
    if fmt == "github":
        return "".join(render_github(d) for d in diagnostics)
    if fmt == "concise":
        return "".join(render_concise(d) for d in diagnostics)
    if fmt != "human":
        raise ValueError(f"unknown diagnostic format {fmt!r} (choose from {', '.join(FORMATS)})")
    text = "".join(render_human(d, color=color) + "\n" for d in diagnostics)
    return text + (summary(diagnostics, color=color) if diagnostics else "")
