"""AsyncAPI 3.0 description of the WebSocket side (docs/protocol.md §4–§5) at `/asyncapi.json`,
generated from the same models as `/openapi.json` (`medreq.protocol`).

The application described is the medreq server: it *sends* every `ServerFrame` (the events, and
`ack`/`pong`/`error`/`resync_required`) and *receives* every `ClientMessage`, on two channels,
`/ws/user/{id}/` (patients) and `/ws/pharmacy/{id}/` (pharmacies). Close codes are listed in the
`x-close-codes` extension of each channel (code, name, meaning, and the §1 error it stands for),
read from `CloseCode` and `ERROR_WIRE`. `tests/test_asyncapi.py` checks the document.
"""

from __future__ import annotations

import functools
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ... import __version__
from ...protocol import (
    CLIENT_MESSAGE_MODELS,
    CLOSE_MEANINGS,
    ERROR_WIRE,
    OPTIONAL_ON_THE_WIRE,
    SERVER_FRAME_MODELS,
    TypedEvent,
)
from ...protocol.operations import CHANNELS
from ..http import JSONResponse

REF = "#/components/schemas/{model}"


def message_type(model: type[BaseModel]) -> str:
    """The `type` a frame or message model carries (the value of its `Literal` discriminator)."""
    (value,) = get_args(model.model_fields["type"].annotation)
    return str(value)


def _message_name(model: type[BaseModel], direction: str) -> str:
    return f"{direction}.{message_type(model)}"


def _schemas() -> dict[str, Any]:
    pairs: list[tuple[type[BaseModel], Any]] = [(m, "serialization") for m in SERVER_FRAME_MODELS]
    pairs += [(m, "validation") for m in CLIENT_MESSAGE_MODELS]
    _, top = models_json_schema(pairs, ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    for model in SERVER_FRAME_MODELS:
        if issubclass(model, TypedEvent):  # every event field is always sent, but these
            schema = schemas[model.__name__]
            schema["required"] = [f for f in schema.get("required", []) if f not in OPTIONAL_ON_THE_WIRE]
    return schemas


def _messages() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    sends = [m for channel in CHANNELS.values() for m in channel.sends]
    receives = [m for channel in CHANNELS.values() for m in channel.receives]
    for direction, models in (("server", dict.fromkeys(sends)), ("client", dict.fromkeys(receives))):
        for model in models:
            messages[_message_name(model, direction)] = {
                "name": message_type(model),
                "title": f"{message_type(model)} ({'server → client' if direction == 'server' else 'client → server'})",
                "summary": (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
                "contentType": "application/json",
                "payload": {"$ref": REF.format(model=model.__name__)},
            }
    return messages


def _close_codes() -> list[dict[str, Any]]:
    errors = {wire.close: code for code, wire in ERROR_WIRE.items() if wire.close is not None}
    listed = []
    for close, meaning in CLOSE_MEANINGS.items():
        entry: dict[str, Any] = {"code": int(close), "name": close.name, "description": meaning}
        if close >= 4000:
            entry["error"] = errors[close]
        listed.append(entry)
    return listed


def _channels() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for name, channel in CHANNELS.items():
        role = channel.role
        names = [_message_name(m, "server") for m in channel.sends]
        names += [_message_name(m, "client") for m in channel.receives]
        messages = {name: {"$ref": f"#/components/messages/{name}"} for name in names}
        channels[name] = {
            "address": channel.template,
            "title": f"A {role}'s live connection",
            "description": (
                f"One {role} account's socket: `id` is its account id, the access token goes in the"
                " `token` query parameter (or an `Authorization: Bearer` header), `after` replays"
                " stored events past that event id. The close codes are in `x-close-codes`."
            ),
            "parameters": {"id": {"description": f"The {role}'s account id (the token's `sub`)"}},
            "messages": messages,
            "bindings": {
                "ws": {
                    "method": "GET",
                    "query": {
                        "type": "object",
                        "properties": {
                            "token": {
                                "type": "string",
                                "description": "An access token (`POST /auth/token`)",
                            },
                            "after": {
                                "type": "integer",
                                "minimum": 0,
                                "description": "Replay stored events with a greater `event_id`, then go live",
                            },
                        },
                    },
                    "bindingVersion": "0.1.0",
                }
            },
            "x-close-codes": _close_codes(),
        }
    return channels


def _operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for channel, declared in CHANNELS.items():
        for direction, action, models in (
            ("server", "send", declared.sends),
            ("client", "receive", declared.receives),
        ):
            for model in models:
                name = _message_name(model, direction)
                operations[f"{channel}.{action}.{message_type(model)}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{channel}"},
                    "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
                    "summary": ("The server sends " if action == "send" else "The server receives ")
                    + f"`{message_type(model)}`",
                }
    return operations


def build_document() -> dict[str, Any]:
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "medreq WebSockets",
            "version": __version__,
            "description": "The live side of medreq: docs/protocol.md §4–§5 in the medreq repository."
            " REST is described at /openapi.json, from the same models.",
        },
        "defaultContentType": "application/json",
        "channels": _channels(),
        "operations": _operations(),
        "components": {"messages": _messages(), "schemas": _schemas()},
    }


@functools.cache
def document() -> dict[str, Any]:
    """The document, built on first use (the first /asyncapi.json), not at import: building it
    was ~11 ms of CPU before the server could accept (issue 14, docs/benchmarks.md)."""
    return build_document()


async def asyncapi_json(request: Request) -> Response:
    return JSONResponse(document())


routes = [Route("/asyncapi.json", asyncapi_json, methods=["GET"])]
