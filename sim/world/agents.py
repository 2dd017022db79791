"""The per-node agent processes the simulator launches and the credentials they and the
other clients get: kubeconfigs for "admin", "webhook" and "agent:<node>", a service
account folder per node, an address on the node's own loopback (127.77.x.y) and an HTTP
proxy through the peer network. Given the API server, the workdir, the machines and their
watchdogs, and the proxy lookup — never the cluster.

A node runs an agent when an agent command is configured and the node is in `agent_nodes`
(all nodes when that is None). Processes are created once per node and restarted in place.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from ..apiserver.server import ApiServer, agent_identity
from .nodes import SimNode
from .processes import NodeProcess
from .watchdog import WatchdogDevice


def agent_address(index: int) -> str:
    """A loopback address of the node's own (127.77.x.y), with a free port."""
    host = f"127.77.{index // 250}.{index % 250 + 1}"
    with socket.socket() as s:
        s.bind((host, 0))
        return f"{host}:{s.getsockname()[1]}"


class AgentProcesses:
    def __init__(self, api: ApiServer, workdir: Path, nodes: dict[str, SimNode],
                 watchdogs: dict[str, WatchdogDevice], proxy_for: Callable[[str], str], *,
                 agent_cmd: str | None, agent_nodes: set[str] | None, agent_values: dict[str, str],
                 agent_env: dict[str, str]) -> None:
        self.api = api
        self.workdir = workdir
        self.nodes = nodes
        self.watchdogs = watchdogs
        self.proxy_for = proxy_for
        self.agent_cmd = agent_cmd
        self.agent_nodes = agent_nodes
        self.agent_values = agent_values
        self.agent_env = agent_env
        self.processes: dict[str, NodeProcess] = {}

    def runs_agent(self, name: str) -> bool:
        return bool(self.agent_cmd) and (self.agent_nodes is None or name in self.agent_nodes)

    def kubeconfig(self, identity: str = "admin") -> Path:
        """Path of the kubeconfig for "admin", "webhook" or "agent:<node>"."""
        kc = self.workdir / "kubeconfigs"
        if identity == "admin":
            return kc / "admin.kubeconfig"
        if identity == "webhook":
            return kc / "webhook.kubeconfig"
        if identity.startswith("agent:") and identity[6:] in self.nodes:
            path = kc / f"agent-{identity[6:]}.kubeconfig"
            if not path.exists():
                self.api.write_kubeconfig(path, agent_identity(identity[6:]))
            return path
        raise KeyError(f"unknown identity {identity!r}")

    def process(self, name: str) -> NodeProcess:
        """The node's agent process (created on first use, not started)."""
        proc = self.processes.get(name)
        if proc is None:
            node = self.nodes[name]
            account = self.workdir / "nodes" / name / "serviceaccount"
            service_env = self.api.write_service_account(account, agent_identity(name)) if self.api.tls else {}
            values = {"node": name, "kubeconfig": str(self.kubeconfig(f"agent:{name}")),
                      "service_account": str(account),
                      "watchdog": str(self.watchdogs[name].path) if name in self.watchdogs else "",
                      "address": node.address, "workdir": str(self.workdir), **self.agent_values}
            proxy = self.proxy_for(name)
            env = {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
                   "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", **service_env,
                   **self.agent_env}
            proc = NodeProcess(name, self.agent_cmd or "", values, env,
                               self.workdir / "logs" / f"agent-{name}.log")
            self.processes[name] = proc
        return proc

    def start(self, name: str) -> None:
        """Start the node's agent, if it runs one."""
        if self.runs_agent(name):
            self.process(name).start()
