from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config


@pytest.fixture(scope="module")
def k8s(admin_kubeconfig: Path) -> Iterator[client.ApiClient]:
    """The official Python client, configured from the admin kubeconfig."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(admin_kubeconfig), client_configuration=cfg)
    api = client.ApiClient(cfg)
    yield api
    api.close()


@pytest.fixture
def core(k8s: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


@pytest.fixture(scope="module")
def kubectl(admin_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """The machine's kubectl as the admin: `run(*args)` is its stdout (raises on failure;
    ok=False: stdout and stderr, whatever the exit)."""
    cache = tmp_path_factory.mktemp("kubectl-cache")

    def run(*args: str, stdin: str | None = None, ok: bool = True) -> str:
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", str(admin_kubeconfig), "--cache-dir", str(cache), *args],
            input=stdin, capture_output=True, text=True, timeout=60)
        if ok and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout if ok else proc.stdout + proc.stderr

    return run
