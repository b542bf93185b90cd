"""Merge phase (`teamc compile --into BASE.xml`): a VM's layout + the user's domain XML -> the XML with the teams in it.

The base domain keeps every byte it had except where a team goes: the NICs of
the team (matched by alias, and a transient by the persistent alias it names)
are replaced in place, new NICs go after the base's last <interface> (or
<hostdev>), and the pcie-root-ports they need after its last PCI controller.
The text is spliced at the element positions `xmlsource` found, so comments,
order and formatting of everything else stay as they were.

Placement works around the base, by the slot rules of placement.py: on q35 each NIC takes a free
pcie-root-port of the base (no device on its bus) or a new one, numbered after
the base's highest controller index, on free slots of pcie.0, plus one spare
port for hot-plug if no free port is left; on pc each NIC takes the lowest free
slot of pci.0 from 2 up. Addresses pinned in the `.team` file are kept and
refused (E0403) where the base already uses them. Merging the result again
gives the same bytes. The base's machine must be of the VM's family (E0405),
and an alias, a MAC or a host VF of the team must not belong to another device
of the base (E0102, E0309, E0310).
"""

from __future__ import annotations

import re
from dataclasses import replace

from .diagnostics import Diagnostic, Label, diag
from .ir import PERSISTENT, TRANSIENT, PciAddress
from .layout import Device, VmLayout
from .lower import machine_family
from .placement import RootPort, free_slots, ports_fit, root_ports
from .source import SourceFile, Span

_VIDEO_SLOT = {"q35": 0x01, "pc": 0x02}
_HEX = re.compile(r"(0x)?[0-9A-Fa-f]+\Z")


def _pci(element) -> PciAddress | None:
    """The guest PCI address of a device element, if it has a valid one."""
    address = element.find("address")
    if address is None or address.get("type") != "pci":
        return None
    values = [address.get(attr, "0") for attr in ("domain", "bus", "slot", "function")]
    if not all(_HEX.match(v) for v in values):
        return None
    return PciAddress(*(int(v, 16) for v in values))


def _host_pci(element) -> PciAddress | None:
    source = element.find("source/address")
    if source is None:
        return None
    values = [source.get(attr, "0") for attr in ("domain", "bus", "slot", "function")]
    return PciAddress(*(int(v, 16) for v in values)) if all(_HEX.match(v) for v in values) else None


