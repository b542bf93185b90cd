"""`teamc verify`: prove that the compiled failover pairs work, in a real guest.

Compiles as usual, derives the verification argv (plan.py: each VF becomes an
emulated e1000e stand-in, host bridges become user networking, nothing else
changes), boots a tiny Linux guest on it (guest.py) and runs the selected
scenarios on it (scenarios.py: boot, migrations, hot-plug, save/restore, ...;
runner.py runs them in turn, steps.py judges their steps from QMP and the
guest's serial reports, serial.py and judge.py), then prints a verdict per
scenario and team (report.py). process.py owns the QEMU processes, signals.py
stops them on SIGTERM/SIGHUP, kvm.py decides whether KVM can run the guest.

Exit status: 0 every scenario passed, 1 one failed (or the input has errors),
2 usage or environment problems (bad options, no QEMU, no guest image).
This module's top level stays light: `teamc check` imports it to build its parser.
"""

from __future__ import annotations

import argparse

FORCIBLE = {
    "E0306": "QEMU refuses a second primary for one standby",
    "E0308": "the guest's net_failover pairs by MAC",
    "E0402": "QEMU refuses a primary that is not alone at function 0",
    "E0404": "QEMU cannot hot-plug the primary on pcie.0",
}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Kept here, not imported from scenarios.py, so that building the parser stays light; a test checks
# that the two agree.
SCENARIO_NAMES = ("boot", "suspend-resume", "hot-unplug", "hot-plug", "abort-migration", "migrate", "migrate-back",
                  "postcopy", "save-restore", "reboot")


def add_parser(subparsers) -> None:
    from ..cli import add_allow_option, add_diagnostic_options

    p = subparsers.add_parser(
        "verify", help="boot the compiled teams in a real guest (VFs emulated) and prove they fail over",
        description="Compile FILE, replace each VF by an emulated e1000e stand-in, boot a small Linux guest in "
                    "QEMU and run the scenarios asked for (--scenario): each team negotiated, bonded in the guest "
                    "and carrying its traffic, through migrations, hot-plug, save/restore, pause and reset. Exit "
                    "status 0: every scenario passed; 1: one failed; 2: usage or environment error.")
    p.add_argument("file", nargs="?", metavar="FILE", help=".team file ('-' reads standard input)")
    p.add_argument("--vm", action="append", default=[], metavar="NAME", help="verify only this VM (repeatable)")
    p.add_argument("--scenario", action="append", default=[], metavar="NAME[,NAME...]",
                   help="what to prove (repeatable, comma-separated, or `all`): "
                        + ", ".join(SCENARIO_NAMES) + " (default: boot)")
    p.add_argument("--migrate", action="store_true", help="the same as --scenario boot,migrate")
    p.add_argument("--max-gap", type=float, default=8.0, metavar="SECONDS",
                   help="a scenario fails when the guest's ping stream goes longer than this without a reply "
                        "(guest clock; default 8)")
    guest = p.add_argument_group("guest")
    guest.add_argument("--kernel", metavar="K", help="boot this kernel (needs --modules)")
    guest.add_argument("--modules", metavar="DIR",
                       help="folder searched for the kernel's failover, net_failover, virtio*, e1000e modules")
    guest.add_argument("--guest-image", metavar="DIR", help="a guest image folder (vmlinuz, initrd.gz) teamc built")
    guest.add_argument("--cache", metavar="DIR",
                       help="where guest images are built and kept (default: $TEAMC_CACHE or ~/.cache/teamc)")
    guest.add_argument("--build-guest-image", action="store_true",
                       help="build the Debian guest image into the cache (if not there yet), print its folder; "
                            "without FILE, nothing else")
    run_group = p.add_argument_group("run")
    run_group.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                           help="auto (default): the VM's accel, but TCG when KVM cannot run a guest here "
                                "(tried once per host boot, remembered in the cache)")
    run_group.add_argument("--qemu", metavar="PATH", help="the QEMU binary (default: the VM's emulator)")
    run_group.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                           help="limit for each scenario (default 120)")
    run_group.add_argument("--keep", action="store_true",
                           help="keep the work folder (argv, QEMU stderr, guest console and reports)")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the verdict as JSON on standard output")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress on standard error")
    checks = p.add_argument_group("compiler diagnostics", "the checks of `teamc check`, printed as it prints them "
                                                           "(on standard error: standard output has the verdict)")
    add_diagnostic_options(checks)
    add_allow_option(checks)
    checks.add_argument("--force", action="append", default=[], metavar="CODE",
                        help="verify only: go on despite this error so that QEMU and the guest show what it does "
                             f"({', '.join(sorted(FORCIBLE))}); nothing is written")


