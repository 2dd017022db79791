"""The Helm chart rendered with the real Helm engine (helm-python-sdk), for the packaging tests.

    docs = render({"webhook": {"tls": {"enabled": True}}})   # every manifest, parsed
    find(docs, "Deployment", "nodewarden-webhook")

Renders are cached per value set (Helm's engine is deterministic except for generated
secrets, which no test compares across renders). `VALUE_SETS` are the configurations every
structural test runs under.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import helm_python
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.fence_order import private_key_pem

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "nodewarden"
RELEASE = "nodewarden"
NAMESPACE = "nodewarden"
KUBE_VERSIONS = ("1.28", "1.29", "1.30", "1.31", "1.32")
PROMETHEUS_OPERATOR_GROUP = "monitoring.coreos.com"

# A fixed Ed25519 key (the seed of RFC 8032's first test vector).
FIXED_KEY = Ed25519PrivateKey.from_private_bytes(
    bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
FIXED_KEY_PEM = private_key_pem(FIXED_KEY).decode()
KEYS_PROVIDED = {
    "auth": {
        "alertmanager": {"token": "alertmanager-token-0123456789abcdef"},
        "operators": {"tokens": [{"name": "alice", "token": "alice-token-0123456789abcdef"},
                                 {"name": "bob", "token": "bob-token-0123456789abcdef0"}]},
    },
    "peerSecret": {"value": "peer-secret-0123456789abcdef0123456789"},
    "fenceOrderKeys": {"privateKey": FIXED_KEY_PEM},
}
EXISTING_SECRETS = {
    "auth": {"alertmanager": {"existingSecret": "am-token"}, "operators": {"existingSecret": "op-tokens"}},
    "peerSecret": {"existingSecret": "peer"},
    "fenceOrderKeys": {"existingSecret": "signing", "existingPublicKeySecret": "verify"},
    "webhook": {"tls": {"enabled": True, "existingSecret": "webhook-tls"}},
}
OPERATOR_ON = {"monitoring": {"prometheusOperator": {"enabled": True}}}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "keys-provided": KEYS_PROVIDED,
    "existing-secrets": EXISTING_SECRETS,
    "tls": {"webhook": {"tls": {"enabled": True}}, **OPERATOR_ON},
    "monitoring-disabled": {"monitoring": {"enabled": False}},
    "prometheus-operator-on": {
        "monitoring": {"prometheusOperator": {"enabled": True},
                       "rules": {"extraLabels": {"team": "platform"}, "runbookBaseURL": "https://runbooks.example/nodewarden"}}},
    "prometheus-operator-off": {"monitoring": {"prometheusOperator": {"enabled": False}}},
    "network-policies": {
        "networkPolicy": {
            "enabled": True,
            "webhookClients": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "alertmanager"}}}],
            "metricsScrapers": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "agentPeerSources": [{"ipBlock": {"cidr": "10.0.0.0/16"}}],
        }},
    "everything-on": {
        **OPERATOR_ON,
        "webhook": {"tls": {"enabled": True}, "settings": {"max_body_bytes": 2097152, "watch_timeout_s": "10m"}},
        "controller": {"settings": {"fence_agent_command": "fence_ipmilan --ip {node}-bmc --action off",
                                    "safety_margin_s": 15}},
        "agent": {"rebootFallback": {"enabled": True}, "kubeletRestart": {"enabled": True},
                  "config": {"watchdog_timeout_s": "30s", "api_check_interval_s": 10}},
        "policy": (ROOT / "rules" / "remediation.yaml").read_text().replace(
            "names: [NodeNotReady, NodeLeaseStale, KubeNodeNotReady, KubeNodeUnreachable]",
            "names: [NodeNotReady, NodeLeaseStale]").replace(
            "strategy: OutOfServiceTaint   #", "strategy: ResourceDeletion   #"),
    },
}
VALUE_SETS["everything-on"]["monitoring"] = {"prometheusOperator": {"enabled": True}, "rules": {"nodeLeaseStale": True}}


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(str(CHART))


@functools.cache
def _render(values_json: str) -> dict[str, str]:
    return chart().render(json.loads(values_json), name=RELEASE, namespace=NAMESPACE, is_install=True)


def render_files(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included)."""
    return _render(json.dumps(values or {}, sort_keys=True))


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every manifest the chart renders with `values` (CRDs not included), parsed."""
    docs: list[dict[str, Any]] = []
    for path, text in sorted(render_files(values).items()):
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return copy.deepcopy(docs)


def crds() -> list[dict[str, Any]]:
    return [d for f in sorted((CHART / "crds").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def container(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one container called `name` among every workload of `kind`."""
    (found,) = [c for d in docs if d["kind"] == kind
                for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return dict(found)
