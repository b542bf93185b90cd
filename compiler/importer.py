"""Import phase and `teamc import`: libvirt domain XML -> `.team` source.

The importer reads a domain (a file libvirt wrote, or `virsh dumpxml` output
with addresses and aliases), builds the explicit-form AST of its teamed NICs
with every span pointing into the XML, and runs the ordinary `lower` and
`check` on it: broken teaming in the XML gets the diagnostics `.team` source
gets, with a caret on the XML line. What `.team` cannot say at all (a teaming
type libvirt rejects, a transient without `persistent=`, an interface type
teamc has no form for) is reported here, with the same codes.

When the domain checks clean, the NICs are printed with the formatter: pairs
as `team` blocks where that keeps libvirt's device order, else as `nic`
blocks. Guest addresses are kept, so the `.team` compiles back to the same
NIC elements. NICs without `<teaming>` and NIC settings teamc has no form for
are left out, each with a comment in the output and a W0506 warning.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace

from . import nicsettings
from . import nodes as n
from .diagnostics import Diagnostic, diag
from .keywords import UNIT_BYTES as _UNIT_BYTES
from .source import SourceFile, Span

# libvirt memory units -> (teamc unit, factor to get there)
_LIBVIRT_UNITS = {"b": "B", "bytes": "B", "k": "KiB", "KiB": "KiB", "KB": "KB", "M": "MiB", "MiB": "MiB",
                  "MB": "MB", "G": "GiB", "GiB": "GiB", "GB": "GB", "T": "TiB", "TiB": "TiB", "TB": "TB"}
_SOURCE_TYPES = ("user", "ethernet", "vhostuser", "bridge", "network", "direct", "hostdev")
# Children of a teamed NIC that `virsh dumpxml` adds or that mean nothing to a team: skipped without a word.
_RUNTIME = {"alias", "address", "source", "mac", "model", "teaming", "boot", "rom", "mtu"}
# The tap/macvtap names libvirt makes up (and ignores in a definition): a <target> with one of them is runtime
# state, as is every <target> of a running domain's `virsh dumpxml` (its <domain> has an `id`); any other
# <target> is configuration.
_GENERATED_TARGET = re.compile(r"(vnet|macvtap|macvlan)[0-9]+\Z")
_HEX = re.compile(r"(0x)?[0-9A-Fa-f]+\Z")


@dataclass
class ImportResult:
    source: SourceFile
    diagnostics: list[Diagnostic]
    text: str | None = None  # the `.team` source, when the domain checked without errors
    vm: str | None = None

    @property
    def failed(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


@dataclass
class _Nic:
    """One teamed NIC of the XML, as AST pieces whose spans point into the XML."""

    element: object
    kind: str  # "interface" | "hostdev" (the XML element)
    name: n.Value
    user_alias: bool  # the name is the NIC's own `ua-` alias
    role: str
    target: n.Value | None
    teaming_span: Span
    source: n.Source
    mac: n.Mac | None = None
    model: n.Model | None = None
    options: list[n.Option | n.NicSetting] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out, for the output's comments

    def nic_node(self) -> n.Nic:
        teaming = n.Teaming(self.role, self.target, self.teaming_span)
        items = [*([self.model] if self.model else []), n.NicSource(self.source, self.source.span),
                 *([self.mac] if self.mac else []), *self.options, teaming]
        return n.Nic(self.name, tuple(items), Span(self.teaming_span.source, *_range(self)))


def _range(nic: _Nic) -> tuple[int, int]:
    span = nic.source.span
    start = min(span.start, nic.teaming_span.start, nic.name.span.start)
    end = max(span.end, nic.teaming_span.end, nic.name.span.end)
    return start, end


class _Importer:
    def __init__(self, doc) -> None:
        self.doc = doc
        self.source = doc.source
        self.errors: list[Diagnostic] = []
        self.notes: list[Diagnostic] = []  # W0506, for what is left out

    # --- helpers -------------------------------------------------------------

    def value(self, element, attr: str | None = None) -> n.Value:
        """An attribute's value, or the element's text, as an AST value located in the XML."""
        if attr is None:
            return n.Value((element.text or "").strip(), self.doc.text_span(element))
        return n.Value(element.get(attr, ""), self.doc.attr_span(element, attr))

    def error(self, code: str, message: str, span: Span, help: str) -> None:
        self.errors.append(diag(code, message, span, help=help))

    def left_out(self, message: str, span: Span, notes: list[str] | None = None) -> None:
        self.notes.append(diag("W0506", message, span,
                               help="teamc keeps only what a team needs; the base domain keeps the rest "
                                    "(`teamc compile --into` leaves its other devices alone)"))
        if notes is not None:
            notes.append(message)

    def describe(self, element) -> str:
        line = self.doc.tag_span(element).line_col[0]
        kind = element.get("type")
        return f"`<{element.tag}{f' type={kind!r}' if kind else ''}>` at line {line}"

    # --- the domain ------------------------------------------------------------

    def domain(self) -> tuple[n.Vm | None, list[_Nic], list]:
        root = self.doc.root
        if root.tag != "domain":
            self.error("E0004", f"the root element is <{root.tag}>, not a libvirt <domain>", self.doc.tag_span(root),
                       "import a domain as `virsh dumpxml NAME` prints it")
            return None, [], []
        name_el = root.find("name")
        if name_el is None:
            self.error("E0205", "the domain has no <name>", self.doc.tag_span(root), "add <name>…</name>")
            return None, [], []
        settings = self.settings(root)
        devices = root.find("devices")
        nics, skipped = [], []
        for element in devices if devices is not None else ():
            if not isinstance(element.tag, str) or element.tag not in ("interface", "hostdev"):
                continue
            if element.find("teaming") is None:
                if element.tag == "interface":
                    skipped.append(element)
                    mac = element.find("mac")
                    what = f" (MAC {mac.get('address')})" if mac is not None and mac.get("address") else ""
                    self.left_out(f"{self.describe(element)}{what} has no `<teaming>`: not imported, "
                                  "it stays in the base domain", self.doc.tag_span(element))
                continue
            nic = self.nic(element)
            if nic is not None:
                nics.append(nic)
        self.name_nics(nics)
        vm = n.Vm(self.value(name_el), tuple(settings) + tuple(nic.nic_node() for nic in nics),
                  self.doc.span(root))
        return vm, nics, skipped

    def settings(self, root) -> list[n.Setting]:
        out = []

        def setting(key: str, value: n.Value, unit: n.Value | None = None) -> None:
            out.append(n.Setting(key, value, unit, value.span))

        if (uuid := root.find("uuid")) is not None:
            setting("uuid", self.value(uuid))
        os_type = root.find("os/type")
        if os_type is not None and os_type.get("machine"):
            setting("machine", self.value(os_type, "machine"))
        if os_type is not None and os_type.get("arch"):
            setting("arch", self.value(os_type, "arch"))
        if (memory := root.find("memory")) is not None:
            out.extend(self.memory(memory))
        if (vcpu := root.find("vcpu")) is not None:
            setting("vcpus", self.value(vcpu))
        from .lower import ARCHES

        emulator = root.find("devices/emulator")
        arch = os_type.get("arch", "x86_64") if os_type is not None else "x86_64"
        if emulator is not None and (emulator.text or "").strip() != ARCHES.get(arch):
            setting("emulator", self.value(emulator))
        kind = root.get("type")
        if kind == "qemu":
            setting("accel", n.Value("tcg", self.doc.attr_span(root, "type")))
        elif kind != "kvm":
            self.error("E0205", f"domain type `{kind}` is not a QEMU domain", self.doc.attr_span(root, "type"),
                       "teamc writes domains for QEMU: <domain type='kvm'> or <domain type='qemu'> (TCG)")
        return out

    def memory(self, element) -> list[n.Setting]:
        value = self.value(element)
        unit = element.get("unit", "KiB")
        if unit not in _LIBVIRT_UNITS or not value.text.isdigit():
            self.error("E0205", f"memory `{value.text} {unit}` is not a size teamc reads", value.span,
                       "write the memory in KiB, MiB or GiB")
            return []
        size = int(value.text) * _UNIT_BYTES[_LIBVIRT_UNITS[unit]]
        # libvirt rounds up to whole KiB; teamc prints the largest binary unit that is exact.
        kib = -(-size // 1024)
        number, name = next((kib // f, u) for u, f in (("GiB", 1024**2), ("MiB", 1024), ("KiB", 1)) if kib % f == 0)
        unit_span = self.doc.attr_span(element, "unit")
        return [n.Setting("memory", n.Value(str(number), value.span), n.Value(name, unit_span), value.span)]

    # --- NICs ------------------------------------------------------------------

    def nic(self, element) -> _Nic | None:
        doc = self.doc
        teaming = element.find("teaming")
        role, target = self.teaming(teaming)
        alias_el = element.find("alias")
        alias = alias_el.get("name") if alias_el is not None else None
        if element.tag == "hostdev":
            if element.get("mode", "subsystem") != "subsystem" or element.get("type") != "pci":
                self.error("E0302", f"{self.describe(element)} has <teaming>, but only a PCI <hostdev> can be a VF",
                           doc.tag_span(element), "use <hostdev mode='subsystem' type='pci'> for the VF")
                return None
            source = self.host_source("pci-hostdev", element, element.find("source/address"))
        else:
            source = self.interface_source(element, role)
        if role is None or source is None:
            return None
        nic = _Nic(element, element.tag, n.Value(alias or "", doc.attr_span(alias_el, "name") if alias else
                                                 doc.tag_span(element)),
                   bool(alias and alias.startswith("ua-")), role, target, doc.span(teaming), source)
        if (mac := element.find("mac")) is not None:
            nic.mac = n.Mac(self.value(mac, "address"), doc.span(mac))
        if (model := element.find("model")) is not None:
            nic.model = n.Model(self.value(model, "type"), doc.span(model))
        elif role == "persistent" and element.tag == "interface":
            self.error("E0301", f"{self.describe(element)} is the persistent NIC but has no <model>",
                       doc.tag_span(element), "libvirt's default model is not virtio: add <model type='virtio'/>")
        self.options(element, nic)
        return nic

    def teaming(self, teaming) -> tuple[str | None, n.Value | None]:
        doc = self.doc
        kind, persistent = teaming.get("type"), teaming.get("persistent")
        if kind not in ("persistent", "transient"):
            message = f"`{kind}` is not a teaming type" if kind is not None else "the <teaming> element has no type"
            self.error("E0205", message, doc.attr_span(teaming, "type"),
                       "libvirt knows <teaming type='persistent'/> and <teaming type='transient' persistent='ua-…'/>")
            return None, None
        if kind == "persistent" and persistent is not None:
            self.error("E0105", "`persistent=` applies to a transient teaming only",
                       doc.attr_span(teaming, "persistent"),
                       "remove `persistent=`; the transient NIC names its persistent partner, not the other way round")
            return None, None
        if kind == "transient":
            if not persistent:
                self.error("E0303", "the transient NIC does not name its persistent partner", doc.span(teaming),
                           "add persistent='ua-…' with the alias of the virtio NIC it fails over to")
                return None, None
            return kind, self.value(teaming, "persistent")
        return kind, None

    def interface_source(self, element, role: str | None) -> n.Source | None:
        doc = self.doc
        kind = element.get("type")
        span = doc.attr_span(element, "type")
        if kind not in _SOURCE_TYPES or (role == "transient" and kind in ("ethernet", "vhostuser")):
            if role == "transient":
                self.error("E0302", f"the transient NIC is an <interface type='{kind}'>, which cannot be a VF", span,
                           "use <interface type='hostdev'>, a hostdev-pool <interface type='network'> "
                           "or a PCI <hostdev>")
            else:
                self.error("E0205", f"teamc has no form for an <interface type='{kind}'>", span,
                           "the persistent side may be a user, ethernet, vhostuser, bridge, network or direct "
                           "(macvtap) interface")
            return None
        src = element.find("source")
        if kind == "hostdev":
            return self.host_source("hostdev", element, src.find("address") if src is not None else None)
        if kind in ("user", "ethernet"):
            return n.Source(kind, span)
        attr = {"bridge": "bridge", "network": "network", "direct": "dev", "vhostuser": "path"}[kind]
        if src is None or not src.get(attr):
            self.error("E0104", f"<interface type='{kind}'> has no <source {attr}='…'/>",
                       doc.tag_span(src if src is not None else element), f"add <source {attr}='…'/>")
            return None
        fields_: dict = {"target": self.value(src, attr)}
        if kind in ("direct", "vhostuser") and src.get("mode"):
            fields_["mode"] = self.value(src, "mode")
        if kind == "network" and role == "persistent" and src.get("bridge"):
            fields_["via_bridge"] = self.value(src, "bridge")  # what a running domain's network resolved to
        if kind == "network" and src.get("portgroup"):
            fields_["portgroup"] = self.value(src, "portgroup")
        return n.Source(kind, span, **fields_)

    def host_source(self, kind: str, element, address) -> n.Source | None:
        doc = self.doc
        if address is None:
            self.error("E0104", f"{self.describe(element)} has no <source><address …/></source>",
                       doc.tag_span(element), "name the host VF: <source><address domain='0x0000' bus='0x03' "
                                              "slot='0x07' function='0x1'/></source>")
            return None
        target = self.pci(address)
        if target is None:
            return None
        managed = None
        if element.get("managed") is not None:
            managed = n.Managed(element.get("managed") == "yes", doc.attr_span(element, "managed"))
        return n.Source(kind, doc.attr_span(element, "type") if element.get("type") else doc.tag_span(element),
                        target=target, managed=managed)

    def pci(self, address) -> n.Value | None:
        """`<address domain bus slot function/>` as a `DDDD:BB:SS.F` value spanning the element."""
        parts = []
        for attr in ("domain", "bus", "slot", "function"):
            text = address.get(attr, "0")
            if not _HEX.match(text):
                self.error("E0204", f"`{text}` is not a PCI {attr}", self.doc.attr_span(address, attr),
                           f"write the {attr} in hex, e.g. {attr}='0x03'")
                return None
            parts.append(int(text, 16))
        domain, bus, slot, function = parts
        return n.Value(f"{domain:04x}:{bus:02x}:{slot:02x}.{function:x}", self.doc.tag_span(address))

    def options(self, element, nic: _Nic) -> None:
        doc = self.doc
        for child in element:
            if not isinstance(child.tag, str):
                continue
            tag = child.tag
            if tag == "address":
                if child.get("type") == "pci":
                    pci = self.pci(child)
                    if pci is not None:
                        nic.options.append(n.Option("address", pci, doc.span(child)))
                else:
                    self.left_out(f"the guest address of type `{child.get('type')}` of {self.describe(element)} "
                                  "is left out: teamc places NICs on PCI", doc.tag_span(child), nic.notes)
            elif tag == "boot" and child.get("order"):
                nic.options.append(n.Option("boot", self.value(child, "order"), doc.span(child)))
            elif tag == "mtu" and child.get("size"):
                nic.options.append(n.Option("mtu", self.value(child, "size"), doc.span(child)))
            elif tag == "rom":
                for attr in ("bar", "file", "enabled"):
                    if child.get(attr) is not None:
                        nic.options.append(n.Option(f"rom {attr}", self.value(child, attr), doc.span(child)))
            elif tag == "driver" and nic.source.kind in ("hostdev", "pci-hostdev") and dict(child.attrib) in (
                    {"name": "vfio"}, {}):
                continue  # libvirt's default for a VF, which `virsh dumpxml` spells out
            elif tag == "target" and (_GENERATED_TARGET.match(child.get("dev") or "")
                                      or self.doc.root.get("id") is not None):
                continue
            elif tag not in _RUNTIME:
                if element.tag == "hostdev":
                    self.left_out(f"`<{tag}>` of {self.describe(element)} is left out: teamc writes a plain "
                                  "<hostdev> VF without NIC settings", doc.tag_span(child), nic.notes)
                    continue
                # Every other setting is kept: as its row's statement, or verbatim as `libvirt "<…>"`.
                keyword, words = nicsettings.statement(nicsettings.from_et(child))
                span = doc.span(child)
                nic.options.append(n.NicSetting(keyword, tuple(n.Value(w, span) for w in words), span))
        if element.tag == "interface":
            for attr, value in element.attrib.items():
                row = nicsettings.BY_TAG.get("@" + attr)
                if row is not None:
                    span = doc.attr_span(element, attr)
                    elem = nicsettings.Elem("@" + attr, (("value", value),))
                    words = row.words(elem) or [value]
                    nic.options.append(n.NicSetting(row.keyword, tuple(n.Value(w, span) for w in words), span))

    def name_nics(self, nics: list[_Nic]) -> None:
        """A NIC without a user alias gets a name: its runtime alias, or one made up that nothing else uses."""
        taken = {nic.name.text for nic in nics if nic.name.text}
        counter = itertools.count()
        for nic in nics:
            if nic.name.text:
                continue
            candidates: Iterator[str]
            if nic.role == "transient" and nic.target is not None:
                base = "vf-" + nic.target.text.removeprefix("ua-")
                candidates = itertools.chain([base], (f"{base}-{i}" for i in itertools.count(2)))
            else:
                candidates = (f"net{next(counter)}" for _ in itertools.count())
            name = next(c for c in candidates if c not in taken)
            taken.add(name)
            nic.name = replace(nic.name, text=name)


# --- printing -----------------------------------------------------------------------


def _team_name(alias: str) -> str | None:
    from .lower import team_alias

    short = alias.removeprefix("ua-")
    return short if short and team_alias(short) == alias else None


def _teams(nics: list[_Nic]) -> dict[int, _Nic] | None:
    """persistent index -> its transient, for the pairs a `team` block can say; None if teams
    would change libvirt's device order (then every NIC stays a `nic` block)."""
    transients: dict[str, list[_Nic]] = {}
    for nic in nics:
        if nic.role == "transient" and nic.target is not None:  # (teaming() gives a transient its target)
            transients.setdefault(nic.target.text, []).append(nic)
    pairs = {}
    for i, nic in enumerate(nics):
        mates = transients.get(nic.name.text, [])
        if nic.role != "persistent" or not nic.user_alias or len(mates) != 1 or _team_name(nic.name.text) is None:
            continue
        t = mates[0]
        if t.user_alias or (t.model is not None and t.source.kind != "hostdev"):
            continue  # a team's transient has no alias and no model of its own
        pairs[i] = t
    members = [[nic, pairs[i]] if i in pairs else [nic] for i, nic in enumerate(nics)
               if not any(nic is t for t in pairs.values())]
    order = [m for group in members for m in group]
    for kind in ("interface", "hostdev"):
        if [m.element for m in order if m.kind == kind] != [m.element for m in nics if m.kind == kind]:
            return None
    return pairs


