"""The NIC settings table: every libvirt NIC setting teamc speaks, declared once.

Each `Row` says, for one `.team` statement, what it becomes in libvirt's XML (an element of
<interface>, or an attribute of it), on which NICs libvirt accepts it (source kinds, role, and a
`refuse` rule taken from libvirt 9.0's validation code), the checks of its values, and what QEMU
gets of it. The parser reads the statements' keywords from the grammar (`_nic_setting_kw`, kept
equal to `ROWS` by a test); lowering turns the words into an `Elem` with `Row.parse`; the libvirt
backend prints the element at its place in libvirt's element order (`ORDER`); the importer reads an
element back with `Row.words` (and keeps what no row expresses exactly as a `libvirt "<…/>"`
pass-through, which lowering holds to domain.rng's shape of that element, `SCHEMAS`); merge keeps
every element of a base NIC whose tag the `.team` does not state; fmt prints `Row.words`; the QEMU
backend asks `device_props` and `libvirt_only`; the README's settings table is `readme_table()`.
Adding a setting is one row here (a shape and its checks) plus its tests, as a sqlglot dialect keeps
its differences in tables rather than in branches.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

PERSISTENT_KINDS = frozenset({"user", "ethernet", "vhostuser", "bridge", "network", "direct"})
_TAP_KINDS = frozenset({"bridge", "network"})
_ALL = PERSISTENT_KINDS | {"hostdev"}
VF_KINDS = frozenset({"hostdev", "network"})  # an <interface> VF: type='hostdev', or a hostdev-pool network


class Elem(NamedTuple):
    """An XML element as plain data (hashable, JSON-friendly): the IR's form of a setting."""

    tag: str
    attrs: tuple[tuple[str, str], ...] = ()
    children: tuple[Elem, ...] = ()
    text: str | None = None

    def get(self, name: str) -> str | None:
        return dict(self.attrs).get(name)

    def child(self, tag: str) -> Elem | None:
        return next((c for c in self.children if c.tag == tag), None)


def from_et(element: ET.Element) -> Elem:
    text = (element.text or "").strip() or None
    return Elem(element.tag, tuple(element.attrib.items()),
                tuple(from_et(c) for c in element if isinstance(c.tag, str)), text)


def to_et(elem: Elem) -> ET.Element:
    element = ET.Element(elem.tag, dict(elem.attrs))
    element.text = elem.text
    element.extend(to_et(c) for c in elem.children)
    return element


def to_xml(elem: Elem, indent: str = "  ") -> str:
    """libvirt's layout: two spaces a level, `'` around attributes, `/>` for an empty element."""
    def attrs(e: Elem) -> str:
        return "".join(f" {k}='{_escape(v)}'" for k, v in e.attrs)

    if not elem.children and elem.text is None:
        return f"<{elem.tag}{attrs(elem)}/>"
    if not elem.children:
        return f"<{elem.tag}{attrs(elem)}>{_escape(elem.text or '')}</{elem.tag}>"
    inner = "\n".join(indent + to_xml(c, indent).replace("\n", "\n" + indent) for c in elem.children)
    return f"<{elem.tag}{attrs(elem)}>\n{inner}\n</{elem.tag}>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")


# libvirt 9.0's order of an <interface>'s children (src/conf/domain_conf.c, virDomainNetDefFormat, then
# virDomainDeviceInfoFormat). domain.rng interleaves them, so the order is for readers and diffs; teamc's
# own elements keep the places its templates always gave them.
ORDER = ("mac", "source", "vlan", "virtualport", "bandwidth", "port", "ip", "route", "portForward", "script",
         "downscript", "backenddomain", "target", "guest", "model", "driver", "backend", "filterref", "tune",
         "boot", "rom", "teaming", "link", "mtu", "coalesce", "alias", "acpi", "address")
OWNED = frozenset({"mac", "source", "model", "boot", "rom", "teaming", "mtu", "alias", "address"})


# The elements teamc's templates place themselves; every other element goes right after the nearest of these
# before it in ORDER (`anchor`), so it lands at its place in libvirt's order.
ANCHORS = ("source", "model", "teaming", "mtu", "alias")


def anchor(tag: str) -> str:
    """The template anchor an element of <interface> follows (an unknown tag: after <mtu>)."""
    if tag not in ORDER:
        return "mtu"
    before = ORDER[:ORDER.index(tag)]
    return next((a for a in reversed(before) if a in ANCHORS), "source")


def by_anchor(settings: tuple[Elem, ...]) -> dict[str, list[Elem]]:
    """The settings' elements by anchor, each group in libvirt's order; `@name` attributes under "@"."""
    groups: dict[str, list[Elem]] = {}
    for elem in settings:
        groups.setdefault("@" if elem.tag.startswith("@") else anchor(elem.tag), []).append(elem)
    for key, elems in groups.items():
        if key != "@":
            elems.sort(key=lambda e: ORDER.index(e.tag) if e.tag in ORDER else len(ORDER))
    return groups


class SettingError(Exception):
    """A value a row refuses: `index` is the word the caret goes to."""

    def __init__(self, message: str, index: int, help: str) -> None:
        super().__init__(message)
        self.message, self.index, self.help = message, index, help


