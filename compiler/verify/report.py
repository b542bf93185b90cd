"""The verdict: human text or a JSON document."""

from __future__ import annotations

import json

from .records import Check

MARK = {"ok": "ok  ", "fail": "FAIL", "skipped": " -  ", "pending": " ?  "}
# ok checks whose evidence the human report shows too (a failure always shows its evidence)
SHOWN = ("bonded in guest", "primary unplugged", "primary re-plugged")


def _check(check: Check, indent: str) -> list[str]:
    when = f"{check.seconds:5.1f} s" if check.seconds is not None else " " * 7
    out = [f"{indent}{MARK[check.status]} {check.name:<26} {when}  {check.detail}".rstrip()]
    if check.evidence and (check.status == "fail" or check.name in SHOWN):
        out += [f"{indent}{' ' * 7}| {line}" for line in check.evidence]
    return out


def human(results, path: str) -> str:
    out: list[str] = []
    for r in results:
        plan = r.plan
        out.append(f"{plan.vm} ({path}): guest {r.image}, {plan.accel}")
        out.append("  verification argv = the compiled argv with:")
        for change in plan.changes or ["(nothing changed)"]:
            out.append(f"    {change}")
        if r.error:
            out.append(f"  FAIL {r.error}")
        for s in r.scenarios:
            took = f", {s.seconds:.1f} s" if s.seconds is not None else ""
            out.append(f"  scenario {s.name}: {'PASS' if s.proven else 'FAIL'}{took} ({s.boot})")
            if s.error:
                out.append(f"    FAIL {s.error}")
                out += [f"           | {line}" for line in s.error_evidence]
            for check in s.vm_checks.values():
                out += _check(check, "    ")
            for team in s.teams:
                t = team.team
                out.append(f"    team {t.name} (standby {t.standby}, primary {t.primary}, MAC {t.mac}): "
                           f"{'PROVEN' if team.proven else 'FAILED'}")
                for check in team.checks.values():
                    out += _check(check, "      ")
        if r.scenarios:
            out.append("  summary:")
            for s in r.scenarios:
                took = f"{s.seconds:5.1f} s" if s.seconds is not None else " " * 7
                traffic = "; ".join(f"{team} {f['lost']} lost, gap {f['longest_gap_s']:.1f} s"
                                    for team, f in s.traffic.items())
                out.append(f"    {s.name:<16} {'PASS' if s.proven else 'FAIL'} {took}  {traffic}".rstrip())
        out.append("")
    scenarios = [s for r in results for s in r.scenarios]
    passed = sum(s.proven for s in scenarios)
    ok = bool(results) and all(r.proven for r in results)
    vms = ", ".join(r.plan.vm for r in results)
    out.append(f"verdict: {'PASS' if ok else 'FAIL'}: {passed} of {len(scenarios)} scenario"
               f"{'s' * (len(scenarios) != 1)} passed ({vms})")
    for r in results:
        if r.error:
            out.append(f"  {r.plan.vm}: {r.error}")
        for s in r.scenarios:
            out += [f"  {r.plan.vm} {s.name}: {line}" for line in s.failures()]
    return "\n".join(out) + "\n"


def as_json(results, path: str) -> str:
    ok = all(r.proven for r in results) and bool(results)
    return json.dumps({"version": 2, "file": path, "verdict": "pass" if ok else "fail",
                       "vms": [r.as_json() for r in results]}, indent=2) + "\n"
