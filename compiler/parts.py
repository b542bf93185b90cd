"""One large file compiled by several processes (`-j`), with the diagnostics, the outputs and the
manifest entry one process gives.

The file is cut between VMs, at lines that start one, into runs of as many VMs, one per job. Each run
is parsed, lowered, checked and laid out in a forked process of its own, exactly as a file of those VMs
alone would be (`pipeline.check_part`). Every check relates NICs of one VM, but for three that compare
VMs with one another: E0101 (VM names), E0309 (the MACs of teamed NICs) and E0310 (host VFs). The
parent compares what each run holds of those (`_fleet_keys`): when no name, MAC or VF is in two runs,
each of those checks has seen, in its run, all it would have seen in the whole file, so the runs'
diagnostics together are the file's. Otherwise, or after a syntax error (whose recovery and limit are
the whole file's), the file is compiled in one process (`compile_parts` returns None).

Each run renders its VMs while the parent judges (rendering reads no diagnostic). Then the parent tells
each run whether the file failed, and each writes its VMs' outputs, or after errors only what the
analysis kinds (json, dot) make of them, with the run's diagnostics (all the file has about its VMs).
The names written, joined in the order of the runs, are the names one process writes.

A run's objects never leave its process, which ends without freeing them (as `teamc` does): it sends
the parent its diagnostics, VM names and keys, pickled with the source file left out (the parent has
it). The parent only waits meanwhile, so it holds none of the file's objects either.
"""

from __future__ import annotations

import gc
import io
import os
import pickle
import re
from contextlib import suppress
from itertools import pairwise
from pathlib import Path

from .checks import assigned_vf, team_mac
from .ir import nics
from .outdir import write_files
from .pipeline import EmitWork, FileResult, Options, Part, check_part, emit_work, no_cyclic_gc
from .source import SourceFile, Span

# A run gets at least this many VMs, so a file of fewer than twice as many is compiled in one process: a
# forked run costs about what 100 VMs take to compile (on the reference machine, with -j 2: 200 VMs took
# 0.24 s in two runs and 0.25 s in one process, 400 VMs 0.28 s against 0.32 s, 800 VMs 0.34 s against 0.45 s).
MIN_VMS = 200

# The lines that start a VM. A line starting `vm` can only be a VM's start in a file that parses (no
# statement inside a block starts with a value, and strings and comments end at the line's end), and a
# cut anywhere else leaves a run that does not parse, which sends the file back to one process.
_VM_LINE = re.compile(r'^(?=[ \t]*vm[ \t"])', re.M)


