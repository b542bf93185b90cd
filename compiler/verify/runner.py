"""Run the selected scenarios on one VM and collect its result.

The scenarios go one after the other on the same VM while they pass (see scenarios.py); a scenario
that needs a VM and has none, or follows a failure on a VM whose boot was proven, starts from a fresh
boot (not counted in its time). After each scenario the ping stream of every team is judged (replies
lost, the longest gap against `--max-gap`) and the guest's interface counts are compared with what
each step called for.
"""

from __future__ import annotations

from .guest import GuestImage
from .judge import stream
from .plan import VmPlan
from .process import Session
from .progress import Progress
from .records import ScenarioResult, TeamResult, VmResult
from .scenarios import SCENARIOS, boot
from .steps import Run, Settings


def verify_vm(plan: VmPlan, image: GuestImage, settings: Settings, progress: Progress) -> VmResult:
    result = VmResult(plan, image.description)
    if not plan.teams:
        result.error = "no team to verify (no transient NIC with a persistent partner)"
        return result
    with Session(settings.keep) as session:
        if settings.keep:
            result.workdir = str(session.folder)
        run = Run(session, plan, image, settings, progress)
        previous: ScenarioResult | None = None
        boot_proven = False
        for name in settings.scenarios:
            scenario = ScenarioResult(name, [TeamResult(t) for t in plan.teams])
            result.scenarios.append(scenario)
            stale = previous is not None and not previous.proven and boot_proven
            if name == "boot" or run.q is None or not run.q.alive() or stale:
                _retire(run)
                if name != "boot":
                    prepared = _fresh_boot(run, plan)
                    if prepared.error or any(c.status == "fail" for c in prepared.vm_checks.values()):
                        scenario.error = f"the VM did not boot: {prepared.failures()[0]}"
                        scenario.error_evidence = prepared.error_evidence
                        _finish(run, scenario, judged=False)
                        previous = scenario
                        continue
                    boot_proven = prepared.proven
                    scenario.boot = f"fresh boot ({prepared.seconds:.1f} s, not counted)"
                else:
                    scenario.boot = "fresh boot"
            else:
                assert previous is not None  # the VM runs, so an earlier scenario started it
                scenario.boot = f"same VM as {previous.name}"
            run.begin(scenario)
            SCENARIOS[name][1](run)
            _finish(run, scenario)
            if name == "boot":
                boot_proven = scenario.proven
            previous = scenario
        progress.done()
    return result


def _retire(run: Run) -> None:
    """Stop the VM of the scenarios before: a fresh boot follows."""
    for q in run.session.processes:
        if q.alive():
            q.stop()
    run.q = None


def _fresh_boot(run: Run, plan: VmPlan) -> ScenarioResult:
    prepared = ScenarioResult("boot", [TeamResult(t) for t in plan.teams])
    run.begin(prepared)
    boot(run)
    prepared.seconds = run.seconds()
    return prepared


def _finish(run: Run, scenario: ScenarioResult, judged: bool = True) -> None:
    if judged:
        scenario.seconds = run.seconds()
        _judge_stream(run, scenario)
        _judge_interfaces(scenario)
    for check in scenario.checks():
        if check.pending:
            check.skip(check.detail or "not reached")
    for q in run.qemus:  # what the scenario left behind besides the VM (a cancelled destination, ...)
        if q is not run.q and q.alive():
            q.stop()


def _judge_stream(run: Run, scenario: ScenarioResult) -> None:
    """Each team's ping stream during the scenario: replies, losses and the longest gap."""
    replies = [r for q in run.qemus for r in q.guest.replies if r.at >= run.started]
    ticks = [tk for q in run.qemus for tk in q.guest.ticks]
    limit = run.settings.max_gap
    for team in scenario.teams:
        t = team.team
        check = team.check("traffic stream")
        masters = (tk.master(t.mac) for tk in sorted(ticks, key=lambda tk: tk.at, reverse=True))
        master = next((m.name for m in masters if m), None)
        if master is None:
            why = f"no failover master for {t.mac} in the guest: nothing to ping through"
            (check.skip if team.failure else check.fail)(why)
            continue
        figures = stream(replies, master)
        figures["limit_s"] = limit
        scenario.traffic[t.name] = figures
        text = (f"ping {master}: {figures['replies']} replies, {figures['lost']} lost, longest gap "
                f"{figures['longest_gap_s']:.1f} s (limit {limit:.1f} s, guest clock)")
        if team.failure is not None:
            check.skip(f"{text}; not judged after the failure")
        elif figures["replies"] < 2:
            check.fail(f"no ping stream through {master}: {figures['replies']} replies", [], scenario.seconds)
        elif figures["longest_gap_s"] > limit:
            check.fail(f"{text}: the gap from t={figures['gap_from_s']:.2f} s exceeds the limit (--max-gap)", [],
                       scenario.seconds)
        else:
            check.ok(text, [], scenario.seconds)


def _judge_interfaces(scenario: ScenarioResult) -> None:
    if not scenario.interfaces:
        return
    check = scenario.vm_check("interfaces")
    wrong = next((i for i in scenario.interfaces if i["count"] != i["expected"]), None)
    if wrong is not None:
        check.fail(f"after {wrong['after']} the guest had {wrong['count']} interfaces, expected {wrong['expected']}",
                   wrong["evidence"], scenario.seconds)
    else:
        check.ok("after " + ", ".join(f"{i['after']}: {i['count']}" for i in scenario.interfaces)
                 + " (master + standby + primary per team, master + standby while unplugged)", [], scenario.seconds)


def selected(names: list[str]) -> tuple[str, ...]:
    """The scenarios asked for, in the order `all` runs them; raises ValueError naming an unknown one."""
    wanted: set[str] = set()
    for name in names:
        if name == "all":
            wanted |= set(SCENARIOS)
        elif name in SCENARIOS:
            wanted.add(name)
        else:
            raise ValueError(name)
    return tuple(name for name in SCENARIOS if name in wanted)


__all__ = ["Settings", "selected", "verify_vm"]
