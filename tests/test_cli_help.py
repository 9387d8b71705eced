"""Every `--help` reads at 80 columns: option names and examples whole, flags without a type."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click
import pytest

from .test_cli_options import all_commands

pytestmark = pytest.mark.timeout(60)

COMMANDS = [(name, command) for name, command in all_commands()]
URL = re.compile(r"\b[a-z]+://[^\s,;)]+[^\s,;.)]")


def help_at(width: int, *words: str) -> str:
    done = subprocess.run(
        [sys.executable, "-P", "-m", "medreq", *words, "--help"],
        env={**os.environ, "COLUMNS": str(width), "TERM": "dumb"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=lambda v: v if isinstance(v, str) else "")
def test_help_at_80_columns_cuts_no_name_nor_example(name: str, command: click.Command) -> None:
    shown = help_at(80, *name.split())
    lines = shown.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in shown, shown
    assert "<bool>" not in shown, shown
    words = set(re.findall(r"[\w./:@*'`<>=\[\]-]+", shown))
    for param in command.params:
        for option in [*param.opts, *getattr(param, "secondary_opts", [])]:
            if option.startswith("-"):
                assert option in words, f"{option} cut or missing in `medreq {name} --help`:\n{shown}"
        for url in URL.findall(getattr(param, "help", None) or ""):
            assert url in shown, f"{url} cut in `medreq {name} --help`:\n{shown}"


def test_serve_help_gives_each_description_room_at_80_columns() -> None:
    """The descriptions of `serve` wrap in a column of 36 or more, not 20."""
    shown = help_at(80, "serve")
    row = next(line for line in shown.splitlines() if "--database <str>" in line)
    description = row.split("--database <str>", 1)[1].strip(" │")
    assert description.startswith("Database URL")
    start = row.index("Database URL")
    assert len(row) - start - 2 >= 36, row
    assert "postgresql://user@host/db" in shown
    assert "--open-registration" in shown and "--closed-registration" in shown


def test_flags_take_no_value_and_say_so() -> None:
    shown = help_at(80, "listen")
    json_row = next(line for line in shown.splitlines() if "--json" in line)
    assert "<" not in json_row, json_row  # no `<bool>`: `--json true` is not how it is used
    refused = subprocess.run(
        [sys.executable, "-P", "-m", "medreq", "listen", "--json", "true"],
        env={**os.environ, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
