"""HTTP plumbing shared by the routes: JSON in and out, bearer auth, rate limits, and the one
mapping of `MedreqError` to a response."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..auth import bearer_token
from ..protocol import dumps, parse, to_json
from ..protocol.errors import (
    ERRORS_BY_STATUS,
    InvalidJSON,
    MedreqError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    UnsupportedMediaType,
)
from ..protocol.errors import Invalid as InvalidInput
from ..service import Caller, MedreqService
from ..telemetry import tracing
from . import json_limits, wire_record

log = logging.getLogger("medreq.http")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, BaseModel):  # the protocol's models (medreq.protocol)
            return to_json(content)
        return dumps(content).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        recording = wire_record.recorder()  # a test aid, off unless MEDREQ_WIRE_RECORD is set
        if recording is not None:
            recording.http(scope, self.status_code, self.body)
        await super().__call__(scope, receive, send)


def service_of(request: Request) -> MedreqService:
    return request.app.state.service  # type: ignore[no-any-return]


# --- errors --------------------------------------------------------------------------------------


def error_response(exc: MedreqError) -> JSONResponse:
    headers = {}
    if isinstance(exc, RateLimited | Unavailable):
        headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.5)))
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def on_medreq_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MedreqError)
    return error_response(exc)


async def on_http_exception(_request: Request, exc: Exception) -> Response:
    """Starlette's own errors (routing, mostly) in the §1 shape, with a §1 code and status."""
    assert isinstance(exc, HTTPException)
    error: MedreqError
    if exc.status_code == 404:
        error = NotFound("no such endpoint")
    elif exc.status_code == 405:
        error = MethodNotAllowed()
    elif exc.status_code in ERRORS_BY_STATUS:
        error = ERRORS_BY_STATUS[exc.status_code](str(exc.detail))
    elif exc.status_code < 500:
        error = InvalidInput(str(exc.detail))
    else:
        error = MedreqError()
    response = error_response(error)
    response.headers.update(exc.headers or {})
    return response


async def on_client_disconnect(_request: Request, exc: Exception) -> Response:
    """The client went away mid-body (a simulator giving up, a phone losing signal): nothing
    to answer and nothing wrong here, so no traceback in the log."""
    log.debug("client disconnected before its request body was read")
    return Response(status_code=400)


async def on_unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(MedreqError("internal error"))


#: Starlette's `exception_handlers`, and `direct.DirectRoutes`'s: the most specific class wins.
EXCEPTION_HANDLERS: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
    MedreqError: on_medreq_error,
    HTTPException: on_http_exception,
    ClientDisconnect: on_client_disconnect,
    Exception: on_unexpected,
}


async def handle_exception(request: Request, exc: Exception) -> Response:
    """The response `EXCEPTION_HANDLERS` gives `exc` (looked up along its class's MRO, as
    Starlette looks it up)."""
    for cls in type(exc).__mro__:
        handler = EXCEPTION_HANDLERS.get(cls)
        if handler is not None:
            return await handler(request, exc)
    raise exc  # unreachable while `Exception` has a handler (mypy wants a way out)


# --- input ---------------------------------------------------------------------------------------


async def read_json(request: Request, model: type[BaseModel]) -> Any:
    """Parse a small JSON body into `model` (400 invalid_json, 413, 422).

    Bounded in size (`max_json_body`, checked on the declared length and on the stream) and
    in nesting (`max_json_depth`, checked before parsing: deep nesting was a 500
    `RecursionError`).
    """
    # Lenient on the declared type (curl -d says urlencoded), strict on the content.
    if request.headers.get("content-type", "").startswith("multipart/"):
        raise UnsupportedMediaType("body must be application/json")
    limits = service_of(request).limits
    limit = limits.max_json_body
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"JSON body is larger than {limit} bytes")
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"JSON body is larger than {limit} bytes")
    except ClientDisconnect:  # gone, or cut off by `body_timeout`: no answer reaches it
        raise InvalidJSON("body ended before its end") from None
    data = json_limits.loads(body, max_depth=limits.max_json_depth)
    if not isinstance(data, dict):
        raise InvalidJSON("body must be a JSON object")
    return parse(model, data)


# --- auth and limits -----------------------------------------------------------------------------


async def authenticate(request: Request) -> Caller:
    """The caller of a REST request (401 without a valid token), after its rate limit."""
    service = service_of(request)
    caller = await service.authenticate(bearer_token(request.headers.get("authorization")))
    tracing.identify(caller.id, caller.role)  # for the request's log line
    request.app.state.rest_limiter.hit(caller.id)
    return caller


def limit_anonymous(request: Request) -> None:
    """Rate-limit unauthenticated endpoints (register, token) by client address."""
    client = request.client.host if request.client else "unknown"
    request.app.state.rest_limiter.hit(("ip", client))
