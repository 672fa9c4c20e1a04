"""The progress line of long computations (their ``progress=True`` option), shared by both
backends: one line on stderr at most about once a second, and a closing line.

Part of the shared specification (:mod:`dgn_core`): standard library only.

Use::

    line = ProgressLine(progress, "partition")
    while work:
        ...
        if (el := line.due()) is not None:
            line.say(f"{done} done, {done / el:.0f} per second")
    if (el := line.final()) is not None:
        line.say(f"{done} in {el:.2f} s")
"""

from __future__ import annotations

import sys
import time

__all__ = ["ProgressLine"]


class ProgressLine:
    """Lines ``"<prefix>: <text>"`` on stderr while ``enabled``; a disabled line costs one
    test per call and formats nothing."""

    def __init__(self, enabled: bool, prefix: str, every: float = 1.0) -> None:
        self.enabled = bool(enabled)
        self.prefix = prefix
        self.every = every
        self.t0 = self._last = time.perf_counter()

    def due(self) -> float | None:
        """The seconds elapsed when a line is due (``every`` seconds after the last), else
        None (always None when disabled)."""
        if not self.enabled:
            return None
        now = time.perf_counter()
        if now - self._last < self.every:
            return None
        self._last = now
        return now - self.t0

    def final(self) -> float | None:
        """The seconds elapsed, for the closing line (None when disabled)."""
        return time.perf_counter() - self.t0 if self.enabled else None

    def say(self, text: str) -> None:
        print(f"{self.prefix}: {text}", file=sys.stderr, flush=True)
