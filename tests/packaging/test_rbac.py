"""The chart's RBAC is exactly what the code uses.

- Reads (get, list, watch) are not in the simulator's audit log: every request the code
  can make is derived from the code (tests/packaging/api_calls.py) and must be granted.
- Writes are observed: the real webhook (gunicorn), the real controller and real agent
  processes run one short scenario against the simulated cluster, whose audit log records
  every mutating request with its identity; each must be granted, each must be one the
  code analysis found, and every write the analysis found must have been seen.
- Nothing is granted that no request uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from harness.chart import operator_user
from harness.waits import ready, wait_running
from harness.world import OPERATOR_TOKEN, nodewarden_world, policy
from tests.packaging.api_calls import (
    ANY,
    API_MODULES,
    EVENTS,
    RELEASE,
    SHARED,
    ApiCall,
    modules_calling_the_api,
    static_calls,
)
from tests.packaging.chart import NAMESPACE, ROOT, render
from tests.packaging.rbac import Rbac

EVENT_NAMESPACE = "default"
ACCOUNTS = {"webhook": f"{NAMESPACE}/nodewarden-webhook", "controller": f"{NAMESPACE}/nodewarden-controller",
            "agent": f"{NAMESPACE}/nodewarden-agent"}
SCALE = 0.05
WRITES = {"create", "update", "patch", "delete", "deletecollection"}

# Every strategy and approval in play, so every permission the chart can grant is exercised.
WORLD_POLICY = policy(groups=[
    {"name": "deletion", "selector": {"matchLabels": {"nodewarden.io/group": "deletion"}},
     "strategy": "ResourceDeletion"},
    {"name": "approval", "selector": {"matchLabels": {"nodewarden.io/group": "approval"}}, "approvalRequired": True},
])


def namespace_of(call: ApiCall) -> str | None:
    return {RELEASE: NAMESPACE, EVENTS: EVENT_NAMESPACE}.get(call.namespace or "", call.namespace)


def chart_rbac(policy_doc: dict[str, Any], values: dict[str, Any] | None = None) -> Rbac:
    return Rbac(render({"policy": yaml.safe_dump(policy_doc), "eventNamespace": EVENT_NAMESPACE, **(values or {})}))


def allowed(rbac: Rbac, call: ApiCall) -> bool:
    return rbac.allows(ACCOUNTS[call.identity], call.verb, call.group, call.resource, call.subresource,
                       namespace_of(call), call.name)


def test_only_the_api_modules_talk_to_the_api() -> None:
    assert modules_calling_the_api() == {*API_MODULES, SHARED}


def test_the_analysis_finds_the_calls_the_docs_list() -> None:
    """A check of the analysis itself, against docs/node-agent.md's RBAC list and
    node_agent/kube.py's table: the agent reads and writes exactly these."""
    agent = {(c.verb, c.group, c.resource, c.subresource) for c in static_calls() if c.identity == "agent"}
    assert agent == {
        ("get", "nodewarden.io", "noderemediations", ""), ("patch", "nodewarden.io", "noderemediations", "status"),
        ("get", "", "nodes", ""), ("list", "", "nodes", ""), ("patch", "", "nodes", ""),
        ("create", "coordination.k8s.io", "leases", ""), ("patch", "coordination.k8s.io", "leases", ""),
    }
    webhook = {(c.verb, c.resource) for c in static_calls() if c.identity == "webhook"}
    assert {("watch", "nodes"), ("create", "noderemediations"), ("create", "events")} <= webhook
    controller = {(c.verb, c.resource) for c in static_calls() if c.identity == "controller"}
    assert {("watch", "nodes"), ("watch", "leases"), ("update", "leases"), ("patch", "nodes"), ("delete", "pods"),
            ("create", "events")} <= controller
    assert not {("patch", "nodes"), ("delete", "pods"), ("delete", "volumeattachments")} & webhook


def test_every_request_the_code_can_make_is_granted() -> None:
    rbac = chart_rbac(WORLD_POLICY)
    missing = [c for c in static_calls() if not allowed(rbac, c)]
    assert not missing, "not granted:\n" + "\n".join(map(str, missing))


def test_nothing_is_granted_that_the_code_never_uses() -> None:
    rbac = chart_rbac(WORLD_POLICY)
    calls = static_calls()
    used = set()
    for call in calls:
        used.update(rbac.matching(ACCOUNTS[call.identity], call.verb, call.group, call.resource, call.subresource,
                                  namespace_of(call), call.name))
    unused = [g for g in rbac.grants if g not in used]
    assert not unused, "granted but never used:\n" + "\n".join(map(str, unused))
    assert {g.account for g in rbac.grants} == set(ACCOUNTS.values())


