"""docs/protocol.md stays complete, and its main-flow examples run.

Every list is read from the protocol models, never copied here: event and reply types from the
`medreq.protocol` unions of server frames, client message types from its `ClientMessage` union,
error codes and their statuses from `protocol.ERROR_WIRE` and `medreq.protocol.errors.ERRORS_BY_CODE` (and
the one the HTTP layer writes itself), close codes from `protocol.CloseCode`, paths from the
routes the app mounts.
A new one in the code fails here until docs/protocol.md describes it.
And what the page says is checked against the code: the events it says are not stored (where the
service builds them without an event_id), what `unread` counts and Web Push sends, the fields of
every example event, the method of every endpoint it names, the codes of its error table, and every
`MEDREQ_…` default it quotes (`Settings`).

The curl and `medreq.client` examples of its section 6 run on a fresh `medreq serve`, with the
machinery of `test_readme.py` (same markers, same rules: each block exits 0, prints no error body).
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import sysconfig
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel
from starlette.routing import BaseRoute, Mount

from medreq import protocol
from medreq.config import Settings
from medreq.protocol.errors import ERRORS_BY_CODE
from medreq.service.events import NOTIFYING
from medreq.storage.queries import UNREAD_TYPES
from medreq.web import create_app
from medreq.web.socket import endpoint as websocket

from . import test_readme
from .conftest import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = ROOT / "docs" / "protocol.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
EXAMPLES_SECTION = "6. The main flow"


def _tree(relative: str) -> ast.Module:
    return ast.parse((ROOT / relative).read_text(encoding="utf-8"))


def _documented(name: str) -> bool:
    """`name` appears in the doc as code: `name` or "name"."""
    return f"`{name}`" in DOC or f'"{name}"' in DOC


# --- what the code has -------------------------------------------------------------------------


def _type_of(model: type[BaseModel]) -> str:
    (value,) = get_args(model.model_fields["type"].annotation)
    return str(value)


def event_types() -> set[str]:
    """The `type` of every event: the members of `protocol.ServerEvent`."""
    return set(protocol.EVENT_TYPES)


def reply_types() -> set[str]:
    """Frames the socket sends besides events: the rest of `protocol.ServerFrame`."""
    return {_type_of(model) for model in protocol.SERVER_FRAME_MODELS} - event_types()


def client_message_types() -> set[str]:
    mapping = protocol.CLIENT_MESSAGE.json_schema()["discriminator"]["mapping"]
    return set(protocol.CLIENT_MESSAGE_TYPES) | set(mapping)


def error_codes() -> dict[str, int | None]:
    """Code → HTTP status: the one mapping (`protocol.ERROR_WIRE`), the error tree, plus codes the
    HTTP layer writes as literals."""
    codes: dict[str, int | None] = {code: wire.status for code, wire in protocol.ERROR_WIRE.items()}
    codes |= {code: cls.status for code, cls in ERRORS_BY_CODE.items()}
    for node in ast.walk(_tree("medreq/web/http.py")):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "code" and isinstance(value, ast.Constant):
                    codes.setdefault(str(value.value), None)
    return codes


def close_codes() -> set[int]:
    """`protocol.CloseCode`, and the codes websocket.py's docstring lists."""
    codes = {int(code) for code in protocol.CloseCode}
    docstring = websocket.__doc__ or ""
    listed = docstring[docstring.index("Close codes:") :]
    codes |= {int(code) for code in re.findall(r"\b(1\d{3}|4\d{3})\b", listed)}
    return codes


def route_paths(tmp_path: Path) -> set[str]:
    """Every path the app serves (HTTP routes and mounts) and every WebSocket route."""
    app = create_app(Settings.load(env={}, data_dir=tmp_path / "data"), migrate=False)
    paths: set[str] = set()

    def walk(routes: list[BaseRoute]) -> None:
        for route in routes:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                paths.add(path)
            if isinstance(route, Mount) and route.routes:
                walk(list(route.routes))

    walk(list(app.app.routes))
    walk(list(websocket.routes))
    paths.discard("/{path:path}")  # the WebSocket catch-all: documented as close code 4404
    return paths


# --- the doc has them --------------------------------------------------------------------------


