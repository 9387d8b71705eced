"""OpenAPI 3.1 description of the REST part (docs/protocol.md §1–§3), built from the operation
table and the pydantic wire models.

Every path, method, parameter, body, answer, error, tag and summary comes from
`medreq.protocol.operations.OPERATIONS`, the table the server's routes are made from too. Every schema is generated from `medreq.protocol` (one `models_json_schema` call, refs into
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
from ...protocol import ERROR_WIRE, DbId, ErrorOut, IdempotencyKey, operations
from ...protocol.operations import FILE, OPERATIONS, PATH_PARAMETERS, TAGS, Operation
from ..http import JSONResponse
from . import asyncapi

REF = "#/components/schemas/{model}"
FILE_FIELDS = {
    "image": "JPEG, PNG, WebP or PDF (sniffed from its bytes)",
    "audio": "WebM, Ogg, MP3, M4A/MP4 or WAV (sniffed)",
}
"""What each form's file field may hold (`Operation.files`)."""
FORM = "multipart/form-data"
SEGMENTS: dict[str, dict[str, Any]] = {
    "prefix": {"enum": sorted(KIND_BY_PREFIX)},
    "name": {"type": "string", "pattern": "^[^/]+$"},
}
"""The schema of each plain `{name}` path segment (the media links')."""
SIGNED_QUERY: list[dict[str, Any]] = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
    for name in ("to", "exp", "sig")
]
"""A signed media link's query (`medreq.media`): for whom, until when, and its signature."""

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


def _schema(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    return adapter.json_schema(ref_template=REF)


def _components() -> dict[str, Any]:
    taken, answered = operations.models()
    pairs = [(m, "validation") for m in taken] + [(m, "serialization") for m in [*answered, ErrorOut]]
    _, top = models_json_schema(pairs, ref_template=REF)  # type: ignore[arg-type]
    schemas: dict[str, Any] = top.get("$defs", {})
    for op in OPERATIONS.values():
        if op.form is not None:
            schemas[op.form.__name__] = _form(op.form, **{name: FILE_FIELDS[name] for name in op.files})
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


SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "none": [],
    "bearer": [{"bearer": []}],
    "bearer_or_signed": [{}, {"bearer": []}],  # a signed URL, or a participant's token
}


def _operation(op: Operation) -> dict[str, Any]:
    """One operation of `OPERATIONS` in OpenAPI's terms (its path's parameters are the path's)."""
    responses: dict[str, Any] = {str(op.status): {"description": op.summary}}
    if isinstance(op.answer, type):
        responses[str(op.status)]["content"] = _json(op.answer.__name__)
    elif op.answer == FILE:
        binary = {"schema": {"type": "string", "format": "binary"}}
        responses[str(op.status)]["content"] = {t: binary for t in sorted(set(CONTENT_TYPES.values()))}
    for code in op.statuses:
        responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    operation: dict[str, Any] = {"summary": op.summary, "responses": responses}
    parameters = [_idempotency_key()] if op.idempotency_key else []
    if op.query is not None:
        parameters += _query(op.query)
    if op.auth == "bearer_or_signed":
        parameters += SIGNED_QUERY
    if parameters:
        operation["parameters"] = parameters
    if op.json is not None:
        operation["requestBody"] = {"required": True, "content": _json(op.json.__name__)}
    elif op.form is not None:
        operation["requestBody"] = {"required": True, "content": {FORM: {"schema": _ref(op.form.__name__)}}}
    operation["security"] = SECURITY[op.auth]
    operation["tags"] = [op.tag]
    return operation


def _idempotency_key() -> dict[str, Any]:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "A retry with the same key returns the first response and creates nothing new",
        "schema": _schema(TypeAdapter(IdempotencyKey)),
    }


def _path_parameter(name: str, convertor: str | None) -> dict[str, Any]:
    if convertor == "id":
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": PATH_PARAMETERS[name],
            "schema": _schema(TypeAdapter(DbId)),
        }
    return {"name": name, "in": "path", "required": True, "schema": SEGMENTS[name]}


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
    """Every operation of `OPERATIONS` under its path, in the table's order; a path's parameters
    are the path item's (OpenAPI applies them to each of its operations)."""
    paths: dict[str, Any] = {}
    for op in OPERATIONS.values():
        item = paths.setdefault(op.template, {})
        if op.parameters:
            item["parameters"] = [_path_parameter(name, kind) for name, kind in op.parameters.items()]
        item[op.method.lower()] = _operation(op)
    return paths


def _responses() -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code, description in ERRORS.items():
        response: dict[str, Any] = {"description": description, "content": _json("ErrorOut")}
        if code in (429, 503):
            response["headers"] = copy.deepcopy(RETRY_AFTER)
        responses[f"E{code}"] = response
    return responses


def build_spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "medreq",
            "version": __version__,
            "description": "WebSockets, errors and delivery: [the protocol reference](/docs/protocol)"
            " (docs/protocol.md in the medreq repository).",
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": _paths(),
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
