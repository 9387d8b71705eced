"""Two versions of medreq, side by side in one run: the same benchmarks, alternating.

    git worktree add --detach /tmp/before <commit>
    python loadtests/compare_versions.py --before /tmp/before --rounds 2

Each round runs every benchmark once per version, alternating which goes first, so a machine
that gets busier or quieter during the run blurs both alike. Each version runs as
``python -m medreq bench … --json`` with ``PYTHONPATH`` set to its checkout (the benchmark's own
server process inherits it). Prints a Markdown table of medians and the change, and writes every
run's JSON next to it (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent

# benchmark → (arguments, [(label, path into its JSON, higher is better)]); the JSON is keyed by
# the `medreq bench` command, the arguments' first word
BENCHMARKS: dict[str, tuple[list[str], list[tuple[str, list[Any], bool]]]] = {
    "cycle": (
        ["cycle", "--workers", "64", "--processes", "2", "--seconds", "10"],
        [
            ("cycles/s", ["results", 0, "cycles_per_s"], True),
            ("server CPU ms/cycle", ["results", 0, "server_cpu_ms_per_cycle"], False),
            ("cycle p99 ms", ["results", 0, "cycle_ms", "p99"], False),
        ],
    ),
    "cycle-webhook": (  # every patient offline with a webhook: answers go by the deliverer
        ["cycle", "--workers", "64", "--processes", "2", "--seconds", "10", "--webhook"],
        [
            ("cycles/s", ["results", 0, "cycles_per_s"], True),
            ("server CPU ms/cycle", ["results", 0, "server_cpu_ms_per_cycle"], False),
            ("cycle p99 ms", ["results", 0, "cycle_ms", "p99"], False),
        ],
    ),
    "cycle-image": (  # a 32 KB prescription photo with every request
        ["cycle", "--workers", "64", "--processes", "2", "--seconds", "10", "--image"],
        [
            ("cycles/s", ["results", 0, "cycles_per_s"], True),
            ("server CPU ms/cycle", ["results", 0, "server_cpu_ms_per_cycle"], False),
            ("cycle p99 ms", ["results", 0, "cycle_ms", "p99"], False),
        ],
    ),
    "webhook": (
        ["webhook", "--events", "5000", "--workers", "64"],
        [
            ("deliveries/s", ["results", 0, "deliveries_per_s"], True),
            ("server CPU ms/event", ["results", 0, "server_cpu_ms_per_event"], False),
            ("request → receiver p99 ms", ["results", 0, "latency_ms", "p99"], False),
        ],
    ),
    "notify": (
        ["notify", "--rates", "200", "--seconds", "10"],
        [
            ("notify p50 ms @200/s", ["results", 0, "post_to_notify_ms", "p50"], False),
            ("notify p99 ms @200/s", ["results", 0, "post_to_notify_ms", "p99"], False),
            ("server CPU ms/request @200/s", ["results", 0, "server_cpu_ms_per_request"], False),
        ],
    ),
    "notify-500": (  # issue 14's rate
        ["notify", "--rates", "500", "--seconds", "10"],
        [
            ("notify p50 ms @500/s", ["results", 0, "post_to_notify_ms", "p50"], False),
            ("notify p99 ms @500/s", ["results", 0, "post_to_notify_ms", "p99"], False),
            ("server CPU ms/request @500/s", ["results", 0, "server_cpu_ms_per_request"], False),
        ],
    ),
    "idle": (
        [
            "idle",
            "--connections",
            "2000",
            "--per-account",
            "10",
            "--hold",
            "5",
            "--compression",
            "off",
            "--processes",
            "1",
        ],
        [("KB per idle socket", ["results", 0, "rss_per_connection_kb"], False)],
    ),
}


def run(checkout: Path, args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        [sys.executable, "-P", "-m", "medreq", "bench", *args, "--json"],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: medreq bench {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def dig(data: Any, path: list[Any]) -> float | None:
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return float(data) if isinstance(data, int | float) else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, required=True, help="checkout of the earlier version")
    parser.add_argument("--after", type=Path, default=HERE, help="checkout of the later one (this one)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="benchmarks, comma-separated")
    parser.add_argument("--out", type=Path, default=Path("compare-versions.json"))
    options = parser.parse_args()
    chosen = [b.strip() for b in options.only.split(",") if b.strip()]
    versions = {"before": options.before.resolve(), "after": options.after.resolve()}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {b: {"before": [], "after": []} for b in chosen}
    for round_number in range(options.rounds):
        order = ["before", "after"] if round_number % 2 == 0 else ["after", "before"]
        for name in chosen:
            args = BENCHMARKS[name][0]
            for version in order:
                print(f"round {round_number + 1}: {name} on {version}", file=sys.stderr, flush=True)
                runs[name][version].append(run(versions[version], args))
    options.out.write_text(
        json.dumps({"versions": {k: str(v) for k, v in versions.items()}, "runs": runs}, indent=1)
    )
    print(
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())}, medians of {options.rounds} alternating rounds.\n"
    )
    print("| benchmark | measure | before | after | change |")
    print("|---|---|---|---|---|")
    for name in chosen:
        if name not in BENCHMARKS:
            continue
        for label, path, higher_better in BENCHMARKS[name][1]:
            values = {
                v: [x for r in runs[name][v] if (x := dig(r[BENCHMARKS[name][0][0]], path)) is not None] for v in versions
            }
            if not values["before"] or not values["after"]:
                print(f"| {name} | {label} | {values['before'] or '–'} | {values['after'] or '–'} | – |")
                continue
            before, after = statistics.median(values["before"]), statistics.median(values["after"])
            change = (after - before) / before * 100 if before else 0.0
            better = (change >= 0) == higher_better or abs(change) < 0.05
            print(
                f"| {name} | {label} | {before:g} | {after:g} | {change:+.1f} % {'' if better else '(worse)'} |"
            )


if __name__ == "__main__":
    main()
