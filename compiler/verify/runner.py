"""Boot the verification argv, watch QMP and the guest, live-migrate, and judge each team.

One `Session` owns a work folder and every QEMU process it starts; leaving it
(normally, on an exception, on Ctrl-C or SIGTERM, which `run_guarded` turns into
KeyboardInterrupt) kills them all. Each QEMU also gets PR_SET_PDEATHSIG, so not
even a SIGKILL of teamc leaves one behind.

The guest (see guest.py) reports every interface four times a second on its
second serial port; the kernel console (first serial port) carries
net_failover's own lines. Every wait has a deadline.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .guest import GuestImage
from .plan import TeamPlan, VmPlan, decode
from .qmp import Qmp, QmpError

KERNEL_CMDLINE = "console=ttyS0 panic=-1 quiet"
SETTLE = 4.0  # seconds a decidable guest state must hold before it counts as final
POLL = 0.1
MIN_PACKETS = 3  # pings (tx and rx) a NIC must carry to count as carrying the traffic
GATEWAY = "10.0.2.2"

# --- checks and results ------------------------------------------------------------

BOOT_CHECKS = ("negotiated", "primary plugged", "bonded in guest", "traffic on primary")
MIGRATION_CHECKS = ("primary unplugged", "traffic on standby", "primary re-plugged", "traffic after migration")


@dataclass
class Check:
    name: str
    status: str = "pending"  # pending | ok | fail | skipped
    detail: str = ""
    evidence: list[str] = field(default_factory=list)

    def ok(self, detail: str, evidence=()) -> None:
        self.status, self.detail, self.evidence = "ok", detail, list(evidence)

    def fail(self, detail: str, evidence=()) -> None:
        self.status, self.detail, self.evidence = "fail", detail, list(evidence)

    def as_json(self) -> dict:
        return {"check": self.name, "status": self.status, "detail": self.detail, "evidence": self.evidence}


@dataclass
class TeamResult:
    team: TeamPlan
    checks: dict[str, Check]

    @property
    def proven(self) -> bool:
        return all(c.status == "ok" for c in self.checks.values())

    @property
    def failure(self) -> Check | None:
        return next((c for c in self.checks.values() if c.status == "fail"), None)

    def as_json(self) -> dict:
        t = self.team
        return {"team": t.name, "standby": t.standby, "primary": t.primary, "mac": t.mac,
                "primary_mac": t.primary_mac, "verdict": "proven" if self.proven else "failed",
                "checks": [c.as_json() for c in self.checks.values()]}


@dataclass
class VmResult:
    plan: VmPlan
    image: str
    teams: list[TeamResult]
    error: str | None = None  # a VM-level failure (QEMU would not start, the guest did not boot, ...)
    error_evidence: list[str] = field(default_factory=list)
    boot_seconds: float | None = None
    migration: dict | None = None  # status path, downtime, times
    workdir: str | None = None

    @property
    def proven(self) -> bool:
        return self.error is None and bool(self.teams) and all(t.proven for t in self.teams)

    def as_json(self) -> dict:
        return {"vm": self.plan.vm, "verdict": "pass" if self.proven else "fail", "accel": self.plan.accel,
                "guest": self.image, "error": self.error, "error_evidence": self.error_evidence,
                "boot_seconds": self.boot_seconds, "migration": self.migration, "changes": self.plan.changes,
                "argv": self.plan.argv, "teams": [t.as_json() for t in self.teams], "workdir": self.workdir}


# --- progress -----------------------------------------------------------------------


class Progress:
    """Progress on stderr: one rewritten line on a terminal, one line per milestone otherwise."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.prefix = ""
        self.last = ""
        self._drawn = 0.0

    def begin(self, prefix: str) -> None:
        self.start = time.monotonic()
        self.prefix = prefix
        self.last = ""

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        if self.tty:
            self.last = message
            self._draw(elapsed)
        elif message != self.last:
            self.last = message
            self.stream.write(f"teamc verify: [{elapsed:5.1f}s] {self.prefix}{message}\n")
            self.stream.flush()

    def tick(self) -> None:
        """Redraw the elapsed time on a terminal (at most 5 times a second)."""
        now = time.monotonic()
        if self.tty and self.last and now - self._drawn > 0.2:
            self._draw(now - self.start)

    def _draw(self, elapsed: float) -> None:
        self._drawn = time.monotonic()
        width = shutil.get_terminal_size((100, 20)).columns - 1
        line = f"[{elapsed:5.1f}s] {self.prefix}{self.last}"
        self.stream.write("\r\033[K" + line[:width])
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.last:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self.last = ""


