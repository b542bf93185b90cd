"""`--emit json`: one VM of the IR -> `<vm>.json` (schema in backends/ir_json.py), errors included."""

from __future__ import annotations

from ..pipeline import Artifact, Options
from . import Emitter, Subject


def emit(subject: Subject, options: Options) -> list[Artifact]:
    from ..backends.ir_json import ir_json

    return [Artifact(f"{subject.vm.name}.json", ir_json(subject.graph, subject.vm, list(subject.diagnostics)),
                     analysis=True)]


EMITTER = Emitter("json", "the IR", 40, (".json",), emit, analysis=True)
