"""The controller's side effects, each idempotent and each returning the status subtrees
that record its result. The loop records every intent before calling these.

- orders: signed with the remediator's Ed25519 key (`core.fence_order`), delivered to the
  node's agent directly and through up to N peers (which relay it), in parallel;
- the fence agent: the node's BMC from the fence inventory (`controller.fence_agent`:
  a confirmed power-off, credentials never recorded), or else a configured command,
  with a timeout, success by exit code;
- recovery: the out-of-service taint, or force deletion of the node's pods and
  VolumeAttachments; and removing the taint once the node is back.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import shlex
import subprocess
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.fence_agent import FenceAgents
from controller.fence_agent import Outcome as BmcOutcome
from controller.kube import ControllerKube
from controller.metrics import ControllerMetrics
from controller.model import NodeObs, RemediationView
from core import names
from core.clock import rfc3339
from core.fence_order import Action as OrderAction
from core.fence_order import new_order, sign_order
from core.kube import Forbidden, KubeError, Unavailable
from core.peer_client import OrderAnswer, OrderOutcome, PeerClient, PeerError
from core.remediation_status import (
    AckRecord,
    EscalationStatus,
    FenceStatus,
    KubeletRestart,
    LastAnswer,
    PeerSilence,
    RecoveryStatus,
    Refusal,
    Stamp,
)

log = logging.getLogger("nodewarden.controller.act")
# Answers in which the agent did not take the order. "Already rebooted" is not one: the
# node has been reset since the order's boot. Nor is "not ready" (the agent cannot tell
# yet which boot it is on: only the simulator's `node-status` boot source, on an agent
# started after a reboot, while the API is out of its reach): it is an answer to come.
REFUSALS = frozenset({OrderOutcome.REJECTED, OrderOutcome.CANNOT_FENCE})


class Actor:
    def __init__(self, kube: ControllerKube, peers: PeerClient, key: Ed25519PrivateKey, *,
                 order_ttl_s: float, peer_timeout_s: float, fence_agent_command: str,
                 fence_agent_timeout_s: float, metrics: ControllerMetrics,
                 pool: concurrent.futures.Executor, fence_agents: FenceAgents | None = None) -> None:
        self.kube = kube
        self.peers = peers
        self.key = key
        self.order_ttl_s = order_ttl_s
        self.peer_timeout_s = peer_timeout_s
        self.fence_agent_command = fence_agent_command
        self.fence_agent_timeout_s = fence_agent_timeout_s
        self.metrics = metrics
        self.pool = pool
        self.fence_agents = fence_agents

    # -- orders --------------------------------------------------------------------------

    def prepare_order(self, rem: RemediationView, node: NodeObs, action: str, now: float,
                      dry_run: bool) -> dict[str, Any]:
        """The status intent that records a new order (written before any delivery)."""
        order = new_order(node=rem.node, remediation_uid=rem.uid, action=OrderAction(action),
                          issued_at=now, ttl_s=self.order_ttl_s, boot_id=node.boot_id)
        token = "dry-run" if dry_run else sign_order(order, self.key)
        self.metrics.fence_orders.labels(action, "issued").inc()
        if action == str(OrderAction.FENCE):
            return {"fence": FenceStatus(order=token, action=action, issued_at=Stamp.at(now),
                                         expires_at=Stamp.at(order.expires_at), boot_id=node.boot_id,
                                         delivered_via=()).to_json()}
        return {"kubeletRestart": KubeletRestart(order=token, issued_at=Stamp.at(now)).to_json()}

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
        # Prefer an acknowledgement, then a refusal (the agent's own word), then the first.
        best_via, best = min(answers, key=lambda item: (item[1].acknowledgement is None,
                                                        item[1].outcome not in REFUSALS))
        if action != str(OrderAction.FENCE):
            return {"kubeletRestart": KubeletRestart(outcome=str(best.outcome),
                                                     detail=best.detail[:1000]).to_json()}
        delivered = sorted({*rem.fence.delivered_via, *(via for via, _ in answers)})[:20] if rem.fence else []
        last = LastAnswer(at=Stamp.at(now), via=best_via, outcome=str(best.outcome), reason=best.reason or "",
                          detail=best.detail[:1000])
        acknowledgement = refusal = None
        ack = best.acknowledgement
        if (best.outcome is OrderOutcome.FENCING and ack is not None and ack.method == "watchdog"
                and ack.last_feed_at is not None and ack.watchdog_timeout_s is not None):
            acknowledgement = AckRecord(at=Stamp.at(now), via=best_via, last_feed_at=Stamp.at(ack.last_feed_at),
                                        watchdog_timeout_s=ack.watchdog_timeout_s)
            self.metrics.fence_orders.labels(action, "acknowledged").inc()
        elif best.outcome in REFUSALS:
            self.metrics.fence_orders.labels(action, "rejected").inc()
            refusal = Refusal(reason=f"{best.outcome}/{best.reason or ''}", at=Stamp.at(now), via=best_via)
            log.warning("the agent of %s REFUSED the fence order: %s %s %s", rem.node, best.outcome, best.reason,
                        best.detail)
        return {"fence": FenceStatus(delivered_via=tuple(delivered), last_answer=last,
                                     acknowledgement=acknowledgement, refusal=refusal).to_json()}

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
        silence = PeerSilence(checked_at=Stamp.at(now), asked=len(peers), answered=answered,
                              complete=bool(peers) and answered == len(peers),
                              last_healthy_answer_at=None if latest is None else Stamp.at(latest))
        return {"fence": FenceStatus(peer_silence=silence).to_json()}

    # -- escalation ----------------------------------------------------------------------

    def run_fence_agent(self, rem: RemediationView, attempt: int, now_fn: Any) -> dict[str, Any]:
        device_name = str(rem.escalation_state.get("device") or "")
        if device_name:
            return self._run_inventory_agent(rem, attempt, device_name, now_fn)
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
        return {"escalation": EscalationStatus(finished_attempt=attempt, last_exit_code=code,
                                               finished_at=Stamp.at(now_fn()), output=output).to_json()}

    def _run_inventory_agent(self, rem: RemediationView, attempt: int, device_name: str,
                             now_fn: Any) -> dict[str, Any]:
        agents = self.fence_agents
        device = next((d for d in agents.inventory.devices if d.name == device_name), None) if agents else None
        if agents is None or device is None:
            log.error("fence device %s of %s is no longer in the inventory", device_name, rem.node)
            self.metrics.fence_agent_runs.labels("failure").inc()
            return {"escalation": EscalationStatus(
                finished_attempt=attempt, last_exit_code=-3, outcome=str(BmcOutcome.FAILED),
                finished_at=Stamp.at(now_fn()),
                summary=f"fence device {device_name} is not in the inventory").to_json()}
        log.warning("powering %s off through its BMC: %s (device %s, action %s)", rem.node, device.agent,
                    device.name, device.action)
        result = agents.fence(device, rem.node)
        self.metrics.fence_agent_runs.labels("success" if result.fenced else "failure").inc()
        confirmed = result.power_confirmed_at
        out = EscalationStatus(finished_attempt=attempt, last_exit_code=0 if result.fenced else (result.exit_code or 1),
                               finished_at=Stamp.at(now_fn()), outcome=str(result.outcome), agent=result.agent,
                               action=result.action, runs=tuple(result.runs), summary=result.describe(),
                               output=result.output,
                               power_off_confirmed_at=None if confirmed is None else Stamp.at(confirmed))
        return {"escalation": out.to_json()}

    # -- recovery ------------------------------------------------------------------------

    def apply_taint(self, node: str) -> dict[str, Any]:
        if self.kube.set_out_of_service_taint(node, True):
            self.metrics.taint_changes.labels("added").inc()
            log.warning("applied the out-of-service taint to %s", node)
        return {}

    def add_fencing_taint(self, node: str, now: float) -> dict[str, Any]:
        """nodewarden's NoExecute taint (controller/after_fence.py), timed by this clock,
        rounded up: `timeAdded` has whole seconds, and a settle counted from a time
        earlier than the real one would be too short."""
        if self.kube.set_fencing_taint(node, True, rfc3339(float(math.ceil(now)))):
            self.metrics.fencing_taint_changes.labels("added").inc()
            log.warning("added the fencing taint %s:%s to %s: a kubelet that comes back on a new boot "
                        "refuses the pods that do not tolerate it", names.FENCING_TAINT_KEY,
                        names.FENCING_TAINT_EFFECT, node)
        return {}

    def remove_taint(self, node: str) -> dict[str, Any]:
        """The out-of-service taint, then the fencing taint."""
        if self.kube.set_out_of_service_taint(node, False):
            self.metrics.taint_changes.labels("removed").inc()
            log.info("removed the out-of-service taint from %s", node)
        self.remove_fencing_taint(node, "the node is back")
        return {}

    def remove_fencing_taint(self, node: str, why: str) -> None:
        if self.kube.set_fencing_taint(node, False):
            self.metrics.fencing_taint_changes.labels("removed").inc()
            log.info("removed the fencing taint from %s: %s", node, why)

    def delete_evicted_pods(self, node: str) -> dict[str, Any]:
        """The node's terminating pods (pod GC's rule, controller/eviction.py), force-deleted
        now instead of at pod GC's next run. Refused (RBAC, or any answer but "unavailable"):
        recorded as `podDeletionSkipped`, and left to pod GC."""
        try:
            pods = self.kube.delete_node_pods(node, terminating_only=True)
        except Unavailable:
            raise  # tried again at the next reconcile
        except KubeError as exc:  # RBAC (Forbidden) or any other refusal: pod GC does it
            self.metrics.pod_deletions.labels("forbidden" if isinstance(exc, Forbidden) else "failed").inc()
            log.warning("could not delete the pods of %s (%s): pod GC force-deletes them at its next run; "
                        "if this is RBAC, grant the controller list and delete on pods or set "
                        "delete_pods_after_taint=false", node, exc)
            skipped = RecoveryStatus(pod_deletion_skipped=f"{type(exc).__name__}: {exc}"[:300])
            return {"recovery": skipped.to_json()}
        self.metrics.pod_deletions.labels("deleted").inc(pods)
        log.warning("force-deleted %d terminating pod(s) of %s (pod GC's rule, without waiting for its next run)",
                    pods, node)
        return {"recovery": RecoveryStatus(pods_deleted=pods).to_json()}

    def delete_resources(self, node: str) -> dict[str, Any]:
        pods = self.kube.delete_node_pods(node)
        attachments = self.kube.delete_node_volume_attachments(node)
        log.warning("force-deleted %d pod(s) and %d VolumeAttachment(s) of %s", pods, attachments, node)
        return {"recovery": RecoveryStatus(pods_deleted=pods, volume_attachments_deleted=attachments).to_json()}
