"""OpenAPI 3.1 description of the REST part, built from the pydantic wire models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from ..schemas import (
    AccountOut,
    PharmacyOut,
    PushEndpointIn,
    PushSubscriptionIn,
    PushSubscriptionOut,
    RefreshIn,
    RegisterIn,
    RequestCreatedOut,
    RequestListOut,
    RequestOut,
    ResponseSentOut,
    TokenIn,
    TokenOut,
    VapidKeyOut,
    WebhookAccountOut,
    WebhookDeliveryListOut,
    WebhookDeliveryOut,
    WebhookIn,
)
from .http import JSONResponse

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}

REQUEST_FORM = {
    "type": "object",
    "required": ["pharmacy", "quantity"],
    "properties": {
        "pharmacy": {"type": "integer"},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
        "image": {"type": "string", "format": "binary", "description": "JPEG, PNG, WebP or PDF"},
        "patient": {"type": "integer"},
        "medicine_name": {"type": "string", "maxLength": 200},
        "note": {"type": "string", "maxLength": 1000},
    },
}

RESPONSE_FORM = {
    "type": "object",
    "required": ["request_id", "status"],
    "properties": {
        "request_id": {"type": "integer"},
        "status": {"type": "string", "enum": ["ACCEPTED", "REJECTED"]},
        "text_message": {"type": "string", "maxLength": 2000},
        "audio": {"type": "string", "format": "binary", "description": "WebM, Ogg, MP3, M4A/MP4 or WAV"},
    },
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: int, out: dict[str, Any], *, body: Any = None, auth: bool = True) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {
            str(ok): {"description": "OK", **_json(out)},
            "default": {
                "description": "Error (PROTOCOL.md §1)",
                **_json({"$ref": "#/components/schemas/Error"}),
            },
        },
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": body}
    if auth:
        operation["security"] = [{"bearer": []}]
    return operation


def _no_content(operation: dict[str, Any]) -> dict[str, Any]:
    operation["responses"]["204"] = {"description": "Done; no body"}
    return operation


def build_spec() -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        AccountOut,
        PharmacyOut,
        RegisterIn,
        TokenIn,
        RefreshIn,
        TokenOut,
        RequestOut,
        RequestCreatedOut,
        ResponseSentOut,
        RequestListOut,
        WebhookIn,
        WebhookAccountOut,
        WebhookDeliveryOut,
        WebhookDeliveryListOut,
        VapidKeyOut,
        PushSubscriptionIn,
        PushEndpointIn,
        PushSubscriptionOut,
    ]
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    pharmacies = {"type": "object", "properties": {"results": {"type": "array", "items": _ref(PharmacyOut)}}}
    paths = {
        "/health": {"get": _op("Liveness", 200, {"type": "object"}, auth=False)},
        "/auth/register": {
            "post": _op("Create an account", 201, _ref(AccountOut), body=_json(_ref(RegisterIn)), auth=False)
        },
        "/auth/token": {
            "post": _op(
                "Get access and refresh tokens", 200, _ref(TokenOut), body=_json(_ref(TokenIn)), auth=False
            )
        },
        "/auth/refresh": {
            "post": _op("New access token", 200, {"type": "object"}, body=_json(_ref(RefreshIn)), auth=False)
        },
        "/auth/me": {
            "get": _op("The caller's account", 200, _ref(AccountOut)),
            "delete": _no_content(_op("Remove a synthetic (simulation) account and all its data", 204, {})),
            "put": _op(
                "Set (null: clear) the webhook; the answer shows its signing secret once (PROTOCOL.md §6)",
                200,
                _ref(WebhookAccountOut),
                body=_json(_ref(WebhookIn)),
            ),
        },
        "/auth/me/webhook-deliveries": {
            "get": _op("The caller's webhook deliveries, newest first", 200, _ref(WebhookDeliveryListOut))
        },
        "/push/vapid-public-key": {
            "get": _op("The server's VAPID key, for pushManager.subscribe", 200, _ref(VapidKeyOut))
        },
        "/push/subscriptions": {
            "post": _op(
                "Register a browser's PushSubscription (its toJSON())",
                201,
                _ref(PushSubscriptionOut),
                body=_json(_ref(PushSubscriptionIn)),
            ),
            "delete": _no_content(
                _op("Remove a push subscription of the caller's", 204, {}, body=_json(_ref(PushEndpointIn)))
            ),
        },
        "/auth/me/webhook-test": {
            "post": _op("Queue a `webhook_test` delivery to the caller's webhook", 202, _ref(WebhookDeliveryOut))
        },
        "/pharmacies/": {"get": _op("Pharmacies a patient can address", 200, pharmacies)},
        "/medicine/request/": {
            "post": _op(
                "Send a medicine request (patient)",
                201,
                _ref(RequestCreatedOut),
                body={"multipart/form-data": {"schema": REQUEST_FORM}},
            ),
            "get": _op("List the caller's requests, newest first", 200, _ref(RequestListOut)),
        },
        "/medicine/request/{request_id}/": {
            "get": _op("One request with its message thread", 200, _ref(RequestOut))
        },
        "/medicine/response/": {
            "post": _op(
                "Answer a pending request (pharmacy)",
                200,
                _ref(ResponseSentOut),
                body={"multipart/form-data": {"schema": RESPONSE_FORM}},
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "medreq", "version": __version__, "description": "See PROTOCOL.md for WebSockets."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


SPEC = build_spec()


async def openapi_json(request: Request) -> Response:
    return JSONResponse(SPEC)


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
