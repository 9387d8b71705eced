"""How long `medreq` takes to start: `--help` of the CLI, and `medreq serve` until it answers.

Issue 14 asks for `medreq --help` and `medreq requests --help` in at most 150 ms wall, and
`medreq serve` ready in at most 0.5 s on an existing data dir. Each figure is whole processes,
timed from outside (a monotonic clock around `subprocess.run`, or from `Popen` until
`GET /health` first answers 200), run RUNS times after one untimed warm-up, printed as
min / median / max in milliseconds: quote the median. Beside the wall time, the CPU time the
process used (user + system; for serve, up to its first 200, from /proc, in 10 ms ticks): on
a machine shared with other work the wall time waits for a core, the CPU time much less so.

Several `--medreq` commands (builds to compare) run in turn, A B A B …, so a machine that
slows down during the call slows all of them alike.

The warm-up run writes Python's bytecode caches even where `PYTHONDONTWRITEBYTECODE` is set (it
is on this machine): the timed runs then load medreq's modules from them, as an installed
package (pip compiles them) or a user's second run does. Without them every run compiled
medreq's modules from source: 7 % more instructions for `medreq --help` under callgrind, and
57 ms more before `serve` answered (docs/benchmarks.md).

The serve figure is on an existing data dir: one untimed start creates its database, key and
media dir first (a brand-new data dir also runs every migration, which is not what is asked).
The server is the console script `medreq` next to this Python (as users start it), with the
quiet load-test settings of `medreq.simulate.server.LOAD_ENV`, on a free loopback port.

    python loadtests/startup.py --runs 20
    python loadtests/startup.py --runs 20 --only serve
    python loadtests/startup.py --medreq /tmp/old/bin/medreq --medreq medreq   # before, after
"""

from __future__ import annotations

import argparse
import os
import resource
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

from medreq.simulate.server import LOAD_ENV, cpu_seconds, free_port

HELP_COMMANDS = (("--help",), ("requests", "--help"), ("serve", "--help"))


def default_command() -> list[str]:
    """The installed console script, or ``python -P -m medreq`` where there is none."""
    script = Path(sys.executable).with_name("medreq")
    return [str(script)] if script.exists() else [sys.executable, "-P", "-m", "medreq"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: the environment of the warm-up runs: bytecode caches written, whatever this one says
WARM_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def time_help(medreq: list[str], args: tuple[str, ...], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU seconds of `medreq ARGS`."""
    cpu = children_cpu()
    start = time.perf_counter()
    done = subprocess.run([*medreq, *args], capture_output=True, check=False, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"medreq {' '.join(args)} failed:\n{done.stderr.decode(errors='replace')}")
    return elapsed, children_cpu() - cpu


def health_ok(port: int) -> bool:
    """One ``GET /health`` over a raw socket: True on a 200 (no HTTP client's import or pool
    in the loop that polls every millisecond)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def time_serve(
    medreq: list[str], data_dir: Path, log: Path, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Wall seconds from starting `medreq serve` to its first 200 on ``/health``, and the CPU
    seconds the server used until then; then it is stopped."""
    port = free_port()
    command = [*medreq, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    with open(log, "ab") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command, env={**(env or os.environ), **LOAD_ENV}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        while not health_ok(port):
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{log.read_text(errors='replace')[-3000:]}")
            if time.perf_counter() - start > 30:
                raise RuntimeError("the server did not answer within 30 s")
            time.sleep(0.001)
        return time.perf_counter() - start, cpu_seconds(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


Measure = Callable[[list[str], dict[str, str] | None], tuple[float, float]]


#: the floor under any `--help` of a Typer app like medreq's: the interpreter, and a two-command
#: app with the same settings (rich markup) printing its help
FLOOR_APP = """
import typer
app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich", pretty_exceptions_enable=False)
@app.callback()
def root(profile: str = "") -> None:
    "Root."
@app.command()
def a(x: int = 1) -> None:
    "A [bold]x[/bold]."
@app.command()
def b(x: int = 1) -> None:
    "B."
app()
"""
FLOORS = {
    "python -c pass": [sys.executable, "-P", "-c", "pass"],
    "2-command Typer app --help": [sys.executable, "-P", "-c", FLOOR_APP, "--help"],
}


def floor_of(command: list[str]) -> Measure:
    def measure(_: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
        return time_help(command, (), env)

    return measure


def help_of(args: tuple[str, ...]) -> Measure:
    def measure(medreq: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
        return time_help(medreq, args, env)

    return measure


def report(label: str, measure: Measure, commands: list[list[str]], runs: int) -> None:
    """``measure`` each command ``runs`` times, in turn, after one warm-up run of each."""
    for command in commands:
        measure(command, WARM_ENV)  # warm-up: file caches, bytecode caches
    results: list[list[tuple[float, float]]] = [[] for _ in commands]
    for _ in range(runs):
        for command, found in zip(commands, results, strict=True):
            found.append(measure(command, None))
    for command, found in zip(commands, results, strict=True):
        who = f"  [{' '.join(command)}]" if len(commands) > 1 else ""
        for kind, values in (("wall", [w * 1000 for w, _ in found]), ("cpu", [c * 1000 for _, c in found])):
            print(
                f"{label:28} {kind:4}  min {min(values):7.1f}  median {statistics.median(values):7.1f}  "
                f"max {max(values):7.1f} ms  (n={runs}){who}",
                flush=True,
            )


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", choices=("help", "serve"), help="Only the --help figures, or only serve.")
    parser.add_argument(
        "--medreq",
        action="append",
        help="A command that runs medreq (split as a shell would); repeat it to compare builds in turn.",
    )
    args = parser.parse_args()
    commands = [shlex.split(c) for c in args.medreq] if args.medreq else [default_command()]
    print(f"{load()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    if args.only != "serve":
        for label, floor in FLOORS.items():
            report(label, floor_of(floor), [floor], args.runs)
        for help_args in HELP_COMMANDS:
            report("medreq " + " ".join(help_args), help_of(help_args), commands, args.runs)
    if args.only != "help":
        work = Path(tempfile.mkdtemp(prefix="medreq-startup-"))
        try:
            data_dir, log = work / "data", work / "server.log"
            time_serve(commands[0], data_dir, log, WARM_ENV)  # the data dir: database, migrations, key
            report(
                "medreq serve → /health 200", lambda c, env: time_serve(c, data_dir, log, env), commands, args.runs
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(load())


if __name__ == "__main__":
    main()
