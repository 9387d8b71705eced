"""Private media (docs/protocol.md §3 "Media"): a signed, unexpired URL or a participant's bearer token
opens a file; nothing else does, and no path ever reaches outside the media folders."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .conftest import Account, ServerProcess, make_account, png, wav
from .wire import error_code, post_request, post_response

pytestmark = pytest.mark.shared_server

STORED_NAME = re.compile(r"^[A-Za-z0-9_-]{22}\.(png|wav)$")
UPLOADED_IMAGE_NAME = "alice-smith-prescription.png"
UPLOADED_AUDIO_NAME = "pharmacist-voice-note.wav"


@dataclass
class Scene:
    server: ServerProcess
    patient: Account
    other_patient: Account
    pharmacy: Account
    other_pharmacy: Account
    image: bytes
    audio: bytes
    image_url: str
    audio_url: str
    other_image_url: str  # the other patient's prescription, at the other pharmacy


def build_scene(server: ServerProcess) -> Scene:
    patient = make_account(server.url, "patient", name="Alice")
    other_patient = make_account(server.url, "patient", name="Bob")
    pharmacy = make_account(server.url, "pharmacy", name="Pharm A")
    other_pharmacy = make_account(server.url, "pharmacy", name="Pharm B")
    image, audio = png(3, 3), wav(0.05)
    created = post_request(server, patient, pharmacy=pharmacy.id, image=image, image_name=UPLOADED_IMAGE_NAME)
    assert created.status_code == 201, created.text
    answered = post_response(
        server, pharmacy, request_id=created.json()["request_id"], audio=audio, audio_name=UPLOADED_AUDIO_NAME
    )
    assert answered.status_code == 200, answered.text
    other = post_request(server, other_patient, pharmacy=other_pharmacy.id, image=png(4, 4))
    assert other.status_code == 201, other.text
    return Scene(
        server,
        patient,
        other_patient,
        pharmacy,
        other_pharmacy,
        image,
        audio,
        created.json()["data"]["image_url"],
        answered.json()["data"]["response"]["audio_url"],
        other.json()["data"]["image_url"],
    )


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    server = ServerProcess(
        tmp_path_factory.mktemp("media") / "data", env={"MEDREQ_RATE_LIMIT_ENABLED": "false"}
    )
    server.start()
    try:
        yield build_scene(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def expired_scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """A server whose media URLs are born expired."""
    server = ServerProcess(
        tmp_path_factory.mktemp("media-expired") / "data",
        env={"MEDREQ_RATE_LIMIT_ENABLED": "false", "MEDREQ_MEDIA_URL_TTL": "-5"},
    )
    server.start()
    try:
        yield build_scene(server)
    finally:
        server.stop()


def split(url: str) -> tuple[str, str, str, str]:
    """(path without query, name, exp, sig)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return parts.path, parts.path.rsplit("/", 1)[-1], query["exp"][0], query["sig"][0]


def issued_to(url: str) -> str:
    """The account a media link was issued to (its `to`)."""
    return parse_qs(urlsplit(url).query)["to"][0]


def bare(url: str) -> str:
    return url.split("?", 1)[0]


def assert_refused(response: httpx.Response, statuses: tuple[int, ...] = (403,)) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text)
    codes = {401: "unauthorized", 403: "forbidden", 404: "not_found"}
    assert error_code(response) == codes[response.status_code]
    assert "Traceback" not in response.text
    return dict(response.json()["error"])


# --- signatures -----------------------------------------------------------------------------------


def test_signed_urls_open_without_a_token(scene: Scene) -> None:
    for url, content, content_type in (
        (scene.image_url, scene.image, "image/png"),
        (scene.audio_url, scene.audio, "audio/wav"),
    ):
        assert url.startswith(scene.server.url + "/media/")
        response = httpx.get(url)
        assert response.status_code == 200, response.text
        assert response.content == content
        assert response.headers["content-type"] == content_type
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "private" in response.headers["cache-control"]
    assert "/media/prescriptions/" in scene.image_url
    assert "/media/pharmacy-audio/" in scene.audio_url


def test_tampered_signature_or_expiry_is_403(scene: Scene) -> None:
    path, _name, exp, sig = split(scene.image_url)
    to = issued_to(scene.image_url)
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    _, _, other_exp, other_sig = split(scene.other_image_url)
    base = f"{scene.server.url}{path}?to={to}&"
    bare_base = scene.server.url + path
    cases = [
        # the account it was issued to is signed: another participant's, none, or garbage
        f"{bare_base}?to={scene.pharmacy.id}&exp={exp}&sig={sig}",
        f"{bare_base}?exp={exp}&sig={sig}",
        f"{bare_base}?to=&exp={exp}&sig={sig}",
        f"{bare_base}?to=x{to}&exp={exp}&sig={sig}",
        f"{base}exp={exp}&sig={flipped}",
        f"{base}exp={exp}&sig={sig.upper()}",
        f"{base}exp={exp}&sig={sig[:-2]}",
        f"{base}exp={exp}&sig={sig}00",
        f"{base}exp={exp}&sig=",
        f"{base}exp={exp}&sig={other_sig}",  # another file's signature
        f"{base}exp={other_exp}&sig={other_sig}",
        f"{base}exp={int(exp) + 3600}&sig={sig}",  # extended expiry: the signature covers exp
        f"{base}exp=never&sig={sig}",
        f"{base}exp=&sig={sig}",
        # non-ASCII signatures: hmac.compare_digest raised TypeError on them (a 500, found by schemathesis)
        f"{base}exp={exp}&sig={sig[:-1]}%C3%A9",
        f"{base}exp={exp}&sig=%F3%82%83%BF",
        f"{base}exp=2&sig=c%F3%82%83%BF%28%3A",
    ]
    for url in cases:
        error = assert_refused(httpx.get(url))
        assert error["message"], url
    assert httpx.get(scene.image_url).status_code == 200  # the genuine URL still works


