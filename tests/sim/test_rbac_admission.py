"""ValidatingAdmissionPolicy in the simulator, evaluated with a real CEL implementation
(cel-python), following k8s.io/apiserver/pkg/admission/plugin/policy/validating: match
constraints, match conditions, variables, validations with message, messageExpression and
reason, failurePolicy, the binding's validationActions, and the real denial text
"ValidatingAdmissionPolicy '<p>' with binding '<b>' denied request: <message>"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from sim.apiserver.server import ADMIN, ApiServer, agent_identity
from tests.conftest import start_api_server

ADM = "admissionregistration.k8s.io/v1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("vap")
    srv = start_api_server(tmp)  # AlwaysAllow: admission applies with or without RBAC
    yield srv
    srv.stop()


def api_for(server: ApiServer, handle: str) -> client.ApiClient:
    path = server.workdir / f"vap-{abs(hash(handle))}.kubeconfig"
    server.write_kubeconfig(path, handle)
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg)
    return client.ApiClient(cfg)


@pytest.fixture(scope="module")
def admin(server: ApiServer) -> client.ApiClient:
    return api_for(server, ADMIN)


def policy(admin: client.ApiClient, name: str, spec: dict[str, Any], actions: tuple[str, ...] = ("Deny",)) -> None:
    adm = client.AdmissionregistrationV1Api(admin)
    for old in (adm.delete_validating_admission_policy_binding, adm.delete_validating_admission_policy):
        try:
            old(name)
        except client.ApiException as exc:
            assert exc.status == 404
    adm.create_validating_admission_policy({"apiVersion": ADM, "kind": "ValidatingAdmissionPolicy",
                                            "metadata": {"name": name}, "spec": spec})
    adm.create_validating_admission_policy_binding({
        "apiVersion": ADM, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": list(actions)}})


CONFIGMAPS = {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                                 "resources": ["configmaps"]}]}


def denied(call: Any, *args: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(client.ApiException) as info:
        call(*args)
    return info.value.status, json.loads(info.value.body)


def test_a_false_validation_denies_with_its_reason_and_the_real_message(admin: client.ApiClient) -> None:
    policy(admin, "labelled", {"matchConstraints": CONFIGMAPS, "validations": [
        {"expression": "has(object.metadata.labels) && 'team' in object.metadata.labels",
         "message": "a ConfigMap needs a team label", "reason": "Forbidden"},
        {"expression": "object.metadata.labels['team'] != 'nobody'",
         "messageExpression": "'team ' + object.metadata.labels['team'] + ' is not a team'"}]})
    core = client.CoreV1Api(admin)
    code, body = denied(core.create_namespaced_config_map, "default", {"metadata": {"name": "c1"}})
    assert (code, body["reason"]) == (403, "Forbidden")
    assert body["message"] == ('configmaps "c1" is forbidden: ValidatingAdmissionPolicy \'labelled\' with binding '
                               "'labelled' denied request: a ConfigMap needs a team label")
    code, body = denied(core.create_namespaced_config_map, "default",
                        {"metadata": {"name": "c2", "labels": {"team": "nobody"}}})
    assert (code, body["reason"]) == (422, "Invalid")  # the default reason
    assert body["message"] == ("ValidatingAdmissionPolicy 'labelled' with binding 'labelled' denied request: "
                               "team nobody is not a team")
    core.create_namespaced_config_map("default", {"metadata": {"name": "c3", "labels": {"team": "db"}}})
    # UPDATE is checked too, against the object after the patch.
    code, _ = denied(core.patch_namespaced_config_map, "c3", "default", {"metadata": {"labels": {"team": None}}})
    assert code == 403
    assert core.read_namespaced_config_map("c3", "default").metadata.labels == {"team": "db"}


def test_match_conditions_variables_and_old_object(admin: client.ApiClient) -> None:
    policy(admin, "frozen-data", {
        "matchConstraints": CONFIGMAPS,
        "matchConditions": [{"name": "frozen", "expression": "request.operation == 'UPDATE' && has(oldObject.metadata.labels) && "
                                                             "'frozen' in oldObject.metadata.labels && "
                                                             "oldObject.metadata.labels['frozen'] == 'yes'"}],
        "variables": [{"name": "old", "expression": "has(oldObject.data) ? oldObject.data : {}"},
                      {"name": "new", "expression": "has(object.data) ? object.data : {}"}],
        "validations": [{"expression": "variables.old == variables.new", "message": "frozen", "reason": "Forbidden"}]})
    core = client.CoreV1Api(admin)
    labels = {"team": "db"}
    core.create_namespaced_config_map("default", {"metadata": {"name": "f1", "labels": {**labels, "frozen": "yes"}},
                                                  "data": {"a": "1"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "f2", "labels": labels}, "data": {"a": "1"}})
    code, body = denied(core.patch_namespaced_config_map, "f1", "default", {"data": {"a": "2"}})
    assert code == 403 and body["message"].endswith("denied request: frozen"), body["message"]
    core.patch_namespaced_config_map("f1", "default", {"metadata": {"annotations": {"x": "y"}}})  # data unchanged
    core.patch_namespaced_config_map("f2", "default", {"data": {"a": "2"}})  # the condition is false: not checked


def test_an_evaluation_error_denies_unless_the_failure_policy_is_ignore(admin: client.ApiClient) -> None:
    spec = {"matchConstraints": CONFIGMAPS, "validations": [{"expression": "object.data['missing'] == 'x'"}]}
    policy(admin, "broken", dict(spec, failurePolicy="Fail"))
    core = client.CoreV1Api(admin)
    code, body = denied(core.create_namespaced_config_map, "default",
                        {"metadata": {"name": "e1", "labels": {"team": "db"}}, "data": {}})
    assert code == 422 and "ValidatingAdmissionPolicy 'broken' with binding 'broken' denied request: " in body["message"]
    policy(admin, "broken", dict(spec, failurePolicy="Ignore"))
    core.create_namespaced_config_map("default", {"metadata": {"name": "e1", "labels": {"team": "db"}}, "data": {}})
    client.AdmissionregistrationV1Api(admin).delete_validating_admission_policy_binding("broken")


def test_only_a_deny_binding_acts_and_only_on_what_the_policy_matches(server: ApiServer, admin: client.ApiClient) -> None:
    spec = {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["*"], "operations": ["*"],
                                                    "resources": ["secrets"]}]},
            "validations": [{"expression": "false", "message": "no secrets", "reason": "Forbidden"}]}
    policy(admin, "no-secrets", spec, actions=("Audit",))
    core = client.CoreV1Api(admin)
    core.create_namespaced_secret("default", {"metadata": {"name": "s1"}})
    policy(admin, "no-secrets", spec)
    code, _ = denied(core.create_namespaced_secret, "default", {"metadata": {"name": "s2"}})
    assert code == 403
    core.create_namespaced_config_map("default", {"metadata": {"name": "unrelated", "labels": {"team": "db"}}})
    # The simulated cluster's own components write through the registry: no admission.
    server.registry.create(server.resource("secrets"), "default", {"metadata": {"name": "internal"}})


def test_a_subresource_is_matched_only_when_listed(admin: client.ApiClient, server: ApiServer) -> None:
    policy(admin, "node-status", {
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
                                                "resources": ["nodes/status"]}]},
        "validations": [{"expression": "false", "message": "status is the kubelet's", "reason": "Forbidden"}]})
    core = client.CoreV1Api(admin)
    code, body = denied(core.patch_node_status, "node-1", {"status": {"phase": "x"}})
    assert code == 403 and body["message"].endswith("status is the kubelet's")
    core.patch_node("node-1", {"metadata": {"labels": {"seen": "yes"}}})


def test_the_request_carries_the_callers_user_info_with_the_bound_tokens_node(
        admin: client.ApiClient, server: ApiServer) -> None:
    policy(admin, "own-node", {
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
                                                "resources": ["nodes"]}]},
        "matchConditions": [{"name": "agents", "expression":
                             "request.userInfo.username == 'system:serviceaccount:nodewarden:nodewarden-agent'"}],
        "validations": [{"expression": "request.name == request.userInfo.extra['authentication.kubernetes.io/node-name'][0]",
                         "messageExpression": "request.userInfo.username + ' on ' + "
                                              "request.userInfo.extra['authentication.kubernetes.io/node-name'][0] + "
                                              "' may not write ' + request.name",
                         "reason": "Forbidden"}]})
    agent2 = client.CoreV1Api(api_for(server, agent_identity("node-2")))
    agent2.patch_node("node-2", {"metadata": {"annotations": {"nodewarden.io/x": "1"}}})
    code, body = denied(agent2.patch_node, "node-1", {"metadata": {"annotations": {"nodewarden.io/x": "1"}}})
    assert code == 403
    assert body["message"].endswith("denied request: system:serviceaccount:nodewarden:nodewarden-agent on node-2 "
                                    "may not write node-1")
    client.CoreV1Api(admin).patch_node("node-1", {"metadata": {"annotations": {"nodewarden.io/x": "2"}}})
