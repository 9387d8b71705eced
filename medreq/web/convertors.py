"""The `{name:id}` path convertor: an account or request id in a URL.

Starlette's `int` convertor matches any run of digits and calls int() on it, which raises
ValueError past 4,300 digits (Python's limit on int parsing): a long enough id in a path was an
unhandled error instead of a 404. Ids are 64-bit, so 19 digits is every id there can be.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class IdConvertor(Convertor[int]):
    regex = "[0-9]{1,19}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())
