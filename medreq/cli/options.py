"""Options shared by the operator commands (`medreq account …`, `medreq db …`): where the
server's data is. Defaults and environment variables show in `--help` (no rich markup)."""

from __future__ import annotations

import typer

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
