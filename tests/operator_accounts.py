"""Accounts made the operator's way (`medreq account create`, straight into the database).

A self-registered pharmacy may await an operator's approval (docs/protocol.md §2), so tests that
need a pharmacy able to receive requests create it here rather than over `/auth/register`.
"""

from __future__ import annotations

from medreq.simulate import accounts
from medreq.simulate.accounts import PASSWORD, Role

from .conftest import Account, ServerProcess

__all__ = ["PASSWORD", "operator_account"]


def operator_account(server: ServerProcess, role: Role, name: str, *, username: str | None = None) -> Account:
    """An active account created by the operator's CLI, signed in over HTTP."""
    return accounts.operator_account(server.url, server.data_dir, role, name, username=username)
