"""Uploads into the media store (medreq/media.py `MediaStore.save`): the bytes go to an unnamed file
that gets its name only once complete and sniffed, so an upload that fails, or a server killed in
the middle of one, leaves no file behind; where unnamed files are not available, a named
``.upload-*`` file is renamed instead, with the same guarantees short of a kill."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from medreq import media
from medreq.media import MediaStore, unnamed_files_work
from medreq.protocol.errors import Invalid, PayloadTooLarge, UnsupportedMediaType

from .conftest import png


def store(root: Path, *, unnamed: bool | None = None) -> MediaStore:
    made = MediaStore(root, "secret", base_url="http://127.0.0.1:1", url_ttl=60)
    if unnamed is not None:
        made._unnamed = {"image": unnamed, "audio": unnamed}
    return made


def entries(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "prescriptions").iterdir())


async def chunks_of(data: bytes, size: int = 4096, seen: list[list[str]] | None = None, root: Path | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        if seen is not None and root is not None:
            seen.append(entries(root))  # what the folder holds mid-upload


def test_this_machines_data_dirs_take_unnamed_files(tmp_path: Path) -> None:
    assert unnamed_files_work(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe is gone


def test_without_o_tmpfile_the_store_falls_back_to_named_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "O_TMPFILE")
    assert not unnamed_files_work(tmp_path)
    assert store(tmp_path)._unnamed == {"image": False, "audio": False}


@pytest.mark.parametrize("unnamed", [True, False])
async def test_an_upload_is_stored_whole_private_and_named_only_when_complete(tmp_path: Path, unnamed: bool) -> None:
    image = png(40, 40) + b"\0" * 20_000
    seen: list[list[str]] = []
    saved = await store(tmp_path, unnamed=unnamed).save(
        "image", "image", chunks_of(image, seen=seen, root=tmp_path), limit=1 << 20
    )
    path = tmp_path / "prescriptions" / saved.name
    assert path.read_bytes() == image
    assert saved.size == len(image) and saved.content_type == "image/png"
    assert path.stat().st_mode & 0o777 == 0o600
    assert entries(tmp_path) == [saved.name]
    if unnamed:
        assert all(listing == [] for listing in seen)  # nothing had a name before it was whole
    else:
        assert all(len(listing) == 1 and listing[0].startswith(".upload-") for listing in seen)


@pytest.mark.parametrize("unnamed", [True, False])
@pytest.mark.parametrize(
    ("data", "limit", "error"),
    [
        (png(3, 3) + b"\0" * 9000, 8000, PayloadTooLarge),
        (b"", 8000, Invalid),
        (b"GIF89a" + b"\0" * 100, 8000, UnsupportedMediaType),
    ],
)
async def test_a_refused_upload_leaves_no_file(
    tmp_path: Path, unnamed: bool, data: bytes, limit: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await store(tmp_path, unnamed=unnamed).save("image", "image", chunks_of(data), limit=limit)
    assert entries(tmp_path) == []


@pytest.mark.parametrize("unnamed", [True, False])
def test_a_server_killed_mid_upload_leaves_no_file(tmp_path: Path, unnamed: bool) -> None:
    """Unnamed: nothing is left. The named fallback leaves its `.upload-*` (the one thing it
    cannot promise), which this shows is what the unnamed file saves."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from medreq.media import MediaStore

        async def body():
            yield b"\\x89PNG\\r\\n\\x1a\\n" + b"\\0" * 60_000  # the first half of a prescription
            print("half", flush=True)
            await asyncio.sleep(60)
            yield b"\\0" * 60_000

        store = MediaStore(Path({str(tmp_path)!r}), "secret", base_url="http://127.0.0.1:1", url_ttl=60)
        store._unnamed = {{"image": {unnamed}, "audio": {unnamed}}}
        asyncio.run(store.save("image", "image", body(), limit=1 << 20))
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "half"
            held = entries(tmp_path)  # mid-upload
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
    left = entries(tmp_path)
    if unnamed:
        assert held == [] and left == []
    else:
        assert len(held) == 1 and held[0].startswith(".upload-") and left == held


def test_link_unnamed_refuses_an_existing_name(tmp_path: Path) -> None:
    (tmp_path / "taken.png").write_bytes(b"first")
    fd = os.open(tmp_path, os.O_TMPFILE | os.O_WRONLY, 0o600)
    try:
        media.write_all(fd, b"second")
        with pytest.raises(FileExistsError):
            media.link_unnamed(fd, tmp_path / "taken.png")
    finally:
        os.close(fd)
    assert (tmp_path / "taken.png").read_bytes() == b"first"


@pytest.mark.parametrize("secret", ["secret", "clé-ünïcode", "s" * 200])
def test_links_are_signed_with_hmac_sha256_of_their_fields(tmp_path: Path, secret: str) -> None:
    """`_sign` copies an HMAC keyed once: the signature must be the one a fresh `hmac.new` makes of
    (kind, name, account, expiry), as links issued before it were, and a copy must not carry one
    link's fields into the next."""
    made = MediaStore(tmp_path, secret, base_url="http://127.0.0.1:1", url_ttl=60)
    key = hashlib.sha256(b"medreq-media\0" + secret.encode()).digest()
    now = int(time.time())
    for kind, name, to in [("image", "A" * 22 + ".png", 7), ("audio", "b-_" * 7 + "c.ogg", 123456789)]:
        url = made.url(kind, name, to=to, now=now)
        assert url is not None
        query = dict(pair.split("=") for pair in url.split("?", 1)[1].split("&"))
        message = f"{kind}/{name}/{to}/{now + 60}".encode()
        assert query["sig"] == hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
        assert made.check_signature(kind, name, query["to"], query["exp"], query["sig"]) == to