class _Merger:
    def __init__(self, doc, layout: VmLayout) -> None:
        self.doc = doc
        self.layout = layout
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.source_extra: dict[int, tuple[tuple[str, str], ...]] = {}  # Device id -> base <source> attributes kept

    def error(self, code: str, message: str, span: Span | None, *labels: Label, help: str) -> None:
        self.errors.append(diag(code, message, span, *labels, help=help))

    def describe(self, element) -> str:
        kind = element.get("model") or element.get("type")
        return f"<{element.tag}{f' {kind!r}' if kind else ''}> at line {self.doc.tag_span(element).line_col[0]}"

    # --- which base devices the team replaces ------------------------------------

    def match(self, children) -> dict:
        """base element -> the compiled Device that takes its place (None: removed)."""
        devices = self.layout.devices
        by_alias = {d.nic.alias: d for d in devices if d.nic.alias}
        # (looked up with a <teaming>'s `persistent`, which an element may not have)
        transient_of: dict[str | None, Device] = {
            d.failover_pair_id: d for d in devices
            if d.nic.role == TRANSIENT and d.failover_pair_id and not d.nic.alias}
        persistents = {d.qemu_id for d in devices if d.nic.role == PERSISTENT}
        matched: dict = {}
        used: set = set()
        for element in children:
            alias_el = element.find("alias")
            alias = alias_el.get("name") if alias_el is not None else None
            teaming = element.find("teaming")
            target = teaming.get("persistent") if teaming is not None and teaming.get("type") == "transient" else None
            if element.tag in ("interface", "hostdev") and (alias in by_alias or target in persistents):
                device = by_alias.get(alias) if alias in by_alias else transient_of.get(target)
                matched[element] = device if device is not None and id(device) not in used else None
                used.add(id(device))
            elif alias in by_alias:
                nic = by_alias[alias].nic
                self.error("E0102", f"alias `{alias}` is already used by the base domain's {self.describe(element)}",
                           self.doc.attr_span(alias_el, "name"), Label(nic.alias_span or nic.name_span, nic.label),
                           help="rename the team, or the base device's alias")
        return matched

    # --- checks against what stays ---------------------------------------------

    def machine(self) -> None:
        vm = self.layout.vm
        os_type = self.doc.root.find("os/type")
        machine = os_type.get("machine") if os_type is not None else None
        span = self.doc.attr_span(os_type, "machine") if os_type is not None else self.doc.tag_span(self.doc.root)
        label = Label(vm.machine_span or vm.name_span, f"the VM is laid out for `{vm.machine}`")
        family = machine_family(machine) if machine else None
        if family is None:
            self.error("E0405", f"the base domain's machine `{machine}` cannot host a failover team" if machine else
                       "the base domain names no machine type", span, label,
                       help="give the base domain a q35 machine, e.g. <type arch='x86_64' machine='q35'>hvm</type>")
        elif family != vm.machine_family:
            self.error("E0405", f"the base domain's machine `{machine}` is not of the VM's `{vm.machine}` family",
                       span, label, help=f"write `machine {machine}` in the .team file (with `allow pc-machine-team` "
                                         "for pc), or move the base domain to the VM's machine")

    def clashes(self, staying) -> None:
        """A MAC or a host VF of the team that a device the base keeps also uses."""
        macs = {d.nic.mac: d.nic for d in self.layout.devices if d.nic.mac}
        vfs = {d.nic.host_address: d.nic for d in self.layout.devices if d.nic.host_address}
        for element in staying:
            mac = element.find("mac")
            address = (mac.get("address") or "").lower() if mac is not None else ""
            if element.tag == "interface" and address in macs:
                nic = macs[address]
                self.error("E0309", f"MAC {address} is also used by the base domain's {self.describe(element)}",
                           self.doc.attr_span(mac, "address"), Label(nic.mac_span or nic.name_span, nic.label),
                           help="every NIC of a guest needs its own MAC; change one of them")
            host = _host_pci(element) if element.tag in ("interface", "hostdev") else None
            if host in vfs:
                nic = vfs[host]
                self.error("E0310", f"host VF {host} is also assigned by the base domain's {self.describe(element)}",
                           self.doc.tag_span(element.find("source/address")),
                           Label(nic.host_address_span or nic.name_span, nic.label),
                           help="a VF can be assigned to one guest NIC only; pick another VF or drop the base's")

    def kept(self, element, device: Device) -> tuple:
        """What the base NIC states that the team does not: its elements (and attributes the settings table
        knows) go into the replacement, in libvirt's order, so that merging loses nothing (what the team states
        wins). The base's alias and guest address are the team's to give."""
        from . import nicsettings
        from .backends.libvirt import nic_view

        view = nic_view(device)
        written = {name for name, present in (("mac", view.mac), ("model", view.model), ("boot", view.boot),
                                              ("rom", view.rom_attrs), ("mtu", view.mtu)) if present}
        written |= {"source", "teaming", "alias", "address"} | {e.tag for e in device.nic.settings}
        kept = [nicsettings.from_et(child) for child in element
                if isinstance(child.tag, str) and child.tag not in written]
        for attr, value in element.attrib.items():
            if "@" + attr in nicsettings.BY_TAG and "@" + attr not in written:
                kept.append(nicsettings.Elem("@" + attr, (("value", value),)))
        # The base's <source> attributes the team does not write (a network's portgroup, portid) stay too.
        source = element.find("source")
        if source is not None and device.element == "interface" and not view.host_address:
            ours = {name for name, _ in view.source_attrs}
            self.source_extra[id(device)] = tuple((k, v) for k, v in source.attrib.items() if k not in ours)
        return tuple(kept)

    # --- placement -------------------------------------------------------------

    def place(self, staying) -> tuple[dict, list[RootPort]]:
        """Device -> guest address, and the new root ports (q35)."""
        vm = self.layout.vm
        family = vm.machine_family
        used: dict[tuple[int, int, int], object] = {}
        for element in staying:
            address = _pci(element)
            if address is not None:
                used[(address.bus, address.slot, address.function)] = element
        busy_buses = {bus for bus, _, _ in used if bus}
        controllers = {}
        for element in staying:
            if element.tag == "controller" and element.get("type") == "pci" and (element.get("index") or "").isdigit():
                controllers[int(element.get("index"))] = element
        free_ports = sorted(i for i, el in controllers.items()
                            if el.get("model") == "pcie-root-port" and i not in busy_buses and i)
        taken_slots = {slot for bus, slot, _ in used if bus == 0}
        if any(el.tag == "video" and _pci(el) is None for el in staying):
            taken_slots.add(_VIDEO_SLOT[family])  # libvirt puts the primary video there when it places it
        placed: dict = {}
        new_indexes: list[int] = []

        for device in self.layout.devices:
            pinned = device.nic.guest_address
            if pinned is None:
                continue
            key = (pinned.bus, pinned.slot, pinned.function)
            span = device.nic.guest_address_span
            if key in used:
                self.error("E0403", f"guest PCI address {pinned} is already used by the base domain's "
                                    f"{self.describe(used[key])}", span, Label(self.doc.tag_span(used[key]), "here"),
                           help="pin the NIC elsewhere, or drop `address` and let teamc place it around the base")
                continue
            placed[id(device)] = pinned
            if pinned.bus == 0:
                taken_slots.add(pinned.slot)
            elif pinned.bus in controllers:
                if pinned.bus in free_ports:
                    free_ports.remove(pinned.bus)
                else:
                    self.error("E0403", f"bus {pinned.bus:#04x} is the base domain's "
                                        f"{self.describe(controllers[pinned.bus])}, which is not a free "
                                        "pcie-root-port", span, Label(self.doc.tag_span(controllers[pinned.bus]),
                                                                      "that controller"),
                               help="pin the NIC to another bus, or drop `address` and let teamc place it")
            elif pinned.bus not in new_indexes:
                new_indexes.append(pinned.bus)

        next_index = max([*controllers, *new_indexes, 0]) + 1
        unpinned = sorted((d for d in self.layout.devices if d.nic.guest_address is None),
                          key=lambda d: (d.address.bus, d.address.slot))
        for device in unpinned:
            if family == "pc":
                slot = next(iter(free_slots(family, taken_slots)), None)
                if slot is None:
                    self.error("E0403", "the base domain has no free slot on pci.0 for " + device.nic.label,
                               self.doc.tag_span(self.doc.root.find("devices")), Label(device.nic.span, "this NIC"),
                               help="free a slot in the base domain, or move it to q35")
                    continue
                taken_slots.add(slot)
                placed[id(device)] = PciAddress(0, 0, slot, 0)
            elif free_ports:
                placed[id(device)] = PciAddress(0, free_ports.pop(0), 0, 0)
            else:
                new_indexes.append(next_index)
                placed[id(device)] = PciAddress(0, next_index, 0, 0)
                next_index += 1
        if family == "q35" and not free_ports:
            new_indexes.append(next_index)  # a spare port, so that a VF can be hot-plugged back
        return placed, self.root_ports(sorted(new_indexes) if family == "q35" else [], taken_slots)

    def root_ports(self, indexes: list[int], taken_slots: set[int]) -> list[RootPort]:
        free = free_slots(self.layout.vm.machine_family, taken_slots)
        ports = root_ports(indexes, free)
        if not ports_fit(ports, free):
            self.error("E0403", f"the base domain has no room on pcie.0 for {len(indexes)} more pcie-root-ports",
                       self.doc.tag_span(self.doc.root.find("devices")),
                       Label(self.layout.vm.name_span, "the VM"), help="free slots of pcie.0 in the base domain")
            return []
        return ports

    # --- the merge ---------------------------------------------------------------

    def run(self) -> str | None:
        from .backends.libvirt import controller_view, nic_view
        from .render import render

        doc = self.doc
        if doc.root.tag != "domain" or doc.root.find("devices") is None:
            self.error("E0004", "the base is not a libvirt <domain> with <devices>", doc.tag_span(doc.root),
                       help="merge into a domain as `virsh dumpxml NAME` prints it")
            return None
        self.machine()
        devices_el = doc.root.find("devices")
        children = [el for el in devices_el if isinstance(el.tag, str)]
        matched = self.match(children)
        staying = [el for el in children if el not in matched]
        self.clashes(staying)
        placed, ports = self.place(staying)
        if self.errors:
            return None
        kept = {id(device): self.kept(element, device) for element, device in matched.items() if device is not None}

        text = doc.source.text
        indent = _child_indent(text, doc, devices_el, children)
        unit = indent[len(_line_indent(text, doc.positions[devices_el].start)):] or "  "
        edits: list[tuple[int, int, str]] = []
        replacing = {id(d): el for el, d in matched.items() if d is not None}

        def element_text(device: Device) -> str:
            nic = replace(device.nic, settings=device.nic.settings + kept.get(id(device), ()))
            view = nic_view(replace(device, address=placed[id(device)], nic=nic))
            view = replace(view, source_attrs=view.source_attrs + self.source_extra.get(id(device), ()))
            return _reindent(render("libvirt/nic.xml.j2", n=view), unit)

        new_nics: dict[str, list[str]] = {"interface": [], "hostdev": []}
        for device in self.layout.devices:
            if id(device) in replacing:
                el = replacing[id(device)]
                pos = doc.positions[el]
                own = _line_indent(text, pos.start)
                edits.append((pos.start, pos.end, element_text(device).replace("\n", "\n" + own)))
            else:
                new_nics[device.element].append(element_text(device))
        for element, device in matched.items():
            if device is None:
                edits.append(_removal(text, doc.positions[element]))

        def last(*tags: str, pci: bool = False):
            """The last child with one of these tags (the first tag that has one), or None."""
            for tag in tags:
                found = [el for el in children if el.tag == tag and (not pci or el.get("type") == "pci")]
                if found:
                    return found[-1]
            return None

        fallback = last("controller", "disk", "emulator")
        anchors = {
            "controller": last("controller", pci=True) if last("controller", pci=True) is not None else fallback,
            "interface": last("interface") if last("interface") is not None else fallback,
        }
        anchors["hostdev"] = last("hostdev") if last("hostdev") is not None else anchors["interface"]
        inserts: dict[int, list[str]] = {}
        port_texts = [_reindent(render("libvirt/root-port.xml.j2", c=controller_view(p)), unit) for p in ports]
        for kind, texts in (("controller", port_texts), ("interface", new_nics["interface"]),
                            ("hostdev", new_nics["hostdev"])):
            if not texts:
                continue
            anchor = anchors[kind]
            at = doc.positions[anchor].end if anchor is not None else doc.positions[devices_el].start_tag_end
            inserts.setdefault(at, []).extend("\n" + indent + t.replace("\n", "\n" + indent) for t in texts)
        edits.extend((at, at, "".join(texts)) for at, texts in inserts.items())
        first_break = text.find("\n")
        if first_break > 0 and text[first_break - 1] == "\r":  # a CRLF file gets CRLF lines
            edits = [(start, end, new.replace("\n", "\r\n")) for start, end, new in edits]
        return _splice(text, edits)