def test_deleting_pods_and_volume_attachments_is_granted_only_to_a_policy_that_uses_it() -> None:
    default_policy = yaml.safe_load((ROOT / "rules" / "remediation.yaml").read_text())
    # As shipped: the default policy (the taint) with the controller's pod deletion after it
    # (pod GC's rule, sooner): pods only.
    rbac = chart_rbac(default_policy)
    refused = {(c.verb, c.resource) for c in static_calls() if not allowed(rbac, c)}
    assert refused == {("list", "volumeattachments"), ("delete", "volumeattachments")}
    assert {g.account for g in rbac.grants if g.resource == "pods"} == {ACCOUNTS["controller"]}
    # With it off (pod GC alone): nothing may delete pods or VolumeAttachments.
    rbac = chart_rbac(default_policy, {"controller": {"deletePodsAfterTaint": False}})
    refused = {(c.verb, c.resource) for c in static_calls() if not allowed(rbac, c)}
    assert refused == {("list", "pods"), ("delete", "pods"), ("list", "volumeattachments"),
                       ("delete", "volumeattachments")}
    assert not [g for g in rbac.grants if g.resource in ("pods", "volumeattachments")]


def test_nobody_may_read_secrets_or_write_what_is_not_theirs() -> None:
    rbac = chart_rbac(WORLD_POLICY)
    for account in ACCOUNTS.values():
        assert not rbac.allows(account, "get", "", "secrets", "", NAMESPACE, None)
        assert not rbac.allows(account, "list", "", "secrets", "", NAMESPACE, None)
        assert not rbac.allows(account, "update", "", "nodes", "", None, "node-1")
        assert not rbac.allows(account, "patch", "", "nodes", "status", None, "node-1")
    agent = ACCOUNTS["agent"]
    assert not rbac.allows(agent, "create", "nodewarden.io", "noderemediations", "", None, None)
    assert not rbac.allows(agent, "patch", "nodewarden.io", "noderemediations", "", None, "node-1")
    controller = ACCOUNTS["controller"]
    assert not rbac.allows(controller, "update", "coordination.k8s.io", "leases", "", NAMESPACE, "nodewarden-agent-node-1")
    assert rbac.allows(controller, "update", "coordination.k8s.io", "leases", "", NAMESPACE, "nodewarden-controller")
    assert not rbac.allows(controller, "list", "", "configmaps", "", NAMESPACE, None), "only the pause switch, by name"
    # The network-facing webhook cannot taint a node, delete a pod or take the leader Lease.
    webhook = ACCOUNTS["webhook"]
    assert not rbac.allows(webhook, "patch", "", "nodes", "", None, "node-1")
    assert not rbac.allows(webhook, "delete", "", "pods", "", "default", "db-0")
    assert not rbac.allows(webhook, "delete", "storage.k8s.io", "volumeattachments", "", None, "va-1")
    assert not rbac.allows(webhook, "update", "coordination.k8s.io", "leases", "", NAMESPACE, "nodewarden-controller")
    assert not rbac.allows(webhook, "list", "", "configmaps", "", NAMESPACE, None), "only the pause switch, by name"


# -- what the real processes do ------------------------------------------------------------


def label(world: Any, node: str, group: str) -> None:
    def edit(obj: dict[str, Any]) -> None:
        obj["metadata"].setdefault("labels", {})["nodewarden.io/group"] = group

    world.cluster.registry.mutate(world.cluster.rt("nodes"), "", node, edit)


def operator(world: Any, path: str, body: dict[str, Any] | None = None) -> requests.Response:
    return requests.post(f"{world.webhook_url}/api/v1/remediations{path}", json=body,
                         headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=10)


def audited(world: Any) -> list[ApiCall]:
    """The mutating requests nodewarden's identities made, as ApiCalls."""
    prefix = f"system:serviceaccount:{NAMESPACE}:"
    out = []
    for record in world.cluster.api.audit.query():
        if not record.user.startswith(prefix):
            continue
        account = record.user[len(prefix):]
        identity = {"nodewarden-webhook": "webhook", "nodewarden-controller": "controller",
                    "nodewarden-agent": "agent"}[account]
        assert record.code != 403, f"the simulator refused a request the code makes: {record}"
        resource, _, group = record.resource.partition(".")
        out.append(ApiCall(identity, record.verb, group, resource, record.subresource, record.namespace or None,
                           record.name or None, f"audit {record.code}"))
    return out


