"""What the server writes to its logs: uvicorn's format, with every secret taken out.

URLs in access and WebSocket log lines carry live credentials: `?token=` (a JWT, because
browsers cannot set headers on a WebSocket) and the `sig=` of a signed media link, valid for
24 h. `RedactSecrets` replaces those, bearer headers and anything shaped like a JWT, in the
message and in its arguments, on every handler, so no log line can be replayed as a login.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

import uvicorn.config

REDACTED = "[redacted]"
_QUERY_SECRET = re.compile(r"(?i)([?&;](?:token|access|refresh|sig|signature)=)[^&\s\"']*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+")


def redact(text: str) -> str:
    if "=" not in text and "eyJ" not in text and "earer" not in text:
        return text  # the usual line: nothing to look for
    text = _QUERY_SECRET.sub(rf"\g<1>{REDACTED}", text)
    text = _BEARER.sub(rf"\g<1>{REDACTED}", text)
    return _JWT.sub(REDACTED, text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, with `RedactSecrets` on every handler and medreq's own
    loggers sent through the same handlers (uvicorn re-applies it in each worker process)."""
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": "medreq.logs.RedactSecrets"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["loggers"]["medreq"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config