class _Layout:
    """Gives the printed AST fresh, increasing offsets so that comments and blank lines land
    where the importer wants them (the formatter places comments by offset)."""

    def __init__(self) -> None:
        self.source = SourceFile("<import>", "")
        self.counter = itertools.count(2, 2)
        self.comments: list = []
        self.blank: set[int] = set()

    def open(self, leading=(), blank: bool = False) -> int:
        from .formatter import Comment

        start = next(self.counter)
        self.comments.extend(Comment(start - 1, f"# {text}", True) for text in leading)
        if blank:
            self.blank.add(start)
        return start

    def close(self, start: int, closing=()) -> Span:
        from .formatter import Comment

        end = next(self.counter)
        self.comments.extend(Comment(end - 1, f"# {text}", True) for text in closing)
        return Span(self.source, start, end)

    def node(self, node, leading=(), blank: bool = False):
        start = self.open(leading, blank)
        changes = {f.name: tuple(self.node(item) for item in getattr(node, f.name))
                   for f in fields(node) if f.name in ("items", "options")}
        return replace(node, **changes, span=self.close(start))


_PC_NOTE = ["QEMU refuses a failover team on the i440fx `pc` machine (\"failover primary device must be",
            "on PCIExpress bus\"): libvirt accepts this domain, QEMU will not start it. Use q35 to run it."]


