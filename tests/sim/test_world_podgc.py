"""Pod garbage collection as pkg/controller/podgc/gc_controller.go does it: orphans wait a
40 s quarantine and get DisruptionTarget/DeletionByPodGC; only non-terminal pods are
marked Failed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.world.cluster import Cluster

SCALE = 0.02


def orphan(name: str, phase: str | None = None) -> str:
    status = f"\nstatus: {{phase: {phase}}}" if phase else ""
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: ghost
  containers: [{{name: c, image: registry.k8s.io/pause:3.10}}]{status}
"""


def test_orphaned_pods_wait_the_quarantine_and_carry_the_pod_gc_condition(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=1, time_scale=SCALE)
    deleted: dict[str, dict[str, Any]] = {}
    cluster.registry.delete_hooks.append(
        lambda rt, obj: deleted.setdefault(obj["metadata"]["name"], obj) if rt.kind == "Pod" else None)
    t0 = cluster.clock()
    cluster.apply_manifest(orphan("lost"))
    cluster.apply_manifest(orphan("done"))

    def done_succeeded(obj: dict[str, Any]) -> None:
        obj.setdefault("status", {})["phase"] = "Succeeded"

    cluster.registry.mutate(cluster.rt("pods"), "default", "done", done_succeeded, subresource="status")
    gone = cluster.wait_for(lambda: cluster.timeline.first("pod-force-deleted", obj="default/lost", since=t0), 5,
                            message="orphan collected")
    # first seen at the next 20 s pass, confirmed at the first pass 40 s later
    assert 40.0 <= gone.at / SCALE - t0 / SCALE <= 40.0 + 2 * 20.0 + 3.0
    assert gone.detail == "orphaned: node no longer exists"
    cluster.wait_for(lambda: "done" in deleted and "lost" in deleted, 2, message="both deleted")
    lost = deleted["lost"]["status"]
    assert lost["phase"] == "Failed"
    assert {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists"}.items() <= next(
        c for c in lost["conditions"] if c["type"] == "DisruptionTarget").items()
    assert deleted["done"]["status"]["phase"] == "Succeeded"  # a terminal pod keeps its phase
