"""`medreq push list|remove`: the account's Web Push subscriptions (docs/protocol.md §5).

A browser that allowed notifications holds one; so may a device someone else signed in on. The
owner sees them all here and removes any it does not recognise (a password change or
`medreq logout --everywhere`-style revocation removes every one at once).
"""

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .app import Group, app
from .user_output import echo_json, out
from .user_session import JsonOption, ProfileOption, run, session

push_app = typer.Typer(
    help="Browsers and devices that get your events as Web Push notifications.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    cls=Group,
)
app.add_typer(push_app, name="push", rich_help_panel="Account")


@push_app.command("list")
def list_(profile: ProfileOption = "default", as_json: JsonOption = False) -> None:
    """List the push subscriptions, oldest first.

    Example: [cyan]medreq push list[/]
    """

    async def main() -> None:
        async with session(profile) as (client, _):
            found = await client.push_subscriptions()
        if as_json:
            echo_json([s.model_dump() for s in found])
            return
        table = Table("ID", "Push service", "Since", title="Push subscriptions")
        for s in found:
            table.add_row(str(s.id), escape(_origin(s.endpoint)), s.created_at)
        out.print(table)

    run(main)


@push_app.command()
def remove(
    subscription_id: Annotated[int, typer.Argument(min=1, help="The ID `medreq push list` shows.")],
    profile: ProfileOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Remove one push subscription: nothing more is pushed to it.

    Example: [cyan]medreq push remove 3[/]
    """

    async def main() -> None:
        async with session(profile) as (client, _):
            await client.remove_push_subscription(subscription_id)
        if as_json:
            echo_json({"removed": subscription_id})
        else:
            out.print(f"Push subscription {subscription_id} removed")

    run(main)


def _origin(endpoint: str) -> str:
    """The push service of an endpoint; its path is the subscription's capability, not shown."""
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"
