"""`medreq db backup` / `restore`: one private archive with the database and the media, taken
while the server writes, restored only while no server holds the data dir."""

from __future__ import annotations

import io
import sqlite3
import stat
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from medreq.cli import app

from .conftest import Account, ServerProcess
from .wire import db_snapshot, post_request, post_response


def medreq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medreq", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_backup_while_serving_then_restore_brings_it_all_back(
    server: ServerProcess,
    patient: Account,
    pharmacy: Account,
    png_bytes: bytes,
    wav_bytes: bytes,
    tmp_path: Path,
) -> None:
    created = post_request(server, patient, pharmacy=pharmacy.id, image=png_bytes).json()
    assert (
        post_response(server, pharmacy, request_id=created["request_id"], audio=wav_bytes).status_code == 200
    )

    # back up while the patient keeps posting requests with prescriptions
    stop = threading.Event()
    posted: list[int] = []

    def keep_posting() -> None:
        for _ in range(200):  # bounded; stopped once the backup is done
            if stop.is_set():
                return
            response = post_request(server, patient, pharmacy=pharmacy.id, image=png_bytes)
            assert response.status_code == 201
            posted.append(response.json()["request_id"])

    writer = threading.Thread(target=keep_posting)
    writer.start()
    archive = tmp_path / "backups" / "medreq.tar.gz"
    try:
        done = medreq("db", "backup", str(archive), "--data-dir", str(server.data_dir))
    finally:
        stop.set()
        writer.join()
    assert done.returncode == 0, done.stderr
    assert "media files" in done.stdout
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert posted  # the backup really ran beside writes

    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert {"manifest.json", "medreq.db"} <= names
        assert "jwt-secret" not in names
        db_bytes = tar.extractfile("medreq.db").read()  # type: ignore[union-attr]
    copy = tmp_path / "copy.db"
    copy.write_bytes(db_bytes)
    db = sqlite3.connect(copy)
    try:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        media = db.execute("select image_name from medicine_requests where image_name is not null").fetchall()
        backed_up = {r[0] for r in db.execute("select id from medicine_requests")}
    finally:
        db.close()
    # every file the copied database names is in the archive (media archived after the copy)
    assert {f"media/prescriptions/{name}" for (name,) in media} <= names

    # a change after the backup, then restore over it (server stopped)
    late = post_request(server, patient, pharmacy=pharmacy.id, medicine_name="after the backup").json()
    server.stop()
    restored = medreq("db", "restore", str(archive), "--data-dir", str(server.data_dir))
    assert restored.returncode == 0, restored.stderr
    assert list(server.data_dir.glob("pre-restore-*/medreq.db"))  # the replaced data is kept
    server.start()
    listed = httpx.get(f"{server.url}/medicine/request/?limit=100", headers=patient.headers).json()["results"]
    ids = {r["id"] for r in listed}
    assert late["request_id"] not in ids
    assert created["request_id"] in ids
    assert ids <= backed_up | {late["request_id"]}
    detail = httpx.get(
        f"{server.url}/medicine/request/{created['request_id']}/", headers=patient.headers
    ).json()
    assert httpx.get(detail["image_url"]).content == png_bytes  # media came back too
    assert httpx.get(detail["response"]["audio_url"]).content == wav_bytes


def test_restore_refuses_while_a_server_holds_the_data_dir(
    server: ServerProcess, patient: Account, pharmacy: Account, tmp_path: Path
) -> None:
    assert post_request(server, patient, pharmacy=pharmacy.id, medicine_name="x").status_code == 201
    archive = tmp_path / "b.tar.gz"
    assert medreq("db", "backup", str(archive), "--data-dir", str(server.data_dir)).returncode == 0
    before = db_snapshot(server)
    refused = medreq("db", "restore", str(archive), "--data-dir", str(server.data_dir))
    assert refused.returncode == 1
    assert "a server is running" in refused.stderr
    assert db_snapshot(server) == before
    assert not list(server.data_dir.glob("pre-restore-*"))


def test_restore_refuses_an_archive_that_is_not_a_backup(
    server: ServerProcess, patient: Account, pharmacy: Account, tmp_path: Path
) -> None:
    assert post_request(server, patient, pharmacy=pharmacy.id, medicine_name="x").status_code == 201
    server.stop()
    before = db_snapshot(server)
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        for name in ("manifest.json", "medreq.db", "../escaped"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
    not_tar = tmp_path / "plain.tar.gz"
    not_tar.write_bytes(b"not an archive")
    for archive in (evil, not_tar):
        refused = medreq("db", "restore", str(archive), "--data-dir", str(server.data_dir))
        assert refused.returncode == 1, refused.stdout
        assert "restore refused" in refused.stderr
    assert not (tmp_path / "escaped").exists()
    assert db_snapshot(server) == before


def test_postgres_backup_prints_pg_dump_instructions(tmp_path: Path) -> None:
    runner = CliRunner()
    result: Any = runner.invoke(
        app,
        ["db", "backup", str(tmp_path / "b"), "--database", "postgresql://medreq@db.internal/medreq"],
    )
    assert result.exit_code == 1
    assert "pg_dump --format=custom" in result.output
    assert "postgresql://medreq@db.internal/medreq" in result.output
    assert not list(tmp_path.iterdir())
