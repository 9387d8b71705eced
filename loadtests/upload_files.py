"""CPU per stored upload: a named ``.upload-*`` file renamed into place against an unnamed
(``O_TMPFILE``) file linked in (medreq/media.py `MediaStore.save`), 32 KB each.

    python loadtests/upload_files.py [--dir /path/on/the/filesystem/to/measure] [--files 2000]

Each way writes ``--files`` files in a fresh folder under ``--dir`` (default: the temp dir),
three rounds alternating, and prints the process CPU per file; the folder is removed at the
end. On a journal-less ext4 run it a few minutes after any large deletion: new inodes there
skip every inode freed in the last 60 s, or 6 min while its inode table block is dirty
(`recently_deleted()` in fs/ext4/ialloc.c), which swamps what is measured here.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from medreq.media import link_unnamed, write_all

DATA = os.urandom(32 * 1024)


def named(folder: Path) -> None:
    tmp = folder / f".upload-{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, DATA)
    finally:
        os.close(fd)
    os.replace(tmp, folder / f"{secrets.token_urlsafe(16)}.png")


def unnamed(folder: Path) -> None:
    fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o600)
    try:
        write_all(fd, DATA)
        link_unnamed(fd, folder / f"{secrets.token_urlsafe(16)}.png")
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="medreq-upload-files-", dir=args.dir))
    try:
        for round_ in range(3):
            for way in (named, unnamed):
                started = time.process_time()
                for _ in range(args.files):
                    way(folder)
                per_file = (time.process_time() - started) / args.files * 1e6
                print(f"round {round_ + 1}: {way.__name__:8} {per_file:6.1f} µs CPU per file", flush=True)
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
