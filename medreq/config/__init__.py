"""The server's settings (`settings.Settings`, from flags and `MEDREQ_*` variables), the bounds
they set (`limits.Limits`, the one object everything that enforces a bound reads), and the
database and Redis URLs it accepts (`urls`, with failover)."""

from .limits import Limits
from .settings import ENV_PREFIX, LOG_FORMATS, Settings

__all__ = ["ENV_PREFIX", "LOG_FORMATS", "Limits", "Settings"]
