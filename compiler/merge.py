"""Merge phase (`teamc compile --into BASE.xml`): a VM's layout + the user's domain XML -> the XML with the teams in it.

What is merge's own: reading the base domain (which of its NICs the team replaces, matched by alias, and a
transient by the persistent alias it names; what the devices that stay hold, `BaseDomain`) and writing the
result into the base's text. The base keeps every byte it had except where a team goes: the team's NICs
replace the base's in place, new NICs go after the base's last <interface> (or <hostdev>), and the
pcie-root-ports they need after its last PCI controller. The text is spliced at the element positions
`xmlsource` found, in the base's own indentation and line ends, so comments, order and formatting of
everything else stay as they were. Merging the result again gives the same bytes.

The rest is the compile path's: the layout phase places the NICs around the base (layout.layout_around, by
placement.py's slot rules), the check phase judges that layout against the base (checks.check_base: E0102,
E0309, E0310, E0403, E0405), and the elements are rendered as `--emit interfaces` and `--emit xml` render
them (emitters.interfaces.nic_element, emitters.domain_xml.root_port_element).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .diagnostics import Diagnostic, Label, diag
from .ir import PERSISTENT, TRANSIENT, PciAddress
from .layout import Device, VmLayout
from .lower import machine_family
from .placement import Occupied, occupied
from .source import SourceFile, Span
from .xmlsource import SHARE_MEMORY_HELP, shares_memory

_HEX = re.compile(r"(0x)?[0-9A-Fa-f]+\Z")


@dataclass(frozen=True, slots=True)
class BaseDevice:
    """A device the base domain keeps, with what a team's NIC may clash with (checks.check_base)."""

    description: str  # `<disk 'file'> at line 12`
    span: Span  # its start tag
    address: PciAddress | None  # its guest PCI address, if it states a valid one
    controller: int | None  # a PCI controller's index (the bus it provides)
    alias: str | None
    alias_span: Span | None
    mac: str | None  # an <interface>'s MAC, in lower case
    mac_span: Span | None
    host_address: PciAddress | None  # the host PCI device an <interface> or <hostdev> assigns
    host_address_span: Span | None


@dataclass(frozen=True, slots=True)
class BaseDomain:
    """What stays of the base domain: its machine and the devices the team does not replace."""

    machine: str | None
    machine_family: str | None  # None: not a machine a team can go on
    machine_span: Span
    devices_span: Span  # the <devices> start tag
    devices: tuple[BaseDevice, ...]
    occupied: Occupied  # the guest PCI space they hold


def _pci(address) -> PciAddress | None:
    """A PCI address from an <address> element's attributes, if they are all hex numbers."""
    values = [address.get(attr, "0") for attr in ("domain", "bus", "slot", "function")]
    return PciAddress(*(int(v, 16) for v in values)) if all(_HEX.match(v) for v in values) else None


def _guest_address(element) -> PciAddress | None:
    address = element.find("address")
    return _pci(address) if address is not None and address.get("type") == "pci" else None


def _read_base(doc, staying: list, vm_family: str) -> BaseDomain:
    """The base domain's machine and the devices that stay, as the layout (for a VM of `vm_family`) and the
    checks read them."""
    os_type = doc.root.find("os/type")
    machine = os_type.get("machine") if os_type is not None else None
    devices = []
    for element in staying:
        kind = element.get("model") or element.get("type")
        alias = element.find("alias")
        mac = element.find("mac") if element.tag == "interface" else None
        host = element.find("source/address") if element.tag in ("interface", "hostdev") else None
        index = element.get("index") or ""
        devices.append(BaseDevice(
            description=f"<{element.tag}{f' {kind!r}' if kind else ''}> at line {doc.tag_span(element).line_col[0]}",
            span=doc.tag_span(element),
            address=_guest_address(element),
            controller=int(index) if element.tag == "controller" and element.get("type") == "pci"
            and index.isdigit() else None,
            alias=alias.get("name") if alias is not None else None,
            alias_span=doc.attr_span(alias, "name") if alias is not None else None,
            mac=((mac.get("address") or "").lower() or None) if mac is not None else None,
            mac_span=doc.attr_span(mac, "address") if mac is not None else None,
            host_address=_pci(host) if host is not None else None,
            host_address_span=doc.tag_span(host) if host is not None else None))
    family = machine_family(machine) if machine else None
    controllers = {d.controller: element.get("model") for d, element in zip(devices, staying, strict=True)
                   if d.controller is not None}
    addresses = [(a.bus, a.slot, a.function) for d in devices if (a := d.address) is not None]
    unplaced_video = any(el.tag == "video" and _guest_address(el) is None for el in staying)
    return BaseDomain(
        machine, family,
        doc.attr_span(os_type, "machine") if os_type is not None else doc.tag_span(doc.root),
        doc.tag_span(doc.root.find("devices")), tuple(devices),
        occupied(vm_family, addresses, controllers, unplaced_video))