def test_the_code_lists_are_found() -> None:
    """The derivations above still see what they look for (a refactor must move them, not hide them)."""
    assert {"new_request", "pharmacy_response"} <= event_types()
    assert {"ack", "pong", "error"} <= reply_types()
    assert {"ping", "response", "auth"} <= client_message_types()
    assert {"validation_error", "method_not_allowed"} <= set(error_codes())
    assert {4401, 4403, 4404, 1001, 1008, 1009, 1011, 1013} <= close_codes()


def test_every_event_and_reply_is_documented() -> None:
    missing = sorted(t for t in event_types() | reply_types() if not _documented(t))
    assert not missing, f"docs/protocol.md does not describe these server frames: {missing}"
    for kind in event_types():
        assert re.search(rf"^#### `{kind}`", DOC, re.M), f"no section for the event {kind!r}"


def test_every_client_message_is_documented() -> None:
    for kind in sorted(client_message_types()):
        assert f'{{"type":"{kind}"' in DOC, f"docs/protocol.md does not show the message {kind!r}"


def test_every_error_code_is_documented_with_its_status() -> None:
    for code, status in sorted(error_codes().items()):
        row = re.search(rf"^\| `{code}` \| (\d{{3}}) \|", DOC, re.M)
        assert row, f"the error table of docs/protocol.md lacks {code!r}"
        if status is not None:
            assert int(row[1]) == status, f"{code}: the doc says {row[1]}, the code {status}"
    # named by the protocol for transport limits, so clients are ready for them
    for code, status in (("headers_too_large", 431), ("unavailable", 503)):
        assert re.search(rf"^\| `{code}` \| {status} \|", DOC, re.M), code


def test_every_close_code_is_documented() -> None:
    for code in sorted(close_codes()):
        assert re.search(rf"^\| {code} \|", DOC, re.M), f"the close-code table lacks {code}"


def test_every_route_is_documented(tmp_path: Path) -> None:
    for path in sorted(route_paths(tmp_path)):
        plain = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)  # {request_id:int} → {request_id}
        # a parameter may be named differently in the doc ({id} for {account_id})
        pattern = re.sub(r"\\\{\w+\\\}", r"\\{\\w+\\}", re.escape(plain))
        assert re.search(pattern, DOC), f"docs/protocol.md does not mention {plain}"


def test_the_docs_live_in_the_repository() -> None:
    """README and the package point at docs/protocol.md, never at a file outside the repository."""
    assert "(docs/protocol.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    texts = [
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "medreq").rglob("*.py"),
        *(ROOT / "medreq").rglob("*.js"),
    ]
    # "PROTOCOL.md §N" named the design spec beside the checkout, which users never see
    outside = [str(p.relative_to(ROOT)) for p in texts if "PROTOCOL.md" in p.read_text(encoding="utf-8")]
    assert not outside, f"these link the spec outside the repository: {outside}"


def test_its_links_within_the_page_lead_somewhere() -> None:
    """Every `(#anchor)` names a heading (GitHub's slugs: lower case, punctuation dropped, spaces to -)."""
    slugs: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", DOC, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        slugs.add(slug)
    broken = sorted(set(re.findall(r"\]\(#([^)]+)\)", DOC)) - slugs)
    assert not broken, f"links to no heading: {broken}"


# --- the examples run --------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_the_main_flow_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_readme, "TESTED_SECTIONS", (EXAMPLES_SECTION,))
    blocks = test_readme.readme_blocks(DOC)
    assert {block.lang for block in blocks} == {"sh", "python"}, [b.title for b in blocks]
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDREQ_")}
    env |= {
        "HOME": str(home),
        "MEDREQ_CONFIG_DIR": str(home / "config"),
        "MEDREQ_SCRYPT_N": "1024",
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), sysconfig.get_path("scripts"), env.get("PATH", "")]
        ),
        "PYTHONUNBUFFERED": "1",
    }
    # a default server: pharmacies that register themselves wait for approval, as the doc says
    server = ServerProcess(work / "medreq-data", env={"MEDREQ_PHARMACY_REGISTRATION": "approval"})
    server.start()
    runner = test_readme.Runner(work, env, server.port)
    try:
        for index, block in enumerate(blocks):
            runner.run(block, index)
        runner.finish()
    finally:
        server.stop()
    assert (work / "answer.wav").stat().st_size > 0
    assert (work / "answer-bob.wav").read_bytes() == (work / "reply.wav").read_bytes()
    assert "Traceback" not in server.log(), server.log()


# --- what the doc says agrees with the code ----------------------------------------------------


