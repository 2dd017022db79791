"""Which boot the node is on: the identity every fence order is checked against.

Sources (setting `boot_id_source`):
- `file:<path>` (default `file:/proc/sys/kernel/random/boot_id`): read once at start.
  With the real kernel file, the boot time comes from `btime` in /proc/stat, so orders
  that name no boot can still be recognised as stale.
- `node-status`: `status.nodeInfo.bootID` of the agent's Node, for worlds (the simulator)
  where a reboot does not change the host's boot id. It is accepted only from a status the
  kubelet posted after this agent started (the Ready condition's lastHeartbeatTime), so an
  agent restarted by a reboot cannot mistake the previous boot's id, still on the Node,
  for its own and obey the order that rebooted it a second time. Until then the boot is
  unknown and orders are answered `NotReady`.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

from node_agent.kube import NodeFacts

log = logging.getLogger(__name__)


class BootIdentity:
    def __init__(self, boot_id: str | None, boot_time: float | None, from_node_status: bool) -> None:
        self._boot_id = boot_id
        self.boot_time = boot_time
        self.from_node_status = from_node_status
        self._lock = threading.Lock()

    @property
    def boot_id(self) -> str | None:
        with self._lock:
            return self._boot_id

    def learn_from_node(self, facts: NodeFacts, agent_started_at: float) -> None:
        """With the node-status source, take the bootID from a status posted after start."""
        if not self.from_node_status or not facts.boot_id:
            return
        posted = facts.ready_heartbeat_at
        # Kubernetes timestamps have whole seconds: compare against the start's second.
        if posted is None or posted < math.floor(agent_started_at):
            log.debug("node status predates this agent: boot id not taken yet")
            return
        with self._lock:
            if self._boot_id != facts.boot_id:
                log.info("boot id from the node's status: %s", facts.boot_id)
                self._boot_id = facts.boot_id


def boot_identity_from_source(source: str, real_boot_id_path: str) -> BootIdentity:
    if source == "node-status":
        return BootIdentity(None, None, from_node_status=True)
    path = source.removeprefix("file:")
    try:
        boot_id = Path(path).read_text().strip() or None
    except OSError as exc:
        raise RuntimeError(f"cannot read the boot id from {path}: {exc.strerror}") from exc
    boot_time = read_boot_time() if path == real_boot_id_path else None
    return BootIdentity(boot_id, boot_time, from_node_status=False)


def read_boot_time(stat_path: str = "/proc/stat") -> float | None:
    try:
        for line in Path(stat_path).read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None
