"""`medreq account create` writes straight to the configured database."""

from __future__ import annotations

import httpx
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
        app, [*args, "--data-dir", str(server.data_dir), "--password-stdin"], input="s3cret-pass\n"
    )
    assert result.exit_code == 0, result.output
    assert "created pharmacy lifecare with id 1" in result.output
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
