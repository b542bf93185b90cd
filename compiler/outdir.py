"""Writing files: the one place where teamc creates, replaces and removes them.

Every file is written to a temporary `.NAME.XXXXXXXX.tmp` beside it and then
renamed into place, so a reader sees the old file or the new one, never half
of one (`replace_file` for a file the user named, as `fmt` and `--depfile` do;
`write_files` for the outputs of an output folder).

An output folder (`compile -o DIR`, `import -o DIR`) is teamc's to fill but
nothing outside it is: an output's name is one plain path component (no `/`,
not `.`/`..`, not hidden), so every path is DIR/NAME; `remove_outputs` removes
only such names that teamc writes (its output suffixes), and only regular
files, never a directory and never through a symbolic link. `locked` holds an
exclusive `flock` on the folder itself (no lock file to litter it) for a whole
run, so two runs into one folder take turns instead of losing each other's
manifest entries; under the lock, temporary files that a killed run left are
removed, since no other writer can own them.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Protocol

# What teamc writes into an output folder: what the emitters write (emitters/), and imported .team source.
IMPORT_SUFFIXES = (".team",)
MANIFEST = ".teamc-manifest.json"
# A temporary file: ".NAME." + 8 characters + ".tmp" (the random part of teamc's own names, and of
# Python's `tempfile`, which earlier versions used).
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp\Z")


class NamedText(Protocol):
    # Read-only, so that frozen dataclasses (pipeline.Artifact) are NamedTexts.
    @property
    def name(self) -> str: ...
    @property
    def text(self) -> str: ...


def plain_name(name: str) -> bool:
    """One path component that is not hidden: it can only name a file directly inside a folder."""
    return (bool(name) and "/" not in name and "\0" not in name and not name.startswith(".")
            and len(name.encode("utf-8", "surrogateescape")) <= 255)


def output_name(name: str) -> bool:
    """A name teamc may have written into an output folder (and so may remove)."""
    return plain_name(name) and name.endswith(_output_suffixes())


@cache  # the emitters are fixed for the process; names are checked by the thousand (a manifest's)
def _output_suffixes() -> tuple[str, ...]:
    from .emitters import registry

    return (*sorted({s for e in registry().values() for s in e.suffixes}), *IMPORT_SUFFIXES)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _stage(dir_fd: int, name: str, data: bytes, mode: int, token: str) -> str:
    """A new temporary file beside NAME in the folder `dir_fd`, holding `data`: never an existing file or a
    link (O_EXCL); `token` is the random part of its name, drawn again if that name is taken."""
    while True:
        tmp = f".{name}.{token}.tmp"
        try:
            fd = os.open(tmp, _CREATE, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            token = secrets.token_hex(4)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)  # exactly this mode, whatever the umask
        finally:
            os.close(fd)
    except BaseException:
        _unlink(dir_fd, tmp)
        raise
    return tmp


def _unlink(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _replace_all(directory: Path, files: Iterable[tuple[str, str, int]]) -> None:
    """Write each (NAME, text, mode) directly inside `directory`: all staged first, then each renamed into place.

    Every name is taken relative to one descriptor of the folder, so the path is resolved once, not per
    file, and a folder renamed meanwhile cannot send half the files elsewhere. One random token serves
    the whole batch: the names already differ, and O_EXCL catches a clash with a leftover."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    staged: list[tuple[str, str]] = []
    done = 0
    name = ""
    try:
        token = secrets.token_hex(4)
        for name, text, mode in files:
            staged.append((_stage(dir_fd, name, text.encode("utf-8"), mode, token), name))
        for tmp, name in staged:
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            done += 1
    except OSError as err:
        # What failed is named relative to the folder's descriptor (a temporary name): name the output.
        err.filename, err.filename2 = str(directory / name), None
        raise
    finally:
        try:
            for tmp, _ in staged[done:]:
                _unlink(dir_fd, tmp)
        finally:
            os.close(dir_fd)


def replace_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file the user named (its folder must exist) atomically."""
    _replace_all(path.parent, [(path.name, text, mode)])


def write_files(directory: Path, files: Iterable[NamedText]) -> None:
    """Write outputs directly inside `directory`, atomically each (see `_replace_all`)."""
    files = list(files)
    for file in files:
        if not plain_name(file.name):  # the pipeline names outputs after valid VMs only: a bug if it happens
            raise ValueError(f"refusing to write {file.name!r}: not a plain file name")
    _replace_all(directory, ((f.name, f.text, 0o755 if f.name.endswith(".sh") else 0o644) for f in files))


def save_manifest(directory: Path, text: str) -> None:
    """The folder's own bookkeeping file (hidden, so that no output can be named like it)."""
    replace_file(directory / MANIFEST, text)


def remove_outputs(directory: Path, names: Iterable[str]) -> None:
    """Remove outputs teamc wrote; any other name, a directory or a link is left alone."""
    for name in names:
        if not output_name(name):
            continue
        path = directory / name
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                path.unlink()
        except FileNotFoundError:
            pass


def remove_leftovers(directory: Path) -> None:
    """Remove the temporary files of runs that were killed while writing."""
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if match and (output_name(match["name"]) or match["name"] == MANIFEST) and entry.is_file(
                    follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)


def lock(directory: Path) -> int:
    """Create the folder if needed, wait until no other run holds it, and hold it; closing the returned
    descriptor releases it. Leftover temporary files are removed first thing."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        remove_leftovers(directory)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the folder (see `lock`) for the `with` block."""
    fd = lock(directory)
    try:
        yield
    finally:
        os.close(fd)
