"""Pydantic models for everything on the wire (docs/protocol.md §2–§4).

Inbound models validate what clients send; outbound models document (and let the
client parse) what the server sends. `validation_error()` turns pydantic's errors
into the one §1 error body.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from .errors import Invalid

Role = Literal["patient", "pharmacy"]
Status = Literal["PENDING", "ACCEPTED", "REJECTED", "CANCELLED"]
Answer = Literal["ACCEPTED", "REJECTED"]

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,64}$"
MAX_ID = 2**63 - 1  # ids are 64-bit in every store; a bigger one names nothing


# --- shared field types --------------------------------------------------------------------------
# Every inbound text goes through one of the two text types: PostgreSQL refuses NUL in text (a 500
# on five endpoints before these existed) and no field has a use for the other C0 controls.
# Free-form text keeps tab and line breaks.

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]{1,30}")  # 30 digits is past any id or limit, and bounds int()'s work


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise PydanticCustomError("control_character", "must not contain control characters")
    return value


def _no_control_in_text(value: str) -> str:
    if _CONTROL_IN_TEXT.search(value):
        raise PydanticCustomError(
            "control_character", "must not contain control characters other than tab and line breaks"
        )
    return value


def _plain_int(value: Any) -> Any:
    """Forms and query strings carry numbers as text: only plain decimal digits are a number
    ("1_000", "5.0", "+5", " 5" and non-ASCII digits are not, though int() takes them)."""
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise PydanticCustomError("int_digits", "must be a whole number written in digits 0-9")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", "must be a whole number")
    return value


Line = Annotated[str, AfterValidator(_no_control)]
"""Single-line text: names, usernames, passwords, tokens, cursors."""
Text = Annotated[str, AfterValidator(_no_control_in_text)]
"""Free-form text (notes, messages): tab, CR and LF allowed."""
DbId = Annotated[int, Field(gt=0, le=MAX_ID)]
# Integers sent as text in a form or query string. The range comes before the validator so
# pydantic keeps it in the integer schema (and in the JSON schema of the OpenAPI document).
FormId = Annotated[int, Field(gt=0, le=MAX_ID), BeforeValidator(_plain_int)]
Quantity = Annotated[int, Field(ge=1, le=1000), BeforeValidator(_plain_int)]
PageLimit = Annotated[int, Field(ge=1, le=100), BeforeValidator(_plain_int)]


class Inbound(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


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


AccountStatus = Literal["active", "pending", "disabled"]


class AccountOut(BaseModel):
    id: int
    username: str
    role: Role
    name: str
    phone: str | None = None
    status: AccountStatus = "active"


class TokenOut(BaseModel):
    access: str
    refresh: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    account: AccountOut


class AccessOut(BaseModel):
    access: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class WebhookIn(Inbound):
    """`PUT /auth/me`: an http(s) URL, or null / "" to remove the webhook (PROTOCOL.md §6)."""

    webhook_url: str | None = Field(max_length=2000)


class PushKeysIn(Inbound):
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)


class PushSubscriptionIn(Inbound):
    """A browser's `PushSubscription.toJSON()` (PROTOCOL.md §6)."""

    endpoint: str = Field(max_length=2000)
    expirationTime: int | float | None = None
    keys: PushKeysIn


class PushEndpointIn(Inbound):
    endpoint: str = Field(max_length=2000)


class PushSubscriptionOut(BaseModel):
    id: int
    endpoint: str
    created_at: str


class VapidKeyOut(BaseModel):
    public_key: str


class DeliveriesQuery(Inbound):
    limit: int = Field(default=50, ge=1, le=100)


class WebhookAccountOut(AccountOut):
    webhook_url: str | None = None
    #: the HMAC key of `X-Medreq-Signature`, shown only in the answer that set the URL
    webhook_secret: str | None = None


class WebhookDeliveryOut(BaseModel):
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


class WebhookDeliveryListOut(BaseModel):
    results: list[WebhookDeliveryOut]


class PharmacyOut(BaseModel):
    id: int
    name: str
    #: a live connection on any worker (PROTOCOL.md §6 presence)
    online: bool = False


class PharmacyListOut(BaseModel):
    results: list[PharmacyOut]


# --- §3 medicine requests ----------------------------------------------------------------------


