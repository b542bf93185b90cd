"""Judgments over what QEMU and the guest said: is the bond whole, did the primary leave, which NIC
carried the pings, what did the ping stream lose. Pure functions of the parsed streams (serial.py,
QMP events); every verdict is (status, detail, evidence) or None while it cannot be decided yet."""

from __future__ import annotations

import json
from itertools import pairwise

from ..backends.qemu import QemuCommand
from .plan import TeamPlan
from .process import Qemu
from .qmp import QmpError
from .serial import Mark, Reply, Tick

SETTLE = 4.0  # seconds a decidable guest state must hold before it counts as final
LAG = 3.0  # seconds the kernel console may lag behind the guest's report of the same event
MIN_PACKETS = 3  # pings (tx and rx) a NIC must carry to count as carrying the traffic
GATEWAY = "10.0.2.2"  # slirp's host side: what the guest pings through each failover master

Verdict = tuple  # (status "ok" | "fail", detail, evidence)


def fmt_event(event) -> str:
    return "QMP " + json.dumps({"event": event.name, "data": event.data}, separators=(", ", ": "))


def device(command: QemuCommand, ident: str) -> dict | None:
    """The properties of the -device with this id."""
    flag = command.device(ident)
    return None if flag is None else dict(flag.props)


def standby_has_failover(command: QemuCommand, standby: str) -> bool:
    return (device(command, standby) or {}).get("failover") is True


def slot(command: QemuCommand, ident: str) -> tuple[str, int, int]:
    """(bus, slot, function) a -device of the command asks for."""
    props = device(command, ident)
    if props is None:
        return "", -1, 0
    number, _, function = str(props.get("addr", "0")).partition(".")
    return props.get("bus", ""), int(number, 16), int(function, 16) if function else 0


def expected_interfaces(command: QemuCommand, teams: int, unplugged: bool) -> int:
    """The guest's interfaces: one per NIC, plus a failover master per team, minus the primaries when
    they are unplugged."""
    nics = sum(1 for flag in command.devices() if "netdev" in flag.props)
    return nics + teams - (teams if unplugged else 0)


def memory_hint(command: QemuCommand) -> str:
    for flag in command.flags:
        size = str(flag.props.get("size", "")) if flag.name == "-m" else ""
        if size.endswith("k") and int(size[:-1]) // 1024 < 160:
            return f"; the VM's {int(size[:-1]) // 1024} MiB may be too little for the guest kernel"
    return ""


def peripherals(q: Qemu) -> set[str] | None:
    try:
        return {child["name"] for child in q.execute("qom-list", {"path": "/machine/peripheral"})}
    except QmpError:
        return None


class Presence:
    """Whether QEMU has a device, asked once per device (`qom-list`) unless forgotten."""

    def __init__(self, q: Qemu):
        self.q = q
        self.known: dict[str, bool] = {}

    def __call__(self, ident: str) -> bool | None:
        """None while QEMU does not answer."""
        if ident not in self.known:
            present = peripherals(self.q)
            if present is None:
                return None
            self.known[ident] = ident in present
        return self.known[ident]

    def forget(self, ident: str) -> None:
        self.known.pop(ident, None)


class Watch:
    """How long conditions have held, across the polls of one step."""

    def __init__(self):
        self.since: dict[str, float] = {}  # condition name -> host time first seen (continuously)

    def held(self, name: str, condition: bool, now: float) -> float:
        """How long `condition` has been true without interruption."""
        if not condition:
            self.since.pop(name, None)
            return 0.0
        return now - self.since.setdefault(name, now)


def primary_up(tick: Tick, t: TeamPlan) -> bool:
    master = tick.master(t.mac)
    primary = tick.slave(master, "pci") if master else None
    return primary is not None and primary.carrier == "1"


def whole(tick: Tick, t: TeamPlan) -> bool:
    """The team's failover master has both slaves."""
    master = tick.master(t.mac)
    return master is not None and bool(tick.slave(master, "virtio")) and bool(tick.slave(master, "pci"))


