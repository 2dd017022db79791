"""The Helm chart, rendered by the real Helm engine under several value sets: lint is clean,
every manifest is valid for Kubernetes 1.28 to 1.32, and the workloads have the shape the
design asks for (deployment layout, security, probes, secrets, monitoring)."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core import names
from core.fence_order import generate_private_key, private_key_pem, public_key_pem
from tests.packaging.chart import (
    CHART,
    FIXED_KEY,
    KUBE_VERSIONS,
    NAMESPACE,
    PROMETHEUS_OPERATOR_GROUP,
    ROOT,
    VALUE_SETS,
    chart,
    container,
    crds,
    find,
    render,
    render_files,
)
from tests.packaging.operator_schemas import OPERATOR_SCHEMAS

WEBHOOK, CONTROLLER, AGENT = "nodewarden-webhook", "nodewarden-controller", "nodewarden-agent"


@pytest.fixture(autouse=True, scope="module")
def _cached_schemas() -> Any:
    """kubernetes-validate reads its JSON schemas from disk at every call; read each once."""
    original = kubernetes_validate.utils.schema_contents
    kubernetes_validate.utils.schema_contents = functools.cache(original)
    yield
    kubernetes_validate.utils.schema_contents = original


# -- lint and validation -----------------------------------------------------------------


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_lint_is_clean(value_set: str) -> None:
    report = helm_python.lint(str(CHART), VALUE_SETS[value_set], strict=True, namespace=NAMESPACE)
    assert report["errors"] == [] and report["messages"] == [], report


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_manifest_is_valid_for_kubernetes_1_28_to_1_32(value_set: str) -> None:
    docs = render(VALUE_SETS[value_set]) + crds()
    checked = 0
    for doc in docs:
        group = doc["apiVersion"].split("/")[0]
        if group == PROMETHEUS_OPERATOR_GROUP:
            continue  # not Kubernetes' own: checked against the operator's fields below
        for version in KUBE_VERSIONS:
            if doc["apiVersion"] == "admissionregistration.k8s.io/v1" and version < "1.30":
                continue  # ValidatingAdmissionPolicy is GA in 1.30 (agent.admissionPolicy.enabled=false before)
            kubernetes_validate.validate(doc, version, strict=True)
            checked += 1
    assert checked >= 5 * 18


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_prometheus_operator_objects_have_the_operators_fields(value_set: str) -> None:
    """kubernetes-validate has no schemas for monitoring.coreos.com: these are checked against
    the subset of the Prometheus Operator's CRD schemas (v0.70+) that the chart uses, with
    unknown fields refused, so a misspelt field fails here instead of being pruned."""
    for doc in render(VALUE_SETS[value_set]):
        if doc["apiVersion"].split("/")[0] == PROMETHEUS_OPERATOR_GROUP:
            jsonschema.validate(doc, OPERATOR_SCHEMAS[(doc["apiVersion"], doc["kind"])])


def test_prometheus_operator_objects_only_when_asked() -> None:
    kinds = lambda docs: sorted(d["kind"] for d in docs if d["apiVersion"].startswith(PROMETHEUS_OPERATOR_GROUP))  # noqa: E731
    assert kinds(render(VALUE_SETS["prometheus-operator-off"])) == []
    assert kinds(render(VALUE_SETS["monitoring-disabled"])) == []
    assert kinds(render(VALUE_SETS["prometheus-operator-on"])) == [
        "AlertmanagerConfig", "PodMonitor", "PrometheusRule", "ServiceMonitor", "ServiceMonitor"]
    assert not [d for d in render({"monitoring": {"enabled": False, "prometheusOperator": {"enabled": True}}})
                if d["apiVersion"].startswith(PROMETHEUS_OPERATOR_GROUP) or (d["kind"] == "ConfigMap"
                and "dashboard" in d["metadata"]["name"])]


def test_the_chart_ships_the_crd_files_the_tests_apply() -> None:
    from harness import world

    shipped = {c["name"]: c["data"] for c in chart().crds}
    assert shipped == {f"crds/{f.name}": f.read_text() for f in (world.CRD, world.RECORD_CRD)}, \
        "the simulated cluster must apply the files the chart ships"
    by_name = {c["metadata"]["name"]: c for c in crds()}
    crd = by_name[f"{names.PLURAL}.{names.GROUP}"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Phase", "Strategy", "Evidence", "Age"} <= columns
    record = by_name[f"noderemediationrecords.{names.GROUP}"]
    assert record["spec"]["scope"] == "Cluster"
    assert {c["name"] for c in record["spec"]["versions"][0]["additionalPrinterColumns"]} >= {"Node", "Phase"}


def test_chart_metadata() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2" and meta["type"] == "application"
    assert meta["kubeVersion"] == ">=1.28.0-0", "the out-of-service taint is GA since 1.28"
    assert meta["icon"].startswith("data:image/svg+xml;base64,")


# -- the values and their schema ---------------------------------------------------------


def _leaves(values: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            out |= _leaves(value, path)
        else:
            out.add(path)
    return out


def _schema_at(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The schema of a value; a Kubernetes object the chart passes through (resources,
    affinity, ...) is described as a whole, its insides by Kubernetes."""
    node = schema
    for key in path.split("."):
        if "properties" not in node and node.get("type") == "object":
            return node
        props = node.get("properties") or {}
        if key not in props:
            return None
        node = props[key]
    return node


