"""Runs one chaos schedule in a nodewarden world, lets it settle, and judges it.

The world: 7 simulated nodes with a real agent process each, a StatefulSet `db` (3
replicas, one ReadWriteOnce volume each) and a Deployment `web` (3 replicas), the webhook
under gunicorn with a permissive policy (storm protection is not what is tested here),
and two controller processes (one leader, one standby). Alertmanager is emulated
(`tests/chaos/alerts.py`).

The schedule's steps are executed at their times (scaled), attacks and mistakes included
(tests/chaos/adversary.py) and world faults (tests/chaos/world_faults.py), every NodeRemediation transition is recorded, and the world is
given time to settle; then the run is judged (tests/chaos/judge.py) and reported
(tests/chaos/report.py). The recovery bound is in tests/chaos/bound.py.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from core.fence_order import generate_private_key, private_key_pem
from core.peer_client import HEALTH_PATH
from harness.waits import ready, running_on, wait_running
from harness.world import World, nodewarden_world, policy
from sim.apiserver.resources import ResourceType
from sim.apiserver.store import Entry
from sim.world.faults import FaultError
from sim.world.nodes import Power
from tests.chaos.adversary import (
    AGENT_SLOW_CONNECTIONS,
    WEBHOOK_SLOW_CONNECTIONS,
    Flood,
    SlowClients,
    forge_status,
    parse_address,
)
from tests.chaos.alerts import Alertmanager
from tests.chaos.bound import WALL_SLACK_S, controller_timings, leader_takeover_s, recovery_bound
from tests.chaos.judge import SETTLE_S, Recovery, Transition
from tests.chaos.report import Report, reproduce_command
from tests.chaos.schedule import ATTACK_ACTIONS, Schedule, Step
from tests.chaos.world_faults import WebhookRestart, carry_out, is_world_step

__all__ = ["SCALE", "WALL_SLACK_S", "Recovery", "Runner", "Transition", "controller_timings",
           "leader_takeover_s", "recovery_bound", "reproduce_command", "run_schedule"]

# 10x faster than a real cluster. At 0.05 the test world's floors on the agents' network
# timeouts (harness/world.py) make one API check as long as the isolation timeout
# and a peer request half of it, a regime the defaults never reach, and a world of 7 agents
# with 0.75 s watchdogs on 2 cores resets nodes whenever the machine stalls.
SCALE = 0.1
NODES = 7
WORKLOADS = ("db=statefulset:3", "web=deployment:3")
STATEFULSET_PODS = ("db-0", "db-1", "db-2")
DEPLOYMENT_REPLICAS = 3
START_WAIT_S = 90.0  # wall seconds for the world's workloads and a leader before the schedule starts
TERMINAL = ("Succeeded", "Failed", "Cancelled")


@dataclass
class Runner(Report):
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
        self.webhook_restarts: list[WebhookRestart] = []

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
        if step.action in ("power-off", "kubelet-stop", "partition", "group-partition"):
            for node in step.nodes:  # a group's pods are kept per node (Judge.pods_at)
                self.pods_at_fault[step if node == step.node else replace(step, node=node)] = sorted(
                    p.split("/", 1)[1] for p in c.node_state(node)["runningPods"]
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
            elif step.action == "webhook-restart":
                self.webhook_restarts.append(WebhookRestart(w, step, partial(self.note, step)))
                self.am.on_post.append(self.webhook_restarts[-1].on_post)
            elif is_world_step(step):
                self.note(step, carry_out(c, step))
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
            if self._attacks or self._rotating or time.time() < self.untrusted_until or any(
                    r.busy for r in self.webhook_restarts):
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


def run_schedule(schedule: Schedule, out: Path,
                 controller_overrides: dict[str, str] | None = None) -> tuple[Runner, list[str]]:
    """Run `schedule` in a new world under `out` and judge it: (the runner, its findings).
    `controller_overrides`: settings every controller of the world starts with."""
    begin = time.time()
    offsets = {node: o * SCALE for node, o in schedule.clock_offsets.items()}  # the agents' wall seconds
    with nodewarden_world(out, nodes=NODES, time_scale=SCALE, workloads=list(WORKLOADS), controllers=2,
                          remediation_policy=policy(), controller_overrides=controller_overrides,
                          agent_clock_offsets=offsets or None) as w:
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
