"""Exponential backoff with jitter for reconnecting."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delays ``initial * factor**n`` capped at ``maximum``, each scaled by a random factor
    in ``[1 - jitter, 1]`` so a restarted server is not hit by every client at once."""

    initial: float = 0.25
    factor: float = 2.0
    maximum: float = 10.0
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        """The pause before reconnect number ``attempt`` (0 for the first retry)."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * random.random())
