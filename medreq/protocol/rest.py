"""REST bodies, forms and queries (docs/protocol.md §2–§3): what clients send (`…In`, forms,
queries) and what the server answers (`…Out`, among them `RequestOut`, the `<Request>`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from .codes import ErrorCode
from .fields import (
    USERNAME_PATTERN,
    AccountStatus,
    Answer,
    CancelReason,
    Currency,
    FormId,
    Inbound,
    Line,
    Outbound,
    PageLimit,
    Price,
    Quantity,
    ReadyAt,
    Role,
    Status,
    Text,
)

# --- §2 accounts -------------------------------------------------------------------------------


class RegisterIn(Inbound):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: Line = Field(min_length=8, max_length=1024)
    role: Role
    name: Line = Field(min_length=1, max_length=200)
    phone: Line | None = Field(default=None, max_length=40)
    # beyond: a simulator's or load test's account, in a sandbox of its own (service/sandbox.py)
    synthetic: bool = False

    # passwords are taken exactly as typed, so this model strips only the fields below
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    @field_validator("name", "phone", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value


class TokenIn(Inbound):
    username: Line = Field(min_length=1, max_length=64)
    password: Line = Field(min_length=1, max_length=1024)

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class RefreshIn(Inbound):
    refresh: Line = Field(min_length=1, max_length=4096)


class LogoutIn(Inbound):
    refresh: Line = Field(min_length=1, max_length=4096)


class PasswordIn(Inbound):
    old: Line = Field(min_length=1, max_length=1024)
    new: Line = Field(min_length=8, max_length=1024)

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class AccountOut(Outbound):
    id: int
    username: str
    role: Role
    name: str
    phone: str | None = None
    status: AccountStatus = "active"


class TokenOut(Outbound):
    access: str
    refresh: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    account: AccountOut


class AccessOut(Outbound):
    access: str
    #: the next refresh token: the one sent is used up, and sent again revokes the sign-in
    refresh: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


WebhookPayload = Literal["full", "thin"]


class WebhookIn(Inbound):
    """`PUT /auth/me` (docs/protocol.md §5): `webhook_url`, an http(s) URL (a new secret) or null /
    "" to remove the webhook; `webhook_payload`, `full` (the event) or `thin` (its ids only).
    Either or both; a field left out stays as it is."""

    webhook_url: str | None = Field(default=None, max_length=2000)
    webhook_payload: WebhookPayload | None = None

    @model_validator(mode="after")
    def _something(self) -> WebhookIn:
        if not self.model_fields_set & {"webhook_url", "webhook_payload"}:
            raise ValueError("give webhook_url, webhook_payload or both")
        return self


class PushKeysIn(Inbound):
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)


class PushSubscriptionIn(Inbound):
    """A browser's `PushSubscription.toJSON()` (docs/protocol.md §5)."""

    endpoint: str = Field(max_length=2000)
    expirationTime: int | float | None = None
    keys: PushKeysIn


class PushEndpointIn(Inbound):
    endpoint: str = Field(max_length=2000)


class PushSubscriptionOut(Outbound):
    id: int
    endpoint: str
    created_at: str


class PushSubscriptionListOut(Outbound):
    """The caller's push subscriptions, oldest first (`GET /push/subscriptions`)."""

    results: list[PushSubscriptionOut]


class VapidKeyOut(Outbound):
    public_key: str


class DeliveriesQuery(Inbound):
    limit: int = Field(default=50, ge=1, le=100)


class WebhookAccountOut(AccountOut):
    webhook_url: str | None = None
    #: full: webhooks carry the event; thin: its ids only (type, event_id, request_id)
    webhook_payload: WebhookPayload = "full"
    #: the HMAC key of `X-Medreq-Signature`, shown only in the answer that set the URL
    webhook_secret: str | None = None


class WebhookDeliveryOut(Outbound):
    id: int
    channel: Literal["webhook", "push"] = "webhook"
    event_id: int | None = None
    type: str
    status: Literal["pending", "delivered", "failed", "skipped"]
    attempts: int
    last_status: int | None = None
    last_error: str | None = None
    next_attempt_at: str | None = None
    last_attempt_at: str | None = None
    created_at: str
    delivered_at: str | None = None