# --- value checks ----------------------------------------------------------------------------------

Check = Callable[[str], str | None]  # the value -> None, or what is wrong with it


def choice(*allowed: str) -> Check:
    return lambda v: None if v in allowed else "use one of " + ", ".join(f"`{a}`" for a in allowed)


def uint(low: int, high: int) -> Check:
    return lambda v: None if v.isdigit() and low <= int(v) <= high else f"a whole number from {low} to {high}"


def queue_size(v: str) -> str | None:
    # libvirt: "rx_queue_size has to be a power of two" (qemu_validate.c); QEMU 7.2 then refuses sizes outside
    # 256..1024 ("Invalid rx_queue_size (= N), must be a power of 2 between 256 and 1024").
    if v.isdigit() and 256 <= int(v) <= 1024 and int(v) & (int(v) - 1) == 0:
        return None
    return "a power of two from 256 to 1024 (libvirt: 'has to be a power of two'; QEMU: 'between 256 and 1024')"


_NAME = re.compile(r"[A-Za-z0-9_.:\-/]+\Z")


def name(v: str) -> str | None:
    return None if _NAME.match(v) else "letters, digits and `_ . : - /`"


def path(v: str) -> str | None:
    return None if v.startswith("/") and "\x00" not in v else "an absolute path"


ON_OFF = choice("on", "off")
YES_NO = choice("yes", "no")


# --- shapes: how words become an element -----------------------------------------------------------

@dataclass(frozen=True)
class Attrs:
    """`KEYWORD [LEAD] (ATTR VALUE | GROUP)…`: attributes of the element, and of child elements a GROUP
    word switches to (`driver queues 4 host csum off`, `bandwidth inbound average 10`)."""

    attrs: dict[str, Check]
    groups: dict[str, dict[str, Check]] = field(default_factory=dict)
    lead: str | None = None  # the attribute the first word is the value of (`link down`, `target vnet0`)
    pairs_child: str | None = None  # pairs go to this child instead (virtualport's <parameters>)

    def parse(self, tag: str, words: list[str]) -> Elem:
        root: dict[str, str] = {}
        groups: dict[str, dict[str, str]] = {}
        current, checks, i = root, self.attrs, 0
        if self.lead is not None:
            if not words:
                raise SettingError(f"`{tag}` needs its {self.lead}", 0, f"write `{tag} {self.lead.upper()}`")
            problem = self.attrs[self.lead](words[0])
            if problem:
                raise SettingError(f"`{words[0]}` is not a valid {tag} {self.lead}", 0, problem)
            root[self.lead], i = words[0], 1
            if self.pairs_child is not None:
                current, checks = groups.setdefault(self.pairs_child, {}), self.groups[self.pairs_child]
        while i < len(words):
            word = words[i]
            if word in self.groups and self.pairs_child is None:
                current, checks, i = groups.setdefault(word, {}), self.groups[word], i + 1
                continue
            if word not in checks:
                known = [*checks, *([] if self.pairs_child else self.groups)]
                raise SettingError(f"`{word}` is not a setting of `{tag}` here", i,
                                   "known: " + ", ".join(f"`{k}`" for k in known))
            if word in current:
                raise SettingError(f"`{tag} {word}` is given twice", i, "keep one of the two")
            if i + 1 >= len(words):
                raise SettingError(f"`{tag} {word}` needs a value", i, f"write `{word} VALUE`")
            problem = checks[word](words[i + 1])
            if problem:
                raise SettingError(f"`{words[i + 1]}` is not a valid `{tag} {word}`", i + 1, problem)
            current[word] = words[i + 1]
            i += 2
        if not root and not any(groups.values()):
            raise SettingError(f"`{tag}` states nothing", 0, "give at least one setting")
        order = [*self.attrs]
        children = tuple(Elem(g, tuple((k, groups[g][k]) for k in self.groups[g] if k in groups[g]))
                         for g in self.groups if groups.get(g))
        return Elem(tag, tuple((k, root[k]) for k in order if k in root), children)

    def words(self, elem: Elem) -> list[str] | None:
        """The words that give back exactly `elem`, or None if it holds more than this shape says."""
        if elem.text is not None or set(dict(elem.attrs)) - set(self.attrs):
            return None
        out: list[str] = []
        attrs = dict(elem.attrs)
        if self.lead is not None:
            if self.lead not in attrs:
                return None
            out.append(attrs.pop(self.lead))
        for k, v in attrs.items():
            if self.attrs[k](v):
                return None
            out += [k, v]
        seen = set()
        for child in elem.children:
            checks = self.groups.get(child.tag)
            if checks is None or child.tag in seen or child.children or child.text is not None or not child.attrs:
                return None
            seen.add(child.tag)
            if self.pairs_child is None:
                out.append(child.tag)
            for k, v in child.attrs:
                if k not in checks or checks[k](v):
                    return None
                out += [k, v]
        parsed = self.parse(elem.tag, out) if out else None
        return out if parsed == _canonical(self, elem) else None


