"""The `teamc` command: wires the pipeline to files, stdout and exit codes.

Exit status: 0 success (warnings allowed), 1 errors in the input, 2 usage
errors (bad options, unreadable files), 3 an internal error (a bug in teamc).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__
from .diagnostics import FORMATS, MACHINE_FORMATS, Diagnostic, render, sorted_unique
from .pipeline import Artifact, FileResult, Options, load

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

# Subcommands that live in their own module. Each module exposes
# `add_parser(subparsers)` and `run(args) -> int`, and keeps its top-level
# imports light (heavy ones go inside `run`), so that `teamc check` stays fast.
# What they share with the built-in commands is public here: the exit codes,
# `UsageError`, `add_diagnostic_options`, `add_allow_option`, `allowed_codes`,
# `print_diagnostics` and `print_artifacts`.
COMMAND_MODULES = {
    "fmt": "formatter",
    "import": "importer",
    "lsp": "lsp",
    "verify": "verify",
}


def _command_module(name: str):
    import importlib

    # Imported relative to this package (`teamc`; the folder is `compiler/` in a checkout).
    full_name = f"{__package__}.{COMMAND_MODULES[name]}"
    try:
        module = importlib.import_module(full_name)
    except ModuleNotFoundError as err:
        if err.name == full_name:
            return None  # not part of this build
        raise
    return module if hasattr(module, "add_parser") and hasattr(module, "run") else None


class UsageError(Exception):
    """A bad option or an input or output that cannot be used: exit status 2."""


# --- what every command shares ---------------------------------------------------------


def add_diagnostic_options(p: argparse.ArgumentParser) -> None:
    """--format, --color and --output-file: how and where a command prints its diagnostics."""
    p.add_argument("--format", choices=FORMATS, default="human",
                   help="how diagnostics are printed (default: human); json, sarif, junit, gitlab and checkstyle "
                        "are one document, printed on standard output by check, on standard error otherwise")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour in the human format (auto: on a terminal, unless NO_COLOR is set)")
    p.add_argument("--output-file", metavar="FILE",
                   help="write the diagnostics to FILE (replaced atomically) instead of printing them")


def add_allow_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow", action="append", default=[], metavar="CODE",
                   help="downgrade an allowable check (e.g. E0401 / pc-machine-team) to a warning, "
                        "or silence an allowable warning")


def allowed_codes(names: list[str]) -> frozenset[str]:
    """The codes of `--allow` options (codes or slugs); a name that is not allowable is a usage error."""
    if not names:
        return frozenset()  # without importing the API module, which a plain `check` needs no more of
    from .api import OptionError
    from .api import allowed_codes as codes

    try:
        return codes(names)
    except OptionError as err:
        raise UsageError(str(err)) from err


def print_diagnostics(diagnostics: list[Diagnostic], args: argparse.Namespace, *,
                      inputs: tuple[str, ...] | list[str] = (), stdout_free: bool = False) -> None:
    """Print (or with --output-file, write) the diagnostics as the options of
    `add_diagnostic_options` ask. A machine-readable format goes to standard output when
    the command leaves it free (`stdout_free`: `teamc check`), human text to standard error."""
    if args.output_file:
        text = render(diagnostics, args.format, inputs=inputs)
        try:
            _write_text(Path(args.output_file), text)
        except OSError as err:
            raise UsageError(f"cannot write {args.output_file}: {err.strerror or err}") from err
        return
    out = sys.stdout if stdout_free and args.format in MACHINE_FORMATS else sys.stderr
    color = args.color == "always" or (args.color == "auto" and _terminal_wants_color(out))
    if diagnostics or args.format in MACHINE_FORMATS:  # a report says "nothing found" too
        out.write(render(diagnostics, args.format, color=color, inputs=inputs))


def print_artifacts(artifacts: list[Artifact]) -> None:
    """Outputs on standard output: one as it is, several each under a `==> NAME <==` header."""
    if len(artifacts) == 1:
        sys.stdout.write(artifacts[0].text)
        return
    for i, artifact in enumerate(artifacts):
        sys.stdout.write(("\n" if i else "") + f"==> {artifact.name} <==\n" + artifact.text)


BUILTIN_COMMANDS = ("check", "compile", "completion", "explain")


def _named_command(argv: list[str]) -> str | None:
    """The subcommand `argv` names, if it is one whose parser alone can read it: the other subcommands'
    parsers (and the modules that make them) are then not built. None (build them all) for help, the
    version, a mistyped command, and `completion`, which describes every command."""
    command = next((a for a in argv if not a.startswith("-")), None)
    known = command in BUILTIN_COMMANDS or command in COMMAND_MODULES
    return command if known and command != "completion" else None


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with `only`, that subcommand's alone."""
    top = argparse.ArgumentParser(
        prog="teamc",
        description="Compile .team files into libvirt domain XML and QEMU command lines for virtio-net failover pairs.",
    )
    top.add_argument("--version", action="version", version=f"teamc {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("files", nargs="+", metavar="PATH",
                       help=".team files, or folders (every *.team below them); '-' reads standard input")
        add_diagnostic_options(p)
        add_allow_option(p)
        p.add_argument("--werror", action="store_true", help="treat warnings as errors")
        p.add_argument("-j", "--jobs", type=_jobs, default=os.cpu_count() or 1, metavar="N",
                       help="parallel workers: files compiled side by side, or one large file as runs of its VMs "
                            "(default: the number of cores)")

    if only in (None, "check"):
        check = sub.add_parser("check", help="check files and print diagnostics only")
        common(check)
    if only in (None, "compile"):
        comp = sub.add_parser("compile", help="write libvirt XML and QEMU command lines")
        common(comp)
        _compile_options(comp)
    if only in (None, "completion"):
        completion = sub.add_parser("completion", help="print a shell completion script")
        completion.add_argument("shell", choices=("bash", "zsh"))
    if only in (None, "explain"):
        explain = sub.add_parser("explain", help="explain a diagnostic code, with a broken and a fixed example")
        explain.add_argument("code", nargs="?", metavar="CODE",
                             help="a code or slug (E0308, mac-mismatch); without it, list every code")
    for name in COMMAND_MODULES:
        module = _command_module(name) if only in (None, name) else None
        if module is not None:
            module.add_parser(sub)
    if not sub.choices:  # `only` names a command module that is not part of this build
        return _parser()
    return top


