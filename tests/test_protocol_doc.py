"""docs/protocol.md stays complete, and its main-flow examples run.

Every list is read from the protocol models, never copied here: event and reply types from the
`medreq.protocol` unions of server frames, client message types from its `ClientMessage` union,
error codes and their statuses from `protocol.ERROR_WIRE` and `medreq.protocol.errors.ERRORS_BY_CODE` (and
the one the HTTP layer writes itself), close codes from `protocol.CloseCode`, paths from the
routes the app mounts.
A new one in the code fails here until docs/protocol.md describes it.

The curl and `medreq.client` examples of its section 6 run on a fresh `medreq serve`, with the
machinery of `test_readme.py` (same markers, same rules: each block exits 0, prints no error body).
"""

from __future__ import annotations

import ast
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
