"""`medreq samples`: the prescription a pharmacy opens looks like one, and stays small."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from typer.testing import CliRunner

import medreq.cli.samples  # noqa: F401  (registers `samples` on the app)
from medreq.cli.app import app
from medreq.simulate.samples import _BLUE, _FONT, _INK, _PEN, prescription


def decode(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of a PNG written by medreq.simulate.samples (8-bit RGB, filter 0)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = {}
    at = 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        assert struct.unpack(">I", png[at + 8 + length : at + 12 + length])[0] == zlib.crc32(kind + data)
        chunks[kind] = chunks.get(kind, b"") + data
        at += 12 + length
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = width * 3 + 1
    rows = [raw[y * stride + 1 : (y + 1) * stride] for y in range(height)]
    assert all(raw[y * stride] == 0 for y in range(height))
    return width, height, rows


def pixel(rows: list[bytes], x: int, y: int) -> tuple[int, int, int]:
    r, g, b = rows[y][x * 3 : x * 3 + 3]
    return (r, g, b)


def test_samples_writes_a_prescription_with_text_and_a_signature(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["samples", str(tmp_path)])
    assert result.exit_code == 0, result.output
    image = (tmp_path / "prescription.png").read_bytes()
    assert len(image) < 20_000  # small enough to upload on a poor connection
    width, height, rows = decode(image)
    assert (width, height) == (520, 380)

    # the doctor's name, in blue, at scale 3 from (20, 18): every glyph's bits where the font has them
    for index, char in enumerate("Dr. Jane Morgan, MD"):
        for column, bits in enumerate(_FONT[char]):
            for row in range(8):
                expected = _BLUE if bits >> row & 1 else None
                seen = pixel(rows, 20 + index * 18 + column * 3 + 1, 18 + row * 3 + 1)
                assert (seen == _BLUE) == (expected is not None), (char, column, row)

    # dark lines of text on most of the page, a pen-coloured signature above its line
    inked = [y for y in range(height) if any(pixel(rows, x, y) == _INK for x in range(width))]
    assert len(inked) > 80
    signed = {
        (x, y) for y in range(height - 80, height - 36) for x in range(300, 500) if pixel(rows, x, y) == _PEN
    }
    assert len(signed) > 300
    assert not any(pixel(rows, x, y) == _PEN for y in range(0, height - 80) for x in range(width))


def test_the_prescription_is_the_same_every_time() -> None:
    assert prescription() == prescription()
