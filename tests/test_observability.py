"""Operators' view: JSON access logs with trace ids (never a secret), and /metrics behind a token."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .conftest import (
    REDIS_URL,
    ServerProcess,
    eventually,
    make_account,
)
from .wire import open_ws, post_request, recv_json

METRICS_TOKEN = "metrics-token-for-tests-0123456789"


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        if "{" in sample:
            base, _, rest = sample.partition("{")
            got = ",".join(sorted(rest.rstrip("}").split(","))) if rest != "}" else ""
        else:
            base, got = sample, ""
        if base == name and got == want:
            return float(value)
    return 0.0


def scrape(server: ServerProcess, token: str | None = METRICS_TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.url}/metrics", headers=headers, timeout=10)


async def seed_flow(server: ServerProcess, png_bytes: bytes, trace: str) -> dict[str, Any]:
    """Patient asks with an image, pharmacy answers over its socket: what a log must not betray."""
    patient = make_account(server.url, "patient", name="Log Patient", phone="+1-555-0101")
    pharmacy = make_account(server.url, "pharmacy", name="Log Pharmacy")
    async with open_ws(server, pharmacy) as pharmacy_ws, open_ws(server, patient) as patient_ws:
        created = post_request(
            server, patient, pharmacy=pharmacy.id, image=png_bytes, headers={"X-Request-ID": trace}
        )
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"] == trace
        event = await recv_json(pharmacy_ws)
        assert event["type"] == "new_request"
        assert event["trace_id"] == trace  # the request id travels into the event it caused
        image = httpx.get(event["image_url"], timeout=10)
        assert image.status_code == 200
        await pharmacy_ws.send(
            json.dumps({"type": "response", "id": 1, "request_id": event["request_id"], "status": "ACCEPTED"})
        )
        answered = await recv_json(patient_ws)
        assert answered["type"] == "pharmacy_response"
        replies = {m["type"]: m for m in [await recv_json(pharmacy_ws), await recv_json(pharmacy_ws)]}
        assert set(replies) == {"ack", "request_updated"}
        updated = replies["request_updated"]
        # one trace id per socket: the answer it sent carries the socket's
        assert answered["trace_id"] == updated["trace_id"] != trace
    bad_login = httpx.post(
        f"{server.url}/auth/token", json={"username": patient.username, "password": "wrong-password-1"}
    )
    assert bad_login.status_code == 401
    signature = parse_qs(urlsplit(event["image_url"]).query)["sig"][0]
    return {"patient": patient, "pharmacy": pharmacy, "event": event, "signature": signature}


async def test_json_logs_have_one_line_per_request_and_socket_and_no_secret(
    server_factory: Any, png_bytes: bytes
) -> None:
    server = server_factory({"MEDREQ_LOG_FORMAT": "json", "MEDREQ_LOG_LEVEL": "info"})
    seen = await seed_flow(server, png_bytes, "trace-seed-0001")
    patient, pharmacy = seen["patient"], seen["pharmacy"]
    server.stop()
    text = server.log()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    access = [line for line in lines if line["logger"] == "medreq.access"]

    created = [a for a in access if a.get("route") == "/medicine/request/" and a["method"] == "POST"]
    assert len(created) == 1
    assert created[0]["status"] == 201
    assert created[0]["account_id"] == patient.id
    assert created[0]["trace_id"] == "trace-seed-0001"
    assert created[0]["duration_ms"] > 0
    media = [a for a in access if a.get("route", "").startswith("/media/")]
    assert [m["status"] for m in media] == [200]
    assert media[0]["route"] == "/media/{prefix}/{name}"
    refused = [a for a in access if a.get("route") == "/auth/token" and a["status"] == 401]
    assert len(refused) == 1

    connects = [a for a in access if a["kind"] == "ws_connect"]
    closes = [a for a in access if a["kind"] == "ws_close"]
    assert sorted(c["account_id"] for c in connects) == sorted([patient.id, pharmacy.id])
    assert sorted(c["account_id"] for c in closes) == sorted([patient.id, pharmacy.id])
    assert {c["status"] for c in closes} == {1000}
    assert {c["route"] for c in closes} == {"/ws/user/{id}/", "/ws/pharmacy/{id}/"}
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]  # replaced, not doubled

    for secret in (patient.access, patient.refresh, pharmacy.access, patient.password, seen["signature"]):
        assert secret not in text
    assert "wrong-password-1" not in text


def test_request_id_is_generated_when_absent_or_unacceptable(server: ServerProcess) -> None:
    plain = httpx.get(f"{server.url}/health", timeout=10)
    assert re.fullmatch(r"[0-9a-f]{32}", plain.headers["x-request-id"])
    again = httpx.get(f"{server.url}/health", timeout=10)
    assert again.headers["x-request-id"] != plain.headers["x-request-id"]
    # a JWT-shaped or overlong id would carry anything into logs and events: replaced
    for bad in ("eyJhbGciOi.eyJzdWIi.c2ln", "x" * 65, "a b"):
        echoed = httpx.get(f"{server.url}/health", headers={"X-Request-ID": bad}, timeout=10)
        assert re.fullmatch(r"[0-9a-f]{32}", echoed.headers["x-request-id"])


def test_log_format_must_be_text_or_json(server_factory: Any) -> None:
    server = server_factory({"MEDREQ_LOG_FORMAT": "yaml"}, start=False)
    with pytest.raises(RuntimeError):
        server.start(timeout=10)
    assert "log format must be one of text, json" in server.log()


def test_metrics_are_off_by_default(server: ServerProcess) -> None:
    assert scrape(server).status_code == 404
    assert scrape(server, None).status_code == 404


async def test_metrics_need_the_token_and_count_the_seed_flow(server_factory: Any, png_bytes: bytes) -> None:
    server = server_factory({"MEDREQ_METRICS_TOKEN": METRICS_TOKEN})
    assert scrape(server, None).status_code == 401
    assert scrape(server, "not-the-token").status_code == 401
    assert scrape(server, None).json()["error"]["code"] == "unauthorized"
    before = scrape(server)
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    assert metric(before.text, "medreq_events_stored_total") == 0

    await seed_flow(server, png_bytes, "trace-metrics-1")
    after = scrape(server).text
    # new_request to the pharmacy; pharmacy_response to the patient; request_updated to the pharmacy
    assert metric(after, "medreq_events_stored_total") == 3
    assert metric(after, "medreq_events_published_total") == 3
    assert metric(after, "medreq_event_delivery_seconds_count") == 3
    assert (
        metric(
            after,
            "medreq_http_request_duration_seconds_count",
            method="POST",
            route="/medicine/request/",
            status="201",
        )
        == 1
    )
    assert metric(after, "medreq_ws_messages_total", type="response", result="ok") == 1
    assert metric(after, "medreq_ws_closes_total", code="1000") == 2
    assert metric(after, "medreq_ws_connections", role="pharmacy") == 0
    pharmacy = make_account(server.url, "pharmacy")
    async with open_ws(server, pharmacy):
        assert metric(scrape(server).text, "medreq_ws_connections", role="pharmacy") == 1


def test_rate_limit_refusals_are_counted(server_factory: Any) -> None:
    server = server_factory(
        {"MEDREQ_METRICS_TOKEN": METRICS_TOKEN, "MEDREQ_REST_BURST": "2", "MEDREQ_REST_RATE": "0.01"}
    )
    patient = make_account(server.url, "patient")
    codes = [httpx.get(f"{server.url}/auth/me", headers=patient.headers).status_code for _ in range(4)]
    assert codes.count(429) >= 1
    assert metric(scrape(server).text, "medreq_rate_limited_total", transport="rest") == codes.count(429)




async def test_metrics_sum_every_worker(postgres_url: str, tmp_path: Path, png_bytes: bytes) -> None:
    env = {
        "MEDREQ_DATABASE_URL": postgres_url,
        "MEDREQ_REDIS_URL": REDIS_URL,
        "MEDREQ_WORKERS": "2",
        "MEDREQ_METRICS_TOKEN": METRICS_TOKEN,
    }
    server = ServerProcess(tmp_path / "data", env=env)
    server.start()
    try:
        # a route nothing else calls (start() polls /health): every count is the test's own
        labels = {"method": "GET", "route": "/auth/me", "status": "401"}
        for _ in range(6):  # each a new connection, accepted by either worker
            assert httpx.get(f"{server.url}/auth/me", timeout=10).status_code == 401
        await seed_flow(server, png_bytes, "trace-workers")

        def counted() -> tuple[float, float]:
            text = scrape(server).text
            return (
                metric(text, "medreq_events_stored_total"),
                metric(text, "medreq_http_request_duration_seconds_count", **labels),
            )

        # each worker hands its tallies to the shared files every second (metrics.flush_every)
        assert eventually(counted, lambda found: found == (3, 6), seconds=10) == (3, 6)
        time.sleep(1.5)  # another flush from each worker adds nothing more
        assert counted() == (3, 6)
    finally:
        server.stop()


def test_the_outbox_backlog_is_a_metric(server_factory: Any) -> None:
    """Deliveries to a receiver that is down wait in the outbox: the scrape shows how many and how old."""
    server = server_factory(
        {
            "MEDREQ_METRICS_TOKEN": METRICS_TOKEN,
            "MEDREQ_WEBHOOK_ALLOW_PRIVATE": "true",
            "MEDREQ_WEBHOOK_BACKOFF": "600",  # the first failure puts the next try far off
            "MEDREQ_WEBHOOK_POLL_INTERVAL": "0.1",
        }
    )
    assert metric(scrape(server).text, "medreq_webhook_outbox_pending") == 0
    patient, pharmacy = make_account(server.url, "patient"), make_account(server.url, "pharmacy")
    hook = httpx.put(  # port 9 (discard): nothing listens, every POST is refused
        f"{server.url}/auth/me", json={"webhook_url": "http://127.0.0.1:9/hook"}, headers=pharmacy.headers
    )
    assert hook.status_code == 200, hook.text
    for name in ("A", "B"):
        assert post_request(server, patient, pharmacy=pharmacy.id, medicine_name=name).status_code == 201
    text = scrape(server).text
    assert metric(text, "medreq_webhook_outbox_pending") == 2
    assert metric(text, "medreq_webhook_outbox_oldest_seconds") >= 0


@pytest.fixture
def restored_logging() -> Any:
    """The loggers `log_config` configures, put back as they were after the test."""
    import logging

    names = ["medreq", "medreq.access", "uvicorn", "uvicorn.error", "uvicorn.access"]
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names}
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def test_an_access_line_is_what_the_json_formatter_writes(restored_logging: None) -> None:
    """`AccessLog` joins its lines itself (faster than `json.dumps`): the same text as the
    formatter's, for every kind of value a field can hold."""
    import io
    import logging
    import logging.config

    from medreq.telemetry import tracing
    from medreq.telemetry.logs import AccessLog, JsonFormatter, log_config

    logging.config.dictConfig(log_config("info", "json"))
    [handler] = logging.getLogger("medreq").handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.stream = io.StringIO()
    fields = {
        "kind": "http", "route": "/a/{id}/", "status": 201, "duration_ms": 1.25, "account_id": None,
        "odd": 'quote " backslash \\ newline \n control \x01 non-ASCII é ✓', "flag": True, "big": 10**20,
    }  # fmt: skip
    trace, token = tracing.begin(None)
    try:
        access = AccessLog()
        access.write("POST /a/{id}/ 201", dict(fields))
        access.flush()
        record = logging.LogRecord("medreq.access", logging.INFO, __file__, 1, "POST /a/{id}/ 201", None, None)
        record.trusted, record.fields = True, fields
        expected = JsonFormatter().format(record)
    finally:
        tracing.end(token)
    [line] = handler.stream.getvalue().splitlines()
    after_time = '", "level"'  # the two were stamped a moment apart: the rest is the same text
    assert line[line.index(after_time) :] == expected[expected.index(after_time) :]
    assert json.loads(line)["trace_id"] == trace.trace_id
    assert re.fullmatch(r'\{"time": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"', line[: line.index(after_time) + 1])


