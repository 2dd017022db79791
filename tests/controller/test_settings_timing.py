"""The controller's start-up timing check: each refusal, with the worst case computed from
the real settings (the controller's, and the agents' from their config file), and the
process refusing to start with it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from controller.settings import (
    ControllerSettings,
    agent_timings,
    unsafe_timings,
    worst_case_summary,
)
from core import timing
from core.settings import SettingsError

ROOT = Path(__file__).resolve().parents[2]
SOUND = ControllerSettings()


def agent_file(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "agent.yaml"
    # As the chart writes it: every agent setting, most of which the check ignores.
    path.write_text(yaml.safe_dump({"peer_secret_file": "/etc/x", "boot_id_source": "node-status", **values}))
    return path


def test_sound_defaults_pass() -> None:
    assert unsafe_timings(SOUND) == []
    assert unsafe_timings(SOUND, timing.AgentTimings()) == []


@pytest.mark.parametrize(("change", "needle"), [
    ({"safety_margin_s": 0.0}, "safety_margin_s must be above 0"),
    ({"max_clock_skew_s": 0.0}, "max_clock_skew_s must be above 0"),
    ({"silence_settle_s": 1.0}, "silence_settle_s=1s must exceed the agents' peer_api_timeout_s=1s"),
    ({"order_ttl_s": 50.0, "fence_timeout_s": 40.0}, "must exceed the worst-case fence deadline, 67s"),
    ({"order_ttl_s": 900.0}, "must exceed fence_timeout_s"),
    ({"renew_deadline_s": 15.0}, "leader election"),
])
def test_each_refusal(change: dict[str, float], needle: str) -> None:
    problems = unsafe_timings(replace(SOUND, **change))
    assert len(problems) == 1 and needle in problems[0], problems


def test_silence_settle_is_checked_against_the_agents_own_timeout(tmp_path: Path) -> None:
    """A settle time that is sound for the agents' defaults is refused once the agents'
    config (as the chart mounts it) gives them a longer live read."""
    s = replace(SOUND, agent_config_file=str(agent_file(tmp_path, peer_api_timeout_s="2500ms",
                                                        peer_request_timeout_s="4s")))
    agent, source = agent_timings(s)
    assert agent.peer_api_timeout_s == 2.5 and str(tmp_path) in source
    assert unsafe_timings(s) == []  # judged with the agents' defaults
    assert any("peer_api_timeout_s=2.5s" in p for p in unsafe_timings(s, agent))


def test_the_worst_case_comes_from_the_agents_config(tmp_path: Path) -> None:
    s = replace(SOUND, agent_config_file=str(agent_file(tmp_path, watchdog_timeout_s=60, api_check_interval_s="15s",
                                                        isolation_timeout_s="30s")))
    agent, _ = agent_timings(s)
    d = 3 * 15 + 4 + 30 + 5
    assert timing.isolation_detect_s(agent) == d
    summary = worst_case_summary(s, agent)
    assert f"proven {d + 120 + 3:g} s after the agent's last heartbeat" in summary
    assert f"D={d:g} + 2 x W=60" in summary
    # An order lifetime that covers the default agents' worst case but not these agents'.
    short = replace(s, order_ttl_s=150.0, fence_timeout_s=100.0)
    assert unsafe_timings(short) == []
    assert any(f"worst-case fence deadline, {d + 123:g}s" in p for p in unsafe_timings(short, agent))


def test_a_bad_agent_config_names_the_setting(tmp_path: Path) -> None:
    s = replace(SOUND, agent_config_file=str(agent_file(tmp_path, watchdog_timeout_s="soon")))
    with pytest.raises(SettingsError, match="agent_config_file"):
        agent_timings(s)


def run_controller(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODEWARDEN_")}
    env.update({f"NODEWARDEN_CONTROLLER_{k}": v for k, v in env_extra.items()})
    return subprocess.run([sys.executable, "-m", "controller"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("env", "needle", "worst_s"), [
    ({"SAFETY_MARGIN_S": "0"}, "safety_margin_s must be above 0", 34 + 30 + 0 + 1),
    ({"MAX_CLOCK_SKEW_S": "0s"}, "max_clock_skew_s must be above 0", 34 + 30 + 2 + 0),
    ({"SILENCE_SETTLE_S": "500ms"}, "silence_settle_s=0.5s must exceed", 34 + 30 + 2 + 1),
])
def test_the_process_refuses_with_the_computed_worst_case(env: dict[str, str], needle: str, worst_s: float) -> None:
    out = run_controller(env)
    assert out.returncode == 2
    assert "refusing to start" in out.stderr and needle in out.stderr
    # From the real settings (the controller's, the agents' defaults), not a hardcoded agent.
    assert f"proven {worst_s:g} s after the agent's last heartbeat" in out.stderr


def test_the_process_refuses_with_the_agents_worst_case(tmp_path: Path) -> None:
    path = agent_file(tmp_path, watchdog_timeout_s=60, peer_api_timeout_s=3, peer_request_timeout_s=5)
    out = run_controller({"AGENT_CONFIG_FILE": str(path)})
    assert out.returncode == 2, out.stderr
    assert "peer_api_timeout_s=3s" in out.stderr
    d = 3 * 5 + 4 + 10 + (5 + 1)
    assert f"proven {d + 120 + 3:g} s after the agent's last heartbeat" in out.stderr
    assert str(path) in out.stderr


def test_a_fencing_taint_settle_not_above_the_kubelets_renew_interval_is_refused() -> None:
    from controller.settings import ControllerSettings, unsafe_timings
    assert not [p for p in unsafe_timings(ControllerSettings()) if "fencing_taint_settle_s" in p]
    problems = unsafe_timings(ControllerSettings(fencing_taint_settle_s=10.0))
    assert any("fencing_taint_settle_s=10s must exceed the kubelets' Lease renew interval, 10s" in p for p in problems)
    # A shorter node Lease renews more often: the bound follows it.
    assert not [p for p in unsafe_timings(ControllerSettings(fencing_taint_settle_s=6.0, node_lease_duration_s=20.0))
                if "fencing_taint_settle_s" in p]
