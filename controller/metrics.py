"""The controller's Prometheus metrics (`nodewarden_controller_*`), served by the
controller process on its own port. Every label is bounded: phases, reasons and rules
are enumerations."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

P = "nodewarden_controller_"
PHASE_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 180, 300, 600, 1200, 1800, 3600, 7200)


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.is_leader = Gauge(P + "is_leader", "1 while this replica holds the leader Lease and acts.",
                               registry=r)
        self.transitions = Counter(P + "transitions_total", "Phase transitions, by phases and reason.",
                                   ["from_phase", "to_phase", "reason"], registry=r)
        self.phase_duration = Histogram(P + "phase_duration_seconds", "Time spent in a phase, on leaving it.",
                                        ["phase"], buckets=PHASE_BUCKETS, registry=r)
        self.outcomes = Counter(P + "remediations_completed_total", "Finished remediations, by outcome and reason.",
                                ["outcome", "reason"], registry=r)
        self.time_to_recovery = Histogram(P + "time_to_recovery_seconds",
                                          "From the alert's acceptance to recovery applied (taint or deletion).",
                                          buckets=PHASE_BUCKETS, registry=r)
        self.fence_evidence = Counter(P + "fence_evidence_total", "Fences proven, by evidence rule.",
                                      ["rule"], registry=r)
        self.fence_orders = Counter(P + "fence_orders_total", "Fence orders, by event (issued, delivered, "
                                    "acknowledged, rejected, unreachable).", ["action", "result"], registry=r)
        self.escalations = Counter(P + "escalations_total", "Escalations when self-fencing could not be proven.",
                                   ["kind", "cause"], registry=r)
        self.fence_agent_runs = Counter(P + "fence_agent_runs_total", "Fence agent command runs, by result.",
                                        ["result"], registry=r)
        self.fence_agent_checks = Counter(P + "fence_agent_checks_total",
                                          "Status checks of the fence inventory's BMCs, by outcome.",
                                          ["result"], registry=r)
        self.fence_agent_unusable = Gauge(P + "fence_agent_unusable_nodes",
                                          "Nodes whose BMC failed its last status check, by outcome.",
                                          ["result"], registry=r)
        self.fence_not_observed = Counter(P + "fence_not_observed_total",
                                          "Nodes seen alive after they must have been fenced.", registry=r)
        self.unacknowledged = Gauge(P + "fence_not_observed_unacknowledged",
                                    "1 per node whose remediation failed with FenceNotObserved and that no "
                                    "person has acknowledged (annotation nodewarden.io/acknowledged).",
                                    ["node"], registry=r)
        self.active = Gauge(P + "remediations", "Remediations this leader tracks, by phase.", ["phase"],
                            registry=r)
        self.nodes_not_back = Gauge(P + "nodes_not_back", "Recovered nodes that have not come back in time.",
                                    registry=r)
        self.reconciles = Histogram(P + "reconcile_duration_seconds", "Time of one reconcile of one remediation.",
                                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                    registry=r)
        self.errors = Counter(P + "reconcile_errors_total", "Reconcile failures, by kind.", ["kind"], registry=r)
        self.taint_changes = Counter(P + "taint_changes_total", "Out-of-service taint changes made.",
                                     ["change"], registry=r)
        self.fencing_taint_changes = Counter(
            P + "fencing_taint_changes_total",
            "Changes to nodewarden's fencing taint (nodewarden.io/fencing:NoExecute): added with a fence "
            "order or again before recovery, removed when the node is back or no remediation needs it.",
            ["change"], registry=r)
        self.pod_deletions = Counter(P + "pod_deletions_total",
                                     "Pods of fenced nodes the controller force-deleted after the out-of-service "
                                     "taint (outcome deleted), or could not (forbidden, failed: left to pod GC).",
                                     ["outcome"], registry=r)
        self.evidence_refusals = Counter(P + "evidence_refusals_total",
                                         "Fence evidence refused (a refused order, a forged or unauthenticated "
                                         "input, an unchecked assumption), by reason.", ["reason"], registry=r)
        self.agent_reports_trusted = Gauge(P + "agent_reports_trusted",
                                           "1 while agents' own reports count as fence evidence "
                                           "(trust_agent_writes).", registry=r)
        self.agents_not_counted_on = Gauge(P + "agents_not_counted_on",
                                           "Agents whose self-fencing is not counted on: they do not trust "
                                           "this controller's key, or their clock is unmeasured or off, by reason.",
                                           ["reason"], registry=r)
        self.outage_suspected = Gauge(P + "control_plane_outage_suspected",
                                      "1 while more than half of the agents' heartbeats are stale.", registry=r)


class Health(Protocol):
    def healthy(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...


def serve_health_and_metrics(host: str, port: int, registry: CollectorRegistry, health: Health) -> ThreadingHTTPServer:
    """/metrics, /healthz (the loop's threads are alive) and /readyz (the caches are
    synced: a standby is ready too, since readiness is about serving, not leading)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path in ("/healthz", "/readyz"):
                ok, detail = health.healthy() if self.path == "/healthz" else health.ready()
                self._send(200 if ok else 503, (detail + "\n").encode(), "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
