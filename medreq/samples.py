"""Small but real media files, made in code: PNG prescriptions and WAV voice replies.

Used by the simulator, the Locust scenarios and the tests, so every upload they make is a
file any sniffer recognises. Standard library only (Locust imports this under gevent).
"""

from __future__ import annotations

import io
import random
import struct
import wave
import zlib


def png(width: int = 4, height: int = 4, colour: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    """A valid RGB PNG of one colour (a few hundred bytes)."""
    return _png(width, height, b"".join(b"\x00" + bytes(colour) * width for _ in range(height)))


def photo(kilobytes: int = 32, seed: int = 0) -> bytes:
    """A valid RGB PNG of about `kilobytes` KB, as big as a phone's photo of a prescription
    sent at low quality: noise, which deflate cannot shrink (`bench cycle --image`)."""
    width = 96
    height = max(1, kilobytes * 1024 // (width * 3 + 1))
    noise = random.Random(seed).randbytes(width * 3 * height)
    raw = b"".join(b"\x00" + noise[row * width * 3 : (row + 1) * width * 3] for row in range(height))
    return _png(width, height, raw)


def _png(width: int, height: int, raw: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

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