# --- the guest's reports ------------------------------------------------------------


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
    n: int
    uptime: float
    at: float  # host monotonic time it was read
    origin: str  # source | destination
    ifaces: dict[str, Iface]

    def master(self, mac: str) -> Iface | None:
        return next((i for i in self.ifaces.values() if i.kind == "failover" and i.mac == mac), None)

    def slave(self, master: Iface, kind: str) -> Iface | None:
        for name in master.lowers:
            iface = self.ifaces.get(name)
            if iface is not None and iface.kind == kind:
                return iface
        return None

    def enslaved(self) -> set[str]:
        return {name for i in self.ifaces.values() for name in i.lowers}


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


class Guest:
    """What one QEMU's guest said: kernel console lines, TEAMC notes and interface ticks."""

    def __init__(self, origin: str, console: Path, report: Path):
        self.origin = origin
        self._console, self._report = Tail(console), Tail(report)
        self.console: list[tuple[float, str]] = []
        self.notes: list[tuple[float, str]] = []
        self.ticks: list[Tick] = []
        self._current: Tick | None = None

    def read(self) -> None:
        # The report first: a kernel line printed before a report was written is then always read too.
        now = time.monotonic()
        for line in self._report.lines():
            self._feed(line, now)
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

    def note(self, prefix: str) -> tuple[float, str] | None:
        return next(((at, text) for at, text in self.notes if text.startswith(prefix)), None)

    def console_matching(self, *needles: str) -> list[str]:
        return [line for _, line in self.console if any(n in line for n in needles)]

    def await_console(self, needle: str, exclude: str, seconds: float = 3.0) -> list[str]:
        """Console lines with `needle` (and without `exclude`), waiting a little for the first: the
        kernel's emulated serial port can lag behind the report that already told us what happened."""
        deadline = time.monotonic() + seconds
        while True:
            lines = [line.strip() for line in self.console_matching(needle) if exclude not in line]
            if lines or time.monotonic() >= deadline:
                return lines
            time.sleep(0.1)
            self.read()


# --- processes ----------------------------------------------------------------------

_LIVE: set = set()  # every QEMU process started and not yet reaped, for the last-resort cleanup


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort: the Session still kills it
        pass


def _chardev_path(path: Path) -> str:
    return str(path).replace(",", ",,")


class Qemu:
    def __init__(self, argv: list[str], image: GuestImage, folder: Path, role: str, incoming: bool = False):
        self.role = role
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.qmp_path = folder / "qmp.sock"
        self.stderr_path = folder / "qemu.stderr"
        console, report = folder / "console.log", folder / "guest-report.log"
        self.argv = [
            *argv,
            "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", KERNEL_CMDLINE,
            "-no-reboot",
            "-chardev", f"file,id=teamc-console,path={_chardev_path(console)}", "-serial", "chardev:teamc-console",
            "-chardev", f"file,id=teamc-report,path={_chardev_path(report)}", "-serial", "chardev:teamc-report",
            "-chardev", f"socket,id=teamc-qmp,path={_chardev_path(self.qmp_path)},server=on,wait=off",
            "-mon", "chardev=teamc-qmp,mode=control",
            *(["-incoming", "defer"] if incoming else ["-S"]),
        ]
        self.guest = Guest(role, console, report)
        self.proc: subprocess.Popen | None = None
        self.qmp: Qmp | None = None
        self.started = 0.0

    def start(self, timeout: float) -> None:
        (self.folder / "argv.json").write_text(json.dumps(self.argv, indent=1) + "\n")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        _LIVE.add(self.proc)
        self.started = time.monotonic()
        self.qmp = Qmp(str(self.qmp_path), timeout=timeout, alive=self.alive)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def warnings(self) -> list[str]:
        """QEMU's stderr lines, without the expected noise (a hidden primary's netdev has no peer)."""
        return [line for line in self.stderr().splitlines() if line.strip() and "has no peer" not in line]

    def events(self) -> None:
        if self.qmp is not None and self.alive():
            try:
                self.qmp.poll()
            except QmpError:
                pass

    def execute(self, command: str, arguments: dict | None = None, timeout: float = 20.0):
        if self.qmp is None:
            raise QmpError("no QMP connection")
        return self.qmp.execute(command, arguments, timeout=timeout)

    def stop(self) -> None:
        if self.qmp is not None:
            self.qmp.close()
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        _LIVE.discard(self.proc)


def kill_all() -> None:
    """Last resort (e.g. at interpreter exit): SIGKILL every QEMU still running."""
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _LIVE.discard(proc)


class Session:
    """A work folder and the QEMU processes in it; everything is stopped on exit."""

    def __init__(self, keep: bool = False):
        self.keep = keep
        self.folder = Path(tempfile.mkdtemp(prefix="teamc-verify-"))
        if len(str(self.folder)) > 80:  # UNIX socket paths are limited to 107 bytes
            self.folder = Path(tempfile.mkdtemp(prefix="teamc-verify-", dir="/tmp"))
        self.processes: list[Qemu] = []

    def qemu(self, argv, image, role, incoming=False) -> Qemu:
        q = Qemu(argv, image, self.folder / role, role, incoming)
        self.processes.append(q)
        return q

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for q in self.processes:
            q.stop()
        if not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)


