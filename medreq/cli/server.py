"""Operator commands: `medreq serve` and `medreq account …` (straight to the configured database).

`serve`'s options are `Settings`' fields (config/settings.py, those declared with `option`
metadata): a new setting is an option by its declaration alone.

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
from typer.core import TyperCommand

from .app import Command, Group, app
from .console import console
from .operator import database_label, fail, load_settings, require_database, run_operator
from .options import DatabaseOption, DataDirOption, settings_command

if TYPE_CHECKING:
    from typer._click import Parameter

    from ..config import Settings
    from ..protocol import RegisterIn

err = console(stderr=True)

account_app = typer.Typer(
    help="Manage accounts directly in the configured database.", no_args_is_help=True, cls=Group
)
app.add_typer(account_app, name="account")


class ServeCommand(Command):
    """`medreq serve`, whose options are made from `Settings` (`options.settings_command`) the
    first time they are asked for: by its help, its parsing or shell completion. Registering the
    command, for `medreq --help` or any other command, imports no configuration (issue 14)."""

    _made: TyperCommand | None = None
    _params: "list[Parameter]"

    @property
    def params(self) -> "list[Parameter]":
        if self._made is None:
            self._made = settings_command(start)
            self.callback = self._made.callback
            self._params[:0] = self._made.params  # one list: Click appends and pops `--help` on it
        return self._params

    @params.setter
    def params(self, params: "list[Parameter]") -> None:
        self._params = params


@app.command(cls=ServeCommand)
def serve() -> None:
    """Run the medreq server: REST, WebSockets and media.

    Example: [bold]medreq serve --port 8000 --data-dir ./medreq-data[/bold]
    """
    # replaced by `start`, with the options made from Settings, before anything runs (ServeCommand)
    raise AssertionError("medreq serve runs through ServeCommand")


def start(**options: Any) -> None:
    """Load the settings (the options given, then `MEDREQ_*` variables, then defaults) and serve."""
    from ..config import Settings

    try:
        settings = Settings.load(**options)
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
