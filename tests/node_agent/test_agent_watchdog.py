"""The Linux watchdog driver against a fake device (a regular file), a real named pipe
read by a thread (how the simulator's watchdog works: ioctls fail with ENOTTY), and the
in-memory fake. The promises: feeds are single non-'V' bytes; 'V' before close only on a
deliberate shutdown and never once a fence began."""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from pathlib import Path

import pytest

from node_agent.watchdog import FEED_BYTE, MAGIC_CLOSE, FakeWatchdog, LinuxWatchdog, WatchdogError


class FifoReader(threading.Thread):
    """Reads the pipe until its writer has come and gone, like the simulator's watchdog.
    (Linux reports POLLHUP on a FIFO only after a writer connected and left.)"""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.data = b""
        self.opened = threading.Event()

    def run(self) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self.opened.set()
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                events = poller.poll(100)
                if not events:
                    continue
                mask = events[0][1]
                if mask & select.POLLIN:
                    try:
                        chunk = os.read(fd, 64)
                    except BlockingIOError:
                        chunk = b""
                    self.data += chunk
                    if chunk:
                        continue
                if mask & select.POLLHUP:
                    return
        finally:
            os.close(fd)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "watchdog"
    os.mkfifo(path)
    return path


def start_reader(path: Path) -> FifoReader:
    reader = FifoReader(path)
    reader.start()
    assert reader.opened.wait(5)
    return reader


def test_fifo_device_arms_reports_enotty_and_uses_the_configured_timeout(
    fifo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = start_reader(fifo)
    with caplog.at_level(logging.WARNING, logger="node_agent.watchdog"):
        wd = LinuxWatchdog.open(str(fifo), 3.5)
    assert wd.timeout_s == 3.5
    assert "ENOTTY" in caplog.text
    wd.feed()
    wd.feed()
    wd.close(disarm=True)
    reader.join(5)
    assert reader.data == FEED_BYTE * 2 + MAGIC_CLOSE


def test_fifo_device_is_never_disarmed_once_a_fence_began(fifo: Path) -> None:
    reader = start_reader(fifo)
    wd = LinuxWatchdog.open(str(fifo), 3.0)
    wd.feed()
    wd.stop_feeding_forever()
    with pytest.raises(WatchdogError):
        wd.feed()
    wd.close(disarm=True)
    reader.join(5)
    assert reader.data == FEED_BYTE
    assert MAGIC_CLOSE not in reader.data


def test_fifo_without_a_reader_fails_instead_of_hanging(fifo: Path) -> None:
    with pytest.raises(WatchdogError, match="cannot open"):
        LinuxWatchdog.open(str(fifo), 3.0)


def test_closing_without_disarm_leaves_it_armed(fifo: Path) -> None:
    reader = start_reader(fifo)
    wd = LinuxWatchdog.open(str(fifo), 3.0)
    wd.close(disarm=False)
    reader.join(5)
    assert MAGIC_CLOSE not in reader.data


def test_regular_file_as_fake_device_gets_one_byte_per_feed(tmp_path: Path) -> None:
    device = tmp_path / "device"
    device.write_bytes(b"")
    wd = LinuxWatchdog.open(str(device), 60.0)
    assert wd.timeout_s == 60.0  # ioctls unsupported: configured timeout
    for _ in range(3):
        wd.feed()
    wd.close(disarm=True)
    assert device.read_bytes() == FEED_BYTE * 3 + MAGIC_CLOSE
    assert FEED_BYTE != MAGIC_CLOSE


def test_missing_device_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WatchdogError, match="cannot open"):
        LinuxWatchdog.open(str(tmp_path / "nope"), 60.0)


def test_ioctl_timeout_read_back_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import struct

    import node_agent.watchdog as module

    calls: list[int] = []

    def fake_ioctl(fd: int, request: int, arg: bytes) -> bytes:
        calls.append(request)
        return struct.pack("i", 30)  # the hardware rounds 45 to 30

    monkeypatch.setattr(module.fcntl, "ioctl", fake_ioctl)
    device = tmp_path / "device"
    device.write_bytes(b"")
    wd = LinuxWatchdog.open(str(device), 45.0)
    assert calls == [module.WDIOC_SETTIMEOUT, module.WDIOC_GETTIMEOUT]
    assert (module.WDIOC_SETTIMEOUT, module.WDIOC_GETTIMEOUT) == (0xC0045706, 0x80045707)
    assert wd.timeout_s == 30.0
    wd.close(disarm=True)


def test_fake_watchdog_keeps_the_same_promises() -> None:
    wd = FakeWatchdog(timeout_s=10)
    wd.feed()
    wd.stop_feeding_forever()
    with pytest.raises(WatchdogError):
        wd.feed()
    wd.close(disarm=True)
    assert (wd.feeds, wd.closed) == (1, "armed")
