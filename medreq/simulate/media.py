"""Small but real media for simulated uploads: PNG prescriptions and WAV voice replies."""

from __future__ import annotations

from .samples import png, wav

__all__ = ["PRESCRIPTIONS", "VOICE_REPLY", "png", "wav"]

#: A handful of prescription images of different sizes, so uploads are not all identical.
PRESCRIPTIONS = [png(4, 4), png(32, 16, (0, 128, 255)), png(64, 64, (20, 200, 20))]
VOICE_REPLY = wav()
