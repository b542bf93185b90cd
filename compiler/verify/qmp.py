"""A small QMP client over a UNIX socket: commands, replies and events, with timeouts.

Single-threaded: `execute()` waits for its own reply and keeps every event that
arrives meanwhile; `poll()` collects events without blocking. Events are kept
with the host's monotonic time at which they were read.
"""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass, field


class QmpError(Exception):
    """QMP answered with an error, or the connection failed or timed out."""


@dataclass
class Event:
    name: str
    data: dict
    at: float  # time.monotonic() when read
    raw: dict = field(repr=False, default_factory=dict)


class Qmp:
    def __init__(self, path: str, timeout: float = 30.0, alive=lambda: True):
        """Connect to QEMU's QMP socket at `path` (retrying while QEMU starts up and `alive()`),
        read the greeting and leave capability negotiation mode."""
        deadline = time.monotonic() + timeout
        self.events: list[Event] = []
        self._buffer = b""
        self._next_id = 0
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                break
            except OSError as err:
                sock.close()
                if time.monotonic() > deadline or not alive():
                    raise QmpError(f"cannot connect to QMP at {path}: {err.strerror or err}") from err
                time.sleep(0.05)
        self._sock = sock
        greeting = self._message(deadline)
        if greeting is None:
            raise QmpError(f"QEMU sent no QMP greeting at {path}")
        if "QMP" not in greeting:
            raise QmpError(f"not a QMP greeting: {greeting}")
        self.greeting = greeting["QMP"]
        self.execute("qmp_capabilities", timeout=max(1.0, deadline - time.monotonic()))

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    def _message(self, deadline: float | None) -> dict | None:
        """The next message; None once `deadline` has passed (deadline None: do not wait at all)."""
        while b"\n" not in self._buffer:
            wait = 0.0 if deadline is None else deadline - time.monotonic()
            if wait < 0:
                return None
            ready, _, _ = select.select([self._sock], [], [], wait)
            if not ready:
                if deadline is None:
                    return None
                continue
            chunk = self._sock.recv(65536)
            if not chunk:
                raise QmpError("QEMU closed the QMP connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError as err:
            raise QmpError(f"QMP sent something that is not JSON: {line[:200]!r}") from err

    def _keep_event(self, message: dict) -> None:
        self.events.append(Event(message["event"], message.get("data", {}), time.monotonic(), message))

    def execute(self, command: str, arguments: dict | None = None, timeout: float = 30.0):
        """Run a command; return its `return` value or raise QmpError with QEMU's description."""
        self._next_id += 1
        ident = f"teamc-{self._next_id}"
        request: dict[str, object] = {"execute": command, "id": ident}
        if arguments:
            request["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as err:
            raise QmpError(f"QMP {command}: {err.strerror or err}") from err
        deadline = time.monotonic() + timeout
        while True:
            message = self._message(deadline)
            if message is None:
                raise QmpError(f"QMP {command}: no answer within {timeout:.0f} s")
            if "event" in message:
                self._keep_event(message)
            elif message.get("id") == ident:
                if "error" in message:
                    raise QmpError(f"{command}: {message['error'].get('desc', message['error'])}")
                return message.get("return")

    def poll(self) -> list[Event]:
        """Events that have arrived since the last call (no waiting)."""
        start = len(self.events)
        while True:
            message = self._message(None)
            if message is None:
                break
            if "event" in message:
                self._keep_event(message)
        return self.events[start:]

    def find(self, name: str, since: int = 0, **data) -> Event | None:
        """The first event seen so far (from index `since` on) with this name whose data includes `data`."""
        for event in self.events[since:]:
            if event.name == name and all(event.data.get(k) == v for k, v in data.items()):
                return event
        return None
