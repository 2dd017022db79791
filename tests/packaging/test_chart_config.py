"""What the chart configures is what the code accepts: each container's environment,
command line and mounted files (ConfigMaps and Secrets written out under a temporary root)
go through the components' own start-up checks - the webhook's settings, secrets and policy,
the controller's settings and its unsafe-timings check, the agent's settings - and an order
signed with the controller's key verifies with the agents' public keys."""

from __future__ import annotations

import base64
import re
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from controller.settings import agent_timings, unsafe_timings
from controller.settings import settings_from_env as controller_settings
from core.fence_order import (
    Action,
    load_private_key,
    load_public_keys,
    new_order,
    sign_order,
    verify_order,
)
from core.settings import read_secret_file
from node_agent.cli import load as load_agent_settings
from tests.packaging.chart import NAMESPACE, VALUE_SETS, find, render
from webhook.entry import validate as validate_webhook

GENERATED = ("defaults", "keys-provided", "tls", "everything-on")


def materialize(docs: list[dict[str, Any]], kind: str, container_name: str, root: Path) -> tuple[dict[str, str], list[str]]:
    """Write the container's ConfigMap and Secret volumes under `root`; return its
    environment and command line with every mounted path moved under `root`."""
    (pod,) = [d["spec"]["template"]["spec"] for d in docs if d["kind"] == kind
              and container_name in [c["name"] for c in d["spec"]["template"]["spec"]["containers"]]]
    (container,) = [c for c in pod["containers"] if c["name"] == container_name]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts: list[str] = []
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        target = root / mount["mountPath"].lstrip("/")
        if "configMap" in volume or "secret" in volume:
            source = volume.get("configMap") or volume["secret"]
            ref = source.get("name") or source.get("secretName")
            obj = find(docs, "ConfigMap" if "configMap" in volume else "Secret", ref)
            for item in source["items"]:
                data = obj["data"][item["key"]]
                (target / item["path"]).parent.mkdir(parents=True, exist_ok=True)
                (target / item["path"]).write_bytes(data.encode() if "configMap" in volume else base64.b64decode(data))
            mounts.append(mount["mountPath"])
        elif "emptyDir" in volume or volume.get("hostPath", {}).get("type") == "DirectoryOrCreate":
            target.mkdir(parents=True, exist_ok=True)
            mounts.append(mount["mountPath"])

    pattern = re.compile(r"(?<![\w/.-])(" + "|".join(map(re.escape, sorted(mounts, key=len, reverse=True)))
                         + r")(?=/|\s|$)", flags=re.M)

    def moved(text: str) -> str:  # one pass: a moved path is never moved again
        return pattern.sub(lambda m: str(root / m.group(1).lstrip("/")), text)

    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = moved(str(var["value"]))
        elif var["valueFrom"]["fieldRef"]["fieldPath"] in ("metadata.name", "spec.nodeName"):
            env[var["name"]] = "pod-or-node-1"
    env = {k: v.replace("$(POD_NAME)", "nodewarden-webhook-abc12") for k, v in env.items()}
    argv = [moved(a).replace("$(NODE_NAME)", "node-1") for a in container.get("command", []) + container.get("args", [])]
    for path in mounts:
        for file in (root / path.lstrip("/")).rglob("*"):
            if file.is_file() and file.suffix == ".yaml":
                file.write_text(moved(file.read_text()))
    return env, argv


@pytest.mark.parametrize("value_set", GENERATED)
def test_the_webhook_accepts_its_settings_secrets_and_policy(value_set: str, tmp_path: Path) -> None:
    env, argv = materialize(render(VALUE_SETS[value_set]), "Deployment", "webhook", tmp_path)
    assert argv == ["gunicorn", "-c", "webhook/gunicorn.conf.py", "webhook.wsgi:app"]
    settings = validate_webhook(env, check_kube=False)
    assert settings.namespace == NAMESPACE and settings.bind == "0.0.0.0:8080"
    assert settings.pause_configmap == "nodewarden-control" and settings.instance == "nodewarden-webhook-abc12"
    assert Path(env["PROMETHEUS_MULTIPROC_DIR"]).is_dir()
    if value_set == "everything-on":
        assert settings.max_body_bytes == 2097152 and settings.watch_timeout_s == 600


@pytest.mark.parametrize("mode", ["kubernetes", "both", "static"])
def test_each_operator_auth_mode_starts_with_exactly_what_it_needs(mode: str, tmp_path: Path) -> None:
    """kubernetes: no operator token Secret at all, and the webhook may create reviews;
    static: no review permission; both: both."""
    docs = render({"auth": {"operatorAuth": mode, "operatorAudiences": ["nodewarden"]}})
    env, _ = materialize(docs, "Deployment", "webhook", tmp_path)
    settings = validate_webhook(env, check_kube=False)
    assert settings.operator_auth == mode and settings.operator_token_audiences == ["nodewarden"]
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    assert ("nodewarden-operator-tokens" in secrets) is (mode != "kubernetes")
    assert (settings.operator_token_file is not None) is (mode != "kubernetes")
    webhook_rules = find(docs, "ClusterRole", "nodewarden-webhook")["rules"]
    reviews = [r for r in webhook_rules if set(r["resources"]) & {"tokenreviews", "subjectaccessreviews"}]
    assert len(reviews) == (0 if mode == "static" else 2)
    assert all(r["verbs"] == ["create"] for r in reviews)
    operator_role = find(docs, "ClusterRole", "nodewarden-operator")
    assert operator_role["rules"] == [{"apiGroups": ["nodewarden.io"], "resources": ["noderemediations"],
                                       "verbs": ["get", "list", "watch", "create", "patch", "delete",
                                                 "approve", "cancel"]}]


