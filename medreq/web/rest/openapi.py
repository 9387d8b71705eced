"""OpenAPI 3.1 description of the REST part (docs/protocol.md §1–§3), built from the pydantic wire models.

Every schema is generated from `medreq.protocol` (one `models_json_schema` call, refs into
`components/schemas`), so a limit changed in a model changes here too. Every operation lists the
errors it can answer, each in the one §1 shape (`ErrorOut`). `tests/test_openapi.py` validates the
document and checks it names every route; `tests/test_schemathesis.py` fuzzes the server against it.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ... import __version__
from ...media import CONTENT_TYPES, KIND_BY_PREFIX
from ...protocol import (
    ERROR_WIRE,
    AccessOut,
    AccountOut,
    DbId,
    DeliveriesQuery,
    ErrorOut,
    HealthOut,
    IdempotencyKey,
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
from ..http import JSONResponse
from . import asyncapi

REF = "#/components/schemas/{model}"
INBOUND: list[type[BaseModel]] = [
    RegisterIn,
    TokenIn,
    RefreshIn,
    LogoutIn,
    PasswordIn,
    MessageBody,
    WebhookIn,
    PushSubscriptionIn,
    PushEndpointIn,
]
OUTBOUND: list[type[BaseModel]] = [
    HealthOut,
    AccountOut,
    TokenOut,
    AccessOut,
    PharmacyListOut,
    RequestOut,
    RequestDetailOut,
    RequestListOut,
    RequestCreatedOut,
    ResponseSentOut,
    MessagePostedOut,
    WebhookAccountOut,
    WebhookDeliveryOut,
    WebhookDeliveryListOut,
    VapidKeyOut,
    PushSubscriptionOut,
    PushSubscriptionListOut,
    ErrorOut,
]

DESCRIPTIONS = {
    "invalid_json": "Body is not valid JSON",
    "unauthorized": "No, a bad or an expired access token, or wrong credentials",
    "forbidden": "Not allowed for this account",
    "reauthentication_required": "Not with a sign-in this old: sign in with the password again"
    " (adding a webhook or a push subscription needs one of the last 10 minutes)",
    "not_found": "No such resource, or one the caller may not see",
    "conflict": "The request is no longer in a state that allows this",
    "payload_too_large": "Body or upload over its limit",
    "unsupported_media_type": "Wrong body type, or a file whose bytes are not an allowed type",
    "validation_error": "Invalid input (with `fields`)",
    "rate_limited": "Rate limited; retry after `Retry-After` seconds",
    "headers_too_large": "Request line and headers over their limit",
    "unavailable": "Connection limit reached; retry after `Retry-After` seconds",
}
# status → description, the status from the one code → status mapping (protocol.codes); the codes
# that share a status (403) each have their part
ERRORS: dict[int, str] = {}
for _code, _text in sorted(DESCRIPTIONS.items(), key=lambda item: ERROR_WIRE[item[0]].status):
    _status = ERROR_WIRE[_code].status
    ERRORS[_status] = (ERRORS[_status] + "; " if _status in ERRORS else "") + f"{_text} (`{_code}`)"
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
ALWAYS = (429, 431, 503)  # any request can meet a rate or connection limit
JSON_BODY = (400, 413, 415, 422)
FORM_BODY = (413, 415, 422)


def _schema(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    return adapter.json_schema(ref_template=REF)


def _components() -> dict[str, Any]:
    pairs = [(m, "validation") for m in INBOUND] + [(m, "serialization") for m in OUTBOUND]
    _, top = models_json_schema(pairs, ref_template=REF)  # type: ignore[arg-type]
    schemas: dict[str, Any] = top.get("$defs", {})
    schemas["RequestForm"] = _form(RequestForm, image="JPEG, PNG, WebP or PDF (sniffed from its bytes)")
    schemas["ResponseForm"] = _form(ResponseForm, audio="WebM, Ogg, MP3, M4A/MP4 or WAV (sniffed)")
    return schemas


def _form(model: type[BaseModel], **files: str) -> dict[str, Any]:
    """A multipart form: the model's fields (optional ones without the JSON `null`) plus files."""
    schema = model.model_json_schema(ref_template=REF)
    schema["properties"] = {name: _not_null(prop) for name, prop in schema["properties"].items()}
    for name, description in files.items():
        schema["properties"][name] = {"type": "string", "format": "binary", "description": description}
    return schema


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """An optional field's schema without JSON's `null`, which a form or query string cannot send."""
    options = [s for s in prop.get("anyOf", []) if s.get("type") != "null"]
    if len(options) != 1:
        return prop
    return {**options[0], **{k: v for k, v in prop.items() if k not in ("anyOf", "default")}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _op(
    summary: str,
    ok: int,
    out: str | None,
    *errors: int,
    body: dict[str, Any] | None = None,
    auth: bool = True,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    codes = sorted({*errors, *ALWAYS, *((401,) if auth else ())})
    responses: dict[str, Any] = {str(ok): {"description": summary}}
    if out is not None:
        responses[str(ok)]["content"] = _json(out)
    for code in codes:
        responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": body}
    operation["security"] = [{"bearer": []}] if auth else []
    return operation


def _request_id() -> dict[str, Any]:
    return {
        "name": "request_id",
        "in": "path",
        "required": True,
        "description": "A request's id (404 when the caller takes no part in it)",
        "schema": _schema(TypeAdapter(DbId)),
    }


def _query(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    return [
        {
            "name": name,
            "in": "query",
            "required": name in schema.get("required", []),
            "schema": _not_null(prop),
        }
        for name, prop in schema["properties"].items()
    ]


def _paths() -> dict[str, Any]:
    form = "multipart/form-data"
    idempotency = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "A retry with the same key returns the first response and creates nothing new",
        "schema": _schema(TypeAdapter(IdempotencyKey)),
    }
    media_types = sorted(set(CONTENT_TYPES.values()))
    media = _op("A prescription or an answer's audio", 200, None, 403, 404)
    media["responses"]["200"]["content"] = {
        t: {"schema": {"type": "string", "format": "binary"}} for t in media_types
    }
    media["security"] = [{}, {"bearer": []}]  # a signed URL, or a participant's token
    media["parameters"] = [
        {"name": "prefix", "in": "path", "required": True, "schema": {"enum": sorted(KIND_BY_PREFIX)}},
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[^/]+$"}},
        {"name": "to", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "exp", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "sig", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
    return {
        "/health": {"get": _op("Liveness", 200, "HealthOut", auth=False)},
        "/auth/register": {
            "post": _op(
                "Create an account",
                201,
                "AccountOut",
                *JSON_BODY,
                403,
                409,
                body=_json("RegisterIn"),
                auth=False,
            )
        },
        "/auth/token": {
            "post": _op(
                "Get access and refresh tokens",
                200,
                "TokenOut",
                *JSON_BODY,
                401,
                body=_json("TokenIn"),
                auth=False,
            )
        },
        "/auth/refresh": {
            "post": _op(
                "New access and refresh tokens (the refresh token sent is used up)",
                200,
                "AccessOut",
                *JSON_BODY,
                401,
                body=_json("RefreshIn"),
                auth=False,
            )
        },
        "/auth/logout": {
            "post": _op("Revoke a refresh token", 204, None, *JSON_BODY, 403, body=_json("LogoutIn"))
        },
        "/auth/logout-all": {
            "post": _op(
                "Log out everywhere: revoke every token of the account and remove its webhook and push"
                " subscriptions",
                204,
                None,
            )
        },
        "/auth/password": {
            "post": _op(
                "Change the password; revokes every token of the account",
                204,
                None,
                *JSON_BODY,
                403,
                body=_json("PasswordIn"),
            )
        },
        "/auth/me": {
            "get": _op("The caller's account, with its webhook URL", 200, "WebhookAccountOut"),
            "put": _op(
                "Set (or, with null, remove) the webhook that gets events while the account is offline;"
                " the answer shows its signing secret once. Setting one needs a password sign-in of the"
                " last 10 minutes (403 `reauthentication_required`). `webhook_payload` (alone or with the"
                " URL): `full`, the event with media links valid 10 minutes, or `thin`, its ids only"
                " (type, event_id, request_id); choosing `full` alone needs the same recent sign-in",
                200,
                "WebhookAccountOut",
                *JSON_BODY,
                403,
                body=_json("WebhookIn"),
            ),
            "delete": _op(
                "Remove a synthetic (simulation) account with all it took part in; others: 403",
                204,
                None,
                403,
            ),
        },
        "/auth/me/webhook-deliveries": {
            "get": _op(
                "The account's webhook and push deliveries, newest first",
                200,
                "WebhookDeliveryListOut",
                422,
                parameters=_query(DeliveriesQuery),
            )
        },
        "/auth/me/webhook-test": {
            "post": _op(
                "Queue a test delivery to the webhook; one every 10 s per account (429 with Retry-After)",
                202,
                "WebhookDeliveryOut",
                409,
            )
        },
        "/push/vapid-public-key": {
            "get": _op("The server's VAPID public key, for PushManager.subscribe", 200, "VapidKeyOut")
        },
        "/push/subscriptions": {
            "get": _op("The caller's push subscriptions, oldest first", 200, "PushSubscriptionListOut"),
            "post": _op(
                "Register a browser's PushSubscription; needs a password sign-in of the last 10 minutes"
                " (403 `reauthentication_required`)",
                201,
                "PushSubscriptionOut",
                *JSON_BODY,
                403,
                body=_json("PushSubscriptionIn"),
            ),
            "delete": _op(
                "Remove one of the caller's push subscriptions",
                204,
                None,
                *JSON_BODY,
                404,
                body=_json("PushEndpointIn"),
            ),
        },
        "/push/subscriptions/{subscription_id}": {
            "delete": {
                **_op("Remove one of the caller's push subscriptions by id", 204, None, 404),
                "parameters": [
                    {
                        "name": "subscription_id",
                        "in": "path",
                        "required": True,
                        "description": "A subscription's id (404 unless it is the caller's)",
                        "schema": _schema(TypeAdapter(DbId)),
                    }
                ],
            }
        },
        "/pharmacies/": {"get": _op("Pharmacies a patient can address", 200, "PharmacyListOut")},
        "/medicine/request/": {
            "post": {
                **_op(
                    "Send a medicine request (patient)",
                    201,
                    "RequestCreatedOut",
                    *FORM_BODY,
                    403,
                    body={form: {"schema": _ref("RequestForm")}},
                ),
                "parameters": [idempotency],
            },
            "get": _op(
                "The caller's requests, newest first",
                200,
                "RequestListOut",
                422,
                parameters=_query(ListQuery),
            ),
        },
        "/medicine/request/{request_id}/": {
            "parameters": [_request_id()],
            "get": _op("One request with its message thread", 200, "RequestDetailOut", 404),
        },
        "/medicine/request/{request_id}/cancel/": {
            "parameters": [_request_id()],
            "post": _op("Cancel a pending request (its patient)", 200, "RequestOut", 403, 404, 409),
        },
        "/medicine/request/{request_id}/choose/": {
            "parameters": [_request_id()],
            "post": _op(
                "Choose one ACCEPTED request of a group (its patient); the group's other open requests "
                "are cancelled (docs/protocol.md §3, groups)",
                200,
                "RequestOut",
                403,
                404,
                409,
            ),
        },
        "/medicine/request/{request_id}/messages/": {
            "parameters": [_request_id()],
            "post": _op(
                "A message in the request's thread (either party)",
                201,
                "MessagePostedOut",
                *JSON_BODY,
                404,
                body=_json("MessageBody"),
            ),
        },
        "/medicine/response/": {
            "post": _op(
                "Answer a pending request (its pharmacy)",
                200,
                "ResponseSentOut",
                *FORM_BODY,
                403,
                404,
                409,
                body={form: {"schema": _ref("ResponseForm")}},
            )
        },
        "/media/{prefix}/{name}": {"get": media},
    }


def _responses() -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code, description in ERRORS.items():
        response: dict[str, Any] = {"description": description, "content": _json("ErrorOut")}
        if code in (429, 503):
            response["headers"] = copy.deepcopy(RETRY_AFTER)
        responses[f"E{code}"] = response
    return responses


# Each operation's area, so /docs groups them (Swagger UI lists untagged ones under "default"):
# the first (path prefix, methods) that matches; None matches every method
TAGS: list[tuple[str, str]] = [
    ("auth", "Accounts, sign-in and tokens (docs/protocol.md §2)"),
    ("requests", "Medicine requests, their answers and message threads (§3)"),
    ("media", "Prescriptions and voice answers"),
    ("pharmacies", "The pharmacies a patient can address"),
    ("webhooks", "Where an offline account's events are POSTed (§5)"),
    ("push", "Web Push subscriptions of the account's browsers (§5)"),
    ("ops", "Health of the server"),
]
TAG_RULES: list[tuple[str, frozenset[str] | None, str]] = [
    ("/auth/me/webhook", None, "webhooks"),
    ("/auth/me", frozenset({"put"}), "webhooks"),  # sets the webhook
    ("/auth/", None, "auth"),
    ("/medicine/", None, "requests"),
    ("/media/", None, "media"),
    ("/pharmacies/", None, "pharmacies"),
    ("/push/", None, "push"),
    ("/health", None, "ops"),
]
METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def _tagged(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with each operation's tag (`TAG_RULES`); an operation no rule matches is a bug."""
    for path, item in paths.items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            tag = next(
                (t for prefix, only, t in TAG_RULES if path.startswith(prefix) and (only is None or method in only)),
                None,
            )
            if tag is None:
                raise AssertionError(f"no tag for {method.upper()} {path}: add it to TAG_RULES")
            operation["tags"] = [tag]
    return paths


def build_spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "medreq",
            "version": __version__,
            "description": "WebSockets, errors and delivery: [the protocol reference](/docs/protocol)"
            " (docs/protocol.md in the medreq repository).",
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "paths": _tagged(_paths()),
        "components": {
            "schemas": _components(),
            "responses": _responses(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


@functools.cache
def spec() -> dict[str, Any]:
    """The document, built on first use (the first /openapi.json), not at import: building it
    was ~11 ms of CPU before the server could accept (issue 14, docs/benchmarks.md)."""
    return build_spec()


async def openapi_json(request: Request) -> Response:
    return JSONResponse(spec())


routes = [Route("/openapi.json", openapi_json, methods=["GET"]), *asyncapi.routes]
"""Both published documents: this one and AsyncAPI's (`asyncapi.py`), from the same models."""
