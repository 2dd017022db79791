"""Operators with their own Kubernetes credentials, against the simulated API server with
the chart's RBAC enforced: the webhook asks the API server who the token belongs to
(TokenReview) and whether that user may do the action (SubjectAccessReview).

People: alice and dave hold the chart's operator ClusterRole; bob holds nothing; erin
holds a role that may ask for remediations but not approve them. Each token is read
from the person's kubeconfig, as a user's tool would send it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from kubernetes import client, config

from core.clock import RealClock
from core.kube import load_kube
from harness.chart import apply_security, operator_user
from harness.world import policy as remediation_policy
from sim.apiserver.auth import Identity as SimIdentity
from sim.apiserver.http import OpenGate
from sim.apiserver.reviews import API_AUDIENCES
from sim.apiserver.server import WEBHOOK, ApiServer
from tests.conftest import start_api_server
from tests.webhook.conftest import AM_TOKEN, alert, message
from webhook.app import create_app
from webhook.kube import RealWebhookKube
from webhook.policy import parse_policy
from webhook.reviews import RealReviewApi, ReviewedUser, Reviewer
from webhook.services import Services
from webhook.settings import WebhookSettings

CRD = Path(__file__).resolve().parents[2] / "helm" / "nodewarden" / "crds" / "noderemediations.yaml"
BASE = "/api/v1/remediations"
NOT_READY = ("node-1", "node-2", "node-3")


@dataclass
class Sim:
    api: ApiServer
    admin: client.ApiClient
    app: Flask
    svc: Services
    tokens: dict[str, str]

    def call(self, who: str, method: str, path: str, body: Any = None) -> Any:
        c: FlaskClient = self.app.test_client()
        return c.open(path, method=method, json=body,
                      headers={"Authorization": f"Bearer {self.tokens.get(who, who)}"})

    def reviews(self, plural: str) -> int:
        return len(self.api.audit.query(user=WEBHOOK, verb="create", resource=plural))

    def sample(self, name: str, **labels: str) -> float:
        return self.svc.metrics.registry.get_sample_value(name, labels) or 0.0


class WebhookOutage:
    """The API server stops answering the webhook's account (everyone else is served)."""

    def __init__(self, verdict: str) -> None:
        self.verdict = verdict

    def api_verdict(self, identity: SimIdentity | None) -> str | None:
        return self.verdict if identity is not None and identity.name == WEBHOOK else None

    def hold_seconds(self) -> float:
        return 0.0


def _token(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"])


def _not_ready(core: client.CoreV1Api, node: str) -> None:
    ready = next(c for c in core.read_node(node).status.conditions if c.type == "Ready")
    core.patch_node_status(node, {"status": {"conditions": [{
        "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
        "lastHeartbeatTime": ready.last_heartbeat_time.isoformat(),
        "lastTransitionTime": ready.last_transition_time.isoformat()}]}})


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    tmp = tmp_path_factory.mktemp("operator-identity")
    api = start_api_server(tmp, nodes=5)
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(tmp / "admin.kubeconfig"), client_configuration=cfg)
    admin = client.ApiClient(cfg)
    client.ApiextensionsV1Api(admin).create_custom_resource_definition(yaml.safe_load(CRD.read_text()))
    client.CoreV1Api(admin).create_namespace({"metadata": {"name": "nodewarden"}})
    apply_security(api)  # the chart's RBAC, enforced from here on
    for name in ("alice", "dave"):
        operator_user(api, name)
    operator_user(api, "bob", cluster_role=None)
    requester = api.resource("clusterroles", "rbac.authorization.k8s.io")
    api.registry.create(requester, "", {"metadata": {"name": "remediation-requester"}, "rules": [
        {"apiGroups": ["nodewarden.io"], "resources": ["noderemediations"], "verbs": ["create", "get"]}]})
    operator_user(api, "erin", cluster_role="remediation-requester")
    tokens = {}
    for name in ("alice", "dave", "bob", "erin"):
        tokens[name] = _token(api.write_kubeconfig(tmp / f"{name}.kubeconfig", name))
    for node in NOT_READY:
        _not_ready(client.CoreV1Api(admin), node)
    (tmp / "am").write_text(AM_TOKEN)
    settings = WebhookSettings(
        alertmanager_token_file=str(tmp / "am"), operator_auth="kubernetes",
        watch_timeout_s=5, cache_sync_wait_s=5, kube_request_timeout_s=1.0,
    )
    kube = RealWebhookKube(load_kube(str(tmp / "webhook.kubeconfig"), 1.0), "nodewarden", "nodewarden-control")
    doc = remediation_policy()
    doc["defaults"]["approvalRequired"] = True  # asking and approving are two steps here
    app = create_app(settings, kube, RealClock(), policy=parse_policy(doc))
    svc: Services = app.extensions["nodewarden"]
    assert svc.cache.wait_synced(10)
    deadline = time.monotonic() + 10
    while any(svc.cache.facts(n)[0].ready != "Unknown" for n in NOT_READY) and time.monotonic() < deadline:
        time.sleep(0.02)
    yield Sim(api, admin, app, svc, tokens)
    svc.stop()
    kube.kube.close()
    admin.close()
    api.stop()


