"""`--emit dot`: one VM of the IR -> its teaming graph `<vm>.dot` (DOT quoting in backends/dot.py)."""

from __future__ import annotations

from ..pipeline import Artifact, Options
from . import Emitter, Subject


def emit(subject: Subject, options: Options) -> list[Artifact]:
    from ..backends.dot import dot_view
    from ..render import render

    view = dot_view(subject.graph, subject.vm, list(subject.diagnostics))
    return [Artifact(f"{subject.vm.name}.dot", render("dot/teaming.dot.j2", g=view), analysis=True)]


EMITTER = Emitter("dot", "the teaming graph", 50, (".dot",), emit, analysis=True)
