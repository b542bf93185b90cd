"""teamc's Python API: check, compile, format and import text, with diagnostics and outputs as data.

Each function takes the text of one input and returns a `Result`; nothing is read from or written
to files, and nothing is printed. The `teamc` command builds its options and prints its
diagnostics through this module. What is stable and what is not: docs/api.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .diagnostics import FORMATS, Diagnostic, lookup, render
from .pipeline import Options, read_source
from .source import SourceFile


class OptionError(ValueError):
    """An option value teamc does not accept (the CLI's usage error, exit status 2)."""


@dataclass(frozen=True)
class Result:
    """What one input gave: its diagnostics (sorted, errors and warnings) and its outputs,
    file name -> text (`QEMUGuest1.xml`, `QEMUGuest1.sh`, ...)."""

    diagnostics: list[Diagnostic]
    artifacts: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed): what exit status 0 means for the command."""
        return not any(d.is_error for d in self.diagnostics)


def allowed_codes(names: Iterable[str]) -> frozenset[str]:
    """Codes or slugs of allowable checks (`E0401`, `pc-machine-team`) as codes."""
    allow = set()
    for name in names:
        code = lookup(name)
        if code is None or not code.allowable:
            from .diagnostics import CODES

            allowable = ", ".join(f"{c.code} ({c.slug})" for c in CODES.values() if c.allowable)
            raise OptionError(f"--allow {name}: not an allowable check (allowable: {allowable})")
        allow.add(code.code)
    return frozenset(allow)


def make_options(*, emit: Iterable[str] | None = None, allow: Iterable[str] = (), qemu_syntax: str = "json",
                 qemu_format: str = "shell", vf: Mapping[tuple[str, str], str] | None = None,
                 into: SourceFile | None = None) -> Options:
    """Validated compile options; `emit` defaults to xml and qemu (xml alone with `into`)."""
    from .emitters import registry
    from .ir import PciAddress

    kinds = tuple(emit) if emit is not None else (("xml",) if into is not None else ("xml", "qemu"))
    if not kinds or set(kinds) - set(registry()):
        raise OptionError(f"--emit {','.join(kinds)}: choose from {', '.join(registry())}")
    if into is not None and "qemu" in kinds:
        raise OptionError("--into: the QEMU command line is teamc's own domain's; with a base domain, "
                          "let libvirt start it (--emit xml)")
    if qemu_syntax not in ("json", "keyval"):
        raise OptionError(f"--qemu-syntax {qemu_syntax}: choose from json, keyval")
    if qemu_format not in ("shell", "lines"):
        raise OptionError(f"--qemu-format {qemu_format}: choose from shell, lines")
    addresses = {}
    for (vm, name), text in (vf or {}).items():
        address = PciAddress.parse(text)
        if not vm or not name or address is None or address.out_of_range():
            raise OptionError(f"--vf {vm}:{name}={text}: expected VM:NAME=DOMAIN:BUS:SLOT.FUNCTION, "
                              "e.g. web:up0=0000:03:10.2")
        addresses[(vm, name)] = address
    return Options(emit=kinds, qemu_syntax=qemu_syntax, qemu_format=qemu_format, vf=addresses,
                   allow=allowed_codes(allow), into=into)


def check_text(text: str, name: str = "<text>", *, allow: Iterable[str] = ()) -> Result:
    """Parse, lower and check one input, as `teamc check` does; `name` is the file name the
    diagnostics point at."""
    from .pipeline import check_source

    source, read_errors = read_source(name, text.encode("utf-8"))
    if read_errors:
        return Result(read_errors)
    return Result(_sorted(check_source(source, make_options(allow=allow))[1].diagnostics))


def compile_text(text: str, name: str = "<text>", *, emit: Iterable[str] | None = None, allow: Iterable[str] = (),
                 qemu_syntax: str = "json", qemu_format: str = "shell",
                 vf: Mapping[tuple[str, str], str] | None = None, into: str | None = None,
                 into_name: str = "<base>") -> Result:
    """Compile one input, as `teamc compile` does. `into` is the text of a base domain XML to merge
    the teams into (its diagnostics point at `into_name`). After errors, only the outputs that
    describe the input (`json`, `dot`) are returned."""
    from .pipeline import compile_source

    base = SourceFile(into_name, into) if into is not None else None
    options = make_options(emit=emit, allow=allow, qemu_syntax=qemu_syntax, qemu_format=qemu_format, vf=vf,
                           into=base)
    source, read_errors = read_source(name, text.encode("utf-8"))
    if read_errors:
        return Result(read_errors)
    result = compile_source(source, options)
    artifacts = [a for a in result.artifacts if not result.failed or a.analysis]
    return Result(_sorted(result.diagnostics), {a.name: a.text for a in artifacts})


def format_text(text: str, name: str = "<text>") -> Result:
    """The canonical format of a .team input, as `teamc fmt` writes it: `{name: text}`, or
    nothing and the syntax errors."""
    from .formatter import format_source

    source, read_errors = read_source(name, text.encode("utf-8"))
    formatted, errors = (None, read_errors) if read_errors else format_source(source)
    return Result(_sorted(errors), {} if formatted is None else {name: formatted})


def import_xml(text: str, name: str = "<text>", *, allow: Iterable[str] = ()) -> Result:
    """The .team source for the teamed NICs of a libvirt domain XML, as `teamc import` writes it:
    `{"<vm>.team": text}` (nothing after errors)."""
    from .importer import import_xml as import_domain

    source, read_errors = read_source(name, text.encode("utf-8"))
    if read_errors:
        return Result(read_errors)
    imported = import_domain(source, allowed_codes(allow))
    diagnostics = _sorted(imported.diagnostics)
    if any(d.is_error for d in diagnostics):
        return Result(diagnostics)
    assert imported.text is not None  # no errors: the import wrote it
    return Result(diagnostics, {f"{imported.vm}.team": imported.text})


def render_diagnostics(diagnostics: list[Diagnostic], fmt: str = "human", *, color: bool = False,
                       inputs: Iterable[str] = ()) -> str:
    """Diagnostics as text in one of `FORMATS` (human, concise, github, json, sarif, junit, gitlab,
    checkstyle), exactly as the command prints them; `inputs` lists the files checked, for the
    reports that list clean files too (junit, checkstyle)."""
    if fmt not in FORMATS:
        raise OptionError(f"--format {fmt}: choose from {', '.join(FORMATS)}")
    return render(list(diagnostics), fmt, color=color, inputs=tuple(inputs))


def explain(code: str) -> str:
    """The long explanation of a diagnostic code or slug (`teamc explain CODE`): what the check
    guards against and why, a broken example and the fixed one. Each code has its text in
    `explanations/<CODE>.md` inside the package; tests/test_diagnostics.py proves that each broken
    example shows its code and each fixed one is clean."""
    from pathlib import Path

    found = lookup(code)
    if found is None:
        raise OptionError(f"explain {code}: no such code (`teamc explain` lists every code)")
    return (Path(__file__).resolve().parent / "explanations" / f"{found.code}.md").read_text(encoding="utf-8")


def _sorted(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    from .diagnostics import sorted_unique

    return sorted_unique(diagnostics)
