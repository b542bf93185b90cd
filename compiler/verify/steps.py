"""How a scenario runs: one VM (its current QEMU), steps judged per team or for the whole VM, each
under a deadline, while every QEMU of the scenario is polled.

A step is judged for every team still in the running (a team whose earlier step failed skips the rest
with "not reached"); when all are decided, the guest's interface count is recorded against what the
step expects (master + standby + primary per team, or master + standby while unplugged).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .guest import GuestImage
from .judge import Verdict, Watch, expected_interfaces, iface_lines, primary_away, whole
from .plan import TeamPlan, VmPlan
from .process import POLL, Qemu, Session
from .progress import Progress
from .records import Check, ScenarioResult, TeamResult


@dataclass
class Settings:
    scenarios: tuple[str, ...] = ("boot",)
    timeout: float = 120.0  # per scenario
    max_gap: float = 8.0  # the longest time without a ping reply a scenario tolerates (guest clock)
    keep: bool = False


@dataclass
class Step:
    name: str
    judge: Callable[[TeamResult, Watch, float], Verdict | None]  # (team, its watch, now)
    waiting: Callable[[TeamPlan], str]  # what a timeout was waiting for, in words
    expect: str | None = None  # the interface state once done: "whole" | "unplugged"


class Run:
    """One VM through the scenarios: its current QEMU, and the scenario being run on it."""

    def __init__(self, session: Session, plan: VmPlan, image: GuestImage, settings: Settings, progress: Progress):
        self.session, self.plan, self.image, self.settings, self.progress = session, plan, image, settings, progress
        self.q: Qemu | None = None  # the QEMU the VM runs in now
        self.primaries_removed = False  # hot-unplug left them out
        self.result: ScenarioResult  # the scenario being run: begin() sets it before any step
        self.started = 0.0
        self.deadline = 0.0
        self.qemus: list[Qemu] = []  # every QEMU the current scenario involves, polled together

    def begin(self, result: ScenarioResult) -> None:
        self.result = result
        self.started = time.monotonic()
        self.deadline = self.started + self.settings.timeout
        self.qemus = [self.q] if self.q is not None else []
        self.progress.begin(f"{self.plan.vm} {result.name}: ")

    def current(self) -> Qemu:
        """The QEMU the VM runs in now: a scenario runs only after a boot started one."""
        if self.q is None:
            raise RuntimeError("a scenario ran on a VM that was not started")
        return self.q

    def qemu(self, role: str, incoming: bool = False) -> Qemu:
        q = self.session.qemu(self.plan.argv, self.image, role, incoming)
        self.qemus.append(q)
        return q

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def poll(self) -> None:
        for q in self.qemus:
            q.poll()
        self.progress.tick()

    def pause(self, seconds: float, hook: Callable[[], None] | None = None) -> None:
        """Wait, reading everything meanwhile."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll()
            if hook:
                hook()
            time.sleep(POLL)

    def teams_in_play(self) -> list[TeamResult]:
        return [t for t in self.result.teams if t.failure is None]

    def steps(self, q: Qemu, steps: list[Step], hook: Callable[[], None] | None = None) -> bool:
        """Judge `steps` in order on the guest of `q`; `hook()` runs at every poll (e.g. to follow a
        migration). True when every team passed them all."""
        for step in steps:
            self.step(q, step, hook)
        return all(t.failure is None for t in self.result.teams)

    def step(self, q: Qemu, step: Step, hook: Callable[[], None] | None = None) -> None:
        watches = {t.team.name: Watch() for t in self.result.teams}
        started = time.monotonic()
        for team in self.result.teams:
            check = team.check(step.name)
            if team.failure is not None and check.pending:
                check.skip("not reached")
        while True:
            now = time.monotonic()
            self.poll()
            if hook:
                hook()
            pending = [t for t in self.result.teams if t.checks[step.name].pending]
            for team in pending:
                verdict = step.judge(team, watches[team.team.name], now)
                if verdict is not None:
                    self._decide(team.checks[step.name], verdict)
                    if verdict[0] == "ok":
                        self.progress(f"{team.team.name}: {step.name}")
            if not any(t.checks[step.name].pending for t in self.result.teams):
                break
            if not q.alive() or now > self.deadline:
                why = (f"{q.role} QEMU stopped: {(q.warnings() or ['no message'])[-1]}" if not q.alive()
                       else f"timed out after {self.settings.timeout:.0f} s waiting for")
                for team in self.result.teams:
                    check = team.checks[step.name]
                    if check.pending:
                        tick = q.guest.ticks[-1] if q.guest.ticks else None
                        detail = why if not q.alive() else f"{why} {step.waiting(team.team)}"
                        check.fail(detail, iface_lines(tick, q.role) + q.warnings()[-3:], self.seconds())
                break
            time.sleep(POLL)
        if step.expect and all(t.checks[step.name].status == "ok" for t in self.result.teams):
            self.count_interfaces(q, step.name, step.expect, started)

    def vm_step(self, q: Qemu, name: str, judge: Callable[[float], Verdict | None], waiting: str,
                hook: Callable[[], None] | None = None) -> bool:
        """A step of the VM as a whole; True when it passed."""
        check = self.result.vm_check(name)
        while check.pending:
            now = time.monotonic()
            self.poll()
            if hook:
                hook()
            verdict = judge(now)
            if verdict is not None:
                self._decide(check, verdict)
                if verdict[0] == "ok":
                    self.progress(name)
            elif not q.alive():
                check.fail(f"{q.role} QEMU stopped: {(q.warnings() or ['no message'])[-1]}", q.warnings()[-5:],
                           self.seconds())
            elif now > self.deadline:
                check.fail(f"timed out after {self.settings.timeout:.0f} s waiting for {waiting}",
                           q.warnings()[-3:], self.seconds())
            else:
                time.sleep(POLL)
        if check.status == "fail":
            for team in self.result.teams:
                for c in team.checks.values():
                    if c.pending:
                        c.skip("not reached")
        return check.status == "ok"

    def _decide(self, check: Check, verdict: Verdict) -> None:
        status, detail, evidence = verdict
        (check.ok if status == "ok" else check.fail)(detail, evidence, self.seconds())

    def count_interfaces(self, q: Qemu, after: str, state: str, since: float) -> None:
        """Record the guest's interface count in its first report since `since` (from whichever QEMU ran it)
        in which every team is in `state`, against the count that state calls for; without such a report,
        the count in the latest one (a step decided at once, on reports from before it, has only that one)."""
        expected = expected_interfaces(self.plan.command, len(self.plan.teams), state == "unplugged")
        ticks = sorted((tk for q in self.qemus for tk in q.guest.ticks), key=lambda tk: tk.at)
        ticks = [tk for tk in ticks if tk.at >= since] or ticks[-1:]
        match = whole if state == "whole" else primary_away
        tick = next((tk for tk in ticks if all(match(tk, t) for t in self.plan.teams)), ticks[-1] if ticks else None)
        count = len(tick.ifaces) if tick else 0
        self.result.interfaces.append({"after": after, "count": count, "expected": expected,
                                       "names": sorted(tick.ifaces) if tick else [],
                                       "evidence": iface_lines(tick, q.role)})
