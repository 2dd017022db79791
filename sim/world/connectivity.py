"""Who can reach whom: node partitions (from the API, from peers, or a group cut off
together), their healing, and API server outages. Given only the machines, the timeline,
a ticker, a clock, the time scale and `nudge` (ask a kubelet to sync) — never the cluster.

- A node partitioned from "api" (or inside a group partition) cannot reach the API server;
  during an outage no node can, and the control-plane loops pause.
- Peer traffic is blocked when either end is partitioned from "peers", or when the two
  ends are not in the same group partition (outside counts as its own side, so the
  webhook, "external", is cut off from a group too).
- Healing a node nudges its kubelet so it reports at once, as a real one would on
  reconnecting.
"""

from __future__ import annotations

from collections.abc import Callable

from .nodes import SimNode
from .ticker import Ticker
from .timeline import Timeline


class Connectivity:
    def __init__(self, nodes: dict[str, SimNode], timeline: Timeline, ticker: Ticker,
                 clock: Callable[[], float], scale: float, nudge: Callable[[str], None]) -> None:
        self.nodes = nodes
        self.timeline = timeline
        self.ticker = ticker
        self.clock = clock
        self.scale = scale
        self.nudge = nudge
        self.outage_mode = "unavailable"
        self.outage_until = 0.0

    # -- the API server -------------------------------------------------------------

    def control_plane_up(self) -> bool:
        return self.clock() >= self.outage_until

    def api_reachable(self, node: str) -> bool:
        n = self.nodes.get(node)
        return self.control_plane_up() and n is not None and "api" not in n.partition and not n.island

    def api_outage(self, duration_s: float, mode: str) -> None:
        scaled = duration_s * self.scale
        self.outage_mode = mode
        self.outage_until = max(self.outage_until, self.clock() + scaled)
        self.timeline.add("fault", detail=f"API server outage for {scaled:.1f}s ({mode})")

        def end() -> None:
            if self.control_plane_up():
                self.timeline.add("fault", detail="API server back")

        self.ticker.call_later(scaled + 0.01, end)

    def paused_during_outage(self, fn: Callable[[], None]) -> Callable[[], None]:
        """`fn`, skipped while the API server is down (a control-plane loop)."""
        def run() -> None:
            if self.control_plane_up():
                fn()

        return run

    # -- partitions -----------------------------------------------------------------

    def partition(self, name: str, scope: set[str]) -> None:
        node = self.nodes[name]
        with node.lock:
            node.partition |= scope
        self.timeline.add("fault", name, f"node/{name}", f"partitioned from {', '.join(sorted(scope))}",
                          partition=sorted(node.partition))

    def partition_group(self, names: list[str]) -> None:
        """Cut these nodes off from the API and from every other node, but not from each other."""
        island = ",".join(sorted(names))
        for name in names:
            node = self.nodes[name]
            with node.lock:
                node.island = island
        self.timeline.add("fault", detail=f"group partition: {island} cut from the API and the rest",
                          group=sorted(names))

    def heal(self, name: str | None) -> None:
        for node in ([self.nodes[name]] if name else list(self.nodes.values())):
            with node.lock:
                if not node.partition and not node.island:
                    continue
                node.partition.clear()
                node.island = ""
            self.timeline.add("fault", node.name, f"node/{node.name}", "partition healed")
            self.nudge(node.name)

    # -- the peer network's questions ---------------------------------------------------

    def resolve(self, address: str) -> str | None:
        """The node whose agent listens at "host:port", if any."""
        for node in self.nodes.values():
            if node.address and node.address == address:
                return node.name
        return None

    def peer_blocked(self, source: str, destination: str) -> bool:
        islands = set()
        for name in (source, destination):
            node = self.nodes.get(name)
            if node is not None and "peers" in node.partition:
                return True
            islands.add(node.island if node is not None else "")
        return len(islands) > 1  # one side is in a group partition the other is not in
