"""The reconcile of one remediation: observe -> decide -> write intent -> act -> write results.

`Reconciler.reconcile(name)` reads only the watch-fed views (`informers`) and the
cluster-wide facts the loop keeps current (`ClusterFacts`), decides with the pure
`controller.machine.decide`, writes the decision's status (with any signed order, the
intent) guarded by the resourceVersion it read BEFORE it runs the actions, and merges the
actions' results back as facts (retried on a fresh object after a 409, never lost). It
checks that this replica still leads right before every write and every action. Returns
when to look again (seconds), or None.

What this process has itself seen of an order (`Witness`: delivery, acknowledgement,
refusal, peer silence, fence agent success) is kept here, by remediation uid; it is the
only evidence that a status write by someone else cannot forge.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from controller.act import Actor
from controller.evidence import FenceTiming
from controller.informer import Informer
from controller.kube import ControllerKube, Kind
from controller.machine import Action, ActionKind, MachineConfig, decide
from controller.model import (
    Acknowledgement,
    Observations,
    Phase,
    RemediationView,
    Witness,
    parse_time,
)
from controller.observe import all_published, ask_peers, node_obs, pick_peers
from controller.proof import witness_for
from controller.report import Reporter
from controller.settings import ControllerSettings
from controller.status import decision_patch, merge
from core import names
from core.clock import Clock
from core.fence_order import OrderKey
from core.kube import Conflict, NotFound
from core.remediation import decided


def machine_config(s: ControllerSettings, order_key: OrderKey | None = None) -> MachineConfig:
    return MachineConfig(
        order_key=order_key,
        timing=FenceTiming(s.safety_margin_s, s.max_clock_skew_s, s.ack_timeout_s),
        order_ttl_s=s.order_ttl_s, confirm_timeout_s=s.confirm_timeout_s, operator_grace_s=s.operator_grace_s,
        approval_timeout_s=s.approval_timeout_s, kubelet_restart_first=s.kubelet_restart_first,
        kubelet_restart_wait_s=s.kubelet_restart_wait_s, fence_timeout_s=s.fence_timeout_s,
        escalation_timeout_s=s.escalation_timeout_s, fence_agent_configured=bool(s.fence_agent_command),
        fence_agent_attempts=s.fence_agent_attempts, recover_timeout_s=s.recover_timeout_s,
        node_not_back_after_s=s.node_not_back_after_s, silence_settle_s=s.silence_settle_s,
        delete_pods_after_taint=s.delete_pods_after_taint, fencing_taint_settle_s=s.fencing_taint_settle_s,
        pod_gc_period_s=s.pod_gc_period_s)


def witness_after(seen: Witness, kind: ActionKind, results: dict[str, Any], now: float) -> Witness:
    """What this process has now seen of the order: an action's results, as it got them."""
    fence = results.get("fence") or {}
    ack = fence.get("acknowledgement") or {}
    refusal = fence.get("refusal") or {}
    updates: dict[str, Any] = {}
    if kind in (ActionKind.ISSUE_ORDER, ActionKind.DELIVER_ORDER):
        updates["delivery_attempted"] = True
    if ack.get("lastFeedAt") and ack.get("watchdogTimeoutSeconds") is not None:
        updates["ack"] = Acknowledgement(parse_time(ack.get("at")) or now, str(ack.get("via", "")),
                                         parse_time(ack["lastFeedAt"]) or 0.0, float(ack["watchdogTimeoutSeconds"]))
    if refusal.get("reason"):
        updates.update(refusal_reason=str(refusal["reason"]), refusal_at=now)
    if fence.get("peerSilence"):
        updates["peer_silence"] = dict(fence["peerSilence"])
    escalation = results.get("escalation") or {}
    if kind is ActionKind.RUN_FENCE_AGENT and escalation.get("lastExitCode") == 0:
        updates["fence_agent_succeeded_at"] = parse_time(escalation.get("finishedAt")) or now
    return dataclasses.replace(seen, **updates) if updates else seen


