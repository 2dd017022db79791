"""The service account controller (pkg/controller/serviceaccount/serviceaccounts_controller.go,
`ServiceAccountsControllerOptions` defaults): every Active namespace gets a `default`
ServiceAccount, and one that is deleted is created again. The real controller reacts to
namespace and service-account events; this one checks every controller period.
"""

from __future__ import annotations

from ..apiserver.errors import ApiError
from .controller_config import ControllerConfig

DEFAULT_ACCOUNTS = ("default",)


class ServiceAccountsController:
    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg

    def run(self) -> None:
        cfg = self.cfg
        for (_, namespace), entry in cfg.items("namespaces"):
            if (entry.obj().get("status") or {}).get("phase", "Active") != "Active":
                continue
            for name in DEFAULT_ACCOUNTS:
                if cfg.entry("serviceaccounts", namespace, name) is not None:
                    continue
                try:
                    cfg.registry.create(cfg.rt("serviceaccounts"), namespace, {
                        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
                except ApiError:    # the namespace went away, or a client created it first
                    continue
