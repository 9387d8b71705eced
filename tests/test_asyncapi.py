"""The AsyncAPI 3.0 document at /asyncapi.json: served, AsyncAPI 3.0 in shape, complete (every
event, reply and client message of `medreq.protocol`, every close code), and every `$ref` in it
resolves. It is built from the same models as /openapi.json."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from medreq.protocol import CLIENT_MESSAGE_TYPES, EVENT_TYPES, SERVER_FRAME_MODELS, CloseCode
from medreq.web.rest.asyncapi import document, message_type
from medreq.web.rest.openapi import spec

from .conftest import ServerProcess

DOCUMENT = document()  # built on first use, like the server's /asyncapi.json
SPEC = spec()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref}: no {part!r}"
        node = node[part]
    return node


def test_it_is_served_and_links_from_the_docs_page(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == DOCUMENT
    assert 'href="/asyncapi.json"' in httpx.get(f"{server.url}/docs").text


def test_it_has_the_shape_of_asyncapi_3() -> None:
    assert DOCUMENT["asyncapi"] == "3.0.0"
    assert {"title", "version"} <= set(DOCUMENT["info"])
    addresses = {channel["address"] for channel in DOCUMENT["channels"].values()}
    assert addresses == {"/ws/user/{id}/", "/ws/pharmacy/{id}/"}
    for channel in DOCUMENT["channels"].values():
        assert set(channel["parameters"]) == {"id"}
        assert "token" in channel["bindings"]["ws"]["query"]["properties"]
        for message in channel["messages"].values():
            assert set(message) == {"$ref"}  # channel messages are references to components
    for name, operation in DOCUMENT["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        channel_ref = operation["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/"), name
        for message in operation["messages"]:  # a subset of its channel's messages (AsyncAPI 3.0)
            assert message["$ref"].startswith(channel_ref + "/messages/"), name
    for message in DOCUMENT["components"]["messages"].values():
        assert set(message["payload"]) == {"$ref"}


def _follow(ref: str) -> Any:
    node = _resolve(DOCUMENT, ref)
    while set(node) == {"$ref"}:
        node = _resolve(DOCUMENT, node["$ref"])
    return node


def test_every_event_reply_and_message_is_there() -> None:
    by_action: dict[str, set[str]] = {"send": set(), "receive": set()}
    for operation in DOCUMENT["operations"].values():
        for message in operation["messages"]:
            by_action[operation["action"]].add(_follow(message["$ref"])["name"])
    frames = {message_type(model) for model in SERVER_FRAME_MODELS}
    assert set(EVENT_TYPES) | {"ack", "pong", "error", "resync_required"} <= frames
    assert by_action["send"] == frames
    assert by_action["receive"] == set(CLIENT_MESSAGE_TYPES)
    for channel in DOCUMENT["channels"].values():
        codes = {entry["code"] for entry in channel["x-close-codes"]}
        assert codes == {int(code) for code in CloseCode}
        errors = {entry["code"]: entry.get("error") for entry in channel["x-close-codes"]}
        assert errors[4401] == "unauthorized" and errors[4403] == "forbidden" and errors[4404] == "not_found"


def test_every_ref_resolves() -> None:
    refs = set(_refs(DOCUMENT))
    assert len(refs) > 30
    for ref in refs:
        _resolve(DOCUMENT, ref)


def test_outbound_frames_are_closed_and_events_list_their_fields() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    for model in SERVER_FRAME_MODELS:
        assert schemas[model.__name__]["additionalProperties"] is False, model.__name__
    for name, model in EVENT_TYPES.items():
        schema = schemas[model.__name__]
        assert {"type", "event_id", "timestamp"} <= set(schema["required"]), name
        assert "trace_id" in schema["properties"] and "trace_id" not in schema["required"], name


def test_the_same_models_describe_both_documents() -> None:
    rest, live = SPEC["components"]["schemas"], DOCUMENT["components"]["schemas"]
    for shared in ("RequestOut", "PartyOut", "ResponseOut", "MessageOut", "ErrorDetail"):
        assert rest[shared] == live[shared], shared
