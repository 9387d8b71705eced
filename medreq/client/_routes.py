"""Where the client reaches each operation: the paths of `medreq.protocol.operations`, the table
the server's routes, OpenAPI and AsyncAPI are built from, filled in with ids.

Ids are sent as given (``int(value)``): an id the server would refuse (0, or past 2^63-1) gets the
server's own answer, as it did when the client spelt its paths itself, not a local `ValueError`.
"""

from __future__ import annotations

import re

from ..protocol.operations import CHANNELS, OPERATIONS

_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")


def route(name: str, **ids: int) -> tuple[str, str]:
    """The method and path of operation ``name``, its ``{…}`` filled with ``ids``."""
    operation = OPERATIONS[name]
    return operation.method, _PARAMETER.sub(lambda match: str(int(ids[match[1]])), operation.path)


def channel(name: str, account_id: int) -> str:
    """The path of WebSocket channel ``name`` (``user`` or ``pharmacy``) for one account."""
    return _PARAMETER.sub(str(int(account_id)), CHANNELS[name].path)
