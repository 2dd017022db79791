"""The agent's Prometheus metrics, all `nodewarden_agent_*`, on an injectable registry.

Labels are bounded: `result`, `reason`, `verdict`, `endpoint`, `source`, `action` take
values from the enums in the code, never node names or free text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Info

P = "nodewarden_agent_"


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.info = Info(P + "build", "Agent version and node.", registry=r)
        # Watchdog.
        self.watchdog_feeds = Counter(P + "watchdog_feeds_total", "Watchdog feeds written.", registry=r)
        self.watchdog_feed_errors = Counter(
            P + "watchdog_feed_errors_total", "Watchdog writes that failed.", registry=r
        )
        self.watchdog_feeds_withheld = Counter(
            P + "watchdog_feeds_withheld_total",
            "Feeds skipped because the decision loop had not renewed its grant.",
            registry=r,
        )
        self.watchdog_open_errors = Counter(
            P + "watchdog_open_errors_total", "Failed attempts to open the watchdog.", registry=r
        )
        self.watchdog_last_feed = Gauge(
            P + "watchdog_last_feed_timestamp_seconds", "Wall time of the last feed.", registry=r
        )
        self.watchdog_timeout = Gauge(
            P + "watchdog_timeout_seconds", "Effective watchdog timeout.", registry=r
        )
        self.watchdog_failures = Counter(
            P + "watchdog_failures_total",
            "Fences after which the node was still alive well past the watchdog timeout.",
            registry=r,
        )
        self.self_fence_capable = Gauge(
            P + "self_fence_capable", "1 if the node can be trusted to fence itself.", registry=r
        )
        # API.
        self.api_checks = Counter(
            P + "api_checks_total", "API reachability checks by result.", ["result"], registry=r
        )
        self.api_consecutive_failures = Gauge(
            P + "api_consecutive_failures", "Failed API checks in a row.", registry=r
        )
        self.last_api_contact = Gauge(
            P + "last_api_contact_timestamp_seconds",
            "Wall time of the last successful API check (Lease renewed).",
            registry=r,
        )
        # Peers.
        self.peer_requests = Counter(
            P + "peer_requests_total",
            "Requests this agent sent to peers, by endpoint and result.",
            ["endpoint", "result"],
            registry=r,
        )
        self.peer_requests_served = Counter(
            P + "peer_requests_served_total",
            "Requests this agent answered, by endpoint and HTTP code.",
            ["endpoint", "code"],
            registry=r,
        )
        self.peer_requests_refused = Counter(
            P + "peer_requests_refused_total",
            "Requests to the peer endpoint refused before any action, by reason.",
            ["reason"],
            registry=r,
        )
        self.peer_connections = Gauge(
            P + "peer_connections", "Open connections to the peer endpoint.", registry=r
        )
        self.known_peers = Gauge(P + "known_peers", "Peers with a published endpoint.", registry=r)
        # Decisions and actions.
        self.decisions = Counter(
            P + "decisions_total",
            "Isolation decisions, counted when the decision changes.",
            ["verdict", "reason"],
            registry=r,
        )
        self.orders = Counter(
            P + "orders_total",
            "Orders received, by action, source and outcome.",
            ["action", "source", "outcome"],
            registry=r,
        )
        self.fence_actions = Counter(
            P + "fence_actions_total", "Fences begun, by trigger.", ["trigger"], registry=r
        )
        self.fence_started = Gauge(
            P + "fence_started_timestamp_seconds", "Wall time the fence began (0: none).", registry=r
        )
        self.fallback_reboots = Counter(
            P + "fallback_reboots_total", "Software reboot fallbacks run, by result.", ["result"], registry=r
        )
        self.kubelet_restarts = Counter(
            P + "kubelet_restarts_total", "Kubelet restarts run, by result.", ["result"], registry=r
        )