def _line_indent(text: str, offset: int) -> str:
    """The blanks before `offset` if only blanks precede it on its line, else "".

    Looks back only over blanks, never to the start of a long line: a base with all its
    devices on one line would otherwise cost a scan of that line per device."""
    start = offset
    while start > 0 and text[start - 1] in " \t":
        start -= 1
    return text[start:offset] if start == 0 or text[start - 1] == "\n" else ""


def _splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply (start, end, new text) edits in one pass (one copy of the text, however many edits).

    An insertion inside a range that is removed goes right after that range."""
    pieces, done = [], 0
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1])):
        start, end = max(start, done), max(end, done)
        pieces += [text[done:start], new]
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


def _child_indent(text: str, doc, devices_el, children) -> str:
    for child in children:
        indent = _line_indent(text, doc.positions[child].start)
        if indent:
            return indent
    return _line_indent(text, doc.positions[devices_el].start) + "  "


def _reindent(rendered: str, unit: str) -> str:
    """teamc's templates indent by two spaces; use the base domain's unit instead."""
    out = []
    for line in rendered.split("\n"):
        stripped = line.lstrip(" ")
        out.append(unit * ((len(line) - len(stripped)) // 2) + stripped)
    return "\n".join(out)


def _removal(text: str, pos) -> tuple[int, int, str]:
    """Remove an element, and its line when it is alone on it."""
    start, end = pos.start, pos.end  # widened over blanks only (see _line_indent)
    while start > 0 and text[start - 1] in " \t":
        start -= 1
    while end < len(text) and text[end] in " \t\r":
        end += 1
    if (start == 0 or text[start - 1] == "\n") and (end == len(text) or text[end] == "\n"):
        return start, min(end + 1, len(text)), ""
    return pos.start, pos.end, ""


def merge_into(base: SourceFile, layouts: list[VmLayout]) -> tuple[list[tuple[str, str]], list[Diagnostic]]:
    """Merge the VM named like the base domain (or a file's only VM) into the base's text.

    Returns (VM name, merged text) for each VM merged, and the diagnostics."""
    from .xmlsource import parse_xml

    doc, errors = parse_xml(base)
    if doc is None:
        return [], errors
    name = (doc.root.findtext("name") or "").strip()
    chosen = [layout for layout in layouts if layout.vm.name == name] or (layouts if len(layouts) == 1 else [])
    merged, diagnostics = [], []
    for layout in chosen:
        merger = _Merger(doc, layout)
        text = merger.run()
        diagnostics += merger.errors + merger.warnings
        if text is not None:
            merged.append((layout.vm.name, "\ufeff" + text if base.bom else text))
    return merged, diagnostics
