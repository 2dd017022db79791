"""A simulated cluster with one real `python -m node_agent` process per node, and what the
tests need to look at it from outside: the agents' peer endpoints and metrics through
the simulator's peer network, orders signed with the cluster's key, the NodeRemediation
written through the admin kubeconfig, the published annotations and Leases.

Timings are Kubernetes' (and the agent's) defaults scaled down 20x, as in
docs/node-agent.md "Running under the simulator".
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families

from core import names
from core.clock import parse_rfc3339
from core.fence_order import Action, new_order, public_key_pem, sign_order
from core.peer_client import PeerClient
from core.settings import read_config_file
from node_agent import __version__
from node_agent.settings import AgentSettings, load_agent_settings
from sim.world.cluster import Cluster

ROOT = Path(__file__).resolve().parents[3]
SCALE = 0.05  # Kubernetes' 60 s watchdog is 3 s, its 50 s grace period 2.5 s
SECRET = "integration-peer-secret"
# The simulator checks its watchdogs every min(0.25 s, timeout / 20): a reset is seen
# that much after the device expired.
WATCHDOG_CHECK_S = 0.25

AGENT_CONFIG = """\
peer_secret_file: {workdir}/peer-secret
order_public_keys_file: {workdir}/order-keys.pem
peer_cache_file: {workdir}/state/peers-{{node}}.json
boot_id_source: node-status
watchdog_timeout_s: {watchdog_timeout_s:g}s
api_check_interval_s: 750ms
api_check_timeout_s: 250ms
isolation_timeout_s: 1.5s
peer_request_timeout_s: 250ms
peer_api_timeout_s: 150ms
peer_refresh_interval_s: 5s
loop_tick_s: 50ms
"""
AGENT_CMD = (
    f"{sys.executable} -m node_agent --node-name {{node}} --service-account-dir {{service_account}} "
    "--watchdog {watchdog} --listen {address} --config {config}"
)
NAMESPACE = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {names.DEFAULT_NAMESPACE}\n"


def write_agent_files(workdir: Path, watchdog_timeout_s: float) -> tuple[Path, Ed25519PrivateKey]:
    """The fence-order key pair (the agents get the public key), the peer secret and the
    agents' config file."""
    workdir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    (workdir / "order-keys.pem").write_bytes(public_key_pem(key.public_key()))
    (workdir / "peer-secret").write_text(SECRET + "\n")
    path = workdir / "agent.yaml"
    path.write_text(AGENT_CONFIG.format(workdir=workdir, watchdog_timeout_s=watchdog_timeout_s))
    return path, key