def _canonical(shape: Attrs, elem: Elem) -> Elem:
    """`elem` with its attributes and children in the shape's order (what `parse` builds)."""
    order = list(shape.attrs)
    attrs = tuple(sorted(elem.attrs, key=lambda kv: order.index(kv[0])))
    groups = list(shape.groups)
    children = []
    for child in sorted(elem.children, key=lambda c: groups.index(c.tag)):
        corder = list(shape.groups[child.tag])
        children.append(child._replace(attrs=tuple(sorted(child.attrs, key=lambda kv: corder.index(kv[0])))))
    return elem._replace(attrs=attrs, children=tuple(children))


def _exact(shape, tag: str, words: list[str], elem: Elem) -> list[str] | None:
    """`words` if they parse back to exactly `elem` (so import can write them), else None (pass-through)."""
    try:
        return words if shape.parse(tag, words) == elem else None
    except SettingError:
        return None


@dataclass(frozen=True)
class Vlan:
    """`vlan TAG… [native tagged|untagged after a tag] [trunk]` -> <vlan [trunk='yes']><tag id/>…</vlan>."""

    def parse(self, tag: str, words: list[str]) -> Elem:
        tags: list[list[tuple[str, str]]] = []
        trunk, i = False, 0
        while i < len(words):
            word = words[i]
            if word == "trunk" and not trunk:
                trunk, i = True, i + 1
            elif word == "native" and tags and len(tags[-1]) == 1 and i + 1 < len(words):
                if words[i + 1] not in ("tagged", "untagged"):
                    raise SettingError(f"`{words[i + 1]}` is not a native mode", i + 1, "use `tagged` or `untagged`")
                tags[-1].append(("nativeMode", words[i + 1]))
                i += 2
            elif word.isdigit() and int(word) <= 4095:
                if any(t[0][1] == word for t in tags):
                    raise SettingError(f"VLAN tag {word} is given twice", i, "list each tag once")
                tags.append([("id", word)])
                i += 1
            else:
                raise SettingError(f"`{word}` is not a VLAN tag", i,
                                   "write tags from 0 to 4095, each optionally followed by `native tagged|untagged`, "
                                   "and `trunk` for a trunk port")
        if not tags:
            raise SettingError("`vlan` names no tag", 0, "write e.g. `vlan 42`")
        if len(tags) > 1 and not trunk:
            # libvirt: "vlan: 'trunk' must be set... when more than one tag" (virNetDevVlanParse)
            raise SettingError("several VLAN tags make a trunk", 0, "add `trunk`, as libvirt requires for several tags")
        return Elem("vlan", (("trunk", "yes"),) if trunk else (), tuple(Elem("tag", tuple(t)) for t in tags))

    def words(self, elem: Elem) -> list[str] | None:
        out: list[str] = []
        for child in elem.children:
            if child.tag != "tag" or child.children or set(dict(child.attrs)) - {"id", "nativeMode"}:
                return None
            out.append(child.get("id") or "")
            if child.get("nativeMode"):
                out += ["native", child.get("nativeMode") or ""]
        if elem.get("trunk") == "yes":
            out.append("trunk")
        return _exact(self, "vlan", out, elem)


@dataclass(frozen=True)
class Text:
    """`tune sndbuf N` -> <tune><sndbuf>N</sndbuf></tune>: child elements holding text."""

    children: dict[str, Check]

    def parse(self, tag: str, words: list[str]) -> Elem:
        shape = Attrs(self.children)
        flat = shape.parse(tag, words)
        return Elem(tag, (), tuple(Elem(k, (), (), v) for k, v in flat.attrs))

    def words(self, elem: Elem) -> list[str] | None:
        out = []
        for child in elem.children:
            if child.tag not in self.children or child.attrs or child.children or child.text is None:
                return None
            out += [child.tag, child.text]
        try:
            return out if out and self.parse(elem.tag, out) == elem else None
        except SettingError:
            return None


@dataclass(frozen=True)
class Params:
    """`filterref NAME [PARAM VALUE]…` -> <filterref filter='NAME'><parameter name value/>…</filterref>."""

    lead: str
    lead_check: Check
    child: str

    def parse(self, tag: str, words: list[str]) -> Elem:
        if not words:
            raise SettingError(f"`{tag}` needs a name", 0, f"write `{tag} NAME [PARAMETER VALUE]…`")
        if problem := self.lead_check(words[0]):
            raise SettingError(f"`{words[0]}` is not a valid {tag} name", 0, problem)
        if len(words) % 2 == 0:
            raise SettingError(f"parameter `{words[-1]}` of `{tag}` has no value", len(words) - 1,
                               "write each parameter as NAME VALUE")
        children = []
        for i in range(1, len(words), 2):
            if not re.match(r"[a-zA-Z0-9_]+\Z", words[i]):
                raise SettingError(f"`{words[i]}` is not a filter parameter name", i, "letters, digits and `_`")
            children.append(Elem(self.child, (("name", words[i]), ("value", words[i + 1]))))
        return Elem(tag, ((self.lead, words[0]),), tuple(children))

    def words(self, elem: Elem) -> list[str] | None:
        out = [elem.get(self.lead) or ""]
        for child in elem.children:
            out += [child.get("name") or "", child.get("value") or ""]
        return _exact(self, elem.tag, out, elem)


