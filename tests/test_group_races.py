"""docs/protocol.md §3, groups under contention: two servers over one PostgreSQL and one Redis.

Two choices at once, on different workers: exactly one wins. A pharmacy answering while the
patient chooses another: its answer is in before the choice (and the choice then cancels it) or
refused with 409, never both. A worker killed with SIGKILL in the middle of a burst of choices:
every group is all or nothing (one transaction per choice)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from .conftest import Account, ServerProcess, make_account
from .test_request_groups import ask, choose
from .wire import open_ws, post_response, recv_json

GROUPS = 8  # groups per test: enough interleavings, each round a few requests per server


def at_once(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """The calls started together (a barrier), their answers in the order given."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def group_of(server: ServerProcess, patient: Account, group: int) -> dict[int, dict[str, Any]]:
    """The group's requests as the patient sees them, by pharmacy id."""
    answer = httpx.get(f"{server.url}/medicine/request/?group={group}", headers=patient.headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return {r["pharmacy"]["id"]: r for r in answer.json()["results"]}


def all_or_nothing(requests: dict[int, dict[str, Any]]) -> bool:
    """No choice (nothing chosen, nothing cancelled by a choice), or exactly one chosen and every
    other request cancelled because of it."""
    chosen = [r for r in requests.values() if r["chosen"]]
    by_choice = [r for r in requests.values() if r["cancel_reason"] == "another_pharmacy_chosen"]
    if not chosen:
        return not by_choice
    others = [r for r in requests.values() if not r["chosen"]]
    return len(chosen) == 1 and chosen[0]["status"] == "ACCEPTED" and by_choice == others


def test_two_choices_at_once_on_two_servers_one_wins(cluster: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = cluster
    patient = make_account(a.url, "patient")
    first, second = make_account(a.url, "pharmacy"), make_account(b.url, "pharmacy")
    for _ in range(GROUPS):
        created = ask(a, patient, [first.id, second.id]).json()
        one, two = (r["id"] for r in created["requests"])
        assert post_response(a, first, request_id=one).status_code == 200
        assert post_response(b, second, request_id=two).status_code == 200
        answers = at_once(lambda one=one: choose(a, patient, one), lambda two=two: choose(b, patient, two))
        assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
        requests = group_of(b, patient, created["group"])
        assert all_or_nothing(requests)
        winner = first.id if answers[0].status_code == 200 else second.id
        assert requests[winner]["chosen"]


def test_an_answer_racing_a_choice_is_either_in_before_it_or_refused(
    cluster: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = cluster
    patient = make_account(a.url, "patient")
    first, second = make_account(a.url, "pharmacy"), make_account(b.url, "pharmacy")
    rounds = []
    for _ in range(GROUPS):
        created = ask(a, patient, [first.id, second.id]).json()
        one, two = (r["id"] for r in created["requests"])
        assert post_response(a, first, request_id=one).status_code == 200
        chose, answered = at_once(
            lambda one=one: choose(a, patient, one),
            lambda two=two: post_response(b, second, request_id=two, text_message="we have it"),
        )
        assert chose.status_code == 200, chose.text
        assert answered.status_code in (200, 409), answered.text
        late = group_of(b, patient, created["group"])[second.id]
        assert late["status"] == "CANCELLED" and late["cancel_reason"] == "another_pharmacy_chosen"
        rounds.append((two, answered.status_code))
    # what the patient was told, from its whole history: an answer that got 200 reached it before
    # the choice's cancellation of that request; one refused with 409 never reached it at all
    history = asyncio.run(patient_history(b, patient))
    for two, code in rounds:
        told = [e["type"] for e in history if e.get("request_id") == two and e["type"] != "new_request"]
        if code == 200:
            assert told.index("pharmacy_response") < told.index("request_updated"), told
            assert told.count("pharmacy_response") == 1, told
        else:
            assert "pharmacy_response" not in told, told


async def patient_history(server: ServerProcess, patient: Account) -> list[dict[str, Any]]:
    """Every event stored for the patient, replayed from the start (`?after=0`)."""
    events = []
    async with open_ws(server, patient, after=0) as ws:
        while True:
            try:
                events.append(await recv_json(ws, timeout=1.0))
            except TimeoutError:
                return [e for e in events if "event_id" in e]


def test_a_worker_killed_in_a_burst_of_choices_leaves_every_group_all_or_nothing(
    cluster: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = cluster
    patient = make_account(b.url, "patient")
    pharmacies = [make_account(b.url, "pharmacy") for _ in range(3)]
    groups = []
    for _ in range(GROUPS * 3):
        created = ask(b, patient, [p.id for p in pharmacies]).json()
        for pharmacy, request in zip(pharmacies[:2], created["requests"], strict=False):
            assert post_response(b, pharmacy, request_id=request["id"]).status_code == 200
        groups.append(created)

    first_choice = threading.Event()

    def choose_on_a(created: dict[str, Any]) -> int:
        try:
            code = choose(a, patient, created["requests"][0]["id"]).status_code
        except httpx.HTTPError:
            return 0  # the worker died under it
        first_choice.set()
        return code

    def kill_a() -> None:  # once choices are landing, with the rest of the burst in flight
        first_choice.wait(timeout=30)
        assert a.proc is not None
        a.proc.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_a)
    killer.start()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(choose_on_a, groups))
    killer.join()
    assert 200 in codes and 0 in codes, codes  # some choices landed, some were cut off
    a.stop()
    for created, code in zip(groups, codes, strict=True):
        requests = group_of(b, patient, created["group"])
        assert all_or_nothing(requests), (code, requests)
        if code == 200:  # acknowledged: the choice is there
            assert requests[pharmacies[0].id]["chosen"]