def test_an_operator_with_the_role_acts_and_is_recorded_by_username(sim: Sim) -> None:
    asked = sim.call("alice", "POST", BASE, {"node": "node-1", "reason": "disk controller hung"})
    assert asked.status_code == 201, asked.get_json()
    stored = sim.svc.kube.get_remediation("node-1")
    assert stored["spec"]["trigger"]["requestedBy"] == "alice"
    assert stored["status"]["phase"] == "AwaitingApproval"

    approved = sim.call("dave", "POST", f"{BASE}/node-1/approve")
    assert approved.status_code == 200, approved.get_json()
    stored = sim.svc.kube.get_remediation("node-1")
    assert stored["status"]["approval"]["approvedBy"] == "dave"

    events = client.EventsV1Api(sim.admin)
    deadline = time.monotonic() + 10
    notes: list[str] = []
    while time.monotonic() < deadline and not {"[operator alice]", "[operator dave]"} <= {
        n[n.rfind("["):] for n in notes
    }:
        time.sleep(0.05)
        notes = [e.note or "" for e in events.list_namespaced_event("default").items
                 if e.regarding and e.regarding.name == "node-1"]
    assert any(n.endswith("[operator alice]") for n in notes), notes
    assert any(n.endswith("[operator dave]") for n in notes), notes
    # The API server was asked, by the webhook's own account.
    assert sim.reviews("tokenreviews.authentication.k8s.io") >= 2
    assert sim.reviews("subjectaccessreviews.authorization.k8s.io") >= 2


def test_a_user_without_the_role_gets_403_naming_the_missing_permission(sim: Sim) -> None:
    refused = sim.call("bob", "POST", BASE, {"node": "node-2", "reason": "mine"})
    assert refused.status_code == 403
    body = refused.get_json()
    assert body["missing"] == {"verb": "create", "group": "nodewarden.io",
                               "resource": "noderemediations", "name": "node-2"}
    assert 'User "bob" cannot create resource "noderemediations" in API group "nodewarden.io"' in (
        body["description"])
    assert sim.svc.cache.remediation("node-2") is None
    for method, path, verb in (("GET", BASE, "list"), ("GET", f"{BASE}/node-1", "get"),
                               ("POST", f"{BASE}/node-1/approve", "approve"),
                               ("POST", f"{BASE}/node-1/cancel", "cancel")):
        answer = sim.call("bob", method, path)
        assert answer.status_code == 403, (path, answer.get_json())
        assert answer.get_json()["missing"]["verb"] == verb


def test_asking_is_not_approving(sim: Sim) -> None:
    """erin may ask for a remediation but not approve one: the verbs are separate."""
    asked = sim.call("erin", "POST", BASE, {"node": "node-2", "reason": "erin asks"})
    assert asked.status_code == 201, asked.get_json()
    assert sim.svc.kube.get_remediation("node-2")["spec"]["trigger"]["requestedBy"] == "erin"
    refused = sim.call("erin", "POST", f"{BASE}/node-2/approve")
    assert refused.status_code == 403
    assert refused.get_json()["missing"] == {"verb": "approve", "group": "nodewarden.io",
                                             "resource": "noderemediations", "name": "node-2"}
    stored = sim.svc.kube.get_remediation("node-2")
    assert stored["status"]["phase"] == "AwaitingApproval" and "approval" not in stored["status"]


