"""pytest plugin for the official Python client's own end-to-end tests (harness.client_e2e).

The client's tests import themselves as `kubernetes.e2e_test.*`, a package its released
distributions do not ship: the tests come from a checkout (`kubernetes/e2e_test/` under the
directory pytest runs in) while the client itself is the installed one. This plugin adds
that checkout's `kubernetes/` folder to the installed package's search path, so both halves
import as one package.

A test at the client's repository head may need an API the installed client does not have
yet; `CLIENT_NEEDS` names what each such test needs, and the test is skipped, with that as
the reason, when the installed client lacks it. Nothing else is skipped or changed here.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import kubernetes

# test name -> (module, attribute path) the test calls on the installed client.
CLIENT_NEEDS: dict[str, tuple[str, str]] = {
    "test_pod_exec_close_channel": ("kubernetes.stream.ws_client", "WSClient.close_channel"),
    "test_metrics_utilities_integration": ("kubernetes.utils", "get_pods_metrics_in_all_namespaces"),
    "test_cache_populated_after_start": ("kubernetes.informer", "SharedInformer"),
    "test_added_event_and_cache_entry": ("kubernetes.informer", "SharedInformer"),
    "test_modified_event_and_cache_refresh": ("kubernetes.informer", "SharedInformer"),
    "test_deleted_event_removes_from_cache": ("kubernetes.informer", "SharedInformer"),
    "test_resource_version_advances": ("kubernetes.informer", "SharedInformer"),
    "test_resync_fires_modified_for_existing_objects": ("kubernetes.informer", "SharedInformer"),
}


def missing_api(module: str, attribute: str) -> str | None:
    """What the installed client lacks of `module.attribute`, or None."""
    try:
        found: Any = importlib.import_module(module)
    except ImportError:
        return module
    for part in attribute.split("."):
        if not hasattr(found, part):
            return f"{module}.{attribute}"
        found = getattr(found, part)
    return None


def pytest_configure(config: Any) -> None:
    checkout = os.path.join(str(config.rootpath), "kubernetes")
    if checkout not in kubernetes.__path__:
        kubernetes.__path__.append(checkout)


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    import pytest

    for item in items:
        need = CLIENT_NEEDS.get(item.name)
        lacking = need and missing_api(*need)
        if lacking:
            item.add_marker(pytest.mark.skip(
                reason=f"the installed client (kubernetes {kubernetes.__version__}) lacks {lacking}"))