class WebhookDeliveryListOut(Outbound):
    results: list[WebhookDeliveryOut]


class PharmacyOut(Outbound):
    id: int
    name: str
    #: a live connection on any worker (docs/protocol.md §4 presence)
    online: bool = False


class PharmacyListOut(Outbound):
    results: list[PharmacyOut]


# --- §3 medicine requests ----------------------------------------------------------------------


MAX_PHARMACIES = 100
"""The most pharmacies a form may name, whatever the server allows (its limit is configured)."""


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


class RequestForm(Inbound):
    #: the pharmacies to ask, in order; the form field repeated (docs/protocol.md §3, groups)
    pharmacy: Annotated[list[FormId], BeforeValidator(_as_list), Field(min_length=1, max_length=MAX_PHARMACIES)]
    quantity: Quantity
    patient: FormId | None = None
    medicine_name: Line | None = Field(default=None, max_length=200)
    note: Text | None = Field(default=None, max_length=1000)


class ResponseForm(Inbound):
    request_id: FormId
    status: Answer
    text_message: Text | None = Field(default=None, max_length=2000)
    #: the offer (docs/protocol.md §3, groups): a decimal string with at most 2 places, its ISO 4217
    #: currency (default: the server's), when it can be picked up (ISO 8601, not in the past)
    price: Price | None = None
    currency: Currency | None = None
    ready_at: ReadyAt | None = None


class MessageBody(Inbound):
    text: Text = Field(min_length=1, max_length=2000)


class ListQuery(Inbound):
    status: Status | None = None
    #: the requests of one group (docs/protocol.md §3, groups)
    group: FormId | None = None
    limit: PageLimit = 20
    cursor: Line | None = Field(default=None, max_length=100)


class PartyOut(Outbound):
    id: int
    name: str
    phone: str | None = None


class ResponseOut(Outbound):
    status: Answer
    message: str | None = None
    audio_url: str | None = None
    responded_at: str
    #: the offer (docs/protocol.md §3, groups), each null when not given
    price: str | None = None
    currency: str | None = None
    ready_at: str | None = None


class RequestOut(Outbound):
    id: int
    patient: PartyOut
    pharmacy: PartyOut
    quantity: int
    medicine_name: str | None = None
    note: str | None = None
    image_url: str | None = None
    status: Status
    response: ResponseOut | None = None
    created_at: str
    updated_at: str
    #: the caller's events of this request after its last `read` mark (docs/protocol.md §5)
    unread: int = 0
    #: docs/protocol.md §3, groups: the request's group (null for a single request, and always for a
    #: pharmacy), how many pharmacies were asked, whether the patient chose it, why it was cancelled
    group: int | None = None
    asked_pharmacies: int = 1
    chosen: bool = False
    cancel_reason: CancelReason | None = None


class MessageOut(Outbound):
    id: int
    from_: int = Field(alias="from")
    text: str
    created_at: str


class MessagePostedOut(Outbound):
    message: MessageOut


class RequestDetailOut(RequestOut):
    messages: list[MessageOut]


class RequestCreatedOut(Outbound):
    message: str
    #: the first request's id, and the first request
    request_id: int
    data: RequestOut
    #: docs/protocol.md §3, groups: the group (null for one pharmacy) and every request, in the order named
    group: int | None = None
    requests: list[RequestOut] = []


class ResponseSentOut(Outbound):
    message: str
    data: RequestOut


class RequestListOut(Outbound):
    results: list[RequestOut]
    next: str | None = None


class HealthOut(Outbound):
    status: Literal["ok"]
    version: str


class ErrorDetail(Outbound):
    code: ErrorCode
    message: str
    fields: dict[str, str] | None = None


class ErrorOut(Outbound):
    """Every error the server sends, REST or WebSocket (docs/protocol.md §1)."""

    error: ErrorDetail


IdempotencyKey = Annotated[Line, Field(min_length=1, max_length=200)]
"""The `Idempotency-Key` header: stored, so bounded like its column."""
IDEMPOTENCY_KEY: TypeAdapter[str] = TypeAdapter(IdempotencyKey)
