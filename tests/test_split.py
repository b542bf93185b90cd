"""One large file compiled as runs of its VMs by the `-j` processes (compiler/parts.py): outputs, manifest
and diagnostics byte-identical to `-j 1`.

Each run is checked on its own, and the parent compares what the checks across VMs compare (names,
MACs, host VFs); a file where one of those is in two runs, or with a syntax error, is compiled in one
process. These tests compile the same file both ways and compare everything a run leaves: exit code,
standard output and error, and every file of the output folder with its mode.
"""

from __future__ import annotations

import os
import re
import signal
from bisect import bisect_right
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import teamc
from teamc import parts
from test_scale import fleet

ALL_KINDS = "xml,qemu,interfaces,json,dot"


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {name: (os.stat(folder / name).st_mode, (folder / name).read_bytes()) for name in sorted(os.listdir(folder))}


def run_both(tmp_path: Path, text: str, jobs: int, *args: str) -> tuple[tuple, tuple]:
    """(-j 1, -j JOBS) runs of one input: each (exit code, stdout, stderr, folder snapshot)."""
    src = tmp_path / "fleet.team"
    src.write_text(text)
    runs = []
    for j in (1, jobs):
        out = tmp_path / f"out{j}"
        code, stdout, stderr = teamc("compile", str(src), "-o", str(out), "-j", str(j), *args)
        runs.append((code, stdout, stderr.replace(str(out), "OUT"), snapshot(out)))
    return runs[0], runs[1]


def count_runs(monkeypatch) -> list[int]:
    """Per compile (or check) of a file with -j, from now on: into how many runs it was compiled (0: in
    one process)."""
    seen: list[int] = []
    compile_parts = parts._compile_parts

    def spy(command, source, options, jobs, out_dir):
        result = compile_parts(command, source, options, jobs, out_dir)
        seen.append(0 if result is None else len(parts.cuts(source.text, jobs)) - 1)
        return result

    monkeypatch.setattr(parts, "_compile_parts", spy)
    return seen


@pytest.fixture
def chunk_counts(monkeypatch) -> list[int]:
    return count_runs(monkeypatch)


@pytest.mark.slow  # 2 * MIN_VMS VMs, compiled with one job and with two
def test_a_file_at_the_threshold_is_split_and_compiles_as_with_one_job(tmp_path, chunk_counts):
    one, two = run_both(tmp_path, fleet(2 * parts.MIN_VMS), 2)
    assert chunk_counts == [2]  # (-j 1 does not try)
    assert one == two and one[0] == 0 and len(one[3]) == 4 * parts.MIN_VMS + 1


@pytest.mark.slow  # one VM fewer, twice
def test_a_small_file_is_not_split(tmp_path, chunk_counts):
    one, two = run_both(tmp_path, fleet(2 * parts.MIN_VMS - 1), 2)
    assert chunk_counts == [0] and one == two


def _mutate(text: str, vms: int, what: str, i: int, j: int) -> str:
    """The fleet with one mistake (or warning) in it, involving VMs i and j (i < j: in different chunks)."""
    lines = text.split("\n")
    per_vm = 5  # fleet() writes five lines a VM
    vm_i, vm_j = lines[i * per_vm:i * per_vm + per_vm], lines[j * per_vm:j * per_vm + per_vm]
    if what == "duplicate-mac":
        mac = vm_i[2].split("mac ")[1].split(";")[0]
        vm_j[3] = vm_j[3].replace(vm_j[3].split("mac ")[1].split(";")[0], mac)
    elif what == "duplicate-vm":
        vm_j[0] = vm_i[0]
    elif what == "duplicate-vf":
        vf = vm_i[2].split("hostdev ")[1].split(" ")[0]
        vm_j[2] = vm_j[2].replace(vm_j[2].split("hostdev ")[1].split(" ")[0], vf)
    elif what == "pool-warning":
        for vm in (vm_i, vm_j):
            vm[3] = re.sub(r"transient hostdev [0-9a-f:.]+", "transient network pool", vm[3])
    elif what == "bad-mac":
        vm_j[2] = vm_j[2].replace("mac 52:54", "mac 01:00")
    elif what == "syntax":
        vm_j[1] = "{ " + vm_j[1]
    lines[i * per_vm:i * per_vm + per_vm], lines[j * per_vm:j * per_vm + per_vm] = vm_i, vm_j
    return "\n".join(lines)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(vms=st.integers(2, 12), jobs=st.integers(2, 4), data=st.data(),
       what=st.sampled_from(["none", "duplicate-mac", "duplicate-vm", "duplicate-vf", "pool-warning", "bad-mac",
                             "syntax"]),
       kinds=st.sampled_from([ALL_KINDS, "xml,qemu", "json"]), werror=st.booleans())
