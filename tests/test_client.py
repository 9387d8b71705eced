"""`medreq.client` against a real server on loopback: REST, typed errors, token refresh."""

from __future__ import annotations

import pytest

import medreq.client as client_module
from medreq.client import (
    Conflict,
    Event,
    Forbidden,
    Invalid,
    MedreqClient,
    NewRequestEvent,
    NotFound,
    PharmacyResponseEvent,
    SyncMedreqClient,
    TransportError,
    TypingEvent,
    Unauthorized,
    parse_event,
)

from .conftest import Account, ServerProcess, free_port

pytestmark = [pytest.mark.shared_server, pytest.mark.timeout(60)]

EXPECTED_API = {
    "AccountOut",
    "Backoff",
    "Conflict",
    "ConnectionLost",
    "ConnectionState",
    "Event",
    "FileInput",
    "Forbidden",
    "Invalid",
    "InvalidJSON",
    "LiveConnection",
    "MedreqClient",
    "MedreqError",
    "MessageEvent",
    "NewRequestEvent",
    "NotFound",
    "PayloadTooLarge",
    "PharmacyOut",
    "PharmacyResponseEvent",
    "PresenceEvent",
    "Profile",
    "ProfileStore",
    "Progress",
    "RateLimited",
    "ReadEvent",
    "RequestCancelledEvent",
    "RequestChosenEvent",
    "RequestCreatedOut",
    "RequestDetail",
    "RequestListOut",
    "RequestOut",
    "RequestUpdatedEvent",
    "ResponseSentOut",
    "SyncMedreqClient",
    "TokenOut",
    "TransportError",
    "TypingEvent",
    "Unauthorized",
    "UnsupportedMediaType",
    "parse_event",
}


def test_public_api_is_exactly_all() -> None:
    assert set(client_module.__all__) == EXPECTED_API
    assert client_module.__all__ == sorted(client_module.__all__)
    for name in client_module.__all__:
        assert getattr(client_module, name) is not None
    public = {n for n in vars(client_module) if not n.startswith("_")}
    assert public - set(client_module.__all__) == set(), "public names missing from __all__"


def test_events_are_parsed_by_type_and_unknown_types_kept() -> None:
    new = parse_event(
        {"type": "new_request", "event_id": 4, "request_id": 9, "quantity": 2, "timestamp": "t"}
    )
    assert isinstance(new, NewRequestEvent)
    assert (new.event_id, new.request_id, new.quantity) == (4, 9, 2)
    typing = parse_event({"type": "typing", "request_id": 9, "from": 3, "state": "stop"})
    assert isinstance(typing, TypingEvent)
    assert (typing.event_id, typing.from_, typing.state) == (None, 3, "stop")
    future = parse_event({"type": "from_the_future", "event_id": 5, "x": [1]})
    assert type(future) is Event
    assert future.event_id == 5
    assert future.raw == {"type": "from_the_future", "event_id": 5, "x": [1]}
    newer = {"type": "new_request", "event_id": 7, "request_id": 9, "added_later": True}
    typed = parse_event(dict(newer))
    assert isinstance(typed, NewRequestEvent) and not hasattr(typed, "added_later")
    assert typed.raw == newer  # what the server sent, fields this client does not know included
    built = NewRequestEvent(type="new_request", event_id=7, request_id=9)  # as the server builds one
    assert built.raw == {"type": "new_request", "event_id": 7, "request_id": 9}
    broken = parse_event({"type": "pharmacy_response", "event_id": 6})  # missing fields
    assert type(broken) is Event
    assert broken.type == "pharmacy_response"


async def login(server: ServerProcess, account: Account) -> MedreqClient:
    client = MedreqClient(server.url)
    await client.login(account.username, account.password)
    return client


async def test_request_answer_and_media_round_trip(
    server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes, wav_bytes: bytes
) -> None:
    seen: list[tuple[int, int | None]] = []
    async with await login(server, patient) as alice, await login(server, pharmacy) as shop:
        assert (await alice.me()).id == patient.id
        assert pharmacy.id in [p.id for p in await alice.pharmacies()]

        created = await alice.create_request(
            pharmacy.id,
            5,
            png_bytes,
            filename="rx.png",
            medicine_name="Amoxicillin 500mg",
            note="before 6pm",
            progress=lambda sent, total: seen.append((sent, total)),
        )
        assert created.data.status == "PENDING"
        assert created.data.medicine_name == "Amoxicillin 500mg"
        assert seen and seen[-1] == (len(png_bytes), len(png_bytes))
        assert await alice.download(created.data.image_url or "") == png_bytes

        listed = await shop.list_requests(status="PENDING")
        assert [r.id for r in listed.results] == [created.request_id]

        answered = await shop.respond(
            created.request_id, "ACCEPTED", "ready at 5", audio=wav_bytes, filename="a.wav"
        )
        assert answered.data.status == "ACCEPTED"
        assert answered.data.response is not None
        assert answered.data.response.message == "ready at 5"

        detail = await alice.get_request(created.request_id)
        assert detail.status == "ACCEPTED"
        assert detail.response is not None
        assert await alice.download(detail.response.audio_url or "") == wav_bytes


