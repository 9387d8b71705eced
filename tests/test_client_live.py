"""`client.events()` and `client.connect()`: live, exactly once, across server restarts."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from medreq.client import (
    Backoff,
    Conflict,
    ConnectionState,
    Event,
    MedreqClient,
    MessageEvent,
    NewRequestEvent,
    ReadEvent,
    RequestUpdatedEvent,
    TransportError,
    TypingEvent,
    Unauthorized,
)

from .conftest import Account, ServerProcess

pytestmark = [pytest.mark.shared_server, pytest.mark.timeout(90)]

FAST = Backoff(initial=0.05, maximum=0.5)


async def login(server: ServerProcess, account: Account) -> MedreqClient:
    client = MedreqClient(server.url, backoff=FAST)
    await client.login(account.username, account.password)
    return client


async def take(stream: object, count: int, timeout: float = 20.0) -> list[Event]:
    """The next `count` events of an async iterator, within `timeout` seconds."""
    got: list[Event] = []

    async def collect() -> None:
        async for event in stream:  # type: ignore[attr-defined]
            got.append(event)
            if len(got) == count:
                return

    await asyncio.wait_for(collect(), timeout)
    return got


@pytest.mark.own_server
async def test_events_survive_a_server_restart_exactly_once_in_order(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    got: list[Event] = []

    async def consume(shop: MedreqClient) -> None:
        async with aclosing(shop.events(after=0)) as stream:
            async for event in stream:
                got.append(event)
                if len(got) == 6:
                    return

    async def until(count: int) -> None:
        for _ in range(400):
            if len(got) >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"only {len(got)} of {count} events arrived")

    async with await login(server, patient) as alice, await login(server, pharmacy) as shop:
        consumer = asyncio.create_task(consume(shop))
        try:
            first = [
                (await alice.create_request(pharmacy.id, n, medicine_name="m")).request_id for n in (1, 2, 3)
            ]
            await until(3)
            await asyncio.to_thread(server.restart)
            second = [
                (await alice.create_request(pharmacy.id, n, medicine_name="m")).request_id for n in (4, 5, 6)
            ]
            await asyncio.wait_for(consumer, 20)
        finally:
            consumer.cancel()

    assert all(isinstance(e, NewRequestEvent) for e in got)
    assert [e.event_id for e in got] == [1, 2, 3, 4, 5, 6]
    assert [e.request_id for e in got] == first + second  # type: ignore[attr-defined]


@pytest.mark.own_server
async def test_live_connection_resumes_after_restart_without_duplicates(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    async with (
        await login(server, patient) as alice,
        await login(server, pharmacy) as shop,
        shop.connect() as conn,
    ):
        first = [(await alice.create_request(pharmacy.id, n, medicine_name="m")).request_id for n in (1, 2)]
        before = await take(conn, 2)
        await asyncio.to_thread(server.restart)
        second = [(await alice.create_request(pharmacy.id, n, medicine_name="m")).request_id for n in (3, 4)]
        after = await take(conn, 2)
        assert conn.reconnects >= 1
    events = before + after
    assert [e.event_id for e in events] == [1, 2, 3, 4]
    assert [e.request_id for e in events] == first + second  # type: ignore[attr-defined]


async def test_offline_events_are_replayed_after_the_last_seen_id(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    async with await login(server, patient) as alice, await login(server, pharmacy) as shop:
        made = [
            (await alice.create_request(pharmacy.id, n, medicine_name="x")).request_id for n in (1, 2, 3, 4)
        ]
        async with shop.connect(after=2) as conn:
            replayed = await take(conn, 2)
            assert [e.event_id for e in replayed] == [3, 4]
            assert [e.request_id for e in replayed] == made[2:]  # type: ignore[attr-defined]

            # an explicit resume from 0 replays everything; the connection drops what it has seen
            assert await conn.resume(0) == 4
            assert conn.duplicates_dropped == 4
            newest = await alice.create_request(pharmacy.id, 9, medicine_name="y")
            (live,) = await take(conn, 1)
            assert (live.event_id, live.request_id) == (5, newest.request_id)  # type: ignore[attr-defined]


async def test_pharmacy_answers_over_the_socket_it_listens_on(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    async with (
        await login(server, patient) as alice,
        await login(server, pharmacy) as shop,
        shop.connect() as conn,
    ):
        assert await conn.ping() >= 0
        created = await alice.create_request(pharmacy.id, 2, medicine_name="Aspirin")
        (event,) = await take(conn, 1)
        assert isinstance(event, NewRequestEvent)

        answered = await conn.respond(event.request_id, "ACCEPTED", "ready")
        assert (answered.id, answered.status) == (created.request_id, "ACCEPTED")
        with pytest.raises(Conflict):
            await conn.respond(event.request_id, "REJECTED")

        (updated,) = await take(conn, 1)  # the answering account's own devices stay in sync
        assert isinstance(updated, RequestUpdatedEvent)
        assert (updated.request_id, updated.status) == (created.request_id, "ACCEPTED")

        detail = await alice.get_request(created.request_id)
        assert detail.response is not None
        assert detail.response.message == "ready"


@pytest.mark.own_server
async def test_sending_waits_for_the_link_to_come_back(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    async with (
        await login(server, patient) as alice,
        await login(server, pharmacy) as shop,
        shop.connect() as conn,
    ):
        await alice.create_request(pharmacy.id, 1, medicine_name="Aspirin")
        await take(conn, 1)
        await asyncio.to_thread(server.restart)
        created = await alice.create_request(pharmacy.id, 1, medicine_name="Aspirin")
        answered = await conn.respond(created.request_id, "REJECTED", "out of stock")
        assert answered.status == "REJECTED"
        assert conn.reconnects >= 1
        events = await take(conn, 2)
        assert [(e.type, e.event_id) for e in events] == [("new_request", 2), ("request_updated", 3)]


@pytest.mark.own_server
async def test_on_state_reports_each_change_and_the_delay_before_each_retry(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    steady = Backoff(initial=0.3, factor=2.0, maximum=0.6, jitter=0.0)
    seen: list[tuple[ConnectionState, float | None]] = []
    async with (
        await login(server, patient) as alice,
        await login(server, pharmacy) as shop,
        shop.connect(backoff=steady, on_state=lambda *change: seen.append(change)) as conn,
    ):
        await alice.create_request(pharmacy.id, 1, medicine_name="m")
        await take(conn, 1)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(1.0)  # two or three attempts fail while the server is down
        assert conn.state == "reconnecting"
        assert isinstance(conn.last_error, TransportError)
        await asyncio.to_thread(server.start)
        await alice.create_request(pharmacy.id, 2, medicine_name="m")
        await take(conn, 1)
    assert seen[0] == ("open", None)
    assert seen[1] == ("reconnecting", 0.3)  # the first retry's pause, before it is taken
    assert seen[-2:] == [("open", None), ("closed", None)]
    waits = [retry_in for state, retry_in in seen[1:-2] if retry_in is not None]
    assert waits[:3] == [0.3, 0.6, 0.6][: len(waits)]  # the backoff's own delays, capped
    assert len(waits) >= 2
    assert {state for state, _ in seen[1:-2]} == {"reconnecting"}


@pytest.mark.own_server
async def test_retry_first_waits_for_a_server_that_is_not_up_yet(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    seen: list[tuple[ConnectionState, float | None]] = []
    opened = asyncio.Event()

    def on_state(state: ConnectionState, retry_in: float | None) -> None:
        seen.append((state, retry_in))
        if state == "open":
            opened.set()

    steady = Backoff(initial=0.2, maximum=0.2, jitter=0.0)
    await asyncio.to_thread(server.stop)
    async with (
        MedreqClient(server.url, token=pharmacy.access, refresh_token=pharmacy.refresh) as shop,
        shop.connect(backoff=steady, retry_first=True, on_state=on_state) as conn,
    ):
        await asyncio.sleep(0.5)
        assert ("connecting", 0.2) in seen  # it has not given up: it says when it tries next
        assert not conn.connected
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(opened.wait(), 20)  # live only (no `after`): the request comes after
        async with await login(server, patient) as alice:
            created = await alice.create_request(pharmacy.id, 1, medicine_name="m")
            (event,) = await take(conn, 1)
        assert event.request_id == created.request_id  # type: ignore[attr-defined]
    assert ("open", None) in seen
    assert conn.reconnects == 0  # the first socket, however late, is no reconnect


async def test_retry_first_still_ends_on_a_refusal(server: ServerProcess, pharmacy: Account) -> None:
    async with MedreqClient(server.url, token="not-a-token", backoff=FAST) as client:
        async with client.connect(retry_first=True) as conn:
            with pytest.raises(Unauthorized):
                await conn.next_event(timeout=20)
        assert conn.state == "closed"


async def test_a_bad_token_without_refresh_fails_the_connection(
    server: ServerProcess, pharmacy: Account
) -> None:
    async with MedreqClient(server.url, token=pharmacy.access) as client:
        await client.me()
        client.access_token = "not-a-token"
        with pytest.raises(Unauthorized):
            async with client.connect():
                pass


async def test_a_bad_token_with_refresh_is_renewed_for_the_socket(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    async with await login(server, patient) as alice, MedreqClient(server.url, token=pharmacy.access) as shop:
        await shop.me()
        shop.access_token, shop.refresh_token = "not-a-token", pharmacy.refresh
        async with shop.connect() as conn:
            created = await alice.create_request(pharmacy.id, 1, medicine_name="x")
            (event,) = await take(conn, 1)
        assert event.request_id == created.request_id  # type: ignore[attr-defined]
        assert shop.access_token != "not-a-token"


async def test_closing_right_after_a_replay_is_prompt(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    async with await login(server, patient) as alice, await login(server, pharmacy) as shop:
        for n in (1, 2):
            await alice.create_request(pharmacy.id, n, medicine_name="x")
        for _ in range(20):  # leaving while the reader task is still starting must not hang or leak
            async with asyncio.timeout(5), shop.connect(after=0) as conn:
                assert [e.event_id for e in await take(conn, 2)] == [1, 2]
            assert conn.state == "closed"
            assert not conn.connected


async def test_chat_typing_and_read_over_the_socket(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    async with (
        await login(server, patient) as alice,
        await login(server, pharmacy) as shop,
        alice.connect() as patient_conn,
        shop.connect() as pharmacy_conn,
    ):
        created = await alice.create_request(pharmacy.id, 1, medicine_name="Aspirin")
        (new,) = await take(pharmacy_conn, 1)
        assert new.request_id == created.request_id  # type: ignore[attr-defined]

        assert await pharmacy_conn.typing(created.request_id, "start")
        await pharmacy_conn.send_message(created.request_id, "in stock")
        typing, message = await take(patient_conn, 2)
        assert isinstance(typing, TypingEvent)
        assert (typing.event_id, typing.from_, typing.state) == (None, pharmacy.id, "start")
        assert isinstance(message, MessageEvent)
        assert (message.from_, message.text) == (pharmacy.id, "in stock")

        await patient_conn.read(created.request_id, message.event_id or 0)
        (read,) = await take(pharmacy_conn, 1)
        assert isinstance(read, ReadEvent)
        assert (read.by, read.up_to_event_id) == (patient.id, message.event_id)


async def test_live_connection_renews_its_token_in_band(server_factory: object) -> None:
    """With 4-second access tokens the socket outlives several of them without reconnecting:
    the client sends `{"type":"auth"}` with a refreshed token before each expires."""
    from .conftest import make_account

    server: ServerProcess = server_factory({"MEDREQ_ACCESS_TOKEN_TTL": "4"})  # type: ignore[operator]
    pharmacy = make_account(server.url, "pharmacy")
    patient = make_account(server.url, "patient")
    shop = await login(server, pharmacy)
    alice = await login(server, patient)
    try:
        async with shop.connect() as live:
            first_token = shop.access_token
            await asyncio.sleep(9)  # two token lifetimes
            await alice.create_request(pharmacy.id, 1, medicine_name="Still here")
            event = await live.next_event(timeout=10)
            assert isinstance(event, NewRequestEvent)
            assert live.reconnects == 0
            assert shop.access_token != first_token
    finally:
        await shop.aclose()
        await alice.aclose()
