"""The scenarios `teamc verify --scenario` runs, each a sequence of QMP actions and judged steps on
the running VM (steps.py), in the order `all` runs them.

Each scenario starts from a running VM whose teams are whole, and leaves one behind when it passes,
so the next scenario goes on with the same VM (as libvirt's failover tests chain their actions on one
domain); after a failure the next scenario boots a fresh one.
"""

from __future__ import annotations

import time

from . import migration
from .judge import (
    SETTLE,
    Presence,
    Verdict,
    Watch,
    bonded,
    console_for,
    device,
    fmt_event,
    memory_hint,
    peripherals,
    plug_refusal,
    primary_up,
    released,
    slot,
    standby_has_failover,
    traffic,
)
from .migration import MigrationError, replugged, standby_carried, traffic_after, unplugged
from .qmp import QmpError
from .records import TeamResult
from .serial import START, Mark
from .steps import Run, Step

SUSPENDED = 1.0  # seconds the VM stays paused in suspend-resume


# --- boot (also the fresh boot before any other scenario) -----------------------------------------


def boot(run: Run) -> None:
    q = run.qemu("source")
    run.q = q
    run.primaries_removed = False
    run.progress(f"starting QEMU ({run.plan.accel})")
    try:
        q.start(timeout=min(30.0, run.settings.timeout))
        mark = q.mark()
        q.execute("cont")
    except (QmpError, OSError) as err:
        time.sleep(0.2)
        run.result.error = f"QEMU did not start: {q.warnings()[-1] if q.warnings() else err}"
        run.result.error_evidence = q.warnings()[-10:]
        return
    if guest_up(run, q, mark, "guest booted", q.started):
        team_boot_steps(run, q, mark, q.started, "start")


def guest_up(run: Run, q, mark: Mark, name: str, since: float) -> bool:
    """The guest's /init ran (again) and loaded the failover drivers."""
    def judge(now: float) -> Verdict | None:
        loaded = q.guest.note("modules", since=mark)
        if loaded is None:
            if not q.alive():
                time.sleep(0.2)
                q.guest.read()
                why = q.warnings()[-1] if q.warnings() else f"QEMU exited with status {q.proc.returncode}"
                if q.guest.note("boot", since=mark) is None and not q.warnings():
                    why += (" before the guest's /init ran: the guest reset or powered off (QEMU runs with "
                            f"-no-reboot){memory_hint(run.plan.command)}")
                return "fail", f"QEMU stopped: {why}", (
                    q.warnings()[-10:] + [f"console: {line}" for _, line in q.guest.console[-5:]])
            return None
        failed = [text.split()[1] for _, text in q.guest.notes[mark.notes:] if text.startswith("module-failed ")]
        if failed:
            return "fail", f"the guest could not load {', '.join(failed)}", [
                f"console: {line}" for _, line in q.guest.console if any(m in line for m in failed)][-10:]
        booted = q.guest.note("boot", since=mark) or loaded  # (a garbled line may have lost the first note)
        return "ok", (f"/init ran {booted[0] - since:.1f} s and the failover drivers were loaded "
                      f"{loaded[0] - since:.1f} s after the {'start' if name == 'guest booted' else 'reset'}"), []
    ok = run.vm_step(q, name, judge, "the guest's /init to load the failover drivers")
    if not ok and q.guest.note("boot", since=mark) is None and name == "guest booted":
        check = run.result.vm_checks[name]
        check.evidence += [f"console: {line}" for _, line in q.guest.console[-10:]]
    return ok


