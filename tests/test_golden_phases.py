"""Golden files for the phases between the source and the outputs, for every example and case.

tests/golden/ir/<examples|cases>/<file>/<vm>.json is what `teamc compile --emit json` writes (the
IR, with the diagnostics), for every input that lowers, errors included;
tests/golden/layout/<examples|cases>/<file>/<vm>.json is the layout phase's result (root ports and
every NIC's guest address, bus and QEMU ids), for every input that passes the checks. A change in
lowering or layout shows here as a reviewed diff (`--update-golden`) before it reaches an output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import GOLDEN, ROOT, check_golden
from teamc.layout import VmLayout, layout
from teamc.pipeline import Options, check_source, compile_source, load

INPUTS = [*sorted((ROOT / "examples").glob("*.team")), *sorted((ROOT / "tests" / "cases").glob("*.team"))]


def golden_folder(phase: str, path: Path) -> Path:
    return GOLDEN / phase / path.parent.name / path.stem


def layout_json(vm_layout: VmLayout) -> str:
    """The layout as JSON, one line per root port and per device (so a diff names each one moved)."""
    ports = [{"id": p.id, "chassis": p.chassis, "port": p.port, "slot": p.slot, "function": p.function,
              "multifunction": p.multifunction} for p in vm_layout.root_ports]
    devices = [{"nic": d.nic.name, "role": d.nic.role, "element": d.element, "address": str(d.address),
                "bus": d.bus_id, "qemu_id": d.qemu_id, "failover_pair_id": d.failover_pair_id}
               for d in vm_layout.devices]

    def rows(items: list[dict]) -> str:
        return "[" + ",".join(f"\n    {json.dumps(item)}" for item in items) + ("\n  ]" if items else "]")

    return (f'{{\n  "vm": {json.dumps(vm_layout.vm.name)},\n  "machine": {json.dumps(vm_layout.vm.machine)},\n'
            f'  "root_ports": {rows(ports)},\n  "devices": {rows(devices)}\n}}\n')


def check_folder(folder: Path, produced: dict[str, str], update: bool) -> None:
    """Every file golden, and no golden file left over for a VM that is gone."""
    for name, text in produced.items():
        check_golden(folder / name, text, update)
    if update:
        for stale in {p.name for p in folder.glob("*.json")} - set(produced):
            (folder / stale).unlink()
    written = {p.name for p in folder.glob("*.json")} if folder.is_dir() else set()
    assert written == set(produced), f"{folder}: a VM appeared or disappeared; rerun with --update-golden"


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_ir_golden(path, update_golden):
    source, _ = load(str(path.relative_to(ROOT)))
    artifacts = [] if source is None else compile_source(source, Options(emit=("json",))).artifacts
    check_folder(golden_folder("ir", path), {a.name: a.text for a in artifacts}, update_golden)


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_layout_golden(path, update_golden):
    source, _ = load(str(path.relative_to(ROOT)))
    graph, result = check_source(source) if source is not None else (None, None)
    layouts = [] if graph is None or result.failed else layout(graph)
    check_folder(golden_folder("layout", path), {f"{v.vm.name}.json": layout_json(v) for v in layouts}, update_golden)


def test_every_phase_golden_belongs_to_an_input():
    """A golden folder whose input was renamed or removed is stale."""
    inputs = {(p.parent.name, p.stem) for p in INPUTS}
    for phase in ("ir", "layout"):
        folders = {(f.parent.name, f.name) for f in (GOLDEN / phase).glob("*/*") if f.is_dir()}
        assert folders <= inputs, f"golden folders without an input: {sorted(folders - inputs)}"
