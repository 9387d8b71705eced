"""The server's settings (`settings.Settings`, from flags and `MEDREQ_*` variables) and the database
and Redis URLs it accepts (`urls`, with failover)."""

from .settings import ENV_PREFIX, LOG_FORMATS, Settings

__all__ = ["ENV_PREFIX", "LOG_FORMATS", "Settings"]