@pytest.mark.parametrize("value_set", GENERATED)
def test_the_controller_accepts_its_settings_and_key(value_set: str, tmp_path: Path) -> None:
    env, argv = materialize(render(VALUE_SETS[value_set]), "Deployment", "controller", tmp_path)
    assert argv == ["python", "-m", "controller"]
    settings = controller_settings(env)
    agent, source = agent_timings(settings)  # the agents' ConfigMap, mounted as the agents have it
    assert settings.agent_config_file and settings.agent_config_file in source
    assert unsafe_timings(settings, agent) == []
    assert settings.namespace == NAMESPACE and settings.identity == "nodewarden-webhook-abc12"
    assert settings.metrics_bind == "0.0.0.0:9103"
    load_private_key(settings.signing_key_file)
    read_secret_file(settings.peer_secret_file, "peer_secret_file")
    if value_set == "everything-on":
        assert settings.kubelet_restart_first is True and settings.safety_margin_s == 15
        assert settings.fence_agent_command.startswith("fence_ipmilan")


@pytest.mark.parametrize("value_set", GENERATED)
def test_the_agent_accepts_its_settings_and_obeys_only_the_controllers_key(value_set: str, tmp_path: Path) -> None:
    docs = render(VALUE_SETS[value_set])
    env, argv = materialize(docs, "DaemonSet", "agent", tmp_path / "agent")
    assert argv[:3] == ["python", "-m", "node_agent"]
    settings = load_agent_settings(argv[3:], env)
    assert settings.node_name == "node-1" and settings.namespace == NAMESPACE
    assert settings.listen == "0.0.0.0:9471" and settings.watchdog_path == "/dev/watchdog"
    assert Path(str(settings.peer_cache_file)).parent.is_dir()
    keys = load_public_keys(settings.order_public_keys_file)

    controller_env, _ = materialize(docs, "Deployment", "controller", tmp_path / "controller")
    controller = controller_settings(controller_env)
    assert read_secret_file(settings.peer_secret_file, "") == read_secret_file(controller.peer_secret_file, "")
    now = time.time()
    order = new_order(node="node-1", remediation_uid="uid", action=Action.FENCE, issued_at=now, ttl_s=60,
                      boot_id="boot-1")
    token = sign_order(order, load_private_key(controller.signing_key_file))
    verified = verify_order(token, public_keys=keys, node="node-1", now=now, boot_id="boot-1", boot_time=None,
                            max_clock_skew_s=5)
    assert verified == order
    if value_set == "everything-on":
        assert settings.reboot_fallback_enabled is True and settings.watchdog_timeout_s == 30
        assert settings.kubelet_restart_command.startswith("nsenter --target 1")


def test_the_generated_webhook_certificate_is_valid_for_the_service(tmp_path: Path) -> None:
    docs = render(VALUE_SETS["tls"])
    env, _ = materialize(docs, "Deployment", "webhook", tmp_path)
    cert_file, key_file = (arg.split("=", 1)[1] for arg in env["GUNICORN_CMD_ARGS"].split())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)  # the key belongs to the certificate
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "nodewarden-webhook.nodewarden.svc" in names
    ca = x509.load_pem_x509_certificate(base64.b64decode(find(docs, "Secret", "nodewarden-webhook-tls")["data"]["ca.crt"]))
    cert.verify_directly_issued_by(ca)  # what Alertmanager checks with the CA it is given


def test_the_policy_configmap_is_the_shipped_policy_by_default() -> None:
    from tests.packaging.chart import ROOT

    cm = find(render({}), "ConfigMap", "nodewarden-policy")
    assert cm["data"]["remediation.yaml"].strip() == (ROOT / "rules" / "remediation.yaml").read_text().strip()
    custom = "stormProtection: {maxUnhealthy: 2}\n"
    assert yaml.safe_load(find(render({"policy": custom}), "ConfigMap", "nodewarden-policy")["data"]["remediation.yaml"]) == {
        "stormProtection": {"maxUnhealthy": 2}}


def test_bmc_credentials_are_mounted_into_the_controller_only() -> None:
    from tests.packaging.chart import container, find, render

    docs = render({"controller": {"fenceCredentialSecrets": ["bmc-rack-a"]}})
    controller = container(docs, "Deployment", "controller")
    webhook = container(docs, "Deployment", "webhook")
    env = {e["name"]: e.get("value") for e in controller["env"]}
    assert env["NODEWARDEN_CONTROLLER_FENCE_INVENTORY_FILE"] == "/etc/nodewarden/policy/remediation.yaml"
    mounts = {m["mountPath"]: m for m in controller["volumeMounts"]}
    mount = mounts["/etc/nodewarden/fence-credentials/bmc-rack-a"]
    assert mount["readOnly"] is True
    assert "/etc/nodewarden/policy" in mounts  # the inventory lives in the policy
    assert not any("fence-credentials" in m["mountPath"] for m in webhook["volumeMounts"])
    volumes = {v["name"]: v for v in find(docs, "Deployment", "nodewarden-controller")["spec"]["template"]["spec"]["volumes"]}
    webhook_volumes = find(docs, "Deployment", "nodewarden-webhook")["spec"]["template"]["spec"]["volumes"]
    assert not any("fence-cred" in v["name"] for v in webhook_volumes)  # the network-facing pods never hold them
    assert volumes[mount["name"]]["secret"]["secretName"] == "bmc-rack-a"
    assert "fence-cred-bmc-rack-a" not in str(render({}))
