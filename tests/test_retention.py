"""Bounded storage: old events and closed requests' media are pruned, and a replay of a pruned
range says `resync_required` instead of silently returning less (docs/protocol.md §5)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from typing import Any

import httpx

from .conftest import Account, ServerProcess
from .wire import assert_silent, db_snapshot, open_ws, post_request, post_response, recv_json

LONG_AGO = "2020-01-01 00:00:00.000000"


def age(server: ServerProcess, sql: str) -> None:
    """Move stored rows into the past (what the server would otherwise wait days for)."""
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


def event_ids(server: ServerProcess, account: Account) -> list[int]:
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        rows = db.execute("select event_id from events where account_id = ? order by event_id", (account.id,))
        return [r[0] for r in rows]
    finally:
        db.close()


def close_and_read_everything(server: ServerProcess) -> None:
    """Every request closed and every event read: what pruning may remove once old enough."""
    age(server, "update medicine_requests set status = 'CANCELLED' where status = 'PENDING'")
    age(
        server,
        "insert or replace into read_marks (account_id, request_id, up_to_event_id, updated_at)"
        " select account_id, request_id, max(event_id), '2020-01-01' from events"
        " where request_id is not null group by account_id, request_id",
    )


def prune(server: ServerProcess, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "medreq", "db", "prune", "--data-dir", str(server.data_dir), "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def four_events_for_the_pharmacy(server: ServerProcess, patient: Account, pharmacy: Account) -> int:
    """Three requests (events 1–3) and an answer (event 4: request_updated) for the pharmacy."""
    ids = []
    for n in range(3):
        created = post_request(server, patient, pharmacy=pharmacy.id, medicine_name=f"Med {n}")
        assert created.status_code == 201, created.text
        ids.append(created.json()["request_id"])
    assert post_response(server, pharmacy, request_id=ids[0]).status_code == 200
    assert event_ids(server, pharmacy) == [1, 2, 3, 4]
    return int(ids[0])


async def test_replay_of_a_pruned_range_asks_for_a_resync(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    four_events_for_the_pharmacy(server, patient, pharmacy)
    close_and_read_everything(server)
    age(server, f"update events set created_at = '{LONG_AGO}'")
    report = prune(server)
    # every old event went except each account's latest (pharmacy: 4, patient: its only one)
    assert report["events"] == 3
    assert event_ids(server, pharmacy) == [4]
    assert event_ids(server, patient) == [1]

    async with open_ws(server, pharmacy, after=0) as ws:
        resync = await recv_json(ws)
        assert resync == {"type": "resync_required", "oldest_event_id": 4}
        kept = await recv_json(ws)
        assert (kept["type"], kept["event_id"]) == ("request_updated", 4)
        await assert_silent(ws)
        # resume below the oldest kept event: the same answer, then the ack
        await ws.send(json.dumps({"type": "resume", "id": "r", "after": 2}))
        assert await recv_json(ws) == {"type": "resync_required", "oldest_event_id": 4}
        assert (await recv_json(ws))["event_id"] == 4
        ack = await recv_json(ws)
        assert (ack["type"], ack["ref"], ack["replayed"]) == ("ack", "r", 1)
    async with open_ws(server, pharmacy, after=3) as ws:  # nothing it missed was pruned
        assert (await recv_json(ws))["event_id"] == 4
        await assert_silent(ws)
    # the counter goes on from the latest id, never reusing a pruned one
    assert post_request(server, patient, pharmacy=pharmacy.id, medicine_name="After").status_code == 201
    assert event_ids(server, pharmacy) == [4, 5]


def test_recent_events_and_zero_retention_keep_everything(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    four_events_for_the_pharmacy(server, patient, pharmacy)
    before = db_snapshot(server)
    nothing = {"events": 0, "requests": 0, "media_files": 0, "media_bytes": 0, "tokens": 0, "account_changes": 0}
    assert prune(server) == nothing
    age(server, f"update events set created_at = '{LONG_AGO}'")
    before = db_snapshot(server)
    assert prune(server, "--event-days", "0")["events"] == 0
    assert db_snapshot(server) == before


def test_media_of_long_closed_requests_are_removed(
    server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes, wav_bytes: bytes
) -> None:
    closed = post_request(server, patient, pharmacy=pharmacy.id, image=png_bytes).json()
    answered = post_response(server, pharmacy, request_id=closed["request_id"], audio=wav_bytes)
    assert answered.status_code == 200
    pending = post_request(server, patient, pharmacy=pharmacy.id, image=png_bytes).json()
    image_url = closed["data"]["image_url"]
    audio_url = answered.json()["data"]["response"]["audio_url"]
    assert httpx.get(image_url).status_code == 200
    age(server, f"update medicine_requests set updated_at = '{LONG_AGO}'")
    age(server, "insert into read_marks select account_id, request_id, max(event_id), '2020-01-01' from events"
        f" where request_id = {closed['request_id']} group by account_id, request_id")  # both read it

    assert prune(server)["media_files"] == 0  # media are kept by default
    report = prune(server, "--media-days", "30")
    assert (report["requests"], report["media_files"]) == (1, 2)
    assert report["media_bytes"] == len(png_bytes) + len(wav_bytes)
    assert httpx.get(image_url).status_code == 404
    assert httpx.get(audio_url).status_code == 404
    detail = httpx.get(
        f"{server.url}/medicine/request/{closed['request_id']}/", headers=patient.headers
    ).json()
    assert detail["image_url"] is None
    assert detail["response"]["audio_url"] is None
    assert detail["status"] == "ACCEPTED"  # the request itself stays
    still = httpx.get(
        f"{server.url}/medicine/request/{pending['request_id']}/", headers=patient.headers
    ).json()
    assert httpx.get(still["image_url"]).status_code == 200  # a pending request keeps its prescription


def test_the_server_prunes_in_the_background(server_factory: Any, png_bytes: bytes) -> None:
    from .conftest import make_account

    server = server_factory({"MEDREQ_PRUNE_INTERVAL": "1", "MEDREQ_EVENT_RETENTION_DAYS": "1"})
    patient = make_account(server.url, "patient")
    pharmacy = make_account(server.url, "pharmacy")
    four_events_for_the_pharmacy(server, patient, pharmacy)
    close_and_read_everything(server)
    age(server, f"update events set created_at = '{LONG_AGO}'")
    for _ in range(100):  # at most 10 s; the interval is 0.5–1 s
        if event_ids(server, pharmacy) == [4]:
            break
        time.sleep(0.1)
    assert event_ids(server, pharmacy) == [4]


# --- never what is still wanted; token bookkeeping once it cannot matter (issue 25) -------------


def unread(server: ServerProcess, account: Account, request_id: int) -> int:
    detail = httpx.get(f"{server.url}/medicine/request/{request_id}/", headers=account.headers, timeout=10)
    assert detail.status_code == 200, detail.text
    return int(detail.json()["unread"])


async def test_prune_keeps_pending_requests_and_unread_events_and_unheard_replies(
    server: ServerProcess, patient: Account, pharmacy: Account, wav_bytes: bytes
) -> None:
    """However old: a pending request keeps its events (and its unread count), and a voice reply
    the patient has not heard keeps its file and its unread mark, until the patient reads it."""
    pending = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Still waiting").json()
    answered = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Answered").json()
    reply = post_response(server, pharmacy, request_id=answered["request_id"], audio=wav_bytes)
    assert reply.status_code == 200, reply.text
    audio_url = reply.json()["data"]["response"]["audio_url"]
    pending_id, answered_id = pending["request_id"], answered["request_id"]
    assert (unread(server, pharmacy, pending_id), unread(server, patient, answered_id)) == (1, 1)
    # one more event after them, so that neither is the account's latest (kept anyway)
    assert post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Later").status_code == 201
    assert post_request(server, patient, pharmacy=pharmacy.id, medicine_name="Later 2").status_code == 201
    age(server, f"update events set created_at = '{LONG_AGO}'")
    age(server, f"update medicine_requests set updated_at = '{LONG_AGO}'")

    prune(server, "--media-days", "30")
    assert unread(server, pharmacy, pending_id) == 1  # pending: its new_request stays
    assert unread(server, patient, answered_id) == 1  # unheard: its pharmacy_response stays
    assert httpx.get(audio_url).status_code == 200  # and so does the voice reply

    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        query = "select event_id from events where account_id = ? and type = 'pharmacy_response'"
        [(heard,)] = db.execute(query, (patient.id,)).fetchall()
    finally:
        db.close()
    async with open_ws(server, patient) as ws:  # the patient hears it and marks it read
        await ws.send(json.dumps({"type": "read", "id": "r", "request_id": answered_id, "up_to_event_id": heard}))
        while (await recv_json(ws))["type"] != "ack":
            pass
    report = prune(server, "--media-days", "30")
    assert report["media_files"] == 1
    assert httpx.get(audio_url).status_code == 404  # read, closed long ago: now it may go
    assert unread(server, pharmacy, pending_id) == 1


def test_token_bookkeeping_is_pruned_once_it_can_no_longer_matter(server: ServerProcess) -> None:
    from .conftest import make_account

    account = make_account(server.url, "patient")
    out = httpx.post(
        f"{server.url}/auth/logout", json={"refresh": account.refresh}, headers=account.headers, timeout=10
    )
    assert out.status_code == 204
    other = make_account(server.url, "patient")
    changed = httpx.post(
        f"{server.url}/auth/password", json={"old": other.password, "new": "another password 1"},
        headers=other.headers, timeout=10,
    )
    assert changed.status_code == 204

    def count(table: str) -> int:
        db = sqlite3.connect(server.data_dir / "medreq.db")
        try:
            return int(db.execute(f"select count(*) from {table}").fetchone()[0])
        finally:
            db.close()

    before = {t: count(t) for t in ("revoked_tokens", "refresh_families", "account_changes")}
    assert before["revoked_tokens"] == 1 and before["refresh_families"] == 2 and before["account_changes"] >= 1
    report = prune(server)  # all of it still matters: nothing goes
    assert (report["tokens"], report["account_changes"]) == (0, 0)
    assert {t: count(t) for t in before} == before

    # past their tokens' expiry, and changes older than the longest token lifetime (14 days)
    age(server, f"update revoked_tokens set expires_at = '{LONG_AGO}'")
    age(server, f"update refresh_families set expires_at = '{LONG_AGO}'")
    age(server, f"update account_changes set created_at = '{LONG_AGO}'")
    report = prune(server)
    assert (report["tokens"], report["account_changes"]) == (3, before["account_changes"])
    assert {t: count(t) for t in before} == {t: 0 for t in before}
