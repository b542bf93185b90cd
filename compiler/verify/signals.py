"""SIGTERM and SIGHUP turned into KeyboardInterrupt, so that every QEMU verify started is stopped on the way out."""

from __future__ import annotations

import signal

from .process import kill_all


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that every `finally` runs."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def run_guarded(function, *args):
    """Run `function` with SIGTERM and SIGHUP turned into `Interrupted` (Ctrl-C already raises
    KeyboardInterrupt), so that every QEMU is stopped on the way out; restore the handlers after."""
    def interrupt(signum, frame):
        raise Interrupted(signum)

    previous = {}
    if _in_main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, interrupt)
    try:
        return function(*args)
    finally:
        kill_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
