"""Migrations of the running VM: to a second QEMU (live, optionally switched to post-copy, or
cancelled) or to a file and back, followed through QMP, and the judgments of the failover around them.

QEMU itself unplugs every failover primary when a migration starts (UNPLUG_PRIMARY, the
`wait-unplug` state) and plugs it back on the destination once the guest there negotiates
VIRTIO_NET_F_STANDBY again, or on the source when the migration fails or is cancelled.
"""

from __future__ import annotations

import shlex
import time

from .judge import (
    LAG,
    SETTLE,
    Presence,
    Verdict,
    Watch,
    bonded,
    fmt_event,
    peripherals,
    plug_refusal,
    primary_away,
    primary_up,
    released,
    standby_has_failover,
    traffic,
)
from .plan import TeamPlan
from .process import Qemu
from .qmp import QmpError
from .records import TeamResult
from .serial import START, Mark, Tick
from .steps import Run, Step

FINAL = ("completed", "failed", "cancelled")


class MigrationError(Exception):
    """The migration could not even start; args: (why, evidence)."""


class Migration:
    """One migration out of `source`, as QMP MIGRATION events tell it."""

    def __init__(self, source: Qemu, uri: str, info: dict):
        self.source, self.uri, self.info = source, uri, info
        self.started = time.monotonic()
        self._seen = len(source.qmp.events)
        self.status = "setup"
        info.update(uri=uri, statuses=[])

    def follow(self) -> None:
        for event in self.source.qmp.events[self._seen:]:
            if event.name == "MIGRATION":
                self.status = event.data["status"]
                self.info["statuses"].append(self.status)
                if self.status in FINAL:
                    self._finish()
        self._seen = len(self.source.qmp.events)
        if not self.source.alive() and self.status not in FINAL:
            self.status = "failed"
            self.info["status"] = "failed"
            self.info["error"] = f"the source QEMU stopped: {(self.source.warnings() or ['no message'])[-1]}"

    @property
    def path(self) -> str:
        return " -> ".join(self.info["statuses"]) or "no status"

    def _finish(self) -> None:
        self.info["seconds"] = round(time.monotonic() - self.started, 2)
        try:
            stats = self.source.execute("query-migrate")
        except QmpError:
            stats = {}
        self.info["status"] = stats.get("status", self.status)
        for key in ("total-time", "downtime", "setup-time"):
            if key in stats:
                self.info[key.replace("-", "_") + "_ms"] = stats[key]
        if "error-desc" in stats:
            self.info["error"] = stats["error-desc"]


def capabilities(postcopy: bool = False) -> dict:
    # Capabilities stay set on a QEMU: post-copy is switched off explicitly, or a later save to a file from a
    # QEMU that received a post-copy migration waits forever for a return path the file does not have.
    return {"capabilities": [{"capability": "events", "state": True},
                             {"capability": "postcopy-ram", "state": postcopy}]}


def listen(run: Run, role: str, uri: str = "tcp:127.0.0.1:0", postcopy: bool = False) -> tuple[Qemu, str]:
    """A new QEMU waiting for the VM (`-incoming defer`), and the URI it listens on."""
    dest = run.qemu(role, incoming=True)
    try:
        dest.start(timeout=min(30.0, run.settings.timeout))
        dest.execute("migrate-set-capabilities", capabilities(postcopy))
        dest.execute("migrate-incoming", {"uri": uri})
        if uri.startswith("tcp:"):
            address = dest.execute("query-migrate").get("socket-address", [{}])[0]
            uri = f"tcp:127.0.0.1:{address['port']}"
    except (QmpError, OSError, KeyError, IndexError) as err:
        time.sleep(0.2)
        raise MigrationError(f"the {role} QEMU did not start listening: "
                             f"{dest.warnings()[-1] if dest.warnings() else err}", dest.warnings()[-5:]) from err
    return dest, uri


