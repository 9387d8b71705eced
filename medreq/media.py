"""Private media: prescriptions and pharmacy audio (docs/protocol.md §3 "Media").

- Types are sniffed from the bytes (the `filetype` library), never taken from the name.
- Uploads are copied to a temporary file in the media dir chunk by chunk, counting bytes;
  past the limit the copy stops with 413, so nothing large is ever held in memory.
- Stored names are server-generated (`<22 url-safe chars>.<ext>`); a requested name that does
  not match that pattern is simply not found, which makes path traversal impossible.
- URLs carry `?to=<account id>&exp=<unix time>&sig=<HMAC-SHA256 of kind/name/to/exp>`: a link is
  issued to one account, and whoever fetches it is served only while that account may still see
  the file (`service.delivery.Delivery.media_file` asks at every fetch).
- Their base is `--public-url` when set; otherwise the address each client reached the server at
  (`for_client`, set per HTTP request and per socket by the web layer), so a server bound to
  0.0.0.0 hands a phone on the LAN links it can open, not `http://127.0.0.1:…`. Events are rendered
  once with the configured base and `rebase`d for each socket.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import filetype  # type: ignore[import-untyped]

from .files import make_private_dir
from .protocol.errors import Forbidden, Invalid, PayloadTooLarge, UnsupportedMediaType

Kind = Literal["image", "audio"]

URL_PREFIX: dict[Kind, str] = {"image": "prescriptions", "audio": "pharmacy-audio"}
KIND_BY_PREFIX: dict[str, Kind] = {prefix: kind for kind, prefix in URL_PREFIX.items()}

# sniffed MIME type → (stored extension, content type served)
ALLOWED: dict[Kind, dict[str, tuple[str, str]]] = {
    "image": {
        "image/jpeg": ("jpg", "image/jpeg"),
        "image/png": ("png", "image/png"),
        "image/webp": ("webp", "image/webp"),
        "application/pdf": ("pdf", "application/pdf"),
    },
    "audio": {
        "video/webm": ("webm", "audio/webm"),
        "audio/ogg": ("ogg", "audio/ogg"),
        "audio/mpeg": ("mp3", "audio/mpeg"),
        "audio/mp4": ("m4a", "audio/mp4"),
        "video/mp4": ("m4a", "audio/mp4"),
        "audio/x-wav": ("wav", "audio/wav"),
    },
}
CONTENT_TYPES = {ext: served for table in ALLOWED.values() for ext, served in table.values()}
ALLOWED_NAMES: dict[Kind, str] = {
    "image": "JPEG, PNG, WebP or PDF",
    "audio": "WebM, Ogg, MP3, M4A/MP4 or WAV",
}
#: every media response: nothing loads, nothing runs, and the document has no origin of its own
MEDIA_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}\.(jpg|png|webp|pdf|webm|ogg|mp3|m4a|wav)$")
SNIFF_BYTES = 8192

# the base URL the current HTTP request reached us at (None: use the configured one)
_client_base: ContextVar[str | None] = ContextVar("medreq_media_client_base", default=None)


class ClientBase:
    """`MediaStore.for_client`'s block: a class, not a generator, because every HTTP request
    and WebSocket message enters one (timeit: 0.4 against 1.4 µs a block)."""

    __slots__ = ("reached_at", "token")

    def __init__(self, reached_at: str | None) -> None:
        self.reached_at = reached_at

    def __enter__(self) -> None:
        self.token = _client_base.set(self.reached_at)

    def __exit__(self, *exc: object) -> None:
        _client_base.reset(self.token)


@dataclass(frozen=True)
class StoredMedia:
    kind: Kind
    name: str
    size: int
    content_type: str


class MediaStore:
    def __init__(
        self, root: Path, secret: str, *, base_url: str, url_ttl: int, follow_host: bool = False
    ) -> None:
        self.root = Path(root)
        key = hashlib.sha256(b"medreq-media\0" + secret.encode()).digest()
        self._signer = hmac.new(key, digestmod=hashlib.sha256)  # keyed once; `_sign` copies it
        self.base_url = base_url.rstrip("/")
        self.url_ttl = url_ttl
        self.follow_host = follow_host  # no --public-url: links follow the address each client used
        for prefix in URL_PREFIX.values():
            make_private_dir(self.root / prefix)
        make_private_dir(self.root)
        # per kind: its folder, absolute, as the str `os` calls take (no `Path` per upload), and
        # whether it takes unnamed files (see `save`), tried once here
        self._folders = {kind: str((self.root / prefix).absolute()) for kind, prefix in URL_PREFIX.items()}
        self._unnamed = {kind: unnamed_files_work(self.root / prefix) for kind, prefix in URL_PREFIX.items()}

    # --- writing ------------------------------------------------------------------------------

    async def save(self, kind: Kind, field: str, chunks: AsyncIterator[bytes], *, limit: int) -> StoredMedia:
        """Stream an upload into the store; sniff it, enforce `limit`, return its stored name.

        The bytes go to an unnamed file in the kind's folder (``O_TMPFILE``), which gets its name
        only once the upload is complete and sniffed (`link_unnamed`): a server killed mid-upload
        leaves nothing behind, as the kernel frees a file that never had a name. Where the
        filesystem or OS has no unnamed files, a ``.upload-*`` file is renamed instead. Measured
        on ext4, a 32 KB upload: 57–63 µs of CPU into a named file and its rename, 49–51 µs
        unnamed (loadtests/upload_files.py; docs/benchmarks-history.md, "What changed, each measured on
        its own")."""
        folder = self._folders[kind]
        tmp: str | None = None
        if self._unnamed[kind]:
            # 0600: a prescription is readable by the server's user alone, whatever the umask
            fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o600)
        else:
            tmp = f"{folder}/.upload-{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        size = 0
        head = b""
        try:
            async for chunk in chunks:  # local disk, 64 KiB writes: a thread hop per chunk costs more
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"{field} is larger than {limit} bytes", fields={field: f"at most {limit} bytes"}
                    )
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                write_all(fd, chunk)
            if size == 0:
                raise Invalid(f"{field}: file is empty", fields={field: "file is empty"})
            ext, content_type = self._sniff(kind, field, head)
            name = f"{secrets.token_urlsafe(16)}.{ext}"
            if tmp is None:
                link_unnamed(fd, f"{folder}/{name}")
            else:
                os.replace(tmp, f"{folder}/{name}")
        except BaseException:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            raise
        finally:
            os.close(fd)
        return StoredMedia(kind, name, size, content_type)

    @staticmethod
    def _sniff(kind: Kind, field: str, head: bytes) -> tuple[str, str]:
        guess = filetype.guess(head)
        allowed = ALLOWED[kind]
        if guess is None or guess.mime not in allowed:
            found = guess.mime if guess else "unknown"
            raise UnsupportedMediaType(
                f"{field} must be {ALLOWED_NAMES[kind]} (found {found})",
                fields={field: f"must be {ALLOWED_NAMES[kind]}"},
            )
        return allowed[guess.mime]

    def discard(self, media: StoredMedia | None) -> None:
        """Remove a file stored for a change that did not happen."""
        if media is not None:
            (self.root / URL_PREFIX[media.kind] / media.name).unlink(missing_ok=True)

    # --- reading ------------------------------------------------------------------------------

    def path(self, kind: Kind, name: str) -> Path | None:
        """The file for a name we generated, or None (also for any name we could not have made)."""
        if not NAME_PATTERN.match(name):
            return None
        path = self.root / URL_PREFIX[kind] / name
        return path if path.is_file() else None

    @staticmethod
    def content_type(name: str) -> str:
        return CONTENT_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")

    @staticmethod
    def response_headers(name: str) -> dict[str, str]:
        """Headers of a served file: what a patient uploaded is never a page of ours. A sandbox
        policy that allows nothing (a file opened on its own runs no script, loads nothing and has
        no origin), and a PDF as a download: browsers' PDF viewers run the document's script and
        follow its links, and Chromium shows no PDF inside a sandbox (docs/security.md)."""
        headers = {
            "Cache-Control": "private, max-age=3600",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": MEDIA_POLICY,
        }
        if name.endswith(".pdf"):
            headers["Content-Disposition"] = f'attachment; filename="prescription-{name}"'
        return headers

    # --- signed URLs --------------------------------------------------------------------------

    def url(
        self,
        kind: Kind,
        name: str | None,
        *,
        to: int,
        now: float | None = None,
        base: str | None = None,
        ttl: int | None = None,
    ) -> str | None:
        """A signed link for account `to`, valid `ttl` seconds (default `url_ttl`); under `base`,
        else the current client's base (see `for_client`)."""
        if not name:
            return None
        expires = int((now if now is not None else time.time()) + (self.url_ttl if ttl is None else ttl))
        base = base or self.client_base(_client_base.get())
        sig = self._sign(kind, name, to, expires)
        return f"{base}/media/{URL_PREFIX[kind]}/{name}?to={to}&exp={expires}&sig={sig}"

    def client_base(self, reached_at: str | None) -> str:
        """The base for links sent to a client that reached us at ``reached_at`` (or None)."""
        return reached_at if self.follow_host and reached_at else self.base_url

    def for_client(self, reached_at: str | None) -> ClientBase:
        """Links made inside this `with` block are for a client that reached us at ``reached_at``."""
        return ClientBase(reached_at)

    def rebase(self, text: str, base: str) -> str:
        """``text`` (rendered under the configured base) with its links moved under ``base``."""
        if base == self.base_url:
            return text
        return text.replace(f'"{self.base_url}/media/', f'"{base}/media/')

    def check_signature(self, kind: Kind, name: str, to: str | None, exp: str | None, sig: str | None) -> int:
        """The account the link was issued to; Forbidden unless `sig` signs (kind, name, to, exp)
        and exp is in the future. Whether that account may still see the file is the caller's
        question (it needs the database)."""
        if not to or not exp or not sig:
            raise Forbidden("a signed URL or a participant's token is required")
        try:
            account_id, expires = int(to), int(exp)
        except ValueError:
            raise Forbidden("invalid signature") from None
        # as bytes: compare_digest raises TypeError on a str with non-ASCII characters (a 500)
        expected = self._sign(kind, name, account_id, expires).encode()
        if not hmac.compare_digest(sig.encode(errors="replace"), expected):
            raise Forbidden("invalid signature")
        if expires < time.time():
            raise Forbidden("signature expired")
        return account_id

    def _sign(self, kind: Kind, name: str, to: int, expires: int) -> str:
        """HMAC-SHA256 of the link's fields, from a copy of the keyed HMAC: `hmac.new` per link
        hashed the key's two padded blocks again each time (three links a cycle; 6.3 against 4.2 µs
        a link, timeit, 2026-12-07)."""
        signer = self._signer.copy()
        signer.update(f"{kind}/{name}/{to}/{expires}".encode())
        return signer.hexdigest()[:32]


