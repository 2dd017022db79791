"""The service account controller as pkg/controller/serviceaccount/serviceaccounts_controller.go
runs it: every Active namespace has a `default` ServiceAccount (the official client's e2e
tests wait for the one in `default` before they create pods), recreated when deleted."""

from __future__ import annotations

from collections.abc import Callable

from sim.world.cluster import Cluster


def test_every_namespace_gets_a_default_service_account_again_after_a_delete(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(nodes=1, time_scale=0.05)
    cluster.apply_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n")
    for namespace in ("default", "kube-system", "team-a"):
        assert cluster.wait_for(lambda ns=namespace: cluster.get("serviceaccounts", "default", ns),
                                timeout=10), f"no default ServiceAccount in {namespace}"
    first = cluster.get("serviceaccounts", "default", "team-a")
    assert first is not None
    cluster.registry.delete(cluster.rt("serviceaccounts"), "team-a", "default")
    again = cluster.wait_for(lambda: cluster.get("serviceaccounts", "default", "team-a"), timeout=10)
    assert again and again["metadata"]["uid"] != first["metadata"]["uid"]
