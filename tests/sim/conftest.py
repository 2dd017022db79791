from __future__ import annotations

from collections.abc import Iterator
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