@dataclass(frozen=True)
class RootAttr:
    """`trustGuestRxFilters yes` -> an attribute of <interface> itself."""

    check: Check

    def parse(self, tag: str, words: list[str]) -> Elem:
        if len(words) != 1 or (problem := self.check(words[0])):
            raise SettingError(f"`{tag}` takes one value", min(len(words), 1) if len(words) > 1 else 0,
                               problem if len(words) == 1 and problem else "write `yes` or `no`")
        return Elem("@" + tag, (("value", words[0]),))

    def words(self, elem: Elem) -> list[str] | None:
        v = elem.get("value") or ""
        return None if self.check(v) else [v]


@dataclass(frozen=True)
class Coalesce:
    """`coalesce rx-frames N` -> <coalesce><rx><frames max='N'/></rx></coalesce>."""

    def parse(self, tag: str, words: list[str]) -> Elem:
        if len(words) != 2 or words[0] != "rx-frames" or uint(0, 2**32 - 1)(words[1]):
            raise SettingError("`coalesce` takes `rx-frames N`", 0, "write e.g. `coalesce rx-frames 7`")
        return Elem("coalesce", (), (Elem("rx", (), (Elem("frames", (("max", words[1]),)),)),))

    def words(self, elem: Elem) -> list[str] | None:
        rx = elem.child("rx")
        frames = rx.child("frames") if rx is not None else None
        out = ["rx-frames", frames.get("max") or ""] if frames is not None else []
        return _exact(self, "coalesce", out, elem)


@dataclass(frozen=True)
class PassThrough:
    """`libvirt "<coalesce>…</coalesce>"`: an element of <interface> teamc keeps verbatim."""

    def parse(self, tag: str, words: list[str]) -> Elem:
        if len(words) != 1:
            raise SettingError("`libvirt` takes one quoted XML element", 0, "write `libvirt \"<element …/>\"`")
        try:
            element = ET.fromstring(words[0])
        except ET.ParseError as e:
            raise SettingError(f"the pass-through is not well-formed XML: {e}", 0,
                               "write one element, quoted, e.g. `libvirt \"<coalesce>…</coalesce>\"`") from None
        if element.tag not in ORDER or element.tag in OWNED:
            where = "teamc writes it itself" if element.tag in OWNED else "libvirt has no such child of <interface>"
            raise SettingError(f"`<{element.tag}>` cannot be passed through: {where}", 0,
                               "pass through one of: " + ", ".join(t for t in ORDER if t not in OWNED))
        return from_et(element)

    def words(self, elem: Elem) -> list[str] | None:
        return [to_xml(elem).replace("\n", " ")]


# --- domain.rng's shape of the children of <interface> no row models --------------------------------

def _ip(v: str) -> str | None:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return "an IPv4 or IPv6 address"
    return None


_DEVICE_NAME = re.compile(r"[a-zA-Z0-9_.\-\\:/]+\Z")  # domain.rng's deviceName


def _device_name(v: str) -> str | None:
    return None if _DEVICE_NAME.match(v) else "letters, digits and `_ . - \\ : /` (domain.rng's deviceName)"


def _one_line(v: str) -> str | None:
    return None if v and "\n" not in v else "one non-empty line"


@dataclass(frozen=True)
class Schema:
    """An element as domain.rng has it: its attributes (each with its check), those it must have, and its child
    elements (several of one tag allowed); no text. `tests/test_nicsettings.py` holds each against domain.rng."""

    attrs: dict[str, Check]
    required: frozenset[str] = frozenset()
    children: dict[str, Schema] = field(default_factory=dict)

    def problem(self, elem: Elem) -> tuple[str, str] | None:
        """What domain.rng refuses in `elem`: (message, help), or None."""
        where = f"<{elem.tag}>"
        if elem.text is not None:
            return f"{where} holds no text", "write it empty, with attributes only"
        attrs = dict(elem.attrs)
        for name, value in elem.attrs:
            if name not in self.attrs:
                return (f"{where} has no attribute `{name}` in libvirt's schema",
                        "its attributes: " + ", ".join(f"`{a}`" for a in self.attrs))
            if problem := self.attrs[name](value):
                return f"`{value}` is not a valid `{name}` of {where}", problem
        if missing := sorted(self.required - set(attrs)):
            return f"{where} needs `{missing[0]}`", "libvirt's schema requires " + ", ".join(f"`{m}`" for m in missing)
        for child in elem.children:
            schema = self.children.get(child.tag)
            if schema is None:
                return (f"<{child.tag}> cannot go inside {where}", "libvirt's schema allows " + (
                    ", ".join(f"<{c}>" for c in self.children) if self.children else "no child element there"))
            if nested := schema.problem(child):
                return nested
        return None


_IP_FAMILY = choice("ipv4", "ipv6")


def _port(v: str) -> str | None:
    return None if re.fullmatch(r"-?[0-9]+", v) and -1 <= int(v) <= 65535 else "a port from -1 to 65535"


