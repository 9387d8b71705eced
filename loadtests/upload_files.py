"""CPU per stored upload, through `MediaStore.save` (medreq/media.py) both ways: into an unnamed
(``O_TMPFILE``) file linked in once complete, and into a named ``.upload-*`` file renamed into
place (the fallback where unnamed files are not available). A 32 KB PNG each (`samples.photo`).

    python loadtests/upload_files.py [--dir /path/on/the/filesystem/to/measure] [--files 2000]

Each way stores ``--files`` uploads in a fresh media store under ``--dir`` (default: the temp
dir), three rounds alternating, and prints the process CPU per upload; the store is removed at
the end. On a journal-less ext4 run it a few minutes after any large deletion: new inodes there
skip every inode freed in the last 60 s, or 6 min while its inode table block is dirty
(`recently_deleted()` in fs/ext4/ialloc.c), which swamps what is measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from medreq.media import MediaStore
from medreq.simulate.samples import photo

IMAGE = photo()


async def one_chunk() -> AsyncIterator[bytes]:
    yield IMAGE


async def store_uploads(store: MediaStore, files: int) -> None:
    for _ in range(files):
        await store.save("image", "image", one_chunk(), limit=len(IMAGE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="medreq-upload-files-", dir=args.dir))
    try:
        store = MediaStore(root, "bench", base_url="http://127.0.0.1:1", url_ttl=60)
        if not store._unnamed["image"]:
            raise SystemExit(f"{args.dir} takes no unnamed files: only the named way would run")
        for round_ in range(3):
            for way, unnamed in (("named", False), ("unnamed", True)):
                store._unnamed["image"] = unnamed
                started = time.process_time()
                asyncio.run(store_uploads(store, args.files))
                per_file = (time.process_time() - started) / args.files * 1e6
                print(f"round {round_ + 1}: {way:8} {per_file:6.1f} µs CPU per upload", flush=True)
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