def write_all(fd: int, data: bytes) -> None:
    """`os.write` until all of `data` is written (a regular file takes it whole but for a full
    disk, which raises)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def link_unnamed(fd: int, path: str | Path) -> None:
    """Give the unnamed file open at `fd` the name `path` (an existing name is an error).

    `linkat` of ``/proc/self/fd/N`` with ``AT_SYMLINK_FOLLOW``, as open(2) shows for ``O_TMPFILE``
    files (``AT_EMPTY_PATH`` would need CAP_DAC_READ_SEARCH). `os.link` calls `linkat` rather
    than `link`, which refuses the /proc link with EXDEV, only when given a directory fd: `fd`
    here, which `linkat` ignores because both paths are absolute."""
    os.link(f"/proc/self/fd/{fd}", os.path.abspath(path), src_dir_fd=fd, follow_symlinks=True)


def unnamed_files_work(folder: Path) -> bool:
    """Whether `folder` takes unnamed files and `link_unnamed` can name them: Linux ≥ 3.11 with
    /proc, on ext4, XFS, Btrfs, tmpfs and most local filesystems; not macOS, nor some network
    filesystems. Tried with a probe file, removed at once."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return False
    probe = folder / f".probe-{secrets.token_hex(8)}"
    try:
        fd = os.open(folder, flag | os.O_WRONLY, 0o600)
    except OSError:  # EOPNOTSUPP from the filesystem; EISDIR or EINVAL from older kernels
        return False
    try:
        link_unnamed(fd, probe)
    except OSError:
        return False
    finally:
        os.close(fd)
    probe.unlink(missing_ok=True)
    return True
