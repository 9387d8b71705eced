"""What the server writes to its logs: uvicorn's text format or JSON lines, with every secret taken out.

URLs in access and WebSocket log lines carry live credentials: `?token=` (a JWT, because
browsers cannot set headers on a WebSocket) and the `sig=` of a signed media link, valid for
24 h. `RedactSecrets` replaces those, bearer headers and anything shaped like a JWT, in the
message and in its arguments, on every handler, so no log line can be replayed as a login.

`--log-format json` (`MEDREQ_LOG_FORMAT=json`) writes one JSON object per line with `time`,
`level`, `logger`, `message`, the `trace_id` of the request being served, and the structured
fields a record carries in `extra={"fields": {...}}`; uvicorn's access lines give way to
medreq's own (`medreq.access`: one per HTTP request and per WebSocket connect and close,
with route template, status, duration, account id and trace id; see `web/observe.py`).
Every string in the line is redacted too, so a field can never carry a secret out either.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
import re
import time
from typing import Any

import uvicorn.config

from ..config import LOG_FORMATS
from .tracing import current_trace_id

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


class JsonFormatter(logging.Formatter):
    """One JSON object per line (for log shippers), secrets redacted.

    Records marked `trusted` (medreq's access lines, built only from route templates, numbers,
    validated trace ids and addresses) skip the per-field redaction: measured, the access
    line was the largest cost of JSON logging under `bench cycle`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Python's logging "Optimization" knobs: no line of ours shows the caller, thread or
        # process, so no record needs to look them up (a third of a record's cost).
        logging._srcfile = None
        logging.logThreads = False
        logging.logProcesses = False
        logging.logMultiprocessing = False
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        trusted = getattr(record, "trusted", False)
        message = record.getMessage()
        entry: dict[str, Any] = {
            "time": f"{self._stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message if trusted else redact(message),
        }
        trace_id = current_trace_id()
        if trace_id is not None:
            entry["trace_id"] = trace_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            if trusted:
                entry.update(fields)
            else:
                entry.update({k: redact(v) if isinstance(v, str) else v for k, v in fields.items()})
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class AccessLog:
    """medreq's JSON access lines, written straight to the stream of the handler that
    `log_config` gives the `medreq` loggers, exactly as `JsonFormatter` would write them.

    Measured in-process (loadtests/observability_inprocess.py, GET /auth/me): a line through
    `Logger.info` added ~40 µs to a ~200 µs request, mostly building the LogRecord, and a
    direct write per line still ~30 µs, two thirds of it the write and flush. Lines are
    therefore collected and written once per event-loop iteration (one `write` for all the
    requests that finished in it). Then `json.dumps` of the line's dict was half of what was
    left (13 of 28 µs with `timeit`): the line is now joined from its keys and each value's
    JSON (`_json`), which gives the same text (tests/test_observability.py compares them).
    Access lines are built by medreq from route templates, numbers, validated trace ids and
    addresses, so they need no redaction."""

    def __init__(self, name: str = "medreq.access") -> None:
        self.logger = logging.getLogger(name)
        self._second = -1
        self._stamp = ""
        self._head = f'", "level": "info", "logger": {_json(name)}, "message": '
        self._pending: list[str] = []
        self._target: logging.StreamHandler[Any] | None = None  # for the lines pending

    def _handler(self) -> logging.StreamHandler[Any] | None:
        logger: logging.Logger | None = self.logger
        while logger is not None:
            for handler in logger.handlers:
                if isinstance(handler, logging.StreamHandler) and isinstance(
                    handler.formatter, JsonFormatter
                ):
                    return handler
            logger = logger.parent if logger.propagate else None
        return None

    def write(self, message: str, fields: dict[str, Any]) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        if not self._ready():  # configured some other way: the ordinary path
            self.logger.info(message, extra={"trusted": True, "fields": fields})
            return
        tail = "".join(f", {_json(key)}: {_json(value)}" for key, value in fields.items())
        self._add(f"{self._start(message)}{tail}}}")

    def http(
        self,
        method: str,
        route: str,
        status: int,
        duration_ms: float,
        account_id: int | None,
        role: str | None,
        client: str | None,
    ) -> None:
        """The line of one HTTP request: what `write` gives for these fields, in this order, as
        one f-string. Every request writes one: 19.2 → 12.8 µs with timeit, the write included."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        message = f"{method} {route} {status}"
        if not self._ready():  # configured some other way: `write` takes the ordinary path
            fields = {"kind": "http", "method": method, "route": route, "status": status}
            self.write(message, fields | {"duration_ms": duration_ms, "account_id": account_id, "role": role, "client": client})
            return
        self._add(
            f'{self._start(message)}, "kind": "http", "method": {_json(method)}, "route": {_json(route)}, '
            f'"status": {_json(status)}, "duration_ms": {_json(duration_ms)}, "account_id": {_json(account_id)}, '
            f'"role": {_json(role)}, "client": {_json(client)}}}'
        )

    def _ready(self) -> bool:
        """Whether lines go straight to a JSON handler's stream (looked up once per batch)."""
        if not self._pending:  # the first line of this loop iteration: where do lines go now?
            self._target = self._handler()
        return self._target is not None

    def _start(self, message: str) -> str:
        """A line up to its fields: time, level, logger, message and the trace id."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        start = f'{{"time": "{self._stamp}.{int(now % 1 * 1000):03d}Z{self._head}{_json(message)}'
        trace_id = current_trace_id()
        return start if trace_id is None else f'{start}, "trace_id": {_json(trace_id)}'

    def _add(self, line: str) -> None:
        self._pending.append(line)
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop: write now
                self.flush()

    def flush(self) -> None:
        lines, self._pending = self._pending, []
        handler, self._target = self._target, None
        if not lines or handler is None:
            return
        with handler.lock or contextlib.nullcontext():
            handler.stream.write(handler.terminator.join(lines) + handler.terminator)
            handler.flush()


def _json(value: Any) -> str:
    """`value` as `json.dumps(value, ensure_ascii=False)` writes it, faster for the common types."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value, ensure_ascii=False)


_string = json.encoder.encode_basestring  # what dumps uses for a str with ensure_ascii=False


def log_config(level: str, fmt: str = "text") -> dict[str, Any]:
    """uvicorn's logging configuration, with `RedactSecrets` on every handler and medreq's own
    loggers sent through the same handlers (uvicorn re-applies it in each worker process).
    `fmt="json"`: every line a JSON object, and medreq's access lines instead of uvicorn's."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": "medreq.telemetry.logs.RedactSecrets"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["loggers"]["medreq"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    if fmt == "json":
        config["formatters"] = {name: {"()": "medreq.telemetry.logs.JsonFormatter"} for name in config["formatters"]}
    if fmt == "json" or level.lower() in QUIETER_THAN_ACCESS:
        # JSON: one access line per request, medreq's (it knows the route, account and trace id).
        # Above info: none. uvicorn builds its line's arguments (the client's address, the path
        # quoted again) for every request whenever its access logger has a handler, even one
        # whose level drops the line; without a handler it skips them.
        config["loggers"]["uvicorn.access"] = {"handlers": [], "level": "WARNING", "propagate": False}
    return config


QUIETER_THAN_ACCESS = ("warning", "error", "critical")  # levels at which no access line is written
