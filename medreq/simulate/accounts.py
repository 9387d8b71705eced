"""Accounts for tests, benchmarks, Locust and the simulator: register (or have the operator create)
an account, log it in, and keep what every caller needs in one small record.

    account = create_account("http://127.0.0.1:8000", "patient", name="Alice")     # sync, httpx
    httpx.get(url, headers=account.headers)

    accounts = await create_accounts(base_url, "pharmacy", 64)                      # async, many
    account = await sign_up_client(client, NewAccount.fresh("patient"))            # a MedreqClient,
                                                                                    # left logged in
    account = sign_up(post, NewAccount.fresh("pharmacy", synthetic=True))          # any transport
    account = operator_account(base_url, data_dir, "pharmacy", "LifeCare")         # `account create`

What to register is a `NewAccount`; how to send it is the caller's: a `Post` function (the sync
face: httpx here, Locust's session in loadtests/locustfile.py) or a `MedreqClient` (the async
face: the simulator and the benchmarks). A pharmacy that registers itself may await an
operator's approval (docs/protocol.md §2); `operator_account` makes one that is active at once.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from ..client import MedreqClient

Role = Literal["patient", "pharmacy"]
#: POST a JSON body to a path; the answer's status and its JSON body (or text, if not JSON).
Post = Callable[[str, dict[str, Any]], tuple[int, Any]]
#: Runs one call of the async face (e.g. retrying it): ``attempt(lambda: client.login(...))``.
Attempt = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]

PASSWORD = "correct horse battery"


class AccountError(RuntimeError):
    """The server refused to register or log in an account."""

    def __init__(self, path: str, status: int, body: Any) -> None:
        super().__init__(f"POST {path}: HTTP {status}: {str(body)[:300]}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Account:
    """A logged-in account: who it is, its password, and its tokens."""

    id: int
    username: str
    password: str
    role: str
    name: str
    phone: str | None
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    @property
    def ws_path(self) -> str:
        """``/ws/user/{id}/`` or ``/ws/pharmacy/{id}/``."""
        return f"/ws/{'pharmacy' if self.role == 'pharmacy' else 'user'}/{self.id}/"


@dataclass(frozen=True)
class NewAccount:
    """An account to register: `fresh` picks a unique username and a name."""

    username: str
    password: str
    role: Role
    name: str
    phone: str | None = None
    synthetic: bool = False

    @classmethod
    def fresh(
        cls,
        role: Role,
        *,
        prefix: str | None = None,
        username: str | None = None,
        password: str = PASSWORD,
        name: str | None = None,
        phone: str | None = None,
        synthetic: bool = False,
    ) -> NewAccount:
        """``{prefix}-{10 hex}`` (prefix: the role's first three letters) unless `username` is given;
        the name defaults to ``"{Role} {username}"``."""
        username = username or f"{prefix or role[:3]}-{uuid.uuid4().hex[:10]}"
        name = name or f"{role.title()} {username}"
        return cls(username, password, role, name, phone, synthetic)

    def register_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "username": self.username,
            "password": self.password,
            "role": self.role,
            "name": self.name,
        }
        if self.phone:
            body["phone"] = self.phone
        if self.synthetic:
            body["synthetic"] = True
        return body

    def login_body(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}

    def signed_in(self, tokens: Mapping[str, Any]) -> Account:
        """The account, from the answer of ``POST /auth/token``."""
        return Account(
            id=int(tokens["account"]["id"]),
            username=self.username,
            password=self.password,
            role=self.role,
            name=self.name,
            phone=self.phone,
            access=str(tokens["access"]),
            refresh=str(tokens["refresh"]),
        )


# --- the sync face: any transport -----------------------------------------------------------------


def sign_up(post: Post, new: NewAccount) -> Account:
    """Register `new` (``POST /auth/register``), then log it in."""
    _expect(post, "/auth/register", new.register_body(), 201)
    return log_in(post, new)


def log_in(post: Post, new: NewAccount) -> Account:
    """Log in an account that exists already (``POST /auth/token``)."""
    return new.signed_in(_expect(post, "/auth/token", new.login_body(), 200))


def httpx_post(base_url: str, *, timeout: float = 10.0) -> Post:
    """A `Post` on httpx, one request (and connection) per call."""

    def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        response = httpx.post(f"{base_url.rstrip('/')}{path}", json=body, timeout=timeout)
        return response.status_code, _body(response)

    return post


def create_account(
    base_url: str,
    role: Role,
    *,
    name: str | None = None,
    phone: str | None = None,
    username: str | None = None,
    password: str = PASSWORD,
    synthetic: bool = False,
) -> Account:
    """Register and log in a fresh account over HTTP."""
    new = NewAccount.fresh(
        role, username=username, password=password, name=name, phone=phone, synthetic=synthetic
    )
    return sign_up(httpx_post(base_url), new)


def operator_account(
    base_url: str,
    data_dir: str | Path,
    role: Role,
    name: str,
    *,
    username: str | None = None,
    password: str = PASSWORD,
) -> Account:
    """An active account made the operator's way (``medreq account create`` on the server's data
    dir, in a process of its own, free of any event loop the caller runs), logged in over HTTP."""
    new = NewAccount.fresh(role, username=username, password=password, name=name)
    args = ["account", "create", "--role", role, "--username", new.username, "--name", name]
    result = subprocess.run(
        [sys.executable, "-m", "medreq", *args, "--data-dir", str(data_dir), "--password-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AccountError("(medreq account create)", result.returncode, result.stdout + result.stderr)
    return log_in(httpx_post(base_url), new)


# --- the async face: a MedreqClient ---------------------------------------------------------------


async def sign_up_client(client: MedreqClient, new: NewAccount, *, attempt: Attempt | None = None) -> Account:
    """Register `new` and log it in through `client`, which keeps the session for later calls.

    `attempt` runs each of the two calls (for retries: the simulator waits out rate limits)."""
    run: Attempt = attempt or (lambda call: call())
    await run(
        lambda: client.register(
            new.username, new.password, new.role, new.name, new.phone, synthetic=new.synthetic
        )
    )
    tokens = await run(lambda: client.login(new.username, new.password))
    return new.signed_in(tokens.model_dump())


async def create_accounts(
    base_url: str,
    role: Role,
    count: int,
    *,
    concurrency: int = 16,
    prefix: str | None = None,
    password: str = PASSWORD,
    synthetic: bool = False,
) -> list[Account]:
    """Register and log in `count` fresh accounts, `concurrency` at a time."""
    limit = asyncio.Semaphore(concurrency)
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=concurrency))
    clients: list[MedreqClient] = []

    async def one() -> Account:
        async with limit:
            client = MedreqClient(base_url, transport=transport, timeout=30.0)
            clients.append(client)
            new = NewAccount.fresh(role, prefix=prefix, password=password, synthetic=synthetic)
            return await sign_up_client(client, new)

    try:
        return list(await asyncio.gather(*(one() for _ in range(count))))
    finally:
        for client in clients:  # the first closes the shared pool
            await client.aclose()
        await transport.aclose()


def _expect(post: Post, path: str, body: dict[str, Any], status: int) -> Any:
    got, answer = post(path, body)
    if got != status:
        raise AccountError(path, got, answer)
    return answer


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
