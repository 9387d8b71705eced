"""Small but real media files, made in code: PNG prescriptions and WAV voice replies.

Used by the simulator, the Locust scenarios and the tests, so every upload they make is a
file any sniffer recognises. `prescription()` is the one a person looks at (`medreq samples`):
a doctor's letterhead, the medicine and a signature, drawn with a built-in 5×7 bitmap font.
Standard library only (Locust imports this under gevent).
"""

from __future__ import annotations

import io
import math
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


# --- a prescription that looks like one ------------------------------------------------------------

# A 5×7 bitmap font (after the classic LCD one, with descenders in an eighth row): five columns
# per glyph, bit 0 the top row.
_FONT: dict[str, bytes] = {
    " ": bytes((0x00, 0x00, 0x00, 0x00, 0x00)),
    ".": bytes((0x00, 0x60, 0x60, 0x00, 0x00)),
    ",": bytes((0x00, 0x50, 0x30, 0x00, 0x00)),
    ":": bytes((0x00, 0x36, 0x36, 0x00, 0x00)),
    "-": bytes((0x08, 0x08, 0x08, 0x08, 0x08)),
    "/": bytes((0x20, 0x10, 0x08, 0x04, 0x02)),
    "(": bytes((0x00, 0x1C, 0x22, 0x41, 0x00)),
    ")": bytes((0x00, 0x41, 0x22, 0x1C, 0x00)),
    "#": bytes((0x14, 0x7F, 0x14, 0x7F, 0x14)),
    "+": bytes((0x08, 0x08, 0x3E, 0x08, 0x08)),
    "0": bytes((0x3E, 0x51, 0x49, 0x45, 0x3E)),
    "1": bytes((0x00, 0x42, 0x7F, 0x40, 0x00)),
    "2": bytes((0x42, 0x61, 0x51, 0x49, 0x46)),
    "3": bytes((0x21, 0x41, 0x45, 0x4B, 0x31)),
    "4": bytes((0x18, 0x14, 0x12, 0x7F, 0x10)),
    "5": bytes((0x27, 0x45, 0x45, 0x45, 0x39)),
    "6": bytes((0x3C, 0x4A, 0x49, 0x49, 0x30)),
    "7": bytes((0x01, 0x71, 0x09, 0x05, 0x03)),
    "8": bytes((0x36, 0x49, 0x49, 0x49, 0x36)),
    "9": bytes((0x06, 0x49, 0x49, 0x29, 0x1E)),
    "A": bytes((0x7C, 0x12, 0x11, 0x12, 0x7C)),
    "B": bytes((0x7F, 0x49, 0x49, 0x49, 0x36)),
    "C": bytes((0x3E, 0x41, 0x41, 0x41, 0x22)),
    "D": bytes((0x7F, 0x41, 0x41, 0x22, 0x1C)),
    "E": bytes((0x7F, 0x49, 0x49, 0x49, 0x41)),
    "F": bytes((0x7F, 0x09, 0x09, 0x09, 0x01)),
    "G": bytes((0x3E, 0x41, 0x49, 0x49, 0x7A)),
    "H": bytes((0x7F, 0x08, 0x08, 0x08, 0x7F)),
    "I": bytes((0x00, 0x41, 0x7F, 0x41, 0x00)),
    "J": bytes((0x20, 0x40, 0x41, 0x3F, 0x01)),
    "K": bytes((0x7F, 0x08, 0x14, 0x22, 0x41)),
    "L": bytes((0x7F, 0x40, 0x40, 0x40, 0x40)),
    "M": bytes((0x7F, 0x02, 0x0C, 0x02, 0x7F)),
    "N": bytes((0x7F, 0x04, 0x08, 0x10, 0x7F)),
    "O": bytes((0x3E, 0x41, 0x41, 0x41, 0x3E)),
    "P": bytes((0x7F, 0x09, 0x09, 0x09, 0x06)),
    "Q": bytes((0x3E, 0x41, 0x51, 0x21, 0x5E)),
    "R": bytes((0x7F, 0x09, 0x19, 0x29, 0x46)),
    "S": bytes((0x26, 0x49, 0x49, 0x49, 0x32)),
    "T": bytes((0x01, 0x01, 0x7F, 0x01, 0x01)),
    "U": bytes((0x3F, 0x40, 0x40, 0x40, 0x3F)),
    "V": bytes((0x1F, 0x20, 0x40, 0x20, 0x1F)),
    "W": bytes((0x3F, 0x40, 0x38, 0x40, 0x3F)),
    "X": bytes((0x63, 0x14, 0x08, 0x14, 0x63)),
    "Y": bytes((0x07, 0x08, 0x70, 0x08, 0x07)),
    "Z": bytes((0x61, 0x51, 0x49, 0x45, 0x43)),
    "a": bytes((0x20, 0x54, 0x54, 0x54, 0x78)),
    "b": bytes((0x7F, 0x48, 0x44, 0x44, 0x38)),
    "c": bytes((0x38, 0x44, 0x44, 0x44, 0x20)),
    "d": bytes((0x38, 0x44, 0x44, 0x48, 0x7F)),
    "e": bytes((0x38, 0x54, 0x54, 0x54, 0x18)),
    "f": bytes((0x08, 0x7E, 0x09, 0x01, 0x02)),
    "g": bytes((0x18, 0xA4, 0xA4, 0xA4, 0x78)),
    "h": bytes((0x7F, 0x08, 0x04, 0x04, 0x78)),
    "i": bytes((0x00, 0x44, 0x7D, 0x40, 0x00)),
    "j": bytes((0x40, 0x80, 0x84, 0x7D, 0x00)),
    "k": bytes((0x7F, 0x10, 0x28, 0x44, 0x00)),
    "l": bytes((0x00, 0x41, 0x7F, 0x40, 0x00)),
    "m": bytes((0x7C, 0x04, 0x18, 0x04, 0x78)),
    "n": bytes((0x7C, 0x08, 0x04, 0x04, 0x78)),
    "o": bytes((0x38, 0x44, 0x44, 0x44, 0x38)),
    "p": bytes((0xFC, 0x24, 0x24, 0x24, 0x18)),
    "q": bytes((0x18, 0x24, 0x24, 0x24, 0xFC)),
    "r": bytes((0x7C, 0x08, 0x04, 0x04, 0x08)),
    "s": bytes((0x48, 0x54, 0x54, 0x54, 0x20)),
    "t": bytes((0x04, 0x3F, 0x44, 0x40, 0x20)),
    "u": bytes((0x3C, 0x40, 0x40, 0x20, 0x7C)),
    "v": bytes((0x1C, 0x20, 0x40, 0x20, 0x1C)),
    "w": bytes((0x3C, 0x40, 0x30, 0x40, 0x3C)),
    "x": bytes((0x44, 0x28, 0x10, 0x28, 0x44)),
    "y": bytes((0x1C, 0xA0, 0xA0, 0xA0, 0x7C)),
    "z": bytes((0x44, 0x64, 0x54, 0x4C, 0x44)),
}

