"""The table of resources (`core.resources`) is what each side's access layer calls: for
every resource a side lists and watches, the client method its `_list_call` picks reaches
the path the table describes (group, version, plural, namespace)."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from kubernetes import client

from controller.kube import Kind, RealControllerKube
from core import resources
from core.kube import Kube
from core.resources import ApiResource
from webhook.kube import RealWebhookKube, Resource

OWN_NAMESPACE = "nodewarden-test"


def called_path(fn: Any, args: tuple[Any, ...]) -> str:
    """The request path of a generated client method called with `args`, read from the
    client's own `_<method>_serialize`."""
    source = inspect.getsource(getattr(type(fn.__self__), f"_{fn.__name__}_serialize"))
    (path,) = set(re.findall(r"resource_path='([^']+)'", source))
    params = [p for p in inspect.signature(fn).parameters if p != "kwargs"]
    for name, value in zip(params, args, strict=False):
        path = path.replace("{" + name + "}", str(value))
    assert "{" not in path, path
    return path


def table_path(api: ApiResource) -> str:
    prefix = f"/apis/{api.group}/{api.version}" if api.group else f"/api/{api.version}"
    namespace = f"/namespaces/{api.namespace or OWN_NAMESPACE}" if api.namespaced else ""
    return f"{prefix}{namespace}/{api.plural}"


def test_every_entry_is_named_once_and_each_sides_members_are_in_the_table() -> None:
    assert len(resources.BY_NAME) == len(resources.ALL)
    assert {str(k) for k in Kind} <= set(resources.BY_NAME)
    assert {str(r) for r in Resource} <= set(resources.BY_NAME)
    assert {str(r) for r in Resource} <= {str(k) for k in Kind}  # the controller sees all the webhook sees


@pytest.mark.parametrize("kind", list(Kind))
def test_the_controller_lists_what_the_table_says(kind: Kind) -> None:
    kube = RealControllerKube(Kube(client.ApiClient()), OWN_NAMESPACE, "nodewarden-control")
    fn, args, _ = kube._list_call(kind)
    assert called_path(fn, args) == table_path(kind.api)


@pytest.mark.parametrize("resource", list(Resource))
def test_the_webhook_lists_what_the_table_says(resource: Resource) -> None:
    kube = RealWebhookKube(Kube(client.ApiClient()), OWN_NAMESPACE, "nodewarden-control")
    fn, args, _ = kube._list_call(resource)
    assert called_path(fn, args) == table_path(resource.api)
