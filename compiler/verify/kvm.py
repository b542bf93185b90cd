"""Whether KVM really runs a guest on this host: tried once per host boot, the answer kept in the cache."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from .guest import GuestImage
from .process import POLL, Session
from .qmp import QmpError


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
