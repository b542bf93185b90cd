"""The verdict: human text or a JSON document."""

from __future__ import annotations

import json

MARK = {"ok": "ok  ", "fail": "FAIL", "skipped": " -  ", "pending": " ?  "}


def human(results, path: str, show_evidence: bool = True) -> str:
    out: list[str] = []
    for r in results:
        plan = r.plan
        out.append(f"{plan.vm} ({path}): guest {r.image}, {plan.accel}"
                   + (f", booted and checked in {r.boot_seconds:.1f} s" if r.boot_seconds is not None else ""))
        out.append("  verification argv = the compiled argv with:")
        for change in plan.changes or ["(nothing changed)"]:
            out.append(f"    {change}")
        if r.error:
            out.append(f"  FAIL {r.error}")
            for line in r.error_evidence:
                out.append(f"         | {line}")
        for team in r.teams:
            t = team.team
            verdict = "PROVEN" if team.proven else "FAILED"
            out.append(f"  team {t.name} (standby {t.standby}, primary {t.primary}, MAC {t.mac}): {verdict}")
            for check in team.checks.values():
                out.append(f"    {MARK[check.status]} {check.name:<24} {check.detail}".rstrip())
                if show_evidence and check.evidence and (check.status == "fail" or check.name in (
                        "bonded in guest", "primary unplugged", "primary re-plugged")):
                    for line in check.evidence:
                        out.append(f"           | {line}")
        m = r.migration
        if m:
            path_text = " -> ".join(m.get("statuses", [])) or "no status"
            facts = [f"{m.get('status', '?')} ({path_text})"]
            if "seconds" in m:
                facts.append(f"{m['seconds']:.2f} s")
            if "downtime_ms" in m:
                facts.append(f"downtime {m['downtime_ms']} ms")
            if "total_time_ms" in m:
                facts.append(f"total {m['total_time_ms']} ms")
            out.append(f"  migration to {m.get('uri', '?')}: " + ", ".join(facts))
        out.append("")
    teams = [t for r in results for t in r.teams]
    proven = sum(t.proven for t in teams)
    ok = all(r.proven for r in results) and bool(results)
    failed = [f"{r.plan.vm}/{t.team.name}: {t.failure.name}: {t.failure.detail}"
              for r in results for t in r.teams if t.failure is not None]
    failed += [f"{r.plan.vm}: {r.error}" for r in results if r.error]
    vms = ", ".join(r.plan.vm for r in results)
    out.append(f"verdict: {'PASS' if ok else 'FAIL'}: {proven} of {len(teams)} team{'s' * (len(teams) != 1)} "
               f"proven ({vms})")
    for line in failed:
        out.append(f"  {line}")
    return "\n".join(out) + "\n"


def as_json(results, path: str) -> str:
    ok = all(r.proven for r in results) and bool(results)
    return json.dumps({"version": 1, "file": path, "verdict": "pass" if ok else "fail",
                       "vms": [r.as_json() for r in results]}, indent=2) + "\n"
