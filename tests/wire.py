"""Raw wire helpers for server tests: they speak HTTP and WebSocket by hand on purpose,
to test the protocol itself (client-library tests use `medreq.client`)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .conftest import Account, ServerProcess


def post_request(
    server: ServerProcess,
    account: Account,
    *,
    pharmacy: int | str | None,
    quantity: int | str | None = 1,
    image: bytes | None = None,
    image_name: str = "rx.png",
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    data = {
        k: str(v) for k, v in {"pharmacy": pharmacy, "quantity": quantity, **fields}.items() if v is not None
    }
    files = {"image": (image_name, image, "image/png")} if image is not None else None
    if files is None and not data:
        data = {"_": ""}
    return httpx.post(
        f"{server.url}/medicine/request/",
        data=data,
        files=files,
        headers={**account.headers, **(headers or {})},
        timeout=30,
    )


def post_response(
    server: ServerProcess,
    account: Account,
    *,
    request_id: int | str | None,
    status: str | None = "ACCEPTED",
    text_message: str | None = None,
    audio: bytes | None = None,
    audio_name: str = "reply.wav",
) -> httpx.Response:
    data = {
        k: str(v)
        for k, v in {"request_id": request_id, "status": status, "text_message": text_message}.items()
        if v is not None
    }
    files = {"audio": (audio_name, audio, "audio/wav")} if audio is not None else None
    if files is None and not data:
        data = {"_": ""}
    return httpx.post(
        f"{server.url}/medicine/response/", data=data, files=files, headers=account.headers, timeout=30
    )


def ws_path(account: Account) -> str:
    return account.ws_path


def open_ws(
    server: ServerProcess, account: Account, *, after: int | None = None, token: str | None = None, **options: Any
) -> Any:
    """A socket for `account`; `options` go to `websockets`' `connect` (e.g. ``max_queue=None``
    for a test that closes a socket while events still pour in: with the default bound the
    client stops reading once 16 frames wait, never sees the server's close frame and closes
    only after its 10 s close timeout)."""
    query = f"?token={token or account.access}"
    if after is not None:
        query += f"&after={after}"
    return connect(server.ws_url + ws_path(account) + query, **{"max_size": 2**22, **options})


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_events(ws: ClientConnection, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    return [await recv_json(ws, timeout) for _ in range(count)]


async def assert_silent(ws: ClientConnection, seconds: float = 0.3) -> None:
    """Nothing more arrives within `seconds`."""
    try:
        extra = await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message: {extra}")


async def close_code(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """Wait for the server to close; return its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


def db_snapshot(server: ServerProcess) -> dict[str, Any]:
    """Every row of every table plus the media files: equal snapshots mean nothing changed."""
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        rows = {t: db.execute(f'select * from "{t}" order by rowid').fetchall() for t in tables}
    finally:
        db.close()
    media = sorted(str(p.relative_to(server.data_dir)) for p in Path(server.data_dir, "media").rglob("*"))
    return {"rows": rows, "media": media}


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    return str(body["error"]["code"])
