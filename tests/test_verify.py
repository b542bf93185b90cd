"""`teamc verify`: real boots of a real guest in the real QEMU, no mocks.

The guest image is built from Debian's packages into the work tree's cache
(`.cache/teamc`, or $TEAMC_CACHE) by tests/install-deps.sh; the fixture builds
it if it is missing. Most tests force TCG (what CI has); the others use KVM when it really
runs a guest here and TCG otherwise, so the whole group also passes without KVM.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import ROOT, TESTS
from teamc.layout import layout
from teamc.pipeline import check_source, load
from teamc.verify.guest import GuestImage, build_debian_image
from teamc.verify.plan import plan_vm
from teamc.verify.progress import Progress
from teamc.verify.runner import selected, verify_vm
from teamc.verify.steps import Settings

CACHE = Path(os.environ.get("TEAMC_CACHE") or ROOT / ".cache" / "teamc")
SEED = "examples/seed.team"
MIGRATION_CHECKS = ["primary unplugged", "traffic on standby", "primary re-plugged", "traffic after migration"]


@pytest.fixture(scope="module")
def image() -> GuestImage:
    return build_debian_image(CACHE)


def verify(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "teamc", "verify", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "TEAMC_CACHE": str(CACHE)}, check=False)


def checks(team: dict) -> dict[str, str]:
    return {c["check"]: c["status"] for c in team["checks"]}


def failed(team: dict) -> dict:
    return next(c for c in team["checks"] if c["status"] == "fail")


# --- the verification argv (no boot) ---------------------------------------------------------


def test_verification_argv_is_the_compiled_argv_with_only_the_stand_ins_swapped():
    graph, _ = check_source(load("examples/fleet.team")[0])
    plan = plan_vm(layout(graph)[0], accel="tcg")  # edge-a: two teams on host bridges
    compiled, command = plan.compiled, plan.command
    kept = [f for f in compiled.flags
            if f.name != "-accel" and f.get("driver") != "vfio-pci" and f.get("type") != "bridge"]
    assert all(flag in command.flags for flag in kept)  # root ports, standbys, ids: exactly as compiled
    standins = command.devices("e1000e")
    vfs = compiled.devices("vfio-pci")
    assert len(standins) == len(vfs) == 2
    for vf, standin in zip(vfs, standins, strict=True):
        team = next(t for t in plan.teams if t.primary == vf.props["id"])
        assert {k: standin.props[k] for k in ("id", "bus", "addr", "failover_pair_id")} == {
            k: vf.props[k] for k in ("id", "bus", "addr", "failover_pair_id")}
        assert standin.props["mac"] == team.mac and standin.props["romfile"] == ""
        netdevs = [f.props for f in command.flags if f.name == "-netdev"]
        assert {"type": "user", "id": standin.props["netdev"]} in netdevs
    assert not any(f.get("type") == "bridge" for f in command.flags)
    assert ("-accel", "tcg") in itertools.pairwise(plan.argv)
    assert any("bridge br-wan -> user networking" in c for c in plan.changes)


def test_guest_image_has_the_failover_modules_and_a_pvh_kernel(image):
    meta = json.loads((image.initrd.parent / "image.json").read_text())
    assert meta["modules"] == ["failover", "net_failover", "virtio_ring", "virtio", "virtio_pci_modern_dev",
                               "virtio_pci_legacy_dev", "virtio_pci", "virtio_net", "e1000e"]
    assert meta["kernel_package"].startswith("linux-image-") and meta["busybox_package"].startswith("busybox-static")
    assert image.kernel.name == "vmlinux" and image.kernel.read_bytes()[:4] == b"\x7fELF"
    assert build_debian_image(CACHE) == image  # cached: the second call builds nothing


# --- proven --------------------------------------------------------------------------------------

SCENARIO_CHECKS = {  # per team, in order; then "traffic stream" in every scenario
    "boot": ["negotiated", "primary plugged", "bonded in guest", "traffic on primary"],
    "suspend-resume": ["bond whole", "traffic on primary"],
    "hot-unplug": ["primary removed", "traffic on standby"],
    "hot-plug": ["primary added", "bonded again", "traffic on primary"],
    "abort-migration": ["primary unplugged", "primary re-plugged", "traffic on primary"],
    "migrate": MIGRATION_CHECKS,
    "migrate-back": MIGRATION_CHECKS + [f"{c} back" for c in MIGRATION_CHECKS],
    "postcopy": MIGRATION_CHECKS,
    "save-restore": ["primary unplugged", "primary re-plugged", "traffic after restore"],
    "reboot": ["negotiated", "primary plugged", "bonded in guest", "traffic on primary"],
}
VM_CHECKS = {
    "boot": ["guest booted"],
    "suspend-resume": ["paused", "resumed"],
    "abort-migration": ["migration cancelled"],
    "migrate": ["migration"],
    "migrate-back": ["migration", "migration back"],
    "postcopy": ["migration", "post-copy"],
    "save-restore": ["saved", "restored"],
    "reboot": ["reset", "guest rebooted"],
}


def test_the_cli_lists_every_scenario():
    from teamc.verify import SCENARIO_NAMES
    from teamc.verify.scenarios import SCENARIOS

    assert SCENARIO_NAMES == tuple(SCENARIOS) == tuple(SCENARIO_CHECKS)


def test_every_scenario_passes_on_the_seed_under_tcg(image):
    started = time.monotonic()
    proc = verify(SEED, "--accel", "tcg", "--scenario", "all", "--json", timeout=900)
    took = time.monotonic() - started
    report = json.loads(proc.stdout)
    failures = [(s["scenario"], c["check"], c["detail"]) for s in report["vms"][0]["scenarios"]
                for c in s["checks"] + [c for t in s["teams"] for c in t["checks"]] if c["status"] == "fail"]
    assert proc.returncode == 0 and not failures, failures
    assert report["version"] == 2 and report["verdict"] == "pass"
    (vm,) = report["vms"]
    assert vm["vm"] == "QEMUGuest1" and vm["accel"] == "tcg" and vm["error"] is None
    assert "accel kvm -> tcg (--accel tcg)" in vm["changes"]
    assert [s["scenario"] for s in vm["scenarios"]] == list(SCENARIO_CHECKS)
    for scenario in vm["scenarios"]:
        name = scenario["scenario"]
        assert scenario["verdict"] == "pass", (name, scenario)
        # one boot carries them all when they pass
        assert scenario["boot"] == ("fresh boot" if name == "boot" else "same VM as " + vm["scenarios"][
            [s["scenario"] for s in vm["scenarios"]].index(name) - 1]["scenario"])
        assert 0 < scenario["seconds"] < 120
        assert [c["check"] for c in scenario["checks"]] == VM_CHECKS.get(name, []) + ["interfaces"]
        for team in scenario["teams"]:
            assert team["verdict"] == "proven"
            assert [c["check"] for c in team["checks"]] == SCENARIO_CHECKS[name] + ["traffic stream"]
            # each step says when it was decided, within the scenario
            assert all(0 <= c["seconds"] <= scenario["seconds"] for c in team["checks"])
            figures = scenario["traffic"][team["team"]]
            assert figures["replies"] >= 2 and figures["longest_gap_s"] <= figures["limit_s"] == 8.0
        # the interface count after each step: master + standby + primary per team, or without primaries
        counts = {i["after"]: (i["count"], i["expected"]) for i in scenario["interfaces"]}
        assert all(count == expected for count, expected in counts.values()), counts
        assert {expected for _, expected in counts.values()} <= {6, 4}
    by_name = {s["scenario"]: s for s in vm["scenarios"]}
    assert by_name["hot-unplug"]["interfaces"][0] == {**by_name["hot-unplug"]["interfaces"][0], "count": 4}
    assert by_name["boot"]["teams"][0]["checks"][0]["evidence"] == [
        'QMP {"event": "FAILOVER_NEGOTIATED", "data": {"device-id": "ua-backup0"}}']
    kernel = [line for line in by_name["boot"]["teams"][0]["checks"][2]["evidence"] if line.startswith("[")]
    assert [re.sub(r".*failover (\w+( slave)?):.*", r"\1", line) for line in kernel] == [
        "master", "standby slave", "primary slave"]  # the guest kernel's own words
    statuses = {name: [m["statuses"] for m in s["migrations"]] for name, s in by_name.items() if s["migrations"]}
    assert statuses["migrate"] == [["setup", "wait-unplug", "active", "completed"]]
    assert statuses["migrate-back"] == [["setup", "wait-unplug", "active", "completed"]] * 2
    assert "postcopy-active" in statuses["postcopy"][0] and statuses["postcopy"][0][-1] == "completed"
    assert statuses["abort-migration"][0][-2:] == ["cancelling", "cancelled"]
    assert statuses["save-restore"][0][-1] == "completed"
    assert by_name["save-restore"]["migrations"][0]["uri"].startswith("exec:cat > ")
    # progress on stderr, one line per step when it is not a terminal
    assert "teamc verify: [" in proc.stderr and "QEMUGuest1 migrate: backup0: primary re-plugged" in proc.stderr
    print(f"--scenario all on the seed under TCG: {took:.0f} s")


def _transcript_shape(text: str) -> list[str]:
    """A verify transcript without what differs from run to run and machine to machine: times,
    counters, guest interface names, the port, the kernel version and the accelerator."""
    out = []
    for line in text.splitlines():
        if "accel kvm -> tcg" in line:
            continue
        line = re.sub(r"guest Debian \S+ \S+, (kvm|tcg)", "guest Debian K, ACCEL", line)
        line = re.sub(r"\[\s*\d+\.\d+\]", "[T]", line)
        line = re.sub(r"\beth\d+\b", "ethN", line)
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line)
        line = re.sub(r"\d+\.\d+", "F", line)
        line = re.sub(r"(tx|rx) ?([=+])\d+", r"\1 \2N", line)
        line = re.sub(r"\d+ (ms|guest reports|replies|lost)", r"N \1", line)
        line = re.sub(r" +", " ", line)
        out.append(line)
    return out


def test_seed_migration_is_proven_as_docs_verify_md_shows(image):
    proc = verify("--scenario", "migrate", SEED)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = (ROOT / "docs" / "verify.md").read_text()
    shown = re.search(r"\$ teamc verify --scenario migrate examples/seed.team\n(.*?)```", page, re.DOTALL).group(1)
    assert _transcript_shape(proc.stdout) == _transcript_shape(shown)
    assert "verdict: PASS: 1 of 1 scenario passed (QEMUGuest1)" in proc.stdout
    assert re.search(r"completed \(setup -> wait-unplug -> active -> completed\), \d+\.\d+ s, downtime \d+ ms",
                     proc.stdout)


def test_a_gap_in_the_ping_stream_over_the_limit_fails_the_scenario(image):
    # Re-plugging the primary costs pings: once net_failover has enslaved it, the standby's receive path
    # stops feeding the bond until the primary has link (the stand-in needs a second or more for that).
    proc = verify(SEED, "--accel", "tcg", "--scenario", "hot-plug", "--max-gap", "0.5", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (scenario,) = json.loads(proc.stdout)["vms"][0]["scenarios"]
    for team in scenario["teams"]:
        assert checks(team) == {"primary added": "ok", "bonded again": "ok", "traffic on primary": "ok",
                                "traffic stream": "fail"}
        why = failed(team)["detail"]
        assert re.search(r"longest gap (\d+\.\d) s \(limit 0\.5 s, guest clock\): the gap from t=\d+\.\d+ s "
                         r"exceeds the limit \(--max-gap\)", why), why
        assert scenario["traffic"][team["team"]]["longest_gap_s"] > 0.5


# --- caught by QEMU or the guest, not by the compiler -------------------------------------------

# For each broken team, the first failure of every scenario, as (check, words of the reason).
MAC_MISMATCH = "no bond: the guest did not enslave"
NEGATIVES = {
    "mac-mismatch": {
        "boot": ("bonded in guest", MAC_MISMATCH),
        "suspend-resume": ("bond whole", MAC_MISMATCH),
        "hot-plug": ("bonded again", MAC_MISMATCH),
        "abort-migration": ("primary re-plugged", MAC_MISMATCH),
        "migrate": ("primary re-plugged", MAC_MISMATCH),
        "migrate-back": ("primary re-plugged", MAC_MISMATCH),
        "postcopy": ("primary re-plugged", MAC_MISMATCH),
        "save-restore": ("primary re-plugged", MAC_MISMATCH),
        "reboot": ("bonded in guest", MAC_MISMATCH),
    },
    "pcie.0": {
        "boot": ("primary plugged",
                 "QEMU did not plug hostdev0 into pcie.0: Bus 'pcie.0' does not support hotplugging"),
        "suspend-resume": ("bond whole", "QEMU has no hostdev0: Bus 'pcie.0' does not support hotplugging"),
        "hot-unplug": ("primary removed", ("Device 'hostdev0' not found (QEMU never plugged it into pcie.0: Bus "
                                           "'pcie.0' does not support hotplugging)")),
        "hot-plug": ("primary added", "device_add hostdev0 on pcie.0: Bus 'pcie.0' does not support hotplugging"),
        **{name: ("primary unplugged", ("QEMU sent no UNPLUG_PRIMARY for hostdev0 (migration setup -> active): QEMU "
                                        "never plugged it into pcie.0: Bus 'pcie.0' does not support hotplugging"))
           for name in ("abort-migration", "migrate", "migrate-back", "postcopy", "save-restore")},
        "reboot": ("primary plugged", "QEMU did not plug hostdev0 into pcie.0"),
    },
    "no-failover": {
        "boot": ("negotiated", "not negotiated: QEMU sent no FAILOVER_NEGOTIATED for ua-backup0"),
        "suspend-resume": ("bond whole", "no failover master for 00:11:22:33:44:55 (the standby has no failover=on)"),
        "hot-unplug": ("traffic on standby", ("no failover master for 00:11:22:33:44:55 in the guest (ua-backup0 "
                                              "has no failover=on)")),
        "hot-plug": ("bonded again", "no failover master for 00:11:22:33:44:55 (the standby has no failover=on)"),
        **{name: ("primary unplugged", ("QEMU sent no UNPLUG_PRIMARY for hostdev0 (migration setup -> active): "
                                        "ua-backup0 has no failover=on, so hostdev0 is an ordinary device to QEMU"))
           for name in ("abort-migration", "migrate", "migrate-back", "postcopy", "save-restore")},
        "reboot": ("negotiated", "the standby has no failover=on"),
    },
}


def _first_failures(scenarios: list[dict]) -> dict[str, tuple[str, str]]:
    out = {}
    for scenario in scenarios:
        assert scenario["error"] is None, scenario
        team = scenario["teams"][0]
        if team["verdict"] == "failed":
            out[scenario["scenario"]] = (failed(team)["check"], failed(team)["detail"])
    return out


def _assert_negatives(scenarios: list[dict], case: str) -> None:
    failures = _first_failures(scenarios)
    assert set(failures) == set(NEGATIVES[case]), failures
    for name, (check, words) in NEGATIVES[case].items():
        assert failures[name][0] == check and words in failures[name][1], (name, failures[name])


def test_mac_mismatch_breaks_every_scenario_that_needs_the_bond(image):
    assert verify("tests/cases/mac-mismatch.team").returncode == 1  # the compiler refuses it
    proc = verify("tests/cases/mac-mismatch.team", "--force", "E0308", "--accel", "tcg", "--scenario", "all", "--json",
                  timeout=900)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "warning[E0308]" in proc.stderr and "E0308 forced" in proc.stderr
    scenarios = json.loads(proc.stdout)["vms"][0]["scenarios"]
    _assert_negatives(scenarios, "mac-mismatch")
    # Taking out a stand-in the guest never bonded leaves the pings where they were: on the standby.
    assert next(s for s in scenarios if s["scenario"] == "hot-unplug")["verdict"] == "pass"
    (team,) = scenarios[0]["teams"]
    assert checks(team) == {"negotiated": "ok", "primary plugged": "ok", "bonded in guest": "fail",
                            "traffic on primary": "skipped", "traffic stream": "skipped"}
    why = failed(team)
    assert "MAC 52:54:00:aa:00:10" in why["detail"] and "pairs NICs by MAC" in why["detail"]
    assert any("failover master:" in line for line in why["evidence"])
    assert not any("failover primary slave" in line for line in why["evidence"])


def test_primary_on_pcie0_fails_every_scenario_with_qemus_reason(image):
    proc = verify("tests/cases/primary-not-hotpluggable.team", "--force", "primary-not-hotpluggable", "--accel", "tcg",
                  "--scenario", "all", "--json", timeout=900)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    _assert_negatives(json.loads(proc.stdout)["vms"][0]["scenarios"], "pcie.0")


def test_standby_without_failover_fails_every_scenario(image):
    """The language always writes failover=on, so the argv is edited here, as a hand-written one might be."""
    graph, _ = check_source(load(SEED)[0])
    plan = plan_vm(layout(graph)[0], accel="tcg")
    plan.command = replace(plan.command, flags=tuple(
        f.with_props({k: v for k, v in f.props.items() if k != "failover"}) for f in plan.command.flags))
    result = verify_vm(plan, image, Settings(scenarios=selected(["all"]), timeout=90), Progress(enabled=False))
    assert not result.proven
    scenarios = [s.as_json() for s in result.scenarios]
    _assert_negatives(scenarios, "no-failover")
    boot = result.scenarios[0]
    for team in boot.teams:
        negotiated = team.checks["negotiated"]
        assert negotiated.detail.startswith(f"not negotiated: QEMU sent no FAILOVER_NEGOTIATED for {team.team.standby}")
        assert any("not hidden by QEMU, not bonded" in line for line in negotiated.evidence)
        assert [c.status for c in team.checks.values()] == ["fail", "skipped", "skipped", "skipped", "skipped"]


def test_primary_on_a_conventional_pci_bus_is_refused(image):
    # libvirt's own fixture: the i440fx `pc` machine (allowed there with `allow pc-machine-team`).
    proc = verify("tests/conformance/net-virtio-teaming.team")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.count("FAIL primary plugged") == 2
    assert "QEMU did not plug hostdev0 into pci.0: failover primary device must be on PCIExpress bus" in proc.stdout
    assert "verdict: FAIL: 0 of 1 scenario passed" in proc.stdout


# --- never hangs, never leaks a QEMU ----------------------------------------------------------------


def _qemus_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"guest={name},".encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_stops_every_qemu(image, tmp_path, sig, code):
    name = f"verify-interrupt-{sig.name.lower()}-{os.getpid()}"
    team = tmp_path / "vm.team"
    team.write_text(f"vm {name} {{ memory 256 MiB; team t0 {{ persistent virtio user; transient hostdev "
                    "0000:03:07.1 } }\n")
    proc = subprocess.Popen([sys.executable, "-m", "teamc", "verify", str(team), "--migrate", "--accel", "tcg"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TEAMC_CACHE": str(CACHE)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not _qemus_named(name) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert _qemus_named(name), "QEMU never started"
        time.sleep(1)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "interrupted; every QEMU it started has been stopped" in err
    assert _qemus_named(name) == []


def test_timeout_gives_a_verdict_instead_of_hanging(image):
    started = time.monotonic()
    proc = verify(SEED, "--accel", "tcg", "--timeout", "2")
    assert time.monotonic() - started < 30
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "timed out after 2 s" in proc.stdout or "did not start within 2 s" in proc.stdout


# --- usage ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args,message", [
    ((SEED, "--kernel", "/boot/vmlinuz"), "--kernel and --modules go together"),
    ((SEED, "--force", "E0001"), "--force E0001: verify can go on only despite"),
    ((SEED, "--vm", "nope"), "--vm nope: no such VM"),
    ((), "FILE is required"),
    ((SEED, "--scenario", "boot,migrat"), "--scenario migrat: no such scenario (choose from boot, suspend-resume"),
    ((SEED, "--max-gap", "0"), "--max-gap must be positive"),
    (("does-not-exist.team",), "cannot read does-not-exist.team"),
])
def test_usage_errors_exit_2(args, message):
    proc = verify(*args, "--guest-image", str(TESTS))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr


@pytest.mark.parametrize("fmt,expected", [
    ("concise", "tests/cases/mac-mismatch.team:"),
    ("github", "::error file=tests/cases/mac-mismatch.team"),
    ("sarif", '"ruleId": "E0308"'),
])
def test_diagnostics_print_as_check_prints_them(fmt, expected):
    """verify's --format is the shared one (cli.add_diagnostic_options): every format of `teamc check`,
    on standard error, since standard output has the verdict."""
    proc = verify("tests/cases/mac-mismatch.team", "--format", fmt, "--guest-image", str(TESTS))
    check = subprocess.run([sys.executable, "-m", "teamc", "check", "tests/cases/mac-mismatch.team", "--format", fmt],
                           cwd=ROOT, capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stderr
    assert expected in proc.stderr and proc.stderr == check.stdout + check.stderr


def test_diagnostics_go_to_an_output_file(tmp_path):
    report = tmp_path / "report.json"
    proc = verify("tests/cases/mac-mismatch.team", "--format", "json", "--output-file", str(report),
                  "--guest-image", str(TESTS))
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "")
    assert [d["code"] for d in json.loads(report.read_text())["diagnostics"]] == ["E0308"]
