"""`--emit interfaces`: one VM's layout -> a `<vm>.<nic>.xml` per NIC, for `virsh attach-device`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..pipeline import Artifact, Options
from . import Emitter, Subject

if TYPE_CHECKING:
    from ..backends.libvirt import NicView


def emit(subject: Subject, options: Options) -> list[Artifact]:
    from ..backends.libvirt import nic_view

    out = []
    for device in subject.laid_out().devices:
        nic = device.nic
        file_name = f"{subject.vm.name}.{nic.alias or nic.name}{'.transient' if nic.team and not nic.alias else ''}.xml"
        out.append(Artifact(file_name, nic_element(nic_view(device, placed=False)) + "\n"))
    return out


def nic_element(view: NicView) -> str:
    """One NIC's <interface> or <hostdev> element, two spaces an indentation level, no final newline: what
    this kind writes per NIC, the language server shows, and the merge splices into a base domain."""
    from ..render import render

    return render("libvirt/nic.xml.j2", n=view)


EMITTER = Emitter("interfaces", "one <vm>.<nic>.xml per NIC, for virsh attach-device", 20, (".xml",), emit)
