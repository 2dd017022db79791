"""Start Debian's real Prometheus and Alertmanager binaries on loopback for tests."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager")
MISSING = ("Debian's prometheus / prometheus-alertmanager packages are required: "
           "`make test` installs them (scripts/ensure-tools)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.1)


@contextmanager
def prometheus(workdir: Path, config: dict[str, Any], rule_files: list[Path] | None = None) -> Iterator[str]:
    """Run Prometheus with `config` (rule files copied beside it); yields its base URL."""
    assert PROMETHEUS, MISSING
    workdir.mkdir(parents=True, exist_ok=True)
    config = dict(config)
    if rule_files:
        config["rule_files"] = [str(p) for p in rule_files]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with serve([PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle", "--log.level=warn"], workdir / "prometheus.log", port) as url:
        yield url


@contextmanager
def serve(argv: list[str], log_path: Path, port: int) -> Iterator[str]:
    """Run a server process logging to `log_path`; yields its base URL once /-/ready answers,
    and stops it (terminate, then kill) when done."""
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/-/ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def query(url: str, expr: str) -> list[dict[str, Any]]:
    data = http_json(f"{url}/api/v1/query?query={urllib.parse.quote(expr)}")
    assert data["status"] == "success", data
    return list(data["data"]["result"])


def wait_query(url: str, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        result = query(url, expr)
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"no result for {expr!r} within {timeout}s")
        time.sleep(0.25)