def _print(vm: n.Vm, nics: list[_Nic], skipped: list, doc, header: list[str]) -> str:
    from .formatter import format_module
    from .lower import machine_family

    layout = _Layout()
    settings = [item for item in vm.items if isinstance(item, n.Setting)]
    if not any(s.key == "machine" for s in settings):
        header = [*header, "The domain names no machine type; teamc uses q35."]
    vm_start = layout.open(header)
    printed: list = []
    for setting in settings:
        if setting.key == "machine" and machine_family(setting.value.text) == "pc":
            printed.append(layout.node(setting, leading=_PC_NOTE))
            printed.append(layout.node(n.Setting("allow", n.Value("pc-machine-team", setting.span), None,
                                                 setting.span)))
        else:
            printed.append(layout.node(setting))
    pending = sorted(skipped, key=lambda el: doc.positions[el].start)

    def not_imported(before: int) -> list[str]:
        out = []
        while pending and doc.positions[pending[0]].start < before:
            element = pending.pop(0)
            mac = element.find("mac")
            out.append(f"not imported: <interface type='{element.get('type')}'> at line "
                       f"{doc.tag_span(element).line_col[0]}"
                       + (f" (MAC {mac.get('address')})" if mac is not None and mac.get("address") else "")
                       + ", no <teaming>; it stays in the base domain")
        return out

    pairs = _teams(nics)
    consumed = {id(t) for t in (pairs or {}).values()}
    for i, nic in enumerate(nics):
        if id(nic) in consumed:
            continue
        leading = not_imported(doc.positions[nic.element].start) + nic.notes
        node: n.Team | n.Nic
        if pairs is not None and i in pairs:
            leading += pairs[i].notes
            node = _team_node(nic, pairs[i])
        else:
            node = nic.nic_node()
        printed.append(layout.node(node, leading=leading, blank=True))
    module_vm = replace(vm, items=tuple(printed), span=layout.close(vm_start, not_imported(1 << 62)))

    def one_line(node) -> bool:
        return isinstance(node, (n.Persistent, n.Transient))

    return format_module(n.Module((module_vm,), module_vm.span), layout.comments, one_line=one_line,
                         blank_before=frozenset(layout.blank))