def team_boot_steps(run: Run, q, mark: Mark, since: float, what: str) -> None:
    has = Presence(q)

    def negotiated(team: TeamResult, watch: Watch, now: float) -> Verdict | None:
        t = team.team
        event = q.qmp.find("FAILOVER_NEGOTIATED", since=mark.events, **{"device-id": t.standby})
        if event is not None:
            return "ok", f"QMP FAILOVER_NEGOTIATED {t.standby} {event.at - since:.1f} s after the {what}", [
                fmt_event(event)]
        ticks = q.guest.ticks[mark.ticks:]
        if not ticks:
            return None
        tick = ticks[-1]
        virtio = [i for i in tick.ifaces.values() if i.kind == "virtio" and i.mac == t.mac]
        lonely = bool(virtio) and all(i.name not in tick.enslaved() for i in virtio)
        if watch.held("unbonded-virtio", lonely, now) > SETTLE:
            why = ("the standby has no failover=on" if not standby_has_failover(run.plan.command, t.standby)
                   else "the guest's virtio_net did not accept VIRTIO_NET_F_STANDBY")
            standins = [i for i in tick.ifaces.values() if i.kind == "pci" and i.mac == t.primary_mac]
            return "fail", (f"not negotiated: QEMU sent no FAILOVER_NEGOTIATED for {t.standby} and the guest's "
                            f"virtio_net made no failover master for {t.mac} ({why})"), (
                [f"guest: {i.line()}" for i in virtio]
                + [f"guest: {i.line()} (the stand-in for {t.primary}, not hidden by QEMU, not bonded)"
                   for i in standins] + console_for(q, virtio, since=mark))
        if watch.held("no-virtio", not virtio, now) > 2 * SETTLE:
            hint = ""
            where, primary_where = slot(run.plan.command, t.standby), slot(run.plan.command, t.primary)
            if where[2] and where[:2] == primary_where[:2] and primary_where[2] == 0:
                hint = (f"; {t.standby} is function {where[2]} of the slot whose function 0 is {t.primary}, "
                        "which QEMU hides until negotiation, and a guest does not scan a slot without function 0")
            return "fail", f"not negotiated: the guest has no virtio NIC with MAC {t.mac}{hint}", [
                f"guest: {i.line()}" for i in tick.ifaces.values()]
        return None

    def primary_plugged(team: TeamResult, watch: Watch, now: float) -> Verdict | None:
        t = team.team
        present = has(t.primary)
        if present is None:
            return None
        if present:
            return "ok", f"QEMU plugged {t.primary} into {t.primary_bus} slot {t.primary_addr}", [
                f"qom-list /machine/peripheral: {t.primary} present"]
        return "fail", f"QEMU did not plug {t.primary} into {t.primary_bus}: {plug_refusal(q)}", (
            q.warnings()[-5:] + [f"qom-list /machine/peripheral: no {t.primary}"])

    run.steps(q, [
        Step("negotiated", negotiated, lambda t: f"QMP FAILOVER_NEGOTIATED for {t.standby}"),
        Step("primary plugged", primary_plugged, lambda t: f"QEMU to plug {t.primary}"),
        Step("bonded in guest", lambda team, watch, now: bonded(q, run.plan.command, team.team, mark, watch, now),
             lambda t: f"the guest to bond {t.mac} (master + virtio standby + {t.primary} stand-in)",
             expect="whole"),
        Step("traffic on primary", on_primary(q, mark), lambda t: f"pings through the primary of {t.name}",
             expect="whole"),
    ])
    for team in run.result.teams:
        if team.checks["primary plugged"].status == "skipped" and team.checks["negotiated"].status == "fail":
            team.checks["primary plugged"].detail = "QEMU plugs the primary only after negotiation"


def on_primary(q, mark: Mark):
    def judge(team: TeamResult, watch: Watch, now: float) -> Verdict | None:
        t = team.team
        return traffic(q.guest.ticks[mark.ticks:], t, "pci", lambda tk: primary_up(tk, t))
    return judge


# --- the VM paused and resumed, reset ------------------------------------------------------------


