"""Every operation of the wire, declared once (docs/protocol.md §2–§5): the REST table and the
two WebSocket channels.

For each REST operation, `OPERATIONS` holds its name, method, path, what it takes (a JSON body,
a multipart form or a query, each a model of `medreq.protocol.rest`), its answer (status and
model), the errors it can answer (`medreq.protocol.errors`, so each has its §1 code and status
from `codes.ERROR_WIRE`), its tag and its summary. `CHANNELS` holds the WebSocket channels and
what each sends and receives. Everything else is made from these:

- the server's REST routes (`medreq.web.rest.routes`: operation name → handler), and through them
  the direct route table (`medreq.web.rest.direct`);
- `/openapi.json` (`medreq.web.rest.openapi`): paths, parameters, bodies, answers and errors;
- `/asyncapi.json` (`medreq.web.rest.asyncapi`): the channels;
- checks on the rest: `tests/test_operations.py` holds the console's calls (`web/static/*.js`)
  and the WebSocket routes against this table.

A path is written as Starlette writes a route, `/medicine/request/{request_id:id}/`: `{name:id}`
is a 64-bit id (`medreq.web.convertors`), `{name}` any one path segment. `Operation.template` is
the same path as OpenAPI and AsyncAPI write it (`/medicine/request/{request_id}/`).

A client builds its URLs from the table instead of spelling paths again:

    >>> OPERATIONS["choose"].url(request_id=3)
    '/medicine/request/3/choose/'
    >>> path("list_requests")
    '/medicine/request/'
    >>> OPERATIONS["choose"].method, OPERATIONS["choose"].answer.__name__
    ('POST', 'RequestOut')
    >>> CHANNELS["pharmacy"].url(id=7)
    '/ws/pharmacy/7/'
    >>> find("DELETE", "/push/subscriptions/12").name
    'remove_push_subscription_by_id'

No web framework here (the protocol is what a server and a client share; `tests/test_operations.py`
checks the imports): the server maps each name to its handler, and a client to its method.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final, Literal
from urllib.parse import quote

from pydantic import BaseModel

from .errors import (
    Conflict,
    Forbidden,
    HeadersTooLarge,
    Invalid,
    InvalidJSON,
    MedreqError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ReauthenticationRequired,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from .events import SERVER_FRAME_MODELS
from .fields import MAX_ID, Inbound, Outbound, Role
from .messages import CLIENT_MESSAGE_MODELS
from .rest import (
    AccessOut,
    AccountOut,
    DeliveriesQuery,
    HealthOut,
    ListQuery,
    LogoutIn,
    MessageBody,
    MessagePostedOut,
    PasswordIn,
    PharmacyListOut,
    PushEndpointIn,
    PushSubscriptionIn,
    PushSubscriptionListOut,
    PushSubscriptionOut,
    RefreshIn,
    RegisterIn,
    RequestCreatedOut,
    RequestDetailOut,
    RequestForm,
    RequestListOut,
    RequestOut,
    ResponseForm,
    ResponseSentOut,
    TokenIn,
    TokenOut,
    VapidKeyOut,
    WebhookAccountOut,
    WebhookDeliveryListOut,
    WebhookDeliveryOut,
    WebhookIn,
)

Method = Literal["GET", "POST", "PUT", "DELETE"]
Auth = Literal["none", "bearer", "bearer_or_signed"]
"""`none`: anyone; `bearer`: an access token; `bearer_or_signed`: an access token or a signed URL
(media links)."""
Errors = tuple[type[MedreqError], ...]

TAGS: dict[str, str] = {
    "auth": "Accounts, sign-in and tokens (docs/protocol.md §2)",
    "requests": "Medicine requests, their answers and message threads (§3)",
    "media": "Prescriptions and voice answers",
    "pharmacies": "The pharmacies a patient can address",
    "webhooks": "Where an offline account's events are POSTed (§5)",
    "push": "Web Push subscriptions of the account's browsers (§5)",
    "ops": "Health of the server",
}
"""Each operation's area (`Operation.tag`), in the order /docs lists them."""
Tag = Literal["auth", "requests", "media", "pharmacies", "webhooks", "push", "ops"]

ALWAYS: Errors = (RateLimited, HeadersTooLarge, Unavailable)
"""Any request can meet a rate or connection limit (431 and 503 come from the connection guard)."""
JSON_BODY: Errors = (InvalidJSON, PayloadTooLarge, UnsupportedMediaType, Invalid)
FORM_BODY: Errors = (PayloadTooLarge, UnsupportedMediaType, Invalid)
QUERY: Errors = (Invalid,)

