"""REST endpoints of docs/protocol.md §2–§3. Each parses, calls the service, renders; nothing more."""

from __future__ import annotations

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
from ...service import Offer
from .. import convertors  # noqa: F401  (registers the `id` convertor used below)
from ..http import JSONResponse, authenticate, limit_anonymous, read_json, service_of
from .forms import form_fields, form_file, form_values, read_form


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


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/auth/register", register, methods=["POST"]),
    Route("/auth/token", token, methods=["POST"]),
    Route("/auth/refresh", refresh, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
    Route("/auth/logout-all", logout_everywhere, methods=["POST"]),
    Route("/auth/password", change_password, methods=["POST"]),
    Route("/auth/me", me, methods=["GET"]),
    Route("/auth/me", remove_me, methods=["DELETE"]),
    Route("/auth/me", set_webhook, methods=["PUT"]),
    Route("/auth/me/webhook-deliveries", webhook_deliveries, methods=["GET"]),
    Route("/auth/me/webhook-test", test_webhook, methods=["POST"]),
    Route("/push/vapid-public-key", vapid_public_key, methods=["GET"]),
    Route("/push/subscriptions", add_push_subscription, methods=["POST"]),
    Route("/push/subscriptions", remove_push_subscription, methods=["DELETE"]),
    Route("/push/subscriptions", push_subscriptions, methods=["GET"]),
    Route("/push/subscriptions/{subscription_id:id}", remove_push_subscription_by_id, methods=["DELETE"]),
    Route("/pharmacies/", pharmacies, methods=["GET"]),
    Route("/medicine/request/", create_request, methods=["POST"]),
    Route("/medicine/request/", list_requests, methods=["GET"]),
    Route("/medicine/request/{request_id:id}/", request_detail, methods=["GET"]),
    Route("/medicine/request/{request_id:id}/cancel/", cancel_request, methods=["POST"]),
    Route("/medicine/request/{request_id:id}/choose/", choose_request, methods=["POST"]),
    Route("/medicine/request/{request_id:id}/messages/", post_message, methods=["POST"]),
    Route("/medicine/response/", respond, methods=["POST"]),
    Route("/media/{prefix}/{name}", media, methods=["GET"]),
]
