"""What the Helm chart grants nodewarden's identities, for the test worlds: the chart
rendered with the real Helm engine (helm-python-sdk), and from it the RBAC objects and
the admission policy a world's simulated API server enforces. A world thus runs every
product identity with exactly the permissions an install would give it.

    apply_security(cluster.api, policy_doc)   # RBAC + ValidatingAdmissionPolicy, RBAC on
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "helm" / "nodewarden"
RELEASE = "nodewarden"
NAMESPACE = "nodewarden"
EVENT_NAMESPACE = "default"
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
ADMISSION_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


@functools.cache
def _chart() -> Any:
    import helm_python  # a test-side dependency: only worlds render the chart

    return helm_python.Chart.load(str(CHART))


@functools.cache
def _render(values_json: str) -> tuple[str, ...]:
    files = _chart().render(json.loads(values_json), name=RELEASE, namespace=NAMESPACE, is_install=True)
    return tuple(text for path, text in sorted(files.items()) if path.endswith(".yaml"))


def security_manifests(policy_doc: dict[str, Any] | None = None,
                       values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The RBAC and admission-policy objects the chart renders for a release whose
    remediation policy is `policy_doc` (the chart grants pod and VolumeAttachment deletion
    only to a policy that uses ResourceDeletion)."""
    all_values: dict[str, Any] = {"eventNamespace": EVENT_NAMESPACE, **(values or {})}
    if policy_doc is not None:
        all_values["policy"] = yaml.safe_dump(policy_doc)
    docs = [d for text in _render(json.dumps(all_values, sort_keys=True)) for d in yaml.safe_load_all(text) if d]
    return [d for d in docs if d.get("kind") in RBAC_KINDS + ADMISSION_KINDS]


def apply_security(api: Any, policy_doc: dict[str, Any] | None = None,
                   values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Create the chart's RBAC and admission objects (rendered with `values`) in `api` (a
    sim ApiServer) and turn RBAC enforcement on. Returns what was created."""
    docs = security_manifests(policy_doc, values)
    for ns in {d["metadata"].get("namespace") for d in docs} - {None}:
        rt = api.resource("namespaces")
        if api.store.get(api.registry.table(rt), "", ns) is None:
            api.registry.create(rt, "", {"metadata": {"name": ns}})
    for doc in docs:
        rt = api.types.by_kind(doc["apiVersion"], doc["kind"])
        api.registry.create(rt, doc["metadata"].get("namespace", ""), doc)
    api.enable_rbac()
    return docs


def operator_user(api: Any, name: str, cluster_role: str | None = f"{RELEASE}-operator") -> str:
    """A person `name` with a token of their own (what their kubeconfig holds), bound to
    the chart's operator ClusterRole (or to `cluster_role`; None: bound to nothing).
    Returns the token."""
    token: str = api.add_identity(name)
    if cluster_role:
        rt = api.types.by_kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
        api.registry.create(rt, "", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{_object_name(name)}-{cluster_role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}]})
    return token


def _object_name(user: str) -> str:
    """`user` if it is a valid object name, else a stable one derived from it."""
    if len(user) <= 100 and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", user):
        return user
    return "user-" + hashlib.sha256(user.encode()).hexdigest()[:16]
