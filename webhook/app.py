"""The Flask application factory: builds every component once and wires them together.

`create_app(settings, kube=..., clock=...)` is the only place the webhook's parts meet:
policy, credentials, the watch-fed cache and its watcher, the Event recorder, metrics,
the writer and the actions, the handler of people's kubectl requests
(`webhook.kubectl_requests`), and the three blueprints (alerts, operator API, ops). Every
HTTP error leaves as JSON (`code`, `name`, `description`, plus `field` or `reason` when
there is one); `core.kube.Unavailable` becomes 503 so that Alertmanager retries.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable
from werkzeug.sansio.response import Response as BaseResponse

from core.clock import Clock, RealClock
from core.events import EventRecorder
from core.kube import Kube, KubeError, Unavailable, load_kube
from webhook.actions import Actions
from webhook.api.alerts import bp as alerts_bp
from webhook.api.ops import bp as ops_bp
from webhook.api.remediations import bp as remediations_bp
from webhook.auth import Credentials, load_credentials
from webhook.cache import ClusterCache
from webhook.decisions import Decisions
from webhook.history import HistoryArchive
from webhook.intake import AlertIntake
from webhook.kube import RealWebhookKube, Resource, WebhookKube
from webhook.kubectl_requests import KubectlRequests
from webhook.ledger import RateLedger
from webhook.metrics import ClusterStateCollector, WebhookMetrics
from webhook.policy import Policy, load_policy
from webhook.reviews import RealReviewApi, ReviewApi, Reviewer, ReviewKind
from webhook.services import EXTENSION, Services
from webhook.settings import WebhookSettings
from webhook.watch import Watcher
from webhook.writer import RemediationWriter

log = logging.getLogger(__name__)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class ResponseJSON(DefaultJSONProvider):
    """Flask's JSON, keys in insertion order, with one encoder for every compact response
    body: `json.dumps` with options builds a new encoder on each call. The bytes are the
    ones Flask writes."""

    sort_keys = False

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self._encode_compact = json.JSONEncoder(
            default=self.default,
            ensure_ascii=self.ensure_ascii,
            sort_keys=self.sort_keys,
            separators=(",", ":"),
        ).encode

    def response(self, *args: Any, **kwargs: Any) -> BaseResponse:
        if self.compact is False or (self.compact is None and self._app.debug):
            return super().response(*args, **kwargs)  # indented: as Flask does it
        body = self._encode_compact(self._prepare_response_obj(args, kwargs))
        return self._app.response_class(f"{body}\n", mimetype=self.mimetype)


class WebhookFlask(Flask):
    """Flask with `ResponseJSON`, timing every request it dispatches, error answers
    included, for `nodewarden_webhook_request_duration_seconds` (by route, method and
    status code).

    One override instead of a `before_request` + `after_request` pair: each hook is one
    more call through Flask's dispatch machinery on every request."""

    json_provider_class = ResponseJSON

    def full_dispatch_request(self) -> Response:
        started = time.perf_counter()
        response = super().full_dispatch_request()
        elapsed = time.perf_counter() - started
        req = request._get_current_object()  # type: ignore[attr-defined]
        rule = req.url_rule.rule if req.url_rule else "unmatched"
        method = req.method if req.method in METHODS else "OTHER"
        metrics = self.extensions[EXTENSION].metrics
        metrics.child(metrics.request_duration, rule, method, str(response.status_code)).observe(
            elapsed
        )
        return response


