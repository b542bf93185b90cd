"""`--emit interfaces`: one VM's layout -> a `<vm>.<nic>.xml` per NIC, for `virsh attach-device`."""

from __future__ import annotations

from ..pipeline import Artifact, Options
from . import Emitter, Subject


def emit(subject: Subject, options: Options) -> list[Artifact]:
    from ..backends.libvirt import nic_view
    from ..render import render

    out = []
    for device in subject.laid_out().devices:
        nic = device.nic
        file_name = f"{subject.vm.name}.{nic.alias or nic.name}{'.transient' if nic.team and not nic.alias else ''}.xml"
        out.append(Artifact(file_name, render("libvirt/nic.xml.j2", n=nic_view(device, placed=False)) + "\n"))
    return out


EMITTER = Emitter("interfaces", "one <vm>.<nic>.xml per NIC, for virsh attach-device", 20, (".xml",), emit)
