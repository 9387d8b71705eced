"""The `medreq` command line: one Typer app, commands grouped by concern.

- `server.py`: `serve`, `account` (operator commands: they talk to the database directly)
- `session.py`, `commands.py` …: user commands over `medreq.client` (login, request, respond, listen …)
"""

from __future__ import annotations

from . import server as _server  # noqa: F401  (registers commands)
from .app import app

try:  # user commands live in their own modules; registered on import
    from . import user as _user  # noqa: F401
except ImportError as exc:  # pragma: no cover - only while a module is missing
    if exc.name and not exc.name.startswith("medreq.cli"):
        raise


def main() -> None:
    app()


__all__ = ["app", "main"]
