#!/usr/bin/env python3
"""teamc benchmark: whole-process timings of `teamc check` and `teamc compile` on generated fleets.

Usage: python3 bench/bench.py [--runs N] [--quick] [--markdown FILE]

Fleets are generated deterministically (1, 100, 1,000 and 10,000 VMs with two teams each, and a tree
of 10,000 one-VM files). Every measurement is a separate process, reported as the median of --runs
runs with the peak RSS of the slowest-memory run (os.wait4). Reference points timed in the same run,
so that ratios stay meaningful on a noisy machine:
  - one pass of the parser's own lexer (one regular expression made from the grammar's terminals) over
    the 10,000-VM file (the floor of any front end);
  - `python -c "import lark, networkx"` (the floor of `teamc check`);
  - libvirt's `virt-xml-validate` on one emitted domain, and a loop of it over the 100-VM fleet's
    domains (what a user does today to check generated XML).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEAMC = [sys.executable, "-m", "teamc"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
sys.path.insert(0, str(ROOT))  # this checkout's compiler, for the lexer pass


def fleet(vms: int, start: int = 0) -> str:
    out = []
    for i in range(start, start + vms):
        hi, lo = (i >> 8) & 0xFF, i & 0xFF
        out.append(
            f"vm vm{i:06d} {{\n"
            f"    machine q35\n"
            f"    memory 1 GiB\n"
            f"    team a {{\n"
            f"        mac 52:54:{hi:02x}:{lo:02x}:00:01\n"
            f"        persistent virtio bridge br0\n"
            f"        transient hostdev 0000:{hi:02x}:{lo >> 3:02x}.{lo & 7:x}\n"
            f"    }}\n"
            f"    team b {{ mac 52:54:{hi:02x}:{lo:02x}:00:02; persistent virtio user; "
            f"transient hostdev 0001:{hi:02x}:{lo >> 3:02x}.{lo & 7:x} }}\n"
            f"}}\n"
        )
    return "".join(out)


def measure(argv: list[str], runs: int, cwd: Path | None = None, before=None) -> tuple[float, float]:
    """(median wall seconds, peak RSS MiB) of a command run `runs` times as a new process."""
    times, peaks = [], []
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd or ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - start)
        peaks.append(usage.ru_maxrss / 1024)
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            raise SystemExit(f"failed: {' '.join(argv)}")
    return statistics.median(times), max(peaks)


def regex_pass(text: str, runs: int) -> float:
    from teamc.parser import grammar

    token = grammar().lexer  # the grammar's tokens, as the parser's lexer reads them
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sum(1 for _ in token.finditer(text))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="skip the 10,000-file tree and the 10,000-VM compile")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="teamc-bench-"))
    rows: list[tuple[str, str, str]] = []

    def row(what: str, seconds: float, peak: float | None = None) -> None:
        rows.append((what, f"{seconds:.3f} s", f"{peak:.0f} MiB" if peak else ""))
        print(f"{what:60s} {seconds:8.3f} s  {'' if peak is None else f'{peak:5.0f} MiB'}", flush=True)

    try:
        sizes = [1, 100, 1000, 10000]
        files = {}
        for n in sizes:
            files[n] = work / f"fleet-{n}.team"
            files[n].write_text(fleet(n))
        subprocess.run([*TEAMC, "check", str(files[1])], env=ENV, check=True)  # warm the grammar cache

        floor_import, _ = measure([sys.executable, "-c", "import lark, networkx"], args.runs)
        row('python -c "import lark, networkx"', floor_import)
        seed, _ = measure([*TEAMC, "check", "examples/seed.team"], args.runs)
        row("teamc check examples/seed.team", seed)

        results = {}
        for n in sizes:
            results[("check", n)] = measure([*TEAMC, "check", str(files[n])], args.runs if n < 10000 else 1)
            row(f"teamc check, {n} VMs / {2 * n} teams", *results[("check", n)])
        for n in sizes:
            if args.quick and n == 10000:
                continue
            out = work / f"out-{n}"
            results[("compile", n)] = measure([*TEAMC, "compile", str(files[n]), "-o", str(out)],
                                              args.runs if n < 10000 else 1,
                                              before=lambda out=out: shutil.rmtree(out, ignore_errors=True))
            row(f"teamc compile -o DIR, {n} VMs / {2 * n} teams", *results[("compile", n)])

        text = files[10000].read_text()
        floor_regex = regex_pass(text, args.runs)
        row(f"regex tokenizer pass over the 10,000-VM file ({text.count(chr(10))} lines)", floor_regex)

        if shutil.which("virt-xml-validate"):
            out100 = work / "out-100"
            domains = sorted(out100.glob("*.xml"))
            one, _ = measure(["virt-xml-validate", str(domains[0]), "domain"], args.runs)
            row("virt-xml-validate, one domain", one)
            start = time.perf_counter()
            for domain in domains:
                subprocess.run(["virt-xml-validate", str(domain), "domain"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=True)
            row(f"virt-xml-validate loop over the {len(domains)} domains of the 100-VM fleet",
                time.perf_counter() - start)

        if not args.quick:
            tree = work / "tree"
            tree.mkdir()
            for i in range(10000):
                (tree / f"vm{i:05d}.team").write_text(fleet(1, start=i))
            outs = {}
            for jobs in (1, 2):
                out = work / f"tree-out-{jobs}"
                outs[jobs] = measure([*TEAMC, "compile", str(tree), "-o", str(out), "-j", str(jobs)], 1,
                                     before=lambda out=out: shutil.rmtree(out, ignore_errors=True))
                row(f"teamc compile, 10,000 files, -j {jobs}", *outs[jobs])
            changed = tree / "vm04242.team"
            changed.write_text(changed.read_text().replace("memory 1 GiB", "memory 2 GiB"))
            rebuild = measure([*TEAMC, "compile", str(tree), "-o", str(work / "tree-out-2"), "-j", "2"], 1)
            row("teamc compile, 10,000 files, one changed (rebuild, -j 2)", *rebuild)

        print("\nTargets")
        targets = []
        if ("compile", 10000) in results:
            c = results[("compile", 10000)][0]
            targets.append(f"10,000 VMs compile: {c:.2f} s (target <= 2.0 s), {c / floor_regex:.1f}x the regex "
                           f"pass (target <= 12x), peak {results[('compile', 10000)][1]:.0f} MiB (target <= 300)")
        targets.append(f"check seed: {seed / floor_import:.2f}x `import lark, networkx` (target <= 1.3x)")
        a, b = results[("check", 1000)][0], results[("check", 10000)][0]
        targets.append(f"check 1,000 -> 10,000 VMs: {b / a:.1f}x the time for 10x the input (target <= 11x)")
        if not args.quick:
            targets.append(f"10,000 files: -j 2 is {outs[1][0] / outs[2][0]:.2f}x faster than -j 1 (target >= 1.7x); "
                           f"rebuild after one change {100 * rebuild[0] / outs[2][0]:.0f}% of the full build "
                           "(target <= 10%)")
        for line in targets:
            print(" -", line)
        if args.markdown:
            table = ["| measurement | median time | peak RSS |", "|---|---|---|"]
            table += [f"| {what} | {t} | {m} |" for what, t, m in rows]
            Path(args.markdown).write_text("\n".join(table + [""] + [f"- {t}" for t in targets]) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