def create_app(
    settings: WebhookSettings,
    kube: WebhookKube | None = None,
    clock: Clock | None = None,
    *,
    policy: Policy | None = None,
    credentials: Credentials | None = None,
    metrics: WebhookMetrics | None = None,
    reviews: ReviewApi | None = None,
    start: bool = True,
) -> Flask:
    """Build the app. `start=False` leaves the watcher and Event threads unstarted.
    `reviews` answers operators' TokenReviews and SubjectAccessReviews (default: the
    API server behind `kube`)."""
    clock = clock or RealClock()
    policy = policy if policy is not None else load_policy(settings.policy_file)
    credentials = credentials if credentials is not None else load_credentials(settings)
    if kube is None:
        kube = RealWebhookKube(
            load_kube(settings.kubeconfig, settings.kube_request_timeout_s),
            settings.namespace,
            settings.pause_configmap,
        )
    metrics = metrics or WebhookMetrics()
    reviewer = _reviewer(settings, credentials, kube, reviews, clock, metrics)
    cache = ClusterCache()
    m = metrics

    def count_watch_error(resource: Resource, exc: KubeError) -> None:
        m.watch_errors.labels(str(resource)).inc()

    def count_kube_error(operation: str, exc: KubeError) -> None:
        m.kube_errors.labels(operation, type(exc).__name__).inc()

    recorder = EventRecorder(
        kube,
        clock,
        settings.event_namespace,
        settings.instance_name,
        settings.event_queue_size,
        settings.event_dedup_window_s,
        count=lambda result: m.child(m.events, result).inc(),
    )
    archive = HistoryArchive(kube, clock, settings.history_per_node, count_kube_error)
    writer = RemediationWriter(
        kube, cache, clock, settings.alert_record_interval_s, count_kube_error, archive
    )
    decisions = Decisions(
        cache, policy, clock, recorder, metrics, settings.decision_log_window_s
    )
    ledger = RateLedger(kube, clock)
    actions = Actions(decisions, writer, cache, ledger, read_node=kube.get_node)
    kubectl_requests = KubectlRequests(cache, writer, decisions, ledger, clock)
    watcher = Watcher(kube, cache, settings.watch_timeout_s, on_error=count_watch_error,
                      on_remediation=kubectl_requests.notify,
                      on_remediation_deleted=kubectl_requests.deleted)
    svc = Services(
        settings=settings,
        policy=policy,
        credentials=credentials,
        kube=kube,
        clock=clock,
        cache=cache,
        watcher=watcher,
        recorder=recorder,
        metrics=metrics,
        state_collector=ClusterStateCollector(cache, policy),
        writer=writer,
        decisions=decisions,
        actions=actions,
        intake=AlertIntake(actions, decisions, policy, clock, metrics),
        reviewer=reviewer,
        kubectl_requests=kubectl_requests,
    )

    app = WebhookFlask("webhook")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions[EXTENSION] = svc
    app.url_map.strict_slashes = False  # no HTML redirects: every answer is JSON
    app.url_map.merge_slashes = False

    app.register_blueprint(alerts_bp)
    app.register_blueprint(remediations_bp)
    app.register_blueprint(ops_bp)
    _install_error_handlers(app)

    if start:
        watcher.start()
        recorder.start()
        kubectl_requests.start()
    return app


def _reviewer(
    settings: WebhookSettings,
    credentials: Credentials,
    kube: WebhookKube,
    reviews: ReviewApi | None,
    clock: Clock,
    metrics: WebhookMetrics,
) -> Reviewer | None:
    """The operators' TokenReview/SubjectAccessReview client, when Kubernetes tokens count."""
    if not credentials.reviews_tokens:
        return None
    if reviews is None:
        real = getattr(kube, "kube", None)
        if not isinstance(real, Kube):
            raise ValueError("operator_auth needs a ReviewApi, or a kube backed by the API server")
        reviews = RealReviewApi(real)
    m = metrics

    def observe(kind: ReviewKind, seconds: float) -> None:
        m.child(m.auth_reviews, str(kind)).observe(seconds)

    def failed(kind: ReviewKind, reason: str) -> None:
        m.child(m.auth_review_failures, str(kind), reason).inc()

    return Reviewer(
        reviews,
        clock,
        audiences=tuple(settings.operator_token_audiences),
        cache_s=settings.operator_review_cache_s,
        cache_size=settings.operator_review_cache_size,
        max_in_flight=settings.operator_reviews_in_flight,
        observe=observe,
        failed=failed,
    )


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        body: dict[str, Any] = {
            "code": exc.code,
            "name": exc.name,
            "description": exc.description,
        }
        body.update(getattr(exc, "extra", {}) or {})
        response = jsonify(body)
        response.status_code = exc.code or 500
        for key, value in (getattr(exc, "headers", None) or {}).items():
            response.headers[key] = value
        if exc.code == 405 and isinstance(exc, HTTPException):
            allow = exc.get_headers()
            for key, value in allow:
                if key.lower() == "allow":
                    response.headers["Allow"] = value
        return response

    @app.errorhandler(Unavailable)
    def _unavailable(exc: Unavailable) -> Response:
        log.warning("API server unavailable: %s", exc)
        problem = ServiceUnavailable("the Kubernetes API server is unreachable; retry later")
        response = _http_error(problem)
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return _http_error(exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _http_error(InternalServerError("internal error; see the webhook's log"))
