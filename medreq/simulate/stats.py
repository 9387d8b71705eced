"""Latency samples and percentiles (all in seconds in, milliseconds out)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of already sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def summary(values: list[float]) -> dict[str, Any]:
    """count, p50, p90, p99, max and mean of ``values`` (seconds) in milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    return {
        "count": len(ordered),
        "p50": round(percentile(ordered, 50) * 1000, 3),
        "p90": round(percentile(ordered, 90) * 1000, 3),
        "p99": round(percentile(ordered, 99) * 1000, 3),
        "max": round(ordered[-1] * 1000, 3),
        "mean": round(sum(ordered) / len(ordered) * 1000, 3),
    }


class Latency:
    """Every sample of a run, plus a sliding window for live percentiles."""

    def __init__(self, window: float = 5.0, max_samples: int = 2_000_000) -> None:
        self.samples: list[float] = []
        self.window = window
        self.max_samples = max_samples
        self._recent: deque[tuple[float, float]] = deque()

    def add(self, seconds: float) -> None:
        if len(self.samples) < self.max_samples:
            self.samples.append(seconds)
        self._recent.append((time.monotonic(), seconds))

    def recent(self) -> tuple[float | None, float | None]:
        """(p50, p99) in ms over the last ``window`` seconds; None when nothing arrived."""
        horizon = time.monotonic() - self.window
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        if not self._recent:
            return None, None
        ordered = sorted(value for _, value in self._recent)
        return percentile(ordered, 50) * 1000, percentile(ordered, 99) * 1000

    def summary(self) -> dict[str, Any]:
        return summary(self.samples)
