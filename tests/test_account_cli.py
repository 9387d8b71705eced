"""`medreq account create` writes straight to the configured database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from medreq.cli import app

from .conftest import ServerProcess, create_database, drop_database, require_service


def test_account_create_then_login_over_http(server_factory: object) -> None:
    server: ServerProcess = server_factory(start=False)  # type: ignore[operator]
    runner = CliRunner()
    args = [
        "account",
        "create",
        "--role",
        "pharmacy",
        "--username",
        "lifecare",
        "--name",
        "LifeCare Pharmacy",
    ]
    result = runner.invoke(
        app, [*args, "--data-dir", str(server.data_dir), "--password-stdin", "--init"], input="s3cret-pass\n"
    )
    assert result.exit_code == 0, result.output
    database = (server.data_dir / "medreq.db").resolve()
    assert f"created pharmacy lifecare with id 1 in {database}" in result.output
    again = runner.invoke(
        app, [*args, "--data-dir", str(server.data_dir), "--password-stdin"], input="s3cret-pass\n"
    )
    assert again.exit_code == 1
    assert "conflict" in again.output
    short = runner.invoke(
        app,
        [
            "account",
            "create",
            "--role",
            "patient",
            "--username",
            "bob",
            "--name",
            "Bob",
            "--data-dir",
            str(server.data_dir),
            "--password-stdin",
        ],
        input="short\n",
    )
    assert short.exit_code == 1
    assert "validation_error" in short.output
    server.start()
    tokens = httpx.post(f"{server.url}/auth/token", json={"username": "lifecare", "password": "s3cret-pass"})
    assert tokens.status_code == 200
    assert tokens.json()["account"] == {
        "id": 1,
        "username": "lifecare",
        "role": "pharmacy",
        "name": "LifeCare Pharmacy",
        "phone": None,
        "status": "active",
    }


def test_closed_registration_still_allows_operator_accounts(server_factory: object) -> None:
    server: ServerProcess = server_factory(env={"MEDREQ_OPEN_REGISTRATION": "false"})  # type: ignore[operator]
    refused = httpx.post(
        f"{server.url}/auth/register",
        json={"username": "eve", "password": "password1", "role": "patient", "name": "Eve"},
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    result = CliRunner().invoke(
        app,
        [
            "account",
            "create",
            "--role",
            "patient",
            "--username",
            "eve",
            "--name",
            "Eve",
            "--data-dir",
            str(server.data_dir),
            "--password-stdin",
        ],
        input="password1\n",
    )
    assert result.exit_code == 0, result.output
    assert (
        httpx.post(f"{server.url}/auth/token", json={"username": "eve", "password": "password1"}).status_code
        == 200
    )


def test_account_create_refuses_a_folder_without_server_data(tmp_path: Path) -> None:
    """Run in the wrong folder, it says so instead of creating a second, empty database."""
    empty = tmp_path / "elsewhere"
    args = ["account", "create", "--role", "pharmacy", "--username", "lifecare", "--name", "LifeCare"]
    result = CliRunner().invoke(
        app, [*args, "--data-dir", str(empty), "--password-stdin"], input="s3cret-pass\n"
    )
    assert result.exit_code == 2
    assert f"no medreq database at {(empty / 'medreq.db').resolve()}" in result.stderr
    assert "--init" in result.stderr
    assert not (empty / "medreq.db").exists()


def test_account_create_finds_the_server_database_from_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no --data-dir it uses ./medreq-data, as `medreq serve` in the same folder does."""
    server = ServerProcess(tmp_path / "medreq-data")
    server.start()
    try:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("MEDREQ_DATA_DIR", raising=False)
        monkeypatch.delenv("MEDREQ_DATABASE_URL", raising=False)
        args = [
            "account",
            "create",
            "--role",
            "patient",
            "--username",
            "bob",
            "--name",
            "Bob",
            "--password-stdin",
        ]
        result = CliRunner().invoke(app, args, input="bob-password\n", env={"MEDREQ_SCRYPT_N": "1024"})
        assert result.exit_code == 0, result.output
        assert str((tmp_path / "medreq-data" / "medreq.db").resolve()) in result.output
        tokens = httpx.post(f"{server.url}/auth/token", json={"username": "bob", "password": "bob-password"})
        assert tokens.status_code == 200, tokens.text
    finally:
        server.stop()