SCHEMAS: dict[str, Schema] = {
    "guest": Schema({"dev": _device_name, "actual": _device_name}),
    "ip": Schema({"address": _ip, "family": _IP_FAMILY, "prefix": uint(0, 128), "peer": _ip}, frozenset({"address"})),
    "route": Schema({"family": _IP_FAMILY, "address": _ip, "netmask": _ip, "prefix": uint(0, 128), "gateway": _ip,
                     "metric": uint(0, 2**32 - 1)}, frozenset({"address", "gateway"})),
    "portForward": Schema({"proto": choice("tcp", "udp"), "address": _ip, "dev": _device_name}, frozenset({"proto"}),
                          {"range": Schema({"start": _port, "end": _port, "to": _port, "exclude": YES_NO},
                                           frozenset({"start"}))}),
    "script": Schema({"path": _one_line}, frozenset({"path"})),
    "downscript": Schema({"path": _one_line}, frozenset({"path"})),
    "backenddomain": Schema({"name": _one_line}, frozenset({"name"})),
}
REPEATABLE = frozenset({"ip", "route", "portForward"})  # domain.rng: zeroOrMore; a pass-through each


Shape = Attrs | Vlan | Text | Params | RootAttr | Coalesce | PassThrough


# --- the table ----------------------------------------------------------------------------------

Refusal = tuple[str, str]  # message, help (libvirt's own words in the help)


@dataclass(frozen=True)
class Context:
    """What a `refuse` rule may look at: the NIC's source kind, macvtap mode and other settings."""

    kind: str
    role: str | None
    mode: str | None
    settings: dict[str, Elem]


@dataclass(frozen=True)
class Row:
    keyword: str  # the `.team` statement
    tag: str  # the element of <interface> (an `@name` for an attribute of <interface>)
    shape: Shape
    kinds: frozenset[str]  # the source kinds libvirt accepts it on
    qemu: str  # what QEMU gets, for the README ("libvirt only" when it stays in the XML)
    example: str  # a `.team` example, for the README and the explanations
    refuse: Callable[[Elem, Context], Refusal | None] = lambda elem, ctx: None

    def parse(self, words: list[str]) -> Elem:
        return self.shape.parse(self.tag.lstrip("@"), words)

    def words(self, elem: Elem) -> list[str] | None:
        return self.shape.words(elem)

    def xml_form(self) -> str:
        if self.tag.startswith("@"):
            return f"`{self.tag[1:]}=` on `<interface>`"
        if self.tag == "*":
            return "any child of `<interface>` teamc does not write itself, verbatim"
        return f"`<{self.tag}>`"


def _vlan_refuse(elem: Elem, ctx: Context) -> Refusal | None:
    # libvirt, domain_validate.c virDomainActualNetDefValidate: "vlan tag not supported for this connection type"
    # unless hostdev, macvtap passthrough, or a bridge with an openvswitch virtualport.
    vport = ctx.settings.get("virtualport")
    if ctx.kind in ("hostdev", "network"):
        return None
    if ctx.kind == "direct" and ctx.mode == "passthrough":
        return None
    if ctx.kind == "bridge" and vport is not None and vport.get("type") == "openvswitch":
        return None
    return ("libvirt cannot set a VLAN tag on this NIC",
            ("libvirt: 'vlan tag not supported for this connection type'; a VLAN needs a VF (hostdev), macvtap "
            "`mode passthrough`, or a bridge with `virtualport openvswitch`"))


# libvirt 9.0 takes (and ignores) an openvswitch or 802.1Qbg virtualport on a VF too (the oracle: the argv of
# tests/oracle/nic-vf-accepted.xml).
_VPORT_TYPES = {"bridge": ("openvswitch", "midonet"), "direct": ("802.1Qbg", "802.1Qbh"),
                "hostdev": ("openvswitch", "802.1Qbg", "802.1Qbh"),
                "network": ("openvswitch", "midonet", "802.1Qbg", "802.1Qbh")}
# What libvirt's parser requires of each type (virNetDevVPortProfileParse: "missing profileid in <virtualport
# type='802.1Qbh'>", tests/oracle/nic-qbh-no-profileid.args); on a `network` source the network's own
# virtualport may supply the rest, so there it checks nothing.
_VPORT_REQUIRED = {"802.1Qbg": ("managerid", "typeid", "typeidversion"), "802.1Qbh": ("profileid",),
                   "midonet": ("interfaceid",)}


def _vport_refuse(elem: Elem, ctx: Context) -> Refusal | None:
    allowed = _VPORT_TYPES.get(ctx.kind, ())
    vtype = elem.get("type") or ""
    if vtype not in allowed:
        return (f"a virtualport of type `{vtype}` does not fit a `{ctx.kind}` source",
                "libvirt applies " + " or ".join(f"`{t}`" for t in allowed) + f" to a `{ctx.kind}` NIC")
    params = elem.child("parameters")
    missing = [p for p in _VPORT_REQUIRED.get(vtype, ()) if params is None or params.get(p) is None]
    if missing and ctx.kind != "network":
        return (f"a `{vtype}` virtualport needs its `{missing[0]}`",
                f"libvirt: 'missing {missing[0]} in <virtualport type='{vtype}'>'; add " +
                " ".join(f"`{p} VALUE`" for p in missing))
    return None


