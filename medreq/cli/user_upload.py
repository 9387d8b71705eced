"""A rich progress bar (on stderr) for uploads big enough to take a while."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from medreq.client import Progress as ProgressCallback

from .user_output import err

#: files at least this big get a progress bar
PROGRESS_MIN_BYTES = 256 * 1024


@contextmanager
def upload_progress(path: Path | None) -> Iterator[ProgressCallback | None]:
    size = path.stat().st_size if path is not None else 0
    if path is None or size < PROGRESS_MIN_BYTES:
        yield None
        return
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(f"uploading {path.name}", total=size)

        def update(sent: int, total: int | None) -> None:
            bar.update(task, completed=sent)

        yield update
