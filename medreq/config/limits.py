"""The server's bounds in one object: `Limits`, read from `Settings` once (`Limits.of`).

Sizes, counts, timeouts, queue sizes and caps, each declared (with its default, its `MEDREQ_*`
variable and its reason) in `settings.py`; `Limits` holds the ones medreq's own code enforces
(uvicorn's own, the keep-alive timeout and the frame size, go to `uvicorn.Config` in
`server.py`). The service builds it (`MedreqService.limits`), and everything that enforces a bound reads
that one object: the service itself (uploads, pharmacies per request), the web layer (JSON bodies,
WebSocket queues and floods) and the uvicorn protocols below Starlette (headers, bodies,
connection caps, slow consumers; `web/guard/admission.py` finds it through the app).

Standard library only, like the rest of `config/`.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings


@dataclass(frozen=True, slots=True)
class Limits:
    """Each field is the `Settings` field of the same name (docs/security.md, "Transport
    limits"), except `max_connections`: the cap in force, within the descriptor limit."""

    # what the service saves and accepts (it checks uploads again while saving them)
    max_image_bytes: int
    max_audio_bytes: int
    max_pharmacies_per_request: int
    # JSON bodies and WebSocket messages
    max_json_body: int
    max_json_depth: int
    # a socket's queue, its flood of rate-limited messages, and slow-consumer bounds
    ws_queue_size: int
    ws_flood_limit: int
    ws_max_unsent: int
    ws_send_timeout: float
    # the uvicorn protocols: headers, bodies, open connections
    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    max_connections: int
    max_connections_per_client: int  # 0: no cap

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits `settings` configure (the connection cap lowered below the fd limit)."""
        values = {f.name: getattr(settings, f.name) for f in fields(cls)}
        values["max_connections"] = connection_cap(settings.max_connections, settings.fd_reserve)
        return cls(**values)


def connection_cap(configured: int, reserve: int) -> int:
    """The global cap: `configured` (0: no preference), never within `reserve` of the fd limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = max(1, soft - reserve) if soft != resource.RLIM_INFINITY else configured or 1_000_000
    return min(configured, ceiling) if configured > 0 else ceiling