PATH_PARAMETERS: dict[str, str] = {
    "request_id": "A request's id (404 when the caller takes no part in it)",
    "subscription_id": "A subscription's id (404 unless it is the caller's)",
}
"""What each `{name:id}` in a REST path names."""

FILE: Final = "file"
"""`Operation.answer` of an operation answering a file's bytes in its own content type."""

_PARAMETER = re.compile(r"\{(\w+)(?::(\w+))?\}")
_SEGMENTS = {"id": "[0-9]{1,19}", None: "[^/]+"}  # what each kind of parameter matches


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One REST operation: a method on a path, what it takes and what it answers."""

    name: str
    method: Method
    path: str
    """Starlette's notation: `{name:id}` an id, `{name}` one path segment."""
    summary: str
    tag: Tag
    status: int
    """The status of a successful answer."""
    answer: type[Outbound] | Literal["file"] | None
    """The model of a successful answer's JSON body; `FILE` for a file's bytes; None for no body."""
    errors: Errors = ()
    """The errors particular to this operation; `answers` adds those every operation of its kind
    can answer (a body's, the token's, the limits')."""
    json: type[Inbound] | None = None
    """The JSON body's model."""
    form: type[Inbound] | None = None
    """The multipart form's model (its fields; the files are `files`)."""
    files: tuple[str, ...] = ()
    """The form's file fields."""
    query: type[Inbound] | None = None
    """The query string's model."""
    auth: Auth = "bearer"
    idempotency_key: bool = False
    """Takes an `Idempotency-Key` header: a retry with the same key creates nothing new."""
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = _PARAMETER.sub(lambda m: f"(?P<{m[1]}>{_SEGMENTS[m[2]]})", self.path)
        object.__setattr__(self, "_pattern", re.compile(f"^{pattern}$"))

    @property
    def parameters(self) -> dict[str, str | None]:
        """The path's parameters, each with its convertor (`id`, or None for a plain segment)."""
        return {name: convertor or None for name, convertor in _PARAMETER.findall(self.path)}

    @property
    def template(self) -> str:
        """The path as OpenAPI writes it: `{request_id}`, no convertor."""
        return _PARAMETER.sub(r"{\1}", self.path)

    @cached_property
    def answers(self) -> Errors:
        """Every error this operation can answer, each once: its own, its input's, the token's,
        and the limits any request can meet."""
        found: list[type[MedreqError]] = list(self.errors)
        found += JSON_BODY if self.json else FORM_BODY if self.form else ()
        found += QUERY if self.query else ()
        found += (Unauthorized,) if self.auth != "none" else ()
        found += ALWAYS
        return tuple(dict.fromkeys(found))

    @property
    def statuses(self) -> list[int]:
        """The HTTP statuses of `answers`, each once, in order."""
        return sorted({error.status for error in self.answers})

    def url(self, /, **values: object) -> str:
        """The path with its parameters filled in: `url(request_id=3)`. An id must be an int
        from 1 to 2^63-1; anything else is quoted as one path segment."""
        if set(values) != set(self.parameters):
            raise TypeError(f"{self.name} takes {sorted(self.parameters)}, not {sorted(values)}")

        def fill(match: re.Match[str]) -> str:
            value = values[match[1]]
            if match[2] == "id":
                if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
                    raise ValueError(f"{match[1]} must be an id (1 to {MAX_ID}), not {value!r}")
                return str(value)
            return quote(str(value), safe="")

        return _PARAMETER.sub(fill, self.path)

    def matches(self, method: str, url_path: str) -> bool:
        """Whether `method url_path` (a concrete path, no query) is this operation."""
        return method.upper() == self.method and self._pattern.match(url_path) is not None


