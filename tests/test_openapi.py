"""The OpenAPI document at /openapi.json: a valid OpenAPI 3.1 description of every REST route,
its limits taken from the pydantic models, every error in the one §1 shape."""

from __future__ import annotations

import re
from typing import Any

import httpx
from openapi_spec_validator import validate
from starlette.routing import Route

from medreq.protocol import ERROR_WIRE, MAX_ID, LogoutIn, PasswordIn, RequestForm, ResponseForm
from medreq.web.rest import routes as rest_routes
from medreq.web.rest.openapi import spec

from .conftest import ServerProcess

SPEC = spec()  # built on first use, like the server's /openapi.json


def documented() -> set[tuple[str, str]]:
    return {
        (path, method) for path, item in SPEC["paths"].items() for method in item if method != "parameters"
    }


def test_the_served_document_is_valid_openapi(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document == SPEC


def test_every_rest_route_is_documented() -> None:
    served = {
        (re.sub(r":\w+}", "}", route.path), method.lower())
        for route in rest_routes.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert served - documented() == set()
    assert documented() - served == set()


def test_path_parameters_and_bodies_are_described() -> None:
    for path, item in SPEC["paths"].items():
        if "{request_id}" in path:
            (param,) = item["parameters"]
            assert (param["name"], param["in"], param["required"]) == ("request_id", "path", True)
            assert param["schema"]["maximum"] == MAX_ID
        for method, operation in item.items():
            if method == "parameters":
                continue
            body = operation.get("requestBody", {}).get("content", {})
            assert "content" not in body, (path, method)  # the old `content.content` mistake
            for media in body.values():
                assert "$ref" in media["schema"], (path, method)


def test_every_operation_documents_its_errors_in_one_shape() -> None:
    responses = SPEC["components"]["responses"]
    for path, method in documented():
        operation = SPEC["paths"][path][method]
        codes = {int(code) for code in operation["responses"]}
        assert {429, 431, 503} <= codes, (path, method)
        if operation["security"] and operation["security"] != [{}, {"bearer": []}]:
            assert 401 in codes, (path, method)
        if "requestBody" in operation:
            assert {413, 415, 422} <= codes, (path, method)
        for code in {code for code in codes if code >= 300}:
            assert operation["responses"][str(code)] == {"$ref": f"#/components/responses/E{code}"}
    for name, response in responses.items():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
        if name in ("E429", "E503"):
            assert response["headers"]["Retry-After"]["required"] is True


def test_limits_come_from_the_models() -> None:
    schemas: dict[str, Any] = SPEC["components"]["schemas"]
    form = schemas["RequestForm"]["properties"]
    assert (form["quantity"]["minimum"], form["quantity"]["maximum"]) == (1, 1000)
    assert form["note"]["maxLength"] == 1000
    assert form["image"]["format"] == "binary"
    assert schemas["ResponseForm"]["properties"]["text_message"]["maxLength"] == 2000
    assert schemas["PasswordIn"] == PasswordIn.model_json_schema()
    assert schemas["LogoutIn"] == LogoutIn.model_json_schema()
    assert schemas["PasswordIn"]["properties"]["new"]["minLength"] == 8
    codes = set(schemas["ErrorDetail"]["properties"]["code"]["enum"])
    assert {"method_not_allowed", "headers_too_large", "unavailable", "validation_error"} <= codes


def _limits(prop: dict[str, Any]) -> dict[str, Any]:
    """A property's bounds, looking through `anyOf: [X, null]` (an optional field)."""
    options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    keys = ("minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength", "pattern", "enum", "const", "maxItems")
    return {key: option[key] for option in options for key in keys if key in option}


def test_form_limits_are_the_form_models_own() -> None:
    """The multipart forms are described from `RequestForm`/`ResponseForm` themselves: every bound
    in the document is the model's (no copy to fall out of step)."""
    schemas: dict[str, Any] = SPEC["components"]["schemas"]
    for model in (RequestForm, ResponseForm):
        own = model.model_json_schema()["properties"]
        described = schemas[model.__name__]["properties"]
        assert set(own) <= set(described), model.__name__
        for name, prop in own.items():
            assert _limits(described[name]) == _limits(prop), (model.__name__, name)
            assert _limits(prop), (model.__name__, name)  # every form field has a bound


def test_error_statuses_come_from_the_one_mapping() -> None:
    responses = SPEC["components"]["responses"]
    for code, wire in ERROR_WIRE.items():
        if code == "internal" or code == "method_not_allowed":
            continue  # never listed per operation: any request may meet them
        assert f"(`{code}`)" in responses[f"E{wire.status}"]["description"], code


def test_outbound_bodies_are_closed() -> None:
    """A field the server sends but the document lacks fails the contract test (test_wire_contract.py)."""
    schemas: dict[str, Any] = SPEC["components"]["schemas"]
    for name, schema in schemas.items():
        if name.endswith("Out"):
            assert schema.get("additionalProperties") is False, name


def test_every_operation_is_grouped_under_its_area(server: ServerProcess) -> None:
    """/docs lists operations by tag: each has one of the declared areas, none falls to "default"."""
    document = httpx.get(f"{server.url}/openapi.json").json()
    declared = [tag["name"] for tag in document["tags"]]
    assert set(declared) == {"auth", "requests", "media", "pharmacies", "webhooks", "push", "ops"}
    used: dict[str, set[str]] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert len(operation.get("tags", [])) == 1, (method, path)
            (tag,) = operation["tags"]
            assert tag in declared, (method, path, tag)
            used.setdefault(tag, set()).add(f"{method.upper()} {path}")
    assert set(used) == set(declared)  # no declared area is empty
    assert "POST /medicine/request/" in used["requests"] and "POST /auth/token" in used["auth"]
    assert "PUT /auth/me" in used["webhooks"] and "GET /health" in used["ops"]
    assert "/docs/protocol" in document["info"]["description"]