_PAPER = (252, 252, 249)
_INK = (28, 32, 40)
_BLUE = (24, 82, 150)
_RULE = (200, 206, 214)
_PEN = (20, 45, 120)

#: What the sample says: (text, scale, colour), top to bottom; None is a ruled line.
_PRESCRIPTION: list[tuple[str, int, tuple[int, int, int]] | None] = [
    ("Dr. Jane Morgan, MD", 3, _BLUE),
    ("General Practice - Riverside Clinic", 2, _INK),
    ("12 Elm Street, Springfield - Tel. +1 555 0142", 1, _INK),
    None,
    ("Patient: Alice Patient", 2, _INK),
    ("Date: 28/11/2026", 2, _INK),
    None,
    ("Rx", 4, _BLUE),
    ("Amoxicillin 500 mg capsules", 2, _INK),
    ("Take 1 capsule 3 times a day for 7 days", 2, _INK),
    ("Quantity: 21 (twenty-one)    Refills: 0", 2, _INK),
    None,
]


def prescription() -> bytes:
    """A sample prescription as a pharmacy would see it: a doctor's letterhead, the patient,
    the medicine and how to take it, and a signature (an RGB PNG of 520×380, under 10 KB)."""
    width, height = 520, 380
    canvas = _Canvas(width, height, _PAPER)
    y = 18
    for line in _PRESCRIPTION:
        if line is None:
            canvas.fill(20, y + 2, width - 40, 1, _RULE)
            y += 12
            continue
        text, scale, colour = line
        canvas.text(20, y, text, scale, colour)
        y += 9 * scale + 6
    baseline = height - 36
    canvas.fill(300, baseline, 200, 1, _INK)
    canvas.text(300, baseline + 6, "Signature", 1, _INK)
    canvas.signature(310, baseline - 6, _PEN)
    return _png(width, height, canvas.rows())


class _Canvas:
    """An RGB image in memory with just enough drawing for `prescription`."""

    def __init__(self, width: int, height: int, background: tuple[int, int, int]) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * width * height)

    def fill(self, x: int, y: int, w: int, h: int, colour: tuple[int, int, int]) -> None:
        left, right = max(0, x), min(self.width, x + w)
        if right <= left:
            return
        row = bytes(colour) * (right - left)
        for yy in range(max(0, y), min(self.height, y + h)):
            start = (yy * self.width + left) * 3
            self.pixels[start : start + len(row)] = row

    def text(self, x: int, y: int, text: str, scale: int, colour: tuple[int, int, int]) -> None:
        for char in text:
            for column, bits in enumerate(_FONT.get(char, _FONT[" "])):
                for row in range(8):
                    if bits >> row & 1:
                        self.fill(x + column * scale, y + row * scale, scale, scale, colour)
            x += 6 * scale

    def signature(self, x: int, y: int, colour: tuple[int, int, int]) -> None:
        """A pen stroke from (x, y): a tall first letter, then a run of shrinking loops."""
        for step in range(1200):
            t = step / 1200 * 2 * math.pi  # the capital: one tall loop, its return stroke shorter
            reach = 18 if t < math.pi else 11
            self.fill(round(x + 10 + 9 * math.sin(t)), round(y - 20 - reach * math.cos(t)), 2, 2, colour)
        for step in range(4000):
            t = step / 4000 * 14 * math.pi  # the rest: a trochoid, loops where r > the pace
            size = 1 - t / (22 * math.pi)
            px = x + 24 + 3.2 * t - 7 * size * math.sin(t)
            py = y - 12 - 11 * size * math.cos(t) + 3 * math.sin(t / 5)
            self.fill(round(px), round(py), 2, 2, colour)

    def rows(self) -> bytes:
        stride = self.width * 3
        return b"".join(b"\x00" + self.pixels[i : i + stride] for i in range(0, len(self.pixels), stride))
