"""Files and folders that hold medical data: readable by the server's user alone."""

from __future__ import annotations

from pathlib import Path


def make_private_dir(path: Path) -> None:
    """Create `path` (and parents) as 0700; tighten it if it exists looser.

    Data dirs hold patients' prescriptions and the signing key: nobody else on the machine
    may list or read them, whatever the umask.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
