"""A fence that was not observed keeps paging until a person acknowledges it with kubectl."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

from core import names
from core.kube import load_kube
from harness.world import World, nodewarden_world

SCALE = 0.05
GAUGE = re.compile(r'^nodewarden_controller_fence_not_observed_unacknowledged\{node="([^"]+)"\} 1\.0$', re.M)


def kubectl(w: World, *args: str, identity: str = "admin") -> str:
    env = {**os.environ, "KUBECONFIG": str(w.cluster.kubeconfig(identity))}
    out = subprocess.run(["kubectl", "-n", "nodewarden", *args], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def unacknowledged(w: World) -> list[str] | None:
    (address,) = w.controller_metrics.values()
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as resp:
            return GAUGE.findall(resp.read().decode())
    except OSError:
        return None  # the controller is still starting


def test_fence_not_observed_stays_on_the_gauge_until_annotated(tmp_path: Path) -> None:
    with nodewarden_world(tmp_path, nodes=3, time_scale=SCALE, workloads=(), webhook=False) as w:
        c = w.cluster
        # the record of a remediation that ended Failed/FenceNotObserved (a dry run, so that
        # the controller never acts on it before its status is written)
        manifest = {"apiVersion": "nodewarden.io/v1alpha1", "kind": "NodeRemediation",
                    "metadata": {"name": "node-2", "namespace": "nodewarden"},
                    "spec": {"nodeName": "node-2", "dryRun": True, "strategy": "OutOfServiceTaint",
                             "escalation": "None",
                             "trigger": {"source": "operator", "receivedAt": "2026-12-03T00:00:00Z"}}}
        (tmp_path / "rem.json").write_text(json.dumps(manifest))
        # Written as nodewarden writes it: only its own accounts may create a remediation
        # without naming a requester, or write status (nodewarden-operator-writes).
        kubectl(w, "create", "-f", str(tmp_path / "rem.json"), identity="webhook")
        load_kube(str(c.kubeconfig("webhook"))).custom.patch_cluster_custom_object_status(
            names.GROUP, names.VERSION, names.PLURAL, "node-2",
            {"status": {"phase": "Failed", "reason": "FenceNotObserved"}})
        c.wait_for(lambda: unacknowledged(w) == ["node-2"], 20, message="the gauge for node-2")
        kubectl(w, "annotate", "noderemediation", "node-2", "nodewarden.io/acknowledged=jane: powered off, data checked")
        c.wait_for(lambda: unacknowledged(w) == [], 20, message="the gauge cleared by the acknowledgement")
