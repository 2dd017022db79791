"""The agent's process loads only what it uses: in a pod, neither the client's models and
kubeconfig loader nor `cryptography` (until the first order). A new import that brings
them back fails here, not in a benchmark months later."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core.fence_order import VERIFIER_SELF_TEST

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("kubernetes.dynamic", "kubernetes.watch", "kubernetes.stream", "kubernetes.leaderelection",
         "kubernetes.informer", "kubernetes_validate", "jsonschema", "kubernetes.client.api_client",
         "kubernetes.client.models", "pydantic", "oauthlib", "kubernetes.config.kube_config", "cryptography")
PROBE = """
import json, os, sys
from node_agent.lean import skip_kubernetes_package_init
first = skip_kubernetes_package_init()
again = skip_kubernetes_package_init()
import node_agent.cli
from node_agent.kube import KubeAgentApi, connect
os.environ.update(KUBERNETES_SERVICE_HOST="127.0.0.1", KUBERNETES_SERVICE_PORT="6443")
KubeAgentApi(connect(None, sys.argv[1]))
heavy = json.loads(sys.argv[2])
in_pod = sorted(m for m in heavy if m in sys.modules)
with_kubeconfig = None
if len(sys.argv) > 3:
    connect(sys.argv[3])
    with_kubeconfig = "kubernetes.config.kube_config" in sys.modules
print(json.dumps({"first": first, "again": again, "in_pod": in_pod, "with_kubeconfig": with_kubeconfig}))
"""


def _probe(tmp_path: Path, *extra: str) -> dict[str, object]:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("token")
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    out = subprocess.run([sys.executable, "-c", PROBE, str(account), json.dumps(HEAVY), *extra], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_in_a_pod_the_agent_loads_neither_models_nor_kubeconfig_loader_nor_cryptography(tmp_path: Path) -> None:
    assert _probe(tmp_path) == {"first": True, "again": False, "in_pod": [], "with_kubeconfig": None}


def test_a_kubeconfig_still_loads_with_the_full_loader(tmp_path: Path, admin_kubeconfig: Path) -> None:
    result = _probe(tmp_path, str(admin_kubeconfig))
    assert result["with_kubeconfig"] is True


def test_the_verifier_self_test_passes_and_can_fail() -> None:
    ok = subprocess.run([sys.executable, "-c", VERIFIER_SELF_TEST], capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    tampered = VERIFIER_SELF_TEST.replace("b'')", "b'x')")
    assert tampered != VERIFIER_SELF_TEST
    bad = subprocess.run([sys.executable, "-c", tampered], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "InvalidSignature" in bad.stderr