def _compile_options(comp: argparse.ArgumentParser) -> None:
    comp.add_argument("-o", "--output", metavar="DIR",
                      help="write <vm>.xml and <vm>.sh into DIR (default: print to standard output)")
    from .emitters import kinds_help

    comp.add_argument("--emit", metavar="KINDS",
                      help=f"comma-separated outputs: {kinds_help()} (default: xml,qemu; with --into: xml)")
    comp.add_argument("--into", metavar="BASE.xml",
                      help="merge the VM's teams into this libvirt domain: the xml output is BASE.xml with the "
                           "team NICs and their root ports in it, everything else unchanged")
    comp.add_argument("--qemu-syntax", choices=("json", "keyval"), default="json",
                      help="-device/-netdev syntax: json (libvirt today) or keyval (older libvirt)")
    comp.add_argument("--qemu-format", choices=("shell", "lines"), default="shell",
                      help="shell: a runnable, shell-quoted script <vm>.sh; lines: one argument per line <vm>.argv")
    comp.add_argument("--vf", action="append", default=[], metavar="VM:NAME=ADDR",
                      help="the concrete VF for a hostdev-pool transient, for the QEMU command line")
    comp.add_argument("--depfile", metavar="FILE",
                      help="write make-style dependencies (outputs: input) for build systems; needs -o")


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def _options(args: argparse.Namespace) -> Options:
    if args.command != "compile":
        return Options(allow=allowed_codes(args.allow))
    from .api import OptionError, make_options

    into = None
    if args.into:
        try:
            into, read_errors = load(args.into)
        except OSError as err:
            raise UsageError(f"cannot read {args.into}: {err.strerror or err}") from err
        if read_errors:
            raise UsageError(f"cannot read {args.into}: {read_errors[0].message}")
    vf = {}
    for spec in args.vf:
        target, _, addr = spec.partition("=")
        vm, _, name = target.partition(":")
        vf[(vm, name)] = addr
    emit = [e.strip() for e in args.emit.split(",") if e.strip()] if args.emit else None
    try:
        return make_options(emit=emit, allow=args.allow, qemu_syntax=args.qemu_syntax,
                            qemu_format=args.qemu_format, vf=vf, into=into)
    except OptionError as err:
        raise UsageError(str(err)) from err