def _section(title: str) -> str:
    """The doc's text under the heading `title`, up to the next heading of the same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", DOC, re.M)
    assert match, f"no section {title!r}"
    level = len(match[1])
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(DOC, match.end())
    return DOC[match.end() : end.start() if end else len(DOC)]


def _backticked(text: str) -> set[str]:
    return set(re.findall(r"`(\w+)`", text))


def never_stored_events() -> set[str]:
    """The events the service publishes without storing them, read from medreq/service/*.py.

    A builder of service/events.py (named as its event type) is stored where the function that
    calls it also calls `emit`, `emit_all` or `hot_event`, and published unstored where that function builds
    it with `.build(None)` (no event_id). Every event must be one or the other, never both."""
    stored: set[str] = set()
    unstored: set[str] = set()
    for path in sorted((ROOT / "medreq" / "service").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            calls = [node for node in ast.walk(function) if isinstance(node, ast.Call)]
            attributes = {call.func.attr for call in calls if isinstance(call.func, ast.Attribute)}
            builds_unstored = any(
                isinstance(call.func, ast.Attribute)
                and call.func.attr == "build"
                and [ast.unparse(arg) for arg in call.args] == ["None"]
                for call in calls
            )
            for call in calls:
                func = call.func
                if not (isinstance(func, ast.Attribute) and ast.unparse(func.value) == "events"):
                    continue
                if func.attr not in event_types():
                    continue
                if attributes & {"emit", "emit_all", "hot_event"}:
                    stored.add(func.attr)
                if builds_unstored:
                    unstored.add(func.attr)
    assert not stored & unstored, f"both stored and not: {stored & unstored}"
    assert stored | unstored == event_types(), f"built nowhere: {event_types() - stored - unstored}"
    return unstored


def test_the_events_said_not_stored_are_the_ones_the_code_does_not_store() -> None:
    unstored = never_stored_events()
    events_intro, *event_sections = re.split(r"^#### ", _section("Server → client events"), flags=re.M)
    said = re.search(
        r"((?:`\w+`(?:, | and )?)+) (?:is|are) the (?:one )?events? that (?:is|are) not stored", events_intro
    )
    assert said, "§4 no longer says which events are not stored"
    assert _backticked(said[1]) == unstored, f"§4 says {said[1]}; the code does not store {sorted(unstored)}"
    guarantee = _section("5. Delivery guarantee (beyond)")
    said = re.search(r"Every event except ((?:`\w+`(?:, | and )?)+) is stored", guarantee)
    assert said, "§5 no longer says which events are stored"
    assert _backticked(said[1]) == unstored, f"§5 says {said[1]}; the code does not store {sorted(unstored)}"
    sections = {re.match(r"`(\w+)`", text)[1]: text for text in event_sections}  # type: ignore[index]
    for kind in event_types():
        says_unstored = "Not stored" in sections[kind]
        assert says_unstored == (kind in unstored), (
            f"the section of {kind!r} says the wrong thing about storing it"
        )


def test_the_unread_count_and_web_push_kinds_are_the_codes() -> None:
    unread = re.search(
        r"`unread` \*\*\(beyond\)\*\*: how many of the caller's own events of this request \(([^)]*)\)", DOC
    )
    assert unread, "§3 no longer lists what `unread` counts"
    assert _backticked(unread[1]) == set(UNREAD_TYPES)
    push = re.search(r"sends each event worth a notification \(([^)]*)\)", DOC)
    assert push, "§5 no longer lists the events sent by Web Push"
    assert _backticked(push[1]) == set(NOTIFYING)


def _example_events() -> list[dict[str, object]]:
    """The event examples of §4's event sections (one JSON object a line, in ```json blocks)."""
    found = []
    for block in re.findall(r"```json\n(.*?)```", _section("Server → client events"), re.S):
        for line in block.splitlines():
            if line.startswith('{"type":'):
                found.append(json.loads(line))
    return found


def test_every_example_event_has_the_fields_the_server_sends() -> None:
    """The examples are what a server sends: every field of the event's model (`trace_id` aside,
    which the page says it leaves out), and nothing else."""
    models = {_type_of(model): model for model in protocol.SERVER_FRAME_MODELS}
    examples = _example_events()
    assert {example["type"] for example in examples} == event_types(), "an event has no example"
    for example in examples:
        model = models[str(example["type"])]
        sent = {field.alias or name for name, field in model.model_fields.items()}
        sent -= set(protocol.events.OPTIONAL_ON_THE_WIRE)
        assert set(example) == sent, f"{example['type']}: the example has {sorted(set(example) ^ sent)} wrong"


def test_every_endpoint_named_exists_with_that_method(tmp_path: Path) -> None:
    app = create_app(Settings.load(env={}, data_dir=tmp_path / "data"), migrate=False)
    methods: dict[str, set[str]] = {}
    for route in app.app.routes:
        path, allowed = getattr(route, "path", None), getattr(route, "methods", None)
        if isinstance(path, str) and allowed:
            plain = re.sub(r"\{\w+(?::\w+)?\}", "{}", path)
            methods.setdefault(plain, set()).update(allowed)
    named = set(re.findall(r"`(GET|POST|PUT|DELETE|PATCH) (/[^`\s?]*)", DOC))
    assert len(named) > 20
    for method, path in sorted(named):
        plain = re.sub(r"\{\w+\}|(?<=/)\d+(?=/)", "{}", path)  # {id}, or an example id: /medicine/request/12/
        assert method in methods.get(plain, set()), (
            f"docs/protocol.md names {method} {path}: the app has no such route"
        )


def test_every_error_code_in_the_table_exists() -> None:
    table = set(re.findall(r"^\| `(\w+)` \| \d{3} \|", DOC, re.M))
    assert table, "no error table"
    unknown = table - set(error_codes()) - {"headers_too_large", "unavailable"}
    assert not unknown, f"the error table names codes the code does not have: {sorted(unknown)}"


_UNITS = {"KiB": 1024, "MiB": 1024 * 1024, "s": 1, "min": 60, "h": 3600, "days": 24 * 3600}
_VALUE = r"(\d[\d,]*(?:\.\d+)?)(?:\s*(KiB|MiB|s|min|h|days)\b)?|`(?!MEDREQ_)([A-Za-z]\w*)`"


def quoted_defaults() -> list[tuple[str, str, object]]:
    """(option, as quoted, value) for every `MEDREQ_X` the doc names with a value: right after it,
    `MEDREQ_X` (V) or `MEDREQ_X`, V; or right before its parentheses, V … (`MEDREQ_X`), in the
    units of the Settings field (a *_days field counts days, every other duration seconds)."""
    found: list[tuple[str, str, object]] = []
    for match in re.finditer(r"`MEDREQ_(\w+)`", DOC):
        name = match[1].lower()
        after = re.match(rf"(?: \(|, )(?:{_VALUE})", DOC[match.end() :])
        before = re.search(
            rf"(?:{_VALUE})[^\d()`|;]{{0,40}}\((?:`MEDREQ_\w+`,\s*)*$",
            DOC[max(0, match.start() - 120) : match.start()],
        )
        quoted = after or before
        if quoted is None:
            found.append((name, "", None))
            continue
        number, unit, word = quoted[1], quoted[2], quoted[3]
        if word is not None:
            found.append((name, quoted[0], word))
            continue
        value = float(number.replace(",", ""))
        if unit and not (unit == "days" and name.endswith("_days")):
            value *= _UNITS[unit]
        found.append((name, quoted[0], value))
    return found


def test_every_settings_default_quoted_matches_the_code() -> None:
    defaults = Settings()
    found = quoted_defaults()
    assert len([value for _, _, value in found if value is not None]) >= 25, "the parser found too little"
    for name, quoted, value in found:
        assert hasattr(defaults, name), f"docs/protocol.md names MEDREQ_{name.upper()}, which is no setting"
        default = getattr(defaults, name)
        if value is None:
            # an option that is off, empty or automatic by default needs no figure
            assert not default, (
                f"docs/protocol.md names MEDREQ_{name.upper()} without its default ({default})"
            )
            continue
        assert value == default, (
            f"MEDREQ_{name.upper()}: the doc says {quoted.strip()!r}, the default is {default!r}"
        )


def test_the_list_of_what_goes_beyond_names_every_event_and_message_marked_beyond() -> None:
    beyond = set(re.findall(r"^#### `(\w+)` \(beyond\)$", DOC, re.M))
    assert beyond & event_types() and beyond & client_message_types(), "no (beyond) headings found"
    missing = sorted(beyond - _backticked(_section("7. Beyond the original design, in one list")))
    assert not missing, f"§7 leaves out {missing}"
