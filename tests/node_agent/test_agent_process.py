"""`python -m node_agent` as a real process, the way the simulator will start it: a FIFO
watchdog with a reader, a kubeconfig whose API server refuses connections, no peers.
When an earlier agent process of this boot promised the remediator to fence itself, it
must fence by itself within its bound (open the watchdog, never feed it), answer on its
peer port meanwhile, and exit 0 on SIGTERM without disarming a begun fence. When no
process of this boot ever promised, nobody counts on it: it stays up and feeds."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_agent_watchdog import FifoReader

from core.fence_order import public_key_pem
from node_agent.watchdog import MAGIC_CLOSE

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_world(tmp: Path, api_port: int) -> tuple[Path, Path]:
    (tmp / "secret").write_text("peer-secret\n")
    (tmp / "keys.pem").write_bytes(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    (tmp / "boot_id").write_text("boot-1\n")
    (tmp / "kubeconfig").write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{api_port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""
    )
    config = tmp / "agent.yaml"
    config.write_text(
        f"""peer_secret_file: {tmp / 'secret'}
order_public_keys_file: {tmp / 'keys.pem'}
boot_id_source: file:{tmp / 'boot_id'}
watchdog_timeout_s: 3s
api_check_interval_s: 300ms
api_check_timeout_s: 100ms
isolation_timeout_s: 1s
peer_request_timeout_s: 300ms
peer_api_timeout_s: 100ms
loop_tick_s: 50ms
min_peers: 1
peer_cache_file: {tmp / 'peers.json'}
"""
    )
    watchdog = tmp / "watchdog"
    os.mkfifo(watchdog)
    return config, watchdog


def clean_env() -> dict[str, str]:
    """The test process's environment without settings meant for other agents."""
    return {k: v for k, v in os.environ.items() if not k.startswith("NODEWARDEN_")}


def start_agent(tmp: Path, config: Path, watchdog: Path, port: int) -> subprocess.Popen[bytes]:
    """`python -m node_agent` for node-1 in the world `write_world` made, output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "node_agent", "--node-name", "node-1", "--config", str(config),
         "--kubeconfig", str(tmp / "kubeconfig"), "--watchdog", str(watchdog),
         "--listen", f"127.0.0.1:{port}"],
        cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def metric(port: int, name: str) -> float | None:
    session = requests.Session()
    session.trust_env = False
    try:
        text = session.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except requests.RequestException:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@pytest.mark.slow
def test_cut_off_agent_process_fences_itself_and_exits_cleanly(tmp_path: Path) -> None:
    config, watchdog = write_world(tmp_path, free_port())
    (tmp_path / "self-fence-capable-boot-1").write_text("promised by an earlier process\n")
    reader = FifoReader(watchdog)
    reader.start()
    assert reader.opened.wait(5)
    port = free_port()
    proc = start_agent(tmp_path, config, watchdog, port)
    try:
        started = time.monotonic()
        fenced_at = None
        while time.monotonic() - started < 20:
            value = metric(port, "nodewarden_agent_fence_started_timestamp_seconds")
            if value:
                fenced_at = time.monotonic()
                break
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.1)
        assert fenced_at is not None, "the cut-off agent never fenced"
        # threshold x interval + timeouts + isolation timeout + grant, plus process start-up
        assert fenced_at - started < 10
        assert metric(port, "nodewarden_agent_watchdog_feeds_total") == 0
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=15)[0].decode()
        assert proc.returncode == 0, output
        assert "decision: Fence (TooFewPeersIsolated)" in output
        assert "ENOTTY" in output
        reader.join(10)
        assert MAGIC_CLOSE not in reader.data
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_cut_off_agent_that_never_promised_stays_up(tmp_path: Path) -> None:
    config, watchdog = write_world(tmp_path, free_port())
    reader = FifoReader(watchdog)
    reader.start()
    assert reader.opened.wait(5)
    port = free_port()
    proc = start_agent(tmp_path, config, watchdog, port)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (metric(port, "nodewarden_agent_watchdog_feeds_total") or 0) > 3:
            time.sleep(0.1)
        time.sleep(4)  # longer than its whole detection bound
        assert not metric(port, "nodewarden_agent_fence_started_timestamp_seconds")
        assert (metric(port, "nodewarden_agent_self_fence_capable") or 0) == 0
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=15)[0].decode()
        assert "decision: Run (TooFewPeersNotCommitted)" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_settings_exit_2(tmp_path: Path) -> None:
    env = clean_env()
    proc = subprocess.run(
        [sys.executable, "-m", "node_agent", "--node-name", "n", "--listen", "nowhere"],
        cwd=ROOT, env=env, capture_output=True, timeout=60,
    )
    assert proc.returncode == 2
    assert b"listen" in proc.stderr


def test_missing_secret_file_exits_2(tmp_path: Path) -> None:
    env = clean_env()
    env["NODEWARDEN_AGENT_PEER_SECRET_FILE"] = str(tmp_path / "none")
    proc = subprocess.run(
        [sys.executable, "-m", "node_agent", "--node-name", "n"],
        cwd=ROOT, env=env, capture_output=True, timeout=60,
    )
    assert proc.returncode == 2
    assert b"peer_secret_file" in proc.stdout + proc.stderr


def test_an_agent_that_could_not_verify_orders_does_not_start(tmp_path: Path) -> None:
    """`cryptography` loads at the first order, so the start proves it works: with an
    installation where it cannot load, the agent exits 2 and says why."""
    config, watchdog = write_world(tmp_path, free_port())
    broken = tmp_path / "broken" / "cryptography"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('this cryptography is broken')\n")
    env = clean_env()
    env["PYTHONPATH"] = os.pathsep.join([str(broken.parent), str(ROOT)])
    proc = subprocess.run(
        [sys.executable, "-m", "node_agent", "--node-name", "node-1", "--config", str(config),
         "--kubeconfig", str(tmp_path / "kubeconfig"), "--watchdog", str(watchdog),
         "--listen", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Ed25519 self-test failed" in proc.stderr and "this cryptography is broken" in proc.stderr