def _terminal_wants_color(stream) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def _duplicate_vms(results: list[FileResult]) -> tuple[list[Diagnostic], set[str]]:
    """A VM defined in two inputs: the diagnostics, and every input involved (whose outputs
    would overwrite each other, so none of them may keep outputs)."""
    from .diagnostics import Label, diag

    seen: dict = {}
    out = []
    involved: set[str] = set()
    # In path order, so that which file is "first" does not depend on the command line.
    for result in sorted(results, key=lambda r: r.source.name):
        for vm, span in result.vms:
            first = seen.get(vm)
            if first is not None and first[0] is not result:
                where = span or first[1]
                labels = [Label(first[1], "first defined here")] if span and first[1] else []
                other = result.source.name if span is None else first[0].source.name
                out.append(diag("E0101", f"VM `{vm}` is defined in two input files ({other})", where, *labels,
                                help="outputs are named after the VM; rename one of them"))
                involved |= {result.source.name, first[0].source.name}
            seen.setdefault(vm, (result, span))
    return out, involved


def run(argv: list[str]) -> int:
    from contextlib import ExitStack

    with ExitStack() as held:  # the output folder's lock, until the run ends however it ends
        return _run(argv, held)


def _run(argv: list[str], held) -> int:
    parser = _parser(_named_command(argv))
    args = parser.parse_args(argv)
    if args.command == "completion":
        from .completion import script

        sys.stdout.write(script(args.shell, parser))
        return EXIT_OK
    if args.command == "explain":
        return _explain(args.code, parser)
    if args.command in COMMAND_MODULES:
        try:
            return _command_module(args.command).run(args)
        except UsageError as err:
            parser.error(str(err))
    from . import batch

    try:
        options = _options(args)
        paths = batch.expand_inputs(args.files)
        if not paths:
            raise UsageError("no .team files found in " + " ".join(args.files))
        if getattr(args, "depfile", None) and not args.output:
            raise UsageError("--depfile needs -o DIR")
        output = Path(args.output) if getattr(args, "output", None) else None
        if output is not None:  # one run at a time in a folder, from reading its manifest to writing it
            held.enter_context(batch.locked(output))
        manifest = batch.Manifest.load(output) if output else None
        cached = manifest.reusable(paths, options) if manifest else {}
        results = batch.run_batch(args.command, paths, options, args.jobs, cached, output)
    except (UsageError, batch.InputError) as err:
        parser.error(str(err))  # exits with status 2

    # Outputs are named after their VM, so two inputs may not define one VM when compiling.
    clashes, clashing = _duplicate_vms(results) if args.command == "compile" else ([], set())
    diagnostics = sorted_unique([d for r in results for d in r.diagnostics] + clashes)
    if args.werror:
        diagnostics = [d.as_error() for d in diagnostics]
    try:
        print_diagnostics(diagnostics, args, inputs=[r.source.name for r in results],
                          stdout_free=args.command == "check")
    except UsageError as err:
        parser.error(str(err))
    unused_vf = set(options.vf) - {key for r in results for key in r.used_vf}
    if unused_vf:
        names = ", ".join(f"{vm}:{name}" for vm, name in sorted(unused_vf))
        parser.error(f"--vf {names}: no hostdev-pool transient of that name")
    failed = {_file_of(d) for d in diagnostics if d.is_error} | clashing
    if (args.command == "compile" and options.into is not None and "xml" in options.emit and not failed
            and not any(r.cached for r in results)):
        merged = [vm for r in results for vm, _ in r.vms
                  if f"{vm}.xml" in {a.name for a in r.artifacts} | set(r.written)]
        if len(merged) != 1:
            vms = ", ".join(vm for r in results for vm, _ in r.vms)
            if output is not None:  # take back what the workers wrote for this refused run
                batch.finish_outputs(output, results, {r.source.name for r in results}, options, manifest)
            parser.error(f"--into {args.into}: {len(merged)} VMs to merge ({', '.join(merged) or 'none'} of {vms}); "
                         "name the VM like the base domain's <name>, or compile one VM")
    if args.command == "compile":
        if output is not None:
            try:
                batch.finish_outputs(output, results, failed, options, manifest)
                if args.depfile:
                    _write_text(Path(args.depfile), batch.depfile_text(output, results, manifest))
            except OSError as err:
                parser.error(f"cannot write {err.filename or output}: {err.strerror or err}")
        else:  # after errors, only what describes the input (json, dot)
            print_artifacts([a for r in results for a in r.artifacts
                              if not failed or a.analysis])
    return EXIT_ERRORS if failed else EXIT_OK


