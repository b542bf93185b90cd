#!/usr/bin/env python3
"""In-process parse timings: teamc's fast path against Lark's own LALR path, on generated fleets.

Usage: python3 bench/parse.py [--runs N]

The fleets are bench.py's (1,000 and 10,000 VMs, two teams each). Each figure is the best of --runs
parses in this process (the grammar is loaded first), so it measures the parser alone, without the
interpreter start-up and imports that bench.py's whole-process timings include. The cyclic garbage
collector is off while timing, as in the pipeline (compiler/pipeline.py).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench import fleet
from teamc import parser
from teamc.source import SourceFile


def best(run, runs: int) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    fast_parser = parser._parser()
    lark, builder = fast_parser.lark, fast_parser.builder
    for vms in (1000, 10000):
        source = SourceFile(f"fleet-{vms}.team", fleet(vms))
        module, diags = parser.parse(source)
        assert module is not None and not diags

        def lark_path(source: SourceFile = source) -> None:
            builder.source = source
            lark.parse(source.text)

        fast = best(lambda source=source: parser.parse(source), args.runs)
        slow = best(lark_path, args.runs)
        print(f"{vms:6d} VMs: fast path {fast * 1000:8.1f} ms   Lark's own path {slow * 1000:8.1f} ms   "
              f"({slow / fast:.1f}x)", flush=True)


if __name__ == "__main__":
    main()
