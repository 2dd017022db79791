"""The resource types the emulated API server serves, and how to find one by URL.

Built-in types are declared here; custom resources are added when a
CustomResourceDefinition is created (and removed when it is deleted).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    # Field selector labels this type supports besides metadata.name/metadata.namespace.
    field_labels: tuple[str, ...] = ()
    custom: bool = False  # served from a CRD
    # For custom resources: the CRD's openAPIV3Schema, printer columns and scale info.
    schema: dict | None = field(default=None, compare=False, hash=False)
    printer_columns: tuple = field(default=(), compare=False, hash=False)
    # Deleting objects of this kind is graceful by default (pods).
    graceful_delete: bool = False
    # Storage key shared by several served versions (events in core/v1 and events.k8s.io).
    storage: str = ""
    # A review (SubjectAccessReview, TokenReview, ...): create only, answered, never stored.
    virtual: bool = False
    # Subresources besides status: "eviction" (pods), "scale" (the replicated workloads).
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def storage_key(self) -> str:
        return self.storage or f"{self.group}/{self.plural}"

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def url_base(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


def _builtin() -> list[ResourceType]:
    core = ""
    return [
        ResourceType(core, "v1", "namespaces", "Namespace", False, "namespace", ("ns",),
                     ("all",), status_subresource=True, field_labels=("status.phase",)),
        ResourceType(core, "v1", "nodes", "Node", False, "node", ("no",),
                     status_subresource=True, field_labels=("spec.unschedulable",)),
        ResourceType(core, "v1", "pods", "Pod", True, "pod", ("po",), ("all",),
                     status_subresource=True, graceful_delete=True, subresources=("eviction",),
                     field_labels=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                                   "spec.serviceAccountName", "spec.hostNetwork",
                                   "status.phase", "status.podIP", "status.nominatedNodeName")),
        ResourceType(core, "v1", "events", "Event", True, "event", ("ev",),
                     field_labels=("involvedObject.kind", "involvedObject.namespace",
                                   "involvedObject.name", "involvedObject.uid",
                                   "involvedObject.apiVersion", "involvedObject.resourceVersion",
                                   "involvedObject.fieldPath", "reason", "reportingComponent",
                                   "source", "type"),
                     storage="events"),
        ResourceType(core, "v1", "configmaps", "ConfigMap", True, "configmap", ("cm",)),
        ResourceType(core, "v1", "secrets", "Secret", True, "secret", (), field_labels=("type",)),
        ResourceType(core, "v1", "serviceaccounts", "ServiceAccount", True, "serviceaccount", ("sa",)),
        ResourceType(core, "v1", "services", "Service", True, "service", ("svc",), ("all",),
                     status_subresource=True),
        ResourceType(core, "v1", "persistentvolumes", "PersistentVolume", False,
                     "persistentvolume", ("pv",), status_subresource=True),
        ResourceType(core, "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True,
                     "persistentvolumeclaim", ("pvc",), status_subresource=True),
        ResourceType("events.k8s.io", "v1", "events", "Event", True, "event", ("ev",),
                     field_labels=("regarding.kind", "regarding.namespace", "regarding.name",
                                   "regarding.uid", "reason", "reportingController", "type"),
                     storage="events"),
        ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True, "lease"),
        ResourceType("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", False,
                     "volumeattachment", status_subresource=True),
        ResourceType("apps", "v1", "deployments", "Deployment", True, "deployment", ("deploy",),
                     ("all",), status_subresource=True, subresources=("scale",)),
        ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, "replicaset", ("rs",),
                     ("all",), status_subresource=True, subresources=("scale",)),
        ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, "statefulset", ("sts",),
                     ("all",), status_subresource=True, subresources=("scale",)),
        ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, "daemonset", ("ds",),
                     ("all",), status_subresource=True),
        ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True,
                     "poddisruptionbudget", ("pdb",), status_subresource=True),
        *_security(),
        ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                     "CustomResourceDefinition", False, "customresourcedefinition",
                     ("crd", "crds"), status_subresource=True),
    ]


def _security() -> list[ResourceType]:
    """RBAC, admission policies, and the reviews that answer "who am I" and "may I"."""
    rbac, adm = "rbac.authorization.k8s.io", "admissionregistration.k8s.io"
    authz, authn = "authorization.k8s.io", "authentication.k8s.io"
    return [
        ResourceType(rbac, "v1", "roles", "Role", True, "role"),
        ResourceType(rbac, "v1", "rolebindings", "RoleBinding", True, "rolebinding"),
        ResourceType(rbac, "v1", "clusterroles", "ClusterRole", False, "clusterrole"),
        ResourceType(rbac, "v1", "clusterrolebindings", "ClusterRoleBinding", False, "clusterrolebinding"),
        ResourceType(adm, "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", False,
                     "validatingadmissionpolicy", status_subresource=True),
        ResourceType(adm, "v1", "validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding",
                     False, "validatingadmissionpolicybinding"),
        ResourceType(authz, "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, virtual=True),
        ResourceType(authz, "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False, virtual=True),
        ResourceType(authz, "v1", "subjectaccessreviews", "SubjectAccessReview", False, virtual=True),
        ResourceType(authz, "v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", True, virtual=True),
        ResourceType(authn, "v1", "tokenreviews", "TokenReview", False, virtual=True),
        ResourceType(authn, "v1", "selfsubjectreviews", "SelfSubjectReview", False, virtual=True),
    ]


# Preferred order of groups in discovery (core first, then as a real server lists them).
GROUP_ORDER = ["", "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
               "policy", "coordination.k8s.io", "rbac.authorization.k8s.io", "storage.k8s.io",
               "admissionregistration.k8s.io", "apiextensions.k8s.io"]


class ResourceRegistry:
    """Thread-safe lookup of served resource types; CRDs add and remove types."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in _builtin():
            self._types[(rt.group, rt.version, rt.plural)] = rt

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in list(self._types.values()):
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def group_versions(self) -> dict[str, list[str]]:
        """group -> served versions (preferred first)."""
        out: dict[str, list[str]] = {}
        for rt in self.all():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self.all() if rt.group == group and rt.version == version]

    def add_custom(self, types: list[ResourceType]) -> None:
        with self._lock:
            for rt in types:
                self._types[(rt.group, rt.version, rt.plural)] = rt

    def remove_custom(self, group: str, plural: str) -> None:
        with self._lock:
            for key in [k for k, rt in self._types.items()
                        if rt.custom and rt.group == group and rt.plural == plural]:
                del self._types[key]
