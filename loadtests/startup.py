"""How long `medreq` takes to start: `--help` of the CLI, and `medreq serve` until it answers.

Issue 14 asks for `medreq --help` and `medreq requests --help` in at most 150 ms wall, and
`medreq serve` ready in at most 0.5 s on an existing data dir. Each figure is whole processes,
timed from outside (a monotonic clock around `subprocess.run`, or from `Popen` until
`GET /health` first answers 200), run RUNS times after one untimed warm-up, printed as
min / median / max in milliseconds: quote the median.

The serve figure is on an existing data dir: one untimed start creates its database, key and
media dir first (a brand-new data dir also runs every migration, which is not what is asked).
The server is the console script `medreq` next to this Python (as users start it), with the
quiet load-test settings of `medreq.simulate.server.LOAD_ENV`, on a free loopback port.

    python loadtests/startup.py --runs 20
    python loadtests/startup.py --runs 20 --only serve
    python loadtests/startup.py --medreq "python -P /tmp/old/medreq-script"   # another build
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from medreq.simulate.server import LOAD_ENV, free_port

HELP_COMMANDS = (("--help",), ("requests", "--help"), ("serve", "--help"))

#: the command that runs medreq (``--medreq``)
MEDREQ: list[str] = []


def medreq_command() -> list[str]:
    """``--medreq``, else the installed console script, else ``python -P -m medreq``."""
    if MEDREQ:
        return MEDREQ
    script = Path(sys.executable).with_name("medreq")
    return [str(script)] if script.exists() else [sys.executable, "-P", "-m", "medreq"]


def time_help(args: tuple[str, ...]) -> float:
    start = time.perf_counter()
    done = subprocess.run([*medreq_command(), *args], capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"medreq {' '.join(args)} failed:\n{done.stderr.decode(errors='replace')}")
    return elapsed


def health_ok(port: int) -> bool:
    """One ``GET /health`` over a raw socket: True on a 200 (no HTTP client's import or pool
    in the loop that polls every millisecond)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def time_serve(data_dir: Path, log: Path) -> float:
    """Seconds from starting `medreq serve` to its first 200 on ``/health``; then stopped."""
    port = free_port()
    command = [*medreq_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--data-dir", str(data_dir)]
    with open(log, "ab") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, env={**os.environ, **LOAD_ENV}, stdout=out, stderr=subprocess.STDOUT)
    try:
        while not health_ok(port):
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{log.read_text(errors='replace')[-3000:]}")
            if time.perf_counter() - start > 30:
                raise RuntimeError("the server did not answer within 30 s")
            time.sleep(0.001)
        return time.perf_counter() - start
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def report(label: str, measure: Callable[[], float], runs: int) -> None:
    measure()  # warm-up: file caches, .pyc files
    times = [measure() * 1000 for _ in range(runs)]
    print(
        f"{label:28} min {min(times):7.1f}  median {statistics.median(times):7.1f}  "
        f"max {max(times):7.1f} ms  (n={runs})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", choices=("help", "serve"), help="Only the --help figures, or only serve.")
    parser.add_argument("--medreq", help="The command to time instead (split as a shell would).")
    args = parser.parse_args()
    MEDREQ[:] = shlex.split(args.medreq or "")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {' '.join(medreq_command())}")
    if args.only != "serve":
        for command in HELP_COMMANDS:
            report("medreq " + " ".join(command), functools.partial(time_help, command), args.runs)
    if args.only != "help":
        work = Path(tempfile.mkdtemp(prefix="medreq-startup-"))
        try:
            data_dir, log = work / "data", work / "server.log"
            time_serve(data_dir, log)  # creates the data dir: database, migrations, key
            report("medreq serve → /health 200", lambda: time_serve(data_dir, log), args.runs)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
