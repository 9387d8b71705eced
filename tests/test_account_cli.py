"""`medreq account create` writes straight to the configured database."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from medreq.cli import app

from .conftest import ServerProcess


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
