"""`medreq serve` refuses to start where it cannot serve: a port in use, a data dir held by
another server, a database it cannot open; and a refused start leaves no new data dir behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import ServerProcess, free_port

pytestmark = pytest.mark.timeout(90)


def serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`medreq serve ARGS` in ``cwd``, run to its end (a refused start ends at once)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDREQ_")}
    env |= {"MEDREQ_LOG_LEVEL": "warning", "MEDREQ_SCRYPT_N": "1024"}
    return subprocess.run(
        [sys.executable, "-P", "-m", "medreq", "serve", "--host", "127.0.0.1", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_second_server_on_the_same_data_dir_is_refused_naming_the_first(
    server: ServerProcess, tmp_path: Path
) -> None:
    second = serve("--port", str(free_port()), "--data-dir", str(server.data_dir), cwd=tmp_path)
    assert second.returncode == 1, second.stderr
    line = second.stderr.strip()
    assert line.startswith("error: the data dir "), line
    assert f"pid {server.pid}, {server.url}" in line, line
    assert "another --data-dir" in line
    assert "Application startup complete" not in second.stderr
    # the first one still serves, and still holds its data dir
    assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
    assert f"pid {server.pid}" in (server.data_dir / "server.lock").read_text()


def test_the_data_dir_is_free_again_once_its_server_stopped(server: ServerProcess) -> None:
    port = server.port
    server.kill()  # not even a clean stop: the lock goes with the process
    again = ServerProcess(server.data_dir, port=port)
    again.start()
    try:
        assert f"pid {again.pid}, {again.url}" in (server.data_dir / "server.lock").read_text()
    finally:
        again.stop()


def test_a_port_in_use_is_refused_before_anything_is_written(server: ServerProcess, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    taken = serve("--port", str(server.port), cwd=fresh)  # the default data dir: ./medreq-data
    assert taken.returncode == 1, taken.stderr
    assert taken.stderr.strip() == (
        f"error: port {server.port} is in use (is another medreq serve running? use --port)"
    )
    assert "startup complete" not in taken.stderr
    assert list(fresh.iterdir()) == []  # no ./medreq-data left behind


def test_a_failed_start_removes_only_the_data_dir_it_created(tmp_path: Path) -> None:
    unreachable = "postgresql://medreq:secret-pw@127.0.0.1:1/medreq"  # nothing listens on port 1
    new = tmp_path / "new" / "data"
    failed = serve("--port", str(free_port()), "--data-dir", str(new), "--database", unreachable, cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.startswith("error: cannot open the database postgresql+asyncpg://medreq:***@127.0.0.1:1")
    assert "secret-pw" not in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "new").exists()  # the parent it made too

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    failed = serve("--port", str(free_port()), "--data-dir", str(kept), "--database", unreachable, cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    assert (kept / "notes.txt").read_text() == "mine"
