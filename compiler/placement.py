"""PCI placement rules: which guest slots exist, which are reserved, and how pcie-root-ports are numbered.

Used by the layout phase (layout.py, a whole VM of its own), by the merge phase (merge.py, around the
devices a base domain already has) and by the capacity and placement checks (checks.py). Input: the
machine family and the slots and buses already taken; output: free slots, root ports, room.

  q35  pcie.0 has slots 0x00-0x1f; 0x00 (host bridge) and 0x1f (ICH9 LPC, SATA, SMBus) are taken.
       Root ports go on free slots of pcie.0 from the lowest, eight functions a slot, as libvirt puts
       them (port = slot*8 + function, chassis = index); function 0 of a slot with more ports is
       multifunction. Bus numbers go up to 0xff.
  pc   pci.0 has slots 0x00-0x1f; 0x00 (host bridge) and 0x01 (PIIX3) are taken; NICs from slot 2 up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

MAX_SLOT = 0x1F
MAX_BUS = 0xFF
FUNCTIONS = 8

RESERVED_SLOTS = {
    "q35": {0x00: "the host bridge", 0x1F: "the ICH9 LPC, SATA and SMBus functions"},
    "pc": {0x00: "the host bridge", 0x01: "the PIIX3 ISA, IDE and USB functions"},
}
FIRST_NIC_SLOT = {"q35": 1, "pc": 2}  # where libvirt starts placing devices on the root bus


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
