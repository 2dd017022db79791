"""Keep the agent's process small: load only the parts of the kubernetes client it uses.

`import kubernetes.client` first runs the `kubernetes` package's `__init__`, which
imports every subpackage: `dynamic` (and with it `kubernetes_validate` and `jsonschema`),
`watch`, `stream`, `leaderelection`, `informer`, `utils`. The agent uses none of them.
Registering the package without running its `__init__` lets `kubernetes.client` and
`kubernetes.config` import exactly as usual, without the rest.

Called by `python -m node_agent` before anything imports the client; never when the
agent's modules are imported into another program (tests, tools), where the package
may already be loaded or other code may rely on its `__init__`.
"""

from __future__ import annotations

import importlib.util
import sys


def skip_kubernetes_package_init() -> bool:
    """Register `kubernetes` without running its `__init__`. False (and nothing done)
    when it is already imported or is not a package on the path."""
    if "kubernetes" in sys.modules:
        return False
    spec = importlib.util.find_spec("kubernetes")
    if spec is None or not spec.submodule_search_locations:
        return False
    sys.modules["kubernetes"] = importlib.util.module_from_spec(spec)
    return True
