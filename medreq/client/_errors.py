"""Client-side failures, as leaves of the one `medreq.protocol.errors` tree.

    MedreqError                       (medreq.protocol.errors: every §1 code the server sends)
    └── TransportError                the server could not be reached or the link broke
        └── ConnectionLost            a WebSocket dropped before the server answered a sent frame

These never travel on the wire: they say the client does not know what the server did.
One raised for a server that cannot be reached names it and says what to check
(``… (is `medreq serve` running at http://127.0.0.1:8000?)``); its ``url`` is that server.
"""

from __future__ import annotations

from medreq.protocol.errors import MedreqError


class TransportError(MedreqError):
    code = "transport_error"
    status = 0
    default_message = "the server could not be reached"

    def __init__(
        self, message: str | None = None, *, url: str | None = None, fields: dict[str, str] | None = None
    ) -> None:
        self.url = url
        text = message or self.default_message
        if url is not None:
            text += f" (is `medreq serve` running at {url}?)"
        super().__init__(text, fields=fields)


class ConnectionLost(TransportError):
    code = "connection_lost"
    default_message = (
        "the connection dropped before the server answered; the action may or may not be applied"
    )
