"""The node agent's steady-state footprint (issue: node agent): real `python -m node_agent`
processes, one per node of a simulated cluster at time scale 1, with the agent's default
intervals (API check every 15 s, watchdog fed every 20 s, peers re-listed up to every
5 minutes). Targets per agent: RSS at most 40 MiB, CPU at most 1% of a core.

The agents run as in a pod: credentials from a service account directory (`token`,
`ca.crt`, KUBERNETES_SERVICE_HOST/PORT), not from a kubeconfig, which would load the
client's full kubeconfig loader (about 11 MiB more; docs/node-agent.md).

After a warm-up (every agent has published on its Node and armed its watchdog), each
agent's RSS is sampled every second and its CPU time measured over the window. Then one
agent is handed a signed fence order for an earlier boot (verified, then answered
"already rebooted", nothing done): the first order loads `cryptography`, and its RSS
after that is recorded too. The result also records where the memory goes: a bare
interpreter, and an interpreter that only imported the agent (`import node_agent.cli`,
with the agent's lean import set-up).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import cpu_seconds, rss_mib, write_result

PEER_SECRET = "bench-peer-secret"

NODES = int(os.environ.get("BENCH_AGENT_NODES", "3"))
WARMUP_S = float(os.environ.get("BENCH_AGENT_WARMUP_S", "30"))
MEASURE_S = float(os.environ.get("BENCH_AGENT_MEASURE_S", "120"))
RSS_TARGET_MIB = 40.0
CPU_TARGET_CORES = 0.01

IMPORTS_PROBE = """
import sys
if sys.argv[1] == "agent":
    from node_agent.lean import skip_kubernetes_package_init
    skip_kubernetes_package_init()
    import node_agent.cli
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"):
        print(int(line.split()[1]) / 1024)
"""


def _status(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile (MiB) and Threads of a process."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            values[key] = int(rest.split()[0]) / 1024
        elif key == "Threads":
            values[key] = int(rest)
    return values


def _pss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _imports_rss(which: str) -> float:
    out = subprocess.run([sys.executable, "-c", IMPORTS_PROBE, which], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    return float(out.stdout.strip())


def measure() -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from core.fence_order import public_key_pem
    from sim.world.cluster import Cluster

    key = Ed25519PrivateKey.generate()

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "order-keys.pem").write_bytes(public_key_pem(key.public_key()))
        (work / "peer-secret").write_text(PEER_SECRET + "\n")
        config = work / "agent.yaml"
        # Only what the simulated node needs; every interval keeps its default.
        config.write_text(f"peer_secret_file: {work / 'peer-secret'}\n"
                          f"order_public_keys_file: {work / 'order-keys.pem'}\n"
                          f"peer_cache_file: {work / 'peers-{node}.json'}\n"
                          "boot_id_source: node-status\n")
        command = (f"{sys.executable} -m node_agent --node-name {{node}} --service-account-dir {{service_account}} "
                   f"--watchdog {{watchdog}} --listen {{address}} --config {config}")
        cluster = Cluster(nodes=NODES, time_scale=1.0, workdir=work / "cluster", agent_cmd=command,
                          agent_env={"PYTHONPATH": str(root)}, workloads=["db=statefulset:2"])
        cluster.apply_file(root / "helm" / "nodewarden" / "crds" / "noderemediations.yaml")
        cluster.apply_manifest("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: nodewarden\n")
        cluster.start()
        try:
            def published() -> bool:
                return all((cluster.get("nodes", n) or {}).get("metadata", {}).get("annotations", {})
                           .get("nodewarden.io/self-fence-capable") == "true" for n in cluster.nodes)

            cluster.wait_for(published, 60, interval=0.5, message="every agent published")
            time.sleep(WARMUP_S)
            pids = {n: p.pid for n, p in cluster.processes.items()}
            assert all(pids.values()), "an agent is not running"
            cpu0 = {n: cpu_seconds(pid) for n, pid in pids.items() if pid}
            t0 = time.monotonic()
            peak = {n: 0.0 for n in pids}
            samples: dict[str, list[float]] = {n: [] for n in pids}
            while time.monotonic() - t0 < MEASURE_S:
                for n, pid in pids.items():
                    rss = rss_mib(pid or 0)
                    samples[n].append(rss)
                    peak[n] = max(peak[n], rss)
                time.sleep(1.0)
            wall = time.monotonic() - t0
            cpu = {n: (cpu_seconds(pid or 0) - cpu0[n]) / wall for n, pid in pids.items()}
            status = {n: _status(pid or 0) for n, pid in pids.items()}
            pss = {n: _pss_mib(pid or 0) for n, pid in pids.items()}
            worst = max(pids, key=lambda n: peak[n])
            after_order = _rss_after_first_order(cluster, key, worst, pids[worst] or 0)
            restarts = sum(p.starts - 1 for p in cluster.processes.values())
            fired = len(cluster.timeline.events(kind="watchdog-fired"))
        finally:
            cluster.stop()
    return {
        "agents": NODES, "warmup_s": WARMUP_S, "measured_s": wall,
        "rss_mib": {"peak": max(peak.values()), "mean": sum(sum(s) / len(s) for s in samples.values()) / NODES,
                    "anon": status[worst]["RssAnon"], "file_backed": status[worst]["RssFile"],
                    "pss": pss[worst], "after_first_order": after_order},
        "cpu_cores": {"max": max(cpu.values()), "mean": sum(cpu.values()) / NODES},
        "threads": int(max(s["Threads"] for s in status.values())),
        "agent_restarts": restarts, "watchdog_resets": fired,
        "floor_rss_mib": {"bare_python": _imports_rss("bare"), "agent_imports": _imports_rss("agent")},
    }


def _rss_after_first_order(cluster: Any, key: Any, node: str, pid: int) -> float:
    """Hand `node`'s agent a signed fence order for a boot it is not on: it verifies the
    signature (loading `cryptography`), answers AlreadyRebooted and does nothing else.
    Its RSS a few seconds later."""
    import requests

    from core.fence_order import Action, new_order, sign_order
    from core.peer_client import OrderOutcome, PeerClient

    order = new_order(node=node, remediation_uid="bench", action=Action.FENCE, issued_at=time.time(),
                      ttl_s=60, boot_id="an-earlier-boot")
    session = requests.Session()
    session.trust_env = False
    proxy = cluster.peer_proxy("external")
    session.proxies = {"http": proxy, "https": proxy}
    client = PeerClient(PEER_SECRET.encode(), timeout_s=5.0, session=session)
    answer = client.deliver_order(f"http://{cluster.nodes[node].address}", sign_order(order, key), receiver=node)
    assert answer.outcome is OrderOutcome.ALREADY_REBOOTED, answer
    time.sleep(3.0)
    return rss_mib(pid)


def run() -> dict[str, Any]:
    data = measure()
    data["targets"] = {"rss_mib.peak": f"<= {RSS_TARGET_MIB:g} MiB per agent",
                       "cpu_cores.max": f"<= {CPU_TARGET_CORES:g} of a core per agent",
                       "agent_restarts": "0", "watchdog_resets": "0"}
    data["met"] = {"rss_mib.peak": data["rss_mib"]["peak"] <= RSS_TARGET_MIB,
                   "cpu_cores.max": data["cpu_cores"]["max"] <= CPU_TARGET_CORES,
                   "agent_restarts": data["agent_restarts"] == 0,
                   "watchdog_resets": data["watchdog_resets"] == 0}
    write_result("agent", data)
    return data
