"""The composition root of the emulated API server: store, registry, HTTP(S) server,
identities with their kubeconfigs, and the namespaces and nodes a new cluster starts with.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import kubeconfig, rbac, tls
from .admission import PolicyAdmission
from .auth import AuditLog, Identities, Identity, service_account
from .http import App, Gate, HTTPServerThread
from .registry import Registry
from .resources import ResourceRegistry
from .reviews import Reviews
from .routes import ApiRoutes
from .store import Store

log = logging.getLogger("sim.server")

ADMIN = "admin"
WEBHOOK = "system:serviceaccount:nodewarden:nodewarden-webhook"
CONTROLLER = "system:serviceaccount:nodewarden:nodewarden-controller"
AUTHORIZATION_MODES = ("AlwaysAllow", "RBAC")
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def agent_identity(node: str) -> str:
    """The handle of node `node`'s agent token: the DaemonSet's one service account
    (system:serviceaccount:nodewarden:nodewarden-agent), bound to the pod on that node."""
    return f"system:serviceaccount:nodewarden:nodewarden-agent:{node}"


class ApiServer:
    """An emulated kube-apiserver on loopback. Use `start()`/`stop()` or `with`.

    `authorization`: "AlwaysAllow" (every authenticated caller may do anything) or "RBAC"
    (the Roles and bindings in the store decide; `enable_rbac()` switches later).
    ValidatingAdmissionPolicies in the store always apply to clients' writes."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, use_tls: bool = True,
                 workdir: str | Path | None = None, clock: Callable[[], float] = time.time,
                 watch_history: int = 5000, gate: Gate | None = None,
                 authorization: str = "AlwaysAllow") -> None:
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="nodewarden-sim-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.clock = clock
        self.store = Store(history=watch_history)
        self.types = ResourceRegistry()
        self.registry = Registry(self.store, self.types, clock)
        self.identities = Identities()
        self.audit = AuditLog()
        self.tls = tls.generate((host, "localhost")) if use_tls else None
        self.routes = ApiRoutes(self.registry, self.audit, lambda: f"{host}:{self.port}", clock)
        self.app = App(self.identities, self.audit, self.routes, gate)
        ctx = self.tls.context(self.workdir / "pki") if self.tls else None
        self.http = HTTPServerThread(self.app, host, port, ctx)
        self.identities.add(Identity(ADMIN, ("system:masters", "system:authenticated")))
        self.identities.add(service_account(WEBHOOK))
        self.identities.add(service_account(CONTROLLER))
        self.authorizer = rbac.Authorizer(self.store)
        self.routes.reviews = Reviews(self.identities, lambda: self.routes.authorizer, self.audit, clock)
        self.registry.validating.append(PolicyAdmission(self.store))
        for ns in SYSTEM_NAMESPACES:
            self.registry.create(self.types.lookup("", "v1", "namespaces"), "",  # type: ignore[arg-type]
                                 {"metadata": {"name": ns}})
        for obj in rbac.bootstrap():
            plural = obj["kind"].lower() + "s"
            self.registry.create(self.resource(plural, rbac.GROUP), "", obj)
        if authorization not in AUTHORIZATION_MODES:
            raise ValueError(f"authorization mode {authorization!r} is not one of {AUTHORIZATION_MODES}")
        if authorization == "RBAC":
            self.enable_rbac()

    # -- lifecycle --------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.http.port

    @property
    def url(self) -> str:
        return self.http.url

    def start(self) -> ApiServer:
        self.http.start()
        log.info("API server listening on %s", self.url)
        return self

    def stop(self) -> None:
        self.store.close()
        self.http.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_gate(self, gate: Gate) -> None:
        self.app.gate = gate

    def enable_rbac(self, enabled: bool = True) -> None:
        """Authorize every request by RBAC (True) or allow every authenticated one."""
        self.routes.authorizer = self.authorizer if enabled else None

    @property
    def rbac_enabled(self) -> bool:
        return self.routes.authorizer is not None

    # -- identities -------------------------------------------------------------------

    def add_identity(self, name: str, node: str = "", groups: tuple[str, ...] = ()) -> str:
        """A token for `name`: a username, or a service account's handle; a service
        account with a node is a pod's bound token there (its extra names the node)."""
        return self.identities.add(service_account(name, node, groups))

    def write_kubeconfig(self, path: str | Path, identity: str = ADMIN) -> Path:
        token = self.identities.token_for(identity)
        if token is None:
            raise KeyError(f"unknown identity {identity!r}")
        return kubeconfig.write(path, self.url, token, identity.rsplit(":", 1)[-1],
                                self.tls.ca_pem if self.tls else None)

    def write_service_account(self, directory: str | Path, identity: str) -> dict[str, str]:
        """What a pod running as `identity` is given: `token`, `ca.crt` and `namespace` in
        `directory` (as kubelet mounts them at /var/run/secrets/kubernetes.io/serviceaccount)
        and the environment that names the API server (KUBERNETES_SERVICE_HOST/PORT).
        In-cluster loaders need TLS: the server must have been started with it."""
        token = self.identities.token_for(identity)
        if token is None:
            raise KeyError(f"unknown identity {identity!r}")
        if self.tls is None:
            raise RuntimeError("a service account needs an API server with TLS")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "token").write_text(token)
        (d / "ca.crt").write_bytes(self.tls.ca_pem)
        parts = identity.split(":")
        (d / "namespace").write_text(parts[2] if len(parts) > 2 and parts[0] == "system" else "default")
        return {"KUBERNETES_SERVICE_HOST": self.host, "KUBERNETES_SERVICE_PORT": str(self.port)}

    # -- convenience for building worlds ------------------------------------------------

    def resource(self, plural: str, group: str = "", version: str = "v1") -> Any:
        rt = self.types.lookup(group, version, plural)
        if rt is None:
            raise KeyError(f"no resource {plural}.{group}/{version}")
        return rt


def node_object(name: str, index: int, now: float, boot_id: str | None = None,
                labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Node as a kubelet registers it, Ready, with the usual conditions."""
    from ..timefmt import rfc3339

    ts = rfc3339(now)
    conditions = [
        {"type": t, "status": "False", "reason": r, "message": m,
         "lastHeartbeatTime": ts, "lastTransitionTime": ts}
        for t, r, m in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        )
    ]
    conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "message": "kubelet is posting ready status", "lastHeartbeatTime": ts,
                       "lastTransitionTime": ts})
    all_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                  "beta.kubernetes.io/arch": "amd64"}
    all_labels.update(labels or {})
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": all_labels},
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        "status": {
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": f"10.0.0.{10 + index}"},
                          {"type": "Hostname", "address": name}],
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "nodeInfo": {
                "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex,
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                "bootID": boot_id or str(uuid.uuid4()),
                "kernelVersion": "6.1.0-sim", "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24", "kubeletVersion": "v1.32.0",
                "kubeProxyVersion": "v1.32.0", "operatingSystem": "linux", "architecture": "amd64",
            },
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        },
    }
