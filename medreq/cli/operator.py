"""What the operator commands (`medreq account …`, `medreq db …`) share: the settings they
read, the database they name, and one shape for their errors.

Every error is one line on stderr, ``error: <what> (database: <where>)``, where ``<where>`` is
the SQLite file or the database URL without its password: run in the wrong folder, an operator
sees at once which database was read. A SQLite database that does not exist is not created by
a command that only reads or changes accounts (it would be a second, empty one): it says where
it looked and how to point it at the server's.

Settings, SQLAlchemy and the service are imported when a command runs (issue 14).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.markup import escape

from .console import console

if TYPE_CHECKING:
    from ..config import Settings

T = TypeVar("T")
err = console(stderr=True)


def load_settings(data_dir: Path | None, database: str | None, media_dir: Path | None = None) -> Settings:
    """The server's settings as the command's options and the environment give them."""
    from ..config import Settings

    try:
        return Settings.load(data_dir=data_dir, database_url=database, media_dir=media_dir)
    except ValueError as exc:
        fail(f"configuration: {exc}", None, code=2)


def sqlite_file(settings: Settings) -> Path:
    return Path(settings.database_url.split(":///", 1)[1])


def database_label(settings: Settings) -> str:
    """Where the data is, for humans: the SQLite file, or the database URL without its password."""
    if settings.is_sqlite:
        return str(sqlite_file(settings))
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def fail(message: str, settings: Settings | None, *, code: int = 1) -> NoReturn:
    """Print ``error: message (database: …)`` on stderr and exit with ``code``."""
    where = f" (database: {database_label(settings)})" if settings is not None else ""
    err.print(f"[red]error:[/red] {escape(message + where)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def require_database(settings: Settings, *, hint: str = "") -> None:
    """Exit 2 (creating nothing) when the SQLite database the settings name does not exist."""
    if settings.is_sqlite and not sqlite_file(settings).exists():
        how = f", {hint}" if hint else ""
        err.print(
            f"[red]error:[/red] no medreq database at {escape(database_label(settings))}: run this where "
            f"`medreq serve` runs, or pass its --data-dir (or --database){escape(how)}",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(2)


def run_operator(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(service)`` on the server's database; a refusal is one error line, exit 1."""
    import asyncio

    from ..protocol.errors import MedreqError

    async def run() -> T:
        from ..bootstrap import open_service

        with contextlib.ExitStack() as stack:
            here = settings
            if not settings.data_dir.exists():
                # against PostgreSQL from a folder that holds no server data: keep nothing here,
                # neither a JWT secret nobody else signs with nor an empty media folder (a stray
                # ./medreq-data was all such a command used to leave behind)
                scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="medreq-operator-"))
                media = settings.media_dir
                if media is None or media == settings.data_dir / "media":
                    media = Path(scratch) / "media"
                here = dataclasses.replace(settings, data_dir=Path(scratch), media_dir=media)
            async with open_service(here) as service:
                return await action(service)

    from sqlalchemy.exc import SQLAlchemyError

    try:
        return asyncio.run(run())
    except MedreqError as exc:
        fail(f"{exc.code}: {exc.message}", settings)
    except (OSError, SQLAlchemyError) as exc:
        fail(f"cannot open the database: {type(exc).__name__}: {exc}", settings)
