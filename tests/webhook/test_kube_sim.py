"""The real `webhook.kube` over HTTPS against the simulated API server, with the CRD
from helm/nodewarden/crds applied: the status subresource, preconditions, pruning,
list + watch, Events — and the whole app deciding against it."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from core import names
from core.clock import RealClock, rfc3339
from core.kube import AlreadyExists, Conflict, NotFound, WatchExpired, load_kube
from tests.conftest import start_api_server
from tests.webhook.conftest import AM_TOKEN, OPERATOR_TOKEN, alert, message
from webhook.app import create_app
from webhook.kube import RealWebhookKube, Resource
from webhook.policy import parse_policy
from webhook.settings import WebhookSettings

CRD_PATH = (
    Path(__file__).resolve().parents[2] / "helm" / "nodewarden" / "crds" / "noderemediations.yaml"
)


@pytest.fixture(scope="module")
def admin(admin_kubeconfig: Path) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(admin_kubeconfig), client_configuration=cfg)
    api = client.ApiClient(cfg)
    crd = yaml.safe_load(CRD_PATH.read_text())
    client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
    try:  # the release namespace, as the chart's install has it (the ledger lives there)
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "nodewarden"}})
    except client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
    yield api
    api.close()


def test_the_ledger_is_created_once_and_replaced_only_at_its_resource_version(
    kube: RealWebhookKube,
) -> None:
    from core.kube import AlreadyExists, Conflict, NotFound

    with pytest.raises(NotFound):
        kube.get_ledger()
    created = kube.create_ledger({"starts": "[]"})
    with pytest.raises(AlreadyExists):
        kube.create_ledger({"starts": "[]"})
    rv = created["metadata"]["resourceVersion"]
    replaced = kube.replace_ledger({"starts": '[["node-1", 1.0]]'}, rv)
    with pytest.raises(Conflict):  # a writer that read before the first replace loses
        kube.replace_ledger({"starts": '[["node-2", 2.0]]'}, rv)
    assert kube.get_ledger()["data"] == replaced["data"] == {"starts": '[["node-1", 1.0]]'}


@pytest.fixture(scope="module")
def kube(admin: client.ApiClient, api_server: Any) -> Iterator[RealWebhookKube]:
    k = load_kube(str(api_server.workdir / "webhook.kubeconfig"), request_timeout_s=5.0)
    yield RealWebhookKube(k, "nodewarden", "nodewarden-control")
    k.close()


def body(node: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {"name": node},
        "spec": {
            "nodeName": node,
            "trigger": {
                "source": "operator",
                "receivedAt": rfc3339(time.time()),
                "requestedBy": "t",
            },
            "strategy": "OutOfServiceTaint",
            "escalation": "None",
            **spec,
        },
        "status": {"phase": "Succeeded"},
    }


FULL_STATUS: dict[str, Any] = {
    "phase": "Recovering",
    "reason": "Fenced",
    "message": "proven fenced",
    "phaseSince": "2024-01-01T00:01:00Z",
    "history": [
        {"phase": "Pending", "reason": "Accepted", "message": "m", "at": "2024-01-01T00:00:00Z"}
    ],
    "alerts": [
        {
            "alertName": "NodeNotReady",
            "fingerprint": "abc",
            "status": "firing",
            "startsAt": "2024-01-01T00:00:00Z",
            "receivedAt": "2024-01-01T00:00:01Z",
            "count": 3,
        }
    ],
    "approval": {"approvedBy": "alice", "approvedAt": "2024-01-01T00:00:02Z"},
    "cancellation": {"requestedBy": "bob", "reason": "r", "at": "2024-01-01T00:00:03Z"},
    "fence": {
        "order": "nwf1.x.y",
        "action": "fence",
        "issuedAt": "2024-01-01T00:00:04Z",
        "expiresAt": "2024-01-01T00:05:04Z",
        "bootId": "b1",
        "deliveredVia": ["direct", "peer:node-2"],
        "acknowledgement": {
            "at": "2024-01-01T00:00:05Z",
            "via": "direct",
            "lastFeedAt": "2024-01-01T00:00:05Z",
            "watchdogTimeoutSeconds": 30,
        },
        "evidence": {
            "rule": "WatchdogExpired",
            "inputs": {"watchdogTimeoutSeconds": 30, "nested": {"a": [1, 2]}},
            "deadline": "2024-01-01T00:01:05Z",
            "satisfiedAt": "2024-01-01T00:01:06Z",
        },
    },
    "recovery": {
        "strategy": "OutOfServiceTaint",
        "taintAppliedAt": "2024-01-01T00:01:07Z",
        "podsDeleted": 2,
        "volumeAttachmentsDeleted": 1,
        "taintRemovedAt": "2024-01-01T00:09:00Z",
    },
    "agentReport": {
        "fenceStartedAt": "2024-01-01T00:00:05Z",
        "lastFeedAt": "2024-01-01T00:00:05Z",
        "watchdogTimeoutSeconds": 30,
        "bootId": "b1",
    },
    "conditions": [
        {
            "type": "Fenced",
            "status": "True",
            "reason": "WatchdogExpired",
            "message": "m",
            "lastTransitionTime": "2024-01-01T00:01:06Z",
            "observedGeneration": 1,
        }
    ],
}


def test_create_ignores_status_and_a_second_create_is_already_exists(kube: RealWebhookKube) -> None:
    created = kube.create_remediation(body("node-1"))
    assert created["metadata"]["uid"]
    assert "phase" not in (created.get("status") or {})
    with pytest.raises(AlreadyExists):
        kube.create_remediation(body("node-1"))
    kube.delete_remediation(
        "node-1", created["metadata"]["uid"], created["metadata"]["resourceVersion"]
    )


def test_status_round_trip_keeps_every_documented_field(kube: RealWebhookKube) -> None:
    created = kube.create_remediation(
        body("node-2", dryRun=True, approvalRequired=False, policyGroup="default")
    )
    patched = kube.patch_remediation_status(
        "node-2", FULL_STATUS, created["metadata"]["resourceVersion"]
    )
    stored = kube.get_remediation("node-2")
    assert stored["status"] == FULL_STATUS  # nothing pruned
    assert stored["spec"]["policyGroup"] == "default"
    assert patched["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    # the status write changed nothing else, and a stale precondition is a 409
    with pytest.raises(Conflict):
        kube.patch_remediation_status(
            "node-2", {"phase": "Cancelled"}, created["metadata"]["resourceVersion"]
        )
    with pytest.raises(Conflict):
        kube.delete_remediation(
            "node-2", stored["metadata"]["uid"], created["metadata"]["resourceVersion"]
        )
    kube.delete_remediation(
        "node-2", stored["metadata"]["uid"], stored["metadata"]["resourceVersion"]
    )
    with pytest.raises(NotFound):
        kube.get_remediation("node-2")


def test_list_watch_and_410(kube: RealWebhookKube, api_server: Any) -> None:
    nodes = kube.list(Resource.NODES)
    assert {n["metadata"]["name"] for n in nodes.items} >= {"node-1", "node-2", "node-3"}
    pause = kube.list(Resource.PAUSE)
    assert pause.items == []
    rems = kube.list(Resource.REMEDIATIONS)
    created = kube.create_remediation(body("node-3"))
    events = []
    for event in kube.watch(Resource.REMEDIATIONS, rems.resource_version, 2):
        events.append(event)
        break
    assert events[0].type == "ADDED"
    assert events[0].object["metadata"]["uid"] == created["metadata"]["uid"]
    kube.delete_remediation(
        "node-3", created["metadata"]["uid"], created["metadata"]["resourceVersion"]
    )


def test_watch_from_a_compacted_version_is_watch_expired(tmp_path: Path) -> None:
    server = start_api_server(tmp_path, nodes=1, watch_history=5)
    try:
        k = load_kube(str(tmp_path / "webhook.kubeconfig"))
        small = RealWebhookKube(k, "nodewarden", "nodewarden-control")
        old = small.list(Resource.NODES).resource_version
        admin = load_kube(str(tmp_path / "admin.kubeconfig"))
        for i in range(10):
            admin.core.patch_node("node-1", {"metadata": {"labels": {"i": str(i)}}})
        with pytest.raises(WatchExpired):
            for _ in small.watch(Resource.NODES, old, 2):
                pass
        k.close()
        admin.close()
    finally:
        server.stop()


def test_ping_and_events(kube: RealWebhookKube) -> None:
    kube.ping()
    kube.create_event(
        "default",
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "node-1.test"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "reportingController": names.WEBHOOK_COMPONENT,
            "reportingInstance": "t",
            "action": "Remediate",
            "reason": "Accepted",
            "regarding": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
            "note": "x",
            "type": "Normal",
        },
    )


def test_the_app_against_the_simulated_api(
    kube: RealWebhookKube, admin: client.ApiClient, tmp_path: Path
) -> None:
    core = client.CoreV1Api(admin)
    (tmp_path / "am").write_text(AM_TOKEN)
    (tmp_path / "op").write_text(OPERATOR_TOKEN)
    settings = WebhookSettings(
        alertmanager_token_file=str(tmp_path / "am"),
        operator_token_file=str(tmp_path / "op"),
        watch_timeout_s=5,
        cache_sync_wait_s=5,
    )
    app = create_app(
        settings, kube, RealClock(), policy=parse_policy({"stormProtection": {"maxUnhealthy": 1}})
    )
    svc = app.extensions["nodewarden"]
    try:
        assert svc.cache.wait_synced(5)
        node = core.read_node("node-1")
        ready = next(c for c in node.status.conditions if c.type == "Ready")
        core.patch_node_status(
            "node-1",
            {
                "status": {
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "Unknown",
                            "reason": "NodeStatusUnknown",
                            "lastHeartbeatTime": ready.last_heartbeat_time.isoformat(),
                            "lastTransitionTime": ready.last_transition_time.isoformat(),
                        }
                    ]
                }
            },
        )
        deadline = time.monotonic() + 5
        while svc.cache.facts("node-1")[0].ready != "Unknown" and time.monotonic() < deadline:
            time.sleep(0.01)

        am = {"Authorization": f"Bearer {AM_TOKEN}"}
        first = app.test_client().post("/api/v1/alerts", json=message(alert("node-1")), headers=am)
        again = app.test_client().post("/api/v1/alerts", json=message(alert("node-1")), headers=am)
        assert first.status_code == 200, first.get_json()
        assert first.get_json()["alerts"][0]["outcome"] == "accepted"
        assert again.get_json()["alerts"][0]["outcome"] == "duplicate"
        stored = kube.get_remediation("node-1")
        assert stored["status"]["phase"] == "Pending"
        assert stored["spec"]["trigger"]["alertName"] == "NodeNotReady"

        resolved = app.test_client().post(
            "/api/v1/alerts", json=message(alert("node-1", status="resolved")), headers=am
        )
        assert resolved.get_json()["alerts"][0]["outcome"] == "cancelled"
        assert kube.get_remediation("node-1")["status"]["phase"] == "Cancelled"

        listing = app.test_client().get(
            "/api/v1/remediations", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        )
        assert [i["phase"] for i in listing.get_json()["items"]] == ["Cancelled"]
        assert app.test_client().get("/readyz").status_code == 200
        assert svc.recorder.drain()
        events = client.EventsV1Api(admin).list_namespaced_event("default")
        reasons = {
            e.reason for e in events.items if e.reporting_controller == names.WEBHOOK_COMPONENT
        }
        assert {"Accepted", "AlertResolved"} <= reasons
    finally:
        svc.stop()


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is required")
def test_kubectl_shows_the_printer_columns(
    kube: RealWebhookKube, api_server: Any, tmp_path: Path
) -> None:
    created = kube.create_remediation(body("node-2", dryRun=False))
    kube.patch_remediation_status("node-2", FULL_STATUS, created["metadata"]["resourceVersion"])
    try:
        out = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                str(api_server.workdir / "admin.kubeconfig"),
                "--cache-dir",
                str(tmp_path),
                "get",
                "nrem",
                "node-2",
                "-o",
                "wide",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.splitlines()
        assert out[0].split() == [
            "NAME",
            "PHASE",
            "STRATEGY",
            "EVIDENCE",
            "AGE",
            "REASON",
            "DRYRUN",
        ]
        row = out[1].split()
        assert row[:4] == ["node-2", "Recovering", "OutOfServiceTaint", "WatchdogExpired"]
        assert row[-2:] == ["Fenced", "false"]
    finally:
        stored = kube.get_remediation("node-2")
        kube.delete_remediation(
            "node-2", stored["metadata"]["uid"], stored["metadata"]["resourceVersion"]
        )
