"""The controller's side effects, each idempotent and each returning the status subtrees
that record its result. The loop records every intent before calling these.

- orders: signed with the remediator's Ed25519 key (`core.fence_order`), delivered to the
  node's agent directly and through up to N peers (which relay it), in parallel;
- the fence agent: a configured command (e.g. ClusterLabs' fence_ipmilan), with a
  timeout, success by exit code;
- recovery: the out-of-service taint, or force deletion of the node's pods and
  VolumeAttachments; and removing the taint once the node is back.
"""

from __future__ import annotations

import concurrent.futures
import logging
import shlex
import subprocess
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.kube import ControllerKube
from controller.metrics import ControllerMetrics
from controller.model import NodeObs, RemediationView, format_time
from core.fence_order import Action as OrderAction
from core.fence_order import new_order, sign_order
from core.peer_client import OrderAnswer, OrderOutcome, PeerClient, PeerError

log = logging.getLogger("nodewarden.controller.act")


class Actor:
    def __init__(self, kube: ControllerKube, peers: PeerClient, key: Ed25519PrivateKey, *,
                 order_ttl_s: float, peer_timeout_s: float, fence_agent_command: str,
                 fence_agent_timeout_s: float, metrics: ControllerMetrics,
                 pool: concurrent.futures.Executor) -> None:
        self.kube = kube
        self.peers = peers
        self.key = key
        self.order_ttl_s = order_ttl_s
        self.peer_timeout_s = peer_timeout_s
        self.fence_agent_command = fence_agent_command
        self.fence_agent_timeout_s = fence_agent_timeout_s
        self.metrics = metrics
        self.pool = pool

    # -- orders --------------------------------------------------------------------------

    def prepare_order(self, rem: RemediationView, node: NodeObs, action: str, now: float,
                      dry_run: bool) -> dict[str, Any]:
        """The status intent that records a new order (written before any delivery)."""
        order = new_order(node=rem.node, remediation_uid=rem.uid, action=OrderAction(action),
                          issued_at=now, ttl_s=self.order_ttl_s, boot_id=node.boot_id)
        token = "dry-run" if dry_run else sign_order(order, self.key)
        self.metrics.fence_orders.labels(action, "issued").inc()
        if action == str(OrderAction.FENCE):
            return {"fence": {"order": token, "action": action, "issuedAt": format_time(now),
                              "expiresAt": format_time(order.expires_at), "bootId": node.boot_id,
                              "deliveredVia": []}}
        return {"kubeletRestart": {"order": token, "issuedAt": format_time(now)}}

    def deliver(self, rem: RemediationView, token: str, action: str, node: NodeObs,
                relays: list[tuple[str, str]], now: float) -> dict[str, Any]:
        """Send `token` to the node's agent and through `relays`; the status result."""
        targets: list[tuple[str, str]] = []
        if node.agent.peer_endpoint:
            targets.append(("direct", node.agent.peer_endpoint))
        targets += [(f"peer:{name}", endpoint) for name, endpoint in relays]
        if not targets:
            self.metrics.fence_orders.labels(action, "no-route").inc()
            return {}
        futures = {self.pool.submit(self.peers.deliver_order, endpoint, token, timeout_s=self.peer_timeout_s,
                                    receiver=rem.node if via == "direct" else via.removeprefix("peer:")): via
                   for via, endpoint in targets}
        answers: list[tuple[str, OrderAnswer]] = []
        try:
            for future in concurrent.futures.as_completed(futures, timeout=self.peer_timeout_s + 2):
                via = futures[future]
                try:
                    answers.append((via, future.result()))
                    self.metrics.fence_orders.labels(action, "delivered").inc()
                except PeerError as exc:
                    self.metrics.fence_orders.labels(action, "unreachable").inc()
                    log.info("order for %s not delivered via %s: %s", rem.node, via, exc)
        except concurrent.futures.TimeoutError:
            log.info("some deliveries of the order for %s did not finish in time", rem.node)
        if not answers:
            return {}
        return self._record(rem, action, answers, now)

    def _record(self, rem: RemediationView, action: str, answers: list[tuple[str, OrderAnswer]],
                now: float) -> dict[str, Any]:
        best_via, best = answers[0]
        for via, answer in answers:  # prefer an acknowledgement, then a direct answer
            if answer.acknowledgement is not None and best.acknowledgement is None:
                best_via, best = via, answer
        last = {"at": format_time(now), "via": best_via, "outcome": str(best.outcome),
                "reason": best.reason or "", "detail": best.detail[:1000]}
        if action != str(OrderAction.FENCE):
            return {"kubeletRestart": {"outcome": str(best.outcome), "detail": best.detail[:1000]}}
        delivered = sorted({*rem.fence.delivered_via, *(via for via, _ in answers)})[:20] if rem.fence else []
        fence: dict[str, Any] = {"deliveredVia": delivered, "lastAnswer": last}
        ack = best.acknowledgement
        if (best.outcome is OrderOutcome.FENCING and ack is not None and ack.method == "watchdog"
                and ack.last_feed_at is not None and ack.watchdog_timeout_s is not None):
            fence["acknowledgement"] = {"at": format_time(now), "via": best_via,
                                        "lastFeedAt": format_time(ack.last_feed_at),
                                        "watchdogTimeoutSeconds": ack.watchdog_timeout_s}
            self.metrics.fence_orders.labels(action, "acknowledged").inc()
        elif best.outcome is OrderOutcome.REJECTED:
            self.metrics.fence_orders.labels(action, "rejected").inc()
            log.warning("the agent of %s REJECTED the fence order: %s %s", rem.node, best.reason, best.detail)
        return {"fence": fence}

    def check_peer_silence(self, rem: RemediationView, peers: list[tuple[str, str]], now: float) -> dict[str, Any]:
        """Ask every other agent (as an observer) when it last told this node "healthy"."""
        futures = {self.pool.submit(self.peers.node_view, endpoint, rem.node, receiver=name, timeout_s=self.peer_timeout_s,
                                    observer=True): name for name, endpoint in peers}
        answered, latest = 0, None
        try:
            for future in concurrent.futures.as_completed(futures, timeout=self.peer_timeout_s + 2):
                try:
                    view = future.result()
                except PeerError as exc:
                    log.info("peer %s could not say what it told %s: %s", futures[future], rem.node, exc)
                    continue
                answered += 1
                if view.last_healthy_answer_at is not None:
                    latest = max(latest or 0.0, view.last_healthy_answer_at)
        except concurrent.futures.TimeoutError:
            pass
        silence: dict[str, Any] = {"checkedAt": format_time(now), "asked": len(peers), "answered": answered,
                                   "complete": bool(peers) and answered == len(peers)}
        if latest is not None:
            silence["lastHealthyAnswerAt"] = format_time(latest)
        return {"fence": {"peerSilence": silence}}

    # -- escalation ----------------------------------------------------------------------

    def run_fence_agent(self, rem: RemediationView, attempt: int, now_fn: Any) -> dict[str, Any]:
        command = shlex.split(self.fence_agent_command.format(node=rem.node))
        log.warning("running the fence agent for %s (attempt %d): %s", rem.node, attempt, command[0])
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=self.fence_agent_timeout_s,
                                  stdin=subprocess.DEVNULL)
            code, output = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
        except subprocess.TimeoutExpired:
            code, output = -1, f"timed out after {self.fence_agent_timeout_s:g}s"
        except OSError as exc:
            code, output = -2, f"could not run: {exc.strerror}"
        self.metrics.fence_agent_runs.labels("success" if code == 0 else "failure").inc()
        return {"escalation": {"finishedAttempt": attempt, "lastExitCode": code,
                               "finishedAt": format_time(now_fn()), "output": output}}

    # -- recovery ------------------------------------------------------------------------

    def apply_taint(self, node: str) -> dict[str, Any]:
        if self.kube.set_out_of_service_taint(node, True):
            self.metrics.taint_changes.labels("added").inc()
            log.warning("applied the out-of-service taint to %s", node)
        return {}

    def remove_taint(self, node: str) -> dict[str, Any]:
        if self.kube.set_out_of_service_taint(node, False):
            self.metrics.taint_changes.labels("removed").inc()
            log.info("removed the out-of-service taint from %s", node)
        return {}

    def delete_resources(self, node: str) -> dict[str, Any]:
        pods = self.kube.delete_node_pods(node)
        attachments = self.kube.delete_node_volume_attachments(node)
        log.warning("force-deleted %d pod(s) and %d VolumeAttachment(s) of %s", pods, attachments, node)
        return {"recovery": {"podsDeleted": pods, "volumeAttachmentsDeleted": attachments}}
