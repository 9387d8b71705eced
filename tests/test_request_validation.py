"""POST /medicine/request/ and /medicine/response/ (docs/protocol.md §3): every bad input gets the
§1 error with the right status, code and `fields`, and leaves rows and media exactly as they were;
every allowed media type is accepted by its bytes, whatever its name."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from .conftest import Account, ServerProcess, make_account, png, wav
from .wire import db_snapshot, error_code, post_request, post_response

pytestmark = pytest.mark.shared_server

NO_RATE_LIMIT = {"MEDREQ_RATE_LIMIT_ENABLED": "false"}
SMALL_LIMIT = 2000

# --- minimal files each sniffer recognises ----------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"
WEBP = b"RIFF" + struct.pack("<I", 26) + b"WEBPVP8 " + struct.pack("<I", 14) + bytes(14)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(32) + b"\xff\xd9"
OGG = b"OggS\x00\x02" + bytes(20) + b"\x01\x1e\x01vorbis" + bytes(30)
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" + bytes(400)
TEXT = b"Take two tablets a day. This is a text file, not an image.\n"


@dataclass
class World:
    server: ServerProcess
    patient: Account
    other_patient: Account
    pharmacy: Account
    other_pharmacy: Account


def make_world(tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str]) -> Iterator[World]:
    server = ServerProcess(tmp_path_factory.mktemp(name) / "data", env={**NO_RATE_LIMIT, **env})
    server.start()
    try:
        yield World(
            server,
            make_account(server.url, "patient", name="Pat One", phone="+1-555-0101"),
            make_account(server.url, "patient", name="Pat Two"),
            make_account(server.url, "pharmacy", name="Pharm One"),
            make_account(server.url, "pharmacy", name="Pharm Two"),
        )
    finally:
        server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(tmp_path_factory, "validation", {})


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A server whose image and audio limits are 2000 bytes."""
    yield from make_world(
        tmp_path_factory,
        "small-limits",
        {"MEDREQ_MAX_IMAGE_BYTES": str(SMALL_LIMIT), "MEDREQ_MAX_AUDIO_BYTES": str(SMALL_LIMIT)},
    )


def assert_error(
    response: httpx.Response, status: int, code: str, fields: set[str] | None = None, *, label: str = ""
) -> dict[str, Any]:
    """The §1 error body: exactly {"error": {code, message[, fields]}}, no stack trace."""
    assert response.status_code == status, (label, response.text)
    assert error_code(response) == code, label
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "fields"}, (label, error)
    assert isinstance(error["message"], str), label
    assert error["message"], label
    assert "Traceback" not in response.text, label
    if fields is None:
        assert "fields" not in error, (label, error)
    else:
        assert set(error.get("fields") or {}) == fields, (label, error)
    return error


def pending_request(world: World, pharmacy: Account | None = None) -> int:
    created = post_request(
        world.server, world.patient, pharmacy=(pharmacy or world.pharmacy).id, medicine_name="Aspirin"
    )
    assert created.status_code == 201, created.text
    return int(created.json()["request_id"])


