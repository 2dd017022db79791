"""Keep the agent's process small: load only the parts of the kubernetes client it uses.

`import kubernetes.client.rest` first runs the `kubernetes` package's `__init__`, which
imports every subpackage: `dynamic` (and with it `kubernetes_validate` and `jsonschema`),
`watch`, `stream`, `leaderelection`, `informer`, `utils`, `config`. And
`kubernetes.config`'s own `__init__` imports the kubeconfig loader, which brings
`ApiClient` with every model class (pydantic), `requests` and `oauthlib`. In a pod the
agent needs none of them: only `kubernetes.client.configuration`, `.rest` and
`kubernetes.config.incluster_config` (`node_agent.kube`). Registering the two packages
without running their `__init__`s lets those modules, and the kubeconfig loader when a
kubeconfig is given, import exactly as usual, without the rest.

Called by `python -m node_agent` before anything imports the client; never when the
agent's modules are imported into another program (tests, tools), where the packages
may already be loaded or other code may rely on their `__init__`.
"""

from __future__ import annotations

import importlib.util
import sys

LEAN_PACKAGES = ("kubernetes", "kubernetes.config")


def skip_kubernetes_package_init() -> bool:
    """Register `kubernetes` and `kubernetes.config` without running their `__init__`s.
    False (and nothing done) when `kubernetes` is already imported or is not a package
    on the path."""
    if "kubernetes" in sys.modules:
        return False
    for name in LEAN_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            break
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
    return "kubernetes" in sys.modules