def suspend_resume(run: Run) -> None:
    q = run.current()
    mark = q.mark()

    def paused(now: float) -> Verdict | None:
        event = q.qmp.find("STOP", since=mark.events)
        return ("ok", "QMP stop: STOP, the VM is paused", [fmt_event(event)]) if event else None
    try:
        q.execute("stop")
    except QmpError as err:
        run.result.vm_check("paused").fail(f"stop refused: {err}", [], run.seconds())
        return
    if not run.vm_step(q, "paused", paused, "the STOP event"):
        return
    before = len(q.guest.ticks)
    run.pause(SUSPENDED)
    during = len(q.guest.ticks) - before
    resumed_mark = q.mark()

    def resumed(now: float) -> Verdict | None:
        event = q.qmp.find("RESUME", since=resumed_mark.events)
        ticks = q.guest.ticks[resumed_mark.ticks:]
        if event is None or not ticks:
            return None
        return "ok", (f"QMP cont after {SUSPENDED:.0f} s paused (the guest sent {during} report"
                      f"{'s' * (during != 1)} meanwhile): RESUME, the guest reports again at t={ticks[0].uptime:.2f}"
                      ), [fmt_event(event)]
    try:
        q.execute("cont")
    except QmpError as err:
        run.result.vm_check("resumed").fail(f"cont refused: {err}", [], run.seconds())
        return
    if not run.vm_step(q, "resumed", resumed, "the RESUME event and a new guest report"):
        return
    run.steps(q, [
        Step("bond whole", lambda team, watch, now: bonded(q, run.plan.command, team.team, resumed_mark, watch, now),
             lambda t: f"the guest to report {t.mac} bonded", expect="whole"),
        Step("traffic on primary", on_primary(q, resumed_mark), lambda t: f"pings through {t.primary}",
             expect="whole"),
    ])


def reboot(run: Run) -> None:
    q = run.current()
    mark = q.mark()
    try:
        # QEMU runs with -no-reboot (a guest that resets by itself has failed); this reset is asked for.
        q.execute("set-action", {"reboot": "reset"})
        q.execute("system_reset")
    except QmpError as err:
        run.result.vm_check("reset").fail(f"system_reset refused: {err}", [], run.seconds())
        return

    def reset(now: float) -> Verdict | None:
        event = q.qmp.find("RESET", since=mark.events)
        return ("ok", "QMP system_reset: RESET", [fmt_event(event)]) if event else None
    try:
        if run.vm_step(q, "reset", reset, "the RESET event") and guest_up(run, q, mark, "guest rebooted", mark.at):
            team_boot_steps(run, q, mark, mark.at, "reset")
    finally:
        try:
            q.execute("set-action", {"reboot": "shutdown"})
        except QmpError:
            pass


# --- hot-unplug, hot-plug -------------------------------------------------------------------------


def hot_unplug(run: Run) -> None:
    q = run.current()
    mark = q.mark()
    refused: dict[str, str] = {}
    for team in run.teams_in_play():
        t = team.team
        try:
            q.execute("device_del", {"id": t.primary})
            run.primaries_removed = True
        except QmpError as err:
            refused[t.name] = f"device_del {t.primary}: {str(err).split(': ', 1)[-1]}" + (
                "" if standby_has_failover(run.plan.command, t.standby) and (peripherals(q) or set()) & {t.primary}
                else f" ({migration.why_no_primary(run, q, t)})")

    def removed(team: TeamResult, watch: Watch, now: float) -> Verdict | None:
        t = team.team
        if t.name in refused:
            return "fail", refused[t.name], q.warnings()[-3:]
        event = q.qmp.find("DEVICE_DELETED", since=mark.events, device=t.primary)
        gone = released(q, t, mark)
        if event is not None and gone is not None:
            return "ok", f"QMP device_del {t.primary}: DEVICE_DELETED; {gone[1]}", [fmt_event(event)] + gone[2]
        return None

    def on_standby(team: TeamResult, watch: Watch, now: float) -> Verdict | None:
        t = team.team
        ticks = q.guest.ticks[mark.ticks:]
        verdict = standby_carried(ticks, t, minimum=3)
        if (verdict is None and ticks and ticks[-1].master(t.mac) is None
                and watch.held("no-master", True, now) > SETTLE):
            why = "" if standby_has_failover(run.plan.command, t.standby) else f" ({t.standby} has no failover=on)"
            message = f"no failover master for {t.mac} in the guest{why}: no bond to move the pings to the standby"
            return "fail", message, [f"guest: {i.line()}" for i in ticks[-1].ifaces.values()]
        return verdict

    run.steps(q, [
        Step("primary removed", removed, lambda t: f"DEVICE_DELETED for {t.primary} and the guest to release it",
             expect="unplugged"),
        Step("traffic on standby", on_standby, lambda t: f"pings through the standby {t.standby}",
             expect="unplugged"),
    ])


