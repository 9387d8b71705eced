"""The root Typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="medreq",
    help="Real-time medicine requests between patients and pharmacies.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