def test_tampered_name_is_refused(scene: Scene) -> None:
    path, name, exp, sig = split(scene.image_url)
    to = issued_to(scene.image_url)
    folder = path.rsplit("/", 1)[0]
    _, other_name, _, _ = split(scene.other_image_url)
    stem, ext = name.rsplit(".", 1)
    renamed = [
        stem[:-1] + ("A" if stem[-1] != "A" else "B") + "." + ext,  # one character off
        stem + ".jpg",  # another extension
        stem + ".png.png",
        other_name,  # a real file, but not the one signed
    ]
    for candidate in renamed:
        response = httpx.get(f"{scene.server.url}{folder}/{candidate}?to={to}&exp={exp}&sig={sig}")
        assert_refused(response, (403, 404))
        assert response.content != png(4, 4)
    # the other real file with this signature must be refused as forbidden, not served
    assert httpx.get(f"{scene.server.url}{folder}/{other_name}?to={to}&exp={exp}&sig={sig}").status_code == 403
    # an image's signature does not open the same name in the audio collection, and vice versa
    _audio_path, audio_name, audio_exp, audio_sig = split(scene.audio_url)
    audio_to = issued_to(scene.audio_url)
    swapped = [
        f"{scene.server.url}/media/pharmacy-audio/{name}?to={to}&exp={exp}&sig={sig}",
        f"{scene.server.url}/media/prescriptions/{audio_name}?to={audio_to}&exp={audio_exp}&sig={audio_sig}",
    ]
    for url in swapped:
        assert_refused(httpx.get(url), (403, 404))


def test_missing_signature_and_no_token_is_403(scene: Scene) -> None:
    path, _name, exp, sig = split(scene.image_url)
    base = scene.server.url + path
    for url in (base, f"{base}?exp={exp}", f"{base}?sig={sig}", f"{base}?token={scene.patient.access}"):
        error = assert_refused(httpx.get(url))
        assert error["code"] == "forbidden"
    assert_refused(httpx.get(bare(scene.audio_url)))


def test_expired_url_is_403_saying_expired(expired_scene: Scene) -> None:
    for url in (expired_scene.image_url, expired_scene.audio_url):
        _path, _name, exp, _sig = split(url)
        assert int(exp) < time.time()
        error = assert_refused(httpx.get(url))
        assert "expired" in error["message"]


def test_participant_token_opens_an_expired_url(expired_scene: Scene) -> None:
    """§3: a valid signature *or* a participant's token opens the file; an expired URL that a
    participant's app still holds must not lock the participant out."""
    s = expired_scene
    assert httpx.get(bare(s.image_url), headers=s.patient.headers).status_code == 200
    response = httpx.get(s.image_url, headers=s.patient.headers)
    assert response.status_code == 200, response.text
    assert response.content == s.image


# --- bearer tokens ------------------------------------------------------------------------------------


def test_bare_url_opens_with_a_participants_token_only(scene: Scene) -> None:
    for url, content in ((scene.image_url, scene.image), (scene.audio_url, scene.audio)):
        for participant in (scene.patient, scene.pharmacy):
            response = httpx.get(bare(url), headers=participant.headers)
            assert response.status_code == 200, response.text
            assert response.content == content
        for stranger in (scene.other_patient, scene.other_pharmacy):
            error = assert_refused(httpx.get(bare(url), headers=stranger.headers))
            assert error["code"] == "forbidden"
        # a token that is not a valid access token opens nothing
        for token in ("garbage", scene.patient.refresh):
            response = httpx.get(bare(url), headers={"Authorization": f"Bearer {token}"})
            assert_refused(response, (401, 403))


def test_participant_token_also_works_on_the_expired_scene_bare_url(expired_scene: Scene) -> None:
    s = expired_scene
    for participant in (s.patient, s.pharmacy):
        response = httpx.get(bare(s.audio_url), headers=participant.headers)
        assert response.status_code == 200, response.text
        assert response.content == s.audio
    assert_refused(httpx.get(bare(s.audio_url), headers=s.other_patient.headers))


# --- paths ----------------------------------------------------------------------------------------------


