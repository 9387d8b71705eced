"""A server's limits met while a run sets up: which one refused it, and what lifts it.

A default `medreq serve` holds 256 connections per client address (503 `unavailable`) and
rate-limits register/token calls (429 `rate_limited`, docs/protocol.md §1). A scenario whose
file says it needs more (its ``[server]`` table) would otherwise wait out its whole
``setup_timeout`` and then report only that too few connections opened. So during setup the
first 503, and a 429 when the scenario needs rate limits off, stop the run at once with a
`SetupError` that quotes the server's own words (which cap, its flag and environment variable)
and says how to give the scenario what it needs.
"""

from __future__ import annotations

import contextlib
import json
import math

from websockets.exceptions import InvalidStatus

from medreq.client import MedreqError, RateLimited
from medreq.protocol.errors import Unavailable, error_from_body

from .scenario import Scenario


class SetupError(RuntimeError):
    """Accounts or connections could not be set up (the run did not start)."""


def connection_refusal(exc: BaseException) -> Unavailable | None:
    """The server's 503 behind ``exc``, if a connection cap refused it: over REST (the client
    raises `Unavailable`) or on a WebSocket handshake (a transport error caused by the
    handshake's HTTP 503 answer, whose §1 body and Retry-After are read here)."""
    if isinstance(exc, Unavailable):
        return exc
    cause = exc.__cause__
    if not isinstance(cause, InvalidStatus) or cause.response.status_code != 503:
        return None
    try:
        body = json.loads(cause.response.body)
    except ValueError:
        body = None
    error = error_from_body(body, 503)
    refusal = error if isinstance(error, Unavailable) else Unavailable()
    with contextlib.suppress(ValueError):
        refusal.retry_after = float(cause.response.headers.get("Retry-After", refusal.retry_after))
    return refusal


def connection_limit_error(scenario: Scenario, refusal: MedreqError, opened: int | None = None) -> SetupError:
    """Stop: a connection cap refused this run's connections."""
    needs = scenario.server.max_connections_per_client
    asked = (
        f" (its file says it needs max_connections_per_client = {needs}{', no cap' if needs == 0 else ''})"
        if needs is not None
        else ""
    )
    so_far = f"; {opened} of {scenario.connections} were open" if opened is not None else ""
    return SetupError(
        f"the server refused a connection: {_quote(refusal)}. Stopped at once{so_far}. "
        f"The scenario {scenario.name!r} holds {scenario.connections} WebSockets at once, plus its "
        f"HTTP connections, all from this address{asked}: start the server with that limit lifted "
        "(medreq serve --max-connections-per-client 0, or MEDREQ_MAX_CONNECTIONS_PER_CLIENT=0; "
        "--max-connections for the overall cap), or run the scenario --embedded."
    )


def rate_limit_error(scenario: Scenario, refusal: RateLimited) -> SetupError:
    """Stop: a scenario that needs rate limits off met one."""
    calls = 2 * scenario.connections  # a register and a token call per account
    return SetupError(
        f"the server rate-limits sign-ups: {_quote(refusal)}. Stopped at once. The scenario "
        f"{scenario.name!r} registers and logs in {scenario.connections} accounts ({calls} calls from "
        "this address) and its file says it needs a server without rate limits (rate_limit = false): "
        "start it with medreq serve --no-rate-limit (or MEDREQ_RATE_LIMIT_ENABLED=false), "
        "or run the scenario --embedded."
    )


def _quote(error: MedreqError) -> str:
    wait = getattr(error, "retry_after", None)
    after = f", Retry-After {math.ceil(wait)} s" if isinstance(wait, int | float) and wait > 0 else ""
    return f'{error.status} {error.code}{after}, "{error.message}"'