def _port_refuse(elem: Elem, ctx: Context) -> Refusal | None:
    if elem.get("isolated") == "yes" and (ctx.kind not in _TAP_KINDS or ctx.role == "transient"):
        return ("`port isolated yes` needs a bridge or network tap",
                f"libvirt: '<port isolated='yes'/> is not supported for network interfaces with type='{ctx.kind}''")
    if elem.get("isolated") == "yes" and "virtualport" in ctx.settings:
        return ("`port isolated yes` cannot go with a virtualport",
                "libvirt: '<port isolated='yes'/> is not supported for network interfaces with virtualport type'")
    return None


def _filter_refuse(elem: Elem, ctx: Context) -> Refusal | None:
    # libvirt checks this on the tap-backed types only; a VF takes both (and applies neither filter nor port).
    if "virtualport" in ctx.settings and ctx.kind != "hostdev":
        return ("a filterref cannot go with a virtualport",
                "libvirt: 'filterref is not supported for network interfaces with virtualport type'")
    return None


def _driver_refuse(elem: Elem, ctx: Context) -> Refusal | None:
    if ctx.kind == "hostdev":
        # A VF's <driver> is the hostdev's (name vfio); libvirt 9.0 takes the virtio-net attributes there and
        # ignores them, except the virtio device options, which it refuses (tests/oracle/nic-vf-iommu.args).
        if elem.get("name") not in (None, "vfio"):
            return (f"`{elem.get('name')}` is not a VF driver",
                    "libvirt: 'Invalid value for attribute 'name' in element 'driver''; a VF's driver is `name vfio`")
        virtio = next((a for a in ("iommu", "ats", "packed", "page_per_vq") if elem.get(a) is not None), None)
        if virtio is not None:
            return (f"`driver {virtio}` is a virtio device option",
                    f"libvirt: '{virtio} driver option is only supported for virtio devices'; set it on the virtio NIC")
        return None
    if elem.get("name") not in (None, "qemu", "vhost"):
        return (f"`{elem.get('name')}` is not a virtio-net driver", "use `name vhost` or `name qemu`")
    if elem.get("queues") and ctx.kind == "user":
        return ("a user-mode NIC has one queue",
                "libvirt: 'multiqueue is not supported for network interfaces of type user'")
    return None


def _backend_refuse(elem: Elem, ctx: Context) -> Refusal | None:
    if elem.get("tap") and (ctx.kind not in _TAP_KINDS | {"ethernet"} or ctx.role == "transient"):
        return ("a custom tap device needs a bridge, network or ethernet source",
                f"libvirt: 'custom tap device path is not supported for network interfaces of type {ctx.kind}'")
    return None


def _target_refuse(elem: Elem, ctx: Context) -> Refusal | None:
    if elem.get("managed") == "no" and ctx.kind != "ethernet":
        return ("an unmanaged target device needs an `ethernet` source",
                f"libvirt: 'unmanaged target dev is not supported on interfaces of type '{ctx.kind}''")
    return None


_OFFLOADS_HOST = {k: ON_OFF for k in ("csum", "gso", "tso4", "tso6", "ecn", "ufo", "mrg_rxbuf")}
_OFFLOADS_GUEST = {k: ON_OFF for k in ("csum", "tso4", "tso6", "ecn", "ufo")}
_DRIVER = Attrs(
    {"name": choice("qemu", "vhost", "vfio"), "txmode": choice("iothread", "timer"), "ioeventfd": ON_OFF,
     "event_idx": ON_OFF, "queues": uint(1, 256), "rx_queue_size": queue_size, "tx_queue_size": queue_size,
     "rss": ON_OFF, "rss_hash_report": ON_OFF, "iommu": ON_OFF, "ats": ON_OFF, "packed": ON_OFF,
     "page_per_vq": ON_OFF},
    {"host": _OFFLOADS_HOST, "guest": _OFFLOADS_GUEST})
_BPS = uint(0, 2**32 - 1)
_VPORT_PARAMS = {"interfaceid": name, "profileid": name, "managerid": uint(0, 255), "typeid": uint(0, 2**24 - 1),
                 "typeidversion": uint(0, 255), "instanceid": name}

