"""What every request handler reaches: the webhook's wired components (`Services`,
built once by `webhook.app.create_app`) and `ApiProblem`, the JSON error every handler
raises. The blueprints import this module, never the app factory, so the arrows go one
way: app -> blueprints -> services -> components.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from core.clock import Clock
from core.events import EventRecorder
from webhook.actions import Actions
from webhook.auth import Credentials
from webhook.cache import ClusterCache
from webhook.decisions import Decisions
from webhook.intake import AlertIntake
from webhook.kube import WebhookKube
from webhook.kubectl_requests import KubectlRequests
from webhook.metrics import ClusterStateCollector, WebhookMetrics
from webhook.policy import Policy
from webhook.reviews import Reviewer
from webhook.settings import WebhookSettings
from webhook.watch import Watcher
from webhook.writer import RemediationWriter

EXTENSION = "nodewarden"


class ApiProblem(HTTPException):
    """An HTTP error with extra JSON fields (`field`, `reason`, ...)."""

    def __init__(self, code: int, description: str, **extra: Any) -> None:
        super().__init__(description)
        self.code = code
        self.extra = extra
        self.headers: dict[str, str] = {}

    @property
    def name(self) -> str:
        return HTTP_STATUS_CODES.get(self.code or 500, "Error")


@dataclass
class Services:
    settings: WebhookSettings
    policy: Policy
    credentials: Credentials
    kube: WebhookKube
    clock: Clock
    cache: ClusterCache
    watcher: Watcher
    recorder: EventRecorder
    metrics: WebhookMetrics
    state_collector: ClusterStateCollector
    writer: RemediationWriter
    decisions: Decisions
    actions: Actions
    intake: AlertIntake
    reviewer: Reviewer | None = None  # operators' Kubernetes tokens (operator_auth != static)
    kubectl_requests: KubectlRequests | None = None
    reachable_at: float = -1.0  # monotonic time of the last successful ping

    def stop(self) -> None:
        self.watcher.stop()
        self.recorder.stop()
        if self.kubectl_requests is not None:
            self.kubectl_requests.stop()

    def require_synced(self) -> None:
        """Wait briefly for the first sync; never decide on a view that is not current."""
        if not self.cache.wait_synced(self.settings.cache_sync_wait_s):
            raise ApiProblem(
                503,
                "the cluster view is not synced with the API server yet",
                reason="CacheNotSynced",
            )


def services() -> Services:
    svc: Services = current_app.extensions[EXTENSION]
    return svc
