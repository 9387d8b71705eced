"""Help screens that read at 80 columns: option names never cut, flags without a type.

Typer's rich help lays each panel out as six columns (long, short and negative names, type,
help) and lets rich shrink them all to the width: at 80 columns `serve --help` squeezed each
description into 20 characters and cut names (`--closed-registrat…`), and every flag was shown
as taking a `<bool>` it does not take (issue 24). Here each option is one row of two columns,
its names as Click's public `get_help_record` writes them (a flag without a type, a value's
type after its name) and its help; the names column never wraps, the help column wraps at
spaces. When the names would leave the help less than `MIN_HELP` columns, the panel stacks:
names on their line, the help indented under them.

Typer prints the rest (usage, description, command lists) as before: its help renderer is
given this panel function for the time of one `--help`. That is a private name of Typer's; if
it moves, Typer's own panels are printed (tests/test_cli_help.py notices).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Group as RenderGroup
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from typer._click import Context, Parameter

MIN_HELP = 36
_PARENS_DEFAULT = re.compile(r"default: \((.*?)\)(?=;|\]$)")


@contextlib.contextmanager
def readable_panels() -> Iterator[None]:
    """Typer's help renderer prints its option panels with `options_panel` meanwhile."""
    from typer import rich_utils

    original = getattr(rich_utils, "_print_options_panel", None)
    if original is None:  # pragma: no cover - another Typer: its own panels
        yield
        return
    rich_utils._print_options_panel = options_panel
    try:
        yield
    finally:
        rich_utils._print_options_panel = original


def options_panel(
    *, name: str, params: list[Any], ctx: Context, markup_mode: str, console: Console, **_: Any
) -> None:
    """One panel of options or arguments (Typer's keyword arguments)."""
    rows = [row for row in (_row(param, ctx) for param in params) if row is not None]
    if not rows:
        return
    widest = max(len(line) for names, _help in rows for line in names.plain.splitlines())
    inner = console.width - 4  # the panel's borders and padding
    body: RenderableType
    if widest + 2 + MIN_HELP <= inner:
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        for names, help_text in rows:
            table.add_row(names, help_text)
        body = table
    else:
        body = RenderGroup(*(part for names, help_text in rows for part in _stacked(names, help_text)))
    console.print(Panel(body, title=name, title_align="left", border_style="dim"))


def _stacked(names: Text, help_text: Text) -> list[RenderableType]:
    return [names, Padding(help_text, (0, 0, 0, 4))]


def _row(param: Parameter, ctx: Context) -> tuple[Text, Text] | None:
    record = param.get_help_record(ctx)
    if record is None:
        return None
    names, full = record
    # a flag with a negative form (`--rate-limit / --no-rate-limit`): one name a line
    names_text = Text("\n".join(part.strip() for part in names.split(" / ")), style="bold cyan")
    own = " ".join((getattr(param, "help", None) or "").split())
    full = " ".join(full.split())
    extra = full[len(own) :] if full.startswith(own) else ""
    help_text = Text.from_markup(own) if own else Text()
    extra = _PARENS_DEFAULT.sub(r"default: \1", extra.replace("\\[", "[").strip())
    if extra:
        help_text.append((" " if own else "") + extra, style="dim")
    return names_text, help_text
