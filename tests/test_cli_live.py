"""`medreq listen` and `medreq request --wait`: real processes, real restarts."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from medreq.cli import app

from .conftest import Account, ServerProcess
from .wire import post_request, post_response

pytestmark = [pytest.mark.shared_server, pytest.mark.timeout(120)]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("MEDREQ_PROFILE", "MEDREQ_URL")}
    return environ | {"MEDREQ_CONFIG_DIR": str(tmp_path / "config"), "PYTHONUNBUFFERED": "1"}


def log_in(env: dict[str, str], server: ServerProcess, account: Account, profile: str) -> None:
    result = CliRunner().invoke(
        app,
        ["login", "--url", server.url, "-u", account.username, "--password-stdin", "-P", profile],
        input=account.password + "\n",
        env={"MEDREQ_CONFIG_DIR": env["MEDREQ_CONFIG_DIR"]},
    )
    assert result.exit_code == 0, result.output


def medreq(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "medreq", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 20.0) -> None:
    """Read the process's stderr until a line contains `needle` (bounded by `timeout`)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if needle in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"{needle!r} never appeared on stderr")


def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def make_requests(server: ServerProcess, patient: Account, pharmacy: Account, count: int) -> list[int]:
    ids = []
    for n in range(count):
        created = post_request(server, patient, pharmacy=pharmacy.id, quantity=n + 1, medicine_name=f"m{n}")
        assert created.status_code == 201, created.text
        ids.append(created.json()["request_id"])
    return ids


@pytest.mark.own_server
def test_listen_resumes_across_server_and_cli_restarts_exactly_once(
    env: dict[str, str], server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    log_in(env, server, pharmacy, "shop")
    listen = medreq(env, "listen", "--json", "--count", "6", "--timeout", "90", "-P", "shop")
    try:
        wait_for_line(listen, "listening")
        first = make_requests(server, patient, pharmacy, 3)
        time.sleep(0.5)  # let the listener see them before the server goes away
        server.restart()
        second = make_requests(server, patient, pharmacy, 3)
        code, out, err = finish(listen)
    finally:
        listen.kill()
    assert code == 0, (err, out)
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event_id"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e["request_id"] for e in events] == first + second
    assert {e["type"] for e in events} == {"new_request"}

    # nobody listening now: these wait in the store; the next `listen` starts after event 6
    third = make_requests(server, patient, pharmacy, 2)
    code, out, err = finish(medreq(env, "listen", "--json", "--count", "2", "--timeout", "30", "-P", "shop"))
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["event_id"], e["request_id"]) for e in events] == [(7, third[0]), (8, third[1])]


