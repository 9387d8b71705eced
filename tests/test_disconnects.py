"""A client that goes away mid-request is not a server error."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from .conftest import Account, ServerProcess

pytestmark = pytest.mark.timeout(60)


def test_a_client_gone_mid_upload_leaves_no_traceback(server: ServerProcess, patient: Account) -> None:
    """An upload cut off half-way (a client giving up) is not a server error."""
    body = b'--b\r\nContent-Disposition: form-data; name="image"; filename="rx.png"\r\n\r\n' + b"x" * 1000
    head = (
        f"POST /medicine/request/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {patient.access}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head.encode() + body)
    assert httpx.get(f"{server.url}/health").status_code == 200
    time.sleep(2)  # the server notices the closed socket on its next read; uvicorn logs then
    assert "Traceback" not in server.log()
    assert "ClientDisconnect" not in server.log()
