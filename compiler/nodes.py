"""AST of the .team language: slotted dataclasses, each with its span.

The nodes are read-only (a change is a `dataclasses.replace`) and hash by value, but are not `frozen`:
a frozen dataclass sets each field through `object.__setattr__`, which made parsing a 10,000-VM file
15% slower, and creating the classes at start-up three times as slow.

The parser (`parser.py`) builds these; lowering (`lower.py`) reads them. No Lark
type leaks past the parser. A block keeps its statements in source order, so
lowering can report duplicates and the formatter can keep the user's order.
"""

from __future__ import annotations

from dataclasses import dataclass

from .source import Span


@dataclass(slots=True, unsafe_hash=True)
class Value:
    """A word or quoted string; `text` is unquoted."""

    text: str
    span: Span
    quoted: bool = False


@dataclass(slots=True, unsafe_hash=True)
class Managed:
    enabled: bool
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class Source:
    """Where a NIC is connected. `kind`: user, bridge, network, direct, hostdev or pci-hostdev (the grammar's)."""

    kind: str
    span: Span
    target: Value | None = None  # bridge, network, host device or VF PCI address
    mode: Value | None = None  # direct: macvtap mode
    via_bridge: Value | None = None  # network: the host bridge to use in the QEMU argv
    via_vf: Value | None = None  # network (hostdev pool): the VF to use in the QEMU argv
    portgroup: Value | None = None  # network: the network's portgroup (`<source portgroup=…/>`), libvirt only
    managed: Managed | None = None  # hostdev / pci-hostdev


@dataclass(slots=True, unsafe_hash=True)
class Option:
    """A per-NIC option: address, boot, mtu, `rom bar|file|enabled`, managed."""

    key: str
    value: Value | None
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class NicSetting:
    """A statement of the NIC settings table (`compiler/nicsettings.py`): its keyword and its words."""

    key: str
    values: tuple[Value, ...]
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class Mac:
    value: Value
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class Model:
    value: Value
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class NicSource:
    source: Source
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class Teaming:
    role: str  # "persistent" | "transient"
    target: Value | None
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class Persistent:
    model: Value
    source: Source
    options: tuple[Option | NicSetting, ...]
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class Transient:
    source: Source
    options: tuple[Option | NicSetting, ...]
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class Team:
    name: Value
    items: tuple[Mac | Persistent | Transient, ...]
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class Nic:
    name: Value
    items: tuple[Mac | Model | NicSource | Teaming | Option | NicSetting, ...]
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class Setting:
    """A VM setting: uuid, machine, arch, vcpus, emulator, accel, memory, allow."""

    key: str
    value: Value
    unit: Value | None
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class Vm:
    name: Value
    items: tuple[Setting | Team | Nic, ...]
    span: Span


@dataclass(slots=True, unsafe_hash=True)
class Module:
    vms: tuple[Vm, ...]
    span: Span