def primary_away(tick: Tick, t: TeamPlan) -> bool:
    master = tick.master(t.mac)
    return master is not None and tick.slave(master, "pci") is None


def traffic(ticks: list[Tick], t: TeamPlan, kind: str, when) -> Verdict | None:
    """ok once the slave of `kind` (pci: the primary, virtio: the standby) has carried MIN_PACKETS pings
    each way during the last unbroken run of ticks in which `when(tick)` holds; else None."""
    run: list[Tick] = []
    for tick in ticks:
        run = run + [tick] if when(tick) else []
    if len(run) < 2:
        return None
    first, last = run[0], run[-1]
    m0, m1 = first.master(t.mac), last.master(t.mac)
    a, b = first.slave(m0, kind), last.slave(m1, kind)
    if a is None or b is None or m1 is None or a.name != b.name:
        return None
    if b.tx - a.tx < MIN_PACKETS or b.rx - a.rx < MIN_PACKETS:
        return None
    other = "virtio" if kind == "pci" else "pci"
    o0, o1 = first.slave(m0, other), last.slave(m1, other)
    other_text = (f"; {o1.name} ({'standby' if other == 'virtio' else 'primary'}) tx +{o1.tx - o0.tx}"
                  if o0 and o1 and o0.name == o1.name else "")
    role = "primary" if kind == "pci" else "standby"
    detail = (f"ping {GATEWAY} through {m1.name}: {b.name} ({role}) tx +{b.tx - a.tx} rx +{b.rx - a.rx}"
              f"{other_text} over {last.uptime - first.uptime:.1f} s")
    return "ok", detail, [f"guest {first.origin} t={first.uptime:.2f}: {a.line()}",
                          f"guest {last.origin} t={last.uptime:.2f}: {b.line()}"]


def console_for(q: Qemu, ifaces, *words, since: Mark | None = None) -> list[str]:
    names = {i.name for i in ifaces}
    out = []
    for _, line in q.guest.console[since.console if since else 0:]:
        mentions = any(f" {n}:" in line or f":{n} " in line or line.endswith(f":{n}") or f"{n} registered" in line
                       for n in names)
        if mentions and (not words or any(w in line for w in words)):
            out.append(line.strip())
    return out[:12]


def bonded(q: Qemu, command: QemuCommand, t: TeamPlan, since: Mark, watch: Watch, now: float) -> Verdict | None:
    """Is the team whole in the guest (a failover master with the team's MAC, the virtio standby and the
    stand-in as its slaves)? Fails once the guest has settled on something else."""
    ticks = q.guest.ticks[since.ticks:]
    if not ticks:
        return None
    tick = ticks[-1]
    master = tick.master(t.mac)
    standby = tick.slave(master, "virtio") if master else None
    primary = tick.slave(master, "pci") if master else None
    if master and standby and primary:
        lines = console_for(q, [master, standby, primary], "failover", since=since)
        if not any("primary slave" in line for line in lines) and watch.held("console", True, now) < LAG:
            return None  # wait a moment for the kernel's own line
        return "ok", (f"master {master.name} {master.mac}: standby {standby.name} (virtio), primary {primary.name} "
                      f"(stand-in for {t.primary})"), lines + [f"guest: {master.line()}"]
    strays = [i for i in tick.ifaces.values()
              if i.kind == "pci" and i.mac == t.primary_mac and i.name not in tick.enslaved()]
    if watch.held("stray-primary", bool(strays) and master is not None, now) > SETTLE and master is not None:
        stray = strays[0]
        return "fail", (f"no bond: the guest did not enslave {stray.name} (stand-in for {t.primary}, MAC "
                        f"{stray.mac}) to failover master {master.name} (MAC {master.mac}); net_failover pairs "
                        "NICs by MAC"), (console_for(q, [master, stray], since=since)
                                         + [f"guest: {i.line()}" for i in (master, stray)])
    standins = [i for i in tick.ifaces.values() if i.kind == "pci" and i.mac == t.primary_mac]
    if watch.held("no-primary", master is not None and not standins, now) > 2 * SETTLE:
        present = peripherals(q)
        why = (f"QEMU has no {t.primary}: {plug_refusal(q)}" if present is not None and t.primary not in present
               else "QEMU has it, the guest did not probe it")
        return "fail", f"no bond: the guest has no NIC for {t.primary} (MAC {t.primary_mac}); {why}", [
            f"guest: {i.line()}" for i in tick.ifaces.values()] + q.warnings()[-3:]
    virtio = [i for i in tick.ifaces.values() if i.kind == "virtio" and i.mac == t.mac]
    if watch.held("no-master", master is None and bool(virtio), now) > SETTLE:
        why = ("the standby has no failover=on" if not standby_has_failover(command, t.standby)
               else "the guest's virtio_net did not accept VIRTIO_NET_F_STANDBY")
        return "fail", f"no bond: the guest has no failover master for {t.mac} ({why})", [
            f"guest: {i.line()}" for i in tick.ifaces.values()]
    return None


