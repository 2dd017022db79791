"""Credentials (Bearer, basic, roles), settings from the environment, start-up checks."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from core.settings import SettingsError
from tests.webhook.conftest import AM_TOKEN, OPERATOR_TOKEN, WorldFactory, alert, message
from webhook.auth import AuthError, Role, load_credentials
from webhook.entry import StartupError, validate
from webhook.settings import WebhookSettings, settings_from_env


def secrets(tmp_path: Path, **files: str) -> dict[str, str]:
    paths = {}
    for name, content in files.items():
        (tmp_path / name).write_text(content)
        paths[name] = str(tmp_path / name)
    return paths


def test_bearer_and_roles(tmp_path: Path) -> None:
    p = secrets(tmp_path, am="tok-am\n", op="alice:tok-a\nbob:tok-b\n# comment\ntok-anon\n")
    creds = load_credentials(
        WebhookSettings(alertmanager_token_file=p["am"], operator_token_file=p["op"])
    )
    assert creds.identify("Bearer tok-am").role is Role.ALERTMANAGER
    assert creds.identify("bearer  tok-b ").name == "bob"
    assert creds.identify("Bearer tok-anon").name == "operator"
    for header in (None, "", "Bearer", "Bearer wrong", "Token tok-am", "tok-am", "Bearer tok-am2"):
        with pytest.raises(AuthError):
            creds.identify(header)


def test_basic_auth_for_alertmanager(tmp_path: Path) -> None:
    p = secrets(tmp_path, pw="s3cret\n", op="tok-op")
    creds = load_credentials(
        WebhookSettings(
            alertmanager_username="am",
            alertmanager_password_file=p["pw"],
            operator_token_file=p["op"],
        )
    )

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert creds.identify(basic("am", "s3cret")).role is Role.ALERTMANAGER
    assert "Basic" in creds.schemes
    for header in (basic("am", "wrong"), basic("other", "s3cret"), "Basic !!!", "Basic " + "x" * 3):
        with pytest.raises(AuthError):
            creds.identify(header)


def test_unsafe_credential_configurations_refuse_to_start(tmp_path: Path) -> None:
    p = secrets(tmp_path, same="tok\n", op="tok-op", empty="  \n", pw="pw")
    cases = [
        (WebhookSettings(operator_token_file=p["op"]), "alertmanager_token_file"),
        (WebhookSettings(alertmanager_token_file=p["same"]), "operator_token_file"),
        (
            WebhookSettings(alertmanager_token_file=p["same"], operator_token_file=p["same"]),
            "operator_token_file",
        ),
        (
            WebhookSettings(alertmanager_token_file=p["empty"], operator_token_file=p["op"]),
            "alertmanager_token_file",
        ),
        (
            WebhookSettings(
                alertmanager_token_file=str(tmp_path / "absent"), operator_token_file=p["op"]
            ),
            "alertmanager_token_file",
        ),
        (
            WebhookSettings(alertmanager_username="am", operator_token_file=p["op"]),
            "alertmanager_password_file",
        ),
    ]
    for settings, field in cases:
        with pytest.raises(SettingsError) as err:
            load_credentials(settings)
        assert err.value.field == field


def test_http_401_with_challenge(world: WorldFactory) -> None:
    w = world()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic Zm9vOmJhcg=="}):
        r = w.client.post("/api/v1/alerts", json=message(alert()), headers=headers)
        assert r.status_code == 401
        assert r.get_json()["code"] == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="nodewarden"'
    assert w.sample("nodewarden_webhook_auth_failures_total", reason="missing") == 1
    assert w.sample("nodewarden_webhook_auth_failures_total", reason="invalid") == 2


def test_auth_is_checked_before_the_body_is_read(world: WorldFactory) -> None:
    w = world(max_body_bytes=2048)
    r = w.client.post("/api/v1/alerts", data=b"x" * 10_000, content_type="text/plain")
    assert r.status_code == 401


def test_ops_endpoints_need_no_credentials(world: WorldFactory) -> None:
    w = world()
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert w.client.get(path).status_code == 200, path


def test_good_tokens_work(world: WorldFactory) -> None:
    w = world()
    r = w.client.post(
        "/api/v1/alerts", json=message(alert()), headers={"Authorization": f"Bearer {AM_TOKEN}"}
    )
    assert r.status_code == 200
    r = w.client.get("/api/v1/remediations", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert r.status_code == 200


# Settings -------------------------------------------------------------------------------


def test_settings_from_environment() -> None:
    s = settings_from_env(
        {
            "NODEWARDEN_POLICY_FILE": "/etc/nodewarden/remediation.yaml",
            "NODEWARDEN_MAX_BODY_BYTES": "2048",
            "NODEWARDEN_ALERT_RECORD_INTERVAL_S": "1m",
            "NODEWARDEN_ALLOW_UNAUTHENTICATED": "true",
            "UNRELATED": "x",
        }
    )
    assert s.policy_file == "/etc/nodewarden/remediation.yaml"
    assert s.max_body_bytes == 2048
    assert s.alert_record_interval_s == 60.0
    assert s.allow_unauthenticated is True
    defaults = settings_from_env({})
    assert (defaults.max_body_bytes, defaults.namespace, defaults.pause_configmap) == (
        1_048_576,
        "nodewarden",
        "nodewarden-control",
    )


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"NODEWARDEN_MAX_BODY_BYTES": "lots"}, "max_body_bytes"),
        ({"NODEWARDEN_MAX_BODY_BYTES": "10"}, "max_body_bytes"),
        ({"NODEWARDEN_WATCH_TIMEOUT_S": "-1s"}, "watch_timeout_s"),
        ({"NODEWARDEN_LOG_LEVEL": "chatty"}, "log_level"),
        ({"NODEWARDEN_DECISION_LOG_WINDOW_S": "-5"}, "decision_log_window_s"),
    ],
)
def test_bad_settings_name_the_field(env: dict[str, str], field: str) -> None:
    with pytest.raises(SettingsError) as err:
        settings_from_env(env)
    assert err.value.field == field


def test_startup_validation_names_what_to_fix(tmp_path: Path) -> None:
    p = secrets(tmp_path, am="a", op="o", policy="cooldown: soon\n")
    env = {
        "NODEWARDEN_ALERTMANAGER_TOKEN_FILE": p["am"],
        "NODEWARDEN_OPERATOR_TOKEN_FILE": p["op"],
        "NODEWARDEN_POLICY_FILE": p["policy"],
    }
    with pytest.raises(StartupError) as err:
        validate(env, check_kube=False)
    assert "cooldown" in str(err.value.code)
    (tmp_path / "policy").write_text("cooldown: 10m\n")
    assert validate(env, check_kube=False).policy_file == p["policy"]
    with pytest.raises(StartupError) as err:
        validate({**env, "NODEWARDEN_OPERATOR_TOKEN_FILE": p["am"]}, check_kube=False)
    assert "operator_token_file" in str(err.value.code)
    with pytest.raises(StartupError) as err:
        validate({**env, "NODEWARDEN_KUBECONFIG": str(tmp_path / "absent")})
    assert "kubeconfig" in str(err.value.code)


def test_operator_auth_modes_need_exactly_their_secrets(tmp_path: Path) -> None:
    p = secrets(tmp_path, am="tok-am", op="alice:tok-a")
    with pytest.raises(SettingsError, match="operator_token_file"):
        load_credentials(WebhookSettings(alertmanager_token_file=p["am"], operator_token_file=p["op"],
                                         operator_auth="kubernetes"))
    kube = load_credentials(WebhookSettings(alertmanager_token_file=p["am"], operator_auth="kubernetes"))
    assert kube.reviews_tokens and not kube.operator_tokens
    for mode in ("static", "both"):
        with pytest.raises(SettingsError, match="operator_token_file"):
            load_credentials(WebhookSettings(alertmanager_token_file=p["am"], operator_auth=mode))
    with pytest.raises(SettingsError, match="operator_auth"):
        settings_from_env({"NODEWARDEN_OPERATOR_AUTH": "oidc"})
    with pytest.raises(SettingsError, match="operator_reviews_in_flight"):
        settings_from_env({"NODEWARDEN_OPERATOR_REVIEWS_IN_FLIGHT": "0"})


def test_only_unknown_bearer_tokens_on_the_operator_side_are_reviewed(tmp_path: Path) -> None:
    from webhook.reviews import ReviewedUser

    p = secrets(tmp_path, am="tok-am", op="alice:tok-a")
    asked: list[str] = []

    def review(token: str) -> ReviewedUser | None:
        asked.append(token)
        return ReviewedUser("carol", groups=("ops",)) if token == "k8s-carol" else None

    both = load_credentials(WebhookSettings(alertmanager_token_file=p["am"], operator_token_file=p["op"],
                                            operator_auth="both"))
    assert both.identify("Bearer tok-a", review).name == "alice"  # static first, not reviewed
    assert both.identify("Bearer tok-am", review).role is Role.ALERTMANAGER  # compared locally only
    carol = both.identify("Bearer k8s-carol", review)
    assert (carol.role, carol.name, carol.user) == (Role.OPERATOR, "carol", ReviewedUser("carol", groups=("ops",)))
    with pytest.raises(AuthError, match="does not accept"):
        both.identify("Bearer nobody", review)
    with pytest.raises(AuthError, match="invalid"):
        both.identify("Bearer k8s-carol")  # the alerts side passes no review
    assert asked == ["k8s-carol", "nobody"]

    static = load_credentials(WebhookSettings(alertmanager_token_file=p["am"], operator_token_file=p["op"]))
    with pytest.raises(AuthError, match="invalid"):
        static.identify("Bearer k8s-carol", review)
    assert asked == ["k8s-carol", "nobody"]  # static mode never asks
