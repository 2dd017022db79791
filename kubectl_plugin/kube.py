"""Every Kubernetes API call the plugin makes, with the user's own kubeconfig.

The user's credentials (`--kubeconfig`, else $KUBECONFIG, else ~/.kube/config; `--context`)
through the official client; errors are `core.kube` errors. Each call names the request it
makes (`Need`: verb, resource, name, namespace), so a refusal can say exactly what the
user lacks: `Refused` carries the need and the API server's message, and the CLI adds who
the user is (a SelfSubjectReview, what `kubectl auth whoami` asks).

Writes follow the contract the webhook and controller read:
- request: create NodeRemediation `<node>` with annotation `nodewarden.io/requested-by`
  and spec `{nodeName, trigger: {source: kubectl, reason}}` (+ `force: true` only when
  asked);
- approve / cancel: merge-patch the annotations `nodewarden.io/approved-by`, or
  `nodewarden.io/cancelled-by` + `nodewarden.io/cancel-reason`, guarded by the
  resourceVersion read (so an approval never lands on a newer remediation of the node);
- pause / resume: the pause switch, ConfigMap `data.paused` / `data.reason`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config

from core import history, names
from core.kube import JSON, Forbidden, KubeError, NotFound, call, expect_object

TIMEOUT = (5.0, 15.0)


@dataclass(frozen=True)
class Need:
    verb: str
    resource: str  # plural.group, as kubectl spells it
    name: str = ""
    namespace: str = ""

    def describe(self) -> str:
        out = f"{self.verb} {self.resource}"
        if self.name:
            out += f' "{self.name}"'
        if self.namespace:
            out += f' in namespace "{self.namespace}"'
        else:
            out += " (cluster-scoped)"
        return out


class Refused(KubeError):
    """403: the user may not make this request."""

    def __init__(self, need: Need, exc: KubeError) -> None:
        super().__init__(exc.status, exc.reason, exc.message)
        self.need = need


REMEDIATIONS = f"{names.PLURAL}.{names.GROUP}"
RECORDS = f"{history.RECORD_PLURAL}.{names.GROUP}"


class PluginKube:
    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        configuration = client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG") or None
        if path and os.pathsep in path:
            path = next((p for p in path.split(os.pathsep) if p and os.path.exists(p)), path)
        config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
        configuration.retries = False
        self.host = str(configuration.host)
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.authn = client.AuthenticationV1Api(self.api)

    def _do(self, need: Need, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(fn, *args, _request_timeout=TIMEOUT, **kwargs)
        except Forbidden as exc:
            raise Refused(need, exc) from exc

    def _raw(self, need: Need, fn: Any, *args: Any, **kwargs: Any) -> JSON:
        """A typed-API call whose answer is taken as JSON (ConfigMaps, reviews)."""
        import json

        resp = self._do(need, fn, *args, _preload_content=False, **kwargs)
        try:
            return expect_object(json.loads(resp.data))
        finally:
            resp.release_conn()

    # Who am I --------------------------------------------------------------------------

    def whoami(self) -> JSON:
        """The caller's userInfo ({username, groups, ...}) from a SelfSubjectReview."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        review = self._raw(Need("create", "selfsubjectreviews.authentication.k8s.io"),
                           self.authn.create_self_subject_review, body)
        return dict((review.get("status") or {}).get("userInfo") or {})

    # NodeRemediations ----------------------------------------------------------------

    def list_remediations(self) -> list[JSON]:
        result = self._do(Need("list", REMEDIATIONS), self.custom.list_cluster_custom_object,
                          names.GROUP, names.VERSION, names.PLURAL)
        return [i for i in expect_object(result).get("items") or [] if isinstance(i, dict)]

    def get_remediation(self, node: str) -> JSON | None:
        try:
            return expect_object(self._do(Need("get", REMEDIATIONS, node), self.custom.get_cluster_custom_object,
                                          names.GROUP, names.VERSION, names.PLURAL, node))
        except NotFound:
            return None

    def create_remediation(self, body: JSON) -> JSON:
        return expect_object(self._do(Need("create", REMEDIATIONS), self.custom.create_cluster_custom_object,
                                      names.GROUP, names.VERSION, names.PLURAL, body))

    def annotate_remediation(self, node: str, annotations: dict[str, str], resource_version: str) -> JSON:
        patch = {"metadata": {"annotations": annotations, "resourceVersion": resource_version}}
        return expect_object(self._do(Need("patch", REMEDIATIONS, node), self.custom.patch_cluster_custom_object,
                                      names.GROUP, names.VERSION, names.PLURAL, node, patch))

    # History ---------------------------------------------------------------------------

    def list_records(self, node: str) -> list[JSON]:
        result = self._do(Need("list", RECORDS), self.custom.list_cluster_custom_object,
                          names.GROUP, names.VERSION, history.RECORD_PLURAL,
                          label_selector=history.node_selector(node))
        items = [i for i in expect_object(result).get("items") or [] if isinstance(i, dict)]
        return [i for i in items if (i.get("remediation") or {}).get("nodeName") == node]

    # The pause switch ------------------------------------------------------------------

    def get_configmap(self, namespace: str, name: str) -> JSON | None:
        try:
            return self._raw(Need("get", "configmaps", name, namespace),
                             self.core.read_namespaced_config_map, name, namespace)
        except NotFound:
            return None

    def create_configmap(self, namespace: str, name: str, data: dict[str, str]) -> JSON:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
                "data": data}
        return self._raw(Need("create", "configmaps", name, namespace),
                         self.core.create_namespaced_config_map, namespace, body)

    def patch_configmap(self, namespace: str, name: str, data: dict[str, str]) -> JSON:
        return self._raw(Need("patch", "configmaps", name, namespace),
                         self.core.patch_namespaced_config_map, name, namespace, {"data": data})
