"""Many inputs at once: expand directories, compile in parallel, write per file.

`run_batch` turns the command line's inputs into `FileResult`s (in parallel
with `-j`, identical output to `-j 1`); with an output folder each worker
writes its input's artifacts there, and `finish_outputs` then removes what
belongs to inputs that failed (what an earlier run wrote for them too), so no
stale output survives; a name this run wrote for a good input is never stale,
whichever input wrote it before. The folder's manifest (`.teamc-manifest.json`)
records, per input, the hash of its content and options and the outputs it
produced; an unchanged input whose outputs are still in place is not compiled
again. A manifest that is not what teamc writes is ignored with a warning. The
caller holds the folder (`outdir.locked`) from loading the manifest to saving
it; `outdir` does all writing and removing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .outdir import MANIFEST, lock, output_name, remove_outputs, save_manifest, write_files
from .pipeline import (
    FileResult,
    Options,
    check_source,
    compile_source,
    decode_input,
    no_cyclic_gc,
    plan_compile,
    read_input,
)
from .source import SourceFile

MANIFEST_VERSION = 1


class InputError(Exception):
    """An input that cannot be read, or an output folder that cannot be written (a usage error)."""


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the output folder for this run (see `outdir.lock`); a folder that cannot be made is a usage error."""
    try:
        fd = lock(directory)
    except OSError as err:
        raise InputError(f"cannot write {err.filename or directory}: {err.strerror or err}") from err
    try:
        yield
    finally:
        os.close(fd)


def expand_inputs(paths: list[str]) -> list[str]:
    """Files as given; directories become every `*.team` below them, sorted."""
    out: list[str] = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            top = str(Path(path))  # as pathlib writes it: "./x/" is "x", and "." names nothing
            out.extend(sorted(_team_files(top, "" if top == "." else top.rstrip("/") + "/")))
        elif path == "-" or os.path.exists(path):
            out.append(path)
        else:
            raise InputError(f"cannot read {path}: No such file or directory")
    return list(dict.fromkeys(out))  # each once, in order


