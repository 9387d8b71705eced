"""`MedreqClient`: the async client for every REST endpoint of docs/protocol.md §2 to §3.

Server errors come back as the `medreq.protocol.errors` classes (`Conflict`, `Unauthorized`, …);
an unreachable server as `TransportError`. An expired access token is refreshed once
(``POST /auth/refresh``) and the call retried; ``on_tokens`` hears about every new token
so a caller can persist it. The WebSocket side lives in `_live` (`connect`, `events`); the
URLs and tokens both sides use live in one `_tokens.Session`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from medreq.protocol import (
    AccountOut,
    PharmacyOut,
    PushSubscriptionListOut,
    PushSubscriptionOut,
    RequestCreatedOut,
    RequestDetailOut,
    RequestListOut,
    RequestOut,
    ResponseSentOut,
    TokenOut,
    WebhookAccountOut,
    WebhookDeliveryListOut,
    WebhookDeliveryOut,
)
from medreq.protocol.errors import MedreqError, RateLimited, Unauthorized, error_from_body
from medreq.protocol.events import Event

from ._acks import MessagePosted
from ._backoff import Backoff
from ._errors import TransportError
from ._live import LiveConnection, StateCallback
from ._routes import channel, route
from ._tokens import Session, StoredTokens, TokenCallback
from ._upload import FileInput, Progress, form_fields, open_file

Build = Callable[[ExitStack], dict[str, Any]]
_M = TypeVar("_M", bound=BaseModel)


class MedreqClient:
    """Async client for one medreq server, as one account.

    >>> async with MedreqClient("http://127.0.0.1:8000") as client:
    ...     await client.login("alice", "s3cret-pass")
    ...     async for event in client.events():
    ...         print(event.type, event.event_id)
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        refresh_token: str | None = None,
        timeout: float = 30.0,
        on_tokens: TokenCallback | None = None,
        stored_tokens: StoredTokens | None = None,
        backoff: Backoff | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.session = Session(
            base_url,
            self.refresh,
            access=token,
            refresh_token=refresh_token,
            on_tokens=on_tokens,
            stored_tokens=stored_tokens,
        )
        self.base_url = self.session.base_url
        self.account: AccountOut | None = None
        self.backoff = backoff or Backoff()
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def __aenter__(self) -> MedreqClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def access_token(self) -> str | None:
        return self.session.access

    @access_token.setter
    def access_token(self, value: str | None) -> None:
        self.session.access = value

    @property
    def refresh_token(self) -> str | None:
        return self.session.refresh_token

    @refresh_token.setter
    def refresh_token(self, value: str | None) -> None:
        self.session.refresh_token = value

    @property
    def ws_url(self) -> str:
        """The WebSocket base URL (``ws://`` or ``wss://``) of the server."""
        return self.session.ws_url

    # --- §2 accounts ----------------------------------------------------------------------------

    async def register(
        self,
        username: str,
        password: str,
        role: Literal["patient", "pharmacy"],
        name: str,
        phone: str | None = None,
        *,
        synthetic: bool = False,
    ) -> AccountOut:
        """``POST /auth/register``; ``synthetic``: a simulation account, in a sandbox of its own
        (seen only by other synthetic accounts, removable with `remove_synthetic_account`)."""
        body: dict[str, Any] = {"username": username, "password": password, "role": role, "name": name}
        body["phone"] = phone
        if synthetic:
            body["synthetic"] = True
        return await self._call(AccountOut, *route("register"), auth=False, json=body)

    async def remove_synthetic_account(self) -> None:
        """``DELETE /auth/me``: remove this synthetic account with all its requests and media."""
        await self._send(*route("remove_me"))
        self.account = None

    async def login(self, username: str, password: str) -> TokenOut:
        """``POST /auth/token``: keep the tokens and the account for later calls."""
        body = {"username": username, "password": password}
        tokens = await self._call(TokenOut, *route("token"), auth=False, json=body)
        self.account = tokens.account
        self.session.set_tokens(tokens.access, tokens.refresh)
        return tokens

    async def refresh(self) -> str:
        """``POST /auth/refresh``: a new access token and the next refresh token (both kept; the
        access token returned). The refresh token sent is used up: sent again, the server revokes
        this whole sign-in."""
        if not self.refresh_token:
            raise Unauthorized("session expired and no refresh token: log in again")
        try:
            body = await self._json(*route("refresh"), auth=False, json={"refresh": self.refresh_token})
        except Unauthorized as exc:
            raise Unauthorized(f"session expired, log in again ({exc.message})") from None
        access = str(body["access"])
        self.session.set_tokens(access, str(body.get("refresh") or self.refresh_token))
        return access

    async def me(self) -> AccountOut:
        self.account = await self._call(AccountOut, *route("me"))
        return self.account

    async def set_webhook(
        self, url: str | None, *, payload: Literal["full", "thin"] | None = None
    ) -> WebhookAccountOut:
        """Set (the answer carries the new secret, shown this once) or clear (None) the webhook;
        `payload` "thin" sends ids only (type, event_id, request_id), "full" the event (None: as is)."""
        body: dict[str, str | None] = {"webhook_url": url}
        if payload is not None:
            body["webhook_payload"] = payload
        return await self._call(WebhookAccountOut, *route("set_webhook"), json=body)

    async def webhook_deliveries(self, limit: int = 50) -> list[WebhookDeliveryOut]:
        body = await self._call(
            WebhookDeliveryListOut, *route("webhook_deliveries"), params={"limit": limit}
        )
        return body.results

    async def test_webhook(self) -> WebhookDeliveryOut:
        """Queue a `webhook_test` delivery to the account's webhook."""
        return await self._call(WebhookDeliveryOut, *route("test_webhook"))

    # --- §5 Web Push subscriptions --------------------------------------------------------------

    async def push_subscriptions(self) -> list[PushSubscriptionOut]:
        """``GET /push/subscriptions``: the browsers and devices that get this account's events
        as Web Push notifications, oldest first."""
        body = await self._call(PushSubscriptionListOut, *route("push_subscriptions"))
        return body.results

    async def remove_push_subscription(self, subscription_id: int) -> None:
        """``DELETE /push/subscriptions/{id}``: nothing more is pushed to it (`NotFound` for an id
        that is not one of this account's)."""
        await self._send(*route("remove_push_subscription_by_id", subscription_id=subscription_id))

    async def pharmacies(self) -> list[PharmacyOut]:
        body = await self._json(*route("pharmacies"))
        return [PharmacyOut.model_validate(item) for item in body["results"]]

    # --- §3 medicine requests -------------------------------------------------------------------

    async def create_request(
        self,
        pharmacy: int | Sequence[int],
        quantity: int,
        image: FileInput | None = None,
        *,
        patient: int | None = None,
        medicine_name: str | None = None,
        note: str | None = None,
        idempotency_key: str | None = None,
        filename: str | None = None,
        progress: Progress | None = None,
    ) -> RequestCreatedOut:
        """``POST /medicine/request/`` (multipart); ``image`` is streamed, never read whole.

        ``pharmacy``: one id, or several (docs/protocol.md §3, groups): one request per pharmacy, all in
        one ``group``; the answer's ``requests`` holds them in the order named (``request_id``
        and ``data`` are the first). An ``idempotency_key`` covers the whole group."""
        pharmacies = [pharmacy] if isinstance(pharmacy, int) else list(pharmacy)
        fields = {
            "quantity": quantity,
            "patient": patient,
            "medicine_name": medicine_name,
            "note": note,
        }
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return await self._call(
            RequestCreatedOut,
            *route("create_request"),
            build=_multipart(fields, "image", image, filename, progress, repeated={"pharmacy": pharmacies}),
            headers=headers,
        )

    async def choose(self, request_id: int) -> RequestOut:
        """``POST /medicine/request/{id}/choose/`` (the patient, on an ``ACCEPTED`` request of a
        group): the request comes back with ``chosen`` true, and every other open request of its
        group is cancelled (``cancel_reason`` ``another_pharmacy_chosen``). Choosing the same
        request again is fine; another one of the group once one is chosen is `Conflict`."""
        body = await self._json(*route("choose", request_id=request_id))
        return RequestOut.model_validate(body.get("data", body))

    async def respond(
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
        """``POST /medicine/response/`` (multipart), as the addressed pharmacy; an offer may come
        with it (docs/protocol.md §3, groups): ``price`` a decimal string (``"12.50"``), ``currency``
        ISO 4217, ``ready_at`` ISO 8601 (when it can be picked up)."""
        fields = {
            "request_id": request_id,
            "status": status,
            "text_message": text_message,
            "price": price,
            "currency": currency,
            "ready_at": ready_at,
        }
        return await self._call(
            ResponseSentOut,
            *route("respond"),
            build=_multipart(fields, "audio", audio, filename, progress),
        )

    async def list_requests(
        self,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        *,
        group: int | None = None,
    ) -> RequestListOut:
        """One page of ``GET /medicine/request/`` (newest first); ``group``: only that group's."""
        query = {"status": status, "limit": limit, "cursor": cursor, "group": group}
        params = {k: v for k, v in query.items() if v is not None}
        return await self._call(RequestListOut, *route("list_requests"), params=params)

    async def iter_requests(
        self,
        status: str | None = None,
        *,
        limit: int | None = None,
        page_size: int = 50,
        group: int | None = None,
    ) -> AsyncIterator[RequestOut]:
        """Every request (or the first ``limit``), following the ``next`` cursors."""
        cursor: str | None = None
        seen = 0
        while limit is None or seen < limit:
            size = page_size if limit is None else max(1, min(page_size, limit - seen))
            page = await self.list_requests(status=status, limit=size, cursor=cursor, group=group)
            for item in page.results:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield item
            if not page.next or not page.results:
                return
            cursor = page.next

    async def get_request(self, request_id: int) -> RequestDetailOut:
        """A request with its whole message thread."""
        return await self._call(RequestDetailOut, *route("request_detail", request_id=request_id))

    async def cancel_request(self, request_id: int) -> RequestOut:
        body = await self._json(*route("cancel", request_id=request_id))
        return RequestOut.model_validate(body.get("data", body))

    async def post_message(self, request_id: int, text: str) -> MessagePosted:
        """``POST /medicine/request/{id}/messages/``: the server's answer, as sent."""
        body = await self._json(*route("post_message", request_id=request_id), json={"text": text})
        return cast(MessagePosted, dict(body))

    async def download(self, url: str) -> bytes:
        """The bytes of a media URL (``image_url``, ``audio_url``)."""
        response = await self._send("GET", url, auth=self._same_origin(url))
        return response.content

    async def download_to(self, url: str, dest: str | Path) -> Path:
        """Stream a media URL into ``dest`` (a file, or a directory to keep the URL's name)."""
        path = Path(dest)
        if path.is_dir():  # noqa: ASYNC240 - one stat, not worth a thread
            path = path / (Path(urlsplit(url).path).name or "download")
        headers = self._auth_headers() if self._same_origin(url) else {}
        try:
            async with self._http.stream("GET", url, headers=headers) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _error(response)
                with path.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
        except httpx.TransportError as exc:
            raise TransportError(f"cannot reach {self.base_url}: {_describe(exc)}", url=self.base_url) from exc
        return path

    # --- §4 WebSockets --------------------------------------------------------------------------

    def connect(
        self,
        after: int | None = None,
        *,
        backoff: Backoff | None = None,
        on_state: StateCallback | None = None,
        retry_first: bool = False,
    ) -> LiveConnection:
        """A live, self-reconnecting WebSocket for this account: ``async with client.connect() as conn``,
        then ``async for event in conn`` and ``await conn.respond(...)`` on the same socket.

        ``after``: replay the stored events after this id first (None: only new ones).
        ``on_state(state, retry_in)``: told each change of the link: ``"open"``, ``"closed"``,
        and while it is down ``"reconnecting"`` (``"connecting"`` before it first opened) with
        the seconds until the next attempt, or None while an attempt is under way.
        ``retry_first``: retry the first connection too, as every later one, rather than
        raise its `TransportError` from ``async with`` (a refusal still ends the stream)."""
        return LiveConnection(
            self.session,
            self.ws_path,
            after=after,
            backoff=backoff or self.backoff,
            on_state=on_state,
            retry_first=retry_first,
        )

    async def events(
        self,
        after: int | None = None,
        *,
        backoff: Backoff | None = None,
        on_state: StateCallback | None = None,
        retry_first: bool = False,
    ) -> AsyncIterator[Event]:
        """Every event from now (or after ``after``), exactly once, across reconnects
        (``on_state`` and ``retry_first`` as for `connect`)."""
        async with self.connect(
            after=after, backoff=backoff, on_state=on_state, retry_first=retry_first
        ) as conn:
            async for event in conn:
                yield event

    async def ws_path(self) -> str:
        """``/ws/user/{id}/`` or ``/ws/pharmacy/{id}/`` for the logged-in account."""
        account = self.account or await self.me()
        return channel("pharmacy" if account.role == "pharmacy" else "user", account.id)

    # --- plumbing -------------------------------------------------------------------------------

    async def ensure_fresh_token(self) -> None:
        """Refresh the access token now if it is about to expire (per its ``exp``)."""
        await self.session.ensure_fresh()

    async def _call(self, model: type[_M], method: str, url: str, **kwargs: Any) -> _M:
        return model.model_validate(await self._json(method, url, **kwargs))

    async def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = await self._send(method, url, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise MedreqError(f"the server sent a non-JSON answer (HTTP {response.status_code})") from None

    async def _send(
        self,
        method: str,
        url: str,
        *,
        auth: bool = True,
        build: Build | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        for attempt in range(2):
            if auth:
                await self.ensure_fresh_token()
            sent_token = self.access_token
            with ExitStack() as stack:
                extra = build(stack) if build else {}
                all_headers = {**(self._auth_headers() if auth else {}), **(headers or {})}
                try:
                    response = await self._http.request(method, url, headers=all_headers, **kwargs, **extra)
                except httpx.TransportError as exc:
                    raise TransportError(f"cannot reach {self.base_url}: {_describe(exc)}", url=self.base_url) from exc
            if response.status_code == 401 and auth and attempt == 0 and self.refresh_token:
                await self.session.refresh_once(sent_token)
                continue
            if response.status_code >= 400:
                raise _error(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"} if self.access_token else {}

    def _same_origin(self, url: str) -> bool:
        return not urlsplit(url).netloc or url.startswith(self.base_url + "/")


def _multipart(
    fields: dict[str, Any],
    file_field: str,
    source: FileInput | None,
    filename: str | None,
    progress: Progress | None,
    *,
    repeated: dict[str, list[int]] | None = None,
) -> Build:
    """The multipart body: ``repeated`` fields first, one part per value (``pharmacy=1``,
    ``pharmacy=2``), then ``fields``, then the file."""

    def build(stack: ExitStack) -> dict[str, Any]:
        files: list[tuple[str, Any]] = [
            (name, (None, str(value))) for name, values in (repeated or {}).items() for value in values
        ]
        files += form_fields(fields)
        if source is not None:
            files.append((file_field, open_file(stack, source, filename, progress)))
        return {"files": files}

    return build


def _error(response: httpx.Response) -> MedreqError:
    try:
        body = response.json()
    except ValueError:
        body = None
    exc = error_from_body(body, response.status_code)
    if type(exc) is MedreqError and body is None:
        exc = MedreqError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
    if isinstance(exc, RateLimited):
        with contextlib.suppress(ValueError):
            exc.retry_after = float(response.headers.get("Retry-After", exc.retry_after))
    return exc


def _describe(exc: httpx.TransportError) -> str:
    return str(exc) or type(exc).__name__
