"""The watchdog device: a protocol, the Linux driver, and a fake beside it.

Linux semantics (Documentation/watchdog/watchdog-api.rst): opening the device arms it;
any write pets it; `WDIOC_SETTIMEOUT` sets the timeout (the driver may round it, so read
it back with `WDIOC_GETTIMEOUT`); writing the magic character `V` right before closing
disarms it (unless the kernel runs with nowayout). Closing without `V` leaves it armed:
the machine resets when the timeout runs out.

The driver keeps two promises the rest of the agent relies on:
- after `stop_feeding_forever()` no write ever reaches the device again, and `V` is never
  written: a fence that began cannot be undone by this process;
- `close(disarm=True)` writes `V` only if no fence began.

Devices without the ioctls (the simulator's watchdog is a named pipe that answers them
with ENOTTY) are reported once, and the configured timeout is used as the effective one.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import struct
import threading
from typing import Protocol

log = logging.getLogger(__name__)

WDIOC_SETTIMEOUT = 0xC0045706
WDIOC_GETTIMEOUT = 0x80045707
FEED_BYTE = b"\0"  # anything but "V"
MAGIC_CLOSE = b"V"
_UNSUPPORTED = (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS)


class WatchdogError(Exception):
    """The device could not be opened or written."""


class Watchdog(Protocol):
    @property
    def timeout_s(self) -> float:
        """The effective timeout: after this long without a feed, the machine resets."""

    @property
    def fence_begun(self) -> bool: ...

    def feed(self) -> None:
        """Pet the watchdog. Raises WatchdogError; refuses once a fence began."""

    def stop_feeding_forever(self) -> None:
        """Latch: from now on `feed` refuses and `close` never disarms."""

    def close(self, disarm: bool) -> None:
        """Close the device; write `V` first only if `disarm` and no fence began."""


class LinuxWatchdog:
    """A Linux watchdog character device (or anything that behaves like one)."""

    def __init__(self, fd: int, path: str, timeout_s: float) -> None:
        self._fd: int | None = fd
        self.path = path
        self._timeout_s = timeout_s
        self._fence_begun = False
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str, timeout_s: float) -> LinuxWatchdog:
        """Open (and so arm) the device, then set and read back its timeout."""
        try:
            flags = os.O_WRONLY | os.O_CLOEXEC
            is_fifo = stat.S_ISFIFO(os.stat(path).st_mode)
            if is_fifo:
                flags |= os.O_NONBLOCK  # fail (ENXIO) rather than hang without a reader
            fd = os.open(path, flags)
            if is_fifo:
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        except OSError as exc:
            raise WatchdogError(f"cannot open watchdog {path}: {exc.strerror}") from exc
        effective = _set_timeout(fd, path, timeout_s)
        log.info("watchdog %s armed, effective timeout %.3gs", path, effective)
        return cls(fd, path, effective)

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @property
    def fence_begun(self) -> bool:
        return self._fence_begun

    def feed(self) -> None:
        with self._lock:
            if self._fence_begun:
                raise WatchdogError("a fence began: the watchdog is never fed again")
            if self._fd is None:
                raise WatchdogError("watchdog is closed")
            try:
                os.write(self._fd, FEED_BYTE)
            except OSError as exc:
                raise WatchdogError(f"cannot feed watchdog {self.path}: {exc.strerror}") from exc

    def stop_feeding_forever(self) -> None:
        with self._lock:
            self._fence_begun = True

    def close(self, disarm: bool) -> None:
        with self._lock:
            if self._fd is None:
                return
            fd, self._fd = self._fd, None
            try:
                if disarm and not self._fence_begun:
                    os.write(fd, MAGIC_CLOSE)
                    log.info("watchdog %s disarmed (magic close)", self.path)
                else:
                    log.warning("watchdog %s closed armed: the node resets unless fed again", self.path)
            except OSError as exc:
                log.error("watchdog %s: magic close failed: %s", self.path, exc.strerror)
            finally:
                os.close(fd)


def _set_timeout(fd: int, path: str, timeout_s: float) -> float:
    """Ask for `timeout_s` (whole seconds, at least 1) and return the effective timeout."""
    wanted = max(1, round(timeout_s))
    effective: float | None = None
    try:
        answer = fcntl.ioctl(fd, WDIOC_SETTIMEOUT, struct.pack("i", wanted))
        effective = float(struct.unpack("i", answer)[0])
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:
            raise WatchdogError(f"WDIOC_SETTIMEOUT on {path}: {exc.strerror}") from exc
        log.warning(
            "watchdog %s does not support WDIOC_SETTIMEOUT (%s): keeping its own timeout",
            path,
            errno.errorcode.get(exc.errno or 0, exc.errno),
        )
    try:
        answer = fcntl.ioctl(fd, WDIOC_GETTIMEOUT, struct.pack("i", 0))
        effective = float(struct.unpack("i", answer)[0])
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:
            raise WatchdogError(f"WDIOC_GETTIMEOUT on {path}: {exc.strerror}") from exc
        if effective is None:
            log.warning(
                "watchdog %s does not support WDIOC_GETTIMEOUT (%s): using the configured "
                "timeout %.3gs",
                path,
                errno.errorcode.get(exc.errno or 0, exc.errno),
                timeout_s,
            )
    if effective is None or effective <= 0:
        return timeout_s
    if effective != wanted:
        log.warning("watchdog %s: asked for %ss, the device uses %ss", path, wanted, effective)
    return effective


class FakeWatchdog:
    """In-memory watchdog for tests: records feeds and how it was closed."""

    def __init__(self, timeout_s: float = 60.0, fail_feeds: bool = False) -> None:
        self._timeout_s = timeout_s
        self.fail_feeds = fail_feeds
        self.feeds = 0
        self.closed: str | None = None  # None (open) | "disarmed" | "armed"
        self._fence_begun = False

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @property
    def fence_begun(self) -> bool:
        return self._fence_begun

    def feed(self) -> None:
        if self._fence_begun:
            raise WatchdogError("a fence began: the watchdog is never fed again")
        if self.closed is not None:
            raise WatchdogError("watchdog is closed")
        if self.fail_feeds:
            raise WatchdogError("fake feed failure")
        self.feeds += 1

    def stop_feeding_forever(self) -> None:
        self._fence_begun = True

    def close(self, disarm: bool) -> None:
        if self.closed is None:
            self.closed = "disarmed" if disarm and not self._fence_begun else "armed"