# --- the verification -----------------------------------------------------------------


@dataclass
class Settings:
    migrate: bool = False
    timeout: float = 120.0  # per phase: boot, migration
    keep: bool = False


def _fmt_event(event) -> str:
    return "QMP " + json.dumps({"event": event.name, "data": event.data}, separators=(", ", ": "))


def _standby_has_failover(argv: list[str], standby: str) -> bool:
    for i, arg in enumerate(argv[:-1]):
        if arg == "-device":
            props = decode(argv[i + 1], "driver")
            if props.get("id") == standby:
                return props.get("failover") in (True, "on", "true")
    return False


def _slot(argv: list[str], ident: str) -> tuple[str, int, int]:
    """(bus, slot, function) a -device of the argv asks for."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "-device":
            props = decode(argv[i + 1], "driver")
            if props.get("id") == ident:
                slot, _, function = str(props.get("addr", "0")).partition(".")
                return props.get("bus", ""), int(slot, 16), int(function, 16) if function else 0
    return "", -1, 0


def _peripherals(q: Qemu) -> set[str] | None:
    try:
        return {child["name"] for child in q.execute("qom-list", {"path": "/machine/peripheral"})}
    except QmpError:
        return None


class _Watch:
    """Per-team bookkeeping across the ticks of one phase."""

    def __init__(self):
        self.since: dict[str, float] = {}  # condition name -> host time first seen (continuously)

    def held(self, name: str, condition: bool, now: float) -> float:
        """How long `condition` has been true without interruption."""
        if not condition:
            self.since.pop(name, None)
            return 0.0
        return now - self.since.setdefault(name, now)


def verify_vm(plan: VmPlan, image: GuestImage, settings: Settings, progress: Progress) -> VmResult:
    teams = [TeamResult(t, {name: Check(name) for name in BOOT_CHECKS + (MIGRATION_CHECKS if settings.migrate
                                                                          else ())}) for t in plan.teams]
    result = VmResult(plan, image.description, teams)
    if not teams:
        result.error = "no team to verify (no transient NIC with a persistent partner)"
        return result
    progress.begin(f"{plan.vm}: ")
    with Session(settings.keep) as session:
        if settings.keep:
            result.workdir = str(session.folder)
        source = session.qemu(plan.argv, image, "source")
        progress(f"starting QEMU ({plan.accel})")
        if _start(source, result, settings):
            _boot(source, result, settings, progress)
        if settings.migrate:
            if result.error is None and all(_boot_ok(t) for t in teams):
                _migrate(session, source, plan, image, result, settings, progress)
            else:
                for t in teams:
                    for name in MIGRATION_CHECKS:
                        if t.checks[name].status == "pending":
                            t.checks[name].status = "skipped"
                            t.checks[name].detail = "not attempted: the boot checks did not all pass"
        progress.done()
    for t in teams:  # anything still pending at this point was never reached
        for c in t.checks.values():
            if c.status == "pending":
                c.status = "skipped"
                c.detail = c.detail or "not reached"
    return result


def _boot_ok(team: TeamResult) -> bool:
    return all(team.checks[name].status == "ok" for name in BOOT_CHECKS)


def _start(q: Qemu, result: VmResult, settings: Settings) -> bool:
    try:
        q.start(timeout=min(30.0, settings.timeout))
        q.execute("cont")
        return True
    except (QmpError, OSError) as err:
        time.sleep(0.2)
        result.error = f"QEMU did not start: {q.warnings()[-1] if q.warnings() else err}"
        result.error_evidence = q.warnings()[-10:]
        return False


def _boot(q: Qemu, result: VmResult, settings: Settings, progress: Progress) -> None:
    deadline = time.monotonic() + settings.timeout
    watches = {t.team.standby: _Watch() for t in result.teams}
    plugged: dict[str, bool] = {}
    booted = drivers = False
    while True:
        now = time.monotonic()
        q.events()
        q.guest.read()
        progress.tick()
        if not booted and q.guest.note("boot"):
            booted = True
            progress("guest kernel up, loading the failover drivers")
        if not drivers and q.guest.note("modules"):
            drivers = True
            failed = [text.split()[1] for _, text in q.guest.notes if text.startswith("module-failed ")]
            if failed:
                result.error = f"the guest could not load {', '.join(failed)}"
                result.error_evidence = [f"console: {line}" for _, line in q.guest.console
                                         if any(m in line for m in failed)][-10:]
                result.boot_seconds = round(now - q.started, 1)
                return
            progress("drivers loaded, waiting for the teams")
        tick = q.guest.ticks[-1] if q.guest.ticks else None
        for team in result.teams:
            _judge_boot(q, team, tick, watches[team.team.standby], plugged, drivers, now, progress)
        undecided = [t for t in result.teams if any(t.checks[n].status == "pending" for n in BOOT_CHECKS)]
        if not undecided:
            result.boot_seconds = round(now - q.started, 1)
            return
        if not q.alive():
            time.sleep(0.2)
            q.guest.read()
            why = q.warnings()[-1] if q.warnings() else f"QEMU exited with status {q.proc.returncode}"
            if not booted and not q.warnings():
                why += (" before the guest's /init ran: the guest reset or powered off (QEMU runs with "
                        f"-no-reboot){_memory_hint(q.argv)}")
            result.error = f"QEMU stopped: {why}"
            result.error_evidence = q.warnings()[-10:] + [f"console: {line}" for _, line in q.guest.console[-5:]]
            return
        if now > deadline:
            if not booted:
                result.error = f"the guest did not start within {settings.timeout:.0f} s"
                result.error_evidence = [f"console: {line}" for _, line in q.guest.console[-10:]]
            for team in undecided:
                _timeout_boot(q, team, tick, settings.timeout)
            result.boot_seconds = round(now - q.started, 1)
            return
        time.sleep(POLL)


def _memory_hint(argv: list[str]) -> str:
    for i, arg in enumerate(argv[:-1]):
        if arg == "-m" and argv[i + 1].startswith("size=") and argv[i + 1].endswith("k"):
            mib = int(argv[i + 1][5:-1]) // 1024
            if mib < 160:
                return f"; the VM's {mib} MiB may be too little for the guest kernel"
    return ""


def _pending(team: TeamResult, name: str) -> bool:
    return team.checks[name].status == "pending"


def _judge_boot(q: Qemu, team: TeamResult, tick: Tick | None, watch: _Watch, plugged: dict, drivers: bool,
                now: float, progress: Progress) -> None:
    t = team.team
    c = team.checks
    if _pending(team, "negotiated"):
        event = q.qmp.find("FAILOVER_NEGOTIATED", **{"device-id": t.standby}) if q.qmp else None
        if event is not None:
            c["negotiated"].ok(f"QMP FAILOVER_NEGOTIATED {t.standby} {event.at - q.started:.1f} s after start",
                               [_fmt_event(event)])
            progress(f"negotiated {t.standby}")
        elif tick is not None and drivers:
            virtio = [i for i in tick.ifaces.values() if i.kind == "virtio" and i.mac == t.mac]
            lonely = bool(virtio) and all(i.name not in tick.enslaved() for i in virtio)
            if watch.held("unbonded-virtio", lonely, now) > SETTLE:
                why = ("the standby has no failover=on" if not _standby_has_failover(q.argv, t.standby)
                       else "the guest's virtio_net did not accept VIRTIO_NET_F_STANDBY")
                standins = [i for i in tick.ifaces.values() if i.kind == "pci" and i.mac == t.primary_mac]
                c["negotiated"].fail(
                    f"not negotiated: QEMU sent no FAILOVER_NEGOTIATED for {t.standby} and the guest's virtio_net "
                    f"made no failover master for {t.mac} ({why})",
                    [f"guest: {i.line()}" for i in virtio]
                    + [f"guest: {i.line()} (the stand-in for {t.primary}, not hidden by QEMU, not bonded)"
                       for i in standins] + _console_for(q, virtio))
            elif watch.held("no-virtio", not virtio, now) > 2 * SETTLE:
                hint = ""
                where, primary_where = _slot(q.argv, t.standby), _slot(q.argv, t.primary)
                if where[2] and where[:2] == primary_where[:2] and primary_where[2] == 0:
                    hint = (f"; {t.standby} is function {where[2]} of the slot whose function 0 is {t.primary}, "
                            "which QEMU hides until negotiation, and a guest does not scan a slot without "
                            "function 0")
                c["negotiated"].fail(f"not negotiated: the guest has no virtio NIC with MAC {t.mac}{hint}",
                                     [f"guest: {i.line()}" for i in tick.ifaces.values()])
        if c["negotiated"].status == "fail":
            c["primary plugged"].status = "skipped"
            c["primary plugged"].detail = "QEMU plugs the primary only after negotiation"
    if c["negotiated"].status == "ok" and _pending(team, "primary plugged"):
        if t.primary not in plugged:
            present = _peripherals(q)
            if present is not None:
                plugged[t.primary] = t.primary in present
        if plugged.get(t.primary) is True:
            c["primary plugged"].ok(f"QEMU plugged {t.primary} into {t.primary_bus} slot {t.primary_addr}",
                                    [f"qom-list /machine/peripheral: {t.primary} present"])
        elif plugged.get(t.primary) is False:
            warnings = q.warnings()
            reason = warnings[-1].split("warning: ", 1)[-1] if warnings else "no reason given"
            c["primary plugged"].fail(f"QEMU did not plug {t.primary} into {t.primary_bus}: {reason}",
                                      warnings[-5:] + [f"qom-list /machine/peripheral: no {t.primary}"])
    if c["primary plugged"].status in ("fail", "skipped") and _pending(team, "bonded in guest"):
        c["bonded in guest"].status = "skipped"
        c["bonded in guest"].detail = "no primary to bond"
        master = tick.master(t.mac) if tick else None
        if master is not None:
            c["bonded in guest"].evidence = [f"guest: {master.line()}"]
    if tick is None:
        return
    master = tick.master(t.mac)
    standby = tick.slave(master, "virtio") if master else None
    primary = tick.slave(master, "pci") if master else None
    if _pending(team, "bonded in guest") and c["primary plugged"].status == "ok":
        if master and standby and primary:
            c["bonded in guest"].ok(
                f"master {master.name} {master.mac}: standby {standby.name} (virtio), primary {primary.name} "
                f"(stand-in for {t.primary})",
                _console_for(q, [master, standby, primary], "failover") + [f"guest: {master.line()}"])
            progress(f"bonded {t.name} in the guest")
        else:
            strays = [i for i in tick.ifaces.values()
                      if i.kind == "pci" and i.mac == t.primary_mac and i.name not in tick.enslaved()]
            if watch.held("stray-primary", bool(strays) and master is not None, now) > SETTLE:
                stray = strays[0]
                c["bonded in guest"].fail(
                    f"no bond: the guest did not enslave {stray.name} (stand-in for {t.primary}, MAC {stray.mac}) "
                    f"to failover master {master.name} (MAC {master.mac}); net_failover pairs NICs by MAC",
                    _console_for(q, [master, stray]) + [f"guest: {i.line()}" for i in (master, stray)])
    if c["bonded in guest"].status == "fail":
        c["traffic on primary"].status = "skipped"
        c["traffic on primary"].detail = "no bond"
    if c["bonded in guest"].status == "skipped" and _pending(team, "traffic on primary"):
        c["traffic on primary"].status = "skipped"
        c["traffic on primary"].detail = "no bond"
    if c["bonded in guest"].status == "ok" and _pending(team, "traffic on primary"):
        proof = _traffic(q.guest.ticks, t, "pci", lambda tk: _primary_up(tk, t))
        if proof:
            c["traffic on primary"].ok(proof[0], proof[1])
            progress(f"traffic on the primary of {t.name}")


def _primary_up(tick: Tick, t: TeamPlan) -> bool:
    master = tick.master(t.mac)
    primary = tick.slave(master, "pci") if master else None
    return primary is not None and primary.carrier == "1"


def _traffic(ticks: list[Tick], t: TeamPlan, kind: str, when, since: int = 0):
    """(detail, evidence) once the slave of `kind` has carried MIN_PACKETS pings each way during the
    last unbroken run of ticks (from index `since`) in which `when(tick)` holds; else None."""
    run: list[Tick] = []
    for tick in ticks[since:]:
        if when(tick):
            run.append(tick)
        else:
            run = []
    if len(run) < 2:
        return None
    first, last = run[0], run[-1]
    m0, m1 = first.master(t.mac), last.master(t.mac)
    a, b = first.slave(m0, kind), last.slave(m1, kind)
    if a is None or b is None or a.name != b.name:
        return None
    other = "virtio" if kind == "pci" else "pci"
    if b.tx - a.tx < MIN_PACKETS or b.rx - a.rx < MIN_PACKETS:
        return None
    o0, o1 = first.slave(m0, other), last.slave(m1, other)
    other_text = (f"; {o1.name} ({'standby' if other == 'virtio' else 'primary'}) tx +{o1.tx - o0.tx}"
                  if o0 and o1 and o0.name == o1.name else "")
    role = "primary" if kind == "pci" else "standby"
    detail = (f"ping {GATEWAY} through {m1.name}: {b.name} ({role}) tx +{b.tx - a.tx} rx +{b.rx - a.rx}"
              f"{other_text} over {last.uptime - first.uptime:.1f} s")
    return detail, [f"guest {first.origin} t={first.uptime:.2f}: {a.line()}",
                    f"guest {last.origin} t={last.uptime:.2f}: {b.line()}"]


def _console_for(q: Qemu, ifaces, *words) -> list[str]:
    names = {i.name for i in ifaces}
    out = []
    for _, line in q.guest.console:
        mentions = any(f" {n}:" in line or f":{n} " in line or line.endswith(f":{n}") or f"{n} registered" in line
                       for n in names)
        if mentions and (not words or any(w in line for w in words)):
            out.append(line.strip())
    return out[:12]


def _timeout_boot(q: Qemu, team: TeamResult, tick: Tick | None, timeout: float) -> None:
    t = team.team
    state = [f"guest: {i.line()}" for i in tick.ifaces.values()] if tick else ["guest: no interface report"]
    waiting = {
        "negotiated": f"QMP FAILOVER_NEGOTIATED for {t.standby}",
        "primary plugged": f"QEMU to plug {t.primary}",
        "bonded in guest": f"the guest to bond {t.mac} (master + virtio standby + {t.primary} stand-in)",
        "traffic on primary": f"pings through the primary of {t.name}",
    }
    for name in BOOT_CHECKS:
        if _pending(team, name):
            team.checks[name].fail(f"timed out after {timeout:.0f} s waiting for {waiting[name]}",
                                   state + q.warnings()[-3:])
            break
    for name in BOOT_CHECKS:
        if _pending(team, name):
            team.checks[name].status = "skipped"
            team.checks[name].detail = "not reached"


# --- migration ------------------------------------------------------------------------


def _migrate(session: Session, source: Qemu, plan: VmPlan, image: GuestImage, result: VmResult,
             settings: Settings, progress: Progress) -> None:
    info: dict = {"statuses": []}
    result.migration = info
    deadline = time.monotonic() + settings.timeout
    progress("starting the destination QEMU")
    dest = session.qemu(plan.argv, image, "destination", incoming=True)
    try:
        dest.start(timeout=min(30.0, settings.timeout))
        dest.execute("migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]})
        dest.execute("migrate-incoming", {"uri": "tcp:127.0.0.1:0"})
        address = dest.execute("query-migrate").get("socket-address", [{}])[0]
        port = address["port"]
        source.execute("migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]})
    except (QmpError, OSError, KeyError, IndexError) as err:
        why = dest.warnings()[-1] if dest.warnings() else str(err)
        _fail_migration(result, f"the destination QEMU did not start listening: {why}", dest.warnings()[-5:])
        return
    info["uri"] = f"tcp:127.0.0.1:{port}"
    ticks_before = len(source.guest.ticks)
    progress(f"migrating to {info['uri']}")
    started = time.monotonic()
    seen = len(source.qmp.events)
    try:
        source.execute("migrate", {"uri": info["uri"]})
    except QmpError as err:
        _fail_migration(result, f"migrate refused: {err}", source.warnings()[-5:])
        return
    status = "setup"
    while True:
        now = time.monotonic()
        source.events()
        dest.events()
        source.guest.read()
        dest.guest.read()
        progress.tick()
        for event in source.qmp.events[seen:]:
            if event.name == "MIGRATION":
                info["statuses"].append(event.data["status"])
                status = event.data["status"]
                if status == "wait-unplug":
                    progress("waiting for the guest to release the primaries (wait-unplug)")
                elif status == "active":
                    progress("primaries unplugged, copying RAM")
        seen = len(source.qmp.events)
        if status in ("completed", "failed", "cancelled"):
            break
        if not source.alive() or not dest.alive():
            status = "failed"
            break
        if now > deadline:
            try:
                source.execute("migrate_cancel")
            except QmpError:
                pass
            _fail_migration(result, f"migration did not complete within {settings.timeout:.0f} s "
                                    f"(status {status})", source.warnings()[-5:])
            info["status"] = status
            return
        time.sleep(POLL)
    info["seconds"] = round(time.monotonic() - started, 2)
    try:
        stats = source.execute("query-migrate")
    except QmpError:
        stats = {}
    info["status"] = stats.get("status", status)
    for key in ("total-time", "downtime", "setup-time"):
        if key in stats:
            info[key.replace("-", "_") + "_ms"] = stats[key]
    if info["status"] != "completed":
        reason = stats.get("error-desc") or (dest.warnings() or source.warnings() or ["migration failed"])[-1]
        _fail_migration(result, f"migration {info['status']}: {reason}",
                        source.warnings()[-5:] + dest.warnings()[-5:])
        return
    progress(f"migrated in {info['seconds']:.1f} s (downtime {info.get('downtime_ms', '?')} ms), "
             "waiting for the primaries on the destination")
    resumed = None
    while True:
        now = time.monotonic()
        source.guest.read()
        dest.events()
        dest.guest.read()
        progress.tick()
        if resumed is None and dest.qmp is not None:
            resume = dest.qmp.find("RESUME")
            if resume is not None:
                resumed = resume.at
        for team in result.teams:
            _judge_migration(source, dest, team, ticks_before, resumed, info, progress)
        if not any(_pending(t, n) for t in result.teams for n in MIGRATION_CHECKS):
            break
        if not dest.alive():
            for team in result.teams:
                for name in MIGRATION_CHECKS:
                    if _pending(team, name):
                        team.checks[name].fail(f"the destination QEMU stopped: "
                                               f"{(dest.warnings() or ['no message'])[-1]}", dest.warnings()[-5:])
            break
        if now > deadline:
            for team in result.teams:
                _timeout_migration(source, dest, team, ticks_before, info, settings.timeout)
            break
        time.sleep(POLL)
    if resumed is not None:
        info["resumed_after_s"] = round(resumed - started, 2)


def _master_name(ticks: list[Tick], t: TeamPlan) -> str:
    for tick in reversed(ticks):
        master = tick.master(t.mac)
        if master is not None:
            return master.name
    return "?"


def _fail_migration(result: VmResult, why: str, evidence: list[str]) -> None:
    for team in result.teams:
        first = True
        for name in MIGRATION_CHECKS:
            if _pending(team, name):
                if first:
                    team.checks[name].fail(why, evidence)
                    first = False
                else:
                    team.checks[name].status = "skipped"
                    team.checks[name].detail = "migration failed"


def _judge_migration(source: Qemu, dest: Qemu, team: TeamResult, ticks_before: int, resumed: float | None,
                     info: dict, progress: Progress, final: bool = False) -> None:
    """`final`: the deadline has passed; judge the standby on what the guest reported so far."""
    t = team.team
    c = team.checks
    ticks = source.guest.ticks[ticks_before:] + dest.guest.ticks
    if _pending(team, "primary unplugged"):
        event = source.qmp.find("UNPLUG_PRIMARY", **{"device-id": t.primary})
        master = _master_name(source.guest.ticks[:ticks_before], t)
        lines = [line.strip() for line in source.guest.console_matching(f" {master}: failover primary slave")
                 if "unregistered" in line]
        gone = [tk for tk in ticks if tk.master(t.mac) and not tk.slave(tk.master(t.mac), "pci")]
        if event is not None and "wait-unplug" in info["statuses"] and (gone or lines):
            c["primary unplugged"].ok(
                f"QMP UNPLUG_PRIMARY {t.primary}, migration {' -> '.join(info['statuses'])}; the guest released it",
                [_fmt_event(event)] + lines[:4])
        else:
            c["primary unplugged"].fail(
                f"no UNPLUG_PRIMARY for {t.primary}, no wait-unplug state or the guest kept it "
                f"(migration went {' -> '.join(info['statuses'])})", lines[:4])
    if _pending(team, "traffic on standby"):
        # From the last tick with the primary carrying traffic before the migration to the first one
        # after it, on the destination, the standby alone must have moved the pings.
        pre = next((tk for tk in reversed(source.guest.ticks[:ticks_before] or source.guest.ticks[-1:])
                    if _primary_up(tk, t)), None)
        back = next((tk for tk in dest.guest.ticks if _primary_up(tk, t)), None)
        if back is None and final and dest.guest.ticks:
            back = dest.guest.ticks[-1]
        gap = [tk for tk in ticks if not _primary_up(tk, t)]
        if pre is not None and back is not None:
            m0, m1 = pre.master(t.mac), back.master(t.mac)
            s0, s1 = pre.slave(m0, "virtio"), back.slave(m1, "virtio")
            until = ("had link again on the destination" if _primary_up(back, t)
                     else "was still away on the destination")
            if s0 and s1 and s1.tx - s0.tx >= 1 and s1.rx - s0.rx >= 1 and gap:
                c["traffic on standby"].ok(
                    f"from the unplug until {t.primary} {until} ({len(gap)} guest "
                    f"reports, t={gap[0].uptime:.2f}-{gap[-1].uptime:.2f} s) the pings went through the standby "
                    f"{s1.name}: tx +{s1.tx - s0.tx} rx +{s1.rx - s0.rx}",
                    [f"guest source t={pre.uptime:.2f}: {s0.line()}"]
                    + [f"guest {tk.origin} t={tk.uptime:.2f}: {tk.master(t.mac).line()}" for tk in gap[:1] + gap[-1:]
                       if tk.master(t.mac)]
                    + [f"guest destination t={back.uptime:.2f}: {s1.line()}"])
            else:
                c["traffic on standby"].fail(
                    f"the standby did not carry the pings while {t.primary} was away",
                    [f"guest: {s.line()}" for s in (s0, s1) if s])
    if _pending(team, "primary re-plugged"):
        event = dest.qmp.find("FAILOVER_NEGOTIATED", **{"device-id": t.standby}) if dest.qmp else None
        back = next((tk for tk in dest.guest.ticks if tk.master(t.mac) and tk.slave(tk.master(t.mac), "pci")), None)
        if event is not None and back is not None:
            m = back.master(t.mac)
            p = back.slave(m, "pci")
            lines = dest.guest.await_console(f" {m.name}: failover primary slave", exclude="unregistered")
            c["primary re-plugged"].ok(
                f"destination: QMP FAILOVER_NEGOTIATED {t.standby}, {t.primary} plugged back; the guest enslaved "
                f"{p.name} to {m.name} again", [_fmt_event(event)] + lines[:3])
            progress(f"{t.name}: primary back on the destination")
    if c["primary re-plugged"].status == "ok" and _pending(team, "traffic after migration"):
        start = next(i for i, tk in enumerate(dest.guest.ticks)
                     if tk.master(t.mac) and tk.slave(tk.master(t.mac), "pci"))
        proof = _traffic(dest.guest.ticks, t, "pci", lambda tk: _primary_up(tk, t), since=start)
        if proof:
            detail, evidence = proof
            if resumed is not None:
                first_up = next(tk for tk in dest.guest.ticks[start:] if _primary_up(tk, t))
                detail += f"; the primary had link {first_up.at - resumed:.1f} s after the destination resumed"
            c["traffic after migration"].ok("destination: " + detail, evidence)


def _timeout_migration(source: Qemu, dest: Qemu, team: TeamResult, ticks_before: int, info: dict,
                       timeout: float) -> None:
    _judge_migration(source, dest, team, ticks_before, None, info, Progress(enabled=False), final=True)
    t = team.team
    tick = dest.guest.ticks[-1] if dest.guest.ticks else None
    state = [f"guest destination: {i.line()}" for i in tick.ifaces.values()] if tick else \
        ["guest destination: no interface report"]
    waiting = {
        "primary unplugged": f"the unplug of {t.primary}",
        "traffic on standby": "pings through the standby",
        "primary re-plugged": f"FAILOVER_NEGOTIATED for {t.standby} on the destination and the guest to enslave "
                              f"{t.primary} again",
        "traffic after migration": f"pings through {t.primary} on the destination",
    }
    first = True
    for name in MIGRATION_CHECKS:
        if _pending(team, name):
            if first:
                team.checks[name].fail(f"timed out after {timeout:.0f} s waiting for {waiting[name]}",
                                       state + dest.warnings()[-3:])
                first = False
            else:
                team.checks[name].status = "skipped"
                team.checks[name].detail = "not reached"


# --- KVM probe ----------------------------------------------------------------------------


def probe_kvm(emulator: str, image: GuestImage, cache: Path | None, timeout: float = 10.0) -> tuple[bool, str]:
    """Does KVM really run the guest here? /dev/kvm can open and still not run a full guest
    (e.g. a paravirtual KVM in a container), so boot the guest image once with KVM, without
    NICs, and wait for its /init. The answer is kept in the cache for this host boot."""
    from .plan import kvm_usable

    if not kvm_usable():
        return False, "/dev/kvm is not usable here"
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        binary = Path(shutil.which(emulator) or emulator).resolve()
        key = f"{boot_id} {binary} {binary.stat().st_mtime_ns} {image.kernel}"
    except OSError:
        key = None
    store = Path(cache) / "kvm-probe.json" if cache is not None else None
    known: dict = {}
    if store is not None and key is not None:
        try:
            known = json.loads(store.read_text())
        except (OSError, ValueError):
            known = {}
        if key in known:
            return known[key]["works"], known[key]["why"]
    argv = [emulator, "-machine", "q35", "-accel", "kvm", "-m", "256", "-display", "none", "-no-user-config",
            "-nodefaults"]
    with Session() as session:
        q = session.qemu(argv, image, "kvm-probe")
        started = time.monotonic()
        try:
            q.start(timeout=timeout)
            q.execute("cont")
            while time.monotonic() - started < timeout and q.alive() and not q.guest.note("boot"):
                time.sleep(POLL)
                q.guest.read()
        except (QmpError, OSError):
            pass
        if q.guest.note("boot"):
            works, why = True, f"KVM booted the guest in {time.monotonic() - started:.1f} s"
        elif not q.alive():
            works, why = False, f"QEMU with KVM failed: {(q.warnings() or ['no message'])[-1]}"
        else:
            works, why = False, f"KVM did not boot the guest within {timeout:.0f} s"
    if store is not None and key is not None:
        known[key] = {"works": works, "why": why}
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            store.write_text(json.dumps(known, indent=1) + "\n")
        except OSError:
            pass
    return works, why


# --- signals ------------------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that every `finally` runs."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def run_guarded(function, *args):
    """Run `function` with SIGTERM and SIGHUP turned into `Interrupted` (Ctrl-C already raises
    KeyboardInterrupt), so that every QEMU is stopped on the way out; restore the handlers after."""
    def interrupt(signum, frame):
        raise Interrupted(signum)

    previous = {}
    if _in_main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, interrupt)
    try:
        return function(*args)
    finally:
        kill_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
