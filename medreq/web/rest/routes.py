"""REST endpoints of docs/protocol.md §2–§3. Each parses, calls the service, renders; nothing more.

Which method on which path reaches which handler is `medreq.protocol.operations.OPERATIONS`;
`HANDLERS` here names each operation's handler, and `routes` is made from the two."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from ... import __version__
from ...auth import bearer_token
from ...protocol import (
    IDEMPOTENCY_KEY,
    MAX_ID,
    DeliveriesQuery,
    HealthOut,
    ListQuery,
    LogoutIn,
    MessageBody,
    PasswordIn,
    PushEndpointIn,
    PushSubscriptionIn,
    RefreshIn,
    RegisterIn,
    RequestForm,
    ResponseForm,
    ResponseSentOut,
    TokenIn,
    WebhookIn,
    parse,
    validation_error,
)
from ...protocol.errors import Invalid, NotFound
from ...protocol.operations import OPERATIONS
from ...service import Offer
from .. import convertors  # noqa: F401  (registers the `id` convertor used below)
from ..http import JSONResponse, authenticate, limit_anonymous, read_json, service_of
from .forms import form_fields, form_file, form_values, read_form

Endpoint = Callable[[Request], Awaitable[Response]]


async def health(request: Request) -> Response:
    return JSONResponse(HealthOut(status="ok", version=__version__))


# --- §2 accounts ---------------------------------------------------------------------------------


async def register(request: Request) -> Response:
    limit_anonymous(request)
    data = await read_json(request, RegisterIn)
    return JSONResponse(await service_of(request).register(data), status_code=201)


async def token(request: Request) -> Response:
    limit_anonymous(request)
    data = await read_json(request, TokenIn)
    return JSONResponse(await service_of(request).issue_tokens(data))


async def refresh(request: Request) -> Response:
    limit_anonymous(request)
    data = await read_json(request, RefreshIn)
    return JSONResponse(await service_of(request).refresh(data.refresh))


async def logout(request: Request) -> Response:
    caller = await authenticate(request)
    data = await read_json(request, LogoutIn)
    await service_of(request).logout(caller, data.refresh)
    return Response(status_code=204)


async def logout_everywhere(request: Request) -> Response:
    caller = await authenticate(request)
    await service_of(request).logout_everywhere(caller)
    return Response(status_code=204)


async def change_password(request: Request) -> Response:
    caller = await authenticate(request)
    data = await read_json(request, PasswordIn)
    await service_of(request).change_password(caller, data.old, data.new)
    return Response(status_code=204)


async def me(request: Request) -> Response:
    caller = await authenticate(request)
    return JSONResponse(await service_of(request).me(caller))


async def set_webhook(request: Request) -> Response:
    caller = await authenticate(request)
    data = await read_json(request, WebhookIn)
    service = service_of(request)
    if "webhook_url" not in data.model_fields_set:  # the payload choice alone
        return JSONResponse(await service.set_webhook(caller, payload=data.webhook_payload))
    return JSONResponse(await service.set_webhook(caller, data.webhook_url, data.webhook_payload))


async def webhook_deliveries(request: Request) -> Response:
    caller = await authenticate(request)
    query = parse(DeliveriesQuery, dict(request.query_params))
    return JSONResponse(await service_of(request).webhook_deliveries(caller, query.limit))


async def test_webhook(request: Request) -> Response:
    caller = await authenticate(request)
    return JSONResponse(await service_of(request).test_webhook(caller), status_code=202)


async def vapid_public_key(request: Request) -> Response:
    await authenticate(request)
    return JSONResponse(service_of(request).vapid_public_key())


async def add_push_subscription(request: Request) -> Response:
    caller = await authenticate(request)
    data = await read_json(request, PushSubscriptionIn)
    return JSONResponse(await service_of(request).subscribe_push(caller, data), status_code=201)


async def remove_push_subscription(request: Request) -> Response:
    caller = await authenticate(request)
    data = await read_json(request, PushEndpointIn)
    await service_of(request).unsubscribe_push(caller, data.endpoint)
    return Response(status_code=204)


async def push_subscriptions(request: Request) -> Response:
    caller = await authenticate(request)
    return JSONResponse(await service_of(request).push_subscriptions(caller))


async def remove_push_subscription_by_id(request: Request) -> Response:
    caller = await authenticate(request)
    subscription_id: int = request.path_params["subscription_id"]
    if subscription_id > MAX_ID:
        raise NotFound(f"push subscription {subscription_id} not found")
    await service_of(request).remove_push_subscription(caller, subscription_id)
    return Response(status_code=204)


async def remove_me(request: Request) -> Response:
    caller = await authenticate(request)
    await service_of(request).remove_synthetic_account(caller)
    return Response(status_code=204)


async def pharmacies(request: Request) -> Response:
    caller = await authenticate(request)
    return JSONResponse(await service_of(request).pharmacies_for(caller))


# --- §3 medicine requests ------------------------------------------------------------------------


async def create_request(request: Request) -> Response:
    caller = await authenticate(request)
    service = service_of(request)
    with await read_form(request, file_limit=service.limits.max_image_bytes) as form:
        fields = form_fields(form, "quantity", "patient", "medicine_name", "note")
        pharmacies = form_values(form, "pharmacy")  # repeated: several pharmacies at once (§8)
        if pharmacies is not None:
            fields["pharmacy"] = pharmacies
        data = parse(RequestForm, fields)
        image = form_file(form, "image")
        key = _idempotency_key(request)
        if len(data.pharmacy) > 1:  # rate limits count one request per pharmacy
            request.app.state.rest_limiter.hit(caller.id, cost=len(data.pharmacy) - 1)
        body, _created = await service.create_request(caller, data, image, idempotency_key=key)
    return JSONResponse(body, status_code=201)


async def list_requests(request: Request) -> Response:
    caller = await authenticate(request)
    query = parse(ListQuery, dict(request.query_params))
    return JSONResponse(await service_of(request).list_requests(caller, query))


async def request_detail(request: Request) -> Response:
    caller = await authenticate(request)
    return JSONResponse(await service_of(request).request_detail(caller, _request_id(request)))


async def cancel_request(request: Request) -> Response:
    caller = await authenticate(request)
    request_id = _request_id(request)
    return JSONResponse(await service_of(request).cancel(caller, request_id))


async def choose_request(request: Request) -> Response:
    caller = await authenticate(request)
    request_id = _request_id(request)
    return JSONResponse(await service_of(request).choose(caller, request_id))


async def post_message(request: Request) -> Response:
    caller = await authenticate(request)
    request_id = _request_id(request)
    data = await read_json(request, MessageBody)
    result = await service_of(request).post_message(caller, request_id, data.text)
    return JSONResponse(result, status_code=201)


def _idempotency_key(request: Request) -> str | None:
    raw = request.headers.get("idempotency-key")
    if not raw:
        return None
    try:
        return IDEMPOTENCY_KEY.validate_python(raw)
    except ValidationError as exc:
        error = validation_error(exc)
        text = next(iter((error.fields or {}).values()), "invalid")
        raise Invalid(f"Idempotency-Key: {text}", fields={"Idempotency-Key": text}) from None


def _request_id(request: Request) -> int:
    request_id: int = request.path_params["request_id"]
    if request_id > MAX_ID:
        raise NotFound(f"request {request_id} not found")
    return request_id


async def respond(request: Request) -> Response:
    caller = await authenticate(request)
    service = service_of(request)
    with await read_form(request, file_limit=service.limits.max_audio_bytes) as form:
        fields = form_fields(form, "request_id", "status", "text_message", "price", "currency", "ready_at")
        data = parse(ResponseForm, fields)
        audio = form_file(form, "audio")
        offer = Offer(price=data.price, currency=data.currency, ready_at=data.ready_at)
        view = await service.respond(caller, data.request_id, data.status, data.text_message, audio, offer)
    return JSONResponse(ResponseSentOut(message="Response sent successfully", data=view))


# --- media ---------------------------------------------------------------------------------------


async def media(request: Request) -> Response:
    found = await service_of(request).media_file(
        request.path_params["prefix"],
        request.path_params["name"],
        to=request.query_params.get("to"),
        exp=request.query_params.get("exp"),
        sig=request.query_params.get("sig"),
        caller_token=lambda: bearer_token(request.headers.get("authorization")),
    )
    return FileResponse(found.path, media_type=found.content_type, headers=found.headers)


HANDLERS: dict[str, Endpoint] = {
    "health": health,
    "register": register,
    "token": token,
    "refresh": refresh,
    "logout": logout,
    "logout_everywhere": logout_everywhere,
    "change_password": change_password,
    "me": me,
    "remove_me": remove_me,
    "set_webhook": set_webhook,
    "webhook_deliveries": webhook_deliveries,
    "test_webhook": test_webhook,
    "vapid_public_key": vapid_public_key,
    "add_push_subscription": add_push_subscription,
    "remove_push_subscription": remove_push_subscription,
    "push_subscriptions": push_subscriptions,
    "remove_push_subscription_by_id": remove_push_subscription_by_id,
    "pharmacies": pharmacies,
    "create_request": create_request,
    "list_requests": list_requests,
    "request_detail": request_detail,
    "cancel": cancel_request,
    "choose": choose_request,
    "post_message": post_message,
    "respond": respond,
    "media": media,
}
"""Each operation of `medreq.protocol.operations.OPERATIONS` (by name) → its handler."""
assert HANDLERS.keys() == OPERATIONS.keys(), "an operation without a handler, or a handler without one"

routes = [Route(op.path, HANDLERS[name], methods=[op.method]) for name, op in OPERATIONS.items()]
"""The REST routes, in the table's order: a path or a method is written only there."""
