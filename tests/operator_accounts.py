"""Accounts made the operator's way (`medreq account create`, straight into the database).

A self-registered pharmacy may await an operator's approval (PROTOCOL.md §2), so tests that
need a pharmacy able to receive requests create it here rather than over `/auth/register`.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import httpx

from .conftest import Account, ServerProcess

PASSWORD = "correct horse battery"


def operator_account(server: ServerProcess, role: str, name: str, *, username: str | None = None) -> Account:
    """An active account created by the operator's CLI, signed in over HTTP."""
    username = username or f"{role[:3]}-{uuid.uuid4().hex[:10]}"
    # a process of its own, as an operator runs it (and free of any event loop the test runs)
    args = ["account", "create", "--role", role, "--username", username, "--name", name]
    result = subprocess.run(
        [sys.executable, "-m", "medreq", *args, "--data-dir", str(server.data_dir), "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tokens = httpx.post(
        f"{server.url}/auth/token", json={"username": username, "password": PASSWORD}, timeout=10
    )
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    return Account(
        id=body["account"]["id"],
        username=username,
        password=PASSWORD,
        role=role,
        name=name,
        phone=None,
        access=body["access"],
        refresh=body["refresh"],
    )
