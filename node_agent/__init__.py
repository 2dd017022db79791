"""The nodewarden node agent: one process per node that owns the node's watchdog.

It checks that it can reach the Kubernetes API, asks its peers when it cannot, executes
signed fence orders, and stops feeding the watchdog (so the machine resets) when it must
fence: on a valid order, or when it finds itself cut off. See docs/node-agent.md.

Wiring happens in `node_agent.cli` only; every other module takes what it needs.
"""

__version__ = "0.1.0"
