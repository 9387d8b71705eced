"""Instructions per full cycle, counted by callgrind: a cost that does not move with the machine.

    python loadtests/instructions.py                                   # this checkout
    python loadtests/instructions.py --build old=/work/old --build new=.
    python loadtests/instructions.py --setup off: \\
        --setup on:MEDREQ_LOG_FORMAT=json,MEDREQ_LOG_LEVEL=info,MEDREQ_METRICS_TOKEN=bench-metrics-token
    python loadtests/instructions.py --pharmacies 3 --build old=/work/old --build new=.

The server runs under `valgrind --tool=callgrind` and the full-cycle generator (docs/benchmarks.md
§2) drives it; the server's instructions over the measured window, read with `callgrind_control
--dump` at both ends, are divided by the cycles finished in it. All threads of the server count.
`net_instructions_per_cycle` first takes off what the server spends with nothing to do (its
timers: measured for 10 s before the load), which otherwise grows per cycle when a run is slower.
CPU seconds on a shared 2-core VM move by ±8 % between runs of the same code (and this machine's
speed itself changes from day to day); four runs of one build counted within 1 % of each other
when nothing else ran (docs/benchmarks.md), so run it alone. It is not time: the kernel's work
(system calls, disks) is not counted at all, and a cache miss costs far more than its count
says, so a change is still confirmed with `medreq bench cycle`.

Under callgrind the server is ~50× slower, so the same number of workers finds bigger groups to
commit together than at full speed; keep `--workers` small (the default 8) and equal between the
runs you compare. Each build runs as `PYTHONPATH=<build> python -P -m medreq serve`.

With `--pharmacies N` (N > 1) the same server then runs group cycles (one request asked of N
pharmacies, all accept, the patient chooses: `medreq bench cycle --pharmacies N`), measured the
same way, and `group_vs_single` is their net instructions per cycle over the single cycle's: the
ratio issue 27 bounds (≤ 2), counted instead of timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medreq.simulate.bench import environment
from medreq.simulate.bench.cycle import bench_cycle
from medreq.simulate.bench.group import bench_group_cycle
from medreq.simulate.server import ServerProcess

IDLE_SECONDS = 10.0
GROUP_WARMUP_SECONDS = 40.0


class Instructions:
    """`meter` for `bench_cycle`: the server's instructions so far, one callgrind dump per read."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.total = 0

    def __call__(self, pid: int) -> float:
        before = set(self.out_dir.glob(f"cg.{pid}.*"))
        subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
        (dump,) = set(self.out_dir.glob(f"cg.{pid}.*")) - before
        for line in dump.read_text().splitlines():
            if line.startswith("summary:"):
                self.total += int(line.split()[1])
                dump.unlink()
                return float(self.total)
        raise RuntimeError(f"no summary line in {dump}")


def measure(
    build: Path, env: dict[str, str], *, workers: int, seconds: float, image: bool, pharmacies: int = 1
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="medreq-callgrind-") as tmp:
        out = Path(tmp)
        wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p"]
        server = ServerProcess(env={**env, "PYTHONPATH": str(build)}, wrapper=wrapper)
        server.start(timeout=600)
        meter = Instructions(out)
        try:
            # the server's own ticks with nothing to do (checkpointer, session watch, deliverer
            # poll): per second, not per cycle, so a slower run would spread them over fewer cycles
            before = meter(server.pid)
            time.sleep(IDLE_SECONDS)
            idle_per_s = (meter(server.pid) - before) / IDLE_SECONDS
            result = bench_cycle(
                server.url,
                server.pid,
                workers=workers,
                processes=1,
                warmup=10.0,
                seconds=seconds,
                image=image,
                meter=meter,
            )
            group = None
            if pharmacies > 1:
                group = bench_group_cycle(
                    server.url,
                    server.pid,
                    pharmacies=pharmacies,
                    workers=workers,
                    processes=1,
                    # its 4 accounts a worker take longer to set up under callgrind: with 10 s,
                    # the window still held sign-ups (38 group cycles in 40 s, 8 workers)
                    warmup=GROUP_WARMUP_SECONDS,
                    seconds=seconds,
                    meter=meter,
                )
        finally:
            server.stop(timeout=120)
    run = {**_per_cycle(result, idle_per_s, seconds), "idle_instructions_per_s": round(idle_per_s)}
    if group is not None:
        counted = _per_cycle(group, idle_per_s, seconds)
        run |= {f"group_{key}": value for key, value in counted.items()}
        run["group_vs_single"] = round(
            counted["net_instructions_per_cycle"] / run["net_instructions_per_cycle"], 3
        )
    return run


def _per_cycle(result: dict[str, Any], idle_per_s: float, seconds: float) -> dict[str, float]:
    """A benchmark's counts: what its meter counted is instructions, not seconds."""
    instructions = result["server_cpu_s"]
    cycles = max(1, result["cycles"])
    return {
        "cycles": result["cycles"],
        "lost": result["lost"],
        "errors": result["errors"],
        "instructions_per_cycle": round(instructions / cycles),
        "net_instructions_per_cycle": round((instructions - idle_per_s * seconds) / cycles),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--build", action="append", default=[], help="NAME=PATH of a checkout (default: this one)"
    )
    parser.add_argument(
        "--setup", action="append", default=[], help="NAME:KEY=VALUE,KEY=VALUE (server environment)"
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--image", action="store_true", help="a 32 KB PNG with every request")
    parser.add_argument(
        "--pharmacies",
        type=int,
        default=1,
        help="N > 1: group cycles asking N pharmacies too, and their ratio",
    )
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    builds = [b.split("=", 1) for b in args.build] or [["current", str(here)]]
    setups: list[tuple[str, dict[str, str]]] = []
    for spec in args.setup or ["default:"]:
        name, _, pairs = spec.partition(":")
        setups.append((name, dict(p.split("=", 1) for p in pairs.split(",") if p)))
    runs = []
    for _ in range(args.rounds):
        for build_name, path in builds:
            for setup_name, env in setups:
                run = {"build": build_name, "setup": setup_name}
                run |= measure(
                    Path(path).resolve(),
                    env,
                    workers=args.workers,
                    seconds=args.seconds,
                    image=args.image,
                    pharmacies=args.pharmacies,
                )
                print(json.dumps(run), file=sys.stderr, flush=True)
                runs.append(run)
    first = runs[0]["net_instructions_per_cycle"]
    for run in runs:
        run["vs_first"] = round(run["net_instructions_per_cycle"] / first, 4)
    print(
        json.dumps(
            {
                "environment": environment(),
                "workers": args.workers,
                "image": args.image,
                "pharmacies": args.pharmacies,
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")  # the same dict orders, run to run
    main()