def hot_plug(run: Run) -> None:
    q = run.current()
    if not run.primaries_removed:
        _remove_first(run, q)
    mark = q.mark()
    refused: dict[str, str] = {}
    for team in run.teams_in_play():
        t = team.team
        props = device(run.plan.command, t.primary)
        try:
            q.execute("device_add", props)
        except QmpError as err:
            refused[t.name] = f"device_add {t.primary} on {t.primary_bus}: {str(err).split(': ', 1)[-1]}"
    run.primaries_removed = False
    has = Presence(q)

    def added(team: TeamResult, watch: Watch, now: float) -> Verdict | None:
        t = team.team
        if t.name in refused:
            return "fail", refused[t.name], q.warnings()[-3:]
        present = has(t.primary)
        if present is None:
            return None
        if present:
            return "ok", f"QMP device_add {t.primary} on {t.primary_bus} slot {t.primary_addr}: QEMU plugged it", [
                f"qom-list /machine/peripheral: {t.primary} present"]
        return "fail", f"QEMU accepted device_add {t.primary} but has no such device", q.warnings()[-3:]

    run.steps(q, [
        Step("primary added", added, lambda t: f"QEMU to plug {t.primary}"),
        Step("bonded again", lambda team, watch, now: bonded(q, run.plan.command, team.team, mark, watch, now),
             lambda t: f"the guest to bond {t.primary} to {t.mac} again", expect="whole"),
        Step("traffic on primary", on_primary(q, mark), lambda t: f"pings through {t.primary}", expect="whole"),
    ])


def _remove_first(run: Run, q) -> None:
    """hot-plug on its own: take the primaries out first (not judged; hot-unplug is that scenario)."""
    mark = q.mark()
    asked = []
    for team in run.teams_in_play():
        try:
            q.execute("device_del", {"id": team.team.primary})
            asked.append(team.team.primary)
        except QmpError:
            pass  # not there: device_add will say what QEMU makes of it
    end = time.monotonic() + run.settings.timeout / 4
    while asked and time.monotonic() < end:
        run.pause(0.2)
        if all(q.qmp.find("DEVICE_DELETED", since=mark.events, device=p) for p in asked):
            break


# --- migrations ------------------------------------------------------------------------------------


def migrate(run: Run) -> None:
    dest = migration.live(run, run.current(), "destination")
    if dest is not None:
        run.q = dest


def migrate_back(run: Run) -> None:
    dest = migration.live(run, run.current(), "destination")
    if dest is None:
        return
    run.q = dest
    back = migration.live(run, dest, "source again", suffix=" back")
    if back is not None:
        run.q = back


def postcopy(run: Run) -> None:
    dest = migration.live(run, run.current(), "destination", postcopy=True)
    if dest is not None:
        run.q = dest


def abort_migration(run: Run) -> None:
    source = run.current()
    mark = source.mark()
    try:
        bandwidth = source.execute("query-migrate-parameters").get("max-bandwidth")
        dest, uri = migration.listen(run, "destination")
        mig = migration.begin(run, source, uri, bandwidth=migration.SLOW)
    except (MigrationError, QmpError) as err:
        why, evidence = err.args if isinstance(err, MigrationError) else (str(err), [])
        run.result.vm_check("migration").fail(why, evidence, run.seconds())
        return
    cancelled: list[float] = []

    def hook() -> None:
        mig.follow()

    try:
        run.steps(source, [Step("primary unplugged", unplugged(run, mig, source, mark),
                                lambda t: f"the unplug of {t.primary}", expect="unplugged")], hook)
        # The copy runs slowly, so it is still running here (or has just reached `active`).
        while mig.status in ("setup", "wait-unplug") and time.monotonic() < run.deadline:
            run.pause(0.1, hook)
        try:
            source.execute("migrate_cancel")
            cancelled.append(time.monotonic())
        except QmpError as err:
            run.result.vm_check("migration cancelled").fail(f"migrate_cancel refused: {err}", [], run.seconds())
            return
        after = source.mark()

        def judge(now: float) -> Verdict | None:
            if mig.status == "completed":
                return "fail", f"the migration completed before it could be cancelled ({mig.path})", []
            if mig.status not in ("cancelled", "failed"):
                return None
            status = source.execute("query-status").get("status")
            if status != "running":
                return "fail", f"after the cancel the VM is {status} on the source, not running", []
            return "ok", (f"QMP migrate_cancel while {'active' if 'active' in mig.info['statuses'] else 'in setup'}: "
                          f"migration {mig.path}; the VM runs on the source"), []
        if not run.vm_step(source, "migration cancelled", judge, "the migration to be cancelled", hook):
            return
        run.steps(source, [
            Step("primary re-plugged", replugged(run, mig, source, after, "source"),
                 lambda t: f"QEMU to plug {t.primary} back on the source and the guest to bond it", expect="whole"),
            Step("traffic on primary", traffic_after(source, after, "source"),
                 lambda t: f"pings through {t.primary} on the source", expect="whole"),
        ], hook)
    finally:
        try:
            if bandwidth is not None:
                source.execute("migrate-set-parameters", {"max-bandwidth": bandwidth})
        except QmpError:
            pass
        dest.stop()


