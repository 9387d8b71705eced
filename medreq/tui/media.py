"""Prescription files: what they are (kind, pixel size, bytes) and opening them in a viewer."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WebP": ".webp", "GIF": ".gif", "PDF": ".pdf"}


@dataclass(frozen=True)
class MediaInfo:
    kind: str  # PNG, JPEG, WebP, GIF, PDF or "file"
    size: int  # bytes
    width: int | None = None
    height: int | None = None

    @property
    def extension(self) -> str:
        return _EXTENSIONS.get(self.kind, ".bin")

    def describe(self) -> str:
        dims = f" {self.width}×{self.height} px" if self.width and self.height else ""
        return f"{self.kind}{dims}, {human_size(self.size)}"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def inspect(data: bytes) -> MediaInfo:
    """Sniff the kind and pixel size from the bytes (never from a name)."""
    size = len(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return MediaInfo("PNG", size, width, height)
    if data.startswith(b"\xff\xd8"):
        return MediaInfo("JPEG", size, *_jpeg_size(data))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return MediaInfo("WebP", size, *_webp_size(data))
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return MediaInfo("GIF", size, width, height)
    if data.startswith(b"%PDF"):
        return MediaInfo("PDF", size)
    return MediaInfo("file", size)


def _jpeg_size(data: bytes) -> tuple[int | None, int | None]:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            pos += 1
            continue
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None, None


def _webp_size(data: bytes) -> tuple[int | None, int | None]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None, None


def viewer_command() -> list[str] | None:
    """The system's "open this file" command, or None when there is none."""
    if sys.platform == "darwin":
        names = ["open"]
    elif sys.platform == "win32":  # pragma: no cover
        return ["cmd", "/c", "start", ""]
    else:
        names = ["xdg-open", "gio", "wslview"]
    for name in names:
        found = shutil.which(name)
        if found:
            return [found, "open"] if name == "gio" else [found]
    return None


def open_in_viewer(path: Path) -> bool:
    """Start the system viewer on ``path`` without waiting; False when there is no viewer."""
    command = viewer_command()
    if command is None:
        return False
    try:
        subprocess.Popen(
            [*command, os.fspath(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return False
    return True
