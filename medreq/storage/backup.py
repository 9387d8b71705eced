"""`medreq db backup` and `medreq db restore`: one archive with the database and the media.

The archive is a gzipped tar, private (0600) like the data it holds, and so is every member in it
(0600, whatever the mode on disk: a manual `tar x` keeps the modes it finds):

- `medreq.db`: a copy made with SQLite's online backup API, consistent at one instant even
  while a server writes (readers and the backup do not block writers in WAL mode);
- `media/…`: every file of the media dir, archived *after* the database copy, so every file
  the copy names is in it (a file uploaded meanwhile is archived too, and simply unused);
- `manifest.json`: format version, time, schema revision, counts.

The JWT secret is not included: a restored server on another host makes a new one, which
signs everyone out (tokens of the old host must not outlive a move). Restoring into the data
dir that still has its `jwt-secret` keeps sessions valid.

PostgreSQL is backed up with its own tools (`pg_dump`); `postgres_instructions` says how.

`serve` holds a `flock` on `<data dir>/server.lock` while it runs (`medreq.server.holding`);
`restore` takes it exclusively and refuses when it cannot, so a running server's database is
never swapped underneath it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..files import make_private_dir, open_private_lock

FORMAT = 1
LOCK_FILE = "server.lock"
DB_NAME = "medreq.db"


class BackupError(Exception):
    """The backup or restore cannot be done (the message says why)."""


@dataclass
class Summary:
    path: Path
    database_bytes: int
    media_files: int
    media_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path)}


def sqlite_path(settings: Settings) -> Path:
    if not settings.is_sqlite:
        raise BackupError("not a SQLite database")
    return Path(settings.database_url.split(":///", 1)[1])


def postgres_instructions(settings: Settings, file: Path) -> str:
    media = settings.media_dir or settings.data_dir / "media"
    url = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
    return (
        "PostgreSQL is backed up with its own tools (consistent while serving):\n"
        f"  pg_dump --format=custom --file {file}.pgdump '{url}'\n"
        f"  tar -czf {file}.media.tar.gz -C {media.parent} {media.name}\n"
        "Restore (server stopped):\n"
        f"  pg_restore --clean --if-exists --dbname '{url}' {file}.pgdump\n"
        f"  tar -xzf {file}.media.tar.gz -C {media.parent}\n"
    )


def backup(settings: Settings, file: Path) -> Summary:
    """Write the archive to `file` (atomically: a temporary file renamed at the end)."""
    database = sqlite_path(settings)
    if not database.is_file():
        raise BackupError(f"no database at {database}")
    media = settings.media_dir or settings.data_dir / "media"
    file = file.resolve()
    file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".medreq-backup-", dir=file.parent) as work:
        copy = Path(work) / DB_NAME
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        target = sqlite3.connect(copy)
        try:
            source.backup(target)
            revision = _revision(target)
        finally:
            target.close()
            source.close()
        files = sorted(p for p in media.rglob("*") if p.is_file()) if media.is_dir() else []
        manifest = {
            "format": FORMAT,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "schema_revision": revision,
            "media_files": len(files),
        }
        partial = Path(work) / "archive.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        media_bytes = 0
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
            tar.add(copy, arcname=DB_NAME, filter=_private)
            for path in files:
                with contextlib.suppress(FileNotFoundError):  # pruned meanwhile: not needed
                    tar.add(path, arcname=f"media/{path.relative_to(media).as_posix()}", filter=_private)
                    media_bytes += path.stat().st_size
        os.replace(partial, file)
        return Summary(file, copy.stat().st_size, len(files), media_bytes)


def restore(settings: Settings, file: Path) -> Summary:
    """Replace the data dir's database and media with the archive's; the old ones are kept
    in `<data dir>/pre-restore-<time>/`. Refuses while a server holds the data dir."""
    database = sqlite_path(settings)
    media = settings.media_dir or settings.data_dir / "media"
    with os.fdopen(open_private_lock(settings.data_dir / LOCK_FILE), "r+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(
                f"a server is running on {settings.data_dir}: stop it first, then restore"
            ) from None
        with tempfile.TemporaryDirectory(prefix=".medreq-restore-", dir=settings.data_dir) as work:
            unpacked = Path(work)
            _extract(file, unpacked)
            if not (unpacked / DB_NAME).is_file():
                raise BackupError(f"{file} is not a medreq backup (no {DB_NAME})")
            keep = settings.data_dir / time.strftime("pre-restore-%Y%m%dT%H%M%S")
            make_private_dir(keep)
            for suffix in ("", "-wal", "-shm"):  # the old WAL must not be replayed onto the new file
                old = Path(f"{database}{suffix}")
                if old.exists():
                    os.replace(old, keep / old.name)
            if media.exists():
                shutil.move(media, keep / "media")
            database.parent.mkdir(parents=True, exist_ok=True)
            os.replace(unpacked / DB_NAME, database)
            os.chmod(database, 0o600)
            restored_media = unpacked / "media"
            if restored_media.is_dir():
                shutil.move(restored_media, media)
            make_private_dir(media)
            files = [p for p in media.rglob("*") if p.is_file()]
            return Summary(file, database.stat().st_size, len(files), sum(p.stat().st_size for p in files))


def _extract(file: Path, into: Path) -> None:
    try:
        with tarfile.open(file, mode="r:gz") as tar:
            for member in tar.getmembers():
                name = member.name
                if not (name in ("manifest.json", DB_NAME) or name.startswith("media/") or name == "media"):
                    raise BackupError(f"{file}: unexpected member {name!r}")
            # the "data" filter refuses absolute paths, "..", links out of the tree and devices
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{file} cannot be read as a medreq backup: {exc}") from None
    manifest = json.loads((into / "manifest.json").read_text()) if (into / "manifest.json").is_file() else {}
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{file}: unknown backup format {manifest.get('format')!r}")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _private(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """Every member owner-only (0600, a folder 0700), whatever the mode on disk: a manual
    `tar x` keeps the archive's modes, and patients' data must not come out world-readable."""
    member.mode = 0o700 if member.isdir() else 0o600
    return member


def _revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None
