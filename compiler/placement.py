"""PCI placement rules: which guest slots exist, which are reserved, and how pcie-root-ports are numbered.

Used by the layout phase (layout.py: a whole VM of its own, or for a merge its NICs around the devices
a base domain already has, `Occupied`) and by the capacity and placement checks (checks.py). Input: the
machine family and the slots and buses already taken; output: free slots, root ports, room.

  q35  pcie.0 has slots 0x00-0x1f; 0x00 (host bridge) and 0x1f (ICH9 LPC, SATA, SMBus) are taken.
       Root ports go on free slots of pcie.0 from the lowest, eight functions a slot, as libvirt puts
       them (port = slot*8 + function, chassis = index); function 0 of a slot with more ports is
       multifunction. Bus numbers go up to 0xff.
  pc   pci.0 has slots 0x00-0x1f; 0x00 (host bridge) and 0x01 (PIIX3) are taken; NICs from slot 2 up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MAX_SLOT = 0x1F
MAX_BUS = 0xFF
FUNCTIONS = 8

RESERVED_SLOTS = {
    "q35": {0x00: "the host bridge", 0x1F: "the ICH9 LPC, SATA and SMBus functions"},
    "pc": {0x00: "the host bridge", 0x01: "the PIIX3 ISA, IDE and USB functions"},
}
FIRST_NIC_SLOT = {"q35": 1, "pc": 2}  # where libvirt starts placing devices on the root bus
VIDEO_SLOT = {"q35": 0x01, "pc": 0x02}  # where libvirt puts the primary video when the domain does not place it


@dataclass(frozen=True, slots=True)
class Occupied:
    """The guest PCI space that devices teamc does not lay out already hold: a base domain's, for a merge."""

    addresses: frozenset[tuple[int, int, int]]  # (bus, slot, function) of each device with an address
    controllers: frozenset[int]  # the indexes (bus numbers) of the PCI controllers
    free_ports: tuple[int, ...]  # the pcie-root-ports with no device on their bus, lowest first
    root_slots: frozenset[int]  # slots of the root bus that are taken (a video without an address included)


@dataclass(frozen=True, slots=True)
class RootPort:
    index: int  # the bus number it provides, and libvirt's controller index
    slot: int  # on pcie.0
    function: int
    multifunction: bool

    @property
    def id(self) -> str:
        return f"pci.{self.index}"

    @property
    def port(self) -> int:
        return self.slot * FUNCTIONS + self.function

    @property
    def chassis(self) -> int:
        return self.index


def occupied(family: str, addresses: Iterable[tuple[int, int, int]], controllers: Mapping[int, str | None],
             unplaced_video: bool) -> Occupied:
    """What a domain's devices hold: their (bus, slot, function) addresses, its PCI controllers (index ->
    model), and whether it has a video device libvirt will place (on its slot of the root bus)."""
    addresses = frozenset(addresses)
    busy_buses = {bus for bus, _, _ in addresses if bus}
    free_ports = tuple(sorted(i for i, model in controllers.items()
                              if model == "pcie-root-port" and i not in busy_buses and i))
    root_slots = {slot for bus, slot, _ in addresses if bus == 0} | ({VIDEO_SLOT[family]} if unplaced_video else set())
    return Occupied(addresses, frozenset(controllers), free_ports, frozenset(root_slots))


def free_slots(family: str, taken: set[int]) -> list[int]:
    """The root bus slots a device may take, lowest first."""
    return [s for s in range(MAX_SLOT + 1) if s not in taken and s not in RESERVED_SLOTS[family]]


def root_port_room(free: list[int]) -> int:
    """How many root ports fit on these free pcie.0 slots (and on the bus numbers there are)."""
    return min(MAX_BUS, FUNCTIONS * len(free))


def ports_fit(ports: list[RootPort], free: list[int]) -> bool:
    """Every port on a real slot of pcie.0 and a real bus number."""
    return len(ports) <= FUNCTIONS * len(free) and all(p.index <= MAX_BUS for p in ports)


def root_ports(indexes: list[int], free: list[int]) -> list[RootPort]:
    """Root ports for these bus indexes on these free slots, in order. Past the room (see
    `root_port_room`) the slots run on beyond pcie.0: the capacity check refuses such a layout."""
    slots = [*free, *range(max([MAX_SLOT, *free]) + 1, MAX_SLOT + 1 + len(indexes))]
    ports = [RootPort(index, slots[i // FUNCTIONS], i % FUNCTIONS, False) for i, index in enumerate(indexes)]
    per_slot = Counter(p.slot for p in ports)
    return [RootPort(p.index, p.slot, p.function, p.function == 0 and per_slot[p.slot] > 1) for p in ports]
