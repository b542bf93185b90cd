"""The QEMU processes verify starts: their command line, their files, and their end.

One `Session` owns a work folder and every QEMU process it starts; leaving it
(normally, on an exception, on Ctrl-C or SIGTERM, which signals.py turns into
KeyboardInterrupt) stops them all. Each QEMU also gets PR_SET_PDEATHSIG, so not
even a SIGKILL of teamc leaves one behind.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from .guest import GuestImage
from .qmp import Qmp, QmpError
from .serial import Guest, Mark

KERNEL_CMDLINE = "console=ttyS0 panic=-1 quiet"
POLL = 0.1  # seconds between two looks at QMP and the guest's serial ports

_LIVE: set = set()  # every QEMU process started and not yet reaped, for the last-resort cleanup


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort: the Session still kills it
        pass


def _chardev_path(path: Path) -> str:
    return str(path).replace(",", ",,")


class Qemu:
    def __init__(self, argv: list[str], image: GuestImage, folder: Path, role: str, incoming: bool = False):
        self.role = role
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.qmp_path = folder / "qmp.sock"
        self.stderr_path = folder / "qemu.stderr"
        console, report, pings = folder / "console.log", folder / "guest-report.log", folder / "guest-pings.log"
        serial = []
        for name, path in (("console", console), ("report", report), ("pings", pings)):
            serial += ["-chardev", f"file,id=teamc-{name},path={_chardev_path(path)}",
                       "-serial", f"chardev:teamc-{name}"]
        self.argv = [
            *argv,
            "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", KERNEL_CMDLINE,
            "-no-reboot", *serial,
            "-chardev", f"socket,id=teamc-qmp,path={_chardev_path(self.qmp_path)},server=on,wait=off",
            "-mon", "chardev=teamc-qmp,mode=control",
            *(["-incoming", "defer"] if incoming else ["-S"]),
        ]
        self.guest = Guest(role, console, report, pings)
        self.proc: subprocess.Popen | None = None
        self._qmp: Qmp | None = None
        self.started = 0.0

    def start(self, timeout: float) -> None:
        (self.folder / "argv.json").write_text(json.dumps(self.argv, indent=1) + "\n")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        _LIVE.add(self.proc)
        self.started = time.monotonic()
        self._qmp = Qmp(str(self.qmp_path), timeout=timeout, alive=self.alive)

    @property
    def qmp(self) -> Qmp:
        """The QMP connection: there once start() returned."""
        if self._qmp is None:
            raise QmpError("no QMP connection")
        return self._qmp

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def warnings(self) -> list[str]:
        """QEMU's stderr lines, without the expected noise (a hidden primary's netdev has no peer)."""
        return [line for line in self.stderr().splitlines() if line.strip() and "has no peer" not in line]

    def events(self) -> None:
        if self._qmp is not None and self.alive():
            try:
                self._qmp.poll()
            except QmpError:
                pass

    def poll(self) -> None:
        """Read whatever QMP and the guest said since the last call."""
        self.events()
        self.guest.read()

    def mark(self) -> Mark:
        self.events()
        return replace(self.guest.mark(), events=len(self._qmp.events) if self._qmp else 0)

    def execute(self, command: str, arguments: dict | None = None, timeout: float = 20.0):
        return self.qmp.execute(command, arguments, timeout=timeout)

    def stop(self) -> None:
        if self._qmp is not None:
            self._qmp.close()
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        _LIVE.discard(self.proc)


def kill_all() -> None:
    """Last resort (e.g. at interpreter exit): SIGKILL every QEMU still running."""
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _LIVE.discard(proc)


class Session:
    """A work folder and the QEMU processes in it; everything is stopped on exit."""

    def __init__(self, keep: bool = False):
        self.keep = keep
        self.folder = Path(tempfile.mkdtemp(prefix="teamc-verify-"))
        if len(str(self.folder)) > 80:  # UNIX socket paths are limited to 107 bytes
            self.folder = Path(tempfile.mkdtemp(prefix="teamc-verify-", dir="/tmp"))
        self.processes: list[Qemu] = []

    def qemu(self, argv, image, role, incoming=False) -> Qemu:
        """A QEMU in its own sub-folder, numbered in start order (`03-destination`)."""
        q = Qemu(argv, image, self.folder / f"{len(self.processes) + 1:02d}-{role.replace(' ', '-')}", role, incoming)
        self.processes.append(q)
        return q

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for q in self.processes:
            q.stop()
        if not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)
