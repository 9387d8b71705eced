"""Files and folders that hold medical data: readable by the server's user alone."""

from __future__ import annotations

import os
from pathlib import Path


def make_private_dir(path: Path) -> None:
    """Create `path` (and parents) as 0700; tighten it if it exists looser.

    Data dirs hold patients' prescriptions and the signing key: nobody else on the machine
    may list or read them, whatever the umask.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def create_private_file(path: Path, content: bytes) -> None:
    """Write a new file readable by this user only (0600, whatever the umask), in a private dir;
    fails with FileExistsError rather than overwrite one (a key is made once)."""
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)


def open_private_lock(path: Path) -> int:
    """A descriptor on the lock file at `path` (created 0600 in a private dir if missing)."""
    make_private_dir(path.parent)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