def test_split_outputs_and_diagnostics_equal_one_job(tmp_path_factory, monkeypatch, vms, jobs, data, what, kinds,
                                                     werror):
    monkeypatch.setattr(parts, "MIN_VMS", 1)  # every VM a run's worth: as many runs as jobs
    i = data.draw(st.integers(0, vms - 2))
    j = data.draw(st.integers(i + 1, vms - 1))
    text = _mutate(fleet(vms), vms, what, i, j)
    tmp = tmp_path_factory.mktemp("split")
    seen = count_runs(monkeypatch)
    one, many = run_both(tmp, text, jobs, "--emit", kinds, *(["--werror"] if werror else []))
    assert one == many
    checked = [teamc("check", str(tmp / "fleet.team"), "-j", str(j), *(["--werror"] if werror else []))
               for j in (1, jobs)]
    assert checked[0] == checked[1]
    # In runs when no two runs share a name, MAC or VF; in one process (0) after a syntax error.
    bounds = parts.cuts(text, jobs)
    starts = [m.start() for m in re.finditer(r"^vm ", text, re.M)]
    apart = bisect_right(bounds, starts[i]) != bisect_right(bounds, starts[j])
    shared = what in ("duplicate-mac", "duplicate-vm", "duplicate-vf") and apart
    assert seen == [0 if what == "syntax" or shared else min(jobs, vms)] * 2  # the compile's, the check's
    expected = {"duplicate-mac": "E0309", "duplicate-vm": "E0101", "duplicate-vf": "E0310", "bad-mac": "E0203",
                "syntax": "E0001", "pool-warning": "W0504" if "qemu" in kinds else None}.get(what)
    if expected:
        assert f"[{expected}]" in one[2]


def test_a_write_error_in_a_chunk_worker_is_reported_as_with_one_job(tmp_path, monkeypatch):
    monkeypatch.setattr(parts, "MIN_VMS", 1)
    src = tmp_path / "fleet.team"
    src.write_text(fleet(4))
    runs = []
    for j in (1, 2):
        out = tmp_path / f"out{j}"
        (out / "vm000003.xml").mkdir(parents=True)  # in the last chunk: the rename onto it fails
        (out / "vm000003.xml" / "keep").write_text("")
        code, stdout, stderr = teamc("compile", str(src), "-o", str(out), "-j", str(j))
        runs.append((code, stdout, stderr.replace(str(out), "OUT")))
        assert not [name for name in os.listdir(out) if name.endswith(".tmp")]
    assert runs[0] == runs[1] and runs[0][0] == 2
    assert runs[0][2].endswith("teamc: error: cannot write OUT/vm000003.xml: Is a directory\n")  # not a temporary


def test_a_run_that_fails_is_a_bug_report_and_no_run_waits_for_ever(tmp_path, monkeypatch):
    """A run's process that raises: the parent raises it (exit 3, a bug), and the runs still waiting for
    the parent's verdict see their pipe closed and end (a run holding a copy of another's pipe would wait)."""
    monkeypatch.setattr(parts, "MIN_VMS", 1)
    check_part = parts.check_part

    def failing(source, options, start, end):
        if start > 0:
            raise ValueError("boom")
        return check_part(source, options, start, end)

    monkeypatch.setattr(parts, "check_part", failing)
    src = tmp_path / "fleet.team"
    src.write_text(fleet(3))
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("a run waited for ever"))
    signal.alarm(60)
    try:
        code, _, stderr = teamc("compile", str(src), "-o", str(tmp_path / "out"), "-j", "3")
    finally:
        signal.alarm(0)
    assert code == 3 and "internal error: ValueError: boom" in stderr
    assert not [name for name in os.listdir(tmp_path / "out") if not name.startswith(".")]
