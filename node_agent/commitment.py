"""Whether the remediator may be counting on this node to fence itself.

The agent publishes `nodewarden.io/self-fence-capable: "true"` only when it would fence
whenever the remediator may count on it. Once it has, every agent process of the same
boot must honour that promise, even one that starts without knowing its peers (which
would otherwise stay up, unable to tell an outage from isolation). The promise is kept in
a marker file in the agent's state directory, named after the boot:

- `promise()` writes the marker before "true" is published; if it cannot, "true" is not
  published.
- `withdraw()` removes it after "false" was published (a clean shutdown).
- `committed()` is true while this process published "true", while the marker for the
  current boot exists, and whenever it cannot know (no state directory, boot unknown).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class Commitment:
    def __init__(self, state_dir: Path | None, boot_id: Callable[[], str | None]) -> None:
        self._dir = state_dir
        self._boot_id = boot_id
        self._published = False

    def _marker(self) -> Path | None:
        boot = self._boot_id()
        if self._dir is None or not boot:
            return None
        return self._dir / f"self-fence-capable-{boot}"

    def committed(self) -> bool:
        if self._published:
            return True
        marker = self._marker()
        return marker is None or marker.exists()

    def promise(self) -> bool:
        marker = self._marker()
        if self._dir is None:
            self._published = True
            return True  # no state directory: committed() is always true anyway
        if marker is None:
            return False  # boot unknown: do not promise yet
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            marker.write_text("published self-fence-capable=true for this boot\n")
        except OSError as exc:
            log.warning("cannot record the self-fence promise in %s (%s): publishing not capable", marker, exc)
            return False
        self._published = True
        return True

    def withdraw(self) -> None:
        self._published = False
        marker = self._marker()
        if marker is not None:
            try:
                marker.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove %s: %s", marker, exc)
