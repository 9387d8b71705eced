"""The Locust load test runs against a real server: no failures, WebSocket deliveries recorded."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import make_account

ROOT = Path(__file__).resolve().parent.parent


def test_locust_headless_run_has_no_failures_and_records_ws_delivery(
    server_factory: Any, tmp_path: Path
) -> None:
    server = server_factory(env={"MEDREQ_RATE_LIMIT_ENABLED": "false"})
    command = [
        sys.executable, "-m", "locust",
        "-f", str(ROOT / "loadtests" / "locustfile.py"),
        "--host", server.url,
        "--headless", "-u", "6", "-r", "6", "--run-time", "8s", "--stop-timeout", "3",
        "--csv", str(tmp_path / "run"), "--only-summary", "--exit-code-on-error", "1",
        "--loglevel", "WARNING",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(tmp_path / "run_stats.csv", newline="") as fh:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(fh)}
    total = rows[("", "Aggregated")]
    assert int(total["Request Count"]) > 0
    assert int(total["Failure Count"]) == 0
    delivery = rows[("WS", "new_request delivery")]
    assert int(delivery["Request Count"]) > 0
    assert int(rows[("WS", "response ack")]["Request Count"]) > 0
    assert int(rows[("POST", "/medicine/request/ [POST]")]["Request Count"]) > 0


def test_locust_respects_rate_limits_and_removes_its_accounts(server_factory: Any, tmp_path: Path) -> None:
    """Against tight limits: 429s are waited out (counted), never failures; at the end every
    synthetic account is gone with all it made, and the real account never saw them."""
    server = server_factory(env={"MEDREQ_REST_RATE": "5", "MEDREQ_REST_BURST": "4"})
    real = make_account(server.url, "patient")
    command = [
        sys.executable, "-m", "locust",
        "-f", str(ROOT / "loadtests" / "locustfile.py"),
        "--host", server.url,
        "--headless", "-u", "5", "-r", "5", "--run-time", "6s", "--stop-timeout", "3",
        "--csv", str(tmp_path / "run"), "--only-summary", "--exit-code-on-error", "1",
        "--loglevel", "WARNING",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(tmp_path / "run_stats.csv", newline="") as fh:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(fh)}
    assert int(rows[("", "Aggregated")]["Failure Count"]) == 0
    assert int(rows[("RATE", "Retry-After wait")]["Request Count"]) > 0
    assert "removed 5 synthetic accounts; 0 left" in done.stderr
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        assert db.execute("select count(*) from accounts").fetchone() == (1,)
        assert db.execute("select count(*) from medicine_requests").fetchone() == (0,)
    finally:
        db.close()
    assert httpx.get(f"{server.url}/pharmacies/", headers=real.headers).json()["results"] == []


def test_ci_smoke_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(ROOT / "loadtests" / "ci_smoke.sh")], check=True)


SCRIPTS = sorted(p.name for p in (ROOT / "loadtests").glob("*.py") if p.name not in ("locustfile.py", "shapes.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_measuring_script_still_imports_and_explains_itself(script: str) -> None:
    """The scripts behind docs/benchmarks.md keep up with the code they measure (a renamed module
    or option fails here, not when someone re-runs a benchmark)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / script), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout.lower()  # argparse, or Typer (bench.py)


def test_outbox_cost_runs_its_cycles() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / "outbox_cost.py"), "--cycles", "5", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no webhook:" in done.stdout and "webhook:" in done.stdout
