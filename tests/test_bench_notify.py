"""`medreq bench notify`'s results say how many frames beat their 201 instead of rows of zeros."""

from __future__ import annotations

import asyncio

import pytest

from medreq.simulate.bench.notify import bench_notify

from .conftest import ServerProcess

pytestmark = pytest.mark.timeout(90)


def test_notify_bench_counts_frames_before_their_201_apart(server: ServerProcess) -> None:
    (result,) = asyncio.run(
        bench_notify(server.url, server.pid, rates=(20.0,), seconds=1.0, pharmacies=2, patients=2, pool=4, drain=5.0)
    )
    assert result["lost"] == 0 and result["delivered"] == result["created"] == 20, result
    after = result["created_to_notify_ms"]
    assert result["notified_before_201"] + after["count"] == result["delivered"]
    if after["count"]:  # only frames that came after their 201 are timed: none is a made-up 0
        assert after["p50"] > 0
