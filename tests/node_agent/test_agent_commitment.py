"""The self-fence promise: published per boot, kept by every later process of that boot,
withdrawn before a clean shutdown disarms the watchdog."""

from __future__ import annotations

from pathlib import Path

from node_agent.commitment import Commitment


def test_a_boot_never_promised_is_not_committed(tmp_path: Path) -> None:
    assert not Commitment(tmp_path, lambda: "boot-1").committed()


def test_a_promise_binds_later_processes_of_the_same_boot_only(tmp_path: Path) -> None:
    first = Commitment(tmp_path, lambda: "boot-1")
    assert first.promise() and first.committed()
    assert Commitment(tmp_path, lambda: "boot-1").committed()  # a restarted agent
    assert not Commitment(tmp_path, lambda: "boot-2").committed()  # after a reboot


def test_withdrawing_releases_the_promise(tmp_path: Path) -> None:
    c = Commitment(tmp_path, lambda: "boot-1")
    c.promise()
    c.withdraw()
    assert not c.committed()
    assert not Commitment(tmp_path, lambda: "boot-1").committed()


def test_unknown_boot_or_no_state_directory_means_committed(tmp_path: Path) -> None:
    assert Commitment(tmp_path, lambda: None).committed()
    assert not Commitment(tmp_path, lambda: None).promise()  # cannot promise an unknown boot
    stateless = Commitment(None, lambda: "boot-1")
    assert stateless.committed() and stateless.promise()


def test_an_unwritable_state_directory_refuses_the_promise(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    c = Commitment(blocker / "state", lambda: "boot-1")
    assert not c.promise()
    assert not c.committed()
