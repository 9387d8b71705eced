"""Operator commands: `medreq serve` and `medreq account …` (straight to the configured database)."""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path

import typer
from rich.markup import escape
from sqlalchemy.engine import make_url

from ..config import Settings
from ..errors import MedreqError
from ..schemas import RegisterIn, parse
from .app import app
from .console import console

err = console(stderr=True)

account_app = typer.Typer(help="Manage accounts directly in the configured database.", no_args_is_help=True)
app.add_typer(account_app, name="account")


@app.command()
def serve(
    host: str | None = typer.Option(
        None, envvar="MEDREQ_HOST", show_default="127.0.0.1", help="Interface to bind."
    ),
    port: int | None = typer.Option(None, envvar="MEDREQ_PORT", show_default="8000", help="Port."),
    data_dir: Path | None = typer.Option(
        None,
        envvar="MEDREQ_DATA_DIR",
        show_default="./medreq-data",
        help="SQLite file, media and JWT secret.",
    ),
    database: str | None = typer.Option(
        None,
        envvar="MEDREQ_DATABASE_URL",
        show_default="SQLite in the data dir",
        help="Database URL, e.g. postgresql://user@host/db.",
    ),
    redis: str | None = typer.Option(
        None,
        envvar="MEDREQ_REDIS_URL",
        show_default="in-process hub",
        help="Redis URL for a hub shared by many workers/hosts.",
    ),
    media_dir: Path | None = typer.Option(
        None, envvar="MEDREQ_MEDIA_DIR", show_default="DATA_DIR/media", help="Where uploads are stored."
    ),
    public_url: str | None = typer.Option(
        None,
        envvar="MEDREQ_PUBLIC_URL",
        show_default="the Host each request was sent to",
        help="Base URL clients reach, for media links.",
    ),
    workers: int | None = typer.Option(
        None, envvar="MEDREQ_WORKERS", show_default="1", help="Worker processes (needs PostgreSQL and Redis)."
    ),
    open_registration: bool | None = typer.Option(
        None,
        "--open-registration/--closed-registration",
        envvar="MEDREQ_OPEN_REGISTRATION",
        show_default="open",
        help="Allow POST /auth/register.",
    ),
    rate_limit: bool | None = typer.Option(
        None,
        "--rate-limit/--no-rate-limit",
        envvar="MEDREQ_RATE_LIMIT_ENABLED",
        show_default="on",
        help="Per-account rate limits.",
    ),
    log_level: str | None = typer.Option(
        None, envvar="MEDREQ_LOG_LEVEL", show_default="info", help="debug, info, warning, error."
    ),
) -> None:
    """Run the medreq server: REST, WebSockets and media.

    Example: [bold]medreq serve --port 8000 --data-dir ./medreq-data[/bold]
    """
    try:
        settings = Settings.load(
            host=host,
            port=port,
            data_dir=data_dir,
            database_url=database,
            redis_url=redis,
            media_dir=media_dir,
            public_url=public_url,
            workers=workers,
            open_registration=open_registration,
            rate_limit_enabled=rate_limit,
            log_level=log_level,
        )
    except ValueError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    if settings.workers > 1 and (settings.is_sqlite or not settings.redis_url):
        err.print("[red]--workers > 1 needs --database postgresql://… and --redis redis://…[/red]")
        raise typer.Exit(2)
    from ..server import serve as run_server

    run_server(settings)


@account_app.command("create")
def account_create(
    role: str = typer.Option(..., help="patient or pharmacy"),
    username: str = typer.Option(..., help="Login name."),
    name: str = typer.Option(..., help="Display name."),
    phone: str | None = typer.Option(None, help="Phone number."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    data_dir: Path | None = typer.Option(
        None,
        envvar="MEDREQ_DATA_DIR",
        show_default="./medreq-data",
        help="Data dir of the server (the one `medreq serve` uses).",
    ),
    database: str | None = typer.Option(
        None,
        envvar="MEDREQ_DATABASE_URL",
        show_default="the data dir's SQLite file",
        help="Database URL of the server.",
    ),
    init: bool = typer.Option(
        False, "--init", help="Create the database if there is none yet (a server not started yet)."
    ),
) -> None:
    """Create an account in the server's database (works with registration closed).

    Run it where you run [bold]medreq serve[/bold], or give the same --data-dir / --database.

    Example: [bold]medreq account create --role pharmacy --username lifecare --name "LifeCare Pharmacy"[/bold]
    """
    settings = Settings.load(data_dir=data_dir, database_url=database)
    where = _database_label(settings)
    if settings.is_sqlite and not init and not _sqlite_file(settings).exists():
        err.print(
            f"[red]error:[/red] no medreq database at {escape(where)}: run this where `medreq serve` "
            "runs, pass its --data-dir (or --database), or --init to create a new one",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(2)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("Password: ")
    try:
        data = parse(
            RegisterIn,
            {"username": username, "password": password, "role": role, "name": name, "phone": phone},
        )
        account = asyncio.run(_create(settings, data))
    except MedreqError as exc:
        err.print(f"[red]{exc.code}:[/red] {escape(exc.message)}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    typer.echo(f"created {account['role']} {account['username']} with id {account['id']} in {where}")


def _sqlite_file(settings: Settings) -> Path:
    return Path(settings.database_url.split(":///", 1)[1])


def _database_label(settings: Settings) -> str:
    """Where accounts go, for humans: the SQLite file, or the database URL without its password."""
    if settings.is_sqlite:
        return str(_sqlite_file(settings))
    return make_url(settings.database_url).render_as_string(hide_password=True)


async def _create(settings: Settings, data: RegisterIn) -> dict[str, object]:
    from ..web.app import build_service

    service = build_service(settings)
    try:
        await service.store.migrate()
        return await service.register(data, by_operator=True)
    finally:
        await service.store.close()