def run(args: argparse.Namespace) -> int:
    import sys

    from ..cli import UsageError, allowed_codes
    from ..diagnostics import CODES, lookup

    if (args.kernel and not args.modules) or (args.modules and not args.kernel):
        raise UsageError("--kernel and --modules go together")
    if args.guest_image and args.kernel:
        raise UsageError("give either --guest-image or --kernel/--modules, not both")
    if args.file is None and not args.build_guest_image:
        raise UsageError("verify: FILE is required (or --build-guest-image)")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    if args.max_gap <= 0:
        raise UsageError("--max-gap must be positive")
    from .runner import selected

    names = [name.strip() for value in args.scenario for name in value.split(",") if name.strip()]
    names += ["boot", "migrate"] if args.migrate else []
    try:
        args.scenarios = selected(names or ["boot"])
    except ValueError as unknown:
        raise UsageError(f"--scenario {unknown}: no such scenario (choose from {', '.join(SCENARIO_NAMES)}, "
                         "or all)") from None
    allow = set(allowed_codes(args.allow))
    forced = set()
    for name in args.force:
        code = lookup(name)
        if code is None or code.code not in FORCIBLE:
            choices = ", ".join(f"{c} ({CODES[c].slug})" for c in sorted(FORCIBLE))
            raise UsageError(f"--force {name}: verify can go on only despite {choices}")
        forced.add(code.code)

    from .signals import run_guarded

    try:
        return run_guarded(_verify, args, allow, forced)
    except KeyboardInterrupt as interrupt:
        sys.stderr.write("\nteamc verify: interrupted; every QEMU it started has been stopped\n")
        return 128 + getattr(interrupt, "signum", 2)


def _verify(args, allow: set, forced: set) -> int:
    import shutil
    import sys
    from pathlib import Path

    from ..cli import print_diagnostics
    from ..diagnostics import sorted_unique
    from ..pipeline import Options, lay_out_source, load
    from . import report
    from .guest import GuestError, GuestImage, build_debian_image, default_cache, image_from_kernel
    from .kvm import probe_kvm
    from .plan import plan_vm
    from .progress import Progress
    from .runner import verify_vm
    from .steps import Settings

    err = sys.stderr
    cache = Path(args.cache) if args.cache else default_cache()
    log = (lambda message: None) if args.quiet else (lambda message: err.write(f"teamc verify: {message}\n"))

    def image() -> GuestImage:
        if args.guest_image:
            return GuestImage.load(Path(args.guest_image))
        if args.kernel:
            return image_from_kernel(Path(args.kernel), Path(args.modules), cache, log)
        return build_debian_image(cache, log=log)

    if args.build_guest_image:
        try:
            built = build_debian_image(cache, log=log)
        except GuestError as error:
            err.write(f"teamc verify: error: cannot build the guest image: {error}\n")
            return EXIT_USAGE
        print(built.kernel.parent)
        if args.file is None:
            return EXIT_OK

    try:
        source, read_errors = load(args.file)
    except OSError as error:
        from ..cli import UsageError

        raise UsageError(f"cannot read {args.file}: {error.strerror or error}") from error
    if read_errors:
        print_diagnostics(read_errors, args, inputs=[source.name])
        return EXIT_FAILED
    graph, result, layouts = lay_out_source(source, Options(allow=frozenset(allow | forced)))
    print_diagnostics(sorted_unique(result.diagnostics), args, inputs=[source.name])
    if graph is None or result.failed:
        return EXIT_FAILED
    for code in sorted(forced):
        err.write(f"teamc verify: {code} forced: compile would refuse this input; {FORCIBLE[code]}, "
                  "let us see it\n")
    names = [vm_layout.vm.name for vm_layout in layouts]
    unknown = [name for name in args.vm if name not in names]
    if unknown:
        from ..cli import UsageError

        raise UsageError(f"--vm {', '.join(unknown)}: no such VM in {args.file} (it has: {', '.join(names)})")
    try:
        guest = image()
    except GuestError as error:
        err.write(f"teamc verify: error: no guest image: {error}\n")
        return EXIT_USAGE
    probes: dict = {}

    def kvm_check(emulator: str):
        if emulator not in probes:
            probes[emulator] = probe_kvm(emulator, guest, cache)
        return probes[emulator]

    plans = [plan_vm(vm_layout, args.accel, args.qemu, kvm_check) for vm_layout in layouts
             if not args.vm or vm_layout.vm.name in args.vm]
    for plan in plans:
        if shutil.which(plan.argv[0]) is None:
            err.write(f"teamc verify: error: QEMU `{plan.argv[0]}` not found (install qemu-system-x86 or "
                      "give --qemu PATH)\n")
            return EXIT_USAGE
    progress = Progress(err, enabled=not args.quiet)
    settings = Settings(scenarios=args.scenarios, timeout=args.timeout, max_gap=args.max_gap, keep=args.keep)
    results = []
    for plan in plans:
        results.append(verify_vm(plan, guest, settings, progress))
        if args.keep and results[-1].workdir:
            log(f"{plan.vm}: work folder kept in {results[-1].workdir}")
    path = source.name
    sys.stdout.write(report.as_json(results, path) if args.json else report.human(results, path))
    return EXIT_OK if results and all(r.proven for r in results) else EXIT_FAILED

