"""The JSON nesting pre-scan: brackets inside strings do not count, and it never raises
anything but `InvalidJSON` (the wire tests are in test_protection.py)."""

from __future__ import annotations

import pytest

from medreq.protocol.errors import InvalidJSON
from medreq.web.json_limits import loads, nesting_depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('{"a": "[[[[[[[["}', 1),
        ('["x\\"]]]]", [[]]]', 3),
        ('"unterminated [[[[', 0),
    ],
)
def test_nesting_depth_skips_strings(text: str, depth: int) -> None:
    assert nesting_depth(text) == depth


def test_deep_documents_are_invalid_json_before_parsing() -> None:
    with pytest.raises(InvalidJSON, match="deeper than 32"):
        loads("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InvalidJSON, match="deeper than 4"):
        loads('{"a": [[[[1]]]]}', max_depth=4)


def test_many_brackets_side_by_side_are_not_deep() -> None:
    assert loads("[" + ",".join(["[]"] * 1000) + "]") == [[]] * 1000


def test_not_json_and_not_utf8_are_invalid_json() -> None:
    for raw in (b"\xff\xfe", "{", '"\\', b'{"a": "\\"}'):
        with pytest.raises(InvalidJSON):
            loads(raw)
