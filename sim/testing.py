"""What tests, the demo and benchmarks use to build worlds in one line.

    from sim.testing import SimCluster
    with SimCluster(nodes=5, time_scale=0.05, workloads=["db=statefulset:3"]) as cluster:
        cluster.kubeconfig("admin"); cluster.kubeconfig("webhook"); cluster.kubeconfig("agent:node-1")
        cluster.apply_file("helm/nodewarden/crds/noderemediations.yaml")
        cluster.fault("partition", "node-2", from_="api")
        cluster.invariants()  # {"checked": N, "violations": [...]}
"""

from __future__ import annotations

from .cluster import Cluster
from .timings import Timings

SimCluster = Cluster

__all__ = ["SimCluster", "Timings"]