def begin(run: Run, source: Qemu, uri: str, postcopy: bool = False, bandwidth: int | None = None) -> Migration:
    info: dict = {}
    run.result.migrations.append(info)
    try:
        source.execute("migrate-set-capabilities", capabilities(postcopy))
        if bandwidth is not None:
            source.execute("migrate-set-parameters", {"max-bandwidth": bandwidth})
        migration = Migration(source, uri, info)
        source.execute("migrate", {"uri": uri})
    except QmpError as err:
        info.update(uri=uri, status="failed", error=str(err))
        raise MigrationError(f"migrate refused: {err}", source.warnings()[-5:]) from err
    run.progress(f"migrating to {uri}")
    return migration


# --- judgments ----------------------------------------------------------------------------------


def unplugged(run: Run, migration: Migration, source: Qemu, mark: Mark, dest: Qemu | None = None):
    """QEMU asked the guest to release the primary (UNPLUG_PRIMARY, `wait-unplug`) and it did (seen on the
    source, or first on the destination when the source stopped right after, as post-copy does)."""
    def judge(team: TeamResult, watch: Watch, now: float) -> Verdict | None:
        t = team.team
        event = source.qmp.find("UNPLUG_PRIMARY", since=mark.events, **{"device-id": t.primary})
        gone = released(source, t, mark) or (released(dest, t, START, first=True) if dest else None)
        if event is not None and "wait-unplug" in migration.info["statuses"] and gone is not None:
            # the kernel's own line, which its emulated serial port may print a little after the report
            if not any("unregistered" in line for line in gone[2]) and watch.held("console", True, now) < LAG:
                return None
            return "ok", f"QMP UNPLUG_PRIMARY {t.primary}, the migration waited in wait-unplug; {gone[1]}", (
                [fmt_event(event)] + gone[2])
        if event is None and (migration.status in ("active", "postcopy-active") or migration.status in FINAL):
            return "fail", f"QEMU sent no UNPLUG_PRIMARY for {t.primary} (migration {migration.path}): " + (
                why_no_primary(run, source, t)), source.warnings()[-3:]
        if event is not None and migration.status in FINAL and watch.held("kept", gone is None, now) > SETTLE:
            return "fail", f"the guest did not release {t.primary} (migration {migration.path})", []
        return None
    return judge


def why_no_primary(run: Run, q: Qemu, t: TeamPlan) -> str:
    """Why QEMU has no failover primary to unplug, in QEMU's words where it gave any."""
    if not standby_has_failover(run.plan.command, t.standby):
        return f"{t.standby} has no failover=on, so {t.primary} is an ordinary device to QEMU"
    present = peripherals(q)
    if present is not None and t.primary not in present:
        return f"QEMU never plugged it into {t.primary_bus}: {plug_refusal(q)}"
    return "the guest never negotiated failover"


def standby_carried(ticks: list[Tick], t: TeamPlan, minimum: int = 1) -> Verdict | None:
    """While the primary was away (the first unbroken run of reports without it), did the standby
    carry the pings? Decided once it carried `minimum` each way, or when the primary came back."""
    run: list[Tick] = []
    ended = False
    for tick in ticks:
        if primary_away(tick, t):
            run.append(tick)
        elif run:
            ended = True
            break
    if len(run) < 2:
        return None
    first, last = run[0], run[-1]
    s0, s1 = first.slave(first.master(t.mac), "virtio"), last.slave(last.master(t.mac), "virtio")
    if s0 is None or s1 is None:
        return None
    tx, rx = s1.tx - s0.tx, s1.rx - s0.rx
    evidence = [f"guest {first.origin} t={first.uptime:.2f}: {s0.line()}",
                f"guest {last.origin} t={last.uptime:.2f}: {s1.line()}"]
    if tx >= minimum and rx >= minimum:
        return "ok", (f"while {t.primary} was away ({len(run)} guest reports, t={first.uptime:.2f}-"
                      f"{last.uptime:.2f} s) the pings went through the standby {s1.name}: tx +{tx} rx +{rx}"), evidence
    if ended:
        return "fail", f"the standby did not carry the pings while {t.primary} was away (tx +{tx} rx +{rx})", evidence
    return None


