"""The webhook's settings, read once at an entry point from `NODEWARDEN_*` variables.

Every field is read from `NODEWARDEN_<FIELD NAME IN CAPITALS>`; durations (`*_s`) take
seconds or Go-style strings ("30s", "5m"). Secrets are never values here, only paths of
files that hold them. `docs/webhook.md` lists every variable with its default.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from core import names
from core.settings import SettingsError, load_settings

ENV_PREFIX = "NODEWARDEN_"
OPERATOR_AUTH_MODES = ("static", "kubernetes", "both")


@dataclass(frozen=True)
class WebhookSettings:
    # Policy and credentials.
    policy_file: str = "rules/remediation.yaml"
    alertmanager_token_file: str | None = None
    alertmanager_username: str | None = None
    alertmanager_password_file: str | None = None
    operator_token_file: str | None = None
    # How operators authenticate: static (named tokens from operator_token_file),
    # kubernetes (their own Kubernetes token: TokenReview, then a SubjectAccessReview
    # per action), or both (a static token first, else Kubernetes).
    operator_auth: str = "static"
    operator_token_audiences: list[str] = field(default_factory=list)  # TokenReview audiences
    operator_review_cache_s: float = 10.0  # positive reviews are reused this long (0: never)
    operator_review_cache_size: int = 4096  # entries per worker process, per kind of review
    operator_reviews_in_flight: int = 8  # per worker process; beyond it: 429 at once
    allow_unauthenticated: bool = False  # development only: no credential is checked
    # Kubernetes.
    kubeconfig: str | None = None  # else $KUBECONFIG, else in-cluster
    namespace: str = names.DEFAULT_NAMESPACE  # where the pause switch ConfigMap lives
    pause_configmap: str = "nodewarden-control"
    event_namespace: str = "default"  # Events about Nodes live in "default", like kubelet's
    kube_request_timeout_s: float = 5.0
    watch_timeout_s: float = 300.0
    cache_sync_wait_s: float = 2.0  # how long a request waits for the first sync
    # Requests.
    max_body_bytes: int = 1_048_576
    alert_record_interval_s: float = 30.0  # repeats of one alert are written at most this often
    history_per_node: int = 20  # NodeRemediationRecords kept per node (the newest)
    # Events.
    event_queue_size: int = 1000
    event_dedup_window_s: float = 60.0
    # Identity and logging.
    instance: str | None = None  # reportingInstance of Events; default host name
    log_level: str = "INFO"
    decision_log_window_s: float = 60.0  # identical decision lines are logged once per window
    bind: str = "0.0.0.0:8080"  # used by gunicorn.conf.py and `python -m webhook`

    @property
    def instance_name(self) -> str:
        return self.instance or socket.gethostname()


def settings_from_env(env: Mapping[str, str] | None = None) -> WebhookSettings:
    """Read the settings from `env` (default: the process environment)."""
    source = os.environ if env is None else env
    settings = load_settings(WebhookSettings, env=source, env_prefix=ENV_PREFIX)
    if settings.max_body_bytes < 1024:
        raise SettingsError("max_body_bytes", "must be at least 1024")
    if settings.decision_log_window_s < 0:
        raise SettingsError("decision_log_window_s", "must not be negative (0 logs every decision)")
    if settings.history_per_node < 1:
        raise SettingsError("history_per_node", "must be at least 1")
    if settings.event_queue_size < 1:
        raise SettingsError("event_queue_size", "must be at least 1")
    if settings.operator_auth not in OPERATOR_AUTH_MODES:
        raise SettingsError(
            "operator_auth", f"expected one of {', '.join(OPERATOR_AUTH_MODES)}, "
            f"got {settings.operator_auth!r}"
        )
    if settings.operator_review_cache_s < 0 or settings.operator_review_cache_s > 300:
        raise SettingsError("operator_review_cache_s", "must be between 0 and 300 seconds")
    if settings.operator_review_cache_size < 1:
        raise SettingsError("operator_review_cache_size", "must be at least 1")
    if settings.operator_reviews_in_flight < 1:
        raise SettingsError("operator_reviews_in_flight", "must be at least 1")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(
            "log_level", f"expected DEBUG, INFO, WARNING or ERROR, got {settings.log_level!r}"
        )
    return settings