def _match(children, layout: VmLayout) -> dict:
    """base element -> the compiled Device that takes its place (None: removed, a second one for one NIC)."""
    devices = layout.devices
    by_alias = {d.nic.alias: d for d in devices if d.nic.alias}
    # (looked up with a <teaming>'s `persistent`, which an element may not have)
    transient_of: dict[str | None, Device] = {
        d.failover_pair_id: d for d in devices
        if d.nic.role == TRANSIENT and d.failover_pair_id and not d.nic.alias}
    persistents = {d.qemu_id for d in devices if d.nic.role == PERSISTENT}
    matched: dict = {}
    used: set = set()
    for element in children:
        if element.tag not in ("interface", "hostdev"):
            continue
        alias_el = element.find("alias")
        alias = alias_el.get("name") if alias_el is not None else None
        teaming = element.find("teaming")
        target = teaming.get("persistent") if teaming is not None and teaming.get("type") == "transient" else None
        if alias in by_alias or target in persistents:
            device = by_alias.get(alias) if alias in by_alias else transient_of.get(target)
            matched[element] = device if device is not None and id(device) not in used else None
            used.add(id(device))
    return matched


def _kept(element, device: Device) -> tuple[tuple, tuple[tuple[str, str], ...]]:
    """What the base NIC states that the team does not: its elements (and attributes the settings table
    knows) go into the replacement, in libvirt's order, so that merging loses nothing (what the team states
    wins); and the base's <source> attributes the team does not write (a network's portgroup, portid). The
    base's alias and guest address are the team's to give."""
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
    source_extra: tuple[tuple[str, str], ...] = ()
    source = element.find("source")
    if source is not None and device.element == "interface" and not view.host_address:
        ours = {name for name, _ in view.source_attrs}
        source_extra = tuple((k, v) for k, v in source.attrib.items() if k not in ours)
    return tuple(kept), source_extra


