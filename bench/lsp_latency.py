#!/usr/bin/env python3
"""teamc lsp latency: from a `didChange` to the `publishDiagnostics` of that version, on a 1,000-line file.

Usage: python3 bench/lsp_latency.py [--changes N] [--lines N]

Starts `teamc lsp` as an editor does (a subprocess on stdio), opens a generated file of --lines lines (VMs
with two teams each, one of them with a MAC mismatch, so every publish carries diagnostics), then sends
--changes edits one at a time, each a one-character change in the middle of the file, and times each until
the server publishes the diagnostics for that version. Prints the median, the 90th percentile and the
worst; docs/editors.md records the figure for this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def document(lines: int) -> str:
    out, i = [], 0
    while len(out) < lines - 4:
        hi, lo = (i >> 8) & 0xFF, i & 0xFF
        out += [f"vm vm{i:05d} {{",
                "    machine q35",
                (f"    team a {{ mac 52:54:{hi:02x}:{lo:02x}:00:01; persistent virtio bridge br0; "
                 f"transient hostdev 0000:{hi:02x}:{lo >> 3:02x}.{lo & 7:x} }}"),
                f"    nic ua-b {{ model virtio; source user; mac 52:54:{hi:02x}:{lo:02x}:00:02; teaming persistent }}",
                (f"    nic vf-b {{ source hostdev 0001:{hi:02x}:{lo >> 3:02x}.{lo & 7:x}; "
                 f"mac 52:54:{hi:02x}:{lo:02x}:00:0{3 if i % 50 == 0 else 2}; teaming transient ua-b }}"),
                "}"]
        i += 1
    return "\n".join(out) + "\n"


class Server:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "teamc", "lsp"], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.next_id = 0

    def send(self, method: str, params: dict, request: bool = False) -> None:
        message: dict = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            message["id"] = self.next_id
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def receive(self) -> dict:
        length = 0
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the server exited")
            if line == b"\r\n":
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))

    def wait_for(self, predicate) -> dict:
        while True:
            message = self.receive()
            if predicate(message):
                return message

    def close(self) -> None:
        self.send("shutdown", {}, request=True)
        self.wait_for(lambda m: m.get("id") == self.next_id)
        self.send("exit", {})
        self.proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--lines", type=int, default=1000)
    args = parser.parse_args()

    text = document(args.lines)
    uri = (ROOT / "bench" / "latency.team").as_uri()
    server = Server()
    try:
        server.send("initialize", {"processId": os.getpid(), "rootUri": ROOT.as_uri(), "capabilities": {}},
                    request=True)
        server.wait_for(lambda m: m.get("id") == 1)
        server.send("initialized", {})
        server.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "team", "version": 1,
                                                              "text": text}})

        def published(version: int):
            return lambda m: (m.get("method") == "textDocument/publishDiagnostics"
                              and m["params"].get("version") == version)

        first = server.wait_for(published(1))
        line = args.lines // 2 // 6 * 6  # a `vm vmNNNNN {` line in the middle
        timings = []
        for version in range(2, args.changes + 2):
            # Flip one character of a VM name back and forth: a real edit, same diagnostics.
            new = "x" if version % 2 == 0 else "v"
            start = time.perf_counter()
            server.send("textDocument/didChange", {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": {"line": line, "character": 3},
                                              "end": {"line": line, "character": 4}}, "text": new}]})
            server.wait_for(published(version))
            timings.append((time.perf_counter() - start) * 1000)
            time.sleep(0.02)  # an editor's keystrokes are apart; let the server idle between them
        server.close()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    timings.sort()
    print(f"{args.lines} lines, {len(first['params']['diagnostics'])} diagnostics, {args.changes} changes: "
          f"median {statistics.median(timings):.1f} ms, p90 {timings[int(len(timings) * 0.9) - 1]:.1f} ms, "
          f"worst {timings[-1]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
