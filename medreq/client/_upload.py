"""Files to upload: opened lazily (once per attempt), streamed in chunks, with progress."""

from __future__ import annotations

import io
import mimetypes
import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

#: A path, raw bytes or a binary file object.
FileInput = str | os.PathLike[str] | bytes | IO[bytes]
#: Called with (bytes sent so far, total bytes or None) while a file uploads.
Progress = Callable[[int, int | None], None]


class _ProgressReader(io.RawIOBase):
    """Wraps a binary file; reports how much httpx has read from it."""

    def __init__(self, raw: IO[bytes], total: int | None, progress: Progress) -> None:
        super().__init__()
        self._raw, self._total, self._progress, self._sent = raw, total, progress, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._raw.seek(offset, whence)
        if whence == os.SEEK_SET and offset == 0:
            self._sent = 0
        return position

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self._sent += len(chunk)
        self._progress(self._sent, self._total)
        return chunk


def file_size(source: FileInput) -> int | None:
    """The size of ``source`` in bytes, without reading it (None when unknown)."""
    if isinstance(source, bytes):
        return len(source)
    if isinstance(source, str | os.PathLike):
        return Path(source).stat().st_size
    try:
        return os.fstat(source.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


def open_file(
    stack: ExitStack, source: FileInput, filename: str | None, progress: Progress | None
) -> tuple[str, IO[bytes], str]:
    """An httpx ``files`` tuple for ``source``; opened files are closed by ``stack``."""
    fileobj: IO[bytes]
    if isinstance(source, bytes):
        name = filename or "upload"
        fileobj = io.BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        name = filename or path.name
        fileobj = stack.enter_context(path.open("rb"))
    else:
        name = filename or Path(str(getattr(source, "name", "upload"))).name
        fileobj = source
        if fileobj.seekable():
            fileobj.seek(0)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if progress is not None:
        fileobj = _ProgressReader(fileobj, file_size(source), progress)  # type: ignore[assignment]
    return name, fileobj, content_type


def form_fields(values: dict[str, Any]) -> list[tuple[str, tuple[None, str]]]:
    """Plain multipart fields (``None`` values left out), so the body is multipart even
    without a file."""
    return [(name, (None, str(value))) for name, value in values.items() if value is not None]
