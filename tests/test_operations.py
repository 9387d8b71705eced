"""The one declaration of every operation (`medreq.protocol.operations`) against everything that
speaks the wire: the app routes exactly the declared operations, the WebSocket routes are the
declared channels, the console's calls (`web/static/*.js`) are declared operations, and the
protocol layer needs no web framework."""

from __future__ import annotations

import ast
import doctest
import re
from pathlib import Path

import pytest
from starlette.routing import Match, Route, WebSocketRoute

import medreq
from medreq.config import Settings
from medreq.protocol import operations
from medreq.protocol.errors import ERRORS_BY_CODE, MedreqError, Unauthorized
from medreq.protocol.operations import CHANNELS, OPERATIONS, TAGS, Operation, find, path
from medreq.web import create_app
from medreq.web.rest.routes import HANDLERS
from medreq.web.socket import endpoint as websocket

PACKAGE = Path(medreq.__file__).parent
STATIC = PACKAGE / "web" / "static"
# what the app serves besides the API: the published documents, the metrics, the console and its
# docs (a new route is either declared in OPERATIONS or added here on purpose)
NOT_OPERATIONS = {"/openapi.json", "/asyncapi.json", "/metrics", "/", "/sw.js", "/docs", "/docs/protocol"}
SAMPLE = {"id": 7, None: "x"}  # a value for each kind of path parameter


def sample_url(op: Operation) -> str:
    return op.url(**{name: SAMPLE[kind] for name, kind in op.parameters.items()})


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory: pytest.TempPathFactory) -> list[Route]:
    app = create_app(Settings.load(env={}, data_dir=tmp_path_factory.mktemp("data")), migrate=False)
    return [route for route in app.app.routes if isinstance(route, Route)]


def test_every_app_route_is_a_declared_operation(app_routes: list[Route]) -> None:
    served = {
        (method, route.path)
        for route in app_routes
        if route.path not in NOT_OPERATIONS
        for method in route.methods or ()
        if method != "HEAD"  # Starlette's, with every GET
    }
    declared = {(op.method, op.path) for op in OPERATIONS.values()}
    assert served - declared == set(), "routed but not declared in protocol/operations.py"
    assert declared - served == set(), "declared but not routed"


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_every_declared_operation_reaches_its_handler(app_routes: list[Route], name: str) -> None:
    """The app's router sends the operation's method and a concrete URL of it to its handler."""
    op = OPERATIONS[name]
    scope = {"type": "http", "method": op.method, "path": sample_url(op), "root_path": ""}
    full = [route for route in app_routes if route.matches(scope)[0] == Match.FULL]
    assert full, f"{op.method} {sample_url(op)} reaches no route"
    assert full[0].endpoint is HANDLERS[name]


def test_the_websocket_routes_are_the_declared_channels() -> None:
    routes = [r for r in websocket.routes if isinstance(r, WebSocketRoute) and r.path != "/{path:path}"]
    for channel in CHANNELS.values():
        for url in (channel.url(id=7), channel.url(id=7).rstrip("/")):  # with or without the slash
            scope = {"type": "websocket", "path": url, "root_path": ""}
            matched = next(r for r in routes if r.matches(scope)[0] == Match.FULL)
            endpoint = getattr(matched.endpoint, "__self__", None)  # an `Endpoint(role).handle`
            assert isinstance(endpoint, websocket.Endpoint), matched.path
            assert endpoint.role == channel.role, (channel.name, matched.path)
    plain = {re.sub(r"\{\w+(:\w+)?\}", "{}", r.path).rstrip("/") for r in routes}
    declared = {re.sub(r"\{\w+(:\w+)?\}", "{}", c.path).rstrip("/") for c in CHANNELS.values()}
    assert plain == declared


# --- the console ---------------------------------------------------------------------------------

# `call("GET", "/auth/me")`, `request("POST", `/medicine/request/${id}/cancel/`, …)`
JS_CALL = re.compile(r"""\b(?:call|request)\(\s*"([A-Z]+)",\s*(["`])(/[^"`]*)\2""")
JS_SOCKET = re.compile(r"`\$\{scheme\}//\$\{location\.host\}(/ws/[^?`]*)")


def js_pattern(template: str) -> re.Pattern[str]:
    """A JS path (a template literal's `${…}` as any one segment, or nothing), without its query."""
    literal = re.split(r"\$\{[^}]*\}", template.split("?")[0])
    return re.compile("[^/?]*".join(re.escape(part) for part in literal))