@pytest.mark.timeout(180)
def asked_again(w: Any, node: str, reason: str) -> None:
    """An operator asks again right after a cancel: the webhook worker that answers may
    not have seen the cancel yet (each worker's cache follows its own watch) and answers
    200 AlreadyActive; a person would ask again, and so does this, until it is 201."""
    answers: list[int] = []

    def created() -> bool:
        answers.append(operator(w, "", {"node": node, "reason": reason}).status_code)
        return answers[-1] == 201

    w.cluster.wait_for(created, 10, 0.5, message=f"a new remediation of {node}")
    assert set(answers[:-1]) <= {200}, answers  # only "already active" before it


def test_the_requests_the_processes_make_are_granted_and_are_the_ones_the_code_shows(tmp_path: Path) -> None:
    with nodewarden_world(tmp_path, nodes=5, time_scale=SCALE, remediation_policy=WORLD_POLICY,
                          webhook_env={"NODEWARDEN_HISTORY_PER_NODE": "1"}) as w:
        c = w.cluster
        placed = wait_running(c, ["db-0", "db-1", "db-2"], timeout=20)
        deletion = placed["db-0"]  # its pod and VolumeAttachment are force-deleted
        others = [n for n in c.nodes if n != deletion]
        kubelet, approval = others[0], others[1]  # agent alive: it acknowledges and reports
        label(w, deletion, "deletion")
        label(w, approval, "approval")
        c.fault("power-off", deletion)
        c.fault("kubelet-stop", kubelet)
        c.fault("kubelet-stop", approval)
        for node in (deletion, kubelet, approval):
            c.wait_for(lambda n=node: ready(c, n) == "Unknown", 15, message=f"{node} not Ready")
        assert w.alert(deletion).status_code == 200
        assert w.alert(kubelet).status_code == 200
        # An approval-required remediation, cancelled, and asked for again: the webhook
        # deletes the cancelled one to create the new one.
        assert operator(w, "", {"node": approval, "reason": "rbac test"}).status_code == 201
        w.wait_phase(approval, "AwaitingApproval", timeout=10)
        assert operator(w, f"/{approval}/cancel", {"reason": "rbac test"}).status_code == 200
        w.wait_phase(approval, "Cancelled", timeout=10)
        asked_again(w, approval, "rbac test, again")
        # Once more: the second replacement archives again and prunes the first record
        # (the world keeps one record per node).
        w.wait_phase(approval, "AwaitingApproval", timeout=10)
        assert operator(w, f"/{approval}/cancel", {"reason": "rbac test"}).status_code == 200
        w.wait_phase(approval, "Cancelled", timeout=10)
        asked_again(w, approval, "rbac test, third")
        # A person with their own Kubernetes token: the webhook reviews it (TokenReview)
        # and the action (SubjectAccessReview) with its own account.
        person = operator_user(c.api, "olivia")
        listed = requests.get(f"{w.webhook_url}/api/v1/remediations", headers={"Authorization": f"Bearer {person}"},
                              timeout=10)
        assert listed.status_code == 200, listed.text

        rem = w.wait_phase(kubelet, "AwaitingNodeReady", timeout=60)
        assert rem["status"].get("agentReport"), "the agent reported its fence through /status"
        c.fault("kubelet-start", kubelet)
        w.wait_phase(kubelet, "Succeeded", timeout=60)  # the taint is removed
        rem = w.wait_phase(deletion, "AwaitingNodeReady", timeout=60)
        assert rem["status"]["recovery"]["strategy"] == "ResourceDeletion"  # the deletes: in the audit log
        w.wait_phase(approval, "AwaitingApproval", timeout=10)
        observed = audited(w)

    rbac = chart_rbac(WORLD_POLICY)
    denied = [call for call in observed if not allowed(rbac, call)]
    assert not denied, "requests the chart's RBAC would refuse:\n" + "\n".join(map(str, sorted(set(denied))))

    analysed = {call.key for call in static_calls()}
    unexplained = {call.key for call in observed} - analysed
    assert not unexplained, f"writes the code analysis does not know: {unexplained}"

    static_writes = {call.key for call in static_calls() if call.verb in WRITES}
    unseen = static_writes - {call.key for call in observed}
    assert not unseen, f"writes the scenario did not exercise: {unseen}"
    # The observed namespaces are the ones the analysis assumed.
    expected: dict[tuple[str, ...], set[str | None]] = {}
    for call in static_calls():
        expected.setdefault(call.key, set()).add(namespace_of(call))
    for call in observed:
        assert expected[call.key] & {call.namespace, ANY}, f"{call} happened outside {expected[call.key]}"