def test_unknown_tokens_get_401_and_alertmanagers_credential_is_never_reviewed(sim: Sim) -> None:
    before = sim.reviews("tokenreviews.authentication.k8s.io")
    unknown = sim.call("not-a-token-anyone-issued", "GET", BASE)
    assert unknown.status_code == 401
    assert "does not accept this token" in unknown.get_json()["description"]
    assert sim.reviews("tokenreviews.authentication.k8s.io") == before + 1

    am = sim.app.test_client().get(BASE, headers={"Authorization": f"Bearer {AM_TOKEN}"})
    assert am.status_code == 403  # Alertmanager's token: the other role, compared locally
    alerts = sim.app.test_client().post("/api/v1/alerts", json=message(alert("node-5")),
                                        headers={"Authorization": f"Bearer {sim.tokens['alice']}"})
    assert alerts.status_code == 401  # a person's token is no Alertmanager credential
    assert sim.reviews("tokenreviews.authentication.k8s.io") == before + 1


def test_repeated_calls_reuse_the_reviews(sim: Sim) -> None:
    assert sim.call("alice", "GET", BASE).status_code == 200
    tokens, access = (sim.reviews("tokenreviews.authentication.k8s.io"),
                      sim.reviews("subjectaccessreviews.authorization.k8s.io"))
    for _ in range(30):
        assert sim.call("alice", "GET", BASE).status_code == 200
    assert sim.reviews("tokenreviews.authentication.k8s.io") == tokens
    assert sim.reviews("subjectaccessreviews.authorization.k8s.io") == access
    assert sim.sample("nodewarden_webhook_auth_review_duration_seconds_count", review="token") >= 1


@pytest.mark.parametrize("verdict", ["unavailable", "drop"])
def test_an_api_outage_answers_503_and_nothing_is_done(sim: Sim, verdict: str) -> None:
    """During the outage nobody is let through: not a token never seen (dave's first
    request for node-3), not a cached identity asking for something new (alice, node-3)."""
    failures = sim.sample("nodewarden_webhook_auth_review_failures_total", review="access", reason="unavailable")
    fresh = operator_user(sim.api, f"frank-{verdict}")
    sim.api.set_gate(WebhookOutage(verdict))
    try:
        for token in (fresh, sim.tokens["alice"]):
            answer = sim.call(token, "POST", BASE, {"node": "node-3", "reason": "outage"})
            assert answer.status_code == 503, answer.get_json()
            assert answer.get_json()["reason"] == "ReviewUnavailable"
            assert answer.headers["Retry-After"]
    finally:
        sim.api.set_gate(OpenGate())
    assert sim.svc.cache.remediation("node-3") is None
    assert sim.sample("nodewarden_webhook_auth_review_failures_total", review="access",
                      reason="unavailable") >= failures + 1
    assert sim.sample("nodewarden_webhook_auth_review_failures_total", review="token", reason="unavailable") >= 1


def test_a_token_is_accepted_only_for_the_configured_audiences(sim: Sim) -> None:
    """The simulator's tokens, like kubectl's static and legacy tokens, are valid for the
    API server's own audience only: a webhook that asks for `nodewarden` refuses them."""
    api = RealReviewApi(sim.svc.kube.kube)  # type: ignore[attr-defined]
    ours = Reviewer(api, RealClock(), audiences=("nodewarden",))
    assert ours.authenticate(sim.tokens["alice"]) is None
    the_servers = Reviewer(api, RealClock(), audiences=(*API_AUDIENCES, "nodewarden"))
    assert the_servers.authenticate(sim.tokens["alice"]) == ReviewedUser("alice", groups=("system:authenticated",))


def test_a_username_too_long_to_record_is_refused_not_cut(sim: Sim) -> None:
    long_name = "oidc:https://login.example.com/" + "x" * 240
    token = operator_user(sim.api, long_name)
    answer = sim.call(token, "POST", BASE, {"node": "node-3", "reason": "who am I"})
    assert answer.status_code == 403 and answer.get_json()["reason"] == "UsernameTooLong"
    assert sim.svc.cache.remediation("node-3") is None
