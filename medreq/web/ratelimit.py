"""Per-account token buckets (rate limits on REST calls and WebSocket messages)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..protocol.errors import RateLimited
from ..telemetry import metrics


class RateLimiter:
    """`rate` tokens per second, at most `burst` saved up, one bucket per key."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        name: str = "",
    ) -> None:
        self.name = name  # the transport it limits, for the rate_limited metric
        self.rate = rate
        self.burst = burst
        self.enabled = enabled
        self._clock = clock
        self._buckets: dict[object, tuple[float, float]] = {}  # key → (tokens, last refill)

    def hit(self, key: object, cost: float = 1.0) -> None:
        """Take `cost` tokens (one call: one) for `key`, or raise RateLimited with the seconds
        until they are free."""
        if not self.enabled:
            return
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < cost:
            self._buckets[key] = (tokens, now)
            metrics.rate_limited(self.name)
            raise RateLimited("rate limit exceeded, slow down", retry_after=(cost - tokens) / self.rate)
        self._buckets[key] = (tokens - cost, now)
        if len(self._buckets) > 100_000:
            self._forget_full(now)

    def forget(self, key: object) -> None:
        """Drop `key`'s bucket (its owner is gone)."""
        self._buckets.pop(key, None)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled completely: they hold no information."""
        full = [k for k, (t, last) in self._buckets.items() if t + (now - last) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
