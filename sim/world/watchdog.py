"""A watchdog device per simulated node, with Linux semantics, as a named pipe (FIFO).

- Opening the device for writing arms it (the simulator's reader end sees the open).
- Any write pets it.
- A write containing the magic character `V`, followed by closing the device, disarms
  it. Closing without it leaves it armed ("watchdog did not stop!"): it keeps counting.
- If it is not petted within its timeout, it fires: the node resets.
- ioctls (WDIOC_SETTIMEOUT, ...) fail with ENOTTY on a FIFO: the agent reports that and
  uses its configured timeout, which tests set equal to the device's.

Expiry is checked by the cluster's ticker, not by the reader thread, so a device whose
writer went away still fires.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("sim.watchdog")


class WatchdogDevice:
    def __init__(self, node: str, path: Path, timeout_s: float,
                 on_event: Callable[[str, str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.path = path
        self.timeout_s = timeout_s
        self.clock = clock
        self.on_event = on_event  # (kind, detail)
        self.armed = False
        self.last_pet = 0.0
        self.pets = 0
        self.enabled = True  # False while the node is powered off
        self._lock = threading.Lock()
        self._stop = False
        if path.exists():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path, 0o600)
        self._thread = threading.Thread(target=self._reader, name=f"watchdog-{node}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        try:  # unblock a reader waiting in open()
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
        self._thread.join(timeout=2)
        try:
            self.path.unlink()
        except OSError:
            pass

    def power_lost(self) -> None:
        """The machine lost power: the device stops counting."""
        with self._lock:
            self.armed = False
            self.enabled = False

    def power_restored(self) -> None:
        with self._lock:
            self.enabled = True

    def expired(self) -> bool:
        """True (once) when an armed device was not petted in time."""
        with self._lock:
            if self.armed and self.enabled and self.clock() - self.last_pet > self.timeout_s:
                self.armed = False
                return True
            return False

    def _reader(self) -> None:
        while not self._stop:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                if self._stop:
                    return
                time.sleep(0.1)
                continue
            if self._stop:
                os.close(fd)
                return
            with self._lock:
                if self.enabled:
                    self.armed = True
                    self.last_pet = self.clock()
            self.on_event("watchdog-armed", f"opened; timeout {self.timeout_s:.1f}s")
            magic = False
            try:
                while True:
                    data = os.read(fd, 4096)
                    if not data:
                        break
                    with self._lock:
                        if self.enabled and self.armed:
                            self.last_pet = self.clock()
                        self.pets += 1
                    magic = b"V" in data
            finally:
                os.close(fd)
            with self._lock:
                still_armed = self.armed
                if magic:
                    self.armed = False
            if magic and still_armed:
                self.on_event("watchdog-disarmed", "magic close")
            elif still_armed:
                self.on_event("watchdog-unclosed", "closed without the magic character: still armed")
