"""The results verify hands to the report: checks, per team and per VM, grouped by scenario."""

from __future__ import annotations

from dataclasses import dataclass, field

from .plan import TeamPlan, VmPlan


@dataclass
class Check:
    name: str
    status: str = "pending"  # pending | ok | fail | skipped
    detail: str = ""
    evidence: list[str] = field(default_factory=list)
    seconds: float | None = None  # when it was decided, counted from the start of its scenario

    def ok(self, detail: str, evidence=(), seconds: float | None = None) -> None:
        self.status, self.detail, self.evidence, self.seconds = "ok", detail, list(evidence), seconds

    def fail(self, detail: str, evidence=(), seconds: float | None = None) -> None:
        self.status, self.detail, self.evidence, self.seconds = "fail", detail, list(evidence), seconds

    def skip(self, detail: str) -> None:
        self.status, self.detail = "skipped", detail

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    def as_json(self) -> dict:
        return {"check": self.name, "status": self.status, "seconds": self.seconds, "detail": self.detail,
                "evidence": self.evidence}


@dataclass
class TeamResult:
    team: TeamPlan
    checks: dict[str, Check] = field(default_factory=dict)

    def check(self, name: str) -> Check:
        """The check `name`, added (pending) at the end if it is new."""
        return self.checks.setdefault(name, Check(name))

    @property
    def proven(self) -> bool:
        return bool(self.checks) and all(c.status == "ok" for c in self.checks.values())

    @property
    def failure(self) -> Check | None:
        return next((c for c in self.checks.values() if c.status == "fail"), None)

    def as_json(self) -> dict:
        t = self.team
        return {"team": t.name, "standby": t.standby, "primary": t.primary, "mac": t.mac,
                "primary_mac": t.primary_mac, "verdict": "proven" if self.proven else "failed",
                "checks": [c.as_json() for c in self.checks.values()]}


@dataclass
class ScenarioResult:
    name: str
    teams: list[TeamResult]
    vm_checks: dict[str, Check] = field(default_factory=dict)  # what concerns the VM as a whole
    boot: str = ""  # "fresh boot" or the scenario whose VM this one went on with
    seconds: float | None = None
    error: str | None = None  # a VM-level failure (QEMU would not start, the guest did not boot, ...)
    error_evidence: list[str] = field(default_factory=list)
    migrations: list[dict] = field(default_factory=list)  # each migration's URI, status path and QEMU's figures
    traffic: dict[str, dict] = field(default_factory=dict)  # team name -> ping stream figures
    interfaces: list[dict] = field(default_factory=list)  # the guest's interface count after each step

    def vm_check(self, name: str) -> Check:
        return self.vm_checks.setdefault(name, Check(name))

    def checks(self) -> list[Check]:
        return list(self.vm_checks.values()) + [c for t in self.teams for c in t.checks.values()]

    @property
    def proven(self) -> bool:
        return self.error is None and bool(self.teams) and all(c.status == "ok" for c in self.checks())

    def failures(self) -> list[str]:
        out = [f"{self.error}"] if self.error else []
        out += [f"{c.name}: {c.detail}" for c in self.vm_checks.values() if c.status == "fail"]
        out += [f"{t.team.name}: {t.failure.name}: {t.failure.detail}" for t in self.teams if t.failure]
        return out

    def as_json(self) -> dict:
        return {"scenario": self.name, "verdict": "pass" if self.proven else "fail", "boot": self.boot,
                "seconds": self.seconds, "error": self.error, "error_evidence": self.error_evidence,
                "checks": [c.as_json() for c in self.vm_checks.values()],
                "teams": [t.as_json() for t in self.teams], "migrations": self.migrations,
                "traffic": self.traffic, "interfaces": self.interfaces}


@dataclass
class VmResult:
    plan: VmPlan
    image: str
    scenarios: list[ScenarioResult] = field(default_factory=list)
    error: str | None = None  # nothing could run at all (no team in the VM)
    workdir: str | None = None

    @property
    def proven(self) -> bool:
        return self.error is None and bool(self.scenarios) and all(s.proven for s in self.scenarios)

    def as_json(self) -> dict:
        return {"vm": self.plan.vm, "verdict": "pass" if self.proven else "fail", "accel": self.plan.accel,
                "guest": self.image, "error": self.error, "changes": self.plan.changes, "argv": self.plan.argv,
                "scenarios": [s.as_json() for s in self.scenarios], "workdir": self.workdir}
