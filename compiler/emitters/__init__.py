"""Emit phase: the registry of output kinds (`--emit KIND`).

Each kind is one module of this package defining `EMITTER`, an `Emitter` whose `emit(subject, options)`
turns one VM (`Subject`: its laid-out devices, or for an analysis kind its IR) into artifacts, and which
does its own escaping (Jinja autoescape for XML, `shlex` for the shell, DOT quoting). The pipeline and
the CLI read the kinds, their help and their order from here, so adding an output kind is one module
here, its template and its test.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx

    from ..diagnostics import Diagnostic
    from ..ir import VmSpec
    from ..layout import VmLayout
    from ..pipeline import Artifact, Options


@dataclass(slots=True)  # read-only by convention: one per VM and kind
class Subject:
    """What an emitter sees of one VM."""

    graph: nx.DiGraph  # the checked IR (errors included for an analysis kind)
    vm: VmSpec
    diagnostics: tuple[Diagnostic, ...]  # the file's, for kinds that describe them
    layout: VmLayout | None  # the VM's layout; None for an analysis kind, which runs without one

    def laid_out(self) -> VmLayout:
        """The layout, for a kind that is not an analysis kind (the pipeline gives those one)."""
        if self.layout is None:
            raise ValueError(f"VM `{self.vm.name}` has no layout: only an analysis kind runs without one")
        return self.layout


@dataclass(frozen=True, slots=True)
class Emitter:
    kind: str  # the --emit name
    help: str  # one phrase for `--emit`'s help
    order: int  # artifacts of one VM come in this order (stdout shows them so)
    suffixes: tuple[str, ...]  # the file name endings it writes (the output folder owns only these)
    emit: Callable[[Subject, Options], list[Artifact]]
    analysis: bool = False  # describes the input: runs on the IR even when it has errors, no layout
    diagnose: Callable[[VmLayout, Options], list[Diagnostic]] | None = None  # what only this kind can tell
    # (W0504/W0505 from the QEMU backend): `teamc check` reports it as `compile` does


@lru_cache(maxsize=1)
def registry() -> dict[str, Emitter]:
    """Every output kind, in artifact order, from the modules of this package."""
    found = [importlib.import_module(f"{__name__}.{info.name}").EMITTER for info in pkgutil.iter_modules(__path__)]
    return {e.kind: e for e in sorted(found, key=lambda e: (e.order, e.kind))}


def selected(kinds: tuple[str, ...]) -> list[Emitter]:
    """The emitters of these kinds, in registry order."""
    return [e for kind, e in registry().items() if kind in kinds]


def kinds_help() -> str:
    return ", ".join(f"{e.kind} ({e.help})" for e in registry().values())