def standby_during(source: Qemu, mark: Mark, dest: Qemu | None):
    def judge(team: TeamResult, watch: Watch, now: float) -> Verdict | None:
        ticks = source.guest.ticks[mark.ticks:] + (dest.guest.ticks if dest is not None else [])
        return standby_carried(ticks, team.team)
    return judge


def replugged(run: Run, migration: Migration | None, dest: Qemu, mark: Mark, where: str):
    """On `dest` (where the VM runs after the migration or the cancel) QEMU plugged the primary back
    and the guest made it the bond's primary again."""
    has = Presence(dest)

    def judge(team: TeamResult, watch: Watch, now: float) -> Verdict | None:
        t = team.team
        if migration is not None and migration.status in ("failed", "cancelled") and where != "source":
            return "fail", f"migration {migration.status}: {migration.info.get('error') or dest.warnings()[-1:]}", (
                migration.source.warnings()[-3:] + dest.warnings()[-3:])
        if migration is not None and where != "source" and migration.status != "completed":
            return None
        event = dest.qmp.find("FAILOVER_NEGOTIATED", since=mark.events, **{"device-id": t.standby})
        if where != "source" and event is None:
            verdict = bonded(dest, run.plan.command, t, mark, watch, now)
            return verdict if verdict and verdict[0] == "fail" else None
        present = has(t.primary)
        if present is None:
            return None
        if not present:
            if watch.held("absent", True, now) < SETTLE:
                has.forget(t.primary)  # QEMU plugs it back a moment after the cancel: ask again
                return None
            return "fail", (f"QEMU did not plug {t.primary} back into {t.primary_bus} on the {where}: "
                            f"{plug_refusal(dest)}"), dest.warnings()[-5:]
        verdict = bonded(dest, run.plan.command, t, mark, watch, now)
        if verdict is None or verdict[0] == "fail":
            return verdict
        head = f"{where}: QMP FAILOVER_NEGOTIATED {t.standby}, " if event else f"{where}: "
        return "ok", f"{head}{t.primary} plugged back; the guest bonded it again: {verdict[1]}", (
            ([fmt_event(event)] if event else []) + verdict[2])
    return judge


def traffic_after(dest: Qemu, mark: Mark, where: str):
    def judge(team: TeamResult, watch: Watch, now: float) -> Verdict | None:
        t = team.team
        ticks = dest.guest.ticks[mark.ticks:]
        start = next((i for i, tk in enumerate(ticks) if primary_up(tk, t)), None)
        if start is None:
            return None
        verdict = traffic(ticks[start:], t, "pci", lambda tk: primary_up(tk, t))
        if verdict is None:
            return None
        resume = dest.qmp.find("RESUME", since=mark.events)
        detail = f"{where}: {verdict[1]}"
        if resume is not None and where != "source":
            detail += f"; the primary had link {ticks[start].at - resume.at:.1f} s after the {where} resumed"
        return "ok", detail, verdict[2]
    return judge