def test_the_schema_describes_every_value_and_refuses_unknown_ones() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for leaf in sorted(_leaves(values)):
        assert _schema_at(schema, leaf) is not None, f"values.schema.json does not describe {leaf}"
    jsonschema.validate(values, schema)

    def closed(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path or 'values'} accepts unknown keys"
            for key, child in node["properties"].items():
                closed(child, f"{path}.{key}" if path else key)

    closed(schema, "")
    for bad in ({"webhook": {"replicas": 0}}, {"webhok": {}}, {"agent": {"config": {"watchdog_timout_s": 1}}},
                {"logLevel": "TRACE"}, {"image": {"digest": "latest"}}):
        with pytest.raises(helm_python.HelmValuesError):
            render(bad)


def _set_by_chart(docs: list[dict[str, Any]], kind: str, name: str, prefix: str) -> set[str]:
    env = container(docs, kind, name)["env"]
    return {e["name"][len(prefix):].lower() for e in env if e["name"].startswith(prefix)}


@pytest.mark.parametrize("section,dataclass_path,prefix,never", [
    ("webhook", "webhook.settings:WebhookSettings", "NODEWARDEN_",
     {"kubeconfig", "allow_unauthenticated", "alertmanager_username", "alertmanager_password_file",
      "workers", "threads"}),
    ("controller", "controller.settings:ControllerSettings", "NODEWARDEN_CONTROLLER_", {"kubeconfig"}),
])
def test_settings_the_chart_does_not_set_are_all_in_the_schema(section: str, dataclass_path: str, prefix: str,
                                                               never: set[str]) -> None:
    import dataclasses
    import importlib

    module, cls = dataclass_path.split(":")
    fields = {f.name for f in dataclasses.fields(getattr(importlib.import_module(module), cls))}
    schema = json.loads((CHART / "values.schema.json").read_text())
    offered = set(schema["properties"][section]["properties"]["settings"]["properties"])
    chart_sets = _set_by_chart(render({}), "Deployment", section, prefix) - {"workers", "threads"}
    assert offered | chart_sets | never >= fields, f"settings nobody can set: {fields - offered - chart_sets - never}"
    assert not offered - fields, f"the schema offers settings the code does not have: {offered - fields}"
    assert not offered & chart_sets, f"offered and set by the chart: {offered & chart_sets}"


def test_agent_settings_the_chart_does_not_set_are_all_in_the_schema() -> None:
    import dataclasses

    from node_agent.settings import AgentSettings

    fields = {f.name for f in dataclasses.fields(AgentSettings)}
    schema = json.loads((CHART / "values.schema.json").read_text())
    offered = set(schema["properties"]["agent"]["properties"]["config"]["properties"])
    cm = find(render({}), "ConfigMap", AGENT)
    chart_sets = set(yaml.safe_load(cm["data"]["agent.yaml"]))
    # node_name: the command line; credentials: the pod's service account mount; TLS and a
    # separate metrics port: not offered (see values.yaml).
    never = {"node_name", "kubeconfig", "service_account_dir", "tls_cert_file", "tls_key_file", "peer_ca_file",
             "metrics_listen"}
    assert offered | chart_sets | never >= fields, f"settings nobody can set: {fields - offered - chart_sets - never}"
    assert not offered - fields and not offered & chart_sets