ROWS: tuple[Row, ...] = (
    Row("vlan", "vlan", Vlan(), frozenset({"bridge", "network", "direct", "hostdev"}),
        "libvirt only (the host programs the VF through its PF, or the OVS port)",
        "vlan 10 native untagged 20 trunk", _vlan_refuse),
    Row("virtualport", "virtualport",
        Attrs({"type": choice("openvswitch", "midonet", "802.1Qbg", "802.1Qbh")}, {"parameters": _VPORT_PARAMS},
              lead="type", pairs_child="parameters"),
        frozenset({"bridge", "network", "direct", "hostdev"}), "libvirt only",
        "virtualport openvswitch interfaceid 09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f", _vport_refuse),
    Row("bandwidth", "bandwidth",
        Attrs({}, {d: {"average": _BPS, "peak": _BPS, "burst": uint(0, 2**32 - 1), "floor": _BPS}
                   for d in ("inbound", "outbound")}),
        PERSISTENT_KINDS, "libvirt only (tc on the host)",
        "bandwidth inbound average 1000 peak 5000 outbound average 128"),
    Row("port", "port", Attrs({"isolated": YES_NO}), _ALL, "libvirt only",
        "port isolated yes", _port_refuse),
    Row("target", "target", Attrs({"dev": name, "managed": YES_NO}, lead="dev"), _ALL,
        "libvirt only (the name of the host's tap or macvtap device)", "target vnet-db7", _target_refuse),
    Row("driver", "driver", _DRIVER, PERSISTENT_KINDS | {"hostdev"},
        "virtio-net-pci properties (queues: mq, vectors; rx/tx_queue_size; txmode: tx; ioeventfd; event_idx; "
        "rss; rss_hash_report: hash; iommu: iommu_platform; ats; packed; page_per_vq; offloads); `name`, "
        "`queues` on the netdev: libvirt only",
        "driver name vhost queues 4 rx_queue_size 1024", _driver_refuse),
    Row("backend", "backend", Attrs({"tap": path, "vhost": path}), _ALL, "libvirt only",
        "backend tap /dev/net/tun vhost /dev/vhost-net", _backend_refuse),
    Row("filterref", "filterref", Params("filter", name, "parameter"), _ALL, "libvirt only (nwfilter)",
        "filterref clean-traffic IP 10.0.0.1", _filter_refuse),
    Row("tune", "tune", Text({"sndbuf": uint(0, 2**63 - 1)}), _ALL,
        "libvirt only (the tap's send buffer)", "tune sndbuf 1600"),
    Row("link", "link", Attrs({"state": choice("up", "down")}, lead="state"), _ALL,
        "libvirt only (set over QMP at start)", "link up"),
    Row("coalesce", "coalesce", Coalesce(), _TAP_KINDS, "libvirt only", "coalesce rx-frames 7"),
    Row("acpi", "acpi", Attrs({"index": uint(1, 16383)}, lead="index"), PERSISTENT_KINDS | {"hostdev"},
        "acpi-index", "acpi 3"),
    Row("trust-guest-rx-filters", "@trustGuestRxFilters", RootAttr(YES_NO), PERSISTENT_KINDS | VF_KINDS,
        "libvirt only", "trust-guest-rx-filters yes"),
    Row("libvirt", "*", PassThrough(), PERSISTENT_KINDS | VF_KINDS, "as libvirt applies it",
        "libvirt \"<guest dev='eth1'/>\""),
)
BY_KEYWORD: dict[str, Row] = {row.keyword: row for row in ROWS}
BY_TAG: dict[str, Row] = {row.tag: row for row in ROWS if row.tag != "*"}
PASS_THROUGH = BY_KEYWORD["libvirt"]


# What libvirt refuses on the VF side (an <interface type='hostdev'>, or a hostdev-pool network as the transient),
# in its own words. It takes every other row there, most of them to ignore (queues, link, tune, filterref, …;
# the oracle: tests/oracle/nic-vf-accepted.args); the rows' `refuse` rules say what else it refuses.
VF_REFUSED = {"bandwidth": "bandwidth settings are not supported for hostdev interfaces",
              "coalesce": "coalesce settings on interface type hostdev are not supported"}


def refusal(row: Row, elem: Elem, ctx: Context) -> Refusal | None:
    """Why libvirt refuses this setting on this NIC, or None."""
    if ctx.kind == "pci-hostdev":
        return (f"a plain PCI <hostdev> takes no `{row.keyword}`",
                ("libvirt's NIC settings belong to an <interface>: write the VF as `source hostdev ADDR` "
                "(<interface type='hostdev'>) to give it a VLAN, virtualport or driver"))
    if (ctx.kind == "hostdev" or ctx.role == "transient") and elem.tag in VF_REFUSED:
        return (f"libvirt refuses `<{elem.tag}>` on the VF",
                f"libvirt: '{VF_REFUSED[elem.tag]}'; state it on the virtio NIC")
    if ctx.kind not in row.kinds:
        article = "an" if ctx.kind[0] in "aeiou" else "a"
        return (f"libvirt refuses `{row.keyword}` on {article} `{ctx.kind}` NIC",
                f"`{row.keyword}` is for " + ", ".join(f"`{k}`" for k in sorted(row.kinds)) + " sources")
    return row.refuse(elem, ctx)


def value_problem(elem: Elem) -> tuple[str, str] | None:
    """What a passed-through element may not be (it is kept verbatim, but not past libvirt's and QEMU's rules):
    an element no row models in a shape domain.rng refuses (`SCHEMAS`); an element its row gives back exactly
    (one form per setting, the statement, as `import` writes it); a value its row's checks refuse.
    (message, help), or None."""
    if elem.tag in SCHEMAS:
        return SCHEMAS[elem.tag].problem(elem)
    row = BY_TAG.get(elem.tag)
    if row is not None and (words := row.words(elem)) is not None:
        return (f"`<{elem.tag}>` has its own statement",
                f"write `{row.keyword} {' '.join(words)}`: `libvirt \"…\"` is for what no statement says")
    shape = row.shape if row is not None else None
    if not isinstance(shape, Attrs):
        return None
    found = [(elem.tag, shape.attrs, elem.attrs)]
    found += [(f"{elem.tag} {c.tag}", shape.groups[c.tag], c.attrs) for c in elem.children if c.tag in shape.groups]
    for where, checks, attrs in found:
        for name, value in attrs:
            problem = checks[name](value) if name in checks else None
            if problem:
                return f"`{value}` is not a valid `{where} {name}`", problem
    return None


