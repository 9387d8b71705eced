"""JSON from clients, with a nesting limit checked before the parser sees it.

`json.loads` recurses once per level of nesting: 60 KB of `[` raised `RecursionError`, a 500
with a traceback (loadtests/attacks.py nested). No medreq message nests deeper than 3, so
anything past `max_depth` is refused as `invalid_json` before parsing. The scan is cheap: a
document with fewer brackets than the limit (every ordinary message) is not scanned at all.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..protocol.errors import InvalidJSON

DEFAULT_MAX_DEPTH = 32

# the closing quote is optional so an unterminated string is one match to the end, not a
# fresh attempt at every later quote (quadratic on a long run of escaped quotes)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def nesting_depth(text: str, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in `text`, ignoring brackets inside strings
    (the scan stops as soon as the depth passes `stop_above`)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        else:
            depth -= 1
    return deepest


def loads(raw: str | bytes, *, max_depth: int = DEFAULT_MAX_DEPTH, what: str = "body") -> Any:
    """Parse `raw` (400 `invalid_json` when it is not JSON or nests deeper than `max_depth`)."""
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise InvalidJSON(f"{what} is not valid UTF-8 JSON") from None
    if text.count("[") + text.count("{") > max_depth and nesting_depth(text, max_depth) > max_depth:
        raise InvalidJSON(f"{what} nests deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise InvalidJSON(f"{what} is not valid JSON") from None
