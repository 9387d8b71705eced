"""HTTP plumbing shared by the routes: JSON in and out, bearer auth, rate limits, bounded forms,
and the one mapping of `MedreqError` to a response."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive

from .. import tracing
from ..auth import bearer_token
from ..errors import Invalid as InvalidInput
from ..errors import (
    InvalidJSON,
    MedreqError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UnsupportedMediaType,
)
from ..media import Kind, StoredMedia
from ..schemas import dumps, parse
from ..service import Caller, MedreqService

log = logging.getLogger("medreq.http")

MAX_JSON_BODY = 64 * 1024
FORM_OVERHEAD = 256 * 1024  # room for the text fields and multipart framing around a file
FORM_CONTENT_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content).encode()


def service_of(request: Request) -> MedreqService:
    return request.app.state.service  # type: ignore[no-any-return]


# --- errors --------------------------------------------------------------------------------------


def error_response(exc: MedreqError) -> JSONResponse:
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.5)))
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def on_medreq_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MedreqError)
    return error_response(exc)


async def on_http_exception(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFound("no such endpoint"))
    if exc.status_code == 405:
        body = {"error": {"code": "method_not_allowed", "message": "method not allowed on this endpoint"}}
        return JSONResponse(body, status_code=405, headers=exc.headers)
    error = MedreqError(str(exc.detail))
    return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)


async def on_unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(MedreqError("internal error"))


# --- input ---------------------------------------------------------------------------------------


async def read_json(request: Request, model: type[BaseModel]) -> Any:
    """Parse a small JSON body into `model` (400 invalid_json, 413, 422)."""
    # Lenient on the declared type (curl -d says urlencoded), strict on the content.
    if request.headers.get("content-type", "").startswith("multipart/"):
        raise UnsupportedMediaType("body must be application/json")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise PayloadTooLarge(f"JSON body is larger than {MAX_JSON_BODY} bytes")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidJSON("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidJSON("body must be a JSON object")
    return parse(model, data)


async def read_form(request: Request, *, file_limit: int) -> FormData:
    """Parse a multipart or urlencoded body, never buffering more than `file_limit` + overhead.

    The declared Content-Length is checked first; the stream itself is counted too, so a
    client that lies about (or omits) the length is cut off at the same point.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in FORM_CONTENT_TYPES:
        raise UnsupportedMediaType("body must be multipart/form-data")
    limit = file_limit + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    bounded = Request(request.scope, _bounded_receive(request.receive, limit))
    try:
        return await bounded.form(max_files=2, max_fields=20, max_part_size=64 * 1024)
    except MultiPartException as exc:
        raise InvalidInput(f"malformed form: {exc.message}") from None


def _bounded_receive(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        return message

    return bounded


def form_fields(form: FormData, *names: str) -> dict[str, Any]:
    """The text fields among `names` that were sent (a file where text belongs is an error)."""
    fields: dict[str, Any] = {}
    for name in names:
        value = form.get(name)
        if value is None:
            continue
        if isinstance(value, UploadFile):
            raise InvalidInput(f"{name}: must be a text field", fields={name: "must be a text field"})
        if value != "":
            fields[name] = value
    return fields


def form_file(form: FormData, name: str) -> UploadFile | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, UploadFile):
        raise InvalidInput(f"{name}: must be a file upload", fields={name: "must be a file upload"})
    return value


async def store_upload(
    service: MedreqService, kind: Kind, field: str, upload: UploadFile | None, *, limit: int
) -> StoredMedia | None:
    if upload is None:
        return None

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await upload.read(64 * 1024):
            yield chunk

    return await service.media.save(kind, field, chunks(), limit=limit)


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
