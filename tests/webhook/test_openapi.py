"""The checked-in OpenAPI document matches the app's routes and what they answer."""

from __future__ import annotations

from tests.webhook.conftest import AM_TOKEN, OPERATOR_TOKEN, WorldFactory, alert, message
from tests.webhook.spec import check_response, document, flask_path

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def test_every_route_is_documented_and_every_documented_path_is_served(world: WorldFactory) -> None:
    w = world()
    served = {
        (rule.rule, method)
        for rule in w.app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in (rule.methods or set()) - IGNORED_METHODS
    }
    documented = {
        (flask_path(path), method.upper())
        for path, ops in document()["paths"].items()
        for method in ops
    }
    assert served == documented


def test_served_document_is_the_checked_in_one(world: WorldFactory) -> None:
    w = world()
    assert w.client.get("/openapi.json").get_json() == document()


def test_operation_ids_and_security(world: WorldFactory) -> None:
    ids = [op["operationId"] for ops in document()["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for path, ops in document()["paths"].items():
        for op in ops.values():
            secured = path.startswith("/api/")
            assert bool(op.get("security")) == secured, path


def test_answers_match_the_documented_schemas(world: WorldFactory) -> None:
    w = world({"defaults": {"approvalRequired": True}})
    am = {"Authorization": f"Bearer {AM_TOKEN}"}
    op = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    w.kube.set_ready("node-1", "Unknown")
    w.kube.set_ready("node-2", "Unknown")
    w.settle()
    c = w.client
    calls = [
        (
            "/api/v1/alerts",
            "POST",
            c.post("/api/v1/alerts", json=message(alert("node-1"), alert(None)), headers=am),
        ),
        ("/api/v1/alerts", "POST", c.post("/api/v1/alerts", json={"version": "3"}, headers=am)),
        ("/api/v1/alerts", "POST", c.post("/api/v1/alerts", json=message(), headers={})),
        ("/api/v1/alerts", "POST", c.post("/api/v1/alerts", data="x", headers=am)),
        (
            "/api/v1/remediations",
            "POST",
            c.post("/api/v1/remediations", json={"node": "node-2"}, headers=op),
        ),
        (
            "/api/v1/remediations",
            "POST",
            c.post("/api/v1/remediations", json={"node": "node-2"}, headers=op),
        ),
        (
            "/api/v1/remediations",
            "POST",
            c.post("/api/v1/remediations", json={"node": "node-3"}, headers=op),
        ),
        ("/api/v1/remediations", "POST", c.post("/api/v1/remediations", json={}, headers=op)),
        ("/api/v1/remediations", "GET", c.get("/api/v1/remediations", headers=op)),
        ("/api/v1/remediations", "GET", c.get("/api/v1/remediations", headers=am)),
        ("/api/v1/remediations/<node>", "GET", c.get("/api/v1/remediations/node-1", headers=op)),
        ("/api/v1/remediations/<node>", "GET", c.get("/api/v1/remediations/node-9", headers=op)),
        (
            "/api/v1/remediations/<node>/approve",
            "POST",
            c.post("/api/v1/remediations/node-1/approve", headers=op),
        ),
        (
            "/api/v1/remediations/<node>/approve",
            "POST",
            c.post("/api/v1/remediations/node-9/approve", headers=op),
        ),
        (
            "/api/v1/remediations/<node>/cancel",
            "POST",
            c.post("/api/v1/remediations/node-2/cancel", json={"reason": "x"}, headers=op),
        ),
        (
            "/api/v1/remediations/<node>/cancel",
            "POST",
            c.post("/api/v1/remediations/node-2/cancel", headers=op),
        ),
        ("/healthz", "GET", c.get("/healthz")),
        ("/readyz", "GET", c.get("/readyz")),
        ("/metrics", "GET", c.get("/metrics")),
        ("/openapi.json", "GET", c.get("/openapi.json")),
    ]
    codes = set()
    for rule, method, response in calls:
        codes.add(response.status_code)
        check_response(rule, method, response.status_code, response.get_json(silent=True))
    assert {200, 201, 400, 401, 403, 404, 409, 415} <= codes


def test_the_phase_query_is_refused_outside_its_enum(world: WorldFactory) -> None:
    w = world()
    op = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    enum = document()["paths"]["/api/v1/remediations"]["get"]["parameters"][0]["schema"]["enum"]
    for phase in enum:
        assert w.client.get(f"/api/v1/remediations?phase={phase}", headers=op).status_code == 200
    for bad in ("AAA", "pending", "Pending\n", ""):
        r = w.client.get("/api/v1/remediations", query_string={"phase": bad}, headers=op)
        assert r.status_code == 400 and r.get_json()["field"] == "phase", bad


def test_an_empty_node_is_refused_as_the_schema_says(world: WorldFactory) -> None:
    schema = document()["components"]["schemas"]["RemediationRequest"]["properties"]["node"]
    assert schema["minLength"] == 1
    w = world()
    r = w.op("POST", "/api/v1/remediations", {"node": ""})
    assert r.status_code == 400 and r.get_json()["field"] == "node"