async def test_server_errors_are_the_typed_errors(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    async with await login(server, patient) as alice, await login(server, pharmacy) as shop:
        with pytest.raises(Invalid) as invalid:
            await alice.create_request(pharmacy.id, 0, medicine_name="x")
        assert invalid.value.fields and "quantity" in invalid.value.fields

        created = await alice.create_request(pharmacy.id, 1, medicine_name="Aspirin")
        await shop.respond(created.request_id, "REJECTED")
        with pytest.raises(Conflict):
            await shop.respond(created.request_id, "ACCEPTED")
        with pytest.raises(Forbidden):
            await alice.respond(created.request_id, "ACCEPTED")
        with pytest.raises(NotFound):
            await alice.get_request(999_999)

    async with MedreqClient(server.url) as anonymous:
        with pytest.raises(Unauthorized):
            await anonymous.login(patient.username, "wrong password!")
        with pytest.raises(Unauthorized):
            await anonymous.me()


async def test_unreachable_server_is_a_transport_error() -> None:
    async with MedreqClient(f"http://127.0.0.1:{free_port()}", timeout=2) as client:
        with pytest.raises(TransportError, match="cannot reach"):
            await client.pharmacies()


async def test_rejected_access_token_is_refreshed_once_and_reported(
    server: ServerProcess, patient: Account
) -> None:
    saved: list[tuple[str, str | None]] = []
    async with MedreqClient(
        server.url,
        token="corrupted.access.token",
        refresh_token=patient.refresh,
        on_tokens=lambda access, refresh: saved.append((access, refresh)),
    ) as client:
        assert (await client.me()).id == patient.id
        assert client.access_token not in (None, "corrupted.access.token")
        assert saved and saved[-1][0] == client.access_token

        client.access_token, client.refresh_token = "bad", "bad-refresh"
        with pytest.raises(Unauthorized, match="log in again"):
            await client.me()


async def test_upload_is_retried_after_refresh(
    server: ServerProcess, patient: Account, pharmacy: Account, png_bytes: bytes, tmp_path: object
) -> None:
    from pathlib import Path

    image = Path(str(tmp_path)) / "rx.png"
    image.write_bytes(png_bytes)
    async with MedreqClient(server.url, token="corrupted", refresh_token=patient.refresh) as client:
        created = await client.create_request(pharmacy.id, 2, image)
        assert await client.download(created.data.image_url or "") == png_bytes


async def test_iter_requests_follows_cursors(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    async with await login(server, patient) as alice:
        made = [
            (await alice.create_request(pharmacy.id, n, medicine_name=f"m{n}")).request_id
            for n in range(1, 6)
        ]
        every = [r.id async for r in alice.iter_requests(page_size=2)]
        assert every == list(reversed(made))
        first3 = [r.id async for r in alice.iter_requests(limit=3, page_size=2)]
        assert first3 == list(reversed(made))[:3]


async def test_cancel_and_messages(server: ServerProcess, patient: Account, pharmacy: Account) -> None:
    async with await login(server, patient) as alice, await login(server, pharmacy) as shop:
        first = await alice.create_request(pharmacy.id, 1, medicine_name="Aspirin")
        await alice.post_message(first.request_id, "is it in stock?")
        await shop.post_message(first.request_id, "yes")
        thread = await alice.get_request(first.request_id)
        assert len(thread.messages) == 2
        cancelled = await alice.cancel_request(first.request_id)
        assert cancelled.status == "CANCELLED"
        with pytest.raises(Conflict):
            await shop.respond(first.request_id, "ACCEPTED")


def test_sync_client_for_code_without_an_event_loop(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    with SyncMedreqClient(server.url) as client:
        client.login(patient.username, patient.password)
        created = client.create_request(pharmacy.id, 3, medicine_name="Ibuprofen")
        assert [r.id for r in client.iter_requests(limit=5)] == [created.request_id]
        with pytest.raises(NotFound):
            client.get_request(123456)


async def test_pharmacy_response_event_reaches_patient(
    server: ServerProcess, patient: Account, pharmacy: Account
) -> None:
    async with await login(server, patient) as alice, await login(server, pharmacy) as shop:
        async with alice.connect() as live:
            created = await alice.create_request(pharmacy.id, 1, medicine_name="Aspirin")
            await shop.respond(created.request_id, "ACCEPTED", "come by")
            event = await live.next_event(10)
        assert isinstance(event, PharmacyResponseEvent)
        assert (event.request_id, event.status, event.message) == (created.request_id, "ACCEPTED", "come by")
        assert event.pharmacy_id == pharmacy.id
