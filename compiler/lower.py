"""Lower phase: AST (`nodes.Module`) -> IR graph (`ir`), plus value diagnostics.

Lowering resolves both surface forms (team blocks and explicit `nic` blocks) to
the same NIC records, parses values (MACs, PCI addresses, sizes), fills in
defaults and derives what the user left out (aliases, MACs, UUIDs). It reports
malformed values and duplicated or missing statements; the relations between
NICs are left to `checks.py`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import TypedDict

import networkx as nx

from . import nicsettings as ns
from . import nodes as n
from .diagnostics import CODES, Diagnostic, Label, diag, lookup
from .ir import (
    HOSTDEV_KINDS,
    PERSISTENT,
    TRANSIENT,
    NicSpec,
    PciAddress,
    VmSpec,
    nic_key,
    vm_key,
)
from .keywords import UNIT_BYTES as UNITS
from .source import Span

# libvirt keeps a user alias only when it starts with `ua-` and every character is one of
# USER_ALIAS_CHARS (libvirt 9.0, src/conf/domain_conf.c: letters, digits, `_`, `-`); any other
# alias it drops without a word, so a VF's `persistent=` would name nothing.
ALIAS_RE = re.compile(r"[A-Za-z0-9_-]+\Z")
# A NIC name that never becomes an alias (a VF's `nic` name) only names output files.
NIC_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+\Z")
VM_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+\-]*\Z")
MAC_RE = re.compile(r"([0-9A-Fa-f]{2})(:[0-9A-Fa-f]{2}){5}\Z")
UUID_RE = re.compile(r"[0-9A-Fa-f]{8}-?([0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}\Z")
TEAMC_NAMESPACE = bytes.fromhex("6f1c1f4e2a574c1e9d8e7465616d6301")  # the UUID 6f1c1f4e-2a57-4c1e-9d8e-7465616d6301

MACVTAP_MODES = ("vepa", "bridge", "private", "passthrough")
# libvirt's own schema patterns (domaincommon.rng): a bridge name, and a host device name.
BRIDGE_RE = re.compile(r"[a-zA-Z0-9_.\-\\:/ ]+\Z")
DEVICE_RE = re.compile(r"[a-zA-Z0-9_.\-\\:/]+\Z")
ARCHES = {"x86_64": "/usr/bin/qemu-system-x86_64", "i686": "/usr/bin/qemu-system-i386"}
# QEMU 7.2's i440fx machines take 255 vCPUs. Its q35 machines take 288, but libvirt 9.0 refuses more
# than 255 without an IOMMU in extended interrupt mode, which teamc's domain does not have (and QEMU
# under TCG refuses APIC ids above 255 outright).
MAX_VCPUS = 255
VCPU_LIMIT_HELP = {
    "pc": "QEMU's i440fx machines take at most 255 vCPUs (libvirt: 'Maximum CPUs greater than specified "
          "machine type limit 255')",
    "q35": "more than 255 vCPUs need an IOMMU with extended interrupt mode (libvirt: 'more than 255 vCPUs "
           "require extended interrupt mode enabled on the iommu device'); use at most 255, or keep the vCPUs and "
           "the IOMMU in a base domain (`compile --into`)",
}
MAX_MEMORY_KIB = 16 * 1024**3  # 16 TiB, QEMU's x86 limit is higher but this is sane
# Control characters, Unicode line and paragraph separators (which many tools split lines
# on), and what XML 1.0 cannot carry at all (surrogates, U+FFFE, U+FFFF).
UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def derive_mac(vm: str, alias: str) -> str:
    """A stable locally administered MAC under QEMU's 52:54:00 prefix."""
    digest = hashlib.sha256(f"teamc:{vm}/{alias}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def derive_uuid(vm: str) -> str:
    """`str(uuid.uuid5(TEAMC_NAMESPACE, vm))` (RFC 4122 version 5), made here: importing `uuid` (and with
    it `platform`) cost every `teamc check` 2 ms."""
    octets = bytearray(hashlib.sha1(TEAMC_NAMESPACE + vm.encode()).digest()[:16])
    octets[6] = octets[6] & 0x0F | 0x50  # version 5
    octets[8] = octets[8] & 0x3F | 0x80  # the RFC 4122 variant
    return _uuid_text(octets.hex())


def _uuid_text(h: str) -> str:
    """32 lowercase hex digits as a UUID's text, as `str(uuid.UUID(...))` writes it."""
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def team_alias(name: str) -> str:
    return name if name.startswith("ua-") else "ua-" + name


class _NicFields(TypedDict, total=False):
    """The NicSpec fields a NIC's source, options and settings give (source_fields, option_fields,
    setting_fields), so that `NicSpec(..., **fields)` is checked field by field."""
    source_kind: str
    source_span: Span
    host_address: PciAddress | None
    host_address_span: Span | None
    managed: bool | None
    managed_span: Span | None
    source_target: str | None
    mode: str | None
    via_bridge: str | None
    portgroup: str | None
    guest_address: PciAddress | None
    guest_address_span: Span | None
    boot: int | None
    boot_span: Span | None
    mtu: int | None
    mtu_span: Span | None
    rom_bar: str | None
    rom_file: str | None
    rom_enabled: bool | None
    rom_span: Span | None
    settings: tuple[ns.Elem, ...]
    setting_spans: tuple[Span, ...]


class _TeamFields(TypedDict):
    """The NicSpec fields both NICs of a team share."""
    vm: str
    team: str
    mac: str | None
    mac_span: Span | None
    mac_derived: bool


class _Lowerer:
    """Lowers a module. The graph's nodes and links are gathered in lists, in the order they are
    made (source order), and the graph is built from them in bulk at the end (`graph`)."""

    def __init__(self) -> None:
        self.diags: list[Diagnostic] = []
        self.nodes: list[tuple[tuple, dict]] = []
        self.links: list[tuple[tuple, tuple, dict]] = []
        self.vm_nics: dict[tuple, dict] = {}  # the current VM's NICs so far: key -> node attributes

    def graph(self) -> nx.DiGraph:
        graph: nx.DiGraph = nx.DiGraph()
        graph.add_nodes_from(self.nodes)
        graph.add_edges_from(self.links)
        return graph

    def error(self, code: str, message: str, span: Span | None, *labels: Label, help: str | None = None) -> None:
        self.diags.append(diag(code, message, span, *labels, help=help))

    # --- values --------------------------------------------------------------

    def text(self, value: n.Value, what: str) -> str | None:
        """A free-form string value (names, paths); control characters are refused."""
        if UNSAFE_CHARS.search(value.text) or not value.text:
            self.error("E0205", f"{what} must be non-empty and may not contain control characters", value.span,
                       help="remove newlines, tabs and other control or non-character code points from the value")
            return None
        return value.text

    def mac(self, value: n.Value) -> str | None:
        text = value.text
        if not MAC_RE.match(text):
            self.error("E0203", f"`{text}` is not a MAC address", value.span,
                       help="write six two-digit hex octets separated by `:`, e.g. 52:54:00:12:34:56")
            return None
        mac = text.lower()
        first = int(mac[:2], 16)
        if mac == "ff:ff:ff:ff:ff:ff":
            problem = "is the broadcast address"
        elif first & 1:
            problem = "is a multicast address (the low bit of the first octet is set)"
        elif mac == "00:00:00:00:00:00":
            problem = "is all zeros"
        else:
            return mac
        self.error("E0203", f"MAC `{text}` {problem}", value.span,
                   help="use a unicast address, e.g. one under QEMU's prefix 52:54:00, or omit `mac` to derive one")
        return None

    def pci(self, value: n.Value, what: str) -> PciAddress | None:
        address = PciAddress.parse(value.text)
        if address is None:
            self.error("E0204", f"`{value.text}` is not a PCI address", value.span,
                       help=f"write {what} as DOMAIN:BUS:SLOT.FUNCTION in hex, e.g. 0000:03:07.1")
            return None
        if bad := address.out_of_range():
            field_name, got, limit = bad
            self.error("E0204", f"PCI {field_name} {got:#x} is out of range in `{value.text}`", value.span,
                       help=f"the {field_name} must be at most {limit:#x}")
            return None
        return address

    def integer(self, value: n.Value, what: str, low: int, high: int) -> int | None:
        try:
            number = int(value.text, 0)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            self.error("E0205", f"{what} must be a whole number from {low} to {high}, not `{value.text}`",
                       value.span, help=f"write {what} as a plain number, e.g. `{low}`")
            return None
        return number

    def choice(self, value: n.Value, what: str, allowed) -> str | None:
        if value.text in allowed:
            return value.text
        self.error("E0205", f"`{value.text}` is not a valid {what}", value.span,
                   help="use one of: " + ", ".join(f"`{a}`" for a in allowed))
        return None

    def unique(self, items, what: str, key=lambda item: item.key) -> dict:
        """First occurrence of each key; later ones are duplicate-setting errors."""
        first: dict = {}
        for item in items:
            k = key(item)
            if k in first:
                self.error("E0103", f"{what} `{k}` is given twice", item.span,
                           Label(first[k].span, "first given here"), help="keep one of the two statements")
            else:
                first[k] = item
        return first

    # --- VMs -----------------------------------------------------------------

    def module(self, module: n.Module) -> None:
        seen: dict[str, n.Vm] = {}
        for vm in module.vms:
            name = vm.name.text
            if name in seen:
                self.error("E0101", f"VM `{name}` is defined twice", vm.name.span,
                           Label(seen[name].name.span, "first defined here"), help="rename one of the VMs")
                continue
            seen[name] = vm
            self.vm(vm)

    def vm(self, vm: n.Vm) -> None:
        name = vm.name.text
        if not VM_NAME_RE.match(name) or len(name) > 200:
            self.error("E0205", f"`{name}` is not a valid VM name", vm.name.span,
                       help="use letters, digits and `_ . + -`, starting with a letter, digit or `_`")
        settings = [i for i in vm.items if isinstance(i, n.Setting)]
        single = self.unique([s for s in settings if s.key != "allow"], "setting")
        get = single.get

        machine, family, machine_span = "q35", "q35", None
        if "machine" in single:
            machine_span = single["machine"].value.span
            machine = single["machine"].value.text
            found = machine_family(machine)
            if found is None:
                self.error("E0405", f"machine `{machine}` cannot host a failover team", machine_span,
                           help="use `machine q35`: QEMU needs a PCI Express, hot-pluggable slot for the VF")
            elif machine not in QEMU_MACHINES:
                self.error("E0405", f"machine `{machine}` is not a machine type of QEMU 7.2", machine_span,
                           help="use `q35` (QEMU's newest, pc-q35-7.2) or a versioned type from pc-q35-2.4 "
                                "to pc-q35-7.2; libvirt refuses a machine type its QEMU does not have")
            family = found or "q35"
        arch = self.choice(setting.value, "architecture", tuple(ARCHES)) if (setting := get("arch")) else "x86_64"
        arch = arch or "x86_64"
        memory_kib = 1024 * 1024
        if setting := get("memory"):
            memory_kib = self.memory(setting) or memory_kib
        vcpus = self.integer(setting.value, "vcpus", 1, 4096) if (setting := get("vcpus")) else 1
        if setting and vcpus is not None and vcpus > MAX_VCPUS:
            self.error("E0205", f"{vcpus} vCPUs are more than the `{machine}` machine takes here: at most {MAX_VCPUS}",
                       setting.value.span, help=VCPU_LIMIT_HELP[family])
            vcpus = None
        uuid = derive_uuid(name)
        if setting := get("uuid"):
            if UUID_RE.match(setting.value.text):
                uuid = _uuid_text(setting.value.text.replace("-", "").lower())
            else:
                self.error("E0205", f"`{setting.value.text}` is not a UUID", setting.value.span,
                           help="write a UUID like c7a5fdbd-edaf-9455-926a-d65c16db1809, or omit it to derive one")
        emulator = ARCHES[arch]
        if setting := get("emulator"):
            path = self.text(setting.value, "emulator")
            if path and not path.startswith("/"):
                self.error("E0205", f"emulator `{path}` is not an absolute path", setting.value.span,
                           help="libvirt needs the full path, e.g. /usr/bin/qemu-system-x86_64")
            emulator = path or emulator
        accel = "kvm"
        if setting := get("accel"):
            accel = self.choice(setting.value, "accelerator", ("kvm", "tcg")) or accel
        allowed, allow_spans = set(), []
        for s in settings:
            if s.key == "allow":
                code = lookup(s.value.text)
                if code is None or not code.allowable:
                    self.error("E0205", f"`{s.value.text}` cannot be allowed", s.value.span,
                               help="allowable: " + ", ".join(f"`{c.slug}`" for c in CODES.values() if c.allowable))
                else:
                    allowed.add(code.code)
                    allow_spans.append(s.span)

        spec = VmSpec(name=name, uuid=uuid, machine=machine, machine_family=family, arch=arch,
                      memory_kib=memory_kib, vcpus=vcpus or 1, emulator=emulator, accel=accel,
                      allowed=frozenset(allowed), span=vm.span, name_span=vm.name.span,
                      machine_span=machine_span, allow_spans=tuple(allow_spans))
        self.nodes.append((vm_key(name), {"kind": "vm", "vm": spec}))
        self.vm_nics = {}

        names: dict[str, Span] = {}
        aliases: dict[str, Span] = {}
        for item in vm.items:
            if isinstance(item, n.Team):
                self.team(spec, item, names, aliases)
            elif isinstance(item, n.Nic):
                self.nic(spec, item, names, aliases)
        self.resolve(name)

    def resolve(self, vm: str) -> None:
        """Link explicit transients to their persistent NIC; share or derive MACs."""
        nodes = self.vm_nics
        explicit = [(key, attrs["nic"]) for key, attrs in nodes.items() if key[3] == ""]
        if not explicit:
            return  # teams are linked and given their MAC as they are lowered
        by_name = {key[2]: key for key in nodes if key[3] != TRANSIENT}
        by_alias = {attrs["nic"].alias: key for key, attrs in nodes.items()
                    if attrs["nic"].alias and key[3] != TRANSIENT}
        partner: dict[tuple, tuple] = {}
        named_by: dict[tuple, list[tuple]] = {}  # the transients that name a NIC, in link order
        for key, spec in explicit:
            if spec.role == TRANSIENT and spec.pairs_with is not None:
                target = by_name.get(spec.pairs_with) or by_alias.get(spec.pairs_with)
                if target is not None:
                    self.links.append((key, target, {"kind": "pairs-with"}))
                    partner[key] = target
                    named_by.setdefault(target, []).append(key)
        # Persistents first, so that a transient without a MAC copies its partner's.
        for key, spec in sorted(explicit, key=lambda item: item[1].role == TRANSIENT):
            if spec.mac is not None or spec.mac_span is not None:
                continue
            if spec.role == TRANSIENT and (target := partner.get(key)) is not None:
                source = nodes[target]["nic"]
            else:
                source = next((nodes[t]["nic"] for t in named_by.get(key, ()) if nodes[t]["nic"].mac_span is not None),
                              None)
            if source is not None and source.mac is not None:
                mac, derived = source.mac, source.mac_derived
            else:
                mac, derived = derive_mac(vm, spec.alias or spec.name), True
            nodes[key]["nic"] = replace(spec, mac=mac, mac_derived=derived)

    def memory(self, setting: n.Setting) -> int | None:
        if setting.unit is None:
            self.error("E0205", "memory needs a unit", setting.value.span,
                       help=f"write e.g. `memory {setting.value.text} MiB`")
            return None
        size = self.integer(setting.value, "memory", 1, 2**50)
        if size is None:
            return None
        kib = size * UNITS[setting.unit.text] // 1024
        if not 1024 <= kib <= MAX_MEMORY_KIB:
            self.error("E0205", "memory must be between 1 MiB and 16 TiB", setting.span,
                       help="QEMU cannot start a guest with this much or this little memory")
            return None
        return kib

    # --- NICs ----------------------------------------------------------------

    def claim(self, vm: VmSpec, name: n.Value, alias: str | None, names: dict, aliases: dict) -> bool:
        if name.text in names:
            self.error("E0102", f"`{name.text}` is defined twice in VM `{vm.name}`", name.span,
                       Label(names[name.text], "first defined here"), help="give each team and NIC its own name")
            return False
        names[name.text] = name.span
        if alias is not None:
            if alias in aliases:
                self.error("E0102", f"alias `{alias}` is used twice in VM `{vm.name}`", name.span,
                           Label(aliases[alias], "also used here"), help="give each team and NIC its own name")
                return False
            aliases[alias] = name.span
        return True

    def refuse_name(self, value: n.Value, what: str) -> None:
        self.error("E0205", f"`{value.text}` is not a valid {what}", value.span,
                   help="libvirt accepts letters, digits and `_ . - \\ : /`"
                        + (" and spaces" if what == "bridge name" else ""))

    def check_model(self, value: n.Value) -> None:
        if not MODEL_RE.match(value.text):
            self.error("E0205", f"`{value.text}` is not a NIC model name", value.span,
                       help="the persistent side is `virtio` (or virtio-transitional, virtio-non-transitional)")

    def check_name(self, value: n.Value, alias: str | None) -> None:
        """`alias`: the libvirt alias the name becomes, or None for a name that stays teamc's."""
        pattern = ALIAS_RE if alias is not None else NIC_NAME_RE
        name = alias if alias is not None else value.text
        if pattern.match(name):
            return
        bad = "".join(sorted({c for c in name if not pattern.match(c)}))
        if alias is not None:
            self.error("E0202", f"alias `{alias}` has characters libvirt does not keep in an alias: {bad!r}",
                       value.span, help="use only letters, digits, `_` and `-`: libvirt silently drops any other "
                                        "alias, and the VF's `persistent=` then names nothing")
        else:
            self.error("E0202", f"`{name}` has characters teamc does not accept in a NIC name: {bad!r}", value.span,
                       help="use only letters, digits, `_`, `-` and `.`")

    def team(self, vm: VmSpec, team: n.Team, names: dict, aliases: dict) -> None:
        name = team.name.text
        alias = team_alias(name)
        self.check_name(team.name, alias)
        if not self.claim(vm, team.name, alias, names, aliases):
            return
        by_kind = self.unique(team.items, "statement", key=lambda item: type(item).__name__.lower())
        mac_stmt, pers, trans = by_kind.get("mac"), by_kind.get("persistent"), by_kind.get("transient")
        for missing, stmt in (("persistent", pers), ("transient", trans)):
            if stmt is None:
                self.error("E0104", f"team `{name}` has no `{missing}` NIC", team.name.span,
                           help=f"add a `{missing} …` line to the team" + (
                               "; a virtio NIC without a VF partner belongs in the base domain"
                               if missing == "transient" else ""))
        mac, derived = None, False
        if mac_stmt:
            mac = self.mac(mac_stmt.value)
        else:
            mac, derived = derive_mac(vm.name, alias), True
        mac_span = mac_stmt.value.span if mac_stmt else None
        common: _TeamFields = {"vm": vm.name, "team": name, "mac": mac, "mac_span": mac_span, "mac_derived": derived}
        if pers:
            self.check_model(pers.model)
            fields = self.source_fields(pers.source) | self.option_fields(pers.options)
            fields |= self.setting_fields(pers.options, pers.source, PERSISTENT)
            spec = NicSpec(name=name, label=f"the persistent NIC of team `{name}`", role=PERSISTENT, span=pers.span,
                           name_span=team.name.span, model=pers.model.text, model_span=pers.model.span,
                           alias=alias, alias_span=team.name.span, role_spans=(pers.span,), **common, **fields)
            self.add_nic(nic_key(vm.name, name, PERSISTENT), spec)
        if trans:
            fields = self.source_fields(trans.source) | self.option_fields(trans.options)
            fields |= self.setting_fields(trans.options, trans.source, TRANSIENT)
            spec = NicSpec(name=name, label=f"the transient NIC of team `{name}`", role=TRANSIENT, span=trans.span,
                           name_span=team.name.span, pairs_with=name if pers else None,
                           pairs_with_span=team.name.span,
                           role_spans=(trans.span,), **common, **fields)
            self.add_nic(nic_key(vm.name, name, TRANSIENT), spec)
            if pers:
                self.links.append((nic_key(vm.name, name, TRANSIENT), nic_key(vm.name, name, PERSISTENT),
                                   {"kind": "pairs-with"}))

    def nic(self, vm: VmSpec, nic: n.Nic, names: dict, aliases: dict) -> None:
        name = nic.name.text
        alias = name if name.startswith("ua-") else None
        self.check_name(nic.name, alias)
        if not self.claim(vm, nic.name, alias if alias else name, names, aliases):
            return
        items = [i for i in nic.items if not isinstance(i, (n.Option, n.NicSetting, n.Teaming))]
        by_kind = self.unique(items, "statement",
                              key=lambda item: type(item).__name__.lower().replace("nicsource", "source"))
        options = [i for i in nic.items if isinstance(i, (n.Option, n.NicSetting))]
        teamings = [i for i in nic.items if isinstance(i, n.Teaming)]
        roles = self.unique(teamings, "teaming", key=lambda t: t.role)
        role = None
        if len(roles) == 2:
            self.error("E0307", f"nic `{name}` is declared both persistent and transient", roles["transient"].span,
                       Label(roles["persistent"].span, "declared persistent here"),
                       help="a NIC is either the virtio standby (persistent) or the VF (transient), never both")
        elif roles:
            role = next(iter(roles))
        else:
            self.error("E0311", f"nic `{name}` has no `teaming` statement", nic.name.span,
                       help="add `teaming persistent` or `teaming transient <persistent-nic>`; "
                            "NICs outside a team belong in the base domain")
        source_stmt = by_kind.get("source")
        if source_stmt is None:
            self.error("E0104", f"nic `{name}` has no `source`", nic.name.span,
                       help="add e.g. `source bridge br0` or `source hostdev 0000:03:07.1`")
            return
        mac_stmt, model_stmt = by_kind.get("mac"), by_kind.get("model")
        if model_stmt:
            self.check_model(model_stmt.value)
        mac = self.mac(mac_stmt.value) if mac_stmt else None
        teaming = roles.get("transient") if role == TRANSIENT else None
        fields = self.source_fields(source_stmt.source) | self.option_fields(options)
        fields |= self.setting_fields(options, source_stmt.source, role)
        spec = NicSpec(
            vm=vm.name, name=name, label=f"{role} nic `{name}`" if role else f"nic `{name}`", role=role, span=nic.span,
            name_span=nic.name.span,
            model=model_stmt.value.text if model_stmt else ("virtio" if role == PERSISTENT else None),
            model_span=model_stmt.value.span if model_stmt else None,
            alias=alias, alias_span=nic.name.span if alias else None,
            mac=mac, mac_span=mac_stmt.value.span if mac_stmt else None,
            pairs_with=teaming.target.text if teaming else None,
            pairs_with_span=teaming.target.span if teaming else None,
            role_spans=tuple(t.span for t in roles.values()), **fields,
        )
        self.add_nic(nic_key(vm.name, name), spec)

    def add_nic(self, key: tuple, spec: NicSpec) -> None:
        attrs = self.vm_nics[key] = {"kind": "nic", "nic": spec}
        self.nodes.append((key, attrs))
        self.links.append((key, vm_key(spec.vm), {"kind": "belongs-to"}))

    def source_fields(self, src: n.Source) -> _NicFields:
        fields: _NicFields = {"source_kind": src.kind, "source_span": src.span}
        if src.kind in HOSTDEV_KINDS and src.target is not None:  # (the grammar gives these an address)
            fields["host_address"] = self.pci(src.target, "a host PCI address")
            fields["host_address_span"] = src.target.span
            fields["managed"] = src.managed.enabled if src.managed else None
            fields["managed_span"] = src.managed.span if src.managed else None
        elif src.target is not None:
            fields["source_target"] = self.text(src.target, f"the {src.kind} name")
            pattern = {"bridge": BRIDGE_RE, "direct": DEVICE_RE}.get(src.kind)
            if fields["source_target"] and pattern and not pattern.match(src.target.text):
                self.refuse_name(src.target, "bridge name" if src.kind == "bridge" else "host device name")
        if src.mode is not None and src.kind == "vhostuser":
            fields["mode"] = self.choice(src.mode, "vhost-user socket mode", ("client", "server"))
        elif src.mode is not None:
            fields["mode"] = self.choice(src.mode, "macvtap mode", MACVTAP_MODES)
        socket = fields.get("source_target")
        if src.kind == "vhostuser" and src.target is not None and socket and not socket.startswith("/"):
            self.error("E0205", f"vhost-user socket `{src.target.text}` is not an absolute path", src.target.span,
                       help="libvirt needs the full path of the unix socket, e.g. `vhostuser /run/vhost/sock0`")
        if src.via_bridge is not None:
            fields["via_bridge"] = self.text(src.via_bridge, "the bridge name")
            if fields["via_bridge"] and not BRIDGE_RE.match(src.via_bridge.text):
                self.refuse_name(src.via_bridge, "bridge name")
        if src.portgroup is not None:
            fields["portgroup"] = self.text(src.portgroup, "the portgroup name")
            if fields["portgroup"] and not DEVICE_RE.match(src.portgroup.text):  # domain.rng: a deviceName
                self.refuse_name(src.portgroup, "portgroup name")
        if src.via_vf is not None:
            fields["host_address"] = self.pci(src.via_vf, "the VF's host PCI address")
            fields["host_address_span"] = src.via_vf.span
        return fields

    def setting_fields(self, options, source: n.Source, role: str | None) -> _NicFields:
        """The table's settings (`nicsettings.ROWS`): each parsed by its row, then refused where libvirt refuses it."""
        stated: dict[str | tuple[str, int], tuple[ns.Elem, n.NicSetting]] = {}
        for stmt in (o for o in options if isinstance(o, n.NicSetting)):
            row = ns.BY_KEYWORD[stmt.key]
            try:
                elem = row.parse([v.text for v in stmt.values])
            except ns.SettingError as e:
                span = stmt.values[e.index].span if e.index < len(stmt.values) else stmt.span
                self.error("E0205", e.message, span, help=e.help)
                continue
            if stmt.key == "libvirt" and (problem := ns.value_problem(elem)) is not None:
                self.error("E0205", problem[0], stmt.span, help=problem[1])
                continue
            if elem.tag in ns.REPEATABLE:  # domain.rng takes several: one pass-through each
                stated[(elem.tag, len(stated))] = (elem, stmt)
                continue
            if elem.tag in stated:
                self.error("E0103", f"setting `{elem.tag.lstrip('@')}` is given twice", stmt.span,
                           Label(stated[elem.tag][1].span, "first given here"), help="keep one of the two statements")
                continue
            stated[elem.tag] = (elem, stmt)
        if not stated:
            return {}  # most NICs state no setting: the spec's defaults are the empty table
        kind = source.kind
        context = ns.Context(kind, role, source.mode.text if source.mode else None,
                             {elem.tag: elem for elem, _ in stated.values()})
        kept = []
        for (elem, stmt) in stated.values():
            row = ns.row_for(elem)
            refusal = ns.refusal(row, elem, context)
            if refusal is not None:
                message, help = refusal
                self.error("E0206", message, stmt.span, help=help)
            else:
                kept.append((elem, stmt.span))
        return {"settings": tuple(e for e, _ in kept), "setting_spans": tuple(s for _, s in kept)}

    def option_fields(self, options) -> _NicFields:
        fields: _NicFields = {}
        for key, opt in self.unique([o for o in options if isinstance(o, n.Option)], "option").items():
            value = opt.value
            if key == "address":
                fields["guest_address"] = self.pci(value, "a guest PCI address")
                fields["guest_address_span"] = value.span
            elif key == "boot":
                fields["boot"] = self.integer(value, "boot order", 1, 2**31 - 1)  # QEMU's bootindex is an int32
                fields["boot_span"] = opt.span
            elif key == "mtu":
                fields["mtu"] = self.integer(value, "mtu", 68, 65535)
                fields["mtu_span"] = opt.span
            elif key == "managed":
                fields["managed"] = value.text == "yes"
                fields["managed_span"] = opt.span
            elif key == "rom bar":
                fields["rom_bar"] = self.choice(value, "rom bar setting", ("on", "off"))
                fields["rom_span"] = opt.span
            elif key == "rom file":
                fields["rom_file"] = self.text(value, "rom file")
                fields["rom_span"] = opt.span
                if fields["rom_file"] and not fields["rom_file"].startswith("/"):
                    self.error("E0205", f"rom file `{value.text}` is not an absolute path", value.span,
                               help="libvirt needs the full path of the ROM image")
            elif key == "rom enabled":
                choice = self.choice(value, "rom enabled setting", ("yes", "no"))
                fields["rom_enabled"] = None if choice is None else choice == "yes"
                fields["rom_span"] = opt.span
        return fields


MACHINE_RE = re.compile(r"(q35|pc-q35-[0-9]+(\.[0-9]+)*|pc|pc-i440fx-[0-9]+(\.[0-9]+)*)\Z")
# The q35 and i440fx machine types of QEMU 7.2 (`qemu-system-x86_64 -machine help`): libvirt refuses
# any other ("Emulator ... does not support machine type"), and so does QEMU.
_MINORS = {1: range(4, 8), 2: range(13), 3: range(2), 4: range(3), 5: range(3), 6: range(3), 7: range(3)}
QEMU_MACHINES = frozenset({
    "q35", "pc", "pc-q35-4.0.1",
    *(f"pc-i440fx-{major}.{minor}" for major, minors in _MINORS.items() for minor in minors),
    *(f"pc-q35-{major}.{minor}" for major, minors in _MINORS.items() for minor in minors if (major, minor) >= (2, 4)),
})
MODEL_RE = re.compile(r"[A-Za-z0-9_.\-]+\Z")


def machine_family(machine: str) -> str | None:
    if not MACHINE_RE.match(machine):
        return None
    return "q35" if "q35" in machine else "pc"


@dataclass(frozen=True, slots=True)
class Lowered:
    graph: nx.DiGraph
    diagnostics: list[Diagnostic]


def lower(module: n.Module) -> Lowered:
    lowerer = _Lowerer()
    lowerer.module(module)
    return Lowered(lowerer.graph(), lowerer.diags)
