"""Load shapes for loadtests/locustfile.py, picked with ``MEDREQ_SHAPE=steady|spike``.

Both keep Locust's user classes and weights (4 patients : 1 pharmacy) and stop by themselves.
Scale them with ``MEDREQ_SHAPE_USERS`` (the steady user count, default 40) and
``MEDREQ_SHAPE_SECONDS`` (the total duration, default 120).
"""

from __future__ import annotations

import os

from locust import LoadTestShape

USERS = int(os.environ.get("MEDREQ_SHAPE_USERS", "40"))
SECONDS = float(os.environ.get("MEDREQ_SHAPE_SECONDS", "120"))


class SteadyShape(LoadTestShape):
    """Ramp to USERS over the first 10% of the run, hold, stop."""

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        if elapsed >= SECONDS:
            return None
        ramp = max(1.0, SECONDS * 0.1)
        return (max(1, round(USERS * min(1.0, elapsed / ramp))), max(1.0, USERS / ramp))


class SpikeShape(LoadTestShape):
    """A baseline of USERS/4, a spike to USERS at 40–60% of the run, back to the baseline."""

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        if elapsed >= SECONDS:
            return None
        base = max(5, USERS // 4)
        if SECONDS * 0.4 <= elapsed < SECONDS * 0.6:
            return (USERS, float(USERS))  # everyone within about a second
        return (base, float(base))
