"""Progress on standard error while verify runs: one rewritten line on a terminal, one line per step otherwise."""

from __future__ import annotations

import shutil
import sys
import time


class Progress:
    """Progress on stderr: one rewritten line on a terminal, one line per milestone otherwise."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.prefix = ""
        self.last = ""
        self._drawn = 0.0

    def begin(self, prefix: str) -> None:
        self.start = time.monotonic()
        self.prefix = prefix
        self.last = ""

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        if self.tty:
            self.last = message
            self._draw(elapsed)
        elif message != self.last:
            self.last = message
            self.stream.write(f"teamc verify: [{elapsed:5.1f}s] {self.prefix}{message}\n")
            self.stream.flush()

    def tick(self) -> None:
        """Redraw the elapsed time on a terminal (at most 5 times a second)."""
        now = time.monotonic()
        if self.tty and self.last and now - self._drawn > 0.2:
            self._draw(now - self.start)

    def _draw(self, elapsed: float) -> None:
        self._drawn = time.monotonic()
        width = shutil.get_terminal_size((100, 20)).columns - 1
        line = f"[{elapsed:5.1f}s] {self.prefix}{self.last}"
        self.stream.write("\r\033[K" + line[:width])
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.last:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self.last = ""
