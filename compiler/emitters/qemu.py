"""`--emit qemu`: one VM's layout -> its QEMU command line, a shell script `<vm>.sh` (each argument
quoted with `shlex`) or one argument per line `<vm>.argv` (`--qemu-format lines`).

The backend (backends/qemu.py) builds the structured command and encodes QEMU's own syntax
(`--qemu-syntax`); this module only quotes it for the shell. A VM with no plain command line gets
no file, and W0504/W0505 say why (`diagnose`); W0509 names the NIC settings the command line cannot
apply, and the `.sh` lists them in a comment (the `.argv` form, one argument a line, has no place for one)."""

from __future__ import annotations

import shlex
from functools import lru_cache

from ..pipeline import Artifact, Options
from . import Emitter, Subject

# Flag names, the emulator and the fixed flags' values recur in every VM of a fleet: each is quoted once.
_quote = lru_cache(maxsize=4096)(shlex.quote)


def emit(subject: Subject, options: Options) -> list[Artifact]:
    from ..backends.qemu import libvirt_only_notes, qemu_command
    from ..render import render

    command = qemu_command(subject.laid_out())
    if not command.flags:
        return []
    if options.qemu_format == "lines":
        return [Artifact(f"{command.vm}.argv", render("qemu/argv.txt.j2", argv=command.argv(options.qemu_syntax)))]
    lines = [shell_line(group) for group in command.groups(options.qemu_syntax)]
    return [Artifact(f"{command.vm}.sh", render("qemu/command.sh.j2", vm=command.vm, lines=lines,
                                                libvirt_only=libvirt_only_notes(subject.laid_out())))]


def shell_line(group: tuple[str, ...]) -> str:
    """One flag and its value (a group of `QemuCommand.groups`) as a line of shell: the script's, and what
    the language server shows for a NIC."""
    return " ".join(map(_quote, group))


def diagnose(layout, options: Options) -> list:
    from ..backends.qemu import libvirt_only_settings, unexpressible

    # W0509 only for a VM that gets a command line.
    return unexpressible(layout) or libvirt_only_settings(layout)


EMITTER = Emitter("qemu", "the QEMU command line <vm>.sh", 30, (".sh", ".argv"), emit, diagnose=diagnose)
