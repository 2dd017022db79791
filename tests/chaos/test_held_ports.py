"""An API-server outage while every agent's peer port is held by slow clients and flooded
(issue: endpoints that hold). Before, 40 slow connections per agent held every request
slot of a thread-per-connection server: no agent could answer its peers, each decided
`Fence (Isolated) no peer answered`, and every node's watchdog fired.

The attackers have no credentials, run in a process of their own (another machine, as far
as the agents can tell) and connect from many loopback addresses (`harness.attack`): per
agent, 200 connections trickling their headers a byte a second, 40 sending a POST head
announcing 16,000 bytes then the body a byte every 2 s (the attack of the issue; each is
refused at once and comes back), and a flood of unauthenticated requests (about 100/s). The same outage is run without them, and the agents' decisions must
be the same: Run (ControlPlaneOutage), never a Fence, no reset, and /healthz (the liveness
probe's path) answered within 1 s throughout."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness.attack import attacking
from harness.world import World, nodewarden_world

# The attack costs real time, not scaled time: at the chaos suite's 0.05 the agents' peer
# timeout is 0.25 s, below the scheduling latency of a loaded 2-core test machine with an
# attacking process on it (authenticated answers under this attack measured p99 0.15 s
# direct, 0.36 s through the simulated peer network, against 0.06/0.1 s without it). At
# 0.2 the timeouts are still a fifth of the defaults: peer timeout 0.4 s, isolation 2 s.
SCALE = 0.2
OUTAGE_S = 75.0  # simulation seconds: 15 s here, 7.5 isolation timeouts
SLOW_PER_AGENT = 200


def counted(address: str) -> dict[tuple[str, str], float]:
    """The agent's decisions, ("Fence", "Isolated") -> count, and its refusals, ("Refused",
    reason) -> count."""
    session = requests.Session()
    session.trust_env = False
    text = session.get(f"http://{address}/metrics", timeout=5).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "nodewarden_agent_decisions_total":
                out[(s.labels["verdict"], s.labels["reason"])] = s.value
            elif s.name == "nodewarden_agent_peer_requests_refused_total":
                out[("Refused", s.labels["reason"])] = s.value
    return out


def held(address: str) -> float:
    """Connections open on the agent's peer port, per its own gauge."""
    session = requests.Session()
    session.trust_env = False
    text = session.get(f"http://{address}/metrics", timeout=5).text
    return next((s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == "nodewarden_agent_peer_connections"), 0.0)


class Prober:
    """/healthz on every agent every 0.5 s, as the kubelet's liveness probe would."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.slowest_s = 0.0
        self.failures: list[str] = []
        self.probes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        session = requests.Session()
        session.trust_env = False
        while not self._stop.wait(0.5):
            for address in self.addresses:
                started = time.monotonic()
                try:
                    ok = session.get(f"http://{address}/healthz", timeout=1.0).status_code == 200
                except requests.RequestException as exc:
                    ok, address = False, f"{address}: {exc}"
                self.probes += 1
                self.slowest_s = max(self.slowest_s, time.monotonic() - started)
                if not ok:
                    self.failures.append(address)


def outage(w: World, attack: bool) -> tuple[dict[str, dict[tuple[str, str], float]], Prober]:
    c = w.cluster
    addresses = [c.nodes[n].address for n in c.nodes]

    def published() -> bool:
        return all((c.get("nodes", n) or {}).get("metadata", {}).get("annotations", {})
                   .get("nodewarden.io/self-fence-capable") == "true" for n in c.nodes)

    c.wait_for(published, 60, interval=0.5, message="every agent published")
    t0 = c.clock()
    with ExitStack() as stack:
        if attack:
            stack.enter_context(attacking(addresses, modes=f"headers:{SLOW_PER_AGENT}:1,body:40:2"))
            c.wait_for(lambda: all(held(a) >= SLOW_PER_AGENT for a in addresses), 30,
                       message="every agent's port held")
        prober = stack.enter_context(Prober(addresses))
        c.fault("api-outage", duration_s=OUTAGE_S)
        time.sleep(OUTAGE_S * SCALE + 3.0)
    fired = sorted({e.node for e in c.timeline.events(kind="watchdog-fired", since=t0)})
    assert fired == [], f"watchdogs fired on {fired}"
    return {n: counted(c.nodes[n].address) for n in c.nodes}, prober


# The quiet outage is the control: the same claim without an attacker is make test's in
# tests/node_agent/integration/test_agent_sim_outage.py, so it runs with the extended tier.
@pytest.mark.parametrize("attack", [pytest.param(False, marks=pytest.mark.extended), True],
                         ids=["quiet", "held-and-flooded"])
def test_an_api_outage_with_every_peer_port_held_and_flooded_costs_no_fence(tmp_path: Path, attack: bool) -> None:
    with nodewarden_world(tmp_path, nodes=3, time_scale=SCALE, workloads=(), webhook=False, controllers=0) as w:
        made, prober = outage(w, attack)
    for node, counts in made.items():
        if attack:  # the attack reached the agent: slow clients cut at the deadline, the flood refused
            assert counts.get(("Refused", "TooSlow"), 0) >= SLOW_PER_AGENT, f"{node}: {counts}"
            assert counts.get(("Refused", "MissingCredentials"), 0) >= 100, f"{node}: {counts}"
        print(node, counts)
        fences = {k: v for k, v in counts.items() if k[0] == "Fence"}
        assert not fences, f"{node} decided {fences}"
        assert counts.get(("Run", "ControlPlaneOutage"), 0) >= 1, f"{node}: {counts}"
    assert prober.probes > 0 and prober.failures == [], prober.failures
    assert prober.slowest_s < 1.0, f"a liveness probe took {prober.slowest_s:.2f}s"