def _team_files(folder: str, prefix: str) -> Iterator[str]:
    """The `*.team` files below `folder`, named `prefix` + their path in it as Path.rglob names them (a
    linked folder is not entered, a link to a file counts), from the entries' own types: no `stat` for a
    plain file."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from _team_files(entry.path, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".team") and entry.is_file():
                yield prefix + entry.name


def _work(job: tuple[str, str, Options, bytes | None, Path | None, int]) -> FileResult:
    command, path, options, data, out_dir, split = job
    stamp: list[int] = []
    if data is None:  # a file (standard input was read by the parent)
        try:
            stamp = file_stamp(path)  # before the read: a later change then shows as a changed stamp
            data = read_input(path)
        except OSError as err:
            raise InputError(f"cannot read {path}: {err.strerror or err}") from err
    source, read_errors = decode_input("<stdin>" if path == "-" else path, data)
    if read_errors:
        return FileResult(source, read_errors)
    if command == "check":
        return _in_parts(command, source, options, split, None) or check_source(source, options)[1]
    if out_dir is None:
        return compile_source(source, options)
    # Written here, in the worker (or the processes of the file's runs), so that -j also spreads the file
    # writing; the parent removes them again if the input turns out to fail (--werror, a VM in two
    # inputs). After errors only what describes the input (json, dot) is written.
    result = _in_parts(command, source, options, split, out_dir)
    if result is None:
        with no_cyclic_gc():
            result = _compile_into(out_dir, source, options)
    if path != "-":
        result.key = content_key(data, options)  # the bytes just compiled, not a second read
        result.stamp = stamp
    return result


def _compile_into(out_dir: Path, source: SourceFile, options: Options) -> FileResult:
    """Compile and write the file's outputs in this process; call it with cyclic GC off. What it made is
    freed (by reference counting) as it returns, or left to the OS (`EmitWork.release`): after that, no
    collection walks it."""
    result, work = plan_compile(source, options)
    analysis, rendered = work.emit() if work is not None else ([], [])
    try:
        write_files(out_dir, [*result.artifacts, *analysis, *rendered])
    except OSError as err:
        raise InputError(f"cannot write {err.filename or out_dir}: {err.strerror or err}") from err
    if work is not None:
        work.release(analysis, rendered)
    result.analysis_names = [a.name for a in analysis]
    result.written = [*result.analysis_names, *(a.name for a in result.artifacts), *(a.name for a in rendered)]
    result.artifacts = []
    return result


def _in_parts(command: str, source: SourceFile, options: Options, jobs: int, out_dir: Path | None) -> FileResult | None:
    """The file compiled (or checked) as runs of its VMs in up to `jobs` processes (`parts.py`); None if
    it is to be compiled in one."""
    if jobs < 2 or options.into is not None:
        return None
    from .parts import compile_parts  # only with parallel work (`teamc check` starts faster without it)

    try:
        return compile_parts(command, source, options, jobs, out_dir)
    except OSError as err:
        raise InputError(f"cannot write {err.filename or out_dir}: {err.strerror or err}") from err


def options_key(options: Options) -> str:
    return hashlib.sha256(f"teamc {__version__}\n{options.cache_key()}\n".encode()).hexdigest()[:16]


def content_key(data: bytes, options: Options) -> str:
    """What an input's outputs depend on: its bytes, the options and teamc's version."""
    digest = hashlib.sha256()
    digest.update(f"teamc {__version__}\n{options.cache_key()}\n".encode())
    digest.update(data)
    return digest.hexdigest()


def file_stamp(path: str) -> list[int]:
    """Size and modification time: when both are unchanged, the content is taken as unchanged
    (as git and make do), which spares reading every input of a large tree on a rebuild."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def run_batch(command: str, paths: list[str], options: Options, jobs: int,
              cached: dict[str, dict] | None = None, out_dir: Path | None = None) -> list[FileResult]:
    """Compile or check every input; `cached` maps a path to a manifest entry to reuse. With
    `out_dir`, each input's outputs are written there as it compiles (see `finish_outputs`)."""
    cached = cached or {}
    stdin = read_input("-") if "-" in paths else None
    todo = [p for p in paths if p not in cached]
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot write {out_dir}: {err.strerror or err}") from err
    # One file to compile gets the workers itself: it is compiled as runs of its VMs (parts.py).
    split = jobs if len(todo) == 1 else 1
    job_list = [(command, p, options, stdin if p == "-" else None, out_dir, split) for p in todo]
    if jobs > 1 and len(job_list) > 1:
        from concurrent.futures import ProcessPoolExecutor  # only when there is parallel work

        chunk = max(1, len(job_list) // (jobs * 8))
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            fresh = list(pool.map(_work, job_list, chunksize=chunk))
    else:
        fresh = [_work(job) for job in job_list]
    by_path = dict(zip(todo, fresh, strict=True))
    with no_cyclic_gc():  # bookkeeping by the ten thousand holds no cycles: see Manifest.load
        return [by_path[p] if p in by_path else _from_cache(p, cached[p]) for p in paths]


def _from_cache(path: str, entry: dict) -> FileResult:
    return FileResult(SourceFile(path, ""), [], cached=True, vms=[(name, None) for name in entry["vms"]])


# --- the output folder ----------------------------------------------------------


@dataclass
class Manifest:
    directory: Path
    entries: dict[str, dict]
    # Each input's line as read, with the entry read from it: written again as it was while the entry is
    # that same object (a rebuild changes one entry of thousands, and encoding them was a tenth of it).
    lines: dict[str, tuple[dict, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path, warn: bool = True) -> Manifest:
        """The folder's manifest; none yet, or one that is not what teamc writes, is an empty one."""
        path = directory / MANIFEST
        problem: str | None
        try:
            # A manifest of 10,000 inputs is as many entries; the cyclic collector would walk them again
            # and again while they are made (half the time of a rebuild's bookkeeping), and they hold no cycles.
            with no_cyclic_gc():
                text = path.read_text(encoding="utf-8")
                data = json.loads(text)
        except FileNotFoundError:
            return cls(directory, {})
        except (OSError, ValueError) as err:
            problem = f"{err.strerror or err}" if isinstance(err, OSError) else "it is not UTF-8 JSON"
            data = None
        else:
            problem = _manifest_problem(data)
        if problem is None:
            return cls(directory, data["inputs"], _entry_lines(text, data["inputs"]))
        if warn:
            sys.stderr.write(f"teamc: warning: ignoring {path}: {problem}; every input is compiled again\n")
        return cls(directory, {})

    def reusable(self, paths: list[str], options: Options) -> dict[str, dict]:
        """Entries whose input is unchanged and whose outputs are all still there."""
        out = {}
        opts = options_key(options)
        present = set(os.listdir(self.directory)) if self.entries else set()
        for path in paths:
            entry = self.entries.get(path)
            if path == "-" or entry is None or entry.get("options") != opts:
                continue
            try:
                unchanged = entry.get("stamp") == file_stamp(path) or (
                    entry.get("key") == content_key(Path(path).read_bytes(), options))
            except OSError:
                continue
            if unchanged and present.issuperset(entry["outputs"]):
                out[path] = entry
        return out

    def save(self) -> None:
        # One input a line: readable and diffable, and each line made by json's C encoder (an indented
        # dump takes its Python one, 4x slower at 10,000 inputs), or kept as read.
        def line(path: str, entry: dict) -> str:
            read = self.lines.get(path)
            if read is not None and read[0] is entry:
                return read[1]
            return f"  {json.dumps(path)}: {json.dumps(entry, sort_keys=True)}"

        lines = ",\n".join(line(path, entry) for path, entry in sorted(self.entries.items()))
        inputs = "{\n" + lines + "\n}" if lines else "{}"
        generator = json.dumps(f"teamc {__version__}")
        save_manifest(self.directory,
                      f'{{"generator": {generator}, "version": {MANIFEST_VERSION},\n "inputs": {inputs}}}\n')


def _entry_lines(text: str, inputs: dict[str, dict]) -> dict[str, tuple[dict, str]]:
    """Each input's line of a manifest laid out as `Manifest.save` writes it (two lines, one input a line
    in the order read, two closing lines), for an input whose name JSON writes as it is; {} for any other
    layout. Each line is the one that starts with its input's name, where `save` put it."""
    rows = text.split("\n")
    if rows[1:2] != [' "inputs": {'] or rows[-2:] != ["}}", ""] or len(rows) - 4 != len(inputs):
        return {}
    out = {}
    for (path, entry), row in zip(inputs.items(), rows[2:-2], strict=True):
        row = row.removesuffix(",")
        plain = path.isascii() and path.isprintable() and '"' not in path and "\\" not in path
        if plain and row.startswith(f'  "{path}": {{') and row.endswith("}"):
            out[path] = (entry, row)
    return out


def _manifest_problem(data: object) -> str | None:
    """Why `data` is not a manifest teamc wrote (None if it is one): nothing in it is trusted otherwise."""
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        return f"not a version {MANIFEST_VERSION} manifest"
    inputs = data.get("inputs")
    if not isinstance(inputs, dict):
        return "`inputs` is not a map"
    for path, entry in inputs.items():
        fields = {"key": str, "options": str, "stamp": list, "outputs": list, "vms": list}
        if not isinstance(entry, dict) or any(not isinstance(entry.get(k), t) for k, t in fields.items()):
            return f"the entry of {path} is not a map of {', '.join(fields)}"
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in entry["stamp"]):
            return f"the stamp of {path} is not a list of numbers"
        if not all(isinstance(name, str) and output_name(name) for name in entry["outputs"]):
            return f"{path} lists an output that is not a file name teamc writes"
        if not all(isinstance(vm, str) for vm in entry["vms"]):
            return f"the VMs of {path} are not names"
    return None


def finish_outputs(directory: Path, results: list[FileResult], failed: set[str], options: Options,
                   manifest: Manifest | None = None) -> None:
    """After the workers wrote: remove what belongs to failing inputs (what earlier runs wrote for
    them too) and stale names, and record each good input in `manifest` (the one the run started from,
    still the folder's: the folder is locked) and save it."""
    manifest = manifest or Manifest.load(directory, warn=False)
    with no_cyclic_gc():  # see Manifest.load
        opts = options_key(options)
        # What this run produced stays, even if the manifest lists it for another input: a VM that moved
        # from one file to another was just written by its new file.
        fresh: set[str] = set()
        stale: set[str] = set()
        for result in results:
            path = result.source.name
            old = manifest.entries.get(path, {}).get("outputs", [])
            stale.update(old)
            if path in failed:
                fresh.update(result.analysis_names)  # --emit json/dot describe the errors
                stale.update(result.written)
                manifest.entries.pop(path, None)
            elif result.cached:
                fresh.update(old)
            else:
                fresh.update(result.written)
                if path != "<stdin>":
                    manifest.entries[path] = {"key": result.key, "stamp": result.stamp, "options": opts,
                                              "outputs": result.written, "vms": [vm for vm, _ in result.vms]}
        remove_outputs(directory, sorted(stale - fresh))
        manifest.save()


def depfile_text(directory: Path, results: list[FileResult], manifest: Manifest | None = None) -> str:
    """Make-style dependencies: each input's outputs depend on that input."""
    manifest = manifest or Manifest.load(directory, warn=False)
    lines = []
    for result in results:
        path = result.source.name
        entry = manifest.entries.get(path)
        if entry is None or not entry["outputs"]:
            continue
        targets = " ".join(_make_escape(str(directory / name)) for name in entry["outputs"])
        lines.append(f"{targets}: {_make_escape(path)}\n")
    return "".join(lines)


def _make_escape(path: str) -> str:
    return path.replace("$", "$$").replace(" ", "\\ ").replace("#", "\\#").replace(":", "\\:")