def raw_get(server: ServerProcess, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET `target` exactly as written (httpx would normalise dot segments away)."""
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def forged_sig(server: ServerProcess, kind: str, name: str, to: int, exp: int) -> str:
    """A signature made with the server's own key: what an attacker with a valid signer would have."""
    secret = (server.data_dir / "jwt-secret").read_text().strip()
    key = hashlib.sha256(b"medreq-media\0" + secret.encode()).digest()
    return hmac.new(key, f"{kind}/{name}/{to}/{exp}".encode(), hashlib.sha256).hexdigest()[:32]


def test_path_tricks_never_reach_the_database_or_the_secret(scene: Scene) -> None:
    server = scene.server
    secret = (server.data_dir / "jwt-secret").read_text().strip().encode()
    _path, name, exp, sig = split(scene.image_url)
    targets = [
        "/media/prescriptions/..%2F..%2Fmedreq.db",
        "/media/prescriptions/..%2f..%2fmedreq.db",
        "/media/prescriptions/..%2F..%2Fjwt-secret",
        "/media/prescriptions/%2e%2e%2f%2e%2e%2fmedreq.db",
        "/media/prescriptions/../medreq.db",
        "/media/prescriptions/../../medreq.db",
        "/media/prescriptions/../../jwt-secret",
        f"/media/prescriptions/{name}/../../../medreq.db",
        "/media/../medreq.db",
        "/media/..%2Fmedreq.db",
        "/media/..%2F..%2Fmedreq.db/x",
        "/media/%2e%2e/medreq.db",
        "/media/other/x.png",
        f"/media/other/{name}",
        "/media/prescriptions/..",
        "/media/prescriptions/...",
        "/media/prescriptions/medreq.db",
        "/media/prescriptions/jwt-secret",
        "/media/prescriptions/.jwt-secret",
        "/media/prescriptions/..%5C..%5Cmedreq.db",
        "/media/prescriptions/%2Fetc%2Fpasswd",
        f"/media/prescriptions/.{name}",
        f"/media/prescriptions/{name}.",
        f"/media/prescriptions/{name}%00.png",
    ]
    auths: list[tuple[str, dict[str, str]]] = [
        ("", {}),
        ("", scene.patient.headers),
        (f"?to={scene.patient.id}&exp={exp}&sig={sig}", {}),
        (f"?to={scene.patient.id}&exp={exp}&sig={sig}", scene.patient.headers),
    ]
    for target in targets:
        for query, headers in auths:
            status, body = raw_get(server, target + query, headers)
            assert status in (403, 404), (target, query, status, body[:200])
            assert b"SQLite format 3" not in body, target
            assert secret not in body, target
            assert b"root:" not in body, target
            assert json.loads(body)["error"]["code"] in ("forbidden", "not_found"), target


def test_even_a_valid_signature_cannot_name_a_file_outside_the_store(scene: Scene) -> None:
    server = scene.server
    secret = (server.data_dir / "jwt-secret").read_text().strip().encode()
    exp = int(time.time()) + 600
    names = ["..", "...", "medreq.db", "jwt-secret", "medreq.db-wal", ".upload-0000"]
    for name in names:
        sig = forged_sig(server, "image", name, scene.patient.id, exp)
        status, body = raw_get(server, f"/media/prescriptions/{name}?to={scene.patient.id}&exp={exp}&sig={sig}")
        assert status == 404, (name, status, body[:200])
        assert b"SQLite format 3" not in body
        assert secret not in body
    # the forging helper is right: it opens a genuine file
    _path, real_name, _exp, _sig = split(scene.image_url)
    status, body = raw_get(
        server,
        f"/media/prescriptions/{real_name}?to={scene.patient.id}&exp={exp}"
        f"&sig={forged_sig(server, 'image', real_name, scene.patient.id, exp)}",
    )
    assert status == 200
    assert body == scene.image


# --- stored names ---------------------------------------------------------------------------------------


def test_stored_names_are_server_generated(scene: Scene) -> None:
    media = scene.server.data_dir / "media"
    stored = sorted(p for p in media.rglob("*") if p.is_file())
    assert {p.parent.name for p in stored} == {"prescriptions", "pharmacy-audio"}
    assert len(stored) == 3
    for path in stored:
        assert STORED_NAME.match(path.name), path.name
        for word in ("alice", "smith", "prescription", "pharmacist", "voice", "note"):
            assert word not in path.name.lower()
    image_name = split(scene.image_url)[1]
    audio_name = split(scene.audio_url)[1]
    assert (media / "prescriptions" / image_name).read_bytes() == scene.image
    assert (media / "pharmacy-audio" / audio_name).read_bytes() == scene.audio
    for url in (scene.image_url, scene.audio_url):
        assert UPLOADED_IMAGE_NAME not in url
        assert UPLOADED_AUDIO_NAME not in url
        assert STORED_NAME.match(split(url)[1])
    # two uploads of the same bytes under the same name get different stored names
    again = post_request(
        scene.server,
        scene.patient,
        pharmacy=scene.pharmacy.id,
        image=scene.image,
        image_name=UPLOADED_IMAGE_NAME,
    )
    assert again.status_code == 201, again.text
    assert split(again.json()["data"]["image_url"])[1] != image_name
