"""The replay defence for signed POSTs (order deliveries), across agent restarts.

A signed request names its receiver and its date (`core.peer_auth`), so it can only be
replayed to the same agent within the allowed clock skew. `ReplayGuard.first_sight`
refuses a signature seen before. A signature is remembered with the date it was signed
at until that date is further than the skew in the past: after that, the date check
alone refuses it.

Across a restart: with a `path` (the agent's state directory on the node's disk) the
remembered signatures are written there, atomically, before the request is acted on,
and loaded at start, so a request the previous process accepted is still a replay.
Without one, a POST signed before this process started is refused (`signed_before_start`):
the previous process may have seen it. Only authenticated requests reach the guard, so
a client without the secret never makes it write.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

from core.clock import Clock

log = logging.getLogger(__name__)
LIMIT = 10000  # orders are rare; a holder of the secret flooding POSTs is out of scope


class ReplayGuard:
    def __init__(self, max_skew_s: float, clock: Clock, path: str | Path | None = None) -> None:
        self._skew_s = max_skew_s
        self._clock = clock
        self._path = Path(path) if path else None
        self._started_at = clock.now()
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> signed date
        self._lock = threading.Lock()
        if self._path is not None:
            self._load(self._path)

    def signed_before_start(self, sent_at: float) -> bool:
        """True when, without a state file, the previous process may have seen this request."""
        return self._path is None and sent_at < self._started_at - 0.001  # the date has ms resolution

    def first_sight(self, signature: str, sent_at: float) -> bool:
        now = self._clock.now()
        with self._lock:
            self._prune(now)
            if signature in self._seen:
                return False
            self._seen[signature] = sent_at
            if self._path is not None:
                self._save(self._path)
            return True

    def _prune(self, now: float) -> None:
        expired = [s for s, at in self._seen.items() if at < now - self._skew_s]
        for signature in expired:
            del self._seen[signature]
        while len(self._seen) > LIMIT:
            self._seen.popitem(last=False)

    def _load(self, path: Path) -> None:
        try:
            entries = json.loads(path.read_text())["seen"]
            for signature, sent_at in entries:
                if isinstance(signature, str) and isinstance(sent_at, (int, float)):
                    self._seen[signature] = float(sent_at)
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Unreadable: refuse what the previous process might have seen, as without a file.
            log.warning("replay state %s unreadable (%s): refusing POSTs signed before this start", path, exc)
            self._path = None
        self._prune(self._clock.now())

    def _save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as f:
                json.dump({"seen": list(self._seen.items())}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not save the replay state to %s: %s", path, exc)