def _merge(doc, layout: VmLayout) -> tuple[str | None, list[Diagnostic]]:
    from .backends.libvirt import controller_view, nic_view
    from .checks import check_base
    from .emitters.domain_xml import root_port_element
    from .emitters.interfaces import nic_element
    from .layout import layout_around

    devices_el = doc.root.find("devices")
    if doc.root.tag != "domain" or devices_el is None:
        return None, [diag("E0004", "the base is not a libvirt <domain> with <devices>", doc.tag_span(doc.root),
                           help="merge into a domain as `virsh dumpxml NAME` prints it")]
    children = [el for el in devices_el if isinstance(el.tag, str)]
    matched = _match(children, layout)
    base = _read_base(doc, [el for el in children if el not in matched], layout.vm.machine_family)
    placed = layout_around(layout, base.occupied)
    problems = check_base(placed, base)
    if problems:
        return None, problems
    moved = {id(old): new for old, new in zip(layout.devices, placed.devices, strict=True)}
    replacing = {id(moved[id(d)]): el for el, d in matched.items() if d is not None}
    kept = {id(moved[id(d)]): _kept(el, d) for el, d in matched.items() if d is not None}

    text = doc.source.text
    indent = _child_indent(text, doc, devices_el, children)
    unit = indent[len(_line_indent(text, doc.positions[devices_el].start)):] or "  "
    edits: list[tuple[int, int, str]] = []

    def element_text(device: Device) -> str:
        settings, source_extra = kept.get(id(device), ((), ()))
        view = nic_view(replace(device, nic=replace(device.nic, settings=device.nic.settings + settings)))
        return _reindent(nic_element(replace(view, source_attrs=view.source_attrs + source_extra)), unit)

    new_nics: dict[str, list[str]] = {"interface": [], "hostdev": []}
    for device in placed.devices:
        if id(device) in replacing:
            pos = doc.positions[replacing[id(device)]]
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
    port_texts = [_reindent(root_port_element(controller_view(p)), unit) for p in placed.root_ports]
    for kind, texts in (("controller", port_texts), ("interface", new_nics["interface"]),
                        ("hostdev", new_nics["hostdev"])):
        if not texts:
            continue
        anchor = anchors[kind]
        at = doc.positions[anchor].end if anchor is not None else doc.positions[devices_el].start_tag_end
        inserts.setdefault(at, []).extend("\n" + indent + t.replace("\n", "\n" + indent) for t in texts)
    edits.extend((at, at, "".join(texts)) for at, texts in inserts.items())
    warnings = []
    if placed.shared_memory and not shares_memory(doc.root):
        private = _private_memory(doc.root)
        if private is None:
            edits.append(_share_memory(doc, unit))
        else:  # the base's own choice, kept
            vhost = next(d.nic for d in placed.devices if d.nic.source_kind == "vhostuser")
            warnings.append(diag("W0510", "the base domain keeps its memory private, and the vhost-user NIC needs "
                                          "it shared with its backend", doc.attr_span(*private),
                                 Label(vhost.source_span, "this vhost-user NIC"), help=SHARE_MEMORY_HELP))
    first_break = text.find("\n")
    if first_break > 0 and text[first_break - 1] == "\r":  # a CRLF file gets CRLF lines
        edits = [(start, end, new.replace("\n", "\r\n")) for start, end, new in edits]
    return _splice(text, edits), warnings


def _private_memory(domain) -> tuple[object, str] | None:
    """Where a domain whose memory is not shared says so, as (element, attribute): a NUMA cell's
    `memAccess`, else `<memoryBacking><access mode>`; None when it says nothing (private by default)."""
    cell = next((c for c in domain.findall("cpu/numa/cell") if c.get("memAccess") not in (None, "shared")), None)
    if cell is not None:
        return cell, "memAccess"
    access = domain.find("memoryBacking/access")
    return (access, "mode") if access is not None else None


def _share_memory(doc, unit: str) -> tuple[int, int, str]:
    """The edit that shares a base's memory (one that states no access) with a vhost-user backend as
    compile's own domain does: a memfd <memoryBacking> after <currentMemory> (or <memory>) in place of
    none or of an empty one, else an <access mode='shared'/> added to it."""
    root, text = doc.root, doc.source.text

    def whole(indent: str) -> str:
        return (f"<memoryBacking>\n{indent}{unit}<source type='memfd'/>\n{indent}{unit}<access mode='shared'/>\n"
                f"{indent}</memoryBacking>")

    backing = root.find("memoryBacking")
    if backing is not None:
        pos = doc.positions[backing]
        indent = _line_indent(text, pos.start)
        if pos.content_end < 0:  # <memoryBacking/>
            return pos.start, pos.end, whole(indent)
        return pos.content_end, pos.content_end, f"{unit}<access mode='shared'/>\n{indent}"
    anchor = next((el for tag in ("currentMemory", "memory", "name") if (el := root.find(tag)) is not None), None)
    if anchor is None:
        at = doc.positions[root].start_tag_end
        return at, at, f"\n{unit}{whole(unit)}"
    pos = doc.positions[anchor]
    indent = _line_indent(text, pos.start)
    return pos.end, pos.end, f"\n{indent}{whole(indent)}"


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
    """teamc's templates indent by two spaces; use the base domain's unit instead (its tabs, its four
    spaces): the one step of rendering that is the merge's own."""
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
        text, problems = _merge(doc, layout)
        diagnostics += problems
        if text is not None:
            merged.append((layout.vm.name, "\ufeff" + text if base.bom else text))
    return merged, diagnostics
