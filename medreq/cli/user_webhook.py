"""`medreq webhook set|clear|test|deliveries`: an account's webhook (docs/protocol.md §5)."""

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .app import Group, app
from .user_output import echo_json, out
from .user_session import JsonOption, ProfileOption, run, session

webhook_app = typer.Typer(
    help="Where the server POSTs your events while you are not connected (signed JSON).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    cls=Group,
)
app.add_typer(webhook_app, name="webhook", rich_help_panel="Account")


@webhook_app.command("set")
def set_(
    url: Annotated[str, typer.Argument(help="An http(s) URL the server can reach.")],
    thin: Annotated[
        bool | None,
        typer.Option(
            "--thin/--full",
            help="Thin: POST ids only (type, event_id, request_id), the receiver fetches the rest"
            " with its own token. Full: the whole event. Default: as before (full for a new account).",
        ),
    ] = None,
    profile: ProfileOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Set the webhook and print its signing secret (shown this once: keep it).

    Example: [cyan]medreq webhook set https://example.org/medreq-hook --thin[/]
    """

    async def main() -> None:
        async with session(profile) as (client, _):
            account = await client.set_webhook(url, payload=None if thin is None else ("thin" if thin else "full"))
        if as_json:
            echo_json(account.model_dump())
            return
        out.print(f"Webhook set to {escape(account.webhook_url or '')} ({account.webhook_payload} payloads)")
        out.print(f"Signing secret (shown once): [bold]{escape(account.webhook_secret or '')}[/]")
        out.print('[dim]Each POST carries X-Medreq-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">[/]')

    run(main)


@webhook_app.command()
def clear(profile: ProfileOption = "default", as_json: JsonOption = False) -> None:
    """Remove the webhook: nothing more is sent (pending deliveries fail).

    Example: [cyan]medreq webhook clear[/]
    """

    async def main() -> None:
        async with session(profile) as (client, _):
            account = await client.set_webhook(None)
        if as_json:
            echo_json(account.model_dump())
        else:
            out.print("Webhook removed")

    run(main)


@webhook_app.command("test")
def send_test(profile: ProfileOption = "default", as_json: JsonOption = False) -> None:
    """Queue a `webhook_test` delivery; see it with `medreq webhook deliveries`.

    Example: [cyan]medreq webhook test[/]
    """

    async def main() -> None:
        async with session(profile) as (client, _):
            delivery = await client.test_webhook()
        if as_json:
            echo_json(delivery.model_dump())
        else:
            out.print(f"Test delivery {delivery.id} queued")

    run(main)


@webhook_app.command()
def deliveries(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100, help="How many, newest first.")] = 20,
    profile: ProfileOption = "default",
    as_json: JsonOption = False,
) -> None:
    """List the latest deliveries and their attempts.

    Example: [cyan]medreq webhook deliveries -n 5[/]
    """

    async def main() -> None:
        async with session(profile) as (client, _):
            found = await client.webhook_deliveries(limit)
        if as_json:
            echo_json([d.model_dump() for d in found])
            return
        table = Table("ID", "Event", "Type", "Status", "Tries", "Last", "Error", title="Webhook deliveries")
        for d in found:
            style = {"delivered": "green", "failed": "red", "pending": "yellow"}.get(d.status, "dim")
            table.add_row(
                str(d.id),
                str(d.event_id if d.event_id is not None else "-"),
                d.type,
                f"[{style}]{d.status}[/]",
                str(d.attempts),
                str(d.last_status or ""),
                escape(d.last_error or ""),
            )
        out.print(table)

    run(main)
