"""What the controller sees of one node: built from the watch-fed caches (Node, its
kubelet Lease, its agent's annotations and heartbeat Lease), plus, while confirming, a
question to a few peers: can you reach this node's agent?"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any

from controller.model import AgentInfo, NodeObs, PeerObs, parse_time
from core import names
from core.peer_client import PeerClient, PeerError

log = logging.getLogger("nodewarden.controller.observe")


def _float(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def ready_status(node: dict[str, Any]) -> str:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status") or "Unknown")
    return "Unknown"


def agent_info(node: dict[str, Any], agent_lease: dict[str, Any] | None) -> AgentInfo:
    ann = (node.get("metadata") or {}).get("annotations") or {}
    present = names.ANN_SELF_FENCE_CAPABLE in ann or names.ANN_PEER_ENDPOINT in ann
    spec = (agent_lease or {}).get("spec") or {}
    lease_ann = ((agent_lease or {}).get("metadata") or {}).get("annotations") or {}
    fingerprints = lease_ann.get(names.ANN_ORDER_KEY_FINGERPRINTS)
    return AgentInfo(
        present=present,
        self_fence_capable=str(ann.get(names.ANN_SELF_FENCE_CAPABLE, "")).lower() == "true",
        watchdog_timeout_s=_float(ann.get(names.ANN_WATCHDOG_TIMEOUT_S)),
        isolation_detect_s=_float(ann.get(names.ANN_ISOLATION_DETECT_S)),
        boot_id=str(ann.get(names.ANN_AGENT_BOOT_ID, "")),
        peer_endpoint=str(ann.get(names.ANN_PEER_ENDPOINT, "")),
        heartbeat_renewed_at=parse_time(spec.get("renewTime")) if agent_lease else None,
        heartbeat_duration_s=_float(spec.get("leaseDurationSeconds")),
        key_fingerprints=None if fingerprints is None else tuple(f for f in str(fingerprints).split(",") if f),
        clock_offset_s=_float(lease_ann.get(names.ANN_CLOCK_OFFSET_S)),
        clock_offset_error_s=_float(lease_ann.get(names.ANN_CLOCK_OFFSET_ERROR_S)),
    )


def node_obs(node: dict[str, Any] | None, node_lease: dict[str, Any] | None,
             agent_lease: dict[str, Any] | None, lease_duration_s: float | None = None) -> NodeObs:
    if node is None:
        return NodeObs(exists=False)
    spec = (node_lease or {}).get("spec") or {}
    taints = (node.get("spec") or {}).get("taints") or []
    labels = (node.get("metadata") or {}).get("labels") or {}
    fencing = next((t for t in taints if isinstance(t, dict) and t.get("key") == names.FENCING_TAINT_KEY
                    and t.get("effect") == names.FENCING_TAINT_EFFECT), None)
    return NodeObs(
        exists=True, ready=ready_status(node),
        boot_id=str(((node.get("status") or {}).get("nodeInfo") or {}).get("bootID", "")),
        lease_renewed_at=parse_time(spec.get("renewTime")) if node_lease else None,
        lease_duration_s=lease_duration_s or _float(spec.get("leaseDurationSeconds")) or 40.0,
        has_oos_taint=any(t.get("key") == names.OUT_OF_SERVICE_TAINT_KEY for t in taints),
        has_fencing_taint=fencing is not None,
        fencing_taint_added_at=None if fencing is None else parse_time(fencing.get("timeAdded")),
        control_plane=names.LABEL_CONTROL_PLANE in labels,
        agent=agent_info(node, agent_lease),
    )


def outage_suspected(nodes: list[dict[str, Any]], agent_lease: Callable[[str], dict[str, Any] | None],
                     now: float, skew_s: float) -> bool:
    """More than half of the agents that ever published have a stale heartbeat."""
    published, stale = 0, 0
    for node in nodes:
        name = str((node.get("metadata") or {}).get("name") or "")
        info = agent_info(node, agent_lease(name))
        if not info.present:
            continue
        published += 1
        renewed, duration = info.heartbeat_renewed_at, info.heartbeat_duration_s or 40.0
        if renewed is None or now - renewed > duration + skew_s:
            stale += 1
    return published >= 2 and stale * 2 > published


def ask_peers(client: PeerClient, node: str, peers: list[tuple[str, str]], timeout_s: float,
              pool: concurrent.futures.Executor) -> PeerObs:
    """Ask each (peer name, endpoint) whether it reaches `node`'s agent, in parallel."""
    if not peers:
        return PeerObs()
    futures = {pool.submit(client.reach, endpoint, node, receiver=peer, timeout_s=timeout_s): peer for peer, endpoint in peers}
    reachable = unreachable = errors = 0
    try:
        for future in concurrent.futures.as_completed(futures, timeout=timeout_s + 2):
            try:
                answer = future.result()
            except PeerError as exc:
                errors += 1
                log.debug("peer %s could not answer about %s: %s", futures[future], node, exc)
                continue
            if answer.reachable:
                reachable += 1
            else:
                unreachable += 1
    except concurrent.futures.TimeoutError:
        errors = len(peers) - reachable - unreachable
    return PeerObs(asked=len(peers), reachable=reachable, unreachable=unreachable, errors=errors)


def all_published(node: str, nodes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every other node whose agent published a peer endpoint: all the peers `node`'s
    agent could have asked, Ready or not."""
    out = []
    for other in nodes:
        name = str((other.get("metadata") or {}).get("name") or "")
        endpoint = ((other.get("metadata") or {}).get("annotations") or {}).get(names.ANN_PEER_ENDPOINT)
        if name and name != node and endpoint:
            out.append((name, str(endpoint)))
    return sorted(out)


def pick_peers(node: str, nodes: list[dict[str, Any]], count: int) -> list[tuple[str, str]]:
    """Up to `count` other Ready nodes whose agents published a peer endpoint."""
    chosen = []
    for other in sorted(nodes, key=lambda n: str((n.get("metadata") or {}).get("name"))):
        name = str((other.get("metadata") or {}).get("name") or "")
        endpoint = ((other.get("metadata") or {}).get("annotations") or {}).get(names.ANN_PEER_ENDPOINT)
        if name == node or not endpoint or ready_status(other) != "True":
            continue
        chosen.append((name, str(endpoint)))
        if len(chosen) >= count:
            break
    return chosen
