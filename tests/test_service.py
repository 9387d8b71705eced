"""The domain service on its own: real stores (SQLite and PostgreSQL), in-process hub, no web."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from medreq.bootstrap import open_service
from medreq.config import Settings
from medreq.protocol import ListQuery, RegisterIn, RequestForm
from medreq.protocol.errors import Conflict, Forbidden, Invalid, NotFound, UnsupportedMediaType
from medreq.service import Caller, MedreqService, Upload

from .conftest import create_database, drop_database, require_service


class Recorder:
    """A hub sink that remembers what it was given."""

    def __init__(self) -> None:
        self.received: list[tuple[int | None, str]] = []

    def deliver(self, event_id: int | None, text: str) -> None:
        self.received.append((event_id, text))


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings for each store: SQLite in a temp dir, and a throwaway PostgreSQL database."""
    database_url = ""
    if request.param == "postgresql":
        require_service("PostgreSQL", "127.0.0.1", 5432)
        database_url = await create_database()
    yield Settings.load(env={}, data_dir=tmp_path, scrypt_n=1024, database_url=database_url)
    if database_url:
        await drop_database(database_url)


@pytest.fixture
async def service(store_settings: Settings) -> AsyncIterator[MedreqService]:
    """The service on each store, assembled as the server does it (`medreq.bootstrap`)."""
    async with open_service(store_settings) as svc:
        yield svc


async def account(service: MedreqService, role: str, username: str) -> Caller:
    row = await service.register(
        RegisterIn(username=username, password="password1", role=role, name=username), by_operator=True
    )
    return Caller(row.id, role, username)


async def test_events_are_stored_before_they_are_published(service: MedreqService) -> None:
    patient = await account(service, "patient", "pat")
    pharmacy = await account(service, "pharmacy", "pha")
    sink = Recorder()
    await service.subscribe(pharmacy.id, sink)
    body, created = await service.create_request(
        patient, RequestForm(pharmacy=pharmacy.id, quantity=2, medicine_name="A")
    )
    assert created
    [(event_id, text)] = sink.received
    stored = await service.events_after(pharmacy.id, 0)
    assert stored == [(event_id, text)]
    assert event_id == 1
    assert f'"request_id":{body.request_id}' in text


async def test_idempotency_key_returns_first_request_and_creates_nothing(service: MedreqService) -> None:
    patient = await account(service, "patient", "pat")
    pharmacy = await account(service, "pharmacy", "pha")
    form = RequestForm(pharmacy=pharmacy.id, quantity=2, medicine_name="A")
    first, created_first = await service.create_request(patient, form, idempotency_key="k1")
    again, created_again = await service.create_request(patient, form, idempotency_key="k1")
    assert (created_first, created_again) == (True, False)
    assert again.request_id == first.request_id
    assert len((await service.list_requests(pharmacy, ListQuery())).results) == 1
    assert await service.last_event_id(pharmacy.id) == 1


async def test_rules_for_answering(service: MedreqService) -> None:
    patient = await account(service, "patient", "pat")
    pharmacy = await account(service, "pharmacy", "pha")
    other = await account(service, "pharmacy", "other")
    body, _ = await service.create_request(
        patient, RequestForm(pharmacy=pharmacy.id, quantity=1, medicine_name="A")
    )
    request_id = body.request_id
    with pytest.raises(Forbidden):
        await service.respond(patient, request_id, "ACCEPTED")
    with pytest.raises(NotFound):  # another pharmacy's request: as absent as an unknown id
        await service.respond(other, request_id, "ACCEPTED")
    with pytest.raises(NotFound):
        await service.respond(pharmacy, request_id + 100, "ACCEPTED")
    view = await service.respond(pharmacy, request_id, "ACCEPTED", "Ready")
    assert view.response is not None and view.response.message == "Ready"
    with pytest.raises(Conflict):
        await service.respond(pharmacy, request_id, "REJECTED")
    with pytest.raises(Conflict):
        await service.cancel(patient, request_id)


