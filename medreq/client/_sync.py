"""`SyncMedreqClient`: the REST half of `MedreqClient` for code without an event loop
(scripts, Locust users). It runs the async client on a private event loop; live events
need the async API (`MedreqClient.connect`)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

from medreq.protocol import (
    AccountOut,
    PharmacyOut,
    PushSubscriptionOut,
    RequestCreatedOut,
    RequestDetailOut,
    RequestListOut,
    RequestOut,
    ResponseSentOut,
    TokenOut,
)

from ._acks import MessagePosted
from ._client import MedreqClient
from ._upload import FileInput, Progress

_T = TypeVar("_T")


class SyncMedreqClient:
    """Blocking twin of `MedreqClient`'s REST methods (same arguments, same results)."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        self.client = MedreqClient(base_url, **kwargs)

    def __enter__(self) -> SyncMedreqClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._run(self.client.aclose())
        finally:
            self._runner.close()

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self._runner.run(coro)

    @property
    def access_token(self) -> str | None:
        return self.client.access_token

    @property
    def account(self) -> AccountOut | None:
        return self.client.account

    def register(
        self,
        username: str,
        password: str,
        role: Literal["patient", "pharmacy"],
        name: str,
        phone: str | None = None,
    ) -> AccountOut:
        return self._run(self.client.register(username, password, role, name, phone))

    def login(self, username: str, password: str) -> TokenOut:
        return self._run(self.client.login(username, password))

    def refresh(self) -> str:
        return self._run(self.client.refresh())

    def me(self) -> AccountOut:
        return self._run(self.client.me())

    def pharmacies(self) -> list[PharmacyOut]:
        return self._run(self.client.pharmacies())

    def push_subscriptions(self) -> list[PushSubscriptionOut]:
        return self._run(self.client.push_subscriptions())

    def remove_push_subscription(self, subscription_id: int) -> None:
        self._run(self.client.remove_push_subscription(subscription_id))

    def create_request(
        self, pharmacy: int | Sequence[int], quantity: int, image: FileInput | None = None, **kwargs: Any
    ) -> RequestCreatedOut:
        return self._run(self.client.create_request(pharmacy, quantity, image, **kwargs))

    def respond(
        self,
        request_id: int,
        status: Literal["ACCEPTED", "REJECTED"],
        text_message: str | None = None,
        *,
        audio: FileInput | None = None,
        filename: str | None = None,
        progress: Progress | None = None,
        price: str | None = None,
        currency: str | None = None,
        ready_at: str | None = None,
    ) -> ResponseSentOut:
        return self._run(
            self.client.respond(
                request_id,
                status,
                text_message,
                audio=audio,
                filename=filename,
                progress=progress,
                price=price,
                currency=currency,
                ready_at=ready_at,
            )
        )

    def choose(self, request_id: int) -> RequestOut:
        return self._run(self.client.choose(request_id))

    def list_requests(
        self,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        *,
        group: int | None = None,
    ) -> RequestListOut:
        return self._run(self.client.list_requests(status, limit, cursor, group=group))

    def iter_requests(
        self, status: str | None = None, *, limit: int | None = None, group: int | None = None
    ) -> Iterator[RequestOut]:
        cursor: str | None = None
        seen = 0
        while limit is None or seen < limit:
            page = self.list_requests(
                status, None if limit is None else min(100, limit - seen), cursor, group=group
            )
            for item in page.results[: None if limit is None else limit - seen]:
                seen += 1
                yield item
            if not page.next or not page.results:
                return
            cursor = page.next

    def get_request(self, request_id: int) -> RequestDetailOut:
        return self._run(self.client.get_request(request_id))

    def cancel_request(self, request_id: int) -> RequestOut:
        return self._run(self.client.cancel_request(request_id))

    def post_message(self, request_id: int, text: str) -> MessagePosted:
        return self._run(self.client.post_message(request_id, text))

    def download(self, url: str) -> bytes:
        return self._run(self.client.download(url))

    def download_to(self, url: str, dest: str | Path) -> Path:
        return self._run(self.client.download_to(url, dest))
