"""`medreq bench cycle --image`: every request carries a real prescription photo, which the server
sniffs and stores; the cycles it counts are cycles that happened."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import filetype

from medreq.simulate.bench.cycle import bench_cycle
from medreq.simulate.samples import photo
from medreq.simulate.server import ServerProcess, cpu_seconds, process_tree, tree_cpu_seconds


def test_the_sample_photo_is_a_real_png_of_patient_size() -> None:
    image = photo()
    assert filetype.guess_mime(image) == "image/png"
    assert 20_000 <= len(image) <= 50_000  # the "20–50 KB, as patients send"
    assert photo(seed=1) != image  # noise, so deflate cannot shrink it


def test_bench_cycle_with_images_stores_one_photo_per_request() -> None:
    with ServerProcess() as server:
        result = bench_cycle(server.url, server.pid, workers=2, processes=1, warmup=0.5, seconds=2, image=True)
        stored = [f for f in (server.data_dir / "media").rglob("*") if f.is_file()]
        assert result["image_bytes"] == len(photo())
        assert result["cycles"] > 0
        assert (result["lost"], result["errors"]) == (0, 0)
        assert len(stored) >= result["cycles"]  # warm-up cycles stored theirs too
        assert all(f.stat().st_size == len(photo()) for f in stored)


def test_server_cpu_counts_every_process_of_the_server() -> None:
    """With `--workers 2` the requests are served by child processes: the benchmark's server CPU
    is the supervisor's and its workers', not the supervisor's alone."""
    burner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(30)"])  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while cpu_seconds(burner.pid) < 0.4 and time.monotonic() < deadline:  # bounded
            time.sleep(0.05)
        assert burner.pid in process_tree(os.getpid())
        assert tree_cpu_seconds(os.getpid()) >= cpu_seconds(os.getpid()) + cpu_seconds(burner.pid) - 0.02
        assert cpu_seconds(burner.pid) >= 0.4
    finally:
        burner.kill()
        burner.wait()


def test_a_meter_passed_to_run_cycle_is_read_at_both_ends_of_the_window() -> None:
    """loadtests/pg_cycle_cpu.py samples PostgreSQL and Redis between the two reads of its meter.
    It used to patch `cycle.tree_cpu_seconds`, which `bench_cycle` had bound as its default
    already: never read, it reported 0.0 ms for both."""
    from medreq.simulate.bench import run_cycle

    reads: list[int] = []

    def meter(pid: int) -> float:
        reads.append(pid)
        return tree_cpu_seconds(pid)

    out = run_cycle(2, 1, 1.0, meter=meter)
    result = out["results"][0]
    assert len(reads) == 2 and reads[0] == reads[1]
    assert result["cycles"] > 0 and result["server_cpu_s"] > 0


def test_bench_group_cycle_counts_only_groups_whose_every_event_arrived() -> None:
    """`medreq bench cycle --pharmacies 3`'s second half: a request to 3 pharmacies, all accept,
    the patient chooses; a cycle counts once the chosen pharmacy got `request_chosen` and the
    other two `request_cancelled` (docs/protocol.md §3, groups), none lost, no error."""
    from medreq.simulate.bench.group import bench_group_cycle

    with ServerProcess() as server:
        result = bench_group_cycle(server.url, server.pid, pharmacies=3, workers=2, processes=1, warmup=0.5, seconds=1.5)
    assert result["pharmacies_per_request"] == 3
    assert result["cycles"] > 0 and result["server_cpu_ms_per_cycle"] > 0
    assert (result["lost"], result["errors"]) == (0, 0)