def console_calls() -> list[tuple[str, str, str]]:
    calls = []
    for script in sorted(STATIC.glob("*.js")):
        calls += [(script.name, m[1], m[3]) for m in JS_CALL.finditer(script.read_text(encoding="utf-8"))]
    return calls


def test_the_scan_sees_the_console_calls() -> None:
    calls = console_calls()
    assert ("api.js", "POST", "/medicine/request/") in calls
    assert ("api.js", "POST", "/medicine/request/${id}/choose/") in calls
    assert ("devices.js", "DELETE", "/push/subscriptions/${Number(id)}") in calls
    assert sum(script == "api.js" for script, _, _ in calls) >= 14
    assert js_pattern("/medicine/request/${query}").fullmatch("/medicine/request/")
    assert not js_pattern("/medicine/request/${id}/").fullmatch("/medicine/request/7/cancel/")


@pytest.mark.parametrize(("script", "method", "template"), console_calls())
def test_every_console_call_is_a_declared_operation(script: str, method: str, template: str) -> None:
    pattern = js_pattern(template)
    same = [
        op.name for op in OPERATIONS.values() if op.method == method and pattern.fullmatch(sample_url(op))
    ]
    assert same, f"{script}: {method} {template} is no operation of protocol/operations.py"


def test_the_console_socket_is_a_declared_channel() -> None:
    (template,) = JS_SOCKET.findall((STATIC / "live.js").read_text(encoding="utf-8"))
    pattern = js_pattern(template)
    assert all(pattern.fullmatch(channel.url(id=7)) for channel in CHANNELS.values()), template


# --- the table itself ----------------------------------------------------------------------------


def test_urls_are_built_from_the_table() -> None:
    assert path("choose", request_id=3) == "/medicine/request/3/choose/"
    assert OPERATIONS["remove_push_subscription_by_id"].url(subscription_id=12) == "/push/subscriptions/12"
    assert path("media", prefix="prescriptions", name="a b/c") == "/media/prescriptions/a%20b%2Fc"
    assert path("health") == "/health" and CHANNELS["user"].url(id=5) == "/ws/user/5/"
    with pytest.raises(TypeError):
        path("choose")  # its request_id is missing
    with pytest.raises(TypeError):
        path("health", request_id=1)
    for wrong in (0, -1, 2**63, True, "3"):
        with pytest.raises(ValueError, match="request_id"):
            path("cancel", request_id=wrong)
    with pytest.raises(ValueError, match="id"):
        CHANNELS["pharmacy"].url(id=0)


def test_a_concrete_path_finds_its_operation() -> None:
    for name, op in OPERATIONS.items():
        found = find(op.method, sample_url(op))
        assert found is not None and found.name == name
    assert find("GET", "/medicine/request/7/cancel/") is None  # a POST only
    assert find("GET", "/medicine/request/7") is None  # no final slash: not the route
    assert find("get", "/medicine/request/") is OPERATIONS["list_requests"]


def test_every_error_is_one_of_the_tree_with_its_status() -> None:
    for op in OPERATIONS.values():
        assert op.answers, op.name
        for error in op.answers:
            assert issubclass(error, MedreqError) and ERRORS_BY_CODE[error.code] is error, (op.name, error)
        assert op.statuses == sorted({error.status for error in op.answers})
        assert {429, 431, 503} <= set(op.statuses), op.name
        if op.auth != "none":
            assert Unauthorized in op.answers, op.name
        if op.json or op.form:
            assert {413, 415, 422} <= set(op.statuses), op.name
        assert op.status < 300 and op.status not in op.statuses, op.name
        assert not (op.json and op.form), op.name
        assert set(op.files) <= {"image", "audio"} and (not op.files or op.form), op.name


def test_every_tag_is_used_and_every_operation_has_one() -> None:
    used = {op.tag for op in OPERATIONS.values()}
    assert used == set(TAGS)


def test_the_module_examples_hold() -> None:
    failed, tried = doctest.testmod(operations)
    assert tried >= 5 and failed == 0


WEB_FRAMEWORKS = ("starlette", "uvicorn", "websockets", "httpx", "fastapi", "medreq.web", "medreq.service")


@pytest.mark.parametrize("module", sorted((PACKAGE / "protocol").glob("*.py")), ids=lambda p: p.name)
def test_the_protocol_needs_no_web_framework(module: Path) -> None:
    """What a server and a client share imports neither's machinery (the client builds on it)."""
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        for name in names:
            assert not (name + ".").startswith(tuple(f + "." for f in WEB_FRAMEWORKS)), (module.name, name)
