"""The agent's process loads only the parts of the kubernetes client it uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
from node_agent.lean import skip_kubernetes_package_init
first = skip_kubernetes_package_init()
again = skip_kubernetes_package_init()
import node_agent.cli
from kubernetes.client import ApiClient, Configuration
from kubernetes import config
print(json.dumps({"first": first, "again": again,
                  "loaded": sorted(m for m in ("kubernetes.dynamic", "kubernetes.watch", "kubernetes.stream",
                                               "kubernetes.leaderelection", "kubernetes.informer",
                                               "kubernetes_validate", "jsonschema") if m in sys.modules),
                  "config": hasattr(config, "load_kube_config")}))
"""


def test_the_kubernetes_package_init_is_skipped_and_the_client_still_imports() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"first": True, "again": False, "loaded": [], "config": True}
