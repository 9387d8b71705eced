"""How the `medreq` command reads: global options, help texts, `samples`."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import typer
from rich.markup import RE_TAGS
from rich.style import Style
from typer.testing import CliRunner

from medreq.cli import app
from medreq.simulate.samples import png, wav

from .conftest import Account, ServerProcess

pytestmark = pytest.mark.timeout(60)


def all_commands() -> list[tuple[str, click.Command]]:
    root = typer.main.get_command(app)
    found: list[tuple[str, click.Command]] = []

    def walk(prefix: str, command: click.Command) -> None:
        found.append((prefix, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(f"{prefix} {name}".strip(), sub)

    walk("", root)
    return found


@pytest.mark.parametrize(("name", "command"), all_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_help_text_is_lost_to_rich_markup(name: str, command: click.Command) -> None:
    """Every ``[...]`` in a help text is a real style tag; anything else rich would swallow."""
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    for text in texts:
        for match in RE_TAGS.finditer(text):
            _, escapes, tag = match.groups()
            if escapes or tag.startswith("/") or tag.startswith("link"):
                continue
            Style.parse(tag)  # raises for "[env MEDREQ_HOST, default 127.0.0.1]" and the like


def test_serve_help_shows_defaults_and_environment_variables() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0
    for text in ("Interface to bind.", "MEDREQ_HOST", "127.0.0.1", "MEDREQ_PORT", "8000", "MEDREQ_DATA_DIR"):
        assert text in result.output, result.output
    assert "bind ." not in result.output and "Port ." not in result.output
    created = CliRunner().invoke(app, ["account", "create", "--help"], env={"COLUMNS": "200"})
    assert "./medreq-data" in created.output and "MEDREQ_DATA_DIR" in created.output


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDREQ_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("MEDREQ_PROFILE", raising=False)
    monkeypatch.delenv("MEDREQ_URL", raising=False)
    return tmp_path / "config"


def test_profile_and_json_work_before_or_after_the_command(
    config_dir: Path, server: ServerProcess, pharmacy: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    login = runner.invoke(
        app,
        ["--profile", "shop", "login", "--url", server.url, "-u", pharmacy.username, "--password-stdin"],
        input=pharmacy.password + "\n",
    )
    assert login.exit_code == 0, login.output
    assert (config_dir / "profiles" / "shop.json").exists()
    assert not (config_dir / "profiles" / "default.json").exists()

    for args in (["--profile", "shop", "--json", "whoami"], ["whoami", "--profile", "shop", "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["username"] == pharmacy.username

    # after the command wins over before it, which wins over the environment
    monkeypatch.setenv("MEDREQ_PROFILE", "nobody")
    assert runner.invoke(app, ["--profile", "shop", "whoami"]).exit_code == 0
    after_wins = runner.invoke(app, ["--profile", "shop", "whoami", "--profile", "nobody"])
    assert after_wins.exit_code == 1
    assert "not logged in (profile 'nobody')" in after_wins.stderr


def test_samples_writes_the_files_the_walk_through_uploads(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["samples", str(tmp_path / "files")])
    assert result.exit_code == 0, result.output
    image, voice = (tmp_path / "files" / "prescription.png"), (tmp_path / "files" / "reply.wav")
    assert image.read_bytes().startswith(png()[:8])
    assert voice.read_bytes()[:4] == wav()[:4] == b"RIFF"
    image.write_bytes(b"mine")
    again = CliRunner().invoke(app, ["samples", str(tmp_path / "files")])
    assert again.exit_code == 0 and "kept" in again.output
    assert image.read_bytes() == b"mine"


def test_bench_results_print_as_a_table() -> None:
    from rich.console import Console

    from medreq.cli.simulate import bench_table

    result = {
        "benchmark": "notify",
        "results": [
            {"offered_rate": 50.0, "lost": 0, "post_to_notify_ms": {"p50": 1.5, "p99": 4.25}},
            {"offered_rate": 200.0, "lost": 0, "post_to_notify_ms": {"p50": 2.0, "p99": None}},
        ],
    }
    console = Console(record=True, width=200)
    console.print(bench_table(result))
    text = console.export_text()
    assert "medreq bench notify" in text
    assert "{" not in text  # not JSON
    row = next(line for line in text.splitlines() if "post_to_notify_ms p50" in line)
    assert "1.5" in row and "2" in row
    assert "–" in next(line for line in text.splitlines() if "post_to_notify_ms p99" in line)
