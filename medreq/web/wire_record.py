"""A test aid: record what the server sends, so a test can check it against the published schemas.

Off unless the environment sets ``MEDREQ_WIRE_RECORD=<directory>``; then every JSON body an HTTP
route answers (`http.JSONResponse`) and every text frame a WebSocket is sent (`websocket.dispatch`)
is appended, one JSON object a line, to ``<directory>/wire-<pid>.jsonl``:
``{"kind": "http", "method", "route", "status", "body"}`` or ``{"kind": "ws", "route", "frame"}``
(the route is its template, e.g. ``/medicine/request/{request_id}/``). `tests/test_wire_contract.py`
validates every line against `/openapi.json` and `/asyncapi.json`. Not for production: it writes
every body, tokens included, to disk.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any, TextIO

from starlette.types import Message, Scope, Send

ENV = "MEDREQ_WIRE_RECORD"
_CONVERTOR = re.compile(r":\w+}")


class Recorder:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file: TextIO | None = None
        self._pid = 0

    def _write(self, item: dict[str, Any]) -> None:
        if self._file is None or self._pid != os.getpid():  # a worker forked after the first write
            self.directory.mkdir(parents=True, exist_ok=True)
            self._pid = os.getpid()
            self._file = (self.directory / f"wire-{self._pid}.jsonl").open("a", encoding="utf-8", buffering=1)
        self._file.write(json.dumps(item, ensure_ascii=False) + "\n")  # line-buffered: killed servers keep it

    def http(self, scope: Scope, status: int, body: bytes | memoryview) -> None:
        try:
            decoded = json.loads(bytes(body))
        except ValueError:
            decoded = bytes(body).decode("utf-8", "replace")
        route = _template(scope)
        self._write(
            {"kind": "http", "method": scope.get("method"), "route": route, "status": status, "body": decoded}
        )

    def websocket(self, scope: Scope, send: Send) -> Send:
        """`send`, recording every text frame it is given."""

        async def recording_send(message: Message) -> None:
            if message["type"] == "websocket.send" and message.get("text") is not None:
                self.frame(scope, message["text"])
            await send(message)

        return recording_send

    def frame(self, scope: Scope, text: str) -> None:
        """A text frame written without `send` (`Connection._send_at_once`)."""
        self._write({"kind": "ws", "route": _template(scope), "frame": json.loads(text)})


def _template(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return _CONVERTOR.sub("}", path) if isinstance(path, str) else None


@cache
def recorder() -> Recorder | None:
    """The recorder when `MEDREQ_WIRE_RECORD` is set (read once per process), else None."""
    directory = os.environ.get(ENV)
    return Recorder(Path(directory)) if directory else None