def operator(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`medreq ARGS` as an operator runs it, in ``cwd`` (its ./medreq-data is the default)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDREQ_")} | {"MEDREQ_SCRYPT_N": "1024"}
    return subprocess.run(
        [sys.executable, "-P", "-m", "medreq", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["account", "approve", "lifecare"],
        ["account", "disable", "lifecare"],
        ["account", "enable", "lifecare"],
        ["account", "list", "--pending"],
        ["account", "reset-password", "lifecare", "--password-stdin"],
        ["db", "prune"],
    ],
    ids=" ".join,
)
def test_operator_commands_in_the_wrong_folder_say_which_database_they_looked_for(
    tmp_path: Path, args: list[str]
) -> None:
    """No second, empty database is made in the wrong folder: one error line names the file."""
    result = operator(*args, cwd=tmp_path, stdin="new-password-1\n")
    assert result.returncode == 2, result.stderr
    database = tmp_path / "medreq-data" / "medreq.db"
    assert result.stderr.strip().splitlines() == [
        f"error: no medreq database at {database}: run this where `medreq serve` runs, "
        "or pass its --data-dir (or --database)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_operator_errors_have_the_error_prefix_and_name_the_database(server: ServerProcess, tmp_path: Path) -> None:
    data = str(server.data_dir)
    database = (server.data_dir / "medreq.db").resolve()
    missing = operator("account", "approve", "lifecare", "--data-dir", data, cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: not_found: no account named 'lifecare' (database: {database})"

    short = operator("account", "reset-password", "bob", "--password-stdin", "--data-dir", data, cwd=tmp_path, stdin="short\n")
    assert short.returncode == 1
    assert short.stderr.startswith("error: validation_error: password must be at least 8 characters")
    assert f"(database: {database})" in short.stderr

    args = ["account", "create", "--role", "patient", "--username", "bob", "--name", "Bob", "--password-stdin"]
    assert operator(*args, "--data-dir", data, cwd=tmp_path, stdin="bob-password\n").returncode == 0
    twice = operator(*args, "--data-dir", data, cwd=tmp_path, stdin="bob-password\n")
    assert twice.returncode == 1
    assert twice.stderr.startswith("error: conflict: ") and f"(database: {database})" in twice.stderr


def test_account_list_says_when_no_pharmacy_awaits_approval(server: ServerProcess, tmp_path: Path) -> None:
    data = str(server.data_dir)
    database = (server.data_dir / "medreq.db").resolve()
    none = operator("account", "list", "--pending", "--data-dir", data, cwd=tmp_path)
    assert none.returncode == 0, none.stderr
    assert none.stdout.strip() == f"No pharmacies await approval (database: {database})."
    assert operator("account", "list", "--pending", "--json", "--data-dir", data, cwd=tmp_path).stdout == ""

    args = ["account", "create", "--role", "pharmacy", "--username", "lifecare", "--name", "LifeCare"]
    assert operator(*args, "--password-stdin", "--data-dir", data, cwd=tmp_path, stdin="lifecare-pw\n").returncode == 0
    listed = operator("account", "list", "--data-dir", data, cwd=tmp_path)
    assert "lifecare" in listed.stdout and "No " not in listed.stdout


def test_an_operator_command_against_postgresql_leaves_nothing_in_its_folder(tmp_path: Path) -> None:
    """`--database postgresql://…` from a folder with no server data: the command works and
    leaves no ./medreq-data (no JWT secret of its own, no media folder) behind."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    url = asyncio.run(create_database())
    try:
        created = operator(
            "account", "create", "--role", "patient", "--username", "bob", "--name", "Bob",
            "--password-stdin", "--database", url, "--init", cwd=tmp_path, stdin="bob-password-1\n",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        disabled = operator("account", "disable", "bob", "--database", url, cwd=tmp_path)
        assert disabled.returncode == 0, disabled.stderr
        listed = operator("account", "list", "--status", "disabled", "--json", "--database", url, cwd=tmp_path)
        assert [json.loads(line)["username"] for line in listed.stdout.splitlines()] == ["bob"]
        assert list(tmp_path.iterdir()) == []
    finally:
        asyncio.run(drop_database(url))