def plug_refusal(q: Qemu) -> str:
    """QEMU's reason for not plugging a device, from its stderr (without the follow-up line that names
    no cause)."""
    warnings = [w.split("warning: ", 1)[-1] for w in q.warnings()]
    causes = [w for w in warnings if not w.startswith("Virtio-net failover will not work")]
    return (causes or warnings or ["no reason given"])[-1]


def released(q: Qemu, t: TeamPlan, since: Mark, first: bool = False) -> Verdict | None:
    """Has the guest let the primary go (no NIC with its MAC besides the standby, and no primary slave
    under the failover master)? `first`: judge the first report of `q` only (a destination, whose guest
    starts where the source stopped)."""
    ticks = q.guest.ticks[:1] if first else q.guest.ticks[since.ticks:]
    gone = next((tk for tk in ticks if not any(i.kind == "pci" and i.mac == t.primary_mac
                                               for i in tk.ifaces.values())
                 and (tk.master(t.mac) is None or primary_away(tk, t))), None)
    if gone is None:
        return None
    master = gone.master(t.mac)
    if master is None:
        return "ok", f"the guest removed its NIC (it had no failover master for {t.mac})", [
            f"guest {gone.origin} t={gone.uptime:.2f}: {i.line()}" for i in gone.ifaces.values()]
    lines = [line.strip() for line in q.guest.console_matching(f" {master.name}: failover primary slave",
                                                                 since=None if first else since)
             if "unregistered" in line]
    return "ok", f"the guest released it: master {master.name} has only {','.join(master.lowers)} left", (
        lines[:2] + [f"guest {gone.origin} t={gone.uptime:.2f}: {master.line()}"])


def stream(replies: list[Reply], master: str) -> dict:
    """The ping replies through one master: how many, how many lost (gaps in the sequence numbers of one
    ping process; a new process starts again at 0) and the longest time between two replies, on the
    guest's clock."""
    mine = sorted((r for r in replies if r.master == master), key=lambda r: (r.at, r.uptime))
    lost, gap, at = 0, 0.0, None
    for previous, reply in pairwise(mine):
        if reply.seq <= previous.seq or reply.uptime < previous.uptime:
            continue  # a new ping process (the guest rebooted): no gap to measure across it
        lost += reply.seq - previous.seq - 1
        if reply.uptime - previous.uptime > gap:
            gap, at = reply.uptime - previous.uptime, previous.uptime
    return {"master": master, "replies": len(mine), "lost": lost, "longest_gap_s": round(gap, 2),
            "gap_from_s": at}


def iface_lines(tick: Tick | None, origin: str = "") -> list[str]:
    if tick is None:
        return [f"guest {origin}: no interface report".replace("  ", " ")]
    return [f"guest {tick.origin} t={tick.uptime:.2f}: {i.line()}" for i in tick.ifaces.values()]

