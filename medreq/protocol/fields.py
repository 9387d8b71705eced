"""Field types every wire model shares, the two model bases, and turning pydantic's errors into
the one §1 `validation_error` (docs/protocol.md §1).

Inbound models (`Inbound`) validate what clients send: unknown fields are ignored, text is
stripped. Outbound models (`Outbound`) describe what the server sends: their JSON Schema says
`additionalProperties: false` (the contract test fails on a field the schema lacks), while
parsing stays tolerant (a newer server's extra field never breaks an older client). The server
validates them from plain dicts of its rows' values (pydantic-core does that faster than
`model_construct` builds a model: loadtests/serialize_cost.py) and sends them with `to_json`: only the fields given are sent, so a field that is sometimes absent
(an event's `trace_id`, a pharmacy's phone in `<Request>`) is absent, not null.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from .errors import Invalid

Role = Literal["patient", "pharmacy"]
Status = Literal["PENDING", "ACCEPTED", "REJECTED", "CANCELLED"]
Answer = Literal["ACCEPTED", "REJECTED"]
AccountStatus = Literal["active", "pending", "disabled"]
CancelReason = Literal["patient_cancelled", "another_pharmacy_chosen"]

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
CorrelationId = str | int | None
"""A client message's `id`, echoed as `ref` in its reply."""

# --- an answer's offer (docs/protocol.md §3, groups) -------------------------------------------------------

_PRICE = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?")
READY_AT_SKEW = timedelta(minutes=1)  # a clock a little behind the server's is not "in the past"


def _price(value: Any) -> Any:
    """A decimal string ≥ 0 with at most 2 places, given back with exactly two ("12.5" → "12.50")."""
    if not isinstance(value, str) or not _PRICE.fullmatch(value):
        raise PydanticCustomError(
            "price", "must be a decimal string like 12.50 (digits, at most 2 places, not negative)"
        )
    whole, _, cents = value.partition(".")
    return f"{int(whole)}.{cents.ljust(2, '0')}"


def _ready_at(value: Any) -> Any:
    """An ISO 8601 time with its UTC offset, not in the past; given back in UTC."""
    if not isinstance(value, str) or len(value) > 40:
        raise PydanticCustomError("ready_at", "must be an ISO 8601 date and time with its offset")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("ready_at", "must be an ISO 8601 date and time with its offset") from None
    if when.tzinfo is None:
        raise PydanticCustomError("ready_at", "must carry its UTC offset (e.g. +00:00)")
    if when < datetime.now(UTC) - READY_AT_SKEW:
        raise PydanticCustomError("ready_at", "must not be in the past")
    return when.astimezone(UTC).isoformat()


Price = Annotated[str, BeforeValidator(_price), Field(max_length=12, examples=["12.50"])]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
ReadyAt = Annotated[str, BeforeValidator(_ready_at), Field(max_length=40, examples=["2026-12-03T17:00:00+00:00"])]


class Inbound(BaseModel):
    """What a client sends: unknown fields ignored, text stripped."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Outbound(BaseModel):
    """What the server sends. The schema is closed (`additionalProperties: false`); parsing is
    tolerant (extra fields ignored). Send with `to_json`."""

    model_config = ConfigDict(
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        json_schema_extra={"additionalProperties": False},
    )


def to_json(model: BaseModel) -> bytes:
    """A model as medreq sends it: compact UTF-8 JSON of the fields it was built with (a field
    left out is absent, not null), aliases as on the wire (`from`)."""
    return model.__pydantic_serializer__.to_json(model, exclude_unset=True)


def to_text(model: BaseModel) -> str:
    return to_json(model).decode()


def dumps(value: Any) -> str:
    """JSON as medreq sends and stores it: compact, UTF-8 kept as is."""
    if isinstance(value, BaseModel):
        return to_text(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- errors ------------------------------------------------------------------------------------


def validation_error(exc: ValidationError) -> Invalid:
    """One §1 `validation_error` from pydantic's list of errors."""
    fields: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        # a list's items are named by the list (`pharmacy`, repeated in a form), not by position
        name = ".".join(str(part) for part in err["loc"] if not isinstance(part, int)) or "body"
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
