"""Runs one chaos schedule in a nodewarden world, lets it settle, and judges it.

The world: 7 simulated nodes with a real agent process each, a StatefulSet `db` (3
replicas, one ReadWriteOnce volume each) and a Deployment `web` (3 replicas), the webhook
under gunicorn with a permissive policy (storm protection is not what is tested here),
and two controller processes (one leader, one standby). Alertmanager is emulated
(`tests/chaos/alerts.py`).

What is checked after the schedule, once every node is back, Ready and untainted, every
remediation finished and every pod running (or the settle time ran out):

1. the simulator's invariant monitor reports no violation (at-most-one, unsafe-taint,
   stale-taint);
2. no node that died and came back keeps the out-of-service taint;
3. the StatefulSet pods of every dead node run on another node within the recovery bound
   (`recovery_bound` below), for every fault that lasted that long;
4. no remediation ends `Failed` with reason `FenceNotObserved`, and no remediation holds
   more than one fence order;
5. no node is reset by its watchdog without a reason: a fence order for it since it
   booted, or a fault that cuts it off (`judge_resets`). Resetting is always safe, so the
   invariant monitor cannot see a node fenced for nothing; this check does;
6. no fence without cause under attack: no remediation reaches Fenced while the last
   answer to its order is a refusal (anything but AlreadyRebooted) and the node has not
   been reset or powered off since the order (`judge_refused`); no out-of-service taint on
   a node that had no fault and no reset before it (`judge_taints`).

Attacks and mistakes (forged status, an untrusted key, a stopped agent, slow clients,
floods) may delay a recovery but never make it unsafe: a recovery that an attack
overlapped is judged against the bound restarted at the attack's end, like an API
outage, and the report says how much later than the un-attacked bound the pod moved; a
remediation that escalated to a person (AwaitingApproval) during an attack is not held to
the bound, since nobody approves in this world.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.fence_order import generate_private_key, private_key_pem
from core.peer_client import HEALTH_PATH
from harness.waits import ready, running_on, wait_running
from harness.world import World, controller_env, nodewarden_world, policy
from sim.apiserver.resources import ResourceType
from sim.apiserver.store import Entry
from sim.world.faults import FaultError
from sim.world.nodes import Power
from sim.world.timings import Timings
from tests.chaos.adversary import (
    AGENT_SLOW_CONNECTIONS,
    WEBHOOK_SLOW_CONNECTIONS,
    Flood,
    SlowClients,
    forge_status,
    parse_address,
)
from tests.chaos.alerts import EVAL_S, FOR_S, GROUP_WAIT_S, Alertmanager
from tests.chaos.schedule import ATTACK_ACTIONS, Incident, Schedule, Step

# 10x faster than a real cluster. At 0.05 the test world's floors on the agents' network
# timeouts (harness/world.py) make one API check as long as the isolation timeout
# and a peer request half of it, a regime the defaults never reach, and a world of 7 agents
# with 0.75 s watchdogs on 2 cores resets nodes whenever the machine stalls.
SCALE = 0.1
NODES = 7
WORKLOADS = ("db=statefulset:3", "web=deployment:3")
STATEFULSET_PODS = ("db-0", "db-1", "db-2")
DEPLOYMENT_REPLICAS = 3
SETTLE_S = 600.0  # cluster seconds after the last step for everything to come back
# Real processes on a loaded 2-core machine: each of the steps from a fault to a moved pod
# runs a little late (process scheduling, Python start-up of a new controller, HTTP round
# trips with their floors). Wall seconds, added once to every bound.
WALL_SLACK_S = 3.0
START_WAIT_S = 90.0  # wall seconds for the world's workloads and a leader before the schedule starts
TERMINAL = ("Succeeded", "Failed", "Cancelled")
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
FENCE_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) .*FENCE begun: trigger=(\w+)")


def reproduce_command(seed: int | None, schedule_file: Path | None = None, attacks: bool = True) -> str:
    if seed is None and schedule_file is not None:
        return f".venv/bin/python -m pytest tests/chaos --chaos-schedule={schedule_file} -x"
    return (f".venv/bin/python -m pytest tests/chaos --chaos-seeds=1 --chaos-first-seed={seed} -x"
            + ("" if attacks else " --chaos-no-attacks"))


# -- the recovery bound -----------------------------------------------------------------------


def controller_timings(scale: float) -> dict[str, float]:
    """The controller's settings as the world starts it (wall seconds)."""
    env = controller_env(scale, Path(), Path(), Path(), Path(), "", "probe")
    prefix = "NODEWARDEN_CONTROLLER_"
    return {k[len(prefix):].lower(): float(v) for k, v in env.items()
            if k.startswith(prefix) and k.endswith("_S")}