@pytest.mark.parametrize("values,message", [
    ({"agent": {"config": {"namespace": "x"}}}, "additional properties"),
    ({"webhook": {"settings": {"bind": "0.0.0.0:1"}}}, "additional properties"),
    ({"policy": "- not a mapping"}, "policy"),
    ({"networkPolicy": {"enabled": True}}, "webhookClients"),
])
def test_values_the_chart_refuses(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmError, match=message):
        render(values)


# -- the webhook Deployment ---------------------------------------------------------------


def test_the_webhook_and_the_controller_run_in_their_own_pods_as_their_own_accounts() -> None:
    """The network-facing webhook does not share a pod, and so a token, with the controller,
    the one identity that may taint nodes and delete pods."""
    docs = render({})
    deployment = find(docs, "Deployment", WEBHOOK)
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    (webhook,) = pod["containers"]
    controller_deployment = find(docs, "Deployment", CONTROLLER)
    controller_pod = controller_deployment["spec"]["template"]["spec"]
    assert controller_deployment["spec"]["replicas"] == 2
    (controller,) = controller_pod["containers"]
    assert (webhook["name"], controller["name"]) == ("webhook", "controller")
    assert pod["serviceAccountName"] == WEBHOOK and controller_pod["serviceAccountName"] == CONTROLLER
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"} == {WEBHOOK, CONTROLLER, AGENT}
    assert webhook["command"] == ["gunicorn", "-c", "webhook/gunicorn.conf.py", "webhook.wsgi:app"]
    assert controller["command"] == ["python", "-m", "controller"]
    assert webhook["image"] == controller["image"] == "ghcr.io/nodewarden/nodewarden:0.1.0"
    assert webhook["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert controller["ports"] == [{"name": "controller-http", "containerPort": 9103, "protocol": "TCP"}]
    assert webhook["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert webhook["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert controller["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "controller-http"}
    assert controller["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "controller-http"}
    controller_env = {e["name"]: e.get("value") for e in controller["env"]}
    assert controller_env["NODEWARDEN_CONTROLLER_PAUSE_CONFIGMAP"] == \
        {e["name"]: e.get("value") for e in webhook["env"]}["NODEWARDEN_PAUSE_CONFIGMAP"]
    env = {e["name"]: e.get("value") for e in webhook["env"]}
    mounts = {m["mountPath"]: m["name"] for m in webhook["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[env["PROMETHEUS_MULTIPROC_DIR"]]]
    for p, component in ((pod, "webhook"), (controller_pod, "controller")):
        spread = p["topologySpreadConstraints"][0]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
    for c in (webhook, controller):
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    # The controllers' metrics have their own Service; the webhook's serves the webhook only.
    assert [p["name"] for p in find(docs, "Service", WEBHOOK)["spec"]["ports"]] == ["http"]
    assert find(docs, "Service", CONTROLLER)["spec"]["selector"]["app.kubernetes.io/component"] == "controller"


def test_the_webhook_and_controller_pods_are_non_root_with_a_read_only_root_filesystem() -> None:
    for name in (WEBHOOK, CONTROLLER):
        pod = find(render({}), "Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}


def test_secrets_go_only_where_they_are_needed() -> None:
    docs = render({})
    pod = find(docs, "Deployment", WEBHOOK)["spec"]["template"]["spec"]
    controller_pod = find(docs, "Deployment", CONTROLLER)["spec"]["template"]["spec"]
    agent_pod = find(docs, "DaemonSet", AGENT)["spec"]["template"]["spec"]

    def mounted(pod: dict[str, Any], container_name: str) -> set[str]:
        (c,) = [c for c in pod["containers"] if c["name"] == container_name]
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        return {secrets[m["name"]] for m in c["volumeMounts"] if m["name"] in secrets}

    assert mounted(pod, "webhook") == {"nodewarden-alertmanager", "nodewarden-operator-tokens"}
    assert not [v for v in pod["volumes"] if "secret" in v and "signing" in v["secret"]["secretName"]]
    assert mounted(controller_pod, "controller") == {"nodewarden-fence-order-signing-key", "nodewarden-peer-secret"}
    assert mounted(agent_pod, "agent") == {"nodewarden-fence-order-public-keys", "nodewarden-peer-secret"}
    verify = find(docs, "Secret", "nodewarden-fence-order-public-keys")
    assert set(verify["data"]) == {"public.pem"}
    assert "PRIVATE" not in base64.b64decode(verify["data"]["public.pem"]).decode()


def test_a_pod_disruption_budget_keeps_one_webhook() -> None:
    pdb = find(render({}), "PodDisruptionBudget", WEBHOOK)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "webhook"


# -- the agent DaemonSet -------------------------------------------------------------------


def test_the_agent_runs_on_every_node_with_the_watchdog_in_the_host_network() -> None:
    docs = render({})
    pod = find(docs, "DaemonSet", AGENT)["spec"]["template"]["spec"]
    (agent,) = pod["containers"]
    assert pod["tolerations"] == [{"operator": "Exists"}]  # NotReady, unreachable, out-of-service: all
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert "hostPID" not in pod
    assert agent["command"] == ["python", "-m", "node_agent"]
    assert agent["args"] == ["--node-name", "$(NODE_NAME)", "--config", "/etc/nodewarden/agent/agent.yaml"]
    assert agent["env"] == [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    assert agent["ports"] == [{"name": "peer", "containerPort": 9471, "protocol": "TCP"}]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["watchdog"]["hostPath"] == {"path": "/dev/watchdog", "type": "CharDevice"}
    assert {"name": "watchdog", "mountPath": "/dev/watchdog"} in agent["volumeMounts"]
    assert volumes["state"]["hostPath"]["type"] == "DirectoryOrCreate"
    assert agent["securityContext"] == {"privileged": True, "runAsUser": 0, "runAsNonRoot": False,
                                        "readOnlyRootFilesystem": True}
    assert "cpu" not in agent["resources"].get("limits", {}), "a CPU limit could throttle the watchdog feeds"
    config = yaml.safe_load(find(docs, "ConfigMap", AGENT)["data"]["agent.yaml"])
    assert config["listen"] == "0.0.0.0:9471" and config["namespace"] == NAMESPACE
    assert config["peer_cache_file"].startswith("/var/lib/nodewarden/")
    assert pod["serviceAccountName"] == AGENT


def test_kubelet_restart_adds_host_pid_and_tells_the_controller() -> None:
    docs = render({"agent": {"kubeletRestart": {"enabled": True}}})
    assert find(docs, "DaemonSet", AGENT)["spec"]["template"]["spec"]["hostPID"] is True
    env = {e["name"]: e.get("value") for e in container(docs, "Deployment", "controller")["env"]}
    assert env["NODEWARDEN_CONTROLLER_KUBELET_RESTART_FIRST"] == "true"


def test_without_a_watchdog_the_device_is_not_mounted() -> None:
    pod = find(render({"agent": {"watchdog": {"enabled": False}}}), "DaemonSet", AGENT)["spec"]["template"]["spec"]
    assert "watchdog" not in {v["name"] for v in pod["volumes"]}


def test_an_agent_config_change_rolls_the_agents_and_a_policy_change_the_webhooks() -> None:
    def annotations(values: dict[str, Any]) -> tuple[str, str]:
        docs = render(values)
        return (find(docs, "DaemonSet", AGENT)["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
                find(docs, "Deployment", WEBHOOK)["spec"]["template"]["metadata"]["annotations"]["checksum/policy"])

    base = annotations({})
    changed = annotations({"agent": {"config": {"isolation_timeout_s": 40}}})
    assert changed[0] != base[0] and changed[1] == base[1]
    policy = (ROOT / "rules" / "remediation.yaml").read_text().replace("cooldown: 30m", "cooldown: 1h")
    changed = annotations({"policy": policy})
    assert changed[0] == base[0] and changed[1] != base[1]


# -- secrets and keys ----------------------------------------------------------------------


def _secret(docs: list[dict[str, Any]], name: str, key: str) -> bytes:
    return base64.b64decode(find(docs, "Secret", name)["data"][key])


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("attempt", range(5))
def test_generated_fence_order_keys_are_a_matching_ed25519_pair(attempt: int) -> None:
    docs = helm_render_fresh({})
    private = serialization.load_pem_private_key(_secret(docs, "nodewarden-fence-order-signing-key", "private.pem"), None)
    assert isinstance(private, Ed25519PrivateKey)
    assert _secret(docs, "nodewarden-fence-order-public-keys", "public.pem") == _public_pem(private.public_key())


def helm_render_fresh(values: dict[str, Any]) -> list[dict[str, Any]]:
    """A render that bypasses the cache: generated values differ every time."""
    files = chart().render(values, name="nodewarden", namespace=NAMESPACE, is_install=True)
    return [d for p, t in files.items() if p.endswith(".yaml") for d in yaml.safe_load_all(t) if d]


def test_provided_keys_and_tokens_are_used() -> None:
    docs = render(VALUE_SETS["keys-provided"])
    assert _secret(docs, "nodewarden-fence-order-public-keys", "public.pem") == _public_pem(FIXED_KEY.public_key())
    assert _secret(docs, "nodewarden-alertmanager", "token") == b"alertmanager-token-0123456789abcdef"
    assert _secret(docs, "nodewarden-operator-tokens", "tokens") == (
        b"alice:alice-token-0123456789abcdef\nbob:bob-token-0123456789abcdef0\n")
    assert _secret(docs, "nodewarden-peer-secret", "secret") == b"peer-secret-0123456789abcdef0123456789"


def test_a_public_key_that_does_not_match_the_private_key_is_refused() -> None:
    other = public_key_pem(generate_private_key().public_key()).decode()
    values = {"fenceOrderKeys": {"privateKey": private_key_pem(FIXED_KEY).decode(), "publicKey": other}}
    with pytest.raises(helm_python.HelmError, match="does not match"):
        render(values)
    matching = {"fenceOrderKeys": {"privateKey": private_key_pem(FIXED_KEY).decode(),
                                   "publicKey": _public_pem(FIXED_KEY.public_key()).decode(),
                                   "additionalPublicKeys": other}}
    keys = _secret(render(matching), "nodewarden-fence-order-public-keys", "public.pem").decode()
    assert keys.count("BEGIN PUBLIC KEY") == 2 and other.strip() in keys


def test_existing_secrets_replace_the_charts() -> None:
    docs = render(VALUE_SETS["existing-secrets"])
    assert not [d for d in docs if d["kind"] == "Secret"]
    pod = find(docs, "Deployment", WEBHOOK)["spec"]["template"]["spec"]
    assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == {
        "am-token", "op-tokens", "webhook-tls"}
    controller_pod = find(docs, "Deployment", CONTROLLER)["spec"]["template"]["spec"]
    assert {v["secret"]["secretName"] for v in controller_pod["volumes"] if "secret" in v} == {"signing", "peer"}
    with pytest.raises(helm_python.HelmError, match="existingPublicKeySecret"):
        render({"fenceOrderKeys": {"existingSecret": "signing"}})
    with pytest.raises(helm_python.HelmError, match="matching private key"):
        render({"fenceOrderKeys": {"existingPublicKeySecret": "verify"}})


def test_tls_serves_https_everywhere_it_is_called() -> None:
    docs = render(VALUE_SETS["tls"])
    webhook = container(docs, "Deployment", "webhook")
    env = {e["name"]: e.get("value") for e in webhook["env"]}
    assert env["GUNICORN_CMD_ARGS"] == "--certfile=/etc/nodewarden/tls/tls.crt --keyfile=/etc/nodewarden/tls/tls.key"
    assert webhook["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    tls = find(docs, "Secret", "nodewarden-webhook-tls")
    assert tls["type"] == "kubernetes.io/tls" and set(tls["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    monitor = find(docs, "ServiceMonitor", WEBHOOK)
    assert monitor["spec"]["endpoints"][0]["scheme"] == "https"
    receiver = find(docs, "AlertmanagerConfig")["spec"]["receivers"][0]["webhookConfigs"][0]
    assert receiver["url"] == "https://nodewarden-webhook.nodewarden.svc:8080/api/v1/alerts"
    assert receiver["httpConfig"]["tlsConfig"]["ca"]["secret"] == {"name": "nodewarden-webhook-tls", "key": "ca.crt"}
    assert "https://nodewarden-webhook.nodewarden.svc:8080/api/v1/alerts" in render_files(VALUE_SETS["tls"])[
        "nodewarden/templates/NOTES.txt"]


# -- monitoring and Alertmanager -------------------------------------------------------------


def test_monitors_set_the_job_labels_the_rules_expect() -> None:
    docs = render(VALUE_SETS["prometheus-operator-on"])
    jobs = {}
    for name in (WEBHOOK, CONTROLLER):
        monitor = find(docs, "ServiceMonitor", name)
        assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == name.split("-")[1]
        for e in monitor["spec"]["endpoints"]:
            jobs[e["port"]] = [r["replacement"] for r in e["relabelings"] if r["targetLabel"] == "job"]
    assert jobs == {"http": ["nodewarden-webhook"], "controller-http": ["nodewarden-controller"]}
    assert {p["name"]: p["port"] for p in find(docs, "Service", WEBHOOK)["spec"]["ports"]} == {"http": 8080}
    assert {p["name"]: p["port"] for p in find(docs, "Service", CONTROLLER)["spec"]["ports"]} == {"controller-http": 9103}
    (endpoint,) = find(docs, "PodMonitor")["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "peer" and endpoint["path"] == "/metrics"
    labels = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    assert labels["job"]["replacement"] == "nodewarden-agent"
    assert labels["node"]["sourceLabels"] == ["__meta_kubernetes_pod_node_name"]


def test_the_alertmanager_config_routes_the_policys_alerts_with_the_bearer_token() -> None:
    docs = render(VALUE_SETS["prometheus-operator-on"])
    spec = find(docs, "AlertmanagerConfig")["spec"]
    assert spec["route"]["matchers"] == [{"name": "alertname", "matchType": "=~",
                                          "value": "NodeNotReady|NodeLeaseStale|KubeNodeNotReady|KubeNodeUnreachable"}]
    assert spec["route"]["groupBy"] == ["alertname", "node"] and spec["route"]["groupWait"] == "0s"
    (receiver,) = spec["receivers"]
    (hook,) = receiver["webhookConfigs"]
    assert hook["url"] == "http://nodewarden-webhook.nodewarden.svc:8080/api/v1/alerts"
    assert hook["sendResolved"] is True
    assert hook["httpConfig"]["authorization"] == {
        "type": "Bearer", "credentials": {"name": "nodewarden-alertmanager", "key": "token"}}
    # The operator only routes alerts of the AlertmanagerConfig's namespace to it.
    rules = find(docs, "PrometheusRule")["spec"]["groups"]
    assert all(r["labels"]["namespace"] == NAMESPACE for g in rules for r in g["rules"])


def test_notes_give_the_plain_alertmanager_receiver_with_a_credentials_file() -> None:
    notes = render_files({})["nodewarden/templates/NOTES.txt"]
    start = notes.index("     route:")
    snippet = "\n".join(line[5:] for line in notes[start:].split("\n\n")[0].splitlines())
    config = yaml.safe_load(snippet)
    (route,) = config["route"]["routes"]
    assert route["receiver"] == "nodewarden" and route["group_by"] == ["alertname", "node"]
    (hook,) = config["receivers"][0]["webhook_configs"]
    assert hook["url"] == "http://nodewarden-webhook.nodewarden.svc:8080/api/v1/alerts"
    assert hook["send_resolved"] is True
    assert hook["http_config"]["authorization"] == {
        "type": "Bearer", "credentials_file": "/etc/alertmanager/secrets/nodewarden/token"}


def test_network_policies_admit_the_configured_peers_only() -> None:
    docs = render(VALUE_SETS["network-policies"])
    webhook = find(docs, "NetworkPolicy", WEBHOOK)["spec"]
    assert webhook["policyTypes"] == ["Ingress"]
    clients, scrapers = webhook["ingress"]
    assert clients["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert clients["from"] == VALUE_SETS["network-policies"]["networkPolicy"]["webhookClients"]
    assert {p["port"] for p in scrapers["ports"]} == {8080}
    (controller,) = find(docs, "NetworkPolicy", CONTROLLER)["spec"]["ingress"]
    assert controller["ports"] == [{"port": 9103, "protocol": "TCP"}]
    assert controller["from"] == VALUE_SETS["network-policies"]["networkPolicy"]["metricsScrapers"]
    (agent,) = find(docs, "NetworkPolicy", AGENT)["spec"]["ingress"]
    assert agent["ports"] == [{"port": 9471, "protocol": "TCP"}]
    sources = agent["from"]
    assert {"ipBlock": {"cidr": "10.0.0.0/16"}} in sources
    components = {s.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") for s in sources}
    assert "controller" in components and "webhook" not in components  # the controller delivers fence orders
    assert not [d for d in render({}) if d["kind"] == "NetworkPolicy"]


def test_every_object_is_labelled_and_namespaced() -> None:
    for doc in render(VALUE_SETS["everything-on"]):
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "nodewarden", doc["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == "nodewarden"
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                               "ValidatingAdmissionPolicyBinding"):
            assert doc["metadata"].get("namespace"), f"{doc['kind']} {doc['metadata']['name']} has no namespace"


def test_the_chart_readme_documents_the_layout() -> None:
    readme = (CHART / "README.md").read_text()
    for needed in ("hostNetwork", "system-node-critical", "/dev/watchdog", "Lease", "crds/", "values.schema.json"):
        assert needed in readme, needed