def save_restore(run: Run) -> None:
    source = run.current()
    mark = source.mark()
    image = run.session.folder / "saved-vm.img"
    try:
        mig = migration.begin(run, source, migration.save_to(str(image)))
    except MigrationError as err:
        run.result.vm_check("saved").fail(err.args[0], err.args[1], run.seconds())
        return

    def hook() -> None:
        mig.follow()

    run.steps(source, [Step("primary unplugged", unplugged(run, mig, source, mark),
                            lambda t: f"the unplug of {t.primary}", expect="unplugged")], hook)

    def saved(now: float) -> Verdict | None:
        if mig.status not in migration.FINAL:
            return None
        if mig.status != "completed":
            return "fail", f"the save to {image.name} {migration.describe(mig.info)}", source.warnings()[-3:]
        size = image.stat().st_size if image.exists() else 0
        done = migration.describe(mig.info)
        return "ok", f"QEMU migrated the VM into {image.name} ({size / 2**20:.0f} MiB): {done}", []
    if not run.vm_step(source, "saved", saved, "the migration to the file to complete", hook):
        return
    source.stop()  # as `virsh save` leaves it: the VM exists only in the file now
    try:
        restored, _ = migration.listen(run, "restored", migration.restore_from(str(image)))
    except MigrationError as err:
        run.result.vm_check("restored").fail(err.args[0], err.args[1], run.seconds())
        return
    run.q = restored

    def running(now: float) -> Verdict | None:
        event = restored.qmp.find("RESUME")
        if event is None:
            return None
        return "ok", f"a new QEMU loaded {image.name} (migrate-incoming) and runs the VM", [fmt_event(event)]
    if not run.vm_step(restored, "restored", running, f"the new QEMU to load {image.name} and resume"):
        return
    run.steps(restored, [
        Step("primary re-plugged", replugged(run, None, restored, START, "restored VM"),
             lambda t: f"FAILOVER_NEGOTIATED for {t.standby} after the restore and the guest to bond {t.primary}",
             expect="whole"),
        Step("traffic after restore", traffic_after(restored, START, "restored VM"),
             lambda t: f"pings through {t.primary} after the restore", expect="whole"),
    ])


# name -> (what it does, how); `all` runs them in this order
SCENARIOS = {
    "boot": ("boot the VM: every team negotiated, plugged, bonded and carrying the pings", boot),
    "suspend-resume": ("pause the VM (stop) and resume it (cont): the bond is whole after", suspend_resume),
    "hot-unplug": ("device_del each primary: the standby carries the pings", hot_unplug),
    "hot-plug": ("device_add each primary back on its root port: the bond takes it as primary again", hot_plug),
    "abort-migration": ("cancel a live migration while it runs: the primary comes back on the source",
                        abort_migration),
    "migrate": ("live-migrate to a second QEMU: primary unplugged, standby carries, primary back there", migrate),
    "migrate-back": ("migrate to a second QEMU and back to a third: the bond is whole at both ends", migrate_back),
    "postcopy": ("live migration switched to post-copy: primary unplugged before, plugged back there", postcopy),
    "save-restore": ("save the VM to a file (migration to a file) and restore it into a new QEMU", save_restore),
    "reboot": ("system_reset: the guest comes back with its bond and primary", reboot),
}
