"""The entry points' shared start-up: read the environment once, validate everything,
and build the app. A bad setting, secret file or policy file stops start-up with one
line naming the offending field."""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask
from kubernetes.config.config_exception import ConfigException

from core.kube import load_kube
from core.settings import SettingsError
from webhook.app import create_app
from webhook.auth import load_credentials
from webhook.logs import configure_logging
from webhook.policy import PolicyError, load_policy
from webhook.settings import WebhookSettings, settings_from_env


class StartupError(SystemExit):
    """Raised instead of a traceback: the message names what to fix."""


def validate(env: Mapping[str, str] | None = None, check_kube: bool = True) -> WebhookSettings:
    """Settings, credentials, policy and Kubernetes credentials, or `StartupError`."""
    try:
        settings = settings_from_env(os.environ if env is None else env)
        load_credentials(settings)
        load_policy(settings.policy_file)
        if check_kube:
            load_kube(settings.kubeconfig).close()
    except (SettingsError, PolicyError) as exc:
        raise StartupError(f"nodewarden-webhook: cannot start: {exc}") from None
    except (ConfigException, OSError, ValueError) as exc:
        raise StartupError(
            f"nodewarden-webhook: cannot start: kubeconfig: no usable Kubernetes credentials "
            f"(set NODEWARDEN_KUBECONFIG or KUBECONFIG, or run in a pod): {exc}"
        ) from None
    return settings


def app_from_env() -> Flask:
    settings = validate()
    configure_logging(settings.log_level)
    return create_app(settings)