def _team_node(p: _Nic, t: _Nic) -> n.Team:
    mac = p.mac or t.mac
    team_name = _team_name(p.name.text)
    # _teams pairs only a persistent with a team name, and one without <model> is E0301 before that.
    assert p.model is not None and team_name is not None
    persistent = n.Persistent(p.model.value, p.source, tuple(p.options), p.source.span)
    transient = n.Transient(t.source, tuple(t.options), t.source.span)
    name = n.Value(team_name, p.name.span)
    return n.Team(name, (*([mac] if mac else []), persistent, transient), p.source.span)


# --- the phase ------------------------------------------------------------------------


def import_xml(source: SourceFile, allow: frozenset[str] = frozenset()) -> ImportResult:
    """Read one domain; on success the result holds the `.team` text."""
    from .checks import apply_allow
    from .lower import lower
    from .pipeline import check_and_lay_out
    from .xmlsource import parse_xml

    doc, errors = parse_xml(source)
    if doc is None:
        return ImportResult(source, errors)
    importer = _Importer(doc)
    vm, nics, skipped = importer.domain()
    if importer.errors or vm is None:
        return ImportResult(source, importer.errors + importer.notes)
    lowered = lower(n.Module((vm,), vm.span))
    found, _ = check_and_lay_out(lowered.graph)
    diagnostics = apply_allow(lowered.graph, [*lowered.diagnostics, *found, *importer.notes], allow | _allowed_for(vm))
    result = ImportResult(source, diagnostics, vm=vm.name.text)
    if result.failed:
        return result
    header = [f"The teamed NICs of domain `{vm.name.text}`, imported by `teamc import` from",
              f"{source.name}.",
              "The rest of the domain stays there; merge these NICs back into it with",
              f"`teamc compile FILE.team --into {source.name}`."]
    result.text = _print(vm, nics, skipped, doc, header)
    return result


