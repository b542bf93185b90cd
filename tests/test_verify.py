"""`teamc verify`: real boots of a real guest in the real QEMU, no mocks.

The guest image is built from Debian's packages into the work tree's cache
(`.cache/teamc`, or $TEAMC_CACHE) by tests/install-deps.sh; the fixture builds
it if it is missing. One test forces TCG; the others use KVM when it really
runs a guest here and TCG otherwise, so the whole group also passes without KVM.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compiler.layout import layout
from compiler.pipeline import check_source, load
from compiler.verify.guest import GuestImage, build_debian_image
from compiler.backends.qemu import encode
from compiler.verify.plan import decode, plan_vm
from compiler.verify.runner import Progress, Settings, verify_vm
from helpers import ROOT, TESTS

CACHE = Path(os.environ.get("TEAMC_CACHE") or ROOT / ".cache" / "teamc")
SEED = "examples/seed.team"
README = (ROOT / "README.md").read_text()
BOOT_CHECKS = ["negotiated", "primary plugged", "bonded in guest", "traffic on primary"]
MIGRATION_CHECKS = ["primary unplugged", "traffic on standby", "primary re-plugged", "traffic after migration"]


@pytest.fixture(scope="module")
def image() -> GuestImage:
    return build_debian_image(CACHE)


def verify(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compiler", "verify", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "TEAMC_CACHE": str(CACHE)})


def checks(team: dict) -> dict[str, str]:
    return {c["check"]: c["status"] for c in team["checks"]}


def failed(team: dict) -> dict:
    return next(c for c in team["checks"] if c["status"] == "fail")


# --- the verification argv (no boot) ---------------------------------------------------------


def test_verification_argv_is_the_compiled_argv_with_only_the_stand_ins_swapped():
    graph, _ = check_source(load("examples/fleet.team")[0])
    plan = plan_vm(layout(graph)[0], accel="tcg")  # edge-a: two teams on host bridges
    compiled, argv = plan.compiled, plan.argv
    pairs = lambda a: [(a[i], a[i + 1]) for i in range(1, len(a) - 1) if a[i].startswith("-")]  # noqa: E731
    kept = [(o, v) for o, v in pairs(compiled) if o != "-accel" and "vfio-pci" not in v and '"bridge"' not in v]
    assert all(pair in pairs(argv) for pair in kept)  # root ports, standbys, ids: exactly as compiled
    standins = [decode(v, "driver") for o, v in pairs(argv) if o == "-device" and "e1000e" in v]
    vfs = [decode(v, "driver") for o, v in pairs(compiled) if o == "-device" and "vfio-pci" in v]
    assert len(standins) == len(vfs) == 2
    for vf, standin in zip(vfs, standins):
        team = next(t for t in plan.teams if t.primary == vf["id"])
        assert {k: standin[k] for k in ("id", "bus", "addr", "failover_pair_id")} == {
            k: vf[k] for k in ("id", "bus", "addr", "failover_pair_id")}
        assert standin["mac"] == team.mac and standin["romfile"] == ""
        assert ("-netdev", encode("type", {"type": "user", "id": standin["netdev"]}, "json")) in pairs(argv)
    assert not any('"bridge"' in v for _, v in pairs(argv))
    assert ("-accel", "tcg") in pairs(argv)
    assert any("bridge br-wan -> user networking" in c for c in plan.changes)


def test_guest_image_has_the_failover_modules_and_a_pvh_kernel(image):
    meta = json.loads((image.initrd.parent / "image.json").read_text())
    assert meta["modules"] == ["failover", "net_failover", "virtio_ring", "virtio", "virtio_pci_modern_dev",
                               "virtio_pci_legacy_dev", "virtio_pci", "virtio_net", "e1000e"]
    assert meta["kernel_package"].startswith("linux-image-") and meta["busybox_package"].startswith("busybox-static")
    assert image.kernel.name == "vmlinux" and image.kernel.read_bytes()[:4] == b"\x7fELF"
    assert build_debian_image(CACHE) == image  # cached: the second call builds nothing


# --- proven --------------------------------------------------------------------------------------


def test_seed_is_proven_in_a_guest_under_tcg(image):
    proc = verify(SEED, "--accel", "tcg", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["verdict"] == "pass"
    (vm,) = report["vms"]
    assert vm["vm"] == "QEMUGuest1" and vm["accel"] == "tcg" and vm["error"] is None and vm["migration"] is None
    assert "accel kvm -> tcg (--accel tcg)" in vm["changes"]
    assert ["-accel", "tcg"] in [vm["argv"][i:i + 2] for i in range(len(vm["argv"]))]
    assert [t["team"] for t in vm["teams"]] == ["backup0", "backup1"]
    for team in vm["teams"]:
        assert team["verdict"] == "proven"
        assert checks(team) == {name: "ok" for name in BOOT_CHECKS}
        evidence = {c["check"]: c["evidence"] for c in team["checks"]}
        assert evidence["negotiated"] == [
            f'QMP {{"event": "FAILOVER_NEGOTIATED", "data": {{"device-id": "{team["standby"]}"}}}}']
        kernel = [line for line in evidence["bonded in guest"] if "failover" in line and line.startswith("[")]
        assert [re.sub(r".*failover (\w+( slave)?):.*", r"\1", line) for line in kernel] == [
            "master", "standby slave", "primary slave"]  # the guest kernel's own words
    # progress on stderr, one line per step when it is not a terminal
    assert "teamc verify: [" in proc.stderr and "QEMUGuest1: negotiated ua-backup0" in proc.stderr


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
        line = re.sub(r"\d+ (ms|guest reports)", r"N \1", line)
        out.append(line)
    return out


def test_seed_migration_is_proven_as_the_readme_shows(image):
    proc = verify("--migrate", SEED)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    readme = re.search(r"\$ teamc verify --migrate examples/seed.team\n(.*?)```", README, re.S).group(1)
    assert _transcript_shape(proc.stdout) == _transcript_shape(readme)
    assert "verdict: PASS: 2 of 2 teams proven (QEMUGuest1)" in proc.stdout
    for check in BOOT_CHECKS + MIGRATION_CHECKS:
        assert proc.stdout.count(f"ok   {check}") == 2, proc.stdout
    assert re.search(r"completed \(setup -> wait-unplug -> active -> completed\), \d+\.\d+ s, downtime \d+ ms",
                     proc.stdout)


# --- caught by QEMU or the guest, not by the compiler -------------------------------------------


def test_mac_mismatch_gives_no_bond_in_the_guest(image):
    assert verify("tests/cases/mac-mismatch.team").returncode == 1  # the compiler refuses it
    proc = verify("tests/cases/mac-mismatch.team", "--force", "E0308", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "warning[E0308]" in proc.stderr and "E0308 forced" in proc.stderr
    (team,) = json.loads(proc.stdout)["vms"][0]["teams"]
    assert checks(team) == {"negotiated": "ok", "primary plugged": "ok", "bonded in guest": "fail",
                            "traffic on primary": "skipped"}
    why = failed(team)
    assert why["detail"].startswith("no bond: the guest did not enslave")
    assert "MAC 52:54:00:aa:00:10" in why["detail"] and "pairs NICs by MAC" in why["detail"]
    assert any("failover master:" in line for line in why["evidence"])
    assert not any("failover primary slave" in line for line in why["evidence"])


def test_primary_on_a_conventional_pci_bus_is_refused(image):
    # libvirt's own fixture: the i440fx `pc` machine (allowed there with `allow pc-machine-team`).
    proc = verify("tests/conformance/net-virtio-teaming.team")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.count("FAIL primary plugged") == 2
    assert "QEMU did not plug hostdev0 into pci.0: failover primary device must be on PCIExpress bus" in proc.stdout
    assert "verdict: FAIL: 0 of 2 teams proven" in proc.stdout


def test_primary_without_a_hotpluggable_slot_is_refused(image):
    proc = verify("tests/cases/primary-not-hotpluggable.team", "--force", "primary-not-hotpluggable")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL primary plugged          QEMU did not plug hostdev0 into pcie.0: Bus 'pcie.0' does not support " \
           "hotplugging" in proc.stdout


def test_standby_without_failover_is_not_negotiated(image):
    """The language always writes failover=on, so the argv is edited here, as a hand-written one might be."""
    graph, _ = check_source(load(SEED)[0])
    plan = plan_vm(layout(graph)[0], accel="tcg")
    for i, arg in enumerate(plan.argv):
        if plan.argv[i - 1] == "-device" and "virtio-net-pci" in arg:
            props = decode(arg, "driver")
            del props["failover"]
            plan.argv[i] = encode("driver", props, "json")
    result = verify_vm(plan, image, Settings(timeout=90), Progress(enabled=False))
    assert not result.proven and result.error is None
    for team in result.teams:
        negotiated = team.checks["negotiated"]
        assert negotiated.status == "fail"
        assert negotiated.detail.startswith(f"not negotiated: QEMU sent no FAILOVER_NEGOTIATED for {team.team.standby}")
        assert "the standby has no failover=on" in negotiated.detail
        assert any("not hidden by QEMU, not bonded" in line for line in negotiated.evidence)
        assert [c.status for c in team.checks.values()] == ["fail", "skipped", "skipped", "skipped"]


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
    proc = subprocess.Popen([sys.executable, "-m", "compiler", "verify", str(team), "--migrate", "--accel", "tcg"],
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
    (("does-not-exist.team",), "cannot read does-not-exist.team"),
])
def test_usage_errors_exit_2(args, message):
    proc = verify(*args, "--guest-image", str(TESTS))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