@dataclasses.dataclass
class ClusterFacts:
    """Cluster-wide facts the loop keeps current (at start, on its tick, on its trust
    checks) and every reconcile reads."""
    outage_suspected: bool = False
    oos_taint_supported: bool = True
    agent_reports_refused: str = ""  # a Reason when agents' own reports are not evidence


class Reconciler:
    def __init__(self, settings: ControllerSettings, kube: ControllerKube, actor: Actor,
                 is_leader: Callable[[], bool], clock: Clock, cfg: MachineConfig,
                 informers: Mapping[Kind, Informer], facts: ClusterFacts, reporter: Reporter,
                 peer_pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self.s = settings
        self.kube = kube
        self.actor = actor
        self.is_leader = is_leader
        self.clock = clock
        self.cfg = cfg
        self.informers = informers
        self.facts = facts
        self.reporter = reporter
        self.peer_pool = peer_pool
        self.fence_agents = actor.fence_agents
        self._witness: dict[str, Witness] = {}  # by remediation uid: what this process saw itself
        self._last_delivery: dict[str, float] = {}
        self._last_silence_check: dict[str, float] = {}

    def _observe(self, rem: RemediationView) -> Observations:
        node = self.informers[Kind.NODES].get(rem.node)
        obs = node_obs(node, self.informers[Kind.NODE_LEASES].get(rem.node),
                       self.informers[Kind.AGENT_LEASES].get(names.agent_lease_name(rem.node)),
                       self.s.node_lease_duration_s)
        pause = self.informers[Kind.PAUSE].get(self.kube.pause_configmap) or {}
        paused = str((pause.get("data") or {}).get("paused", "")).lower() == "true"
        peers = None
        if rem.phase is Phase.CONFIRMING and obs.exists and obs.ready != "True" and not rem.dry_run:
            chosen = pick_peers(rem.node, self.informers[Kind.NODES].items(), self.s.peers_to_ask)
            peers = ask_peers(self.actor.peers, rem.node, chosen, self.s.peer_timeout_s, self.peer_pool)
        labels = ((node or {}).get("metadata") or {}).get("labels") or {}
        device = self.fence_agents.device_for(rem.node, labels) if self.fence_agents else None
        return Observations(now=self.clock.now(), node=obs, peers=peers, outage_suspected=self.facts.outage_suspected,
                            paused=paused, oos_taint_supported=self.facts.oos_taint_supported,
                            fence_device=device.name if device else "",
                            witness=witness_for(self._witness.get(rem.uid, Witness()), rem),
                            agent_reports_refused=self.facts.agent_reports_refused)

    def _write(self, rem: RemediationView, patch: dict[str, Any]) -> RemediationView:
        obj = self.kube.patch_remediation_status(rem.name, patch, rem.resource_version)
        self.informers[Kind.REMEDIATIONS].put(obj)
        return RemediationView.parse(obj)

    def _write_results(self, rem: RemediationView, results: dict[str, Any]) -> None:
        """Results are facts (what an action did): another writer bumping the
        resourceVersion meanwhile (an alert recorded, the agent's report) must not lose
        them, or the action would be repeated and report nothing the second time."""
        for attempt in range(4):
            try:
                self._write(rem, results)
                return
            except Conflict:
                if attempt == 3:
                    raise
                rem = RemediationView.parse(self.kube.get_remediation(rem.name))
                if merge(rem.raw_status, results) == rem.raw_status:
                    return

    def reconcile(self, name: str) -> float | None:
        if not self.is_leader():
            return None
        obj = self.informers[Kind.REMEDIATIONS].get(name)
        if obj is None:
            return None
        if not decided(obj):
            return None  # the webhook has not decided on it yet: nothing to act on
        rem = RemediationView.parse(obj)
        if rem.phase.terminal:
            self._witness.pop(rem.uid, None)  # nothing left to prove
            if not rem.recovery.get("taintAppliedAt") and not rem.recovery.get("requestedAt"):
                return None  # no taint of ours can be left behind
        if not self.informers[Kind.NODES].synced.is_set() or not self.informers[Kind.NODE_LEASES].synced.is_set():
            return 1.0  # never decide on a view we cannot trust
        obs = self._observe(rem)
        decision = decide(rem, obs, self.cfg)
        self.reporter.refusals(rem, obs)
        now = self.clock.now()
        extra: dict[str, Any] = {}
        issue = [a for a in decision.actions if a.kind is ActionKind.ISSUE_ORDER]
        for action in issue:  # the signed order is part of the intent written first
            extra.update(self.actor.prepare_order(rem, obs.node, action.detail["action"], now, rem.dry_run))
        patch = decision_patch(rem, decision, now, extra)
        before = rem
        if patch:
            if not self.is_leader():
                return None
            try:
                rem = self._write(rem, patch)
            except NotFound:
                return None
            self.reporter.transition(before, rem, decision, now)
        results: dict[str, Any] = {}
        for action in decision.actions:
            if not self.is_leader():
                return None
            done = self._act(rem, action, obs, now)
            if rem.fence is not None and done is not None:
                seen = witness_for(self._witness.get(rem.uid, Witness()), rem)
                self._witness[rem.uid] = witness_after(seen, action.kind, done, now)
            results = merge(results, done or {})  # several actions may each record part of one subtree
        if results and merge(rem.raw_status, results) != rem.raw_status:
            self._write_results(rem, results)
            return 0.05  # decide again on the results
        return decision.requeue_s if decision.requeue_s is not None else self.s.resync_s

    def _act(self, rem: RemediationView, action: Action, obs: Observations, now: float) -> dict[str, Any] | None:
        """The action's results; None when it was not carried out (skipped this round)."""
        kind = action.kind
        if kind in (ActionKind.ISSUE_ORDER, ActionKind.DELIVER_ORDER):
            if rem.dry_run:
                return None
            which = action.detail.get("action", "fence") if kind is ActionKind.ISSUE_ORDER else "fence"
            token = (rem.kubelet_restart.get("order") if which == "restart-kubelet"
                     else (rem.fence.order if rem.fence else None))
            last = self._last_delivery.get(rem.name, 0.0)
            if not token or (kind is ActionKind.DELIVER_ORDER and time.monotonic() - last < self.s.resync_s):
                return None
            self._last_delivery[rem.name] = time.monotonic()
            relays = pick_peers(rem.node, self.informers[Kind.NODES].items(), self.s.peers_to_ask)
            return self.actor.deliver(rem, token, which, obs.node, relays, now)
        if kind is ActionKind.CHECK_PEER_SILENCE:
            last = self._last_silence_check.get(rem.name, 0.0)
            if time.monotonic() - last < self.s.resync_s:
                return None
            self._last_silence_check[rem.name] = time.monotonic()
            published = all_published(rem.node, self.informers[Kind.NODES].items())
            return self.actor.check_peer_silence(rem, published, now)
        if kind is ActionKind.RUN_FENCE_AGENT:
            return self.actor.run_fence_agent(rem, int(action.detail.get("attempt", 1)), self.clock.now)
        if kind is ActionKind.ADD_FENCING_TAINT:
            return None if rem.dry_run else self.actor.add_fencing_taint(rem.node, self.clock.now())
        if kind is ActionKind.APPLY_TAINT:
            return self.actor.apply_taint(rem.node)
        if kind is ActionKind.REMOVE_TAINT:
            return self.actor.remove_taint(rem.node)
        if kind is ActionKind.DELETE_RESOURCES:
            return self.actor.delete_resources(rem.node)
        if kind is ActionKind.DELETE_EVICTED_PODS:
            return self.actor.delete_evicted_pods(rem.node)
        return {}
