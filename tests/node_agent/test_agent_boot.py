"""Boot identity: from a file, or from the Node's status only once the kubelet posted it
after the agent started (so the previous boot's id is never taken for the current one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node_agent.boot import boot_identity_from_source, read_boot_time
from node_agent.kube import NodeFacts


def test_file_source_reads_the_id_once(tmp_path: Path) -> None:
    path = tmp_path / "boot_id"
    path.write_text("abc-123\n")
    boot = boot_identity_from_source(f"file:{path}", "/proc/sys/kernel/random/boot_id")
    assert (boot.boot_id, boot.boot_time, boot.from_node_status) == ("abc-123", None, False)


def test_unreadable_file_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boot id"):
        boot_identity_from_source(f"file:{tmp_path / 'none'}", "/x")


def test_node_status_source_waits_for_a_status_posted_after_start() -> None:
    boot = boot_identity_from_source("node-status", "/x")
    started = 1_700_000_100.7
    old = NodeFacts("n", "boot-old", False, ready_heartbeat_at=1_700_000_090.0)
    boot.learn_from_node(old, started)
    assert boot.boot_id is None
    boot.learn_from_node(NodeFacts("n", "boot-new", False, ready_heartbeat_at=1_700_000_100.0), started)
    assert boot.boot_id == "boot-new"  # same second as the start counts


def test_boot_time_from_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu 1 2 3\nbtime 1699999000\nprocesses 5\n")
    assert read_boot_time(str(stat)) == 1699999000.0
    assert read_boot_time(str(tmp_path / "none")) is None
