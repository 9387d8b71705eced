"""The public medreq client: every tool (CLI, TUI, simulator, load tests) talks through it.

    async with MedreqClient("http://127.0.0.1:8000") as client:
        await client.login("pharmacy1", "password")
        async with client.connect(after=last_seen) as conn:   # reconnects, resumes, dedups
            async for event in conn:
                if isinstance(event, NewRequestEvent):
                    await conn.respond(event.request_id, "ACCEPTED", "ready at 5pm")

Errors are the `medreq.protocol.errors` classes the server's error codes name (`Conflict`,
`Unauthorized`, …), plus `TransportError` / `ConnectionLost` when the server cannot be reached.
Events are the protocol's own models (`medreq.protocol.events`): each keeps what the server sent
in ``raw``, and an unknown type becomes a plain `Event`, so a newer server never breaks this client.

`ProfileStore` keeps saved logins (URL, tokens, last event id) where the ``medreq`` CLI and
the inbox TUI find them, so a script can reuse a ``medreq login``.
"""

from medreq.protocol import (
    AccountOut,
    PharmacyOut,
    RequestCreatedOut,
    RequestListOut,
    RequestOut,
    ResponseSentOut,
    TokenOut,
)

# a request with its whole thread (``GET /medicine/request/{id}/``), under the client's old name
from medreq.protocol import RequestDetailOut as RequestDetail
from medreq.protocol.errors import (
    Conflict,
    Forbidden,
    Invalid,
    InvalidJSON,
    MedreqError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    UnsupportedMediaType,
)
from medreq.protocol.events import (
    Event,
    MessageEvent,
    NewRequestEvent,
    PharmacyResponseEvent,
    PresenceEvent,
    ReadEvent,
    RequestCancelledEvent,
    RequestChosenEvent,
    RequestUpdatedEvent,
    TypingEvent,
    parse_event,
)

from ._backoff import Backoff
from ._client import MedreqClient
from ._errors import ConnectionLost, TransportError
from ._live import ConnectionState, LiveConnection
from ._profiles import Profile, ProfileStore
from ._sync import SyncMedreqClient
from ._upload import FileInput, Progress

__all__ = [
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
]
