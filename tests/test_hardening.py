"""Issue 25 item 5's smaller points, each against a real server (docs/security.md):

- the console at `/static/index.html` carried no policy and could be framed: it redirects to `/`,
  and every console file carries the pages' headers;
- a removed synthetic account's open socket went on answering `ping` and `resume`: it is closed
  (4401) on every worker, as a disabled account's is;
- a backup archive's members kept the database's 0644: every member is 0600;
- uploaded files were served inline with no policy (a PDF ran in the server's origin): every media
  response is sandboxed and allows nothing, and a PDF is a download.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import httpx
import pytest

from medreq.simulate.accounts import create_account

from .conftest import Account, ServerProcess, make_account
from .wire import close_code, open_ws, post_request, recv_json

pytestmark = pytest.mark.timeout(90)

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/OpenAction<</S/JavaScript/JS(app.alert(1))>>>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def test_the_console_is_served_only_with_its_policy(server: ServerProcess) -> None:
    page = httpx.get(f"{server.url}/", timeout=10)
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    for path in ("/static/index.html", "/static/./index.html", "/static//index.html"):
        copy = httpx.get(f"{server.url}{path}", timeout=10)
        assert copy.status_code == 308, (path, copy.status_code)
        assert copy.headers["location"] == "/"
        assert "<html" not in copy.text
    for name in ("app.js", "style.css", "favicon.svg"):
        served = httpx.get(f"{server.url}/static/{name}", timeout=10)
        assert served.status_code == 200
        assert served.headers["x-frame-options"] == "DENY"
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


async def test_a_removed_synthetic_accounts_socket_is_closed(server: ServerProcess) -> None:
    account = create_account(
        server.url, "pharmacy", username=f"sim-{uuid.uuid4().hex[:10]}", password="sim-password",
        name="Sim pharmacy", synthetic=True,
    )
    async with open_ws(server, account) as ws:
        await ws.send(json.dumps({"type": "ping", "id": 1}))
        assert (await recv_json(ws))["type"] == "pong"
        removed = httpx.delete(f"{server.url}/auth/me", headers=account.headers, timeout=10)
        assert removed.status_code == 204, removed.text
        await ws.send(json.dumps({"type": "resume", "id": 2, "after": 0}))
        # closed like a disabled account's (within the revocation poll), never answered for long
        assert await close_code(ws, timeout=15) == 4401


def test_every_member_of_a_backup_is_private(server: ServerProcess, tmp_path: Path, png_bytes: bytes) -> None:
    patient, pharmacy = make_account(server.url, "patient"), make_account(server.url, "pharmacy")
    assert post_request(server, patient, pharmacy=pharmacy.id, image=png_bytes).status_code == 201
    archive = tmp_path / "backup.tar.gz"
    done = subprocess.run(
        [sys.executable, "-m", "medreq", "db", "backup", str(archive), "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        assert {m.name for m in members} >= {"medreq.db", "manifest.json"}
        assert any(m.name.startswith("media/") for m in members)
        for member in members:
            assert member.mode & 0o077 == 0, (member.name, oct(member.mode))
        tar.extractall(tmp_path / "out", filter="tar")  # what a manual `tar x` keeps
    assert (tmp_path / "out" / "medreq.db").stat().st_mode & 0o077 == 0


def media_headers(server: ServerProcess, account: Account, image: bytes, filename: str) -> httpx.Headers:
    created = post_request(server, account, pharmacy=make_account(server.url, "pharmacy").id, image=image,
                           image_name=filename)
    assert created.status_code == 201, created.text
    served = httpx.get(created.json()["data"]["image_url"], timeout=10)
    assert served.status_code == 200
    return served.headers


def test_media_are_sandboxed_and_a_pdf_is_a_download(server: ServerProcess, png_bytes: bytes) -> None:
    patient = make_account(server.url, "patient")
    pdf = media_headers(server, patient, PDF, "prescription.pdf")
    assert pdf["content-type"] == "application/pdf"
    assert pdf["content-disposition"].startswith("attachment")
    png = media_headers(server, patient, png_bytes, "prescription.png")
    for headers in (pdf, png):
        policy = [part.strip() for part in headers["content-security-policy"].split(";")]
        assert "sandbox" in policy and "default-src 'none'" in policy
        assert headers["x-content-type-options"] == "nosniff"
    assert "content-disposition" not in png  # an image is shown where it is linked
