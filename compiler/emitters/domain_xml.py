"""`--emit xml`: one VM's layout -> its libvirt domain `<vm>.xml` (XML escaped by Jinja autoescape).

With `--into BASE.xml` the pipeline's merge phase writes the xml output instead (merge.py), with the root ports
rendered here (`root_port_element`) and the NICs as `--emit interfaces` renders them."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from markupsafe import Markup

from ..pipeline import Artifact, Options
from . import Emitter, Subject

if TYPE_CHECKING:
    from ..backends.libvirt import ControllerView, DomainView


def emit(subject: Subject, options: Options) -> list[Artifact]:
    from ..backends.libvirt import domain_view

    if options.into is not None:
        return []
    return [Artifact(f"{subject.vm.name}.xml", domain_xml(domain_view(subject.laid_out())))]


def domain_xml(view: DomainView) -> str:
    """The domain's XML document."""
    from ..render import render

    return render("libvirt/domain.xml.j2", d=view, ports=[_in_devices(port) for port in view.root_ports])


def root_port_element(view: ControllerView) -> str:
    """One pcie-root-port <controller>, as the domain has it (two spaces an indentation level, no final
    newline): what the merge splices into a base domain."""
    from ..render import render

    return render("libvirt/root-port.xml.j2", c=view)


@cache  # the VMs of a fleet share their root ports (`controller_view` makes one view per port): one text each
def _in_devices(view: ControllerView) -> Markup:
    """A root port's element indented inside <devices>, as markup (the template escaped its values)."""
    from ..render import indent

    return Markup(indent(root_port_element(view), 4, first=True))


EMITTER = Emitter("xml", "the libvirt domain <vm>.xml", 10, (".xml",), emit)