class RequestForm(Inbound):
    pharmacy: FormId
    quantity: Quantity
    patient: FormId | None = None
    medicine_name: Line | None = Field(default=None, max_length=200)
    note: Text | None = Field(default=None, max_length=1000)


class ResponseForm(Inbound):
    request_id: FormId
    status: Answer
    text_message: Text | None = Field(default=None, max_length=2000)


class MessageBody(Inbound):
    text: Text = Field(min_length=1, max_length=2000)


class ListQuery(Inbound):
    status: Status | None = None
    limit: PageLimit = 20
    cursor: Line | None = Field(default=None, max_length=100)


class PartyOut(BaseModel):
    id: int
    name: str
    phone: str | None = None


class ResponseOut(BaseModel):
    status: Answer
    message: str | None = None
    audio_url: str | None = None
    responded_at: str


class RequestOut(BaseModel):
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
    #: the caller's events of this request after its last `read` mark (PROTOCOL.md §6)
    unread: int = 0


class MessageOut(BaseModel):
    id: int
    from_: int = Field(alias="from")
    text: str
    created_at: str


class MessagePostedOut(BaseModel):
    message: MessageOut


class RequestDetailOut(RequestOut):
    messages: list[MessageOut]


class RequestCreatedOut(BaseModel):
    message: str
    request_id: int
    data: RequestOut


class ResponseSentOut(BaseModel):
    message: str
    data: RequestOut


class RequestListOut(BaseModel):
    results: list[RequestOut]
    next: str | None = None


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str


ErrorCode = Literal[
    "invalid_json",
    "validation_error",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "payload_too_large",
    "unsupported_media_type",
    "rate_limited",
    "headers_too_large",
    "internal",
    "unavailable",
]
ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: ErrorCode
    message: str
    fields: dict[str, str] | None = None


class ErrorOut(BaseModel):
    """Every error the server sends, REST or WebSocket (docs/protocol.md §1)."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


IdempotencyKey = Annotated[Line, Field(min_length=1, max_length=200)]
"""The `Idempotency-Key` header: stored, so bounded like its column."""
IDEMPOTENCY_KEY: TypeAdapter[str] = TypeAdapter(IdempotencyKey)


# --- §4 WebSocket client messages --------------------------------------------------------------

CorrelationId = str | int | None


class WsIn(Inbound):
    id: CorrelationId = None


class PingIn(WsIn):
    type: Literal["ping"]


class ResponseIn(WsIn):
    type: Literal["response"]
    request_id: DbId
    status: Answer
    message: Text | None = Field(default=None, max_length=2000)


class ResumeIn(WsIn):
    type: Literal["resume"]
    after: int = Field(ge=0, le=MAX_ID)


class MessageIn(WsIn):
    type: Literal["message"]
    request_id: DbId
    text: Text = Field(min_length=1, max_length=2000)


class TypingIn(WsIn):
    type: Literal["typing"]
    request_id: DbId
    state: Literal["start", "stop"]


class ReadIn(WsIn):
    type: Literal["read"]
    request_id: DbId
    up_to_event_id: int = Field(ge=0, le=MAX_ID)


class AuthIn(WsIn):
    """A fresh access token for this socket, sent before the current one expires."""

    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096)


ClientMessage = Annotated[
    PingIn | ResponseIn | ResumeIn | MessageIn | TypingIn | ReadIn | AuthIn, Field(discriminator="type")
]
CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
CLIENT_MESSAGE_TYPES = ("ping", "response", "resume", "message", "typing", "read", "auth")


def dumps(value: Any) -> str:
    """JSON as medreq sends and stores it: compact, UTF-8 kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- errors ------------------------------------------------------------------------------------


def validation_error(exc: ValidationError) -> Invalid:
    """One §1 `validation_error` from pydantic's list of errors."""
    fields: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        name = ".".join(str(part) for part in err["loc"]) or "body"
        fields.setdefault(name, _describe(err))
    first_name, first_text = next(iter(fields.items()))
    return Invalid(f"{first_name}: {first_text}", fields=fields)


def _describe(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return str(err["msg"]).lower()
    if kind == "string_pattern_mismatch":
        return "must be 3-64 characters of letters, digits, '_', '.' or '-'"
    if kind == "string_too_short":
        return f"must be at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    return str(err["msg"])


def parse(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None