@dataclass(frozen=True, kw_only=True)
class Channel:
    """One WebSocket channel: its path, whose it is, and what goes each way (docs/protocol.md §4)."""

    name: str
    path: str
    """Starlette's notation, as `Operation.path`."""
    role: Role
    """The role of the account the socket is for (4403 otherwise)."""
    sends: tuple[type[Outbound], ...] = SERVER_FRAME_MODELS
    """Server → client: the events, and `ack`/`pong`/`error`/`resync_required`."""
    receives: tuple[type[BaseModel], ...] = CLIENT_MESSAGE_MODELS
    """Client → server: every `ClientMessage`."""

    @property
    def template(self) -> str:
        """The path as AsyncAPI writes it (`/ws/user/{id}/`)."""
        return _PARAMETER.sub(r"{\1}", self.path)

    def url(self, *, id: int) -> str:
        """The socket's path for account `id`; add `?token=…` and `&after=…` (§4)."""
        if isinstance(id, bool) or not isinstance(id, int) or not 0 < id <= MAX_ID:
            raise ValueError(f"id must be an account id (1 to {MAX_ID}), not {id!r}")
        return _PARAMETER.sub(str(id), self.path)


def _operations(*operations: Operation) -> dict[str, Operation]:
    table = {operation.name: operation for operation in operations}
    assert len(table) == len(operations), "two operations with one name"
    assert len({(o.method, o.path) for o in operations}) == len(operations), "two operations on one route"
    return table


