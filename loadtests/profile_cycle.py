"""Where the server's CPU goes in the full cycle: cProfile over the measured window only.

    python loadtests/profile_cycle.py --out /tmp/sqlite.prof
    MEDREQ_DATABASE_URL=postgresql://postgres@127.0.0.1/medreq_bench \\
    MEDREQ_REDIS_URL=redis://127.0.0.1:6379/0 python loadtests/profile_cycle.py --out /tmp/pg.prof
    python loadtests/profile_cycle.py --compare /tmp/pg.prof:PG_CYCLES /tmp/sqlite.prof:SQLITE_CYCLES

The server runs under this script (`--serve`): the profiler, timed by the event loop thread's own
CPU clock (`time.thread_time`, so a busy machine's waits are not counted), is switched on by
SIGUSR1 and written out by SIGUSR2, which the benchmark's `meter` sends at the start and the end
of its measured window. `--compare` prints microseconds per cycle by package or medreq module, the
first profile's minus the second's. cProfile inflates call-heavy code several-fold, so read it for
where the difference lies, and count the change with loadtests/instructions.py.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import os
import pstats
import re
import runpy
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROFILE_ENV = "MEDREQ_PROFILE_OUT"


def serve(argv: list[str]) -> None:
    """Run ``python -P -m medreq serve …`` (as `ServerProcess` gives it) with the profiler ready."""
    profile = cProfile.Profile(time.thread_time)
    signal.signal(signal.SIGUSR1, lambda *_: profile.enable())

    def dump(*_: Any) -> None:
        profile.disable()
        profile.dump_stats(os.environ[PROFILE_ENV])

    signal.signal(signal.SIGUSR2, dump)
    module = argv[argv.index("-m") + 1]
    sys.argv = [module, *argv[argv.index("-m") + 2 :]]
    sys.path = [p for p in sys.path if p not in ("", os.getcwd())]  # as -P does
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def measure(out: Path, *, workers: int, seconds: float, image: bool) -> dict[str, Any]:
    from medreq.simulate.bench.cycle import bench_cycle
    from medreq.simulate.server import ServerProcess, tree_cpu_seconds

    server = ServerProcess(
        env={PROFILE_ENV: str(out)}, wrapper=[sys.executable, str(Path(__file__).resolve()), "--serve"]
    )
    server.start(timeout=60)
    reads = 0

    def meter(pid: int) -> float:
        nonlocal reads
        reads += 1
        os.kill(pid, signal.SIGUSR1 if reads == 1 else signal.SIGUSR2)
        return tree_cpu_seconds(pid)

    try:
        result = bench_cycle(
            server.url, server.pid, workers=workers, processes=1, warmup=3.0, seconds=seconds, image=image, meter=meter
        )
        time.sleep(1.0)  # the dump is written
    finally:
        server.stop()
    return {k: result[k] for k in ("cycles", "errors", "lost")}


def per_cycle(path: str, cycles: int) -> collections.Counter[str]:
    """Own time (µs per cycle) by site-packages package, medreq module or standard library module."""
    by: collections.Counter[str] = collections.Counter()
    for (filename, _, name), (_, _, own, _, _) in pstats.Stats(path).stats.items():  # type: ignore[attr-defined]
        found = (
            re.search(r"site-packages/([^/]+)", filename)
            or re.search(r"(medreq/[^/]+(?:/[^/.]+)?)", filename)
            or re.search(r"python3\.\d+/([^/]+)", filename)
        )
        by[found.group(1) if found else f"builtin {name.split(' of ')[0]}"] += own / cycles * 1e6
    return by


def compare(first: str, second: str, rows: int = 30) -> None:
    (a_path, a_cycles), (b_path, b_cycles) = (spec.rsplit(":", 1) for spec in (first, second))
    a, b = per_cycle(a_path, int(a_cycles)), per_cycle(b_path, int(b_cycles))
    print(f"{'first':>8} {'second':>8} {'diff':>8}  µs per cycle (cProfile, inflated)")
    print(f"{sum(a.values()):8.0f} {sum(b.values()):8.0f} {sum(a.values()) - sum(b.values()):8.0f}  total")
    for key in sorted(set(a) | set(b), key=lambda k: b[k] - a[k])[:rows]:
        print(f"{a[key]:8.1f} {b[key]:8.1f} {a[key] - b[key]:8.1f}  {key}")


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where to write the profile")
    parser.add_argument("--compare", nargs=2, metavar="PROFILE:CYCLES")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--image", action="store_true", help="a 32 KB PNG with every request")
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    elif args.out:
        print(json.dumps(measure(args.out.resolve(), workers=args.workers, seconds=args.seconds, image=args.image)))
    else:
        parser.error("give --out or --compare")


if __name__ == "__main__":
    main()