def cuts(text: str, jobs: int, min_vms: int | None = None) -> list[int]:
    """Where to cut `text` into runs of whole VMs: [0, ..., len(text)], as many runs as `jobs` (each at
    least `min_vms` VMs, by default MIN_VMS), of as many VMs each as can be."""
    starts = [m.start() for m in _VM_LINE.finditer(text)]
    runs = min(jobs, len(starts) // (MIN_VMS if min_vms is None else min_vms))
    if runs < 2:
        return [0, len(text)]
    return [0, *(starts[len(starts) * i // runs] for i in range(1, runs)), len(text)]


def compile_parts(command: str, source: SourceFile, options: Options, jobs: int,
                  out_dir: Path | None) -> FileResult | None:
    """`teamc check` or `teamc compile -o OUT_DIR` of one file in up to `jobs` processes; None when it
    has to be compiled in one (see the module's doc), and before anything is written."""
    with no_cyclic_gc():  # see pipeline.no_cyclic_gc: the runs make millions of objects, none in a cycle
        return _compile_parts(command, source, options, jobs, out_dir)


def _compile_parts(command: str, source: SourceFile, options: Options, jobs: int,
                   out_dir: Path | None) -> FileResult | None:
    bounds = cuts(source.text, jobs)
    if len(bounds) < 3:
        return None  # too small
    import multiprocessing  # (only now: a rebuild of one small file is spared the import)

    if "fork" not in multiprocessing.get_all_start_methods():
        return None  # the runs' processes inherit the text rather than unpickle it
    context = multiprocessing.get_context("fork")
    workers: list[tuple] = []
    try:
        for start, end in pairwise(bounds):
            ours, theirs = context.Pipe()
            # The child closes its copies of the parent's ends (its own and the earlier runs'), so that each
            # run reads the end of its pipe as soon as the parent closes it.
            parents = [conn for _, conn in workers] + [ours]
            process = context.Process(target=_run, args=(theirs, parents, command, source, options, start, end,
                                                         out_dir), daemon=True)
            process.start()
            theirs.close()
            workers.append((process, ours))
        reports = [_receive(conn, source) for _, conn in workers]
        failed = _verdict(reports)
        for _, conn in workers:
            conn.send(failed)
        if failed is None:
            return None
        names = [_receive(conn, source) for _, conn in workers]
    finally:
        for process, conn in workers:
            conn.close()
            process.join()
    result = FileResult(source, [d for r in reports for d in r["diagnostics"]],
                        vms=[(name, Span(source, start, end)) for r in reports for name, start, end in r["vms"]],
                        used_vf=set().union(*(r["used_vf"] for r in reports)))
    if not failed:
        result.diagnostics.extend(d for r in reports for d in r["emitter_diagnostics"])
    result.analysis_names = [name for analysis, _ in names for name in analysis]
    result.written = [*result.analysis_names, *(name for _, rendered in names for name in rendered)]
    return result


def _verdict(reports: list[dict | None]) -> bool | None:
    """Whether the file fails, from its runs' reports; None if it must be compiled in one process: a run
    has a syntax error, or a name, MAC or VF is in two runs."""
    parsed = [r for r in reports if r is not None]
    if len(parsed) < len(reports):
        return None
    for kind in ("names", "macs", "vfs"):
        seen: set = set()
        for r in parsed:
            if not seen.isdisjoint(r[kind]):
                return None
            seen |= r[kind]
    return any(d.is_error for r in parsed for d in r["diagnostics"])


def _fleet_keys(part: Part) -> dict[str, set]:
    """What the checks that compare VMs compare: VM names (lower's E0101), the MACs of teamed NICs
    (checks.team_mac, E0309) and the host VFs of transients (checks.assigned_vf, E0310). A check that
    relates two VMs in any other way must add what it compares here."""
    specs = [nic for _, nic in nics(part.graph)]
    vfs = {(a.domain, a.bus, a.slot, a.function)  # (a tuple pickles faster than the address)
           for a in map(assigned_vf, specs) if a is not None}
    return {"names": part.names, "macs": set(filter(None, map(team_mac, specs))), "vfs": vfs}


class _Run:
    """One run of the file, in the process that compiles it."""

    def __init__(self, command: str, source: SourceFile, options: Options, start: int, end: int,
                 out_dir: Path | None) -> None:
        self.command, self.options, self.out_dir = command, options, out_dir
        self.part = check_part(source, options, start, end)

    def report(self) -> dict | None:
        """What the parent needs of this run to judge the file (None after a syntax error)."""
        part = self.part
        if part is None:
            return None
        return {"diagnostics": part.result.diagnostics, "emitter_diagnostics": part.emitter_diagnostics,
                # Each VM's name and the offsets of its span (which pickle faster than the span).
                "vms": [(name, span.start, span.end) for name, span in part.result.vms],
                "used_vf": part.result.used_vf, **_fleet_keys(part)}

    def render(self) -> None:
        """Render this run's outputs while the parent judges the file (they are written only if it passes,
        and read no diagnostic); a run with errors renders nothing: the file fails."""
        part = self.part
        self.rendered = []
        if part is not None and self.out_dir is not None and self.command == "compile" and not part.result.failed:
            self.rendered = EmitWork(part.graph, (), [], part.layouts, self.options).render()

    def finish(self, failed: bool) -> tuple[list[str], list[str]]:
        """Write this run's VMs (what describes them only, if the file failed): the names written,
        (analysis ones, rendered ones)."""
        part = self.part
        if part is None or self.out_dir is None or self.command != "compile":
            return [], []
        diagnostics = part.result.diagnostics if failed else [*part.result.diagnostics, *part.emitter_diagnostics]
        analysis = emit_work(part.graph, diagnostics, [], self.options).describe()
        rendered = [] if failed else self.rendered
        write_files(self.out_dir, [*analysis, *rendered])
        return [a.name for a in analysis], [a.name for a in rendered]


def _run(conn, parents: list, command: str, source: SourceFile, options: Options, start: int, end: int,
         out_dir: Path | None) -> None:
    """A run's process: report, wait for the verdict, finish. Whatever it raises is sent to the parent,
    which raises it (an OSError while writing is then reported as with one process)."""
    for inherited in parents:
        inherited.close()
    try:
        gc.disable()  # as in the parent (compile_parts); this process ends with the run
        run = _Run(command, source, options, start, end, out_dir)
        _send(conn, run.report(), source)
        run.render()
        failed = conn.recv()
        if failed is not None:
            _send(conn, run.finish(failed), source)
    except EOFError:  # the parent gave up (it raised): nothing to do
        pass
    except BaseException as err:  # noqa: BLE001 - every failure is the parent's to report
        with suppress(OSError):  # (unless the parent is gone: it raised, or was interrupted)
            try:
                _send(conn, _Raised(err), source)
            except (pickle.PicklingError, TypeError, AttributeError):  # an error that does not pickle
                _send(conn, _Raised(RuntimeError(f"a run of {source.name} failed: {err!r}")), source)
    finally:
        conn.close()
    # The process ends here, leaving what it made to the OS, as `teamc` does (multiprocessing's own exit
    # would first free the run's objects one by one).
    os._exit(0)


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Pickler(pickle.Pickler):
    """Pickles all but the source file, which the parent has: spans refer to it by name only."""

    def __init__(self, file, source: SourceFile) -> None:
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self.source = source

    def persistent_id(self, obj):
        return "source" if obj is self.source else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, source: SourceFile) -> None:
        super().__init__(file)
        self.source = source

    def persistent_load(self, pid):
        return self.source


def _send(conn, obj, source: SourceFile) -> None:
    buffer = io.BytesIO()
    _Pickler(buffer, source).dump(obj)
    conn.send_bytes(buffer.getbuffer())


def _receive(conn, source: SourceFile):
    obj = _Unpickler(io.BytesIO(conn.recv_bytes()), source).load()
    if isinstance(obj, _Raised):
        raise obj.error
    return obj
