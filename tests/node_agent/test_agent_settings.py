"""Settings: defaults, precedence (file < environment < options), errors that name the
field, and the published isolation-detect bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import SettingsError
from node_agent.cli import load
from node_agent.settings import AgentSettings, load_agent_settings


def test_defaults_follow_the_documented_reasons() -> None:
    s = load_agent_settings({}, {}, {"node_name": "n1"})
    assert (s.api_check_interval_s, s.api_failure_threshold, s.isolation_timeout_s) == (5.0, 3, 10.0)
    assert (s.watchdog_timeout_s, s.feed_interval_s(15.0)) == (15.0, 5.0)
    assert s.reboot_fallback_enabled is False
    assert s.boot_id_source == "file:/proc/sys/kernel/random/boot_id"
    assert s.namespace == "nodewarden"
    assert s.lease_duration == 15.0


def test_isolation_detect_formula() -> None:
    s = load_agent_settings({}, {}, {"node_name": "n1"})
    # threshold x max(I, 2A) + 2A + isolation + (max(2A, P) + 2 tick)
    assert s.isolation_detect_s == 3 * 5 + 4 + 10 + (4 + 1)
    slow_api = load_agent_settings({"api_check_timeout_s": "10s", "api_check_interval_s": "15s",
                                    "isolation_timeout_s": "30s", "loop_tick_s": "1s"}, {}, {"node_name": "n"})
    assert slow_api.isolation_detect_s == 3 * 20 + 20 + 30 + (20 + 2)


def test_file_then_environment_then_options(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("api-check-interval-s: 10s\nwatchdog_path: /from/file\nlisten: 0.0.0.0:1\n")
    env = {"NODEWARDEN_AGENT_API_CHECK_INTERVAL_S": "750ms", "NODEWARDEN_AGENT_LISTEN": "127.0.0.1:2",
           "NODEWARDEN_AGENT_NODE_NAME": "from-env"}
    s = load(["--config", str(config), "--listen", "127.0.0.1:3"], env)
    assert s.api_check_interval_s == 0.75
    assert s.watchdog_path == "/from/file"
    assert s.listen == "127.0.0.1:3"
    assert s.node_name == "from-env"
    s2 = load(["--node-name", "opt", "--watchdog", "/dev/wd1", "--advertise", "https://10.0.0.1:9471"], env)
    assert (s2.node_name, s2.watchdog_path, s2.advertise_url) == ("opt", "/dev/wd1", "https://10.0.0.1:9471")
    assert s2.tls_enabled is False


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({}, "node_name"),
        ({"node_name": "n", "api_check_interval_s": "soon"}, "api_check_interval_s"),
        ({"node_name": "n", "api_check_interval_s": 0}, "api_check_interval_s"),
        ({"node_name": "n", "api_failure_threshold": 0}, "api_failure_threshold"),
        ({"node_name": "n", "watchdog_feed_interval_s": 40}, "watchdog_feed_interval_s"),
        ({"node_name": "n", "peer_api_timeout_s": 5, "peer_request_timeout_s": 5}, "peer_api_timeout_s"),
        ({"node_name": "n", "too_few_peers_action": "panic"}, "too_few_peers_action"),
        ({"node_name": "n", "outage_quorum": "some"}, "outage_quorum"),
        ({"node_name": "n", "control_plane": "maybe"}, "control_plane"),
        ({"node_name": "n", "listen": "nowhere"}, "listen"),
        ({"node_name": "n", "advertise_url": "ftp://x"}, "advertise_url"),
        ({"node_name": "n", "tls_cert_file": "/c"}, "tls_cert_file"),
        ({"node_name": "n", "boot_id_source": "bios"}, "boot_id_source"),
        ({"node_name": "n", "peers": ["nourl"]}, "peers"),
        ({"node_name": "n", "log_level": "LOUD"}, "log_level"),
        ({"node_name": "n", "no_such_setting": 1}, "no_such_setting"),
        ({"node_name": "n", "reboot_fallback_enabled": "perhaps"}, "reboot_fallback_enabled"),
    ],
)
def test_bad_settings_name_their_field(values: dict[str, object], field: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_agent_settings(values, {}, {})
    assert info.value.field == field


def test_missing_config_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load(["--node-name", "n", "--config", str(tmp_path / "none.yaml")], {})


def test_settings_are_frozen() -> None:
    s = AgentSettings(node_name="n")
    with pytest.raises(AttributeError):
        s.node_name = "m"  # type: ignore[misc]
