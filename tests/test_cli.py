"""`medreq` user commands through Typer's CliRunner, against a real server."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from medreq.cli import app

from .conftest import Account, ServerProcess, free_port

pytestmark = [pytest.mark.shared_server, pytest.mark.timeout(60)]

Invoke = Callable[..., Result]


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config"
    monkeypatch.setenv("MEDREQ_CONFIG_DIR", str(path))
    monkeypatch.delenv("MEDREQ_PROFILE", raising=False)
    monkeypatch.delenv("MEDREQ_URL", raising=False)
    return path


@pytest.fixture
def cli(config_dir: Path) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return invoke


def log_in(cli: Invoke, server: ServerProcess, account: Account, profile: str) -> None:
    result = cli(
        "login", "--url", server.url, "-u", account.username, "--password-stdin", "-P", profile,
        input=account.password + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def profile_file(config_dir: Path, name: str) -> Path:
    return config_dir / "profiles" / f"{name}.json"


def assert_one_line_error(result: Result, code: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {code}: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "command",
    ["login", "register", "logout", "whoami", "pharmacies", "request", "respond", "requests", "listen"],
)
def test_every_user_command_has_help_with_an_example(cli: Invoke, command: str) -> None:
    result = cli(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Example: medreq " + command in " ".join(result.output.split())
    assert "--profile" in result.output


def test_login_whoami_logout_keep_a_private_profile(
    cli: Invoke, config_dir: Path, server: ServerProcess, patient: Account
) -> None:
    log_in(cli, server, patient, "alice")
    path = profile_file(config_dir, "alice")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert (saved["url"], saved["account_id"], saved["role"]) == (server.url, patient.id, "patient")

    result = cli("whoami", "-P", "alice")
    assert result.exit_code == 0, result.output
    assert patient.username in result.output
    assert f"patient #{patient.id}" in result.output

    # the default profile is separate: nobody is logged in there
    assert_one_line_error(cli("whoami"), "unauthorized")

    assert cli("logout", "-P", "alice").exit_code == 0
    assert not path.exists()
    assert "not logged in" in assert_one_line_error(cli("whoami", "-P", "alice"), "unauthorized")


def test_login_prompts_for_the_password(cli: Invoke, server: ServerProcess, pharmacy: Account) -> None:
    result = cli("login", "--url", server.url, "-u", pharmacy.username, input=pharmacy.password + "\n")
    assert result.exit_code == 0, result.output
    assert pharmacy.password not in result.output
    who = cli("whoami", "--json")
    assert json.loads(who.stdout)["id"] == pharmacy.id


def test_register_then_login(cli: Invoke, server: ServerProcess) -> None:
    result = cli(
        "register", "--url", server.url, "-u", "new-pharmacy", "--role", "pharmacy", "--name", "New Pharmacy",
        "--password-stdin", "--login", "-P", "shop", input="long enough password\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Registered new-pharmacy (pharmacy #" in result.output
    assert json.loads(cli("whoami", "-P", "shop", "--json").stdout)["username"] == "new-pharmacy"
    again = cli(
        "register", "--url", server.url, "-u", "new-pharmacy", "--role", "patient", "--name", "X",
        "--password-stdin", input="long enough password\n",
    )  # fmt: skip
    assert_one_line_error(again, "conflict")


def test_a_rejected_access_token_is_refreshed_and_saved(
    cli: Invoke, config_dir: Path, server: ServerProcess, patient: Account
) -> None:
    log_in(cli, server, patient, "default")
    path = profile_file(config_dir, "default")
    saved = json.loads(path.read_text())
    saved["access"] = saved["access"][:-6] + "AAAAAA"  # a bad signature: the server answers 401
    path.write_text(json.dumps(saved))

    result = cli("whoami")
    assert result.exit_code == 0, result.output
    assert patient.username in result.output
    renewed = json.loads(path.read_text())
    assert renewed["access"] != saved["access"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cli("whoami").exit_code == 0

    renewed["access"], renewed["refresh"] = "bad", "bad"
    path.write_text(json.dumps(renewed))
    assert "log in again" in assert_one_line_error(cli("whoami"), "unauthorized")


def requests_json(cli: Invoke, *args: str) -> list[dict[str, Any]]:
    result = cli("requests", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_request_respond_and_list(
    cli: Invoke, tmp_path: Path, server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes,
    wav_bytes: bytes,
) -> None:  # fmt: skip
    log_in(cli, server, patient, "alice")
    log_in(cli, server, pharmacy, "shop")
    image, audio = tmp_path / "rx.png", tmp_path / "reply.wav"
    image.write_bytes(png_bytes)
    audio.write_bytes(wav_bytes)

    listed = cli("pharmacies", "-P", "alice")
    assert listed.exit_code == 0, listed.output
    assert pharmacy.name in listed.output

    sent = cli(
        "request", "--pharmacy", str(pharmacy.id), "--quantity", "5", "--image", str(image),
        "--medicine", "Amoxicillin 500mg", "--note", "after 5pm", "-P", "alice",
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    first = requests_json(cli, "-P", "alice")[0]
    assert f"Request {first['id']} sent to {pharmacy.name}" in sent.output
    second = json.loads(
        cli(
            "request",
            "--pharmacy",
            str(pharmacy.id),
            "-q",
            "1",
            "--medicine",
            "Aspirin",
            "-P",
            "alice",
            "--json",
        ).stdout
    )["request_id"]

    table = cli("requests", "-P", "shop")
    assert table.exit_code == 0, table.output
    assert "Alice Patient" in table.output
    assert "Amoxicillin 500mg" in table.output
    assert "PENDING" in table.output
    assert "Unread" in table.output  # docs/protocol.md §3: each new_request is unread for the pharmacy
    assert [r["unread"] for r in requests_json(cli, "-P", "shop")] == [1, 1]

    answered = cli(
        "respond", str(first["id"]), "--accept", "-m", "ready at 6", "--audio", str(audio), "-P", "shop"
    )
    assert answered.exit_code == 0, answered.output
    assert "ACCEPTED" in answered.output

    mine = requests_json(cli, "-P", "alice")
    assert [(r["id"], r["status"]) for r in mine] == [(second, "PENDING"), (first["id"], "ACCEPTED")]
    assert mine[1]["response"]["message"] == "ready at 6"
    assert mine[1]["response"]["audio_url"]
    assert [r["id"] for r in requests_json(cli, "-P", "shop", "--status", "PENDING")] == [second]
    assert [r["id"] for r in requests_json(cli, "-P", "shop", "--limit", "1")] == [second]


def test_expected_failures_are_one_line_with_a_nonzero_exit(
    cli: Invoke, server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    unreachable = cli("login", "--url", dead, "-u", "x", "--password-stdin", input="whatever-pass\n")
    assert dead in assert_one_line_error(unreachable, "transport_error")

    wrong = cli(
        "login", "--url", server.url, "-u", patient.username, "--password-stdin", input="wrong-pass\n"
    )
    assert_one_line_error(wrong, "unauthorized")

    log_in(cli, server, patient, "alice")
    log_in(cli, server, pharmacy, "shop")
    invalid = cli("request", "--pharmacy", str(pharmacy.id), "-q", "0", "--medicine", "x", "-P", "alice")
    assert "quantity" in assert_one_line_error(invalid, "validation_error")

    created = json.loads(
        cli(
            "request", "--pharmacy", str(pharmacy.id), "-q", "2", "--medicine", "x", "-P", "alice", "--json"
        ).stdout
    )
    request_id = str(created["request_id"])
    assert cli("respond", request_id, "--reject", "-P", "shop").exit_code == 0
    assert_one_line_error(cli("respond", request_id, "--accept", "-P", "shop"), "conflict")
    assert_one_line_error(cli("respond", request_id, "--accept", "-P", "alice"), "forbidden")

    both = cli("respond", request_id, "--accept", "--reject", "-P", "shop")
    assert both.exit_code == 2
    assert "Traceback" not in both.output


def test_a_large_prescription_is_streamed_with_a_progress_bar(
    cli: Invoke, tmp_path: Path, server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    from .conftest import png

    big = png(700, 700)  # ~1.4 MiB of pixels, compressed: pad it past the progress threshold
    image = tmp_path / "scan.png"
    image.write_bytes(big + b"\0" * (600 * 1024))
    log_in(cli, server, patient, "alice")
    sent = cli(
        "request", "--pharmacy", str(pharmacy.id), "-q", "1", "--image", str(image), "-P", "alice", "--json"
    )
    assert sent.exit_code == 0, sent.output
    created = json.loads(sent.stdout)
    assert created["data"]["image_url"]
