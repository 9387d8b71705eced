"""The root Typer application every command module registers on.

`--profile` and `--json` are accepted before the command too (`medreq --profile shop listen`):
the root callback takes them, and each command's own option falls back to them unless it was
given after the command (see `user_session.root_fallback`).

Every group is a `Group` and every command it runs a `Command`: their help prints its option
panels through `help.py`, readable at 80 columns.
"""

from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from typer._click import Command as ClickCommand
    from typer._click import Context, HelpFormatter


class Command(TyperCommand):
    """A command whose help reads at 80 columns (`help.py`)."""

    def format_help(self, ctx: "Context", formatter: "HelpFormatter") -> None:
        from .help import readable_panels

        with readable_panels():
            super().format_help(ctx, formatter)


class Group(TyperGroup):
    """A command group (the root, `account`, `db`, `webhook`) whose own options are read
    without importing pydantic.

    Typer coerces an option's value through a pydantic `TypeAdapter` built on first use (all
    but a flag's True/False; its unset `None` too); a group's options (the root's `--profile`
    and `--json`, every group's `--help`, the completion flags) are processed before its
    command runs, so even `medreq requests --help` imported pydantic: CPU median 272 ms with
    it, 202 ms without (issue 14, docs/benchmarks.md). A string or a flag needs no coercion,
    so a group's `str` and `bool` options get Typer's own pass-through instead. Those are
    Typer's private names: if they move, this does nothing and pydantic is imported as
    before (`tests/test_cli_startup.py` notices).
    """

    def parse_args(self, ctx: "Context", args: list[str]) -> list[str]:
        # here, not in __init__: Typer appends the completion options and Click makes `--help`
        # after the group is built
        try:
            from typer._coercion import PassThroughRuntimeParam
        except ImportError:  # pragma: no cover - another Typer: coerced the usual way
            return super().parse_args(ctx, args)
        for param in self.get_params(ctx):
            descriptor = getattr(param, "type_descriptor", None)
            if descriptor is None or descriptor.annotation not in (str, bool):
                continue
            if getattr(param, "_runtime_param", False) is None:  # not built yet
                param._runtime_param = PassThroughRuntimeParam(  # type: ignore[attr-defined]
                    annotation=descriptor.annotation, parameter_info=descriptor.parameter_info
                )
        return super().parse_args(ctx, args)

    def format_help(self, ctx: "Context", formatter: "HelpFormatter") -> None:
        from .help import readable_panels

        with readable_panels():
            super().format_help(ctx, formatter)

    def resolve_command(
        self, ctx: "Context", args: list[str]
    ) -> tuple[str | None, "ClickCommand | None", list[str]]:
        """The command to run; a plain Typer command becomes a `Command`, so its help reads at
        80 columns too (a subclass that adds no state: every group's commands, whoever wrote them,
        without each module passing `cls=`)."""
        name, command, rest = super().resolve_command(ctx, args)
        if type(command) is TyperCommand:
            command.__class__ = Command
        return name, command, rest


app = typer.Typer(
    name="medreq",
    help="Real-time medicine requests between patients and pharmacies.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    cls=Group,
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