def _file_of(d: Diagnostic) -> str:
    return d.span.source.name if d.span is not None else ""


def _write_text(path: Path, text: str) -> None:
    from .outdir import replace_file

    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, text)


def _explain(code: str | None, parser: argparse.ArgumentParser) -> int:
    from .api import OptionError, explain
    from .diagnostics import CODES

    if code is None:
        sys.stdout.writelines(f"{c.code}  {c.slug:<28} {c.summary}\n" for c in CODES.values())
        return EXIT_OK
    try:
        sys.stdout.write(explain(code))
    except OptionError as err:
        parser.error(str(err))
    return EXIT_OK


class _ClosedStream:
    """Stands in for a standard stream the caller closed (Python then has None there), so that
    using it is an environment error with a message instead of an AttributeError."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _closed(self, *args, **kwargs):
        import errno

        raise OSError(errno.EBADF, "it is closed", self.name)

    read = readline = write = writelines = _closed

    def flush(self) -> None:
        pass  # nothing was written, so a command that prints nothing still succeeds

    @property
    def buffer(self):
        return self

    def isatty(self) -> bool:
        return False


def main(argv: list[str] | None = None) -> int:
    """The command line `argv` (or, as the program, `sys.argv`): its exit status."""
    if argv is not None:
        return _main(argv)
    # As the program, the process ends with the run: what it made is left to the OS (see
    # pipeline.leave_to_exit), and the interpreter's own teardown (freeing every module and object one
    # by one, 30 ms for any run) is skipped once the standard streams are flushed.
    from .pipeline import leave_to_exit

    leave_to_exit()
    code = _main(sys.argv[1:])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # (reported already where it could be, or closed)
            pass
    os._exit(code)


def _main(argv: list[str]) -> int:
    for name, label in (("stdin", "standard input"), ("stdout", "standard output"), ("stderr", "standard error")):
        if getattr(sys, name) is None:
            setattr(sys, name, _ClosedStream(label))
    try:
        code = run(argv)
        sys.stdout.flush()  # here, not at exit, so that a full disk is reported
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except OSError as err:
        # A standard stream that is closed or cannot take the output (a full disk, a read-only
        # file system): the environment's problem, not teamc's. The other files teamc reads and
        # writes are reported where they are used, with their names.
        _silence_stdout()
        try:
            sys.stderr.write(f"teamc: error: {err.filename or 'standard output'}: {err.strerror or err}\n")
        except OSError:
            pass  # standard error itself is closed: the exit status still tells
        return EXIT_USAGE
    except Exception as err:  # never a traceback for the user; a bug report instead
        if os.environ.get("TEAMC_DEBUG"):
            raise
        sys.stderr.write(f"teamc: internal error: {type(err).__name__}: {err}\n"
                         "This is a bug in teamc; rerun with TEAMC_DEBUG=1 for the traceback and report it.\n")
        return EXIT_INTERNAL


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush at exit
    does not fail again on what could not be written."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        pass
