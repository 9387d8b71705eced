"""The hub: fans an event out to every live connection of its recipient.

`Hub` is the interface the service is given; `MemoryHub` serves one process,
`RedisHub` (when configured) many workers and hosts. Events are published only after
the transaction that stored them committed, as the JSON text every connection sends.
"""

from .base import Hub, PresenceListener, Sink
from .memory import MemoryHub

__all__ = ["Hub", "MemoryHub", "PresenceListener", "Sink", "create_hub"]


def create_hub(redis_url: str = "", *, namespace: str = "medreq", presence_ttl: float = 30.0) -> Hub:
    """The in-process hub, or the Redis hub when a URL is given (several workers or hosts)."""
    if redis_url:
        from .redis import RedisHub

        return RedisHub(redis_url, namespace=namespace, presence_ttl=presence_ttl)
    return MemoryHub()
