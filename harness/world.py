"""A whole nodewarden world in one line, for integration, end-to-end and chaos tests:
the simulated cluster with real agent processes on its nodes, the real webhook under
gunicorn, and one or more real controller processes, every timing scaled together.

    with nodewarden_world(tmp_path, nodes=5, time_scale=0.05, workloads=["db=statefulset:3"]) as w:
        w.cluster.fault("power-off", "node-2")
        w.trigger("node-2")                     # as an operator would, with curl
        w.wait_phase("node-2", "AwaitingNodeReady")
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from core.fence_order import generate_private_key, private_key_pem, public_key_pem
from harness.bmc import InventoryFn
from harness.chart import apply_security
from harness.prometheus import free_port
from sim.apiserver.server import CONTROLLER
from sim.bmc.fleet import BmcOptions
from sim.world.cluster import Cluster

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "helm" / "nodewarden" / "crds" / "noderemediations.yaml"
RECORD_CRD = ROOT / "helm" / "nodewarden" / "crds" / "noderemediationrecords.yaml"
GUNICORN = Path(sys.executable).parent / "gunicorn"
OPERATOR_TOKEN = "operator-token-for-tests-0123456789"
ALERTMANAGER_TOKEN = "alertmanager-token-for-tests-0123456789"


AGENT_WATCHDOG_S = 15.0  # the agent's default; the simulated devices are given the same


def agent_config(scale: float, watchdog_timeout_s: float, secret: Path, public_keys: Path,
                 state_dir: Path) -> dict[str, Any]:
    """The node agent's default settings with every timing scaled like the cluster's, and
    floors on the network timeouts (processes on a loaded test machine answer slower than
    the scaled values would allow)."""
    return {
        "peer_secret_file": str(secret), "order_public_keys_file": str(public_keys),
        "boot_id_source": "node-status", "watchdog_timeout_s": watchdog_timeout_s,
        "api_check_interval_s": 5 * scale, "api_check_timeout_s": max(0.25, 2 * scale),
        "isolation_timeout_s": 10 * scale, "peer_request_timeout_s": max(0.25, 2 * scale),
        "peer_api_timeout_s": max(0.15, 1 * scale), "peer_refresh_interval_s": 100 * scale,
        "loop_tick_s": max(0.02, 0.5 * scale),
        "peer_cache_file": str(state_dir / "{node}" / "peers.json"),
    }


def controller_env(scale: float, tmp: Path, kubeconfig: Path, key: Path, secret: Path, proxy: str,
                   identity: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODEWARDEN_")}
    values = {
        "KUBECONFIG": str(kubeconfig), "SIGNING_KEY_FILE": str(key), "PEER_SECRET_FILE": str(secret),
        "IDENTITY": identity, "METRICS_BIND": f"127.0.0.1:{free_port()}",
        "LEASE_DURATION_S": 15 * scale, "RENEW_DEADLINE_S": 10 * scale, "RETRY_PERIOD_S": 2 * scale,
        "RESYNC_S": 2 * scale, "PEER_TIMEOUT_S": max(0.15, 3 * scale), "SAFETY_MARGIN_S": 2 * scale,
        "MAX_CLOCK_SKEW_S": 1 * scale, "ORDER_TTL_S": 1800 * scale, "ACK_TIMEOUT_S": 60 * scale,
        "FENCE_TIMEOUT_S": 900 * scale, "CONFIRM_TIMEOUT_S": 300 * scale, "OPERATOR_GRACE_S": 5 * scale,
        "APPROVAL_TIMEOUT_S": 3600 * scale, "ESCALATION_TIMEOUT_S": 3600 * scale,
        "RECOVER_TIMEOUT_S": 120 * scale, "NODE_NOT_BACK_AFTER_S": 1800 * scale,
        "KUBELET_RESTART_WAIT_S": 60 * scale, "FENCE_AGENT_TIMEOUT_S": max(1.0, 60 * scale),
        "NODE_LEASE_DURATION_S": 40 * scale, "KUBE_REQUEST_TIMEOUT_S": 5,
        "SILENCE_SETTLE_S": max(0.3, 2 * scale), "FENCING_TAINT_SETTLE_S": 11 * scale,
        "POD_GC_PERIOD_S": 20 * scale,
        "AGENT_CONFIG_FILE": str(tmp / "agent.yaml"),
    }
    values.update(overrides)
    env.update({f"NODEWARDEN_CONTROLLER_{k}": str(v) for k, v in values.items()})
    # The emulated BMCs (127.78.0.0/16) are on the management network: not through the peer proxy.
    no_proxy = "127.0.0.1,localhost,127.78.0.0/16"
    env.update(HTTP_PROXY=proxy, HTTPS_PROXY=proxy, http_proxy=proxy, https_proxy=proxy,
               NO_PROXY=no_proxy, no_proxy=no_proxy)
    return env


def policy(escalation: str = "OperatorApproval", strategy: str = "OutOfServiceTaint",
           max_remediations: int = 100, **extra: Any) -> dict[str, Any]:
    doc = {
        "apiVersion": "nodewarden.io/v1alpha1", "kind": "RemediationPolicy",
        "alerts": {"names": ["NodeNotReady", "NodeLeaseStale", "KubeNodeNotReady"], "nodeLabels": ["node"]},
        "nodes": {"selector": {}, "includeControlPlane": True},
        "stormProtection": {"maxUnhealthy": "100%"},
        "rateLimit": {"maxRemediations": max_remediations, "window": "15m"},
        "cooldown": "1s", "paused": False, "dryRun": False,
        "defaults": {"strategy": strategy, "escalation": escalation, "approvalRequired": False},
        "groups": [],
    }
    doc.update(extra)
    return doc


@dataclass
class World:
    cluster: Cluster
    tmp: Path
    scale: float
    webhook_url: str = ""
    webhook_urls: list[str] = field(default_factory=list)  # every replica; webhook_url is the first
    controllers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    controller_metrics: dict[str, str] = field(default_factory=dict)  # identity -> host:port
    _controller_env: dict[str, Any] = field(default_factory=dict)
    webhook_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)  # by replica
    _webhook_launch: list[Callable[[], subprocess.Popen[bytes]]] = field(default_factory=list)

    # -- the product's processes ------------------------------------------------------

    def start_controller(self, identity: str, **overrides: str) -> subprocess.Popen[bytes]:
        env = controller_env(self.scale, self.tmp, self.controller_kubeconfig(), self.tmp / "signing.pem",
                             self.tmp / "peer-secret", self.cluster.peer_proxy("external"), identity,
                             **{**self._controller_env, **overrides})
        self.controller_metrics[identity] = env["NODEWARDEN_CONTROLLER_METRICS_BIND"]
        log = open(self.tmp / f"controller-{identity}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "controller"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.controllers[identity] = proc
        return proc

    def controller_kubeconfig(self) -> Path:
        """The controller's own credential (service account nodewarden-controller): the
        webhook's cannot taint nodes or delete pods."""
        path = self.tmp / "controller.kubeconfig"
        if not path.exists():
            self.cluster.api.write_kubeconfig(path, CONTROLLER)
        return path

    def kill_controller(self, identity: str, sig: int = signal.SIGKILL) -> None:
        proc = self.controllers.pop(identity)
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a starved machine: do not leave it running
            proc.kill()
            proc.wait(timeout=10)

    def kill_webhook(self, replica: int = 0) -> None:
        """SIGKILL a webhook replica, its gunicorn master and workers at once, as a
        container killed by its runtime."""
        proc = self.webhook_procs[replica]
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        proc.kill()
        for pid in children:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        proc.wait(timeout=10)

    def start_webhook(self, replica: int = 0, timeout: float = 90.0) -> None:
        """Start a killed webhook replica again, on its address, and wait until it is ready."""
        proc = self._webhook_launch[replica]()
        self.webhook_procs[replica] = proc
        name = "webhook.log" if replica == 0 else f"webhook-{replica}.log"
        _wait_http(self.webhook_urls[replica] + "/readyz", proc, self.tmp / name, timeout=timeout)

    def leader(self) -> str:
        lease = self.cluster.get("leases", "nodewarden-controller", "nodewarden", "coordination.k8s.io")
        return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")

    # -- what operators and Alertmanager do -------------------------------------------

    def trigger(self, node: str, reason: str = "test", dry_run: bool = False) -> requests.Response:
        return requests.post(f"{self.webhook_url}/api/v1/remediations",
                             json={"node": node, "reason": reason, "dryRun": dry_run},
                             headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=10)

    def approve(self, node: str) -> requests.Response:
        return requests.post(f"{self.webhook_url}/api/v1/remediations/{node}/approve",
                             headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=10)

    def alert(self, node: str, status: str = "firing", name: str = "NodeNotReady") -> requests.Response:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        alert = {"status": status, "labels": {"alertname": name, "node": node, "severity": "critical"},
                 "annotations": {}, "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
                 "generatorURL": "http://prometheus/graph", "fingerprint": f"fp-{node}"}
        body = {"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": status,
                "receiver": "nodewarden", "groupLabels": {}, "commonLabels": alert["labels"],
                "commonAnnotations": {}, "externalURL": "http://alertmanager", "alerts": [alert]}
        return requests.post(f"{self.webhook_url}/api/v1/alerts", json=body,
                             headers={"Authorization": f"Bearer {ALERTMANAGER_TOKEN}"}, timeout=10)

    # -- observations -----------------------------------------------------------------

    def remediation(self, node: str) -> dict[str, Any] | None:
        rt = self.cluster.rt("noderemediations", "nodewarden.io", "v1alpha1")
        entry = self.cluster.store.get(self.cluster.registry.table(rt), "", node)
        return entry.obj() if entry else None

    def phase(self, node: str) -> str:
        return str(((self.remediation(node) or {}).get("status") or {}).get("phase") or "")

    def wait_phase(self, node: str, *phases: str, timeout: float = 60.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            rem = self.remediation(node)
            return rem if rem and (rem.get("status") or {}).get("phase") in phases else None

        try:
            return self.cluster.wait_for(reached, timeout, interval=0.05)
        except TimeoutError:
            status = (self.remediation(node) or {}).get("status") or {}
            raise AssertionError(f"{node} did not reach {phases} within {timeout}s: phase "
                                 f"{status.get('phase')} ({status.get('reason')}: {status.get('message')})\n"
                                 f"{self.logs()}") from None

    def logs(self, tail: int = 40) -> str:
        out = []
        for path in sorted(self.tmp.glob("controller-*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def has_taint(self, node: str) -> bool:
        obj = self.cluster.get("nodes", node) or {}
        return any(t.get("key") == "node.kubernetes.io/out-of-service"
                   for t in (obj.get("spec") or {}).get("taints") or [])


@contextmanager
def nodewarden_world(tmp: Path, *, nodes: int = 5, time_scale: float = 0.05,
                     workloads: tuple[str, ...] | list[str] = ("db=statefulset:3",),
                     agent_nodes: list[str] | None = None, controllers: int = 1, webhook: bool = True,
                     remediation_policy: dict[str, Any] | None = None,
                     controller_overrides: dict[str, Any] | None = None,
                     timings: Any = None, webhooks: int = 1, bmcs: BmcOptions | None = None,
                     fence_inventory: InventoryFn | None = None,
                     agent_clock_offsets: dict[str, float] | None = None,
                     webhook_env: dict[str, str] | None = None) -> Iterator[World]:
    """`agent_clock_offsets`: {node: seconds} by which that node's agent's wall clock is
    off (negative: behind), a fault played by harness.agent_clock. `webhook_env`: extra
    NODEWARDEN_* settings of the webhook."""
    tmp.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    (tmp / "signing.pem").write_bytes(private_key_pem(key))
    (tmp / "order-keys.pem").write_bytes(public_key_pem(key.public_key()))
    (tmp / "peer-secret").write_text("peer-secret-for-tests-0123456789abcdef")
    if timings is None:
        from sim.world.timings import Timings

        timings = Timings(watchdog_timeout_s=AGENT_WATCHDOG_S)
    agent_module = "node_agent"
    if agent_clock_offsets:
        (tmp / "clock-offsets.json").write_text(json.dumps(agent_clock_offsets))
        agent_module = f"harness.agent_clock {tmp / 'clock-offsets.json'} {{node}} --"
    cluster = Cluster(nodes=nodes, time_scale=time_scale, workdir=tmp / "sim", workloads=list(workloads),
                      timings=timings, agent_nodes=agent_nodes, node_age_s=86400.0, bmcs=bmcs,
                      agent_cmd=(f"{sys.executable} -m {agent_module} --node-name {{node}} --service-account-dir {{service_account}} "
                                 f"--watchdog {{watchdog}} --listen {{address}} --config {tmp / 'agent.yaml'}"))
    (tmp / "agent.yaml").write_text(yaml.safe_dump(agent_config(
        time_scale, cluster.timings.watchdog_timeout_s, tmp / "peer-secret", tmp / "order-keys.pem",
        tmp / "agent-state")))
    cluster.apply_file(CRD)
    cluster.apply_file(RECORD_CRD)
    cluster.apply_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: nodewarden}\n")
    # Every product identity runs with exactly what the chart grants it, enforced.
    # The chart value that goes with a controller setting the world overrides: the RBAC
    # the chart renders for it (the chart sets the controller's variable from the value).
    deletes = str((controller_overrides or {}).get("DELETE_PODS_AFTER_TAINT", "true")).lower() == "true"
    apply_security(cluster.api, remediation_policy or policy(), {"controller": {"deletePodsAfterTaint": deletes}})
    world = World(cluster, tmp, time_scale, _controller_env=dict(controller_overrides or {}))
    try:
        cluster.start()
        doc = dict(remediation_policy or policy())
        if fence_inventory is not None:  # the BMCs' addresses are known once the cluster runs
            doc["fenceAgents"] = fence_inventory(cluster, tmp)
            world._controller_env.setdefault("FENCE_INVENTORY_FILE", str(tmp / "policy.yaml"))
        (tmp / "policy.yaml").write_text(yaml.safe_dump(doc))
        if webhook:
            (tmp / "op-token").write_text(OPERATOR_TOKEN)
            (tmp / "am-token").write_text(ALERTMANAGER_TOKEN)
            for replica in range(webhooks):
                port = free_port()
                metrics_dir = tmp / f"webhook-metrics-{replica}"
                metrics_dir.mkdir(exist_ok=True)
                env = {k: v for k, v in os.environ.items() if not k.startswith("NODEWARDEN_")}
                env.update(NODEWARDEN_KUBECONFIG=str(cluster.kubeconfig("webhook")),
                           NODEWARDEN_OPERATOR_TOKEN_FILE=str(tmp / "op-token"),
                           # the static token above, or a person's own (harness.chart.operator_user)
                           NODEWARDEN_OPERATOR_AUTH="both",
                           NODEWARDEN_ALERTMANAGER_TOKEN_FILE=str(tmp / "am-token"),
                           NODEWARDEN_POLICY_FILE=str(tmp / "policy.yaml"), NODEWARDEN_BIND=f"127.0.0.1:{port}",
                           NODEWARDEN_WORKERS="2", NODEWARDEN_INSTANCE=f"webhook-{replica}",
                           PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
                env.update(webhook_env or {})
                name = "webhook.log" if replica == 0 else f"webhook-{replica}.log"

                def launch(env: dict[str, str] = env, name: str = name) -> subprocess.Popen[bytes]:
                    log = open(tmp / name, "ab")  # noqa: SIM115
                    proc = subprocess.Popen([str(GUNICORN), "-c", "webhook/gunicorn.conf.py", "webhook.wsgi:app"],
                                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
                    log.close()
                    return proc

                proc = launch()
                world._webhook_launch.append(launch)
                world.webhook_procs.append(proc)
                url = f"http://127.0.0.1:{port}"
                world.webhook_urls.append(url)
                _wait_http(url + "/readyz", proc, tmp / name, timeout=90.0)  # a loaded machine imports slowly
            world.webhook_url = world.webhook_urls[0]
        for i in range(controllers):
            world.start_controller(f"controller-{i}")
        _wait_agents(cluster, agent_nodes)
        yield world
    finally:
        for identity in list(world.controllers):
            world.kill_controller(identity, signal.SIGTERM)
        for proc in world.webhook_procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        cluster.stop()


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    """Until `url` answers 200 (a gunicorn start imports the Kubernetes client: slow on a
    loaded machine), or the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url} exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout}s: {log.read_text()[-2000:]}")


def _wait_agents(cluster: Cluster, agent_nodes: list[str] | None, timeout: float | None = None) -> None:
    """Every agent has published itself (capable) and renewed its heartbeat."""
    wanted = [n for n in cluster.nodes if agent_nodes is None or n in agent_nodes]
    timeout = timeout if timeout is not None else 30.0 + 2.0 * len(wanted)  # agents start on 2 cores

    def published() -> bool:
        for name in wanted:
            ann = ((cluster.get("nodes", name) or {}).get("metadata") or {}).get("annotations") or {}
            if ann.get("nodewarden.io/self-fence-capable") != "true":
                return False
            if cluster.get("leases", f"nodewarden-agent-{name}", "nodewarden", "coordination.k8s.io") is None:
                return False
        return True

    cluster.wait_for(published, timeout, interval=0.1, message="agents published")
