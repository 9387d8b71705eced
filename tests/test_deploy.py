"""deploy/nginx.conf, run by Debian's real nginx in front of two medreq servers (PostgreSQL +
Redis) on loopback: the seed flow over HTTP and WebSocket, a 9 MiB upload, both 413s, the
close codes, forwarded headers and trace ids, and no credential in either access log."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from medreq.simulate.samples import png
from medreq.simulate.server import free_port

from .conftest import (
    IN_CI,
    REDIS_URL,
    ServerProcess,
    make_account,
)
from .wire import close_code, error_code, open_ws, post_request, recv_json

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MiB = 1024 * 1024


@dataclass
class Front:
    """Where clients connect: nginx (same attributes as a ServerProcess for the wire helpers)."""

    url: str
    ws_url: str


def site_config(upstreams: list[int], port: int, logs: Path) -> str:
    """deploy/nginx.conf with its marked blocks swapped: loopback upstreams, a plain HTTP
    listener on a free loopback port instead of TLS on 443, no port-80 redirect, logs here."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()

    def swap(name: str, replacement: str) -> None:
        nonlocal text
        pattern = re.compile(rf"^[ \t]*# >>> {name}\n.*?^[ \t]*# <<< {name}\n", re.S | re.M)
        text, count = pattern.subn(replacement, text)
        assert count == 1, name

    swap("upstream-servers", "".join(f"    server 127.0.0.1:{p};\n" for p in upstreams))
    swap("redirect", "")
    swap("listen", f"    listen 127.0.0.1:{port};\n")
    return text.replace("/var/log/nginx/", f"{logs}/")


@contextlib.contextmanager
def nginx(tmp: Path, upstreams: list[int]) -> Iterator[tuple[Front, Path]]:
    if not Path(NGINX).exists():
        if IN_CI:
            pytest.fail("nginx is required under CI=true (.ci/run installs it)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    port = free_port()
    prefix = tmp / "nginx"
    for sub in ("logs", "body", "proxy"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/body;
    uwsgi_temp_path {prefix}/body;
    scgi_temp_path {prefix}/body;
    access_log off;
{site_config(upstreams, port, prefix / "logs")}
}}
"""
    )
    command = [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        # wait for the port only: a request now would find no server behind nginx, and nginx
        # would then hold the upstreams as failed for fail_timeout (10 s), answering 502
        for _ in range(200):  # at most ~10 s
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            assert proc.poll() is None, (prefix / "logs" / "error.log").read_text()
            time.sleep(0.05)
        yield Front(url, f"ws://127.0.0.1:{port}"), prefix / "logs"
    finally:
        proc.terminate()
        proc.wait(timeout=10)




async def test_seed_flow_through_nginx_to_two_servers(postgres_url: str, tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    # nginx first: the servers' MEDREQ_PUBLIC_URL (their media links) is nginx's address
    with nginx(tmp_path, ports) as (front, logs):
        shared = {
            "MEDREQ_DATABASE_URL": postgres_url,
            "MEDREQ_REDIS_URL": REDIS_URL,
            "MEDREQ_JWT_SECRET": "deploy-test-secret-" + tmp_path.name,
            "MEDREQ_MEDIA_DIR": str(tmp_path / "media"),
            "MEDREQ_PUBLIC_URL": front.url,
            "MEDREQ_TRUSTED_PROXIES": "127.0.0.1",
            "MEDREQ_LOG_FORMAT": "json",
            "MEDREQ_LOG_LEVEL": "info",
        }
        servers = [ServerProcess(tmp_path / f"s{i}", port=p, env=shared) for i, p in enumerate(ports)]
        try:
            for server in servers:  # one at a time: the first applies the migrations
                server.start()
            await _seed_flow(front, logs, servers)
        finally:
            for server in servers:
                server.stop()


async def _seed_flow(front: Front, logs: Path, servers: list[ServerProcess]) -> None:
    patient = make_account(front.url, "patient", name="Proxied Patient")
    pharmacy = make_account(front.url, "pharmacy", name="Proxied Pharmacy")
    big = png(8, 8) + b"\0" * (9 * MiB)  # a 9 MiB prescription scan
    async with open_ws(front, pharmacy) as pharmacy_ws, open_ws(front, patient) as patient_ws:  # type: ignore[arg-type]
        created = post_request(
            front,  # type: ignore[arg-type]
            patient,
            pharmacy=pharmacy.id,
            image=big,
            headers={"X-Request-ID": "deploy-trace-1", "X-Forwarded-For": "203.0.113.7"},
        )
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"] == "deploy-trace-1"
        event = await recv_json(pharmacy_ws)
        assert (event["type"], event["trace_id"]) == ("new_request", "deploy-trace-1")
        assert event["image_url"].startswith(front.url + "/media/prescriptions/")
        image = httpx.get(event["image_url"], timeout=30)
        assert image.status_code == 200
        assert image.content == big
        await pharmacy_ws.send(
            json.dumps({"type": "response", "id": 1, "request_id": event["request_id"], "status": "ACCEPTED"})
        )
        answer = await recv_json(patient_ws)
        assert (answer["type"], answer["status"]) == ("pharmacy_response", "ACCEPTED")

    # nginx's own trace id when the client sends none
    health = httpx.get(f"{front.url}/health", timeout=10)
    assert re.fullmatch(r"[0-9a-f]{32}", health.headers["x-request-id"])
    # past medreq's limit but within nginx's: medreq's 413; past nginx's: the same JSON shape
    for size in (int(10.1 * MiB), 12 * MiB):
        refused = post_request(front, patient, pharmacy=pharmacy.id, image=png(2, 2) + b"\0" * size)  # type: ignore[arg-type]
        assert refused.status_code == 413
        assert error_code(refused) == "payload_too_large"
    # close codes pass through the proxy
    async with open_ws(front, patient, token="not-a-token") as ws:  # type: ignore[arg-type]
        assert await close_code(ws) == 4401
    async with open_ws(front, patient, token=pharmacy.access) as ws:  # type: ignore[arg-type]
        assert await close_code(ws) == 4403
    from websockets.asyncio.client import connect

    async with connect(f"{front.ws_url}/ws/nowhere/1/?token={patient.access}") as ws:
        assert await close_code(ws) == 4404

    for server in servers:
        server.stop()
    lines = [json.loads(line) for s in servers for line in s.log().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "medreq.access"]
    posted = [a for a in access if a.get("route") == "/medicine/request/" and a["status"] == 201]
    assert len(posted) == 1
    # the proxy is trusted for X-Forwarded-For, and it overwrote the client's forged one
    assert posted[0]["client"] == "127.0.0.1"
    assert posted[0]["trace_id"] == "deploy-trace-1"
    served_by = [s for s in servers if '"route": "/' in s.log()]
    assert len(served_by) == 2  # nginx spread the requests over both servers
    proxy_log = (logs / "medreq.access.log").read_text()
    assert "/ws/user/" in proxy_log
    for secret in (patient.access, pharmacy.access, event["image_url"].split("sig=")[1]):
        assert secret not in proxy_log
        for server in servers:
            assert secret not in server.log()


def test_the_documented_files_are_the_tested_ones() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    for name in ("nginx.conf", "medreq.service", "medreq.env.example", "compose.yaml"):
        assert (ROOT / "deploy" / name).read_text() in doc, name
