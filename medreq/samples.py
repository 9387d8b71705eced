"""Small but real media files, made in code: PNG prescriptions and WAV voice replies.

Used by the simulator, the Locust scenarios and the tests, so every upload they make is a
file any sniffer recognises. Standard library only (Locust imports this under gevent).
"""

from __future__ import annotations

import io
import struct
import wave
import zlib


def png(width: int = 4, height: int = 4, colour: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    """A valid RGB PNG of one colour (a few hundred bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(colour) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def wav(seconds: float = 0.2, rate: int = 8000) -> bytes:
    """A valid mono 16-bit WAV of silence."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()
