"""`medreq inbox`: the Textual pharmacy inbox (needs the ``tui`` extra: ``pip install 'medreq[tui]'``).

- `model`: the inbox state (requests, filters, counters, live events applied), no UI, no I/O
- `backend`: the server, through `medreq.client`: login/profile, requests, answers, live link
- `media`: what a prescription file is, and opening it in the system viewer
- `widgets`, `screens`, `app`: the Textual side
"""

from __future__ import annotations

from .app import InboxApp, InboxScreen, run_inbox
from .backend import Backend, InboxError, Link, NotAPharmacy

__all__ = ["Backend", "InboxApp", "InboxError", "InboxScreen", "Link", "NotAPharmacy", "run_inbox"]
