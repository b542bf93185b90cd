"""The `teamc` command: wires the pipeline to files, stdout and exit codes.

Exit status: 0 success (warnings allowed), 1 errors in the input, 2 usage
errors (bad options, unreadable files), 3 an internal error (a bug in teamc).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from . import __version__
from .diagnostics import Diagnostic, lookup, render_concise, render_human, render_json, sorted_unique
from .ir import PciAddress
from .pipeline import Artifact, FileResult, Options, check_source, compile_source, load

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

# Subcommands that live in their own module. Each module exposes
# `add_parser(subparsers)` and `run(args) -> int`, and keeps its top-level
# imports light (heavy ones go inside `run`), so that `teamc check` stays fast.
COMMAND_MODULES = {
    "fmt": "compiler.formatter",
    "import": "compiler.importer",
    "verify": "compiler.verify",
}


def _command_module(name: str):
    import importlib

    try:
        module = importlib.import_module(COMMAND_MODULES[name])
    except ModuleNotFoundError as err:
        if err.name == COMMAND_MODULES[name]:
            return None  # not part of this build
        raise
    return module if hasattr(module, "add_parser") and hasattr(module, "run") else None


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="teamc",
        description="Compile .team files into libvirt domain XML and QEMU command lines for virtio-net failover pairs.",
    )
    top.add_argument("--version", action="version", version=f"teamc {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("files", nargs="+", metavar="FILE", help=".team files ('-' reads standard input)")
        p.add_argument("--format", choices=("human", "concise", "json"), default="human",
                       help="how diagnostics are printed on standard error (default: human)")
        p.add_argument("--allow", action="append", default=[], metavar="CODE",
                       help="downgrade an allowable check (e.g. E0401 / pc-machine-team) to a warning")

    check = sub.add_parser("check", help="check files and print diagnostics only")
    common(check)
    comp = sub.add_parser("compile", help="write libvirt XML and QEMU command lines")
    common(comp)
    comp.add_argument("-o", "--output", metavar="DIR",
                      help="write <vm>.xml and <vm>.sh into DIR (default: print to standard output)")
    comp.add_argument("--emit", default="xml,qemu", metavar="KINDS",
                      help="comma-separated outputs: xml, qemu (default: xml,qemu)")
    comp.add_argument("--qemu-syntax", choices=("json", "keyval"), default="json",
                      help="-device/-netdev syntax: json (libvirt today) or keyval (older libvirt)")
    comp.add_argument("--qemu-format", choices=("shell", "lines"), default="shell",
                      help="shell: a runnable, shell-quoted script <vm>.sh; lines: one argument per line <vm>.argv")
    comp.add_argument("--vf", action="append", default=[], metavar="VM:NAME=ADDR",
                      help="the concrete VF for a hostdev-pool transient, for the QEMU command line")
    for name in COMMAND_MODULES:
        module = _command_module(name)
        if module is not None:
            module.add_parser(sub)
    return top


def _options(args: argparse.Namespace) -> Options:
    allow = set()
    for name in args.allow:
        code = lookup(name)
        if code is None or not code.allowable:
            allowable = ", ".join(f"{c.code} ({c.slug})" for c in _allowable())
            raise UsageError(f"--allow {name}: not an allowable check (allowable: {allowable})")
        allow.add(code.code)
    if args.command != "compile":
        return Options(allow=frozenset(allow))
    emit = tuple(e.strip() for e in args.emit.split(",") if e.strip())
    if not emit or set(emit) - {"xml", "qemu"}:
        raise UsageError(f"--emit {args.emit}: choose from xml, qemu")
    vf = {}
    for spec in args.vf:
        target, _, addr = spec.partition("=")
        vm, _, name = target.partition(":")
        address = PciAddress.parse(addr)
        if not vm or not name or address is None or address.out_of_range():
            raise UsageError(f"--vf {spec}: expected VM:NAME=DOMAIN:BUS:SLOT.FUNCTION, e.g. web:up0=0000:03:10.2")
        vf[(vm, name)] = address
    return Options(emit=emit, qemu_syntax=args.qemu_syntax, qemu_format=args.qemu_format, vf=vf,
                   allow=frozenset(allow))


def _allowable():
    from .diagnostics import CODES

    return [c for c in CODES.values() if c.allowable]


def _print_diagnostics(diagnostics: list[Diagnostic], fmt: str) -> None:
    out = sys.stderr
    if fmt == "json":
        out.write(render_json(diagnostics))
        return
    render = render_human if fmt == "human" else render_concise
    for d in diagnostics:
        out.write(render(d))
        if fmt == "human":
            out.write("\n")
    if fmt == "human" and diagnostics:
        errors = sum(d.is_error for d in diagnostics)
        warnings = len(diagnostics) - errors
        parts = [f"{errors} error{'s' * (errors != 1)}"] if errors else []
        parts += [f"{warnings} warning{'s' * (warnings != 1)}"] if warnings else []
        out.write(f"teamc: {', '.join(parts)}\n")


def _write_atomically(directory: Path, artifacts: list[Artifact]) -> None:
    """All files go to temporary names first, then each is renamed into place."""
    directory.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for artifact in artifacts:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{artifact.name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(artifact.text)
            if artifact.name.endswith(".sh"):
                os.chmod(tmp, 0o755)
            else:
                os.chmod(tmp, 0o644)
            staged.append((tmp, directory / artifact.name))
        for tmp, final in staged:
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _duplicate_vms(results: list[FileResult]) -> list[Diagnostic]:
    from .diagnostics import Label, diag

    seen: dict = {}
    out = []
    for result in results:
        for vm, span in result.vms:
            if vm in seen and seen[vm].source is not span.source:
                out.append(diag("E0101", f"VM `{vm}` is defined in two input files", span,
                                Label(seen[vm], "first defined here"),
                                help="outputs are named after the VM; rename one of them"))
            seen.setdefault(vm, span)
    return out


def run(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in COMMAND_MODULES:
        try:
            return _command_module(args.command).run(args)
        except UsageError as err:
            parser.error(str(err))
    try:
        options = _options(args)
        sources = []
        for path in args.files:
            try:
                sources.append(load(path))
            except OSError as err:
                raise UsageError(f"cannot read {path}: {err.strerror or err}") from err
    except UsageError as err:
        parser.error(str(err))  # exits with status 2

    results = []
    for source, read_errors in sources:
        if read_errors:
            results.append(FileResult(source, read_errors))
        elif args.command == "check":
            results.append(check_source(source, options)[1])
        else:
            results.append(compile_source(source, options))

    diagnostics = sorted_unique([d for r in results for d in r.diagnostics] + _duplicate_vms(results))
    _print_diagnostics(diagnostics, args.format)
    unused_vf = set(options.vf) - {key for r in results for key in r.used_vf}
    if unused_vf:
        names = ", ".join(f"{vm}:{name}" for vm, name in sorted(unused_vf))
        parser.error(f"--vf {names}: no hostdev-pool transient of that name")
    if any(d.is_error for d in diagnostics):
        return EXIT_ERRORS
    if args.command == "compile":
        artifacts = [a for r in results for a in r.artifacts]
        if args.output:
            _write_atomically(Path(args.output), artifacts)
        else:
            _print_artifacts(artifacts)
    return EXIT_OK


def _print_artifacts(artifacts: list[Artifact]) -> None:
    if len(artifacts) == 1:
        sys.stdout.write(artifacts[0].text)
        return
    for i, artifact in enumerate(artifacts):
        sys.stdout.write(("\n" if i else "") + f"==> {artifact.name} <==\n" + artifact.text)


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as err:  # noqa: BLE001 - never a traceback for the user; a bug report instead
        if os.environ.get("TEAMC_DEBUG"):
            raise
        sys.stderr.write(f"teamc: internal error: {type(err).__name__}: {err}\n"
                         "This is a bug in teamc; rerun with TEAMC_DEBUG=1 for the traceback and report it.\n")
        return EXIT_INTERNAL