OPERATIONS: dict[str, Operation] = _operations(
    Operation(name="health", method="GET", path="/health", summary="Liveness", tag="ops",
              status=200, answer=HealthOut, auth="none"),
    # --- §2 accounts
    Operation(name="register", method="POST", path="/auth/register", summary="Create an account",
              tag="auth", status=201, answer=AccountOut, errors=(Forbidden, Conflict),
              json=RegisterIn, auth="none"),
    Operation(name="token", method="POST", path="/auth/token", summary="Get access and refresh tokens",
              tag="auth", status=200, answer=TokenOut, errors=(Unauthorized,), json=TokenIn, auth="none"),
    Operation(name="refresh", method="POST", path="/auth/refresh",
              summary="New access and refresh tokens (the refresh token sent is used up)",
              tag="auth", status=200, answer=AccessOut, errors=(Unauthorized,), json=RefreshIn, auth="none"),
    Operation(name="logout", method="POST", path="/auth/logout", summary="Revoke a refresh token",
              tag="auth", status=204, answer=None, errors=(Forbidden,), json=LogoutIn),
    Operation(name="logout_everywhere", method="POST", path="/auth/logout-all",
              summary="Log out everywhere: revoke every token of the account and remove its webhook and"
              " push subscriptions",
              tag="auth", status=204, answer=None),
    Operation(name="change_password", method="POST", path="/auth/password",
              summary="Change the password; revokes every token of the account",
              tag="auth", status=204, answer=None, errors=(Forbidden,), json=PasswordIn),
    Operation(name="me", method="GET", path="/auth/me", summary="The caller's account, with its webhook URL",
              tag="auth", status=200, answer=WebhookAccountOut),
    Operation(name="remove_me", method="DELETE", path="/auth/me",
              summary="Remove a synthetic (simulation) account with all it took part in; others: 403",
              tag="auth", status=204, answer=None, errors=(Forbidden,)),
    Operation(name="set_webhook", method="PUT", path="/auth/me",
              summary="Set (or, with null, remove) the webhook that gets events while the account is"
              " offline; the answer shows its signing secret once. Setting one needs a password sign-in"
              " of the last 10 minutes (403 `reauthentication_required`). `webhook_payload` (alone or"
              " with the URL): `full`, the event with media links valid 10 minutes, or `thin`, its ids"
              " only (type, event_id, request_id); choosing `full` alone needs the same recent sign-in",
              tag="webhooks", status=200, answer=WebhookAccountOut, errors=(ReauthenticationRequired,),
              json=WebhookIn),
    Operation(name="webhook_deliveries", method="GET", path="/auth/me/webhook-deliveries",
              summary="The account's webhook and push deliveries, newest first",
              tag="webhooks", status=200, answer=WebhookDeliveryListOut, query=DeliveriesQuery),
    Operation(name="test_webhook", method="POST", path="/auth/me/webhook-test",
              summary="Queue a test delivery to the webhook; one every 10 s per account (429 with"
              " Retry-After)",
              tag="webhooks", status=202, answer=WebhookDeliveryOut, errors=(Conflict,)),
    Operation(name="vapid_public_key", method="GET", path="/push/vapid-public-key",
              summary="The server's VAPID public key, for PushManager.subscribe",
              tag="push", status=200, answer=VapidKeyOut),
    Operation(name="add_push_subscription", method="POST", path="/push/subscriptions",
              summary="Register a browser's PushSubscription; needs a password sign-in of the last 10"
              " minutes (403 `reauthentication_required`)",
              tag="push", status=201, answer=PushSubscriptionOut, errors=(ReauthenticationRequired,),
              json=PushSubscriptionIn),
    Operation(name="remove_push_subscription", method="DELETE", path="/push/subscriptions",
              summary="Remove one of the caller's push subscriptions",
              tag="push", status=204, answer=None, errors=(NotFound,), json=PushEndpointIn),
    Operation(name="push_subscriptions", method="GET", path="/push/subscriptions",
              summary="The caller's push subscriptions, oldest first",
              tag="push", status=200, answer=PushSubscriptionListOut),
    Operation(name="remove_push_subscription_by_id", method="DELETE",
              path="/push/subscriptions/{subscription_id:id}",
              summary="Remove one of the caller's push subscriptions by id",
              tag="push", status=204, answer=None, errors=(NotFound,)),
    Operation(name="pharmacies", method="GET", path="/pharmacies/", summary="Pharmacies a patient can address",
              tag="pharmacies", status=200, answer=PharmacyListOut),
    # --- §3 medicine requests
    Operation(name="create_request", method="POST", path="/medicine/request/",
              summary="Send a medicine request (patient)",
              tag="requests", status=201, answer=RequestCreatedOut, errors=(Forbidden,),
              form=RequestForm, files=("image",), idempotency_key=True),
    Operation(name="list_requests", method="GET", path="/medicine/request/",
              summary="The caller's requests, newest first",
              tag="requests", status=200, answer=RequestListOut, query=ListQuery),
    Operation(name="request_detail", method="GET", path="/medicine/request/{request_id:id}/",
              summary="One request with its message thread",
              tag="requests", status=200, answer=RequestDetailOut, errors=(NotFound,)),
    Operation(name="cancel", method="POST", path="/medicine/request/{request_id:id}/cancel/",
              summary="Cancel a pending request (its patient)",
              tag="requests", status=200, answer=RequestOut, errors=(Forbidden, NotFound, Conflict)),
    Operation(name="choose", method="POST", path="/medicine/request/{request_id:id}/choose/",
              summary="Choose one ACCEPTED request of a group (its patient); the group's other open"
              " requests are cancelled (docs/protocol.md §3, groups)",
              tag="requests", status=200, answer=RequestOut, errors=(Forbidden, NotFound, Conflict)),
    Operation(name="post_message", method="POST", path="/medicine/request/{request_id:id}/messages/",
              summary="A message in the request's thread (either party)",
              tag="requests", status=201, answer=MessagePostedOut, errors=(NotFound,), json=MessageBody),
    Operation(name="respond", method="POST", path="/medicine/response/",
              summary="Answer a pending request (its pharmacy)",
              tag="requests", status=200, answer=ResponseSentOut, errors=(Forbidden, NotFound, Conflict),
              form=ResponseForm, files=("audio",)),
    # --- media links (in `RequestOut` and events); signed, or for a participant's token
    Operation(name="media", method="GET", path="/media/{prefix}/{name}",
              summary="A prescription or an answer's audio",
              tag="media", status=200, answer=FILE, errors=(Forbidden, NotFound), auth="bearer_or_signed"),
)  # fmt: skip
"""The REST operations by name, in the order the server tries its routes."""

CHANNELS: dict[str, Channel] = {
    "user": Channel(name="user", path="/ws/user/{id:id}/", role="patient"),
    "pharmacy": Channel(name="pharmacy", path="/ws/pharmacy/{id:id}/", role="pharmacy"),
}
"""The WebSocket channels by name: a patient's socket and a pharmacy's."""


def path(name: str, /, **values: object) -> str:
    """`OPERATIONS[name].url(**values)`: `path("cancel", request_id=3)` is `/medicine/request/3/cancel/`."""
    return OPERATIONS[name].url(**values)


def find(method: str, url_path: str) -> Operation | None:
    """The operation `method url_path` is (a concrete path such as `/medicine/request/3/`), if any."""
    return next((op for op in OPERATIONS.values() if op.matches(method, url_path)), None)


def models() -> tuple[list[type[Inbound]], list[type[Outbound]]]:
    """The models the REST operations take (JSON bodies) and answer, each once, in table order."""
    taken = [op.json for op in OPERATIONS.values() if op.json is not None]
    answered = [op.answer for op in OPERATIONS.values() if isinstance(op.answer, type)]
    return list(dict.fromkeys(taken)), list(dict.fromkeys(answered))