@dataclass
class AgentCluster:
    cluster: Cluster
    key: Ed25519PrivateKey
    settings: AgentSettings  # what every agent runs with (node_name is a placeholder)

    # Looking from outside -------------------------------------------------------------

    def url(self, node: str) -> str:
        return f"http://{self.cluster.nodes[node].address}"

    def session(self) -> requests.Session:
        """HTTP through the simulator's peer network, as the remediator would reach agents."""
        session = requests.Session()
        session.trust_env = False
        proxy = self.cluster.peer_proxy("external")
        session.proxies = {"http": proxy, "https": proxy}
        return session

    def peer_client(self, secret: str = SECRET) -> PeerClient:
        return PeerClient(secret.encode(), timeout_s=2.0, session=self.session())

    def metric(self, node: str, name: str, **labels: str) -> float:
        """A sample from the agent's /metrics (0 when absent, -1 when it does not answer)."""
        try:
            text = self.session().get(f"{self.url(node)}/metrics", timeout=2).text
        except requests.RequestException:
            return -1.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def node(self, node: str) -> dict[str, Any]:
        obj = self.cluster.get("nodes", node)
        assert obj is not None
        return obj

    def boot_id(self, node: str) -> str:
        return str(self.node(node)["status"]["nodeInfo"]["bootID"])

    def annotations(self, node: str) -> dict[str, str]:
        return dict(self.node(node)["metadata"].get("annotations") or {})

    def lease(self, node: str) -> dict[str, Any] | None:
        return self.cluster.get(
            "leases", names.agent_lease_name(node), names.DEFAULT_NAMESPACE, group="coordination.k8s.io"
        )

    def lease_renewed_at(self, node: str) -> float:
        lease = self.lease(node)
        assert lease is not None
        renewed = parse_rfc3339(lease["spec"]["renewTime"])
        assert renewed is not None
        return renewed

    def agent_log(self, node: str) -> str:
        return (self.cluster.workdir / "logs" / f"agent-{node}.log").read_text()

    def fired(self, node: str, since: float) -> Any:
        return self.cluster.timeline.first("watchdog-fired", node, since=since)

    # The published bound ---------------------------------------------------------------

    @property
    def watchdog_timeout_s(self) -> float:
        return self.settings.watchdog_timeout_s

    @property
    def isolation_detect_s(self) -> float:
        return self.settings.isolation_detect_s

    @property
    def reset_bound_s(self) -> float:
        """From the last Lease renewal (or the order stored in the API) to the reset."""
        return self.isolation_detect_s + self.watchdog_timeout_s

    # Acting as the remediator ------------------------------------------------------------

    def order(self, node: str, boot_id: str | None = None, action: Action = Action.FENCE,
              key: Ed25519PrivateKey | None = None, uid: str = "uid-1") -> str:
        order = new_order(node=node, remediation_uid=uid, action=action,
                          issued_at=self.cluster.clock(), ttl_s=600.0,
                          boot_id=self.boot_id(node) if boot_id is None else boot_id)
        return sign_order(order, key or self.key)

    def custom_objects(self) -> client.CustomObjectsApi:
        cfg = client.Configuration()
        config.load_kube_config(str(self.cluster.kubeconfig("admin")), client_configuration=cfg)
        return client.CustomObjectsApi(client.ApiClient(cfg))

    def create_remediation(self, node: str) -> None:
        body = {
            "apiVersion": names.API_VERSION, "kind": names.KIND, "metadata": {"name": node},
            "spec": {"nodeName": node, "strategy": "OutOfServiceTaint", "escalation": "None",
                     "trigger": {"source": "operator", "requestedBy": "integration-test",
                                 "reason": "test", "receivedAt": "2026-01-02T03:04:05Z"}},
        }
        self.custom_objects().create_cluster_custom_object(names.GROUP, names.VERSION, names.PLURAL, body)

    def store_order(self, node: str, token: str) -> None:
        """What the remediator does: status.fence.order on the node's NodeRemediation."""
        self.custom_objects().patch_cluster_custom_object_status(
            names.GROUP, names.VERSION, names.PLURAL, node,
            {"status": {"phase": "Fencing", "fence": {"order": token}}},
        )

    def remediation_status(self, node: str) -> dict[str, Any]:
        obj = self.custom_objects().get_cluster_custom_object(names.GROUP, names.VERSION, names.PLURAL, node)
        return dict(obj.get("status") or {})

    # Waiting -------------------------------------------------------------------------------

    def published(self, node: str) -> bool:
        """The agent armed its watchdog, knows its boot and published that."""
        ann = self.annotations(node)
        return (ann.get(names.ANN_SELF_FENCE_CAPABLE) == "true"
                and ann.get(names.ANN_AGENT_BOOT_ID) == self.boot_id(node)
                and self.lease(node) is not None)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Every agent published and knows every peer: the world the scenarios start from."""
        peers = len(self.cluster.nodes) - 1
        self.cluster.wait_for(lambda: all(self.published(n) for n in self.cluster.nodes), timeout,
                              message="every agent published on its node")
        self.cluster.wait_for(
            lambda: all(self.metric(n, "nodewarden_agent_known_peers") == peers for n in self.cluster.nodes),
            timeout, message=f"every agent knows its {peers} peers")

    def wait_back(self, node: str, old_boot_id: str, timeout: float = 20.0) -> str:
        """The node rebooted, its new agent knows the new boot and armed the watchdog."""
        self.cluster.wait_for(lambda: self.boot_id(node) != old_boot_id, timeout,
                              message=f"{node} back with a new bootID")
        new = self.boot_id(node)
        self.cluster.wait_for(lambda: self.published(node), timeout,
                              message=f"the agent of {node} published boot {new}")
        return new

    def assert_no_violations(self) -> None:
        report = self.cluster.invariants()
        assert report["violations"] == []
        assert report["checked"] > 0


def expected_annotations(ac: AgentCluster, node: str) -> dict[str, str]:
    return {
        names.ANN_SELF_FENCE_CAPABLE: "true",
        names.ANN_WATCHDOG_TIMEOUT_S: str(math.ceil(ac.watchdog_timeout_s)),
        names.ANN_ISOLATION_DETECT_S: f"{ac.isolation_detect_s:g}",
        names.ANN_AGENT_VERSION: __version__,
        names.ANN_PEER_ENDPOINT: ac.url(node),
        names.ANN_AGENT_BOOT_ID: ac.boot_id(node),
    }


def agent_settings(config_path: Path) -> AgentSettings:
    """The agents' settings as they read them (with a placeholder node name)."""
    return load_agent_settings(read_config_file(str(config_path)), {}, {"node_name": "any"})