async def test_rules_for_requesting(service: MedreqService) -> None:
    patient = await account(service, "patient", "pat")
    pharmacy = await account(service, "pharmacy", "pha")
    with pytest.raises(Forbidden):
        await service.create_request(
            pharmacy, RequestForm(pharmacy=pharmacy.id, quantity=1, medicine_name="A")
        )
    with pytest.raises(Forbidden):
        await service.create_request(
            patient, RequestForm(pharmacy=pharmacy.id, quantity=1, medicine_name="A", patient=patient.id + 1)
        )
    with pytest.raises(Invalid) as missing_image:
        await service.create_request(patient, RequestForm(pharmacy=pharmacy.id, quantity=1))
    assert missing_image.value.fields == {"image": "is required unless medicine_name is given"}
    with pytest.raises(Invalid) as not_a_pharmacy:
        await service.create_request(patient, RequestForm(pharmacy=patient.id, quantity=1, medicine_name="A"))
    assert not_a_pharmacy.value.fields == {"pharmacy": "no such pharmacy"}
    assert (await service.list_requests(patient, ListQuery())).results == []


async def test_cancel_and_thread_messages_notify_the_other_party(service: MedreqService) -> None:
    patient = await account(service, "patient", "pat")
    pharmacy = await account(service, "pharmacy", "pha")
    pharmacy_sink, patient_sink = Recorder(), Recorder()
    await service.subscribe(pharmacy.id, pharmacy_sink)
    await service.subscribe(patient.id, patient_sink)
    body, _ = await service.create_request(
        patient, RequestForm(pharmacy=pharmacy.id, quantity=1, medicine_name="A")
    )
    request_id = body.request_id
    await service.post_message(pharmacy, request_id, "Which strength?")
    await service.post_message(patient, request_id, "500mg")
    detail = await service.request_detail(patient, request_id)
    assert [(m.from_, m.text) for m in detail.messages] == [
        (pharmacy.id, "Which strength?"),
        (patient.id, "500mg"),
    ]
    view = await service.cancel(patient, request_id)
    assert view.status == "CANCELLED"
    assert [t for _, t in pharmacy_sink.received if '"request_cancelled"' in t]
    assert [t for _, t in patient_sink.received if '"Which strength?"' in t]
    assert [t for _, t in patient_sink.received if '"request_updated"' in t and "CANCELLED" in t]


async def test_typing_is_published_but_not_stored(service: MedreqService) -> None:
    patient = await account(service, "patient", "pat")
    pharmacy = await account(service, "pharmacy", "pha")
    body, _ = await service.create_request(
        patient, RequestForm(pharmacy=pharmacy.id, quantity=1, medicine_name="A")
    )
    sink = Recorder()
    await service.subscribe(patient.id, sink)
    await service.typing(pharmacy, body.request_id, "start")
    [(event_id, text)] = sink.received
    assert event_id is None
    assert '"typing"' in text
    assert await service.events_after(patient.id, 0) == []


def upload(data: bytes) -> Upload:
    async def chunks() -> AsyncIterator[bytes]:
        yield data[:100]
        yield data[100:]

    return Upload(chunks(), filename="upload.bin", content_type="application/octet-stream")


def stored_files(settings: Settings) -> list[Path]:
    return sorted(p for p in (settings.data_dir / "media").rglob("*") if p.is_file())


async def test_an_upload_is_kept_only_with_the_change_it_came_with(
    service: MedreqService, store_settings: Settings, png_bytes: bytes, wav_bytes: bytes
) -> None:
    """The service saves an upload, and removes it when the change fails or is a replay."""
    patient = await account(service, "patient", "pat")
    pharmacy = await account(service, "pharmacy", "pha")
    form = RequestForm(pharmacy=pharmacy.id, quantity=1)
    body, created = await service.create_request(patient, form, upload(png_bytes), idempotency_key="k1")
    assert created
    [kept] = stored_files(store_settings)
    assert kept.name in body.data.image_url
    again, created = await service.create_request(patient, form, upload(png_bytes), idempotency_key="k1")
    assert (created, again.request_id) == (False, body.request_id)
    with pytest.raises(Forbidden):
        await service.create_request(pharmacy, form, upload(png_bytes))
    with pytest.raises(UnsupportedMediaType):  # not an image: refused while saving, nothing left behind
        await service.create_request(patient, form, upload(wav_bytes))
    assert stored_files(store_settings) == [kept]  # the replay's and the failures' files are gone
    with pytest.raises(NotFound):
        await service.respond(pharmacy, body.request_id + 1, "ACCEPTED", None, upload(wav_bytes))
    assert stored_files(store_settings) == [kept]
    view = await service.respond(pharmacy, body.request_id, "ACCEPTED", None, upload(wav_bytes))
    assert len(stored_files(store_settings)) == 2
    assert view.response.audio_url
