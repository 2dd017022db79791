"""Housekeeping that needs the API but must never slow the decision loop (own thread):

- read the agent's Node (control-plane label, address, and the boot id when the source is
  `node-status`) and list the peers' endpoints. The list is refreshed one check interval
  after it changed, then at doubling intervals up to `peer_refresh_interval_s` while it
  stays the same: agents of a DaemonSet start together, and one that listed the Nodes
  before its peers had published would otherwise know no peer for the whole refresh
  interval (and, cut off from the API, fence as "too few peers" although its peers could
  have kept it up). While the boot id is still unknown the Node is read at every tick;
- publish the agent's annotations on its Node when they change:

  | annotation                              | value                                              |
  |-----------------------------------------|----------------------------------------------------|
  | nodewarden.io/self-fence-capable        | "true" only with an armed watchdog and safe policies|
  | nodewarden.io/watchdog-timeout-seconds  | effective timeout, whole seconds rounded up ("0": none) |
  | nodewarden.io/isolation-detect-seconds  | `AgentSettings.isolation_detect_s`                  |
  | nodewarden.io/agent-version             | the agent's version                                 |
  | nodewarden.io/peer-endpoint             | URL of this agent's peer endpoint                   |
  | nodewarden.io/agent-boot-id             | the boot the agent runs on                          |

- write `status.agentReport` on the NodeRemediation once a fence began.

Everything here happens only while the last API check succeeded.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

from core import names
from core.clock import Clock
from core.kube_errors import KubeError, NotFound
from node_agent.apicheck import ApiChecker
from node_agent.boot import BootIdentity
from node_agent.commitment import Commitment
from node_agent.feeder import WatchdogKeeper
from node_agent.fencing import Fencer
from node_agent.kube import AgentApi, NodeFacts
from node_agent.metrics import AgentMetrics
from node_agent.peers import PeerDirectory
from node_agent.settings import AgentSettings, ControlPlaneMode, OutageQuorum, TooFewPeers

log = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self,
        *,
        settings: AgentSettings,
        api: AgentApi,
        checker: ApiChecker,
        boot: BootIdentity,
        keeper: WatchdogKeeper,
        fencer: Fencer,
        directory: PeerDirectory,
        clock: Clock,
        metrics: AgentMetrics,
        advertise_url: Callable[[NodeFacts | None], str | None],
        version: str,
        started_at: float,
        commitment: Commitment | None = None,
    ) -> None:
        self._s = settings
        self._api = api
        self._checker = checker
        self._boot = boot
        self._keeper = keeper
        self._fencer = fencer
        self._directory = directory
        self._clock = clock
        self._metrics = metrics
        self._advertise_url = advertise_url
        self._version = version
        self._started_at = started_at
        self._next_refresh: float | None = None
        self._refresh_delay_s = settings.api_check_interval_s
        self._published: dict[str, str] | None = None
        self._commitment = commitment or Commitment(None, lambda: boot.boot_id)
        self._withdrawn = False
        self._last_error: str | None = None
        self.facts: NodeFacts | None = None

    # What is published -----------------------------------------------------------------

    def control_plane(self) -> bool:
        mode = self._s.control_plane_mode
        if mode is ControlPlaneMode.AUTO:
            return self.facts is not None and self.facts.control_plane
        return mode is ControlPlaneMode.TRUE

    def self_fence_capable(self) -> bool:
        """Only a node whose armed watchdog resets it within the published bound, under
        policies that fence whenever the remediator may count on it."""
        return (
            self._keeper.is_open
            and self._s.too_few_peers is TooFewPeers.FENCE
            and self._s.quorum is OutageQuorum.KNOWN_PEERS
            and len(self._directory.peers()) >= max(1, self._s.min_peers)
            and not self._withdrawn
        )

    def annotations(self) -> dict[str, str]:
        capable = self.self_fence_capable()
        self._metrics.self_fence_capable.set(1 if capable else 0)
        timeout = self._keeper.timeout_s
        result = {
            names.ANN_SELF_FENCE_CAPABLE: "true" if capable else "false",
            names.ANN_WATCHDOG_TIMEOUT_S: str(math.ceil(timeout)) if timeout else "0",
            names.ANN_ISOLATION_DETECT_S: f"{self._s.isolation_detect_s:.3f}".rstrip("0").rstrip("."),
            names.ANN_AGENT_VERSION: self._version,
            names.ANN_AGENT_BOOT_ID: self._boot.boot_id or "",
        }
        url = self._advertise_url(self.facts)
        if url:
            result[names.ANN_PEER_ENDPOINT] = url
        return result

    # The work --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("publisher step failed")
            stop.wait(self._s.loop_tick_s)

    def step(self) -> None:
        if not self._checker.last_ok:
            return
        timeout = self._s.api_check_timeout_s
        try:
            now = self._clock.monotonic()
            due = self._next_refresh is None or now >= self._next_refresh
            if due or (self._boot.from_node_status and self._boot.boot_id is None):
                self.facts = self._api.read_node(self._s.node_name, timeout)
                self._boot.learn_from_node(self.facts, self._started_at)
            if due:
                self._next_refresh = now + self._s.api_check_interval_s  # retry soon if it fails
                self._refresh_peers(now, timeout)
            if self._ready_to_publish():
                wanted = self.annotations()
                if wanted.get(names.ANN_SELF_FENCE_CAPABLE) == "true" and not self._commitment.promise():
                    wanted[names.ANN_SELF_FENCE_CAPABLE] = "false"
                if wanted != self._published:
                    self._api.annotate_node(self._s.node_name, wanted, timeout)
                    self._published = wanted
                    log.info("published on node: %s", wanted)
                    if wanted.get(names.ANN_SELF_FENCE_CAPABLE) != "true":
                        self._commitment.withdraw()
            report = self._fencer.pending_report()
            if report is not None:
                try:
                    self._api.report_fence(self._s.node_name, report, timeout)
                    log.warning("fence reported on NodeRemediation %s: %s", self._s.node_name, report)
                except NotFound:
                    log.warning("no NodeRemediation %s to report the fence on", self._s.node_name)
                self._fencer.report_written()
            self._last_error = None
        except KubeError as exc:
            if str(exc) != self._last_error:
                log.warning("publishing failed (will retry): %s", exc)
            self._last_error = str(exc)

    def withdraw_capability(self) -> bool:
        """Publish "not self-fence capable" (before a clean shutdown disarms the watchdog);
        True once the API has it."""
        self._withdrawn = True
        wanted = dict(self._published or self.annotations())
        wanted[names.ANN_SELF_FENCE_CAPABLE] = "false"
        try:
            self._api.annotate_node(self._s.node_name, wanted, self._s.api_check_timeout_s)
        except KubeError as exc:
            log.warning("could not publish 'not self-fence capable' before stopping: %s", exc)
            return False
        self._published = wanted
        self._commitment.withdraw()
        log.info("published not self-fence capable: stopping")
        return True

    def _refresh_peers(self, now: float, timeout: float) -> None:
        changed = self._directory.update(self._api.list_peers(timeout))
        if changed:
            self._refresh_delay_s = self._s.api_check_interval_s
        else:
            self._refresh_delay_s = 2 * self._refresh_delay_s
        self._refresh_delay_s = min(self._refresh_delay_s, self._s.peer_refresh_interval_s)
        self._next_refresh = now + self._refresh_delay_s

    def _ready_to_publish(self) -> bool:
        """Once the watchdog was tried, so capability does not flap at start."""
        keeper = self._keeper
        return keeper.is_open or not keeper.device_present or keeper.open_error is not None
