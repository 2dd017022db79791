"""The peer directory on local disk, so an agent that starts while the API is down still
knows whom to ask.

Without it, an agent restarted during a control-plane outage (a crash, an upgrade, or
the node rebooting) knows no peers, cannot list them, and after the isolation timeout
fences as "too few peers": every node that reboots during an outage would reset again
and again until the API returns. With it, the agent asks the peers it knew and finds the
outage (row 14 of the decision table) like every other agent.

The file (`peer_cache_file`, `{node}` is replaced by the node's name) is rewritten at
every successful peer listing, atomically. It is used at start only if it was saved
less than `max_age_s` ago and names this node: a directory from long ago may have lost
peers that joined since, which would make a minority look like a majority. Any problem
with the file is logged once and the agent goes on without it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from core.clock import Clock
from node_agent.kube import PeerEntry

log = logging.getLogger(__name__)
FORMAT = 1


class PeerCache:
    def __init__(self, path: str, node: str, clock: Clock, max_age_s: float) -> None:
        self.path = Path(path.replace("{node}", node))
        self._node = node
        self._clock = clock
        self._max_age_s = max_age_s
        self._last_error: str | None = None

    def load(self) -> list[PeerEntry]:
        """The peers saved by an earlier run, or [] (missing, too old, unreadable)."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("ignoring the peer cache %s: %s", self.path, exc)
            return []
        entries = _entries(data, self._node)
        if entries is None:
            log.warning("ignoring the peer cache %s: not a peer list of node %s", self.path, self._node)
            return []
        age = self._clock.now() - float(data["savedAt"])
        if not 0 <= age <= self._max_age_s:
            log.info("ignoring the peer cache %s: saved %.0fs ago", self.path, age)
            return []
        log.info("%d peer(s) from the cache %s, saved %.0fs ago", len(entries), self.path, age)
        return entries

    def save(self, entries: list[PeerEntry]) -> None:
        data = {
            "format": FORMAT,
            "node": self._node,
            "savedAt": self._clock.now(),
            "peers": [
                {"name": e.name, "endpoint": e.endpoint, "controlPlane": e.control_plane}
                for e in entries
            ],
        }
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data))
            os.replace(temporary, self.path)
        except OSError as exc:
            if str(exc) != self._last_error:
                log.warning("cannot save the peer cache %s: %s", self.path, exc)
            self._last_error = str(exc)
            return
        self._last_error = None


def _entries(data: object, node: str) -> list[PeerEntry] | None:
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("node") != node:
        return None
    saved_at, peers = data.get("savedAt"), data.get("peers")
    if not isinstance(saved_at, int | float) or isinstance(saved_at, bool) or not isinstance(peers, list):
        return None
    entries = []
    for peer in peers:
        if not isinstance(peer, dict):
            return None
        name, endpoint = peer.get("name"), peer.get("endpoint")
        if not isinstance(name, str) or not isinstance(endpoint, str):
            return None
        if urlsplit(endpoint).scheme not in ("http", "https") or name == node:
            continue
        entries.append(PeerEntry(name, endpoint, peer.get("controlPlane") is True))
    return entries
