"""`SyncMedreqClient` is derived from `MedreqClient`, not restated: every REST method is there,
with the async one's signature, and runs on the sync client's own loop. No server: the REST
calls go to an `httpx.MockTransport`."""

from __future__ import annotations

import gc
import inspect

import httpx
import pytest

from medreq.client import MedreqClient, NotFound, SyncMedreqClient

# the async client's methods that are not REST calls, so have no blocking twin
NOT_REST = {"aclose", "ensure_fresh_token", "ws_path", "events"}


def request_row(n: int) -> dict[str, object]:
    party = {"id": 1, "name": "x"}
    return {
        "id": n,
        "patient": party,
        "pharmacy": party,
        "quantity": 1,
        "status": "PENDING",
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:00+00:00",
    }


def pages(request: httpx.Request) -> httpx.Response:
    """Requests 1..5 in pages of two, then 404 for anything else."""
    if request.url.path == "/medicine/request/":
        start = int(request.url.params.get("cursor") or 0)
        rows = [request_row(n) for n in range(start + 1, min(start + 2, 5) + 1)]
        more = start + 2 < 5
        return httpx.Response(200, json={"results": rows, "next": str(start + 2) if more else None})
    return httpx.Response(404, json={"error": {"code": "not_found", "message": "no such request"}})


def test_every_rest_method_of_the_async_client_has_a_blocking_twin() -> None:
    for name, member in inspect.getmembers(MedreqClient):
        if name.startswith("_") or name in NOT_REST:
            continue
        if inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member):
            assert name in vars(SyncMedreqClient), f"SyncMedreqClient lacks {name}"


def test_a_blocking_method_keeps_the_async_signature() -> None:
    with SyncMedreqClient("http://medreq.test") as client:
        assert inspect.signature(client.respond) == inspect.signature(client.client.respond)
        assert client.respond.__doc__ == MedreqClient.respond.__doc__


def test_blocking_calls_run_to_the_end_and_raise_the_server_errors() -> None:
    with SyncMedreqClient("http://medreq.test", transport=httpx.MockTransport(pages)) as client:
        assert [r.id for r in client.iter_requests(page_size=2)] == [1, 2, 3, 4, 5]
        assert [r.id for r in client.iter_requests(limit=3, page_size=2)] == [1, 2, 3]
        assert client.list_requests(limit=2).next == "2"
        with pytest.raises(NotFound):
            client.get_request(9)


def test_an_iterator_left_early_is_closed_on_the_loop() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.params.get("cursor") or 0))
        return pages(request)

    with SyncMedreqClient("http://medreq.test", transport=httpx.MockTransport(handler)) as client:
        items = client.iter_requests(page_size=2)
        assert next(items).id == 1
        items.close()  # type: ignore[attr-defined]
        assert seen == ["0"]  # nothing fetched past what was asked for
        leftover = client.iter_requests(page_size=2)
        assert next(leftover).id == 1
    del leftover  # collected after close(): the runner already shut its async generators down
    gc.collect()
