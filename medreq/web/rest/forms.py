"""Request forms (`POST /medicine/request/`, `/medicine/response/`): read, bounded, into text
fields and at most two files.

multipart/form-data goes straight to python-multipart's `MultipartParser` with callbacks of our
own, not through Starlette's `MultiPartParser`, whose layer (an `UploadFile` and `Headers` per
part, a `FormData`, an async write per file chunk, the `Request.stream()` wrapper) cost nearly
as much as python-multipart itself: reading the bench's three-field form took 60.2 µs before,
46.5 µs without that layer and 36.1 µs with the header fast path below; 97.2, 81.3 and 63.1 µs
with a 32 KB PNG (docs/benchmarks-history.md, "Forms read without Starlette's multipart layer").
The rules are the same as before, each with its §1 error (tests/test_input_rules.py):

- the declared Content-Length, then the bytes as they arrive, against the file limit plus
  `FORM_OVERHEAD` (413);
- a text field at most `MAX_FORM_FIELD` bytes (413), at most 20 of them and 2 files (422);
- a part without a name, a missing boundary, broken framing: 422 `malformed form: …`;
- a file is spooled (`Spool`): in memory up to 1 MiB, then in an unlinked temporary file, so
  nothing large is held in memory; the service sniffs, bounds and stores it.

Urlencoded bodies (a curl user's `-d`) are rare and file-less: Starlette's `FormParser` reads
them, under the same limits.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from tempfile import TemporaryFile
from typing import IO, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.formparsers import FormParser, MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive

from ...protocol.errors import Invalid, MedreqError, PayloadTooLarge, UnsupportedMediaType
from ...service import Upload

FORM_OVERHEAD = 256 * 1024  # room for the text fields and multipart framing around a file
FORM_CONTENT_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
MAX_FORM_FIELD = 64 * 1024  # one text field of a form; the longest the models allow is 2000 chars
MAX_FIELDS = 20
MAX_FILES = 2
SPOOL_BYTES = 1024 * 1024  # a file's bytes past this go to a temporary file
READ_CHUNK = 64 * 1024

# The headers as browsers, curl, httpx and medreq's client write them, read by a regex; anything
# else (another order, escapes, `filename*=`, other case) by python-multipart's
# `parse_options_header`, which gives the same for these (tests/test_forms.py). That function
# took a quarter of a form's parse: 1.8–3.1 µs a header, four per form (0.2 µs here; `timeit`).
_SIMPLE_CONTENT_TYPE = re.compile(r"multipart/form-data; boundary=([0-9A-Za-z'()+_,./:=?-]{1,70})")
_SIMPLE_DISPOSITION = re.compile(rb'form-data; name="([^"\\]*)"(?:; filename="([^"\\]*)")?')


class Spool:
    """A file part's bytes: in memory up to `SPOOL_BYTES`, then in an unlinked temporary file.

    `tempfile.SpooledTemporaryFile` did this through a `BytesIO` that every byte was copied into
    and out of again, behind several layers of Python; a list of the parser's slices is read back
    as it is. The bench's form with its 32 KB PNG: 531,800 instructions to read before, 487,300
    with this (`python loadtests/upload_instructions.py`)."""

    __slots__ = ("_file", "_parts", "closed", "size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._file: IO[bytes] | None = None
        self.size = 0
        self.closed = False

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
            return
        self._parts.append(data)
        if self.size > SPOOL_BYTES:  # too large to hold: to disk, and nothing more in memory
            self._file = TemporaryFile()  # noqa: SIM115 (closed by `close`)
            self._file.writelines(self._parts)
            self._parts.clear()

    def chunks(self) -> Iterator[bytes]:
        if self._file is None:
            yield from self._parts
            return
        self._file.seek(0)
        while chunk := self._file.read(READ_CHUNK):
            yield chunk

    def close(self) -> None:
        self.closed = True
        self._parts.clear()
        if self._file is not None:
            self._file.close()


class FilePart:
    """A file of a form, spooled until the service reads it (`form_file`)."""

    __slots__ = ("content_type", "filename", "spool")

    def __init__(self, filename: str | None, content_type: str | None) -> None:
        self.filename = filename
        self.content_type = content_type
        self.spool = Spool()  # closed by `chunks` once read, else by its `Form`'s `close`

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            for chunk in self.spool.chunks():
                yield chunk
        finally:
            self.spool.close()


class Form(dict[str, "str | FilePart"]):
    """A read form: each name's last value, a text or a file, and every text value of a name in
    order (`texts`, for a repeated field: `pharmacy`, docs/protocol.md §3, groups). As a `with` block it
    closes its files' spools at the end (a file the service did not read, as when a field was
    invalid, or one a later part of the same name replaced)."""

    def __init__(self, items: Iterable[tuple[str, str | FilePart]] = ()) -> None:
        super().__init__()
        self.files: list[FilePart] = []  # every file part read, in order
        self.texts: dict[str, list[str]] = {}
        for name, value in items:
            self.put(name, value)

    def put(self, name: str, value: str | FilePart) -> None:
        self[name] = value
        if isinstance(value, str):
            self.texts.setdefault(name, []).append(value)

    def __enter__(self) -> Form:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for file in self.files:
            file.spool.close()


async def read_form(request: Request, *, file_limit: int) -> Form:
    """Parse a multipart or urlencoded body, never buffering more than `file_limit` + overhead.

    The declared Content-Length is checked first; the stream itself is counted too, so a
    client that lies about (or omits) the length is cut off at the same point.
    """
    header = request.headers.get("content-type", "")
    content_type = header.split(";")[0].strip().lower()
    if content_type not in FORM_CONTENT_TYPES:
        raise UnsupportedMediaType("body must be multipart/form-data")
    limit = file_limit + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    if content_type == "application/x-www-form-urlencoded":
        return await _read_urlencoded(request, limit)
    boundary, charset = boundary_and_charset(header)
    if not boundary:
        raise Invalid("malformed form: missing boundary in multipart")
    reader = _MultipartReader(boundary, charset)
    try:
        await reader.read(_bounded_receive(request.receive, limit))
    except BaseException:
        reader.form.close()
        raise
    return reader.form


def form_fields(form: Form, *names: str) -> dict[str, Any]:
    """The text fields among `names` that were sent (a file where text belongs is an error)."""
    fields: dict[str, Any] = {}
    for name in names:
        value = form.get(name)
        if value is None:
            continue
        if isinstance(value, FilePart):
            raise Invalid(f"{name}: must be a text field", fields={name: "must be a text field"})
        if value != "":
            fields[name] = value
    return fields


def form_values(form: Form, name: str) -> list[str] | None:
    """Every non-empty text value of a repeated field, in order; None when it was not sent (a
    file where text belongs is an error, as in `form_fields`)."""
    if isinstance(form.get(name), FilePart):
        raise Invalid(f"{name}: must be a text field", fields={name: "must be a text field"})
    values = [value for value in form.texts.get(name, ()) if value != ""]
    return values or None


def form_file(form: Form, name: str) -> Upload | None:
    """The file field `name` as an `Upload` for the service (which saves, checks and keeps or
    discards it), or None when it was not sent."""
    value = form.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, FilePart):
        raise Invalid(f"{name}: must be a file upload", fields={name: "must be a file upload"})
    return Upload(value.chunks(), filename=value.filename, content_type=value.content_type)


class _MultipartReader:
    """python-multipart's callbacks, building `form` under the limits of the module docstring."""

    def __init__(self, boundary: bytes, charset: str) -> None:
        self.form = Form()
        self._charset = charset
        self._fields = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._content_type = b""
        self._name = ""
        self._text = bytearray()
        self._file: FilePart | None = None
        callbacks: Any = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_part,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        self._parser = MultipartParser(boundary, callbacks)

    async def read(self, receive: Receive) -> None:
        while True:
            message: Message = await receive()
            if message["type"] != "http.request":  # http.disconnect: gone, or cut off by body_timeout
                raise ClientDisconnect()
            body = message.get("body", b"")
            try:
                if body:
                    self._parser.write(body)
                if not message.get("more_body", False):
                    self._parser.finalize()
                    return
            except FormParserError as exc:
                raise Invalid(f"malformed form: {exc}") from None

    def _part_begin(self) -> None:
        self._disposition = self._content_type = b""
        self._text.clear()
        self._file = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        name = self._header_name.lower()
        if name == b"content-disposition":
            self._disposition = self._header_value
        elif name == b"content-type":
            self._content_type = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        options = disposition_options(self._disposition)
        if b"name" not in options:
            raise Invalid('malformed form: a part\'s Content-Disposition has no "name"')
        self._name = self._decode(options[b"name"])
        if b"filename" in options:
            if len(self.form.files) == MAX_FILES:
                raise Invalid(f"malformed form: more than {MAX_FILES} files")
            content_type = self._content_type.decode("latin-1") or None
            self._file = FilePart(self._decode(options[b"filename"]), content_type)
            self.form.files.append(self._file)
        else:
            self._fields += 1
            if self._fields > MAX_FIELDS:
                raise Invalid(f"malformed form: more than {MAX_FIELDS} fields")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._file.spool.write(data[start:end])
            return
        if len(self._text) + end - start > MAX_FORM_FIELD:
            raise PayloadTooLarge(f"a form field is larger than {MAX_FORM_FIELD} bytes")
        self._text += data[start:end]

    def _part_end(self) -> None:
        self.form.put(self._name, self._file if self._file is not None else self._decode(self._text))

    def _decode(self, raw: bytes | bytearray) -> str:
        """As Starlette decodes form text: the declared charset, Latin-1 when that fails."""
        try:
            return raw.decode(self._charset)
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def disposition_options(value: bytes) -> dict[bytes, bytes]:
    """A part's Content-Disposition options, as `parse_options_header` reads them."""
    simple = _SIMPLE_DISPOSITION.fullmatch(value)
    if simple is None:
        return parse_options_header(value)[1]
    name, filename = simple.groups()
    return {b"name": name} if filename is None else {b"name": name, b"filename": filename}