def live(run: Run, source: Qemu, role: str, suffix: str = "", postcopy: bool = False) -> Qemu | None:
    """Live-migrate the VM from `source` to a new QEMU and judge the failover around it; the new QEMU
    (now running the VM) or None when the VM did not make it there."""
    mark = source.mark()
    try:
        dest, uri = listen(run, role, postcopy=postcopy)
        # Post-copy needs a pre-copy still running when it is switched on: a slow copy keeps it running.
        migration = begin(run, source, uri, postcopy, bandwidth=SLOW if postcopy else None)
    except MigrationError as err:
        run.result.vm_check(f"migration{suffix}").fail(err.args[0], err.args[1], run.seconds())
        for team in run.result.teams:
            team.check(f"primary unplugged{suffix}").skip("no migration")
        return None
    switched: list[bool] = []
    standby = f"traffic on standby{suffix}"

    def standby_judged() -> bool:
        # or half way through the slow pre-copy (about 9 s for the test guest), so that a standby that
        # never carries anything still leaves a post-copy to judge
        return (all(standby in t.checks and not t.checks[standby].pending for t in run.result.teams)
                or time.monotonic() - migration.started > PRECOPY_WAIT)

    def hook() -> None:
        migration.follow()
        # Post-copy stops the source and finishes the copy at full speed, which leaves the standby a
        # fraction of a second alone: the switch waits until the pre-copy showed it carrying the pings.
        if postcopy and not switched and migration.status == "active" and standby_judged():
            switched.append(True)
            try:
                source.execute("migrate-start-postcopy")
                run.progress("switched to post-copy")
            except QmpError as err:
                migration.info["error"] = f"migrate-start-postcopy: {err}"

    run.steps(source, [
        Step(f"primary unplugged{suffix}", unplugged(run, migration, source, mark, dest),
             lambda t: f"the unplug of {t.primary}", expect="unplugged"),
        Step(f"traffic on standby{suffix}", standby_during(source, mark, dest),
             lambda t: "pings through the standby"),
    ], hook)
    run.steps(dest, [
        Step(f"primary re-plugged{suffix}", replugged(run, migration, dest, START, role),
             lambda t: f"FAILOVER_NEGOTIATED for {t.standby} on the {role} and the guest to bond {t.primary} again",
             expect="whole"),
        Step(f"traffic after migration{suffix}", traffic_after(dest, START, role),
             lambda t: f"pings through {t.primary} on the {role}", expect="whole"),
    ], hook)
    while migration.status not in FINAL and time.monotonic() < run.deadline and source.alive():
        run.pause(0.2, hook)
    check = run.result.vm_check(f"migration{suffix}")
    if migration.status == "completed":
        check.ok(f"to {migration.uri}: {describe(migration.info)}", [], round(migration.started - run.started
                                                                              + migration.info["seconds"], 1))
    else:
        check.fail(f"to {migration.uri}: {describe(migration.info)}", source.warnings()[-3:] + dest.warnings()[-3:],
                   run.seconds())
    if postcopy and "postcopy-active" not in migration.info["statuses"]:
        run.result.vm_check("post-copy").fail(
            f"the migration never ran in post-copy (migration {migration.path}"
            f"{': ' + migration.info['error'] if 'error' in migration.info else ''})", [], run.seconds())
    elif postcopy:
        run.result.vm_check("post-copy").ok(f"migrate-start-postcopy during pre-copy: migration {migration.path}",
                                            [], run.seconds())
    if migration.status != "completed" or not dest.alive():
        return None
    source.stop()
    return dest


def describe(info: dict) -> str:
    """`completed (setup -> wait-unplug -> active -> completed), 1.02 s, downtime 13 ms, total 940 ms`"""
    facts = [f"{info.get('status', 'unfinished')} ({' -> '.join(info.get('statuses', [])) or 'no status'})"]
    if "seconds" in info:
        facts.append(f"{info['seconds']:.2f} s")
    if "downtime_ms" in info:
        facts.append(f"downtime {info['downtime_ms']} ms")
    if "total_time_ms" in info:
        facts.append(f"total {info['total_time_ms']} ms")
    if info.get("error"):
        facts.append(info["error"])
    return ", ".join(facts)


SLOW = 8 << 20  # bytes/s: a copy slow enough (the guest's RAM takes seconds) to act on while it runs
PRECOPY_WAIT = 4.0  # s: the longest post-copy waits for the standby's verdict before it is switched on


def save_to(path: str) -> str:
    return f"exec:cat > {shlex.quote(path)}"


def restore_from(path: str) -> str:
    return f"exec:cat {shlex.quote(path)}"
