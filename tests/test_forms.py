"""`web/rest/forms.py` reads multipart forms with python-multipart's parser and callbacks of its own
instead of Starlette's `MultiPartParser`: the same forms must come out as Starlette reads them,
under the same limits, however the body is cut into chunks (the served cases, each with its §1
error and an unchanged database, are in test_input_rules.py and test_request_validation.py)."""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterable
from typing import Any

import pytest
from python_multipart.multipart import parse_options_header
from starlette.formparsers import MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from medreq.protocol.errors import Invalid, PayloadTooLarge, UnsupportedMediaType
from medreq.simulate.samples import photo
from medreq.web.rest import forms
from medreq.web.rest.forms import (
    MAX_FIELDS,
    MAX_FORM_FIELD,
    SPOOL_BYTES,
    FilePart,
    Form,
    boundary_and_charset,
    disposition_options,
    read_form,
)

BOUNDARY = "----medreq-test-7MA4YWxkTrZu0gW"


def part(name: str, value: bytes, filename: str | None = None, content_type: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + value + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def request(
    chunks: Iterable[bytes],
    *,
    content_type: str = f"multipart/form-data; boundary={BOUNDARY}",
    length: int | None = None,
    disconnect: bool = False,
) -> Request:
    pieces = list(chunks)
    headers = [(b"content-type", content_type.encode())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    messages: list[Message] = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1 or disconnect}
        for i, piece in enumerate(pieces)
    ]
    if disconnect:
        messages.append({"type": "http.disconnect"})

    async def receive() -> Message:
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    return Request(scope, receive)


async def read(data: bytes, *, cut: int | None = None, file_limit: int = 10 * 1024 * 1024, **kw: Any) -> Form:
    """`data` read as a form, its files already read back (`plain`) or closed."""
    chunks = [data] if cut is None else [data[i : i + cut] for i in range(0, len(data), cut)]
    with await read_form(request(chunks, **kw), file_limit=file_limit) as form:
        return form


async def plain(form: Form) -> dict[str, Any]:
    """A form as comparable values: text, or (filename, content type, bytes) for a file."""
    out: dict[str, Any] = {}
    for name, value in form.items():
        if isinstance(value, FilePart):
            data = b"".join([chunk async for chunk in value.chunks()])
            out[name] = (value.filename, value.content_type, data)
        else:
            out[name] = value
    return out


async def starlette_reads(data: bytes) -> dict[str, Any]:
    """What Starlette's own parser makes of `data` (the path this module replaced)."""

    async def stream() -> Any:
        yield data

    req = request([data])
    form = await MultiPartParser(req.headers, stream(), max_files=2, max_fields=20).parse()
    out: dict[str, Any] = {}
    for name, value in form.items():
        if isinstance(value, str):
            out[name] = value
        else:
            out[name] = (value.filename, value.content_type, await value.read())
    await form.close()
    return out


FORMS = {
    "request with image": body(
        part("pharmacy", b"12"),
        part("quantity", b"1"),
        part("medicine_name", "Ibuprofène 400".encode()),
        part("image", photo(), filename="rx.png", content_type="image/png"),
    ),
    "text only": body(part("pharmacy", b"7"), part("note", b"line 1\r\nline 2 --not a boundary")),
    "empty field and empty file": body(part("note", b""), part("audio", b"", filename="", content_type="audio/ogg")),
    "repeated name, the last wins": body(part("quantity", b"1"), part("quantity", b"2")),
    "not UTF-8 text": body(part("note", b"caf\xe9")),
    "file without a content type": body(part("image", b"\x89PNG\r\n\x1a\n" + os.urandom(3000), filename="x")),
    "boundary-like bytes in a file": body(
        part("image", b"--" + BOUNDARY.encode()[:-1] + b"\r\n--" + os.urandom(100), filename="y.bin")
    ),
}


@pytest.mark.parametrize("label", FORMS)
async def test_forms_come_out_as_starlette_reads_them(label: str) -> None:
    data = FORMS[label]
    expected = await starlette_reads(data)
    for cut in (None, 1, 7, 4096):  # the body in pieces, cut anywhere: inside headers, boundaries, data
        chunks = [data] if cut is None else [data[i : i + cut] for i in range(0, len(data), cut)]
        with await read_form(request(chunks), file_limit=10 * 1024 * 1024) as form:
            assert await plain(form) == expected, cut


async def test_a_large_file_is_spooled_to_disk_and_read_back_whole() -> None:
    data = os.urandom(SPOOL_BYTES * 3 + 17)
    chunks = request([body(part("image", data, filename="big.png"))])
    with await read_form(chunks, file_limit=10 * 1024 * 1024) as form:
        upload = form["image"]
        assert isinstance(upload, FilePart)
        assert upload.spool.on_disk  # past 1 MiB: in an unlinked temporary file, not in memory
        assert (await plain(form))["image"][2] == data
    assert upload.spool.closed


