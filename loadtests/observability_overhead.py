"""What JSON access logs and metrics cost: `bench cycle` with them off and on, alternated.

    python loadtests/observability_overhead.py --rounds 3 --seconds 10

Each round runs the full-cycle benchmark (docs/benchmarks.md §2) on a fresh server with
logs as text at warning (the benchmark default) and no metrics, then on one with
`MEDREQ_LOG_FORMAT=json`, `MEDREQ_LOG_LEVEL=info` (one access line per request and socket,
written to the server's log file) and `MEDREQ_METRICS_TOKEN` set (every metric recorded),
scraped once at the end. Alternating rounds spreads the machine's background load over both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medreq.simulate.bench import environment
from medreq.simulate.bench.cycle import bench_cycle
from medreq.simulate.server import ServerProcess

TOKEN = "bench-metrics-token"
SETUPS = {
    "off": {},
    "on": {"MEDREQ_LOG_FORMAT": "json", "MEDREQ_LOG_LEVEL": "info", "MEDREQ_METRICS_TOKEN": TOKEN},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument(
        "--parts", action="store_true", help="also run each part alone: info-level text logs, JSON logs, metrics"
    )
    args = parser.parse_args()
    if args.parts:
        SETUPS["info_text"] = {"MEDREQ_LOG_LEVEL": "info"}
        SETUPS["json_only"] = {"MEDREQ_LOG_FORMAT": "json", "MEDREQ_LOG_LEVEL": "info"}
        SETUPS["metrics_only"] = {"MEDREQ_METRICS_TOKEN": TOKEN}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in SETUPS}
    for _ in range(args.rounds):
        for name, env in SETUPS.items():
            with ServerProcess(env=env) as server:
                result = bench_cycle(server.url, server.pid, workers=args.workers, seconds=args.seconds)
                if "MEDREQ_METRICS_TOKEN" in env:
                    scraped = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
                    assert scraped.status_code == 200, scraped.text
                result["access_lines"] = server.log_path.read_text().count('"logger": "medreq.access"')
            run = {k: result[k] for k in ("cycles_per_s", "server_cpu_ms_per_cycle", "lost", "errors")}
            run["access_lines"] = result.get("access_lines", 0)
            runs[name].append(run)
            print(name, json.dumps(run), file=sys.stderr, flush=True)
    summary = {
        name: {
            "median_cycles_per_s": statistics.median(r["cycles_per_s"] for r in rs),
            "median_server_cpu_ms_per_cycle": statistics.median(r["server_cpu_ms_per_cycle"] for r in rs),
            "runs": rs,
        }
        for name, rs in runs.items()
    }
    off, on = summary["off"], summary["on"]
    summary["throughput_on_vs_off"] = round(on["median_cycles_per_s"] / off["median_cycles_per_s"], 3)
    summary["cpu_per_cycle_on_vs_off"] = round(
        on["median_server_cpu_ms_per_cycle"] / off["median_server_cpu_ms_per_cycle"], 3
    )
    print(json.dumps({"environment": environment(), **summary}, indent=2))


if __name__ == "__main__":
    main()
