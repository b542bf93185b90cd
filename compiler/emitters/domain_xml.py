"""`--emit xml`: one VM's layout -> its libvirt domain `<vm>.xml` (XML escaped by Jinja autoescape).

With `--into BASE.xml` the pipeline's merge phase writes the xml output instead (merge.py), with the root ports
rendered here (`root_port_element`) and the NICs as `--emit interfaces` renders them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..pipeline import Artifact, Options
from . import Emitter, Subject

if TYPE_CHECKING:
    from ..backends.libvirt import ControllerView


def emit(subject: Subject, options: Options) -> list[Artifact]:
    from ..backends.libvirt import domain_view
    from ..render import render

    if options.into is not None:
        return []
    return [Artifact(f"{subject.vm.name}.xml", render("libvirt/domain.xml.j2", d=domain_view(subject.laid_out())))]


def root_port_element(view: ControllerView) -> str:
    """One pcie-root-port <controller>, as the domain has it (two spaces an indentation level, no final
    newline): what the merge splices into a base domain."""
    from ..render import render

    return render("libvirt/root-port.xml.j2", c=view)


EMITTER = Emitter("xml", "the libvirt domain <vm>.xml", 10, (".xml",), emit)
