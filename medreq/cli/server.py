"""Operator commands: `medreq serve` and `medreq account …` (straight to the configured database).

SQLAlchemy, the protocol's models and the server are imported by the commands that use them:
registering these commands (for `medreq --help`, or any other command) must not cost their
import (issue 14).
"""

import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from .app import Group, app
from .console import console
from .operator import database_label, fail, load_settings, require_database, run_operator
from .options import DatabaseOption, DataDirOption

if TYPE_CHECKING:
    from ..config import Settings
    from ..protocol import RegisterIn

err = console(stderr=True)

account_app = typer.Typer(
    help="Manage accounts directly in the configured database.", no_args_is_help=True, cls=Group
)
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
    pharmacy_registration: str | None = typer.Option(
        None,
        envvar="MEDREQ_PHARMACY_REGISTRATION",
        show_default="approval",
        help="Self-registered pharmacies: open, approval (pending until `medreq account approve`) or closed.",
    ),
    trusted_proxy: list[str] | None = typer.Option(
        None,
        "--trusted-proxy",
        metavar="ADDRESS",
        help="A reverse proxy whose X-Forwarded-For/-Proto are believed; repeatable "
        "(env MEDREQ_TRUSTED_PROXIES, comma-separated; default: none).",
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
    log_format: str | None = typer.Option(
        None,
        envvar="MEDREQ_LOG_FORMAT",
        show_default="text",
        help="text, or json: one JSON object per line.",
    ),
    cors_origin: list[str] | None = typer.Option(
        None,
        "--cors-origin",
        metavar="ORIGIN",
        help="Origin whose pages may call the API, e.g. http://localhost:5173; repeatable, '*' for any "
        "(env MEDREQ_CORS_ORIGINS, comma-separated; default: same origin only).",
    ),
    max_connections: int | None = typer.Option(
        None,
        envvar="MEDREQ_MAX_CONNECTIONS",
        show_default="the descriptor limit minus 256",
        help="Open connections at most.",
    ),
    max_connections_per_client: int | None = typer.Option(
        None,
        envvar="MEDREQ_MAX_CONNECTIONS_PER_CLIENT",
        show_default="256",
        help="Open connections per client address, 0 for none (behind a proxy).",
    ),
    max_pharmacies_per_request: int | None = typer.Option(
        None,
        envvar="MEDREQ_MAX_PHARMACIES_PER_REQUEST",
        show_default="5",
        help="Pharmacies a patient may ask at once with one request.",
    ),
) -> None:
    """Run the medreq server: REST, WebSockets and media.

    Example: [bold]medreq serve --port 8000 --data-dir ./medreq-data[/bold]
    """
    from ..config import Settings

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
            pharmacy_registration=pharmacy_registration,
            trusted_proxies=",".join(trusted_proxy) if trusted_proxy else None,
            rate_limit_enabled=rate_limit,
            max_connections=max_connections,
            max_connections_per_client=max_connections_per_client,
            max_pharmacies_per_request=max_pharmacies_per_request,
            log_level=log_level,
            log_format=log_format,
            cors_origins=",".join(cors_origin) if cors_origin else None,
        )
    except ValueError as exc:
        fail(f"configuration: {exc}", None, code=2)
    if settings.workers > 1 and (settings.is_sqlite or not settings.redis_url):
        fail("--workers > 1 needs --database postgresql://… and --redis redis://…", None, code=2)
    from ..server import StartError
    from ..server import serve as run_server

    try:
        run_server(settings)
    except StartError as exc:
        fail(str(exc), None)