def detail(world: World, request_id: int, account: Account) -> dict[str, Any]:
    response = httpx.get(f"{world.server.url}/medicine/request/{request_id}/", headers=account.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


# --- POST /medicine/request/ ---------------------------------------------------------------------


def test_request_with_bad_fields_is_422_and_stores_nothing(world: World) -> None:
    server, patient = world.server, world.patient
    ok = {"pharmacy": world.pharmacy.id, "quantity": 2, "medicine_name": "Amoxicillin"}
    cases: list[tuple[str, dict[str, Any], set[str]]] = [
        ("missing pharmacy", {**ok, "pharmacy": None}, {"pharmacy"}),
        ("missing quantity", {**ok, "quantity": None}, {"quantity"}),
        ("empty quantity", {**ok, "quantity": ""}, {"quantity"}),
        ("quantity 0", {**ok, "quantity": 0}, {"quantity"}),
        ("quantity 1001", {**ok, "quantity": 1001}, {"quantity"}),
        ("quantity -1", {**ok, "quantity": -1}, {"quantity"}),
        ("quantity abc", {**ok, "quantity": "abc"}, {"quantity"}),
        ("quantity 2.5", {**ok, "quantity": "2.5"}, {"quantity"}),
        ("pharmacy abc", {**ok, "pharmacy": "abc"}, {"pharmacy"}),
        ("pharmacy 0", {**ok, "pharmacy": 0}, {"pharmacy"}),
        ("pharmacy that does not exist", {**ok, "pharmacy": 987654}, {"pharmacy"}),
        ("pharmacy that is a patient", {**ok, "pharmacy": world.other_patient.id}, {"pharmacy"}),
        ("pharmacy that is the caller", {**ok, "pharmacy": patient.id}, {"pharmacy"}),
        ("no image and no medicine_name", {**ok, "medicine_name": None}, {"image"}),
        ("no image and a blank medicine_name", {**ok, "medicine_name": "   "}, {"image"}),
        ("medicine_name of 201 chars", {**ok, "medicine_name": "m" * 201}, {"medicine_name"}),
        ("note of 1001 chars", {**ok, "note": "n" * 1001}, {"note"}),
        ("patient abc", {**ok, "patient": "abc"}, {"patient"}),
    ]
    before = db_snapshot(server)
    for label, fields_sent, fields in cases:
        response = post_request(server, patient, **fields_sent)
        assert_error(response, 422, "validation_error", fields, label=label)
        assert db_snapshot(server) == before, label
    # the limits themselves are allowed
    edge = post_request(
        server, patient, pharmacy=world.pharmacy.id, quantity=1000, medicine_name="m" * 200, note="n" * 1000
    )
    assert edge.status_code == 201, edge.text
    assert (edge.json()["data"]["quantity"], len(edge.json()["data"]["note"])) == (1000, 1000)


def test_ids_beyond_64_bits_are_refused_not_a_500(world: World) -> None:
    """An id no database row can have is a bad input (422/403/404), never an internal error."""
    server, patient = world.server, world.patient
    huge = 10**22
    before = db_snapshot(server)
    outcomes = {
        "pharmacy=10**22": post_request(server, patient, pharmacy=huge, medicine_name="X"),
        "pharmacy=10**22 with image": post_request(
            server, patient, pharmacy=huge, medicine_name="X", image=png()
        ),
        "patient=10**22": post_request(
            server, patient, pharmacy=world.pharmacy.id, medicine_name="X", patient=huge
        ),
        "request_id=10**22": post_response(server, world.pharmacy, request_id=huge),
    }
    expected = {
        "pharmacy=10**22": (422,),
        "pharmacy=10**22 with image": (422,),
        "patient=10**22": (403, 422),  # not the caller, and not an id at all
        "request_id=10**22": (404, 422),
    }
    wrong = {k: (r.status_code, r.text) for k, r in outcomes.items() if r.status_code not in expected[k]}
    assert db_snapshot(server) == before
    assert not wrong, wrong


def test_request_refused_after_upload_leaves_no_file_behind(world: World) -> None:
    server, patient = world.server, world.patient
    image = png()
    cases: list[tuple[str, dict[str, Any], int, str, set[str] | None]] = [
        ("unknown pharmacy", {"pharmacy": 987654}, 422, "validation_error", {"pharmacy"}),
        (
            "pharmacy is a patient",
            {"pharmacy": world.other_patient.id},
            422,
            "validation_error",
            {"pharmacy"},
        ),
        (
            "note too long",
            {"pharmacy": world.pharmacy.id, "note": "n" * 1001},
            422,
            "validation_error",
            {"note"},
        ),
        (
            "someone else's patient id",
            {"pharmacy": world.pharmacy.id, "patient": world.other_patient.id},
            403,
            "forbidden",
            None,
        ),
    ]
    before = db_snapshot(server)
    for label, fields_sent, status, code, fields in cases:
        response = post_request(server, patient, image=image, **fields_sent)
        assert_error(response, status, code, fields, label=label)
        assert db_snapshot(server) == before, label
    pharmacy_posts = post_request(server, world.pharmacy, pharmacy=world.other_pharmacy.id, image=image)
    assert_error(pharmacy_posts, 403, "forbidden")
    assert db_snapshot(server) == before


def test_request_with_a_bad_image_is_refused_by_its_bytes(world: World) -> None:
    server, patient = world.server, world.patient
    cases: list[tuple[str, bytes, str, int, str]] = [
        ("text file named rx.png", TEXT, "rx.png", 415, "unsupported_media_type"),
        ("WAV audio named rx.jpg", wav(), "rx.jpg", 415, "unsupported_media_type"),
        ("Ogg named rx.pdf", OGG, "rx.pdf", 415, "unsupported_media_type"),
        (
            "HTML named rx.png",
            b"<!doctype html><script>alert(1)</script>",
            "rx.png",
            415,
            "unsupported_media_type",
        ),
        ("empty file", b"", "rx.png", 422, "validation_error"),
    ]
    before = db_snapshot(server)
    for label, content, filename, status, code in cases:
        response = post_request(
            server, patient, pharmacy=world.pharmacy.id, image=content, image_name=filename, medicine_name="X"
        )
        assert_error(response, status, code, {"image"}, label=label)
        assert db_snapshot(server) == before, label


def test_request_with_text_where_a_file_belongs_or_a_file_where_text_belongs_is_422(world: World) -> None:
    server, patient = world.server, world.patient
    url = f"{server.url}/medicine/request/"
    before = db_snapshot(server)
    image_as_text = httpx.post(
        url,
        data={"pharmacy": str(world.pharmacy.id), "quantity": "1", "image": "not a file"},
        headers=patient.headers,
    )
    assert_error(image_as_text, 422, "validation_error", {"image"})
    quantity_as_file = httpx.post(
        url,
        data={"pharmacy": str(world.pharmacy.id), "medicine_name": "X"},
        files={"quantity": ("q.txt", b"1", "text/plain")},
        headers=patient.headers,
    )
    assert_error(quantity_as_file, 422, "validation_error", {"quantity"})
    assert db_snapshot(server) == before


def test_request_must_be_a_form_from_an_authenticated_patient(world: World) -> None:
    server, patient = world.server, world.patient
    url = f"{server.url}/medicine/request/"
    body = {"pharmacy": world.pharmacy.id, "quantity": 1, "medicine_name": "Ibuprofen"}
    before = db_snapshot(server)
    assert_error(httpx.post(url, json=body, headers=patient.headers), 415, "unsupported_media_type")
    assert_error(
        httpx.post(url, content=b"pharmacy=1", headers={**patient.headers, "content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    no_token = httpx.post(url, data={k: str(v) for k, v in body.items()})
    assert_error(no_token, 401, "unauthorized")
    bad_token = httpx.post(
        url, data={k: str(v) for k, v in body.items()}, headers={"Authorization": "Bearer x.y.z"}
    )
    assert_error(bad_token, 401, "unauthorized")
    refresh_as_access = httpx.post(
        url, data={k: str(v) for k, v in body.items()}, headers={"Authorization": f"Bearer {patient.refresh}"}
    )
    assert_error(refresh_as_access, 401, "unauthorized")
    other_patient = post_request(
        server, patient, pharmacy=world.pharmacy.id, medicine_name="X", patient=world.other_patient.id
    )
    assert_error(other_patient, 403, "forbidden")
    by_pharmacy = post_request(server, world.pharmacy, pharmacy=world.other_pharmacy.id, medicine_name="X")
    assert_error(by_pharmacy, 403, "forbidden")
    assert db_snapshot(server) == before
    # the caller's own id in `patient` is fine
    own = post_request(server, patient, pharmacy=world.pharmacy.id, medicine_name="X", patient=patient.id)
    assert own.status_code == 201, own.text


def test_oversized_image_is_413_and_stores_nothing(small: World) -> None:
    server = small.server
    blob = png()[:16] + bytes(5000 - 16)  # PNG-headed, 5000 bytes: over the 2000-byte limit
    before = db_snapshot(server)
    response = post_request(server, small.patient, pharmacy=small.pharmacy.id, image=blob, medicine_name="X")
    assert_error(response, 413, "payload_too_large", {"image"})
    assert db_snapshot(server) == before
    fits = post_request(server, small.patient, pharmacy=small.pharmacy.id, image=png(), medicine_name="X")
    assert fits.status_code == 201, fits.text


def test_declared_huge_upload_is_413_before_the_body_is_read(small: World) -> None:
    server = small.server
    before = db_snapshot(server)
    boundary = "medreqboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="pharmacy"\r\n\r\n{small.pharmacy.id}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="quantity"\r\n\r\n1\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="rx.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body = head + png()[:16] + bytes(400_000) + f"\r\n--{boundary}--\r\n".encode()
    response = httpx.post(
        f"{server.url}/medicine/request/",
        content=body,
        headers={**small.patient.headers, "content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    assert_error(response, 413, "payload_too_large")
    assert db_snapshot(server) == before


def test_streamed_30_mb_upload_is_cut_off_with_413(small: World) -> None:
    server = small.server
    before = db_snapshot(server)
    boundary = "medreqstream"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="pharmacy"\r\n\r\n{small.pharmacy.id}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="quantity"\r\n\r\n1\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="rx.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode() + png()[:16]
        chunk = bytes(64 * 1024)
        for _ in range(30 * 16):  # 30 MiB
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    started = time.monotonic()
    response = httpx.post(
        f"{server.url}/medicine/request/",
        content=body(),  # a generator: no Content-Length, chunked transfer encoding
        headers={**small.patient.headers, "content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert_error(response, 413, "payload_too_large")
    assert elapsed < 10, elapsed
    assert db_snapshot(server) == before
    assert not list((server.data_dir / "media").rglob(".upload-*"))
    # the server is still healthy afterwards
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_chunked_upload_gets_413_before_the_client_finishes_sending(small: World) -> None:
    """Raw socket: send 1 MiB of a body that never ends; the 413 must come anyway."""
    server = small.server
    before = db_snapshot(server)
    boundary = "medreqraw"
    head = (
        f"POST /medicine/request/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {small.patient.access}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="pharmacy"\r\n\r\n{small.pharmacy.id}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="rx.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + png()[:16]

    def chunk(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + chunk(part))
        for _ in range(16):  # 1 MiB, far past 2000 bytes + the form overhead; no terminating chunk
            sock.sendall(chunk(bytes(64 * 1024)))
        sock.settimeout(5)
        received = b""
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            assert data, received
            received += data
    status_line = received.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 413"), received[:300]
    assert db_snapshot(server) == before


@pytest.mark.parametrize(
    ("content", "filename", "extension", "content_type"),
    [
        (PDF, "prescription.pdf", "pdf", "application/pdf"),
        (WEBP, "scan.webp", "webp", "image/webp"),
        (JPEG, "photo.jpg", "jpg", "image/jpeg"),
        (png(), "photo.png", "png", "image/png"),
        (png(), "misnamed.pdf", "png", "image/png"),  # sniffed from the bytes, not the name
        (JPEG, "no-extension", "jpg", "image/jpeg"),
    ],
    ids=["pdf", "webp", "jpeg", "png", "png-named-pdf", "jpeg-without-extension"],
)
def test_prescription_of_every_allowed_type_is_accepted(
    world: World, content: bytes, filename: str, extension: str, content_type: str
) -> None:
    created = post_request(
        world.server, world.patient, pharmacy=world.pharmacy.id, image=content, image_name=filename
    )
    assert created.status_code == 201, created.text
    image_url = created.json()["data"]["image_url"]
    assert image_url.split("?")[0].endswith(f".{extension}")
    assert filename not in image_url
    fetched = httpx.get(image_url)
    assert fetched.status_code == 200
    assert fetched.content == content
    assert fetched.headers["content-type"] == content_type


# --- POST /medicine/response/ --------------------------------------------------------------------


def test_response_with_bad_fields_is_422_and_changes_nothing(world: World) -> None:
    server, pharmacy = world.server, world.pharmacy
    request_id = pending_request(world)
    cases: list[tuple[str, dict[str, Any], set[str]]] = [
        ("missing request_id", {"request_id": None}, {"request_id"}),
        ("request_id abc", {"request_id": "abc"}, {"request_id"}),
        ("request_id 0", {"request_id": 0}, {"request_id"}),
        ("missing status", {"status": None}, {"status"}),
        ("status MAYBE", {"status": "MAYBE"}, {"status"}),
        ("status in lower case", {"status": "accepted"}, {"status"}),
        ("status PENDING", {"status": "PENDING"}, {"status"}),
        ("status CANCELLED", {"status": "CANCELLED"}, {"status"}),
        ("text_message of 2001 chars", {"text_message": "t" * 2001}, {"text_message"}),
    ]
    before = db_snapshot(server)
    for label, overrides, fields in cases:
        sent = {"request_id": request_id, "status": "ACCEPTED", **overrides}
        response = post_response(server, pharmacy, **sent)
        assert_error(response, 422, "validation_error", fields, label=label)
        assert db_snapshot(server) == before, label
    assert detail(world, request_id, pharmacy)["status"] == "PENDING"
    at_limit = post_response(server, pharmacy, request_id=request_id, text_message="t" * 2000)
    assert at_limit.status_code == 200, at_limit.text


def test_response_by_the_wrong_caller_or_to_an_unknown_request_is_refused(world: World) -> None:
    server = world.server
    request_id = pending_request(world)
    before = db_snapshot(server)
    unknown = assert_error(post_response(server, world.pharmacy, request_id=987654), 404, "not_found")
    # another pharmacy's request is exactly as absent as an unknown one (docs/protocol.md §3)
    others = assert_error(
        post_response(server, world.other_pharmacy, request_id=request_id), 404, "not_found"
    )
    assert others["message"] == unknown["message"].replace("987654", str(request_id))
    assert_error(post_response(server, world.patient, request_id=request_id), 403, "forbidden")
    with_audio = post_response(server, world.other_pharmacy, request_id=request_id, audio=wav())
    assert_error(with_audio, 404, "not_found")
    no_token = httpx.post(
        f"{server.url}/medicine/response/", data={"request_id": str(request_id), "status": "ACCEPTED"}
    )
    assert_error(no_token, 401, "unauthorized")
    as_json = httpx.post(
        f"{server.url}/medicine/response/",
        json={"request_id": request_id, "status": "ACCEPTED"},
        headers=world.pharmacy.headers,
    )
    assert_error(as_json, 415, "unsupported_media_type")
    assert db_snapshot(server) == before
    assert detail(world, request_id, world.patient)["status"] == "PENDING"


def test_answering_twice_is_409_and_keeps_the_first_answer(world: World) -> None:
    server = world.server
    request_id = pending_request(world)
    audio = wav()
    first = post_response(
        server, world.pharmacy, request_id=request_id, status="ACCEPTED", text_message="Ready", audio=audio
    )
    assert first.status_code == 200, first.text
    first_response = detail(world, request_id, world.patient)["response"]
    before = db_snapshot(server)
    for status, audio_again in (("REJECTED", None), ("ACCEPTED", wav(0.2)), ("REJECTED", wav(0.2))):
        again = post_response(
            server,
            world.pharmacy,
            request_id=request_id,
            status=status,
            text_message="Changed my mind",
            audio=audio_again,
        )
        error = assert_error(again, 409, "conflict")
        assert "ACCEPTED" in error["message"]
        assert db_snapshot(server) == before
    now = detail(world, request_id, world.patient)["response"]
    assert (now["status"], now["message"], now["responded_at"]) == (
        first_response["status"],
        first_response["message"],
        first_response["responded_at"],
    )
    assert httpx.get(now["audio_url"]).content == audio


def test_response_with_bad_audio_is_refused_by_its_bytes(world: World) -> None:
    server = world.server
    request_id = pending_request(world)
    cases: list[tuple[str, bytes, str, int, str]] = [
        ("PNG named reply.wav", png(), "reply.wav", 415, "unsupported_media_type"),
        ("PDF named reply.mp3", PDF, "reply.mp3", 415, "unsupported_media_type"),
        ("text named reply.ogg", TEXT, "reply.ogg", 415, "unsupported_media_type"),
        ("empty file", b"", "reply.wav", 422, "validation_error"),
    ]
    before = db_snapshot(server)
    for label, content, filename, status, code in cases:
        response = post_response(
            server, world.pharmacy, request_id=request_id, audio=content, audio_name=filename
        )
        assert_error(response, status, code, {"audio"}, label=label)
        assert db_snapshot(server) == before, label
    assert detail(world, request_id, world.pharmacy)["status"] == "PENDING"


def test_oversized_audio_is_413_and_changes_nothing(small: World) -> None:
    request_id = pending_request(small)
    big = wav(seconds=1.0)  # 16 kB of WAV: over the 2000-byte limit
    assert len(big) > SMALL_LIMIT
    before = db_snapshot(small.server)
    response = post_response(small.server, small.pharmacy, request_id=request_id, audio=big)
    assert_error(response, 413, "payload_too_large", {"audio"})
    assert db_snapshot(small.server) == before
    assert detail(small, request_id, small.patient)["status"] == "PENDING"


@pytest.mark.parametrize(
    ("content", "filename", "extension", "content_type"),
    [
        (OGG, "reply.ogg", "ogg", "audio/ogg"),
        (MP3, "reply.mp3", "mp3", "audio/mpeg"),
        (wav(), "reply.wav", "wav", "audio/wav"),
        (MP3, "reply.wav", "mp3", "audio/mpeg"),  # sniffed, not named
    ],
    ids=["ogg", "mp3", "wav", "mp3-named-wav"],
)
def test_answer_audio_of_allowed_types_is_accepted(
    world: World, content: bytes, filename: str, extension: str, content_type: str
) -> None:
    request_id = pending_request(world)
    answered = post_response(
        world.server, world.pharmacy, request_id=request_id, audio=content, audio_name=filename
    )
    assert answered.status_code == 200, answered.text
    audio_url = answered.json()["data"]["response"]["audio_url"]
    assert audio_url.split("?")[0].endswith(f".{extension}")
    fetched = httpx.get(audio_url)
    assert fetched.status_code == 200
    assert fetched.content == content
    assert fetched.headers["content-type"] == content_type
