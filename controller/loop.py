"""The reconcile loop: watch-fed caches, leader election, a pool of workers, and for each
active remediation the cycle observe -> decide -> write intent -> act -> write results.

Only the leader acts, and it checks that it still leads right before every side effect.
Every status write carries the resourceVersion that was read, so a webhook cancel and a
fence order can never both succeed, nor two replicas issue two orders.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import heapq
import itertools
import logging
import threading
import time
from typing import Any

from controller.act import Actor
from controller.evidence import FenceTiming
from controller.fence_agent import AgentResult
from controller.fence_checks import FenceDeviceChecks
from controller.informer import Informer
from controller.kube import ControllerKube, Kind
from controller.leader import LeaderElector
from controller.machine import ActionKind, Decision, MachineConfig, decide
from controller.metrics import ControllerMetrics
from controller.model import (
    Acknowledgement,
    Observations,
    Phase,
    Reason,
    RemediationView,
    Witness,
    parse_time,
)
from controller.observe import (
    agent_info,
    all_published,
    ask_peers,
    node_obs,
    outage_suspected,
    pick_peers,
)
from controller.proof import Refusal, clock_skew, key_distrusted, refusals, witness_for
from controller.settings import AGENT_WRITES_POLICY, ControllerSettings
from controller.status import decision_patch, merge
from core import names
from core.clock import Clock
from core.events import EventRecorder, NodeEvent
from core.fence_order import OrderKey
from core.kube import Conflict, KubeError, NotFound
from core.remediation import decided, needs_acknowledgement

log = logging.getLogger("nodewarden.controller")
WARNING_REASONS = {Reason.FENCE_NOT_OBSERVED, Reason.FENCE_NOT_PROVEN, Reason.FENCE_AGENT_FAILED,
                   Reason.ESCALATION_TIMEOUT, Reason.AWAITING_OPERATOR_CONFIRMATION,
                   Reason.ESCALATED_TO_FENCE_AGENT, Reason.NODE_NOT_BACK, Reason.RECOVERY_FAILED,
                   Reason.NODE_ALIVE_AFTER_FENCE, Reason.CONTROL_PLANE_OUTAGE, Reason.NOT_CONFIRMED,
                   Reason.ORDER_REFUSED, Reason.ORDER_NOT_OURS, Reason.PROOF_NOT_REDERIVED}
# Reasons that say evidence was refused: each is also counted in evidence_refusals_total.
REFUSAL_REASONS = {Reason.ORDER_REFUSED, Reason.ORDER_NOT_OURS, Reason.PROOF_NOT_REDERIVED,
                   Reason.AGENT_REPORT_WITHOUT_BOOT, Reason.AGENT_WRITES_UNRESTRICTED, Reason.AGENT_DISTRUSTS_KEY,
                   Reason.CLOCK_SKEW_TOO_LARGE, Reason.CLOCK_SKEW_UNMEASURED}


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
        delete_pods_after_taint=s.delete_pods_after_taint)


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


class Controller:
    def __init__(self, settings: ControllerSettings, kube: ControllerKube, actor: Actor,
                 elector: LeaderElector, clock: Clock, metrics: ControllerMetrics,
                 events: EventRecorder, peer_pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self.s = settings
        self.kube = kube
        self.actor = actor
        self.elector = elector
        self.clock = clock
        self.metrics = metrics
        self.events = events
        self.cfg = machine_config(settings, OrderKey.of(actor.key.public_key()))
        self._witness: dict[str, Witness] = {}  # by remediation uid: what this process saw itself
        self._refusals_reported: set[tuple[str, str]] = set()
        self._agent_problems: dict[str, str] = {}  # node -> why its agent is not counted on
        self.agent_reports_refused = (
            "" if settings.trust_agent_writes == "unverified" else str(Reason.AGENT_WRITES_UNRESTRICTED))
        self.informers = {kind: Informer(kube, kind, self._changed(kind)) for kind in Kind}
        self._queue: list[tuple[float, int, str]] = []
        self._queued: dict[str, float] = {}
        self._inflight: set[str] = set()
        self._dirty: set[str] = set()
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_delivery: dict[str, float] = {}
        self._last_silence_check: dict[str, float] = {}
        self._outage = False
        self._oos_supported = True
        self.peer_pool = peer_pool
        self.fence_agents = actor.fence_agents
        self.fence_checks = None if self.fence_agents is None else FenceDeviceChecks(
            self.fence_agents, self._node_labels, self.elector.is_leader, metrics, self._report_fence_check)

    # -- wiring ----------------------------------------------------------------------------

    def _changed(self, kind: Kind) -> Any:
        def on_change(name: str) -> None:
            if kind is Kind.REMEDIATIONS or kind is Kind.NODES or kind is Kind.NODE_LEASES:
                self.enqueue(name)
            elif kind is Kind.AGENT_LEASES and name.startswith(names.AGENT_LEASE_PREFIX):
                self.enqueue(name[len(names.AGENT_LEASE_PREFIX):])
            elif kind is Kind.PAUSE:
                for rem in self.informers[Kind.REMEDIATIONS].items():
                    self.enqueue(str(rem["metadata"]["name"]))

        return on_change

    def start(self) -> None:
        try:
            major, minor = self.kube.server_version()
            self._oos_supported = (major, minor) >= (1, 28)
            log.info("API server %d.%d: out-of-service taint %s", major, minor,
                     "supported" if self._oos_supported else "NOT supported, using resource deletion")
        except KubeError as exc:
            log.warning("could not read the server version (%s); assuming 1.28+", exc)
        if self.s.trust_agent_writes == "unverified":
            log.warning("trust_agent_writes=unverified: agents' own reports (status.agentReport) count as fence "
                        "evidence WITHOUT checking that agents can write only their own node's report; any "
                        "agent's credential could then forge another node's fence")
        self.check_agent_writes()
        for informer in self.informers.values():
            informer.start()
        if self.s.trust_agent_writes == "policy":
            self._spawn("trust", self._trust_loop)
        self._spawn("leader", lambda: self.elector.run(self._stop))
        self._spawn("tick", self._tick)
        if self.fence_checks is not None:
            checks = self.fence_checks
            self._spawn("fence-checks", lambda: checks.run(self._stop))
        for i in range(self.s.workers):
            self._spawn(f"worker-{i}", self._work)

    def stop(self) -> None:
        self._stop.set()
        for informer in self.informers.values():
            informer.stop()
        with self._cond:
            self._cond.notify_all()
        self.peer_pool.shutdown(wait=False, cancel_futures=True)

    def healthy(self) -> tuple[bool, str]:
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead and not self._stop.is_set():
            return False, f"threads stopped: {', '.join(dead)}"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        unsynced = [str(kind) for kind, inf in self.informers.items() if not inf.synced.is_set()]
        if unsynced:
            return False, f"caches not synced: {', '.join(unsynced)}"
        return True, "leader" if self.elector.is_leader() else "standby"

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- queue -----------------------------------------------------------------------------

    def enqueue(self, name: str, delay_s: float = 0.0) -> None:
        due = time.monotonic() + max(0.0, delay_s)
        with self._cond:
            if name in self._queued and self._queued[name] <= due:
                return
            self._queued[name] = due
            heapq.heappush(self._queue, (due, next(self._seq), name))
            self._cond.notify()

    def _next(self) -> str | None:
        with self._cond:
            while not self._stop.is_set():
                now = time.monotonic()
                while self._queue and self._queue[0][2] not in self._queued:
                    heapq.heappop(self._queue)
                if self._queue and self._queue[0][0] <= now:
                    due, _, name = heapq.heappop(self._queue)
                    if self._queued.get(name) != due:
                        continue
                    del self._queued[name]
                    if name in self._inflight:
                        self._dirty.add(name)
                        continue
                    self._inflight.add(name)
                    return name
                wait = min(1.0, self._queue[0][0] - now) if self._queue else 1.0
                self._cond.wait(max(0.01, wait))
        return None

    def _done(self, name: str) -> None:
        with self._cond:
            self._inflight.discard(name)
            if name in self._dirty:
                self._dirty.discard(name)
                self.enqueue(name)

    def _work(self) -> None:
        while not self._stop.is_set():
            name = self._next()
            if name is None:
                return
            started = time.monotonic()
            try:
                requeue = self.reconcile(name)
            except Conflict:
                requeue = 0.2  # somebody else wrote first: look again
            except KubeError as exc:
                self.metrics.errors.labels("api").inc()
                log.warning("reconcile of %s: %s", name, exc)
                requeue = 2.0
            except Exception:
                self.metrics.errors.labels("bug").inc()
                log.exception("reconcile of %s failed", name)
                requeue = 5.0
            finally:
                self.metrics.reconciles.observe(time.monotonic() - started)
                self._done(name)
            if requeue is not None:
                self.enqueue(name, requeue)

    def _tick(self) -> None:
        """Resync every active remediation, and refresh the cluster-wide facts."""
        while not self._stop.wait(self.s.resync_s):
            leading = self.elector.is_leader()
            self.metrics.is_leader.set(1 if leading else 0)
            nodes = self.informers[Kind.NODES].items()
            self._check_agents(nodes)
            self._outage = outage_suspected(nodes, self._agent_lease, self.clock.now(), self.s.max_clock_skew_s)
            self.metrics.outage_suspected.set(1 if self._outage else 0)
            counts: dict[str, int] = dict.fromkeys((str(p) for p in Phase), 0)
            not_back = 0
            unacknowledged: set[str] = set()
            for obj in self.informers[Kind.REMEDIATIONS].items():
                status = obj.get("status") or {}
                if needs_acknowledgement(obj):
                    unacknowledged.add(str(obj["metadata"]["name"]))  # named after its node
                counts[str(status.get("phase") or "Pending")] = counts.get(str(status.get("phase") or "Pending"), 0) + 1
                not_back += status.get("reason") == Reason.NODE_NOT_BACK
                if leading:
                    self.enqueue(str(obj["metadata"]["name"]))
            for phase, count in counts.items():
                self.metrics.active.labels(phase).set(count)
            self.metrics.nodes_not_back.set(not_back)
            self.metrics.unacknowledged.clear()
            for node in sorted(unacknowledged):
                self.metrics.unacknowledged.labels(node).set(1)

    def check_agent_writes(self) -> None:
        """Are agents' reports evidence? Only while their writes are admission-restricted."""
        mode = self.s.trust_agent_writes
        refused = str(Reason.AGENT_WRITES_UNRESTRICTED)
        if mode == "unverified":
            refused = ""
        elif mode == "policy":
            try:
                refused = "" if self.kube.agent_writes_policy_present() else refused
            except KubeError as exc:
                log.warning("could not check the admission policy %s (%s): agents' reports are not evidence",
                            AGENT_WRITES_POLICY, exc)
        if refused != self.agent_reports_refused or not hasattr(self, "_trust_checked"):
            (log.warning if refused else log.info)(
                "agents' own reports %s fence evidence (trust_agent_writes=%s%s)",
                "are NOT" if refused else "are", mode,
                f", ValidatingAdmissionPolicy and binding {AGENT_WRITES_POLICY} "
                f"{'missing' if refused else 'present'}" if mode == "policy" else "")
        self._trust_checked = True
        self.agent_reports_refused = refused
        self.metrics.agent_reports_trusted.set(0 if refused else 1)

    def _trust_loop(self) -> None:
        while not self._stop.wait(self.s.trust_check_interval_s):
            self.check_agent_writes()

    def _check_agents(self, nodes: list[dict[str, Any]]) -> None:
        """At start and whenever an agent republishes: which agents do not trust this
        controller's key, or whose clock is unmeasured or off beyond the bound. Logged once
        per change, counted in a gauge; their nodes' fences are not counted on."""
        if not self.informers[Kind.AGENT_LEASES].synced.is_set():
            return  # not seen yet is not "not published"
        failing: dict[str, str] = {}
        for node in nodes:
            name = str((node.get("metadata") or {}).get("name") or "")
            info = agent_info(node, self._agent_lease(name))
            if not info.present:
                continue
            problem = key_distrusted(info, self.cfg.order_key)
            if problem is None:
                skew = clock_skew(info, self.s.max_clock_skew_s)
                problem = skew if isinstance(skew, Refusal) else None
            if problem is not None:
                failing[name] = str(problem.reason)
                if self._agent_problems.get(name) != failing[name]:
                    log.warning("the agent of %s cannot be counted on to fence itself (%s): %s", name,
                                problem.reason, problem.message)
        for name in set(self._agent_problems) - set(failing):
            log.info("the agent of %s trusts this controller's key and its clock is within the bound again", name)
        self._agent_problems = failing
        for reason in (Reason.AGENT_DISTRUSTS_KEY, Reason.CLOCK_SKEW_UNMEASURED, Reason.CLOCK_SKEW_TOO_LARGE):
            self.metrics.agents_not_counted_on.labels(str(reason)).set(
                sum(1 for r in failing.values() if r == reason))

    def _agent_lease(self, node: str) -> dict[str, Any] | None:
        return self.informers[Kind.AGENT_LEASES].get(names.agent_lease_name(node))

    # -- one remediation -------------------------------------------------------------------

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
        return Observations(now=self.clock.now(), node=obs, peers=peers, outage_suspected=self._outage,
                            paused=paused, oos_taint_supported=self._oos_supported,
                            fence_device=device.name if device else "",
                            witness=witness_for(self._witness.get(rem.uid, Witness()), rem),
                            agent_reports_refused=self.agent_reports_refused)

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
        if not self.elector.is_leader():
            return None
        obj = self.informers[Kind.REMEDIATIONS].get(name)
        if obj is None:
            return None
        if not decided(obj):
            return None  # the webhook has not decided on it yet: nothing to act on
        rem = RemediationView.parse(obj)
        if rem.phase.terminal:
            self._witness.pop(rem.uid, None)  # nothing left to prove
            if not rem.recovery.get("taintAppliedAt"):
                return None
        if not self.informers[Kind.NODES].synced.is_set() or not self.informers[Kind.NODE_LEASES].synced.is_set():
            return 1.0  # never decide on a view we cannot trust
        obs = self._observe(rem)
        decision = decide(rem, obs, self.cfg)
        self._report_refusals(rem, obs)
        now = self.clock.now()
        extra: dict[str, Any] = {}
        issue = [a for a in decision.actions if a.kind is ActionKind.ISSUE_ORDER]
        for action in issue:  # the signed order is part of the intent written first
            extra.update(self.actor.prepare_order(rem, obs.node, action.detail["action"], now, rem.dry_run))
        patch = decision_patch(rem, decision, now, extra)
        before = rem
        if patch:
            if not self.elector.is_leader():
                return None
            try:
                rem = self._write(rem, patch)
            except NotFound:
                return None
            self._report(before, rem, decision, now)
        results: dict[str, Any] = {}
        for action in decision.actions:
            if not self.elector.is_leader():
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

    def _act(self, rem: RemediationView, action: Any, obs: Observations, now: float) -> dict[str, Any] | None:
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
        if kind is ActionKind.APPLY_TAINT:
            return self.actor.apply_taint(rem.node)
        if kind is ActionKind.REMOVE_TAINT:
            return self.actor.remove_taint(rem.node)
        if kind is ActionKind.DELETE_RESOURCES:
            return self.actor.delete_resources(rem.node)
        if kind is ActionKind.DELETE_EVICTED_PODS:
            return self.actor.delete_evicted_pods(rem.node)
        return {}

    def _node_labels(self) -> list[tuple[str, dict[str, str]]]:
        return [(str(n["metadata"]["name"]), dict((n.get("metadata") or {}).get("labels") or {}))
                for n in self.informers[Kind.NODES].items()]

    def _report_fence_check(self, node: str, result: AgentResult, usable: bool) -> None:
        obj = self.informers[Kind.NODES].get(node) or {}
        self.events.record(NodeEvent(
            node=node, node_uid=str((obj.get("metadata") or {}).get("uid") or ""),
            type="Normal" if usable else "Warning",
            reason="FenceAgentCheckPassed" if usable else f"FenceAgentCheck{result.outcome}",
            action="CheckFenceDevice", note=result.describe()))

    # -- what people see -------------------------------------------------------------------

    def _report_refusals(self, rem: RemediationView, obs: Observations) -> None:
        """Evidence offered and not trusted: a Warning Event, a log line and a metric, once
        per remediation and reason."""
        for refusal in refusals(rem, obs, self.cfg.order_key, self.cfg.timing.max_clock_skew_s):
            key = (rem.uid, str(refusal.reason))
            if key in self._refusals_reported:
                continue
            self._refusals_reported.add(key)
            self.metrics.evidence_refusals.labels(str(refusal.reason)).inc()
            log.warning("remediation %s: evidence refused (%s): %s", rem.node, refusal.reason, refusal.message)
            node = self.informers[Kind.NODES].get(rem.node) or {}
            self.events.record(NodeEvent(
                node=rem.node, node_uid=str((node.get("metadata") or {}).get("uid") or ""), type="Warning",
                reason=str(refusal.reason), action="RefuseEvidence", note=refusal.message,
                related={"apiVersion": names.API_VERSION, "kind": names.KIND, "name": rem.name, "uid": rem.uid}))

    def _report(self, before: RemediationView, after: RemediationView, decision: Decision, now: float) -> None:
        if (before.phase, before.reason) == (after.phase, after.reason) and before.raw_status.get("phase"):
            return
        m = self.metrics
        if before.phase != after.phase:
            m.transitions.labels(str(before.phase), str(after.phase), str(after.reason)).inc()
            if before.phase_since is not None:
                m.phase_duration.labels(str(before.phase)).observe(max(0.0, now - before.phase_since))
            if after.phase.terminal:
                m.outcomes.labels(str(after.phase), str(after.reason)).inc()
            if after.phase is Phase.FENCED and after.fence and after.fence.evidence:
                m.fence_evidence.labels(str(after.fence.evidence.get("rule", ""))).inc()
            if after.phase is Phase.AWAITING_NODE_READY and after.received_at is not None:
                m.time_to_recovery.observe(max(0.0, now - after.received_at))
        if after.reason == Reason.FENCE_NOT_OBSERVED:
            m.fence_not_observed.inc()
        if after.reason in REFUSAL_REASONS:
            m.evidence_refusals.labels(str(after.reason)).inc()
        cause = after.escalation_state.get("cause")
        if cause in REFUSAL_REASONS and not before.escalation_state.get("cause"):
            m.evidence_refusals.labels(str(cause)).inc()
        if after.escalation_state.get("kind") and not before.escalation_state.get("kind"):
            m.escalations.labels(str(after.escalation_state["kind"]), str(after.escalation_state.get("cause"))).inc()
        warning = after.reason in WARNING_REASONS or after.phase is Phase.FAILED
        (log.warning if warning else log.info)(
            "remediation %s: %s -> %s (%s): %s", after.node, before.phase, after.phase, after.reason,
            decision.message)
        node = self.informers[Kind.NODES].get(after.node) or {}
        self.events.record(NodeEvent(
            node=after.node, node_uid=str((node.get("metadata") or {}).get("uid") or ""),
            type="Warning" if warning else "Normal", reason=str(after.reason), action=str(after.phase),
            note=decision.message,
            related={"apiVersion": names.API_VERSION, "kind": names.KIND, "name": after.name, "uid": after.uid}))