@account_app.command("create")
def account_create(
    role: str = typer.Option(..., help="patient or pharmacy"),
    username: str = typer.Option(..., help="Login name."),
    name: str = typer.Option(..., help="Display name."),
    phone: str | None = typer.Option(None, help="Phone number."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    data_dir: Path | None = DataDirOption,
    database: str | None = DatabaseOption,
    init: bool = typer.Option(
        False, "--init", help="Create the database if there is none yet (a server not started yet)."
    ),
) -> None:
    """Create an account in the server's database (works with registration closed).

    Run it where you run [bold]medreq serve[/bold], or give the same --data-dir / --database.

    Example: [bold]medreq account create --role pharmacy --username lifecare --name "LifeCare Pharmacy"[/bold]
    """
    settings = load_settings(data_dir, database)
    if not init:
        require_database(settings, hint="or --init to create a new one")
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("Password: ")
    from ..protocol import RegisterIn, parse
    from ..protocol.errors import MedreqError

    try:
        data = parse(
            RegisterIn,
            {"username": username, "password": password, "role": role, "name": name, "phone": phone},
        )
    except MedreqError as exc:
        fail(f"{exc.code}: {exc.message}", settings)
    account = run_operator(settings, lambda service: _create(service, data))
    typer.echo(
        f"created {account['role']} {account['username']} with id {account['id']} in {database_label(settings)}"
    )


async def _create(service: Any, data: "RegisterIn") -> dict[str, object]:
    return (await service.register(data, by_operator=True)).model_dump()  # type: ignore[no-any-return]


# --- operators: approve, disable, enable, reset passwords -----------------------------------------
# Each change is written with a row in `account_changes`: running servers close the account's
# live sockets (4401) within a second, on every worker. Each command names the database it read
# in its errors and refuses a SQLite file that does not exist (`operator.py`).


@account_app.command("list")
def account_list(
    pending: bool = typer.Option(False, "--pending", help="Only pharmacies awaiting approval."),
    status: str | None = typer.Option(None, help="Only accounts of this status: active, pending, disabled."),
    json_output: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    data_dir: Path | None = DataDirOption,
    database: str | None = DatabaseOption,
) -> None:
    """List accounts, oldest first.

    Example: [bold]medreq account list --pending[/bold]
    """
    wanted = "pending" if pending else status
    settings = _existing(data_dir, database)
    accounts = run_operator(settings, lambda service: service.list_accounts(wanted))
    if json_output:
        for account in accounts:
            typer.echo(json.dumps(account))
        return
    if not accounts:
        typer.echo(_nothing_listed(pending, status, database_label(settings)))
        return
    table = Table("id", "username", "role", "name", "status", "created")
    for account in accounts:
        table.add_row(
            str(account["id"]),
            escape(account["username"]),
            account["role"],
            escape(account["name"]),
            account["status"],
            account["created_at"][:19],
        )
    console().print(table)


def _nothing_listed(pending: bool, status: str | None, where: str) -> str:
    if pending:
        return f"No pharmacies await approval (database: {where})."
    if status:
        return f"No {status} accounts (database: {where})."
    return f"No accounts yet (database: {where})."


def _existing(data_dir: Path | None, database: str | None) -> "Settings":
    settings = load_settings(data_dir, database)
    require_database(settings)
    return settings


def _status_command(status: str, verb: str) -> Any:
    def command(
        username: str = typer.Argument(..., help="The account's username."),
        data_dir: Path | None = DataDirOption,
        database: str | None = DatabaseOption,
    ) -> None:
        settings = _existing(data_dir, database)
        account = run_operator(settings, lambda service: service.set_status(username, status))
        typer.echo(f"{verb} {account['role']} {account['username']} (id {account['id']}): {account['status']}")

    return command


account_app.command("approve", help="Approve a pending pharmacy: listed and reachable from now on.")(
    _status_command("active", "approved")
)
account_app.command("disable", help="Disable an account: no sign-in, every token revoked, sockets closed.")(
    _status_command("disabled", "disabled")
)
account_app.command("enable", help="Enable a disabled account again (its old tokens stay revoked).")(
    _status_command("active", "enabled")
)


@account_app.command("reset-password")
def account_reset_password(
    username: str = typer.Argument(..., help="The account's username."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    data_dir: Path | None = DataDirOption,
    database: str | None = DatabaseOption,
) -> None:
    """Set a new password; every token of the account is revoked and its sockets closed.

    Example: [bold]echo 'new-secret-pass' | medreq account reset-password lifecare --password-stdin[/bold]
    """
    settings = _existing(data_dir, database)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("New password: ")
    if len(password) < 8:
        fail("validation_error: password must be at least 8 characters; nothing changed", settings)
    account = run_operator(settings, lambda service: service.reset_password(username, password))
    typer.echo(f"password reset for {account['username']} (id {account['id']}); its tokens are revoked")
