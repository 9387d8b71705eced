"""Who sees which requests (docs/protocol.md §3 GET /medicine/request/ and /{id}/): a patient its own,
a pharmacy those addressed to it; newest first, filtered by status, paged by cursor."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from .conftest import Account, ServerProcess, make_account
from .wire import db_snapshot, error_code, post_request, post_response

pytestmark = pytest.mark.shared_server

ROUNDS = 3


@dataclass
class Scene:
    """Two patients × two pharmacies, ROUNDS requests per pair, created interleaved."""

    server: ServerProcess
    patients: list[Account]
    pharmacies: list[Account]
    # request id → (patient index, pharmacy index)
    owner: dict[int, tuple[int, int]] = field(default_factory=dict)
    status: dict[int, str] = field(default_factory=dict)

    def ids(
        self, *, patient: int | None = None, pharmacy: int | None = None, status: str | None = None
    ) -> list[int]:
        """Expected ids, newest first."""
        return sorted(
            (
                rid
                for rid, (pa, ph) in self.owner.items()
                if (patient is None or pa == patient)
                and (pharmacy is None or ph == pharmacy)
                and (status is None or self.status[rid] == status)
            ),
            reverse=True,
        )


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    server = ServerProcess(
        tmp_path_factory.mktemp("visibility") / "data", env={"MEDREQ_RATE_LIMIT_ENABLED": "false"}
    )
    server.start()
    try:
        patients = [make_account(server.url, "patient", name=f"Patient {i}") for i in range(2)]
        pharmacies = [make_account(server.url, "pharmacy", name=f"Pharmacy {i}") for i in range(2)]
        scene = Scene(server, patients, pharmacies)
        for round_ in range(ROUNDS):
            for pa, patient in enumerate(patients):
                for ph, pharmacy in enumerate(pharmacies):
                    created = post_request(
                        server,
                        patient,
                        pharmacy=pharmacy.id,
                        quantity=round_ + 1,
                        medicine_name=f"Med {round_}",
                    )
                    assert created.status_code == 201, created.text
                    rid = created.json()["request_id"]
                    scene.owner[rid] = (pa, ph)
                    scene.status[rid] = "PENDING"
        # each pharmacy accepts the oldest request of each pair and rejects the second
        for rid in sorted(scene.owner):
            pa, ph = scene.owner[rid]
            answered = [r for r in scene.ids(patient=pa, pharmacy=ph) if scene.status[r] != "PENDING"]
            if len(answered) < 2:
                status = "ACCEPTED" if not answered else "REJECTED"
                response = post_response(server, pharmacies[ph], request_id=rid, status=status)
                assert response.status_code == 200, response.text
                scene.status[rid] = status
        yield scene
    finally:
        server.stop()


def list_requests(server: ServerProcess, account: Account, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}/medicine/request/", params=params, headers=account.headers, timeout=10)


def listed_ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["results"]]


def walk(server: ServerProcess, account: Account, limit: int, **params: Any) -> list[list[int]]:
    """Every page from the first to the one whose `next` is null."""
    pages: list[list[int]] = []
    cursor = None
    for _ in range(100):
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = list_requests(server, account, **query)
        pages.append(listed_ids(response))
        assert len(pages[-1]) <= limit
        cursor = response.json()["next"]
        if cursor is None:
            return pages
        assert isinstance(cursor, str)
        assert cursor
    raise AssertionError("pagination never ended")


def assert_error(response: httpx.Response, status: int, code: str, fields: set[str] | None = None) -> None:
    assert response.status_code == status, response.text
    assert error_code(response) == code
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "fields"}
    assert error["message"]
    if fields is None:
        assert "fields" not in error, error
    else:
        assert set(error["fields"]) == fields, error


# --- who sees what -------------------------------------------------------------------------------


def test_patient_sees_only_its_own_requests_newest_first(scene: Scene) -> None:
    for pa, patient in enumerate(scene.patients):
        response = list_requests(scene.server, patient)
        assert listed_ids(response) == scene.ids(patient=pa)
        assert len(listed_ids(response)) == ROUNDS * 2
        assert response.json()["next"] is None
        for item in response.json()["results"]:
            assert item["patient"]["id"] == patient.id
            assert item["patient"]["name"] == patient.name
        stamps = [item["created_at"] for item in response.json()["results"]]
        assert stamps == sorted(stamps, reverse=True)


def test_pharmacy_sees_only_requests_addressed_to_it(scene: Scene) -> None:
    for ph, pharmacy in enumerate(scene.pharmacies):
        response = list_requests(scene.server, pharmacy)
        assert listed_ids(response) == scene.ids(pharmacy=ph)
        assert len(listed_ids(response)) == ROUNDS * 2
        assert {item["pharmacy"]["id"] for item in response.json()["results"]} == {pharmacy.id}
        assert {item["patient"]["id"] for item in response.json()["results"]} == {
            p.id for p in scene.patients
        }


def test_account_with_no_requests_sees_an_empty_list(scene: Scene) -> None:
    newcomer = make_account(scene.server.url, "patient")
    new_pharmacy = make_account(scene.server.url, "pharmacy")
    for account in (newcomer, new_pharmacy):
        response = list_requests(scene.server, account)
        assert response.status_code == 200, response.text
        assert response.json() == {"results": [], "next": None}


def test_status_filter_returns_exactly_that_status(scene: Scene) -> None:
    for status in ("PENDING", "ACCEPTED", "REJECTED", "CANCELLED"):
        for pa, patient in enumerate(scene.patients):
            response = list_requests(scene.server, patient, status=status)
            assert listed_ids(response) == scene.ids(patient=pa, status=status), status
            assert {item["status"] for item in response.json()["results"]} <= {status}
        for ph, pharmacy in enumerate(scene.pharmacies):
            response = list_requests(scene.server, pharmacy, status=status)
            assert listed_ids(response) == scene.ids(pharmacy=ph, status=status), status
    # the fixture made some of each answered kind, so the filters were not trivially empty
    assert scene.ids(status="ACCEPTED")
    assert scene.ids(status="REJECTED")
    assert scene.ids(status="PENDING")


def test_answered_requests_carry_their_response_in_the_list(scene: Scene) -> None:
    results = list_requests(scene.server, scene.patients[0]).json()["results"]
    for item in results:
        assert item["status"] == scene.status[item["id"]]
        if item["status"] == "PENDING":
            assert item["response"] is None
        else:
            assert item["response"]["status"] == item["status"]
            assert item["response"]["responded_at"].endswith("+00:00")


# --- pagination -----------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 4, 5, 6, 100])
def test_cursor_pagination_visits_every_request_once_in_order(scene: Scene, limit: int) -> None:
    for pa, patient in enumerate(scene.patients):
        pages = walk(scene.server, patient, limit)
        flat = [rid for page in pages for rid in page]
        assert flat == scene.ids(patient=pa)
        assert all(len(page) == limit for page in pages[:-1])
        assert pages[-1]  # no empty trailing page
    for ph, pharmacy in enumerate(scene.pharmacies):
        flat = [rid for page in walk(scene.server, pharmacy, limit) for rid in page]
        assert flat == scene.ids(pharmacy=ph)


def test_cursor_pagination_combines_with_status_filter(scene: Scene) -> None:
    pharmacy = scene.pharmacies[1]
    pages = walk(scene.server, pharmacy, 1, status="PENDING")
    assert [rid for page in pages for rid in page] == scene.ids(pharmacy=1, status="PENDING")


def test_default_page_is_twenty(scene: Scene) -> None:
    patient = make_account(scene.server.url, "patient")
    pharmacy = scene.pharmacies[0]
    made = []
    for _ in range(21):
        created = post_request(scene.server, patient, pharmacy=pharmacy.id, medicine_name="Bulk")
        assert created.status_code == 201, created.text
        made.append(created.json()["request_id"])
    first = list_requests(scene.server, patient)
    assert listed_ids(first) == sorted(made, reverse=True)[:20]
    second = list_requests(scene.server, patient, cursor=first.json()["next"])
    assert listed_ids(second) == [min(made)]
    assert second.json()["next"] is None


def test_bad_list_queries_are_422_and_change_nothing(scene: Scene) -> None:
    patient = scene.patients[0]

    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"limit": 0}, {"limit"}),
        ({"limit": 101}, {"limit"}),
        ({"limit": -1}, {"limit"}),
        ({"limit": "x"}, {"limit"}),
        ({"limit": "1.5"}, {"limit"}),
        ({"status": "bogus"}, {"status"}),
        ({"status": "pending"}, {"status"}),
        ({"cursor": "garbage!!"}, {"cursor"}),
        ({"cursor": "abc"}, {"cursor"}),
        ({"cursor": b64("before:0")}, {"cursor"}),
        ({"cursor": b64("before:-3")}, {"cursor"}),
        ({"cursor": b64("after:5")}, {"cursor"}),
        ({"cursor": b64("before:x")}, {"cursor"}),
        ({"cursor": "Q" * 101}, {"cursor"}),
        ({"cursor": "\u00e9\u00e9"}, {"cursor"}),
    ]
    before = db_snapshot(scene.server)
    for params, fields in cases:
        response = list_requests(scene.server, patient, **params)
        assert_error(response, 422, "validation_error", fields)
        assert "Traceback" not in response.text
    assert db_snapshot(scene.server) == before
    assert_error(httpx.get(f"{scene.server.url}/medicine/request/"), 401, "unauthorized")


# --- detail -------------------------------------------------------------------------------------------


def test_request_detail_is_for_its_two_participants_only(scene: Scene) -> None:
    server = scene.server
    rid = scene.ids(patient=0, pharmacy=1)[0]
    listed = {item["id"]: item for item in list_requests(server, scene.patients[0]).json()["results"]}[rid]
    for account in (scene.patients[0], scene.pharmacies[1]):
        response = httpx.get(f"{server.url}/medicine/request/{rid}/", headers=account.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["messages"] == []
        assert body["id"] == rid
        assert (body["patient"]["id"], body["pharmacy"]["id"]) == (
            scene.patients[0].id,
            scene.pharmacies[1].id,
        )
        # `unread` is each caller's own (docs/protocol.md §3): the pharmacy has its new_request unread
        assert body["unread"] == (0 if account is scene.patients[0] else 1)
        without_urls = {k: v for k, v in body.items() if k not in ("messages", "image_url", "unread")}
        assert without_urls == {k: v for k, v in listed.items() if k not in ("image_url", "unread")}
    strangers = [scene.patients[1], scene.pharmacies[0]]
    for account in strangers:
        stranger = httpx.get(f"{server.url}/medicine/request/{rid}/", headers=account.headers)
        assert_error(stranger, 404, "not_found")
        assert str(scene.patients[0].id) not in stranger.json()["error"]["message"].replace(str(rid), "")
    # a stranger cannot tell someone else's request from one that does not exist
    missing = httpx.get(f"{server.url}/medicine/request/987654/", headers=strangers[0].headers)
    assert_error(missing, 404, "not_found")
    assert_error(httpx.get(f"{server.url}/medicine/request/{rid}/"), 401, "unauthorized")


def test_ids_beyond_64_bits_are_not_found_not_a_500(scene: Scene) -> None:
    patient = scene.patients[0]
    huge = 10**22
    detail = httpx.get(f"{scene.server.url}/medicine/request/{huge}/", headers=patient.headers)
    cursor = base64.urlsafe_b64encode(f"before:{huge}".encode()).decode().rstrip("=")
    listed = list_requests(scene.server, patient, cursor=cursor)
    wrong = {}
    if detail.status_code != 404:
        wrong["GET /medicine/request/10**22/"] = (detail.status_code, detail.text)
    # a cursor this server never issued: refusing it or reading past it are both fine, crashing is not
    if listed.status_code not in (200, 422):
        wrong["cursor before:10**22"] = (listed.status_code, listed.text)
    elif listed.status_code == 200:
        assert listed_ids(listed) == scene.ids(patient=0)[:20]
    assert not wrong, wrong