def _allowed_for(vm: n.Vm) -> frozenset[str]:
    """A `pc` domain is imported with `allow pc-machine-team`, so its E0401 is a warning here too."""
    from .lower import machine_family

    machine = next((s for s in vm.items if isinstance(s, n.Setting) and s.key == "machine"), None)
    return frozenset({"E0401"}) if machine is not None and machine_family(machine.value.text) == "pc" else frozenset()


# --- the `teamc import` command -----------------------------------------------------------


def add_parser(subparsers) -> None:
    from .cli import add_allow_option, add_diagnostic_options

    p = subparsers.add_parser("import", help="write .team source for the teamed NICs of libvirt domain XML")
    p.add_argument("files", nargs="+", metavar="DOMAIN.xml", help="libvirt domain XML ('-' reads standard input)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="write <file>.team into DIR for each DOMAIN.xml (default: print to standard output)")
    add_diagnostic_options(p)
    add_allow_option(p)


def run(args) -> int:
    from pathlib import Path

    from .cli import EXIT_ERRORS, EXIT_OK, UsageError, allowed_codes, print_artifacts, print_diagnostics
    from .diagnostics import sorted_unique
    from .pipeline import Artifact, load

    allow = allowed_codes(args.allow)
    results = []
    for path in args.files:
        try:
            source, read_errors = load(path)
        except OSError as err:
            raise UsageError(f"cannot read {path}: {err.strerror or err}") from err
        results.append(ImportResult(source, read_errors) if read_errors else import_xml(source, allow))
    diagnostics = sorted_unique([d for r in results for d in r.diagnostics])
    print_diagnostics(diagnostics, args, inputs=[r.source.name for r in results])
    if any(d.is_error for d in diagnostics):
        return EXIT_ERRORS
    artifacts = []
    for path, result in zip(args.files, results, strict=True):
        stem = Path(path).stem if path != "-" else result.vm
        assert result.text is not None  # no errors: the import wrote it
        artifacts.append(Artifact(f"{stem}.team", result.text))
    names = [a.name for a in artifacts]
    if args.output:
        from .outdir import plain_name

        for path, name in zip(args.files, names, strict=True):
            if not plain_name(name):  # e.g. `.hidden.xml`: the output folder's dot names are teamc's own
                raise UsageError(f"{path}: cannot be written into {args.output} as `{name}`; rename the input")
    if len(set(names)) != len(names):
        raise UsageError("two inputs would both be written as " + next(x for x in names if names.count(x) > 1))
    if args.output:
        from .outdir import locked, write_files

        try:
            Path(args.output).mkdir(parents=True, exist_ok=True)
            with locked(Path(args.output)):
                write_files(Path(args.output), artifacts)
        except OSError as err:  # a full disk, a read-only file system: nothing is half-written
            raise UsageError(f"cannot write {err.filename or args.output}: {err.strerror or err}") from err
    else:
        print_artifacts(artifacts)
    return EXIT_OK