async def test_every_spool_is_closed_with_its_form_even_a_replaced_one() -> None:
    data = body(part("image", b"first", filename="a.png"), part("image", b"second", filename="b.png"))
    with await read_form(request([data]), file_limit=10 * 1024 * 1024) as form:
        assert (await plain(form))["image"] == ("b.png", None, b"second")  # the last one wins
        first, second = form.files
        assert not first.spool.closed  # replaced, not read: still open until the block ends
    assert first.spool.closed and second.spool.closed


async def test_limits() -> None:
    ok = part("pharmacy", b"1")
    at_limit = await read(body(ok, part("note", b"n" * MAX_FORM_FIELD)))
    assert at_limit["note"] == "n" * MAX_FORM_FIELD
    with pytest.raises(PayloadTooLarge, match="form field"):
        await read(body(ok, part("note", b"n" * (MAX_FORM_FIELD + 1))), cut=1000)

    fields = [part(f"f{i}", b"1") for i in range(MAX_FIELDS)]
    assert len(await read(body(*fields))) == MAX_FIELDS
    with pytest.raises(Invalid, match="more than 20 fields"):
        await read(body(*fields, part("one_more", b"1")))

    files = [part(f"f{i}", b"x", filename="a.png") for i in range(2)]
    assert len(await read(body(*files))) == 2
    with pytest.raises(Invalid, match="more than 2 files"):
        await read(body(*files, part("f3", b"x", filename="a.png")))

    big = body(ok, part("image", bytes(5000), filename="a.png"))
    with pytest.raises(PayloadTooLarge, match="request body"):  # declared
        await read(big, file_limit=1000 - 256 * 1024, length=len(big))
    with pytest.raises(PayloadTooLarge, match="request body"):  # counted as it arrives (no length)
        await read(big, file_limit=1000 - 256 * 1024, cut=100)


@pytest.mark.parametrize(
    ("label", "data", "content_type"),
    [
        ("no boundary", body(part("a", b"1")), "multipart/form-data"),
        ("empty boundary", body(part("a", b"1")), "multipart/form-data; boundary="),
        ("part without a name", f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n".encode(), None),
        ("garbage headers", f"--{BOUNDARY}\r\nxx\r\n\r\n".encode(), None),
    ],
)
async def test_malformed_forms_are_invalid(label: str, data: bytes, content_type: str | None) -> None:
    kw = {"content_type": content_type} if content_type else {}
    with pytest.raises(Invalid, match="malformed form"):
        await read(data, **kw)


async def test_other_bodies() -> None:
    with pytest.raises(UnsupportedMediaType):
        await read(b"{}", content_type="application/json")
    urlencoded = await read(b"pharmacy=3&note=caf%C3%A9", content_type="application/x-www-form-urlencoded")
    assert urlencoded == {"pharmacy": "3", "note": "café"}
    with pytest.raises(ClientDisconnect):  # the client went away mid-body
        await read(body(part("a", b"1"))[:20], disconnect=True)


DISPOSITIONS = [
    b'form-data; name="pharmacy"',
    b'form-data; name="image"; filename="rx.png"',
    b'form-data; name=""; filename=""',
    b'form-data; name="a;b"; filename="c; d.png"',
    'form-data; name="note"; filename="ordonnance été.jpg"'.encode(),
    b'form-data; name="x\\"y"; filename="C:\\\\Users\\\\p\\\\rx.png"',  # escapes: the library's path
    b'form-data; filename="rx.png"; name="image"',  # another order
    b"form-data; name=image",  # unquoted
    b'Form-Data; Name="image"',
    b'form-data; name="image"; filename*=UTF-8\'\'r%C3%A9.png',
    b'form-data;name="tight"',
    b'form-data; name="trailing" ',
    b"form-data",
]


@pytest.mark.parametrize("value", DISPOSITIONS)
def test_disposition_fast_path_reads_as_python_multipart(value: bytes) -> None:
    assert disposition_options(value) == parse_options_header(value)[1]


@pytest.mark.parametrize(
    "header",
    [
        f"multipart/form-data; boundary={BOUNDARY}",
        "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
        "multipart/form-data; boundary=0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d",
        'multipart/form-data; boundary="quoted boundary"',
        "multipart/form-data; boundary=abc; charset=latin-1",
        "multipart/form-data; charset=utf-8; boundary=abc",
        "Multipart/Form-Data; Boundary=abc",
        "multipart/form-data; boundary=",
        "multipart/form-data",
    ],
)
def test_content_type_fast_path_reads_as_python_multipart(header: str) -> None:
    _, params = parse_options_header(header)
    charset = params.get(b"charset", b"utf-8").decode()
    assert boundary_and_charset(header) == (params.get(b"boundary", b""), codecs.lookup(charset).name)


def test_the_usual_headers_take_the_fast_path() -> None:
    """The parity tests above would pass with no fast path at all: the common shapes must hit it."""
    for value in DISPOSITIONS[:5]:
        assert forms._SIMPLE_DISPOSITION.fullmatch(value), value
    for value in DISPOSITIONS[5:]:
        assert not forms._SIMPLE_DISPOSITION.fullmatch(value), value
    assert forms._SIMPLE_CONTENT_TYPE.fullmatch(f"multipart/form-data; boundary={BOUNDARY}")
    assert forms._SIMPLE_CONTENT_TYPE.fullmatch("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxk")
