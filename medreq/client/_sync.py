"""`SyncMedreqClient`: the REST half of `MedreqClient` for code without an event loop
(scripts, Locust users). It runs the async client on a private event loop; live events
need the async API (`MedreqClient.connect`).

Its methods are not written twice: each is `Blocking(MedreqClient.method)` (or
`BlockingIter` for an async iterator), a descriptor that runs the coroutine to its end and
keeps the async method's signature for type checkers (`typing.ParamSpec`). A new REST method
of `MedreqClient` needs one line here; tests/test_client_sync.py fails until it has it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator
from types import MethodType, TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from medreq.protocol import AccountOut

from ._client import MedreqClient

_P = ParamSpec("_P")
_T = TypeVar("_T")


class Blocking(Generic[_P, _T]):
    """``name = Blocking(MedreqClient.name)``: the method, run to its end on the client's loop."""

    def __init__(self, method: Callable[Concatenate[MedreqClient, _P], Coroutine[Any, Any, _T]]) -> None:
        self.method = method

    @overload
    def __get__(self, owner: None, cls: type[SyncMedreqClient]) -> Self: ...
    @overload
    def __get__(self, owner: SyncMedreqClient, cls: type[SyncMedreqClient]) -> Callable[_P, _T]: ...
    def __get__(
        self, owner: SyncMedreqClient | None, cls: type[SyncMedreqClient]
    ) -> Self | Callable[_P, _T]:
        if owner is None:
            return self
        method, client, run = self.method, owner.client, owner._run

        @functools.wraps(MethodType(method, client))  # the signature shown is the async one's
        def call(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            return run(method(client, *args, **kwargs))

        return call


class BlockingIter(Generic[_P, _T]):
    """``name = BlockingIter(MedreqClient.name)``: an async iterator method as a plain iterator,
    each item fetched on the client's loop when it is asked for."""

    def __init__(self, method: Callable[Concatenate[MedreqClient, _P], AsyncIterator[_T]]) -> None:
        self.method = method

    @overload
    def __get__(self, owner: None, cls: type[SyncMedreqClient]) -> Self: ...
    @overload
    def __get__(self, owner: SyncMedreqClient, cls: type[SyncMedreqClient]) -> Callable[_P, Iterator[_T]]: ...
    def __get__(
        self, owner: SyncMedreqClient | None, cls: type[SyncMedreqClient]
    ) -> Self | Callable[_P, Iterator[_T]]:
        if owner is None:
            return self
        method, client, iterate = self.method, owner.client, owner._iterate

        @functools.wraps(MethodType(method, client))
        def call(*args: _P.args, **kwargs: _P.kwargs) -> Iterator[_T]:
            return iterate(method(client, *args, **kwargs))

        return call


class SyncMedreqClient:
    """Blocking twin of `MedreqClient`'s REST methods (same arguments, same results)."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        self._closed = False
        self.client = MedreqClient(base_url, **kwargs)

    def __enter__(self) -> SyncMedreqClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        try:
            self._run(self.client.aclose())
        finally:
            self._runner.close()

    @property
    def access_token(self) -> str | None:
        return self.client.access_token

    @property
    def account(self) -> AccountOut | None:
        return self.client.account

    # --- §2 accounts ----------------------------------------------------------------------------
    register = Blocking(MedreqClient.register)
    remove_synthetic_account = Blocking(MedreqClient.remove_synthetic_account)
    login = Blocking(MedreqClient.login)
    refresh = Blocking(MedreqClient.refresh)
    me = Blocking(MedreqClient.me)
    set_webhook = Blocking(MedreqClient.set_webhook)
    webhook_deliveries = Blocking(MedreqClient.webhook_deliveries)
    test_webhook = Blocking(MedreqClient.test_webhook)
    # --- §5 Web Push subscriptions --------------------------------------------------------------
    push_subscriptions = Blocking(MedreqClient.push_subscriptions)
    remove_push_subscription = Blocking(MedreqClient.remove_push_subscription)
    pharmacies = Blocking(MedreqClient.pharmacies)
    # --- §3 medicine requests -------------------------------------------------------------------
    create_request = Blocking(MedreqClient.create_request)
    choose = Blocking(MedreqClient.choose)
    respond = Blocking(MedreqClient.respond)
    list_requests = Blocking(MedreqClient.list_requests)
    iter_requests = BlockingIter(MedreqClient.iter_requests)
    get_request = Blocking(MedreqClient.get_request)
    cancel_request = Blocking(MedreqClient.cancel_request)
    post_message = Blocking(MedreqClient.post_message)
    download = Blocking(MedreqClient.download)
    download_to = Blocking(MedreqClient.download_to)

    # --- plumbing -------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self._runner.run(coro)

    def _iterate(self, items: AsyncIterator[_T]) -> Iterator[_T]:
        async def step() -> list[_T]:
            try:
                return [await anext(items)]
            except StopAsyncIteration:
                return []

        try:
            while batch := self._run(step()):
                yield batch[0]
        finally:  # left early: end the async generator on its loop while there is one
            if isinstance(items, AsyncGenerator) and not self._closed:
                self._run(items.aclose())
