"""Web Push (RFC 8030/8291/8292): the server's VAPID keys, and one encrypted, signed push.

`pywebpush`/`py-vapid` do the cryptography (aes128gcm with the subscription's keys, the VAPID
JWT); the POST itself goes through the deliverer's httpx client, like a webhook's, so the same
target checks, timeout and no-redirect rule apply. They are imported only when a push is
sent or the keys are first needed: `pip install 'medreq[push]'`.

The VAPID key pair is generated once into ``DATA_DIR/vapid-private.pem`` (mode 0600), or
read from the file `MEDREQ_VAPID_PRIVATE_KEY` names: every worker must use the same one, or
browsers' subscriptions (bound to the public key) stop working.
"""

from __future__ import annotations

import base64
import json
import time
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...files import create_private_file

KEY_FILE = "vapid-private.pem"
#: seconds a push service keeps a message for a device that is offline
PUSH_TTL = 24 * 3600
#: all a push carries of an event: it passes through a push service (Google's, Mozilla's, Apple's)
#: and may show on a locked screen, so it tells the device which event to fetch, never the
#: patient's name, phone, medicine or a message's text (the app reads those after sign-in)
PUSHED_FIELDS = ("type", "event_id", "request_id")


def notification(event_text: str) -> str:
    """The push payload of a stored event's JSON text: its `PUSHED_FIELDS` only."""
    event = json.loads(event_text)
    return json.dumps({name: event.get(name) for name in PUSHED_FIELDS}, separators=(",", ":"))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class VapidKeys:
    def __init__(self, key_file: Path, subject: str) -> None:
        self.key_file = key_file
        self.subject = subject

    @cached_property
    def _vapid(self) -> Any:
        from py_vapid import Vapid  # type: ignore[import-untyped]

        if not self.key_file.exists():
            vapid = Vapid()
            vapid.generate_keys()
            create_private_file(self.key_file, vapid.private_pem())
        return Vapid.from_file(private_key_file=str(self.key_file))

    def public_key(self) -> str:
        """The application server key browsers pass to `pushManager.subscribe` (base64url)."""
        from cryptography.hazmat.primitives import serialization

        raw = self._vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(raw)

    def request(self, endpoint: str, p256dh: str, auth: str, payload: str) -> tuple[bytes, dict[str, str]]:
        """The body (aes128gcm) and headers (VAPID, TTL) of one push of `payload`."""
        from pywebpush import WebPusher  # type: ignore[import-untyped]

        subscription = {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}
        body: bytes = WebPusher(subscription).encode(payload.encode(), "aes128gcm")["body"]
        parts = urlsplit(endpoint)
        claims = {"sub": self.subject, "aud": f"{parts.scheme}://{parts.netloc}", "exp": int(time.time()) + 12 * 3600}
        headers: dict[str, str] = dict(self._vapid.sign(claims))
        headers.update({"Content-Encoding": "aes128gcm", "TTL": str(PUSH_TTL), "Urgency": "high"})
        return body, headers
