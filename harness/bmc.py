"""Fence inventories for worlds whose machines have emulated BMCs (`sim.bmc`): the
policy's `fenceAgents` section pointing the real fence agents at them, and the mounted
Secret files their credentials come from.

    with nodewarden_world(tmp, agent_nodes=[], bmcs=BmcOptions(users={"admin": "pw"}),
                          fence_inventory=bmc_inventory("fence_ipmilan", "pw")) as w: ...
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.world.cluster import Cluster

InventoryFn = Callable[[Cluster, Path], dict[str, Any]]


def bmc_inventory(agent: str, password: str, *, username: str = "admin", action: str = "off",
                  timeout: str = "20s", retries: int = 1, retry_interval: str = "0.5s",
                  status_interval: str = "2s") -> InventoryFn:
    """A function of the started cluster and a folder: one device for every machine's BMC
    of `agent`'s protocol, credentials in `folder/credentials/bmc/{username,password}`."""

    def build(cluster: Cluster, folder: Path) -> dict[str, Any]:
        if cluster.bmcs is None:
            raise ValueError("the cluster has no BMCs (Cluster(bmcs=BmcOptions(...)))")
        secret = folder / "credentials" / "bmc"
        secret.mkdir(parents=True, exist_ok=True)
        (secret / "username").write_text(username + "\n")
        (secret / "password").write_text(password + "\n")
        for f in secret.iterdir():
            f.chmod(0o600)
        ipmi = agent == "fence_ipmilan"
        bmcs = cluster.bmcs.ipmi if ipmi else cluster.bmcs.redfish
        options = {"lanplus": "1", "cipher": "3"} if ipmi else {}
        return {"credentialsDir": str(folder / "credentials"), "devices": [{
            "name": f"sim-{'ipmi' if ipmi else 'redfish'}", "agent": agent,
            "addresses": {node: bmc.address for node, bmc in bmcs.items()},
            "credentials": {"secretName": "bmc"}, "action": action, "timeout": timeout, "retries": retries,
            "retryInterval": retry_interval, "statusInterval": status_interval,
            "caBundle": str(cluster.bmcs.ca_file),
            "options": {**options, "power_timeout": "10", "login_timeout": "5"},
        }]}

    return build