def recovery_bound(scale: float, isolation_detect_s: float, watchdog_s: float) -> dict[str, float]:
    """The longest a dead node's StatefulSet pod may take to run elsewhere, from the
    moment the node died, in cluster seconds, part by part. Every term is a setting of
    the world (the simulator's Kubernetes timings, the controller's settings, the agents'
    published values, the emulated Prometheus rule and Alertmanager route):

    - the node lifecycle controller marks the node Ready=Unknown once its Lease (renewed
      at the latest when the node died) is older than the grace period, at its next
      monitor period;
    - the rule is pending at the next evaluation and fires `for:` later; Alertmanager
      sends after `group_wait`;
    - the webhook creates the remediation; the controller confirms (the node's Lease is
      stale, peers are asked whether they reach its agent) and stores a signed order:
      a few resyncs and peer timeouts;
    - the evidence rule that waits longest: `AgentHeartbeatStale` without peer silence
      (another node may be down too, or cut off from peers), counted from the order:
      order + D + 2W + margin + skew, with D (`isolation-detect-seconds`) and W
      (`watchdog-timeout-seconds`) as the agents publish them on their Nodes. An agent
      that acknowledges an order (API-only partition, stopped kubelet) has stopped
      feeding by then, so `AcknowledgedWatchdog` is never later;
    - Fenced -> Recovering -> the taint written: two resyncs;
    - Kubernetes moves the pod: the taint-eviction controller deletes it, the pod GC
      (every 20 s) force-deletes it from the tainted not-Ready node, the StatefulSet
      controller recreates it, the scheduler binds it, the attach-detach controller
      detaches the volume from the tainted node at once and attaches it to the new one,
      the kubelet starts the pod;
    - slack for real processes on a loaded test machine (wall seconds).

    The runner adds what a schedule adds on top: an API outage restarts the count at its
    end (nothing progresses without the API, and the node lifecycle controller trusts
    every node for one grace period after it); a leader kill adds the standby's takeover
    (the Lease's duration plus a retry period).
    """
    k = Timings()  # Kubernetes' real durations: the simulator scales them like everything else
    c = {name: value / scale for name, value in controller_timings(scale).items()}  # to cluster seconds
    return {
        "node Ready=Unknown (grace period + monitor period)": k.node_monitor_grace_period_s + k.node_monitor_period_s,
        "alert (evaluation interval + for: + group_wait)": EVAL_S + FOR_S + GROUP_WAIT_S,
        "remediation to stored order (4 resyncs + 3 peer timeouts)": 4 * c["resync_s"] + 3 * c["peer_timeout_s"],
        "fence evidence from the order (D + 2W + margin + skew)":
            isolation_detect_s / scale + 2 * watchdog_s / scale + c["safety_margin_s"] + c["max_clock_skew_s"],
        "Fenced to taint (2 resyncs)": 2 * c["resync_s"],
        # The stricter world: a detach waits for the CSI external-attacher's unpublish
        # (csi_detach_delay_s) before the VolumeAttachment and its finalizer go, and an
        # attach for the attacher to add its finalizer first (one more loop).
        "pod moves (eviction, pod GC period, StatefulSet, scheduler, detach, CSI unpublish, attach, start)":
            4 * k.controller_period_s + k.pod_gc_period_s + k.controller_period_s + k.csi_detach_delay_s
            + k.controller_period_s + k.attach_delay_s + k.pod_start_delay_s,
        "test machine slack": WALL_SLACK_S / scale,
    }


def leader_takeover_s(scale: float) -> float:
    c = controller_timings(scale)
    return (c["lease_duration_s"] + c["retry_period_s"]) / scale


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Transition:
    at: float
    node: str
    uid: str
    phase: str
    reason: str
    order: str  # a digest of the fence order, "" before one is stored
    answer: str = ""  # the agent's last answer to the order: "<outcome>/<reason>"


@dataclass
class Recovery:
    pod: str
    incident: Incident
    died_at: float  # wall
    deadline: float  # wall
    bound_s: float  # cluster seconds from the (possibly restarted) start
    started_from: float  # wall: the fault, or the end of an API outage
    moved_at: float | None
    moved_to: str = ""
    checked: bool = True  # False: the node came back before the deadline
    note: str = ""  # how the bound was carried over to another dead node
    base_deadline: float = 0.0  # wall: the deadline had no attack overlapped
    attacked: str = ""  # the attacks that extended the deadline

    def delay_s(self, scale: float) -> float:
        """Cluster seconds the pod moved later than the un-attacked bound (0 if not later)."""
        if self.moved_at is None or not self.base_deadline:
            return 0.0
        return max(0.0, (self.moved_at - self.base_deadline) / scale)

    def ok(self) -> bool:
        return not self.checked or (self.moved_at is not None and self.moved_at <= self.deadline)


