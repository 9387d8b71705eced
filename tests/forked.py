"""Test servers forked from a process that has already imported medreq (multiprocessing's
forkserver), instead of a new interpreter for each.

The suite starts about 240 servers, and CPU is what bounds it on this 2-core machine: of the
0.69 s of CPU a `python -P -m medreq serve` costs from start to stop, 0.52 s is importing
medreq.server (`/usr/bin/time python -P -c "import medreq.server"`, 2026-12-07). A forkserver
per xdist worker imports it once; each server is then a fork of it that runs the same
`medreq serve` command line (argv, environment, log) in a process of its own, on its own port,
stopped and killed by signals as before. A server under a `wrapper` (valgrind) still starts as
a new interpreter (conftest.ServerProcess._launch).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from typing import Any

#: imported once in the forkserver; every forked server has them already
PRELOAD = ["tests.forked", "medreq.server", "medreq.cli", "alembic.command", "alembic.config"]
_context: Any = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


def _serve(argv: list[str], env: dict[str, str], log_path: str) -> None:
    """In the forked child: the environment and output of `python -m medreq <argv>`, then its
    command line. Typer's SystemExit becomes the process's exit code (multiprocessing)."""
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.argv = ["medreq", *argv]
    from medreq.cli import main

    main()


class Forked:
    """A forked server seen through the part of `subprocess.Popen` that ServerProcess uses. The
    forkserver, its parent, reaps it and passes the exit code on (negative: the signal)."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: str) -> None:
        self._process = _context.Process(target=_serve, args=(argv, env, log_path), name="medreq serve")
        self._process.start()

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    @property
    def returncode(self) -> int | None:
        code: int | None = self._process.exitcode
        return code

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(["medreq serve"], timeout or 0)
        return self.returncode

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
