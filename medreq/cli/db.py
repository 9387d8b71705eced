"""Operator commands on the stored data: `medreq db prune`, `backup` and `restore`.

The storage and backup modules are imported by the command that runs (issue 14)."""

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .app import Group, app
from .operator import fail, load_settings, require_database
from .options import DatabaseOption, DataDirOption, MediaDirOption

if TYPE_CHECKING:
    from ..config import Settings

db_app = typer.Typer(help="Prune, back up and restore the server's data.", no_args_is_help=True, cls=Group)
app.add_typer(db_app, name="db")


def _settings(data_dir: Path | None, database: str | None, media_dir: Path | None) -> "Settings":
    return load_settings(data_dir, database, media_dir)


@db_app.command("prune")
def prune(
    data_dir: Path | None = DataDirOption,
    database: str | None = DatabaseOption,
    media_dir: Path | None = MediaDirOption,
    event_days: int | None = typer.Option(
        None,
        envvar="MEDREQ_EVENT_RETENTION_DAYS",
        show_default="90",
        help="Delete events older than this many days; 0 keeps all.",
    ),
    media_days: int | None = typer.Option(
        None,
        envvar="MEDREQ_MEDIA_RETENTION_DAYS",
        show_default="0: keep",
        help="Delete media of requests closed longer ago than this many days.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Delete what is past its retention now, as the server does in the background, and say what went.

    Example: [bold]medreq db prune --event-days 30 --media-days 365[/bold]
    """
    import asyncio

    from ..bootstrap import media_store, open_store
    from ..service.retention import prune as run_prune

    settings = _settings(data_dir, database, media_dir)
    require_database(settings)
    events = settings.event_retention_days if event_days is None else event_days
    media = settings.media_retention_days if media_days is None else media_days

    async def go() -> dict[str, int]:
        store = open_store(settings)
        try:
            await store.migrate()
            files = media_store(settings)  # finds the files to remove; it signs no link here
            horizon = max(settings.access_token_ttl, settings.refresh_token_ttl)
            report = await run_prune(store, files, event_days=events, media_days=media, changes_horizon=horizon)
            return report.as_dict()
        finally:
            await store.close()

    report = asyncio.run(go())
    if json_output:
        typer.echo(json.dumps(report))
        return
    typer.echo(
        f"removed {report['events']} events (older than {events} days), "
        f"{report['media_files']} media files ({report['media_bytes']} bytes) "
        f"of {report['requests']} closed requests"
        + ("" if media else " (media are kept: --media-days 0)")
    )


@db_app.command("backup")
def backup(
    file: Path = typer.Argument(..., help="The archive to write (a .tar.gz; 0600)."),
    data_dir: Path | None = DataDirOption,
    database: str | None = DatabaseOption,
    media_dir: Path | None = MediaDirOption,
) -> None:
    """Back up the database and the media into one archive, safely while the server runs.

    Example: [bold]medreq db backup /backups/medreq-$(date +%F).tar.gz[/bold]
    """
    from ..storage.backup import BackupError, postgres_instructions
    from ..storage.backup import backup as run_backup

    settings = _settings(data_dir, database, media_dir)
    if not settings.is_sqlite:
        typer.echo(postgres_instructions(settings, file), err=True)
        fail("nothing written: back PostgreSQL up with pg_dump as shown above", settings)
    try:
        summary = run_backup(settings, file)
    except BackupError as exc:
        fail(f"backup failed: {exc}", settings)
    typer.echo(
        f"backed up {summary.database_bytes} bytes of database and {summary.media_files} media files "
        f"({summary.media_bytes} bytes) to {summary.path}"
    )


@db_app.command("restore")
def restore(
    file: Path = typer.Argument(..., help="An archive written by `medreq db backup`."),
    data_dir: Path | None = DataDirOption,
    database: str | None = DatabaseOption,
    media_dir: Path | None = MediaDirOption,
) -> None:
    """Replace the data dir's database and media with a backup's (the server must be stopped).

    The replaced files are kept in DATA_DIR/pre-restore-<time>/.
    Example: [bold]medreq db restore /backups/medreq-2026-11-28.tar.gz[/bold]
    """
    from ..storage.backup import BackupError, postgres_instructions
    from ..storage.backup import restore as run_restore

    settings = _settings(data_dir, database, media_dir)
    if not settings.is_sqlite:
        typer.echo(postgres_instructions(settings, file), err=True)
        fail("nothing restored: restore PostgreSQL with pg_restore as shown above", settings)
    try:
        summary = run_restore(settings, file)
    except BackupError as exc:
        fail(f"restore refused: {exc}", settings)
    typer.echo(
        f"restored {summary.database_bytes} bytes of database and {summary.media_files} media files "
        f"from {file}; start the server to apply any newer migrations"
    )