@dataclass
class Runner:
    w: World
    schedule: Schedule
    out: Path
    t0: float = 0.0
    executed: list[tuple[float, Step, str]] = field(default_factory=list)
    step_at: dict[Step, float] = field(default_factory=dict)
    pods_at_fault: dict[Step, list[str]] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)
    settled_at: float = 0.0
    steps_done_at: float = 0.0
    recoveries: list[Recovery] = field(default_factory=list)
    wall: dict[str, float] = field(default_factory=dict)  # seconds spent: start, schedule, settle, stop
    load: list[float] = field(default_factory=list)  # the 1-minute load average, sampled during the run

    def __post_init__(self) -> None:
        self.c = self.w.cluster
        self.scale = self.w.scale
        self.am = Alertmanager(self.w, self.schedule.seed, self.schedule.delivery)
        self._last: dict[str, tuple[str, str, str, str, str]] = {}
        self._attacks: list[tuple[float, Step, Any]] = []  # (wall end, step, SlowClients | Flood)
        self.untrusted_until = 0.0  # wall: controllers sign with a key the agents do not trust until then
        self._untrusted_key: Path | None = None
        self._threads: list[threading.Thread] = []
        self._spares = 0
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._stopping = False
        self._rotating = 0  # controller rotations under way
        self._frozen: list[str] = []  # untrusted controllers, started and stopped (SIGSTOP) until their window

    def ct(self, wall: float) -> float:
        """A wall time as cluster seconds since the schedule started."""
        return (wall - self.t0) / self.scale

    # -- recording ----------------------------------------------------------------------

    def _on_commit(self, rt: ResourceType, obj: dict[str, Any] | None, prev: Entry | None) -> None:
        if rt.kind != "NodeRemediation" or obj is None:
            return
        status = obj.get("status") or {}
        order = str((status.get("fence") or {}).get("order") or "")
        last = (status.get("fence") or {}).get("lastAnswer") or {}
        answer = f"{last.get('outcome')}/{last.get('reason') or ''}" if last else ""
        key = (str(obj["metadata"].get("uid")), str(status.get("phase") or ""), str(status.get("reason") or ""),
               hashlib.sha256(order.encode()).hexdigest()[:12] if order else "", answer)
        name = obj["metadata"]["name"]
        if self._last.get(name) != key:
            self._last[name] = key
            self.transitions.append(Transition(time.time(), name, *key))

    def note(self, step: Step, text: str) -> None:
        with self._lock:
            self.executed.append((time.time(), step, text))

    # -- running ------------------------------------------------------------------------

    def run(self) -> None:
        c = self.c
        # Preconditions, not timings under test: generous on a loaded machine.
        wait_running(c, list(STATEFULSET_PODS), timeout=START_WAIT_S)
        c.wait_for(lambda: self._deployment_running() >= DEPLOYMENT_REPLICAS, START_WAIT_S, message="web pods running")
        c.wait_for(lambda: self.w.leader() in self.w.controllers, START_WAIT_S, message="a leader")
        if any(st.action == "untrusted-key" for st in self.schedule.steps):
            self._prepare_untrusted()
        c.registry.commit_hooks.append(self._on_commit)
        self.am.start()
        self.t0 = time.time()
        self.load.append(os.getloadavg()[0])
        try:
            for step in self.schedule.steps:
                while (delay := self.t0 + step.at * self.scale - time.time()) > 0:
                    time.sleep(min(delay, 0.1))
                    self.end_attacks()
                self.load.append(os.getloadavg()[0])
                self.execute(step)
            self.steps_done_at = time.time()
            self.settle()
        finally:
            self._stopping = True
            for timer in self._timers:
                timer.cancel()
            self.end_attacks(everything=True)
            self.am.stop()
            for t in self._threads:
                t.join(timeout=30)
            c.registry.commit_hooks.remove(self._on_commit)

    def stop_controllers(self) -> None:
        """SIGKILL the controllers before the world stops: its orderly SIGTERM waits 10 s per
        process and, on a loaded machine, gives up on the first slow one and leaves the
        rest of the world running (the webhook, the simulator, every agent)."""
        for identity in list(self.w.controllers):
            try:
                self.w.kill_controller(identity)
            except Exception:  # already gone, or still dying: the world's cleanup tries again
                pass

    def execute(self, step: Step) -> None:
        c, w = self.c, self.w
        self.step_at[step] = time.time()
        if step.action in ("power-off", "kubelet-stop", "partition"):
            self.pods_at_fault[step] = sorted(
                p.split("/", 1)[1] for p in c.node_state(step.node)["runningPods"]
                if p.split("/", 1)[1] in STATEFULSET_PODS)
        try:
            if step.action == "leader-kill":
                leader = w.leader()
                if leader in w.controllers:
                    try:
                        w.kill_controller(leader)
                    except KeyError:  # a rotation killed it meanwhile
                        pass
                    spare = self._start_controller("spare")
                    self.note(step, f"killed {leader} (SIGKILL), started {spare}")
                else:
                    self.note(step, f"no live leader to kill (Lease holder {leader or 'none'})")
            elif step.action == "alert-flap":
                thread = threading.Thread(target=self._flap, args=(step,), daemon=True)
                self._threads.append(thread)
                thread.start()
            elif step.action in ATTACK_ACTIONS:
                self.attack(step)
            elif step.action == "alert-stale":
                self.note(step, "redelivered" if self.am.stale(step.node) else "nothing fired for it yet")
            else:
                c.fault(step.action, step.node, from_=step.scope, duration_s=step.duration,
                        restart_after_s=step.restart_after)
                pods = self.pods_at_fault.get(step)
                self.note(step, f"StatefulSet pods there: {', '.join(pods) or 'none'}" if pods is not None else "")
        except FaultError as err:
            self.note(step, f"fault refused: {err}")

    # -- attacks and mistakes ------------------------------------------------------------

    def _start_controller(self, prefix: str, untrusted: bool | None = None) -> str:
        """Start one more controller, signing with the key of the moment (or as told)."""
        with self._lock:
            self._spares += 1
            name = f"{prefix}-{self._spares}"
        if untrusted is None:
            untrusted = time.time() < self.untrusted_until
        if untrusted and self._untrusted_key is not None:
            self.w.start_controller(name, SIGNING_KEY_FILE=str(self._untrusted_key))
        else:
            self.w.start_controller(name)
        return name

    def _controller_started(self, name: str) -> bool:
        log = self.w.tmp / f"controller-{name}.log"
        try:
            return f"controller {name} started" in log.read_text(errors="replace")
        except OSError:
            return False

    def _rotate(self, step: Step) -> None:
        """Back to the trusted key as a rolling update does: two new controllers are
        started, and once both have started (a controller takes tens of seconds to start
        on a loaded machine) the old ones are killed."""
        old = list(self.w.controllers)
        new = [self._start_controller("trusted", untrusted=False) for _ in range(2)]
        deadline = time.time() + START_WAIT_S
        while not all(self._controller_started(n) for n in new) and time.time() < deadline and not self._stopping:
            time.sleep(0.1)
        for identity in old:
            try:
                self.w.kill_controller(identity)
            except (KeyError, ProcessLookupError):  # killed meanwhile by a leader kill
                pass
        with self._lock:
            self._rotating -= 1
        self.note(step, f"controllers {', '.join(old)} replaced by {', '.join(new)}, signing with the trusted key")

    def _prepare_untrusted(self) -> None:
        """Start the two controllers of the untrusted window before the schedule (on a
        loaded machine a controller takes longer to start than the window lasts) and
        freeze them (SIGSTOP) once started, so that they cannot take the Lease early."""
        self._untrusted_key = self.out / "untrusted-signing.pem"
        self._untrusted_key.write_bytes(private_key_pem(generate_private_key()))
        names = [self._start_controller("untrusted", untrusted=True) for _ in range(2)]
        self.c.wait_for(lambda: all(self._controller_started(n) for n in names), START_WAIT_S,
                        interval=0.1, message="the untrusted controllers started")
        for name in names:
            self.w.controllers[name].send_signal(signal.SIGSTOP)
        self._frozen = names

    def _switch_to_untrusted(self, step: Step) -> None:
        """Kill the trusted controllers and let the untrusted ones run: one takes the
        Lease once it expires. The trusted key comes back by a rolling update."""
        old = [n for n in self.w.controllers if n not in self._frozen]
        for identity in old:
            try:
                self.w.kill_controller(identity)
            except (KeyError, ProcessLookupError):
                pass
        for name in self._frozen:
            self.w.controllers[name].send_signal(signal.SIGCONT)
        self.untrusted_until = time.time() + step.duration * self.scale
        timer = threading.Timer(step.duration * self.scale, self._trusted_again, args=(step,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()
        self.note(step, f"controllers {', '.join(old)} killed; {', '.join(self._frozen)} sign with a key no "
                        "agent trusts")
        self._frozen = []

    def _start_rotation(self, step: Step) -> None:
        with self._lock:
            self._rotating += 1
        thread = threading.Thread(target=self._rotate, args=(step,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def attack(self, step: Step) -> None:
        c, w, s = self.c, self.w, self.scale
        if step.action == "forge-status":
            incident = next((i for i in self.schedule.incidents()
                             if i.node == step.node and i.start <= step.at < i.end), None)
            until = self.t0 + ((incident.end if incident else step.at + 300.0) * s)
            thread = threading.Thread(target=lambda: self.note(step, forge_status(
                c, step.node, step.by, step.scope, until, w.remediation)), daemon=True)
            self._threads.append(thread)
            thread.start()
        elif step.action == "untrusted-key":  # its controllers were started before the schedule
            self._switch_to_untrusted(step)
        elif step.action == "agent-stop":
            proc = c.processes.get(step.node)
            if proc is None:
                self.note(step, "no agent process")
                return
            epoch = c.nodes[step.node].epoch
            proc.terminate()
            self.note(step, "agent stopped (SIGTERM)")

            def restart() -> None:
                node = c.nodes[step.node]
                if node.epoch == epoch and not proc.running and node.power is Power.RUNNING:
                    proc.start()
                    self.note(step, "agent started again")

            timer = threading.Timer((step.restart_after or 5.0) * s, restart)
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
        else:  # slow-clients, flood
            if step.scope == "agents":
                targets = [parse_address(c.nodes[n].address) for n in c.nodes if c.nodes[n].address]
            else:
                targets = [parse_address(u.split("//", 1)[1]) for u in w.webhook_urls]
            attacker: SlowClients | Flood
            if step.action == "slow-clients":
                attacker = SlowClients(targets, AGENT_SLOW_CONNECTIONS if step.scope == "agents"
                                       else WEBHOOK_SLOW_CONNECTIONS, "body" if step.scope == "agents" else "headers")
            else:
                attacker = Flood(targets, HEALTH_PATH if step.scope == "agents" else "/api/v1/remediations")
            self._attacks.append((time.time() + step.duration * s, step, attacker.start()))
            self.note(step, f"{len(targets)} target(s)")

    def _trusted_again(self, step: Step) -> None:
        if not self._stopping:
            self._start_rotation(step)

    def end_attacks(self, everything: bool = False) -> None:
        now = time.time()
        for entry in list(self._attacks):
            end, step, attacker = entry
            if everything or now >= end:
                self._attacks.remove(entry)
                self.note(step, "ended: " + attacker.stop())

    def _flap(self, step: Step) -> None:
        """Resolve the node's alert once its remediation is in Fencing (mid-fence)."""
        incident = next((i for i in self.schedule.incidents()
                         if i.node == step.node and i.start <= step.at < i.end), None)
        until = self.t0 + ((incident.end if incident else step.at + 300.0) * self.scale)
        while time.time() < until:
            if self.w.phase(step.node) == "Fencing":
                flapped = self.am.flap(step.node)
                self.note(step, "resolved sent mid-fence" if flapped else "in Fencing, but no alert firing")
                return
            time.sleep(0.01)
        self.note(step, f"not sent: no Fencing before the node came back (phase {self.w.phase(step.node) or 'none'})")

    def _deployment_running(self) -> int:
        return sum(1 for p in self.c.list("pods", "default")
                   if p["metadata"]["name"].startswith("web-") and not p["metadata"].get("deletionTimestamp")
                   and (p.get("status") or {}).get("phase") == "Running")

    def _not_settled(self) -> list[str]:
        c, w = self.c, self.w
        why = []
        for node in c.nodes:
            state = c.node_state(node)
            if state["power"] != "Running":
                why.append(f"{node} is {state['power']}")
            elif ready(c, node) != "True":
                why.append(f"{node} is not Ready")
            if w.has_taint(node):
                why.append(f"{node} has the out-of-service taint")
            phase = w.phase(node)
            if w.remediation(node) is not None and phase not in TERMINAL:
                why.append(f"{node}'s remediation is {phase or 'without a phase'}")
        why += [f"{pod} is not running" for pod in STATEFULSET_PODS if running_on(c, pod) is None]
        running = self._deployment_running()
        if running < DEPLOYMENT_REPLICAS:
            why.append(f"{running} of {DEPLOYMENT_REPLICAS} web pods running")
        return why

    def settle(self) -> None:
        deadline = time.time() + SETTLE_S * self.scale
        while True:
            self.end_attacks()
            why = self._not_settled()
            if self._attacks or self._rotating or time.time() < self.untrusted_until:
                why.append("an attack or mistake is still under way")
            if not why:
                self.settled_at = time.time()
                self.unsettled = []
                return
            if time.time() > deadline:
                self.unsettled = why
                return
            time.sleep(0.1)
            self.load.append(os.getloadavg()[0])

    # -- judging ------------------------------------------------------------------------

    def published(self) -> tuple[float, float]:
        """The largest isolation-detect and watchdog timeout the agents publish (wall s)."""
        d = w = 0.0
        for node in self.c.nodes:
            ann = ((self.c.get("nodes", node) or {}).get("metadata") or {}).get("annotations") or {}
            d = max(d, float(ann.get("nodewarden.io/isolation-detect-seconds") or 0))
            w = max(w, float(ann.get("nodewarden.io/watchdog-timeout-seconds") or 0))
        return d, w

    def bound(self) -> dict[str, float]:
        return recovery_bound(self.scale, *self.published())

    def attack_windows(self, node: str = "") -> list[tuple[float, float, Step]]:
        """(wall start, wall end, step) of every attack or mistake that may slow a recovery
        (of `node`: its own agent stopped, or its status forged, count only for it)."""
        out = []
        for st in self.schedule.steps:
            if st.action not in ATTACK_ACTIONS or st not in self.step_at:
                continue
            if st.node and node and st.node != node:
                continue
            a = self.step_at[st]
            length = st.duration if st.duration else (st.restart_after or 0.0)
            out.append((a, a + length * self.scale, st))
        return out

    def _deadline(self, died_at: float, attacks: bool = False, node: str = "") -> tuple[float, float, float]:
        """(start, deadline, bound seconds): restarted at the end of any API outage (and,
        with `attacks`, of any attack on `node` or on everything) that overlaps, extended by
        every leader kill in the window."""
        base = sum(self.bound().values()) * self.scale
        takeover = leader_takeover_s(self.scale) * self.scale
        api_outages = [(self.step_at[s], self.step_at[s] + s.duration * self.scale)
                       for s in self.schedule.steps if s.action == "api-outage" and s in self.step_at]
        outages = list(api_outages)
        if attacks:
            outages += [(a, b) for a, b, _ in self.attack_windows(node)]
        kills = [self.step_at[s] for s in self.schedule.steps if s.action == "leader-kill" and s in self.step_at]
        # The stricter world: an API outage longer than the renew deadline restarts the
        # simulated kube-controller-manager, which takes its Lease again only after its
        # restart back-off and the lease duration (then every controller starts afresh).
        kt = Timings()
        cm_restart = (kt.controller_manager_restart_s + kt.leader_lease_duration_s + kt.leader_retry_period_s) * self.scale
        start, deadline = died_at, died_at + base
        for _ in range(50):  # a fixed point: both only grow
            new_start = max([start] + [b for a, b in outages if a < deadline and b > start])
            kills_in = sum(1 for k in kills if new_start - takeover <= k <= deadline)
            restarted = any(a < deadline and b > died_at for a, b in api_outages)  # attacks restart nothing
            new_deadline = new_start + base + takeover * kills_in + (cm_restart if restarted else 0.0)
            if (new_start, new_deadline) == (start, deadline):
                break
            start, deadline = new_start, new_deadline
        return start, deadline, (deadline - start) / self.scale

    def _dead_spans(self) -> list[tuple[Incident, float, float]]:
        """(incident, wall start, wall end) of every fault that leaves a node dead."""
        spans = []
        for inc in self.schedule.incidents():
            if inc.dead and inc.start_step in self.step_at:
                end = self.step_at.get(inc.end_step, float("inf")) if inc.end_step else float("inf")
                spans.append((inc, self.step_at[inc.start_step], end))
        return spans

    def judge_recoveries(self) -> None:
        """Each StatefulSet pod of a dead node must run elsewhere within the bound. When its
        replacement is placed on a node that is itself already dead (Kubernetes cannot know
        before that node's grace period), the pod is that node's to recover: the bound then
        runs from that node's fault, and any later start counts (on that node once it is
        back, or on the first node once it is back)."""
        timeline = self.c.timeline
        started = [e for e in timeline.events(kind="pod-started") if e.at >= self.t0]
        placed = [e for e in timeline.events(kind="scheduled") if e.at >= self.t0]
        spans = self._dead_spans()
        for inc, died_at, back_at in spans:
            start, deadline, bound_s = self._deadline(died_at)
            for pod in (self.pods_at_fault.get(inc.start_step, []) if inc.start_step else []):
                obj, left, since, note = f"default/{pod}", {inc.node}, died_at, ""
                pod_start, pod_deadline, pod_bound = start, deadline, bound_s
                first_placed: float | None = None
                for _ in range(len(spans)):
                    place = next((e for e in placed if e.object == obj and e.at > since and e.node not in left), None)
                    onto = place and next(((j, a, b) for j, a, b in spans
                                           if j.node == place.node and a <= place.at < b), None)
                    if not place or not onto:
                        break
                    j, j_died, _ = onto
                    j_start, j_deadline, j_bound = self._deadline(j_died)
                    if j_deadline > pod_deadline:
                        pod_start, pod_deadline, pod_bound = j_start, j_deadline, j_bound
                    note = f"; its replacement was placed on {j.node}, itself down since t={self.ct(j_died):.1f}s"
                    left, since = {j.node}, place.at
                    first_placed = place.at if first_placed is None else first_placed
                if first_placed is None:
                    moved = next((e for e in started if e.object == obj and e.node != inc.node and e.at > died_at),
                                 None)
                else:  # any start of a later replacement, on its first node too once that is back
                    moved = next((e for e in started if e.object == obj and e.at > first_placed), None)
                # Placed elsewhere, the pod must start somewhere whether or not its first
                # node came back meanwhile.
                recovery = Recovery(pod, inc, died_at, pod_deadline, pod_bound, pod_start,
                                    moved.at if moved else None, moved.node if moved else "",
                                    checked=first_placed is not None or back_at > pod_deadline, note=note,
                                    base_deadline=pod_deadline)
                self._under_attack(recovery, back_at)
                self.recoveries.append(recovery)

    def _under_attack(self, r: Recovery, back_at: float) -> None:
        """Extend a recovery's deadline by the attacks that overlap it (see the module
        docstring); one that escalated to a person under attack is not held to it."""
        node = r.incident.node
        hits = [st for a, b, st in self.attack_windows(node) if a < r.deadline and b > r.started_from]
        if not hits:
            return
        start, deadline, bound_s = self._deadline(r.died_at, attacks=True, node=node)
        if deadline > r.deadline:
            r.started_from, r.deadline, r.bound_s = start, deadline, bound_s
        r.attacked = ", ".join(sorted({st.action for st in hits}))
        r.checked = r.checked and back_at > r.deadline
        escalated = any(t.node == node and t.phase == "AwaitingApproval" and r.died_at <= t.at <= r.deadline
                        for t in self.transitions)
        if escalated and r.checked and not r.ok():
            r.checked = False
            r.note += f"; escalated to a person (AwaitingApproval) under {r.attacked}"

    def _fence_lines(self, node: str) -> list[tuple[float, str]]:
        """The agent's "FENCE begun" log lines on `node`: (wall time, trigger)."""
        path = self.out / "sim" / "logs" / f"agent-{node}.log"
        found = []
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        for line in lines:
            match = FENCE_LINE.match(line)
            if match:
                at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found.append((at, match.group(2)))
        return found

    def judge_resets(self) -> list[str]:
        """Every watchdog reset has a reason: a fence order for that node since it booted,
        or a fault that cut it off (from everything; from its peers during an API outage;
        its agent killed for longer than the watchdog's timeout, or stopped)."""
        s = self.scale
        after = 40.0 * s  # a fence begun just before a fault ended fires up to W later
        outages = [(self.step_at[st], self.step_at[st] + st.duration * s)
                   for st in self.schedule.steps if st.action == "api-outage" and st in self.step_at]
        orders: dict[str, list[float]] = {}
        seen: set[tuple[str, str]] = set()
        for t in self.transitions:
            if t.order and (t.uid, t.order) not in seen:
                seen.add((t.uid, t.order))
                orders.setdefault(t.node, []).append(t.at)

        stops = [(st.node, self.step_at[st], self.step_at[st] + (st.restart_after or 5.0) * s)
                 for st in self.schedule.steps if st.action == "agent-stop" and st in self.step_at]

        def cut_off(node: str, at: float) -> bool:
            # A stopped agent that could not withdraw its capability (cut off from the API)
            # leaves its watchdog armed on purpose: the reset is its promise kept.
            if any(n == node and a <= at <= b + after for n, a, b in stops):
                return True
            for inc in self.schedule.incidents():
                if inc.node != node or inc.start_step not in self.step_at:
                    continue
                start = self.step_at[inc.start_step]
                end = self.step_at.get(inc.end_step, float("inf")) if inc.end_step else float("inf")
                if inc.kind == "partition-all" and start <= at <= end + after:
                    return True
                if inc.kind == "agent-kill" and start <= at <= start + (inc.start_step.restart_after or 5.0) * s + after:
                    return True
                if inc.kind == "partition-peers" and any(
                        max(start, a) <= at <= min(end, b) + after for a, b in outages):
                    return True
            return False

        out = []
        boots = self.c.timeline.events(kind="node-booted")
        for fired in self.c.timeline.events(kind="watchdog-fired", since=self.t0):
            node, at = fired.node, fired.at
            booted = max((b.at for b in boots if b.node == node and b.at <= at), default=0.0)
            if any(booted <= o <= at for o in orders.get(node, [])) or cut_off(node, at):
                continue
            why = [trigger for when, trigger in self._fence_lines(node) if when <= at]
            agent = f" (its agent's last fence: {why[-1]})" if why else ""
            out.append(f"{node} reset by its watchdog at t={self.ct(at):.1f}s with no fence order for it since it "
                       f"booted and no fault cutting it off{agent}")
        return out

    def _reset_between(self, node: str, a: float, b: float) -> bool:
        timeline = self.c.timeline
        return any(e.node == node and a <= e.at <= b for e in timeline.events(kind="watchdog-fired")) or any(
            e.node == node and a <= e.at <= b and (e.data or {}).get("power") == "off"
            for e in timeline.events(kind="node-power"))

    def _off_at(self, node: str, at: float) -> bool:
        """The node was powered off at `at` (its last power event before it says so): a
        refusal then came from a peer relaying the order, not from the node's agent."""
        last = [e for e in self.c.timeline.events(kind="node-power") if e.node == node and e.at <= at]
        return bool(last) and (last[-1].data or {}).get("power") == "off"

    def judge_refused(self) -> list[str]:
        """A refused order is not a fence: no Fenced while the agent's last answer is a
        refusal, the node is not powered off, and it has not been reset or powered off
        since the order."""
        out = []
        order_at: dict[tuple[str, str], float] = {}
        answer: dict[str, str] = {}
        for t in self.transitions:
            if t.order:
                order_at.setdefault((t.uid, t.order), t.at)
            answer[t.uid] = t.answer or answer.get(t.uid, "")
            refused = answer[t.uid].startswith(("Rejected", "CannotFence"))
            if t.phase == "Fenced" and refused and t.order:
                since = order_at[(t.uid, t.order)]
                if not self._reset_between(t.node, since, t.at) and not self._off_at(t.node, t.at):
                    out.append(f"remediation of {t.node} (uid {t.uid[:8]}) Fenced/{t.reason} at t={self.ct(t.at):.1f}s "
                               f"although its agent refused the order ({answer[t.uid]}) and the node was not "
                               f"reset since the order (t={self.ct(since):.1f}s)")
        return out

    def judge_taints(self) -> list[str]:
        """No out-of-service taint on a node without a fault or a reset before it."""
        out = []
        for e in self.c.timeline.events(kind="taint-added", since=self.t0):
            if (e.data or {}).get("key") != OUT_OF_SERVICE:
                continue
            faulted = any(inc.node == e.node and inc.start_step in self.step_at
                          and self.step_at[inc.start_step] <= e.at for inc in self.schedule.incidents())
            if not faulted and not self._reset_between(e.node, self.t0, e.at):
                out.append(f"{e.node} tainted out-of-service at t={self.ct(e.at):.1f}s without any fault or reset "
                           "before it")
        return out

    def findings(self) -> list[str]:
        c, w = self.c, self.w
        out = []
        if self.unsettled:
            out.append(f"not settled {SETTLE_S:.0f}s after the last step: " + "; ".join(self.unsettled))
        for v in c.invariants()["violations"]:
            out.append(f"invariant {v['kind']} at t={self.ct(v['at']):.1f}s on {v['node']}: {v['object']}: {v['detail']}")
        for node in c.nodes:
            if w.has_taint(node):
                out.append(f"{node} still has the out-of-service taint (Ready={ready(c, node)})")
        for t in self.transitions:
            if t.phase == "Failed" and t.reason == "FenceNotObserved":
                out.append(f"remediation of {t.node} (uid {t.uid[:8]}) Failed/FenceNotObserved at t={self.ct(t.at):.1f}s")
        orders: dict[str, set[str]] = {}
        for t in self.transitions:
            if t.order:
                orders.setdefault(t.uid, set()).add(t.order)
        for uid, seen in orders.items():
            if len(seen) > 1:
                node = next(t.node for t in self.transitions if t.uid == uid)
                out.append(f"remediation of {node} (uid {uid[:8]}) stored {len(seen)} different fence orders")
        out += self.judge_resets()
        out += self.judge_refused()
        out += self.judge_taints()
        self.judge_recoveries()
        for r in self.recoveries:
            if not r.ok():
                moved = (f"it started on {r.moved_to} at t={self.ct(r.moved_at):.1f}s" if r.moved_at
                         else "it never started elsewhere")
                out.append(f"{r.pod} ran on {r.incident.node} when {r.incident.kind} began at t={self.ct(r.died_at):.1f}s; "
                           f"not running elsewhere by t={self.ct(r.deadline):.1f}s (bound {r.bound_s:.0f}s from "
                           f"t={self.ct(r.started_from):.1f}s); {moved}{r.note}")
        return out

    # -- reporting ----------------------------------------------------------------------

    def report(self, findings: list[str]) -> str:
        lines = [self.schedule.describe(), "", "executed (cluster seconds since the start):"]
        with self._lock:
            executed = sorted(self.executed, key=lambda e: e[0])
        for at, step, text in executed:
            lines.append(f"  t={self.ct(at):7.1f}s  {step.describe().split('s  ', 1)[1]}" + (f"  -- {text}" if text else ""))
        if self.settled_at:
            lines.append(f"settled at t={self.ct(self.settled_at):.1f}s")
        bound = self.bound()
        lines += ["", f"recovery bound {sum(bound.values()):.0f} cluster seconds:"]
        lines += [f"  {v:6.1f}  {k}" for k, v in bound.items()]
        lines += ["", "StatefulSet pods of dead nodes:"]
        for r in self.recoveries:
            took = f"ran on {r.moved_to} after {(r.moved_at - r.died_at) / self.scale:.0f}s" if r.moved_at else "never moved"
            verdict = ("ok" if r.ok() else "LATE") if r.checked else "not checked (node back before the bound, or escalated)"
            attacked = (f"; under {r.attacked}: {r.delay_s(self.scale):.0f}s later than the un-attacked bound"
                        if r.attacked else "")
            lines.append(f"  {r.pod} on {r.incident.node} ({r.incident.kind} t={self.ct(r.died_at):.1f}s): {took}; "
                         f"bound {r.bound_s:.0f}s -> {verdict}{attacked}{r.note}")
        lines += ["", "remediations:"]
        lines += [f"  t={self.ct(t.at):7.1f}s  {t.node} {t.uid[:8]} {t.phase}/{t.reason}" + (f" order {t.order}" if t.order else "")
                  for t in self.transitions]
        counts = Counter(f"{d.status}:{d.outcome or d.error or d.code}" for d in self.am.deliveries)
        lines += ["", "Alertmanager deliveries: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))]
        lines += ["  " + d.line(self.t0, self.scale) for d in self.am.deliveries]
        if findings:
            lines += ["", "FINDINGS:"] + [f"  - {f}" for f in findings]
        if self.overloaded():
            lines += ["", self.overloaded()]
        return "\n".join(lines)

    def overloaded(self) -> str:
        """A warning when the machine was oversubscribed during the run: the world's
        timings are scaled 10x down, so a starved agent misses its API checks and peer
        answers and may fence for real (a finding about the machine, not the product)."""
        cores = os.cpu_count() or 1
        peak = max(self.load, default=0.0)
        if peak <= 4 * cores:
            return ""
        return (f"WARNING: the load average reached {peak:.0f} on {cores} cores during this run (other work on "
                "the machine); timing findings may come from starved processes: run the seed again on a quiet "
                "machine before trusting them")

    def save(self, findings: list[str]) -> None:
        self.schedule.save(self.out / "chaos-schedule.json")
        (self.out / "chaos-report.txt").write_text(self.report(findings) + "\n")
        events = self.c.timeline.events()
        (self.out / "chaos-timeline.txt").write_text("\n".join(
            f"t={self.ct(e.at):8.1f}s {e.kind:18} {e.node:8} {e.object:40} {e.detail} "
            f"{json.dumps(e.data) if e.data else ''}".rstrip() for e in events) + "\n")


def run_schedule(schedule: Schedule, out: Path,
                 controller_overrides: dict[str, str] | None = None) -> tuple[Runner, list[str]]:
    """Run `schedule` in a new world under `out` and judge it: (the runner, its findings).
    `controller_overrides`: settings every controller of the world starts with."""
    begin = time.time()
    with nodewarden_world(out, nodes=NODES, time_scale=SCALE, workloads=list(WORKLOADS), controllers=2,
                          remediation_policy=policy(), controller_overrides=controller_overrides) as w:
        runner = Runner(w, schedule, out)
        findings: list[str] = []
        try:
            runner.run()
            findings = runner.findings()
        except BaseException as err:
            findings = [f"the run stopped: {type(err).__name__}: {err}"]
            raise
        finally:
            runner.save(findings)
            runner.stop_controllers()
        stopping = time.time()
    end = time.time()
    runner.wall = {"world start": runner.t0 - begin, "schedule": runner.steps_done_at - runner.t0,
                   "settle": max(0.0, stopping - runner.steps_done_at), "world stop": end - stopping}
    with (out / "chaos-report.txt").open("a") as report:
        report.write("wall seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in runner.wall.items()) + "\n")
    return runner, findings