def test_listen_prints_one_line_per_event_and_times_out_cleanly(
    env: dict[str, str], server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    log_in(env, server, pharmacy, "shop")
    made = make_requests(server, patient, pharmacy, 2)
    runner = CliRunner()
    shown = runner.invoke(
        app, ["listen", "--after", "0", "--count", "2", "--timeout", "20", "-P", "shop"], env=env
    )
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("#1 ") and f"new_request request {made[0]} from Alice Patient" in lines[0]
    assert lines[1].startswith("#2 ")

    short = runner.invoke(app, ["listen", "--count", "1", "--timeout", "0.5", "-P", "shop"], env=env)
    assert short.exit_code == 1
    assert short.stderr.strip().splitlines()[-1] == "error: timeout: got 0 of 1 events in 0.5s"


def test_request_wait_prints_the_answer_and_saves_the_audio(
    env: dict[str, str],
    tmp_path: Path,
    server: ServerProcess,
    patient: Account,
    pharmacy: Account,
    png_bytes: bytes,
    wav_bytes: bytes,
) -> None:
    log_in(env, server, patient, "alice")
    image = tmp_path / "rx.png"
    image.write_bytes(png_bytes)
    audio_dir = tmp_path / "audio"
    args = ["request", "--pharmacy", str(pharmacy.id), "-q", "3", "--image", str(image), "--wait"]
    wait = medreq(env, *args, "--save-audio", str(audio_dir), "--timeout", "60", "-P", "alice")
    try:
        request_id = None
        for _ in range(200):  # until the request exists
            listed = httpx.get(f"{server.url}/medicine/request/", headers=pharmacy.headers, timeout=5).json()
            if listed["results"]:
                request_id = listed["results"][0]["id"]
                break
            time.sleep(0.1)
        assert request_id is not None
        answered = post_response(
            server, pharmacy, request_id=request_id, text_message="pick up at 6", audio=wav_bytes
        )
        assert answered.status_code == 200, answered.text
        code, out, err = finish(wait)
    finally:
        wait.kill()
    assert code == 0, err
    assert f"waiting for the pharmacy's answer to request {request_id}, giving up after 60s" in err
    assert f"Request {request_id} sent to {pharmacy.name}" in out
    assert f"request {request_id} ACCEPTED by {pharmacy.name}: pick up at 6" in out
    saved = list(audio_dir.iterdir())
    assert len(saved) == 1
    assert saved[0].read_bytes() == wav_bytes


def test_piped_output_is_not_wrapped(
    env: dict[str, str], server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    """Through a pipe, a table row and an error line stay one line each, however long."""
    log_in(env, server, patient, "alice")
    medicine = "Amoxicillin and clavulanic acid " + "extended release " * 6 + "875mg"
    sent = post_request(server, patient, pharmacy=pharmacy.id, medicine_name=medicine)
    assert sent.status_code == 201, sent.text
    listing = medreq(env, "requests", "-P", "alice")
    code, out, err = finish(listing)
    assert code == 0, err
    assert any(medicine in line for line in out.splitlines()), out
    failing = medreq(env, "respond", str(sent.json()["request_id"]), "--accept", "-m", "x" * 200, "-P", "alice")
    code, out, err = finish(failing)
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.own_server
def test_listen_waits_for_a_server_that_is_not_up_yet(
    env: dict[str, str], server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    """Started while the server is down, `listen` says what it waits for and what to check,
    retries until the server is up, then listens as usual."""
    log_in(env, server, pharmacy, "shop")
    server.stop()
    listen = medreq(env, "listen", "--json", "--count", "1", "--timeout", "90", "-P", "shop")
    try:
        wait_for_line(listen, f"waiting for {server.url} (is `medreq serve` running?)")
        assert listen.poll() is None  # still waiting, not failed
        server.start()
        wait_for_line(listen, "listening")
        made = make_requests(server, patient, pharmacy, 1)
        code, out, err = finish(listen)
    finally:
        listen.kill()
    assert code == 0, err
    assert [json.loads(line)["request_id"] for line in out.splitlines()] == made
    assert "Traceback" not in err and "error" not in err


@pytest.mark.own_server
def test_listen_no_retry_fails_at_once_saying_what_to_check(
    env: dict[str, str], server: ServerProcess, pharmacy: Account
) -> None:
    log_in(env, server, pharmacy, "shop")
    server.stop()
    code, out, err = finish(medreq(env, "listen", "--no-retry", "-P", "shop"), timeout=30)
    assert code == 1, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: transport_error: cannot reach {server.ws_url}: "), lines[0]
    assert lines[0].endswith(f"(is `medreq serve` running at {server.url}?)"), lines[0]


@pytest.mark.own_server
def test_listen_on_a_terminal_keeps_one_status_line_updated_in_place(
    env: dict[str, str], server: ServerProcess, pharmacy: Account
) -> None:
    """On a terminal the wait is one line rewritten in place (carriage return, erase line),
    counting down to the next attempt; Ctrl-C ends it with 130 and no traceback."""
    log_in(env, server, pharmacy, "shop")
    server.stop()
    leader, follower = pty.openpty()
    listen = subprocess.Popen(
        [sys.executable, "-m", "medreq", "listen", "-P", "shop"],
        env=env | {"COLUMNS": "120", "TERM": "xterm"},
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    screen = bytearray()

    def read_until(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not done() and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.2)[0]:
                try:
                    screen.extend(os.read(leader, 65536))
                except OSError:
                    return

    rewrite = b"\r\x1b[2K"
    try:
        read_until(lambda: b"retry in " in screen)
        read_until(lambda: screen.count(rewrite) >= 4)  # the countdown ticks: the line is rewritten
        waiting = bytes(screen[screen.index(b"waiting for") :])
    finally:
        listen.send_signal(signal.SIGINT)
        code = listen.wait(15)
        os.close(leader)
    shown = waiting.decode(errors="replace")
    assert f"waiting for {server.url} — retry in " in shown
    assert "(is `medreq serve` running?)" in shown
    assert waiting.count(rewrite) >= 4
    assert b"\n" not in waiting  # one line, never a new one per attempt
    assert code == 130
    assert b"Traceback" not in screen


@pytest.mark.own_server
def test_a_rest_command_against_a_stopped_server_says_what_to_check(
    env: dict[str, str], server: ServerProcess, pharmacy: Account
) -> None:
    log_in(env, server, pharmacy, "shop")
    server.stop()
    code, _out, err = finish(medreq(env, "requests", "-P", "shop"), timeout=30)
    assert code == 1, err
    line = err.strip()
    assert line.startswith(f"error: transport_error: cannot reach {server.url}: "), line
    assert line.endswith(f"(is `medreq serve` running at {server.url}?)"), line
