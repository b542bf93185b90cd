"""What the guest says on its serial ports, parsed: kernel console lines, notes, interface reports, pings.

The guest (guest.py) writes the kernel console on ttyS0, a report of every
interface four times a second and its notes on ttyS1, and one line per ping
reply on ttyS2. QEMU writes each port to a file; `Guest.read()` takes the
lines appended since the last call and stamps them with the host's monotonic
time. Nothing here judges anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Iface:
    name: str
    mac: str
    kind: str  # failover (a net_failover master) | virtio | pci | other
    carrier: str
    tx: int
    rx: int
    lowers: tuple[str, ...]

    def line(self) -> str:
        role = f" slaves {','.join(self.lowers)}" if self.lowers else ""
        return f"{self.name} {self.mac} {self.kind} carrier={self.carrier} tx={self.tx} rx={self.rx}{role}"


@dataclass
class Tick:
    """One complete interface report."""

    n: int
    uptime: float
    at: float  # host monotonic time it was read
    origin: str  # the QEMU that ran the guest (its role)
    ifaces: dict[str, Iface]

    def master(self, mac: str) -> Iface | None:
        return next((i for i in self.ifaces.values() if i.kind == "failover" and i.mac == mac), None)

    def slave(self, master: Iface | None, kind: str) -> Iface | None:
        if master is None:  # no failover master, so no slave of it
            return None
        for name in master.lowers:
            iface = self.ifaces.get(name)
            if iface is not None and iface.kind == kind:
                return iface
        return None

    def enslaved(self) -> set[str]:
        return {name for i in self.ifaces.values() for name in i.lowers}


@dataclass(frozen=True)
class Reply:
    """One ping reply the guest received through a failover master."""

    master: str
    uptime: float  # the guest's clock, which stands still while the VM is paused
    seq: int
    at: float  # host monotonic time it was read


class Tail:
    """The complete lines appended to a file since the last read."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = b""

    def lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in complete]


@dataclass(frozen=True)
class Mark:
    """Where each stream of one guest stood at a moment: what came after it is new."""

    at: float
    console: int
    notes: int
    ticks: int
    replies: int
    events: int = 0  # QMP events already received (set by Qemu.mark)


START = Mark(0.0, 0, 0, 0, 0)  # everything a guest said counts


class Guest:
    """What one QEMU's guest said: kernel console lines, TEAMC notes, interface ticks and ping replies."""

    def __init__(self, origin: str, console: Path, report: Path, pings: Path):
        self.origin = origin
        self._console, self._report, self._pings = Tail(console), Tail(report), Tail(pings)
        self.console: list[tuple[float, str]] = []
        self.notes: list[tuple[float, str]] = []
        self.ticks: list[Tick] = []
        self.replies: list[Reply] = []
        self._current: Tick | None = None

    def read(self) -> None:
        # The report first: a kernel line printed before a report was written is then always read too.
        now = time.monotonic()
        for line in self._report.lines():
            self._feed(line, now)
        for line in self._pings.lines():
            words = line.split()
            if len(words) == 4 and words[0] == "P":
                try:
                    self.replies.append(Reply(words[1], float(words[2]), int(words[3]), now))
                except ValueError:
                    pass  # a garbled line
        self.console += [(now, line) for line in self._console.lines() if line.strip()]

    def _feed(self, line: str, now: float) -> None:
        words = line.split()
        if not words:
            return
        try:
            if words[0] == "TEAMC":
                self.notes.append((now, " ".join(words[1:])))
            elif words[0] == "T" and len(words) == 3:
                self._current = Tick(int(words[1]), float(words[2]), now, self.origin, {})
            elif words[0] == "I" and len(words) == 8 and self._current is not None:
                lowers = () if words[7] == "-" else tuple(words[7].split(","))
                self._current.ifaces[words[1]] = Iface(words[1], words[2], words[3], words[4], int(words[5]),
                                                       int(words[6]), lowers)
            elif words[0] == "E" and self._current is not None:
                if int(words[1]) == self._current.n:
                    self.ticks.append(self._current)
                self._current = None
        except ValueError:
            self._current = None  # a garbled line: drop this tick

    def mark(self) -> Mark:
        self.read()
        return Mark(time.monotonic(), len(self.console), len(self.notes), len(self.ticks), len(self.replies))

    def note(self, prefix: str, since: Mark | None = None) -> tuple[float, str] | None:
        notes = self.notes[since.notes:] if since else self.notes
        return next(((at, text) for at, text in notes if text.startswith(prefix)), None)

    def console_matching(self, *needles: str, since: Mark | None = None) -> list[str]:
        lines = self.console[since.console:] if since else self.console
        return [line for _, line in lines if any(n in line for n in needles)]