def boundary_and_charset(content_type: str) -> tuple[bytes, str]:
    """A multipart body's boundary (empty when there is none) and its text fields' charset."""
    simple = _SIMPLE_CONTENT_TYPE.fullmatch(content_type)
    if simple is not None:
        return simple.group(1).encode(), "utf-8"
    _, params = parse_options_header(content_type)
    return params.get(b"boundary", b""), _charset(params.get(b"charset"))


def _charset(declared: bytes | None) -> str:
    try:
        return codecs.lookup(declared.decode("latin-1") if declared else "utf-8").name
    except LookupError:
        return "latin-1"


async def _read_urlencoded(request: Request, limit: int) -> Form:
    bounded = Request(request.scope, _bounded_receive(request.receive, limit))
    parser = FormParser(bounded.headers, bounded.stream(), max_fields=MAX_FIELDS, max_part_size=MAX_FORM_FIELD)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise _form_error(exc.message) from None
    except FormParserError as exc:
        raise Invalid(f"malformed form: {exc}") from None
    return Form((name, value) for name, value in form.multi_items() if isinstance(value, str))


def _form_error(message: str) -> MedreqError:
    """Starlette tells its form limits apart only by their text: size limits are 413, the rest 422."""
    if "exceeded maximum size" in message:
        return PayloadTooLarge(f"a form field is larger than {MAX_FORM_FIELD} bytes")
    return Invalid(f"malformed form: {message}")


def _bounded_receive(receive: Receive, limit: int) -> Receive:
    """`receive`, counting the body's bytes as they arrive: past `limit`, 413."""
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        return message

    return bounded
