"""`--emit xml`: one VM's layout -> its libvirt domain `<vm>.xml` (XML escaped by Jinja autoescape).

With `--into BASE.xml` the pipeline's merge phase writes the xml output instead (merge.py)."""

from __future__ import annotations

from ..pipeline import Artifact, Options
from . import Emitter, Subject


def emit(subject: Subject, options: Options) -> list[Artifact]:
    from ..backends.libvirt import domain_view
    from ..render import render

    if options.into is not None:
        return []
    return [Artifact(f"{subject.vm.name}.xml", render("libvirt/domain.xml.j2", d=domain_view(subject.laid_out())))]


EMITTER = Emitter("xml", "the libvirt domain <vm>.xml", 10, (".xml",), emit)
