"""The controller's plumbing: watch-fed caches, leader election, a work queue and a pool of
workers, the periodic resync, and the cluster-wide facts every reconcile reads (a suspected
control-plane outage, out-of-service taint support, whether agents' own reports are
evidence, which agents cannot be counted on).

The reconcile of one remediation (observe -> decide -> write intent -> act -> write
results) is `controller.reconcile.Reconciler`; what people see of it is
`controller.report.Reporter`. Only the leader acts, and it checks that it still leads
right before every side effect. Every status write carries the resourceVersion that was
read, so a webhook cancel and a fence order can never both succeed, nor two replicas
issue two orders. A name is never reconciled by two workers at once.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import threading
import time
from typing import Any

from controller.act import Actor
from controller.after_fence import fencing_taints_to_remove
from controller.fence_checks import FenceDeviceChecks
from controller.informer import Informer
from controller.kube import ControllerKube, Kind
from controller.leader import LeaderElector
from controller.metrics import ControllerMetrics
from controller.model import Phase, Reason
from controller.observe import agent_info, node_obs, outage_suspected
from controller.proof import Refusal, clock_skew, key_distrusted
from controller.reconcile import ClusterFacts, Reconciler, machine_config
from controller.report import Reporter
from controller.settings import AGENT_WRITES_POLICY, ControllerSettings
from core import names
from core.clock import Clock
from core.events import EventRecorder
from core.fence_order import OrderKey
from core.kube import Conflict, KubeError
from core.remediation import needs_acknowledgement

log = logging.getLogger("nodewarden.controller")


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
        self._agent_problems: dict[str, str] = {}  # node -> why its agent is not counted on
        self.facts = ClusterFacts(agent_reports_refused=(
            "" if settings.trust_agent_writes == "unverified" else str(Reason.AGENT_WRITES_UNRESTRICTED)))
        self.informers = {kind: Informer(kube, kind, self._changed(kind)) for kind in Kind}
        self._queue: list[tuple[float, int, str]] = []
        self._queued: dict[str, float] = {}
        self._inflight: set[str] = set()
        self._dirty: set[str] = set()
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.peer_pool = peer_pool
        self.reporter = Reporter(metrics, events, self.cfg, self.informers[Kind.NODES].get)
        self.reconciler = Reconciler(settings, kube, actor, elector.is_leader, clock, self.cfg, self.informers,
                                     self.facts, self.reporter, peer_pool)
        self.fence_agents = actor.fence_agents
        self.fence_checks = None if self.fence_agents is None else FenceDeviceChecks(
            self.fence_agents, self._node_labels, self.elector.is_leader, metrics, self.reporter.fence_check)

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
            self.facts.oos_taint_supported = (major, minor) >= (1, 28)
            log.info("API server %d.%d: out-of-service taint %s", major, minor,
                     "supported" if self.facts.oos_taint_supported else "NOT supported, using resource deletion")
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
            self.facts.outage_suspected = outage_suspected(nodes, self._agent_lease, self.clock.now(), self.s.max_clock_skew_s)
            self.metrics.outage_suspected.set(1 if self.facts.outage_suspected else 0)
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
            if leading:
                self._sweep_fencing_taints(nodes)

    def _sweep_fencing_taints(self, nodes: list[dict[str, Any]]) -> None:
        """Remove the fencing taints no remediation needs (a finished or deleted one's):
        left on a Ready node, a NoExecute taint would evict its pods and keep new ones off."""
        grace = 10 * self.s.resync_s
        observed = {str((n.get("metadata") or {}).get("name") or ""): node_obs(n, None, None) for n in nodes}
        for node in fencing_taints_to_remove(observed, self.informers[Kind.REMEDIATIONS].items(), self.clock.now(),
                                             grace):
            if not self.elector.is_leader():
                return
            try:
                self.actor.remove_fencing_taint(node, "no unfinished remediation of the node needs it")
            except KubeError as exc:
                log.warning("could not remove the fencing taint from %s (%s): trying again at the next resync",
                            node, exc)

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
        if refused != self.facts.agent_reports_refused or not hasattr(self, "_trust_checked"):
            (log.warning if refused else log.info)(
                "agents' own reports %s fence evidence (trust_agent_writes=%s%s)",
                "are NOT" if refused else "are", mode,
                f", ValidatingAdmissionPolicy and binding {AGENT_WRITES_POLICY} "
                f"{'missing' if refused else 'present'}" if mode == "policy" else "")
        self._trust_checked = True
        self.facts.agent_reports_refused = refused
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

    def reconcile(self, name: str) -> float | None:
        return self.reconciler.reconcile(name)

    def _node_labels(self) -> list[tuple[str, dict[str, str]]]:
        return [(str(n["metadata"]["name"]), dict((n.get("metadata") or {}).get("labels") or {}))
                for n in self.informers[Kind.NODES].items()]
