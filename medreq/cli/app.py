"""The root Typer application every command module registers on.

`--profile` and `--json` are accepted before the command too (`medreq --profile shop listen`):
the root callback takes them, and each command's own option falls back to them unless it was
given after the command (see `user_session.root_fallback`).
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="medreq",
    help="Real-time medicine requests between patients and pharmacies.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-P",
            help="Saved login to use; the same as giving it after the command.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON; the same as giving it after the command.")
    ] = False,
) -> None:
    """Real-time medicine requests between patients and pharmacies."""