def test_an_http_access_line_is_the_general_line_for_its_fields(restored_logging: None) -> None:
    """`AccessLog.http` writes, as one f-string, what `write` writes for the same fields."""
    import io
    import logging
    import logging.config

    from medreq.telemetry.logs import AccessLog, log_config

    logging.config.dictConfig(log_config("info", "json"))
    [handler] = logging.getLogger("medreq").handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.stream = io.StringIO()
    access = AccessLog()
    for method, route, status, ms, account, role, client in [
        ("POST", "/medicine/request/", 201, 1.234, 5, "patient", "127.0.0.1"),
        ("GET", "unmatched", 404, 0.5, None, None, None),
        ("DELETE", "/auth/me", 204, 12.0, 7, "pharmacy", "::1"),
    ]:
        access.http(method, route, status, ms, account, role, client)
        fields = {"kind": "http", "method": method, "route": route, "status": status, "duration_ms": ms}
        access.write(f"{method} {route} {status}", fields | {"account_id": account, "role": role, "client": client})
        access.flush()
    lines = handler.stream.getvalue().splitlines()
    assert len(lines) == 6
    for special, general in zip(lines[::2], lines[1::2], strict=True):
        cut = special.index('", "level"')  # written a moment apart
        assert special[cut:] == general[cut:] and json.loads(special)["kind"] == "http"


def test_uvicorn_builds_no_access_line_it_would_drop() -> None:
    """Above info, uvicorn's access logger gets no handler: with one, uvicorn builds every
    request's line arguments even when the level drops the line."""
    from medreq.telemetry.logs import log_config

    for level, fmt, handlers in [("info", "text", ["access"]), ("warning", "text", []), ("info", "json", [])]:
        assert log_config(level, fmt)["loggers"]["uvicorn.access"]["handlers"] == handlers, (level, fmt)
