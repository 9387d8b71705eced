"""Operator commands: `medreq serve` and `medreq account …` (straight to the configured database)."""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path

import typer
from rich.console import Console

from ..config import Settings
from ..errors import MedreqError
from ..schemas import RegisterIn, parse
from .app import app

err = Console(stderr=True)

account_app = typer.Typer(help="Manage accounts directly in the configured database.", no_args_is_help=True)
app.add_typer(account_app, name="account")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Interface to bind [env MEDREQ_HOST, default 127.0.0.1]."),
    port: int | None = typer.Option(None, help="Port [env MEDREQ_PORT, default 8000]."),
    data_dir: Path | None = typer.Option(
        None, help="SQLite file, media and JWT secret [default ./medreq-data]."
    ),
    database: str | None = typer.Option(None, help="Database URL, e.g. postgresql://user@host/db."),
    redis: str | None = typer.Option(None, help="Redis URL for a hub shared by many workers/hosts."),
    media_dir: Path | None = typer.Option(None, help="Where uploads are stored [default DATA_DIR/media]."),
    public_url: str | None = typer.Option(None, help="Base URL clients reach, for media links."),
    workers: int | None = typer.Option(None, help="Worker processes (needs PostgreSQL and Redis)."),
    open_registration: bool | None = typer.Option(
        None, "--open-registration/--closed-registration", help="Allow POST /auth/register."
    ),
    rate_limit: bool | None = typer.Option(
        None, "--rate-limit/--no-rate-limit", help="Per-account rate limits."
    ),
    max_connections: int | None = typer.Option(
        None, help="Open connections at most [default: the descriptor limit minus 256]."
    ),
    max_connections_per_client: int | None = typer.Option(
        None, help="Open connections per client address, 0 for none (behind a proxy) [default 256]."
    ),
    log_level: str | None = typer.Option(None, help="debug, info, warning, error."),
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
            max_connections=max_connections,
            max_connections_per_client=max_connections_per_client,
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
    data_dir: Path | None = typer.Option(None, help="Data dir of the server [default ./medreq-data]."),
    database: str | None = typer.Option(None, help="Database URL [default: the data dir's SQLite]."),
) -> None:
    """Create an account in the configured database (works with registration closed).

    Example: [bold]medreq account create --role pharmacy --username lifecare --name "LifeCare Pharmacy"[/bold]
    """
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("Password: ")
    settings = Settings.load(data_dir=data_dir, database_url=database)
    try:
        data = parse(
            RegisterIn,
            {"username": username, "password": password, "role": role, "name": name, "phone": phone},
        )
        account = asyncio.run(_create(settings, data))
    except MedreqError as exc:
        err.print(f"[red]{exc.code}:[/red] {exc.message}")
        raise typer.Exit(1) from None
    typer.echo(f"created {account['role']} {account['username']} with id {account['id']}")


async def _create(settings: Settings, data: RegisterIn) -> dict[str, object]:
    from ..web.app import build_service

    service = build_service(settings)
    try:
        await service.store.migrate()
        return await service.register(data, by_operator=True)
    finally:
        await service.store.close()
