"""Options shared by the operator commands (`medreq account …`, `medreq db …`): where the
server's data is. Defaults and environment variables show in `--help` (no rich markup).

And `settings_command`: a command whose options are made from `Settings` (`medreq serve`).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import typer
from typer.core import TyperCommand

DataDirOption = typer.Option(
    None,
    "--data-dir",
    envvar="MEDREQ_DATA_DIR",
    show_default="./medreq-data",
    help="Data dir of the server (the one `medreq serve` uses).",
)
DatabaseOption = typer.Option(
    None,
    "--database",
    envvar="MEDREQ_DATABASE_URL",
    show_default="SQLite in the data dir",
    help="Database URL of the server.",
)
MediaDirOption = typer.Option(
    None,
    "--media-dir",
    envvar="MEDREQ_MEDIA_DIR",
    show_default="DATA_DIR/media",
    help="Media dir of the server.",
)


def settings_command(run: Callable[..., None]) -> TyperCommand:
    """A command that calls `run(**options)`, with an option for each `Settings` field declared
    with `option` metadata (config/settings.py): its flag, type, help, shown default and
    ``MEDREQ_*`` variable all come from the field. Each value is None when not given (the
    variable, then the default, apply in `Settings.load`); a repeatable flag's items are joined
    with commas, as its variable is written.

    Typer makes the options from a signature, as from any command function: that one is built
    here, from the fields. `medreq.config` is imported by this call only (see `serve`)."""
    from ..config.settings import ENV_PREFIX, OPTION, Option, Settings

    types = typing.get_type_hints(Settings)
    params: list[inspect.Parameter] = []
    for f in fields(Settings):
        how: Option | None = f.metadata.get(OPTION)
        if how is None:
            continue
        variable = ENV_PREFIX + f.name.upper()
        kind = _given(types[f.name])
        shown = how.shown if how.shown is not None else _shown(f.default)
        decls = [how.flag] if how.flag else []
        if how.each:  # a list: Click would split its variable at spaces, so Settings reads it
            text = f"{how.help}; repeatable (env {variable}, comma-separated; default: {shown})."
            info = typer.Option(None, *decls, metavar=how.each, help=text)
            kind = list[kind]  # type: ignore[valid-type]
        else:
            info = typer.Option(None, *decls, envvar=variable, show_default=shown, help=how.help)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=kind | None))

    def command(**given: Any) -> None:
        run(**{name: ",".join(value) if isinstance(value, list) else value for name, value in given.items()})

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {param.name: param.annotation for param in params}
    made = typer.Typer(add_completion=False)  # the root's completion options are the root's
    made.command()(command)
    return typer.main.get_command(made)  # type: ignore[return-value]


def _given(kind: Any) -> Any:
    """The type an option takes: `Path | None` takes a `Path`."""
    args = typing.get_args(kind)
    return next(arg for arg in args if arg is not type(None)) if type(None) in args else kind


def _shown(default: object) -> str:
    return ("on" if default else "off") if isinstance(default, bool) else str(default)