def row_for(elem: Elem) -> Row:
    return BY_TAG.get(elem.tag, PASS_THROUGH)


def statement(elem: Elem) -> tuple[str, list[str]]:
    """The `.team` statement that gives back `elem` exactly: a row's words, or the pass-through."""
    row = BY_TAG.get(elem.tag)
    words = row.words(elem) if row is not None else None
    if row is not None and words is not None:
        return row.keyword, words
    return "libvirt", PASS_THROUGH.words(elem) or []


# --- QEMU -----------------------------------------------------------------------------------------

# libvirt 9.0's virtio-net-pci properties for the driver settings, in the order its generator gives them
# (qemu_command.c qemuBuildNicDevProps, checked against the oracle: tests/golden/oracle/).
_VIRTIO_OPTS = (("iommu", "iommu_platform"), ("ats", "ats"), ("packed", "packed"), ("page_per_vq", "page-per-vq"))
_TXMODE = {"iothread": "bh", "timer": "timer"}
_HOST_PROPS = {"csum": "csum", "gso": "gso", "tso4": "host_tso4", "tso6": "host_tso6", "ecn": "host_ecn",
               "ufo": "host_ufo", "mrg_rxbuf": "mrg_rxbuf"}
_GUEST_PROPS = {"csum": "guest_csum", "tso4": "guest_tso4", "tso6": "guest_tso6", "ecn": "guest_ecn",
                "ufo": "guest_ufo"}


def device_props(settings: tuple[Elem, ...]) -> tuple[dict, dict]:
    """virtio-net-pci's properties from the settings: (those before `host_mtu`/`failover`, those after `addr`)."""
    head: dict = {}
    driver = next((e for e in settings if e.tag == "driver"), None)
    if driver is not None:
        on = {k: v == "on" for k, v in driver.attrs}
        for attr, prop in _VIRTIO_OPTS:
            if attr in on:
                head[prop] = on[attr]
        if driver.get("txmode"):
            head["tx"] = _TXMODE[driver.get("txmode") or ""]
        for attr in ("ioeventfd", "event_idx"):
            if attr in on:
                head[attr] = on[attr]
        for group, props in (("host", _HOST_PROPS), ("guest", _GUEST_PROPS)):
            child = driver.child(group)
            head |= {props[k]: v == "on" for k, v in (child.attrs if child is not None else ())}
        queues = int(driver.get("queues") or 1)
        if queues > 1:
            head |= {"mq": True, "vectors": 2 * queues + 2}
        for attr in ("rx_queue_size", "tx_queue_size"):
            if driver.get(attr):
                head[attr] = int(driver.get(attr) or 0)
        if "rss" in on:
            head["rss"] = on["rss"]
        if "rss_hash_report" in on:
            head["hash"] = on["rss_hash_report"]
    acpi = next((e for e in settings if e.tag == "acpi"), None)
    return head, ({"acpi-index": int(acpi.get("index") or 0)} if acpi is not None else {})


def libvirt_only(settings: tuple[Elem, ...], vf: bool = False) -> list[tuple[list[str], str]]:
    """The stated settings a plain QEMU command line cannot apply (they stay in the XML): everything but the
    driver's device properties and the ACPI index; of the driver, `name` (vhost) and `queues` on the netdev, and
    on a VF (`vf`, vfio-pci has no virtio-net properties) all of it.
    Each as (its names, for W0509; its `.team` statement with the values, for the `.sh`'s comment)."""
    out = []
    for elem in settings:
        if elem.tag == "driver" and vf:
            out.append((["driver"], " ".join(["driver", *(BY_TAG["driver"].words(elem) or [])])))
        elif elem.tag == "driver":
            kept = tuple((k, v) for k, v in elem.attrs if k in ("name", "queues"))
            if kept:
                words = BY_TAG["driver"].words(Elem("driver", kept)) or []
                out.append(([f"driver {k}" for k, _ in kept], " ".join(["driver", *words])))
        elif elem.tag != "acpi":
            keyword, words = statement(elem)
            row = BY_TAG.get(elem.tag)
            out.append(([row.keyword if row is not None else f"<{elem.tag}>"], " ".join([keyword, *words])))
    return out


def readme_table() -> str:
    """The README's settings table, one line per row."""
    lines = ["| statement | libvirt XML | NICs | QEMU |", "|---|---|---|---|"]
    for row in ROWS:
        lines.append(f"| `{row.example}` | {row.xml_form()} | {', '.join(sorted(row.kinds))} | {row.qemu} |")
    return "\n".join(lines)
