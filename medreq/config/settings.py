"""Server configuration: CLI options > environment (``MEDREQ_*``) > defaults.

`Settings.load(**overrides)` reads the environment, applies the options the CLI
was given (``None`` means "not given"), derives what is derived (database URL and
media dir from the data dir, public URL from host and port) and makes sure the JWT
secret exists: generated once and persisted in the data dir, never hard-coded.

Every field is a setting, its variable ``MEDREQ_`` + its name in capitals. A field declared
with `option` metadata is an option of `medreq serve` too: the command's options are made from
these fields (`cli/server.py`), so a setting and its flag, help and shown default are written
once, here: ``field(default=…, metadata=option(help, …))``.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..files import create_private_file, make_private_dir
from .urls import check_redis_url, postgres_url

ENV_PREFIX = "MEDREQ_"
SECRET_FILE = "jwt-secret"
PHARMACY_REGISTRATION = ("open", "approval", "closed")
LOG_FORMATS = ("text", "json")
OPTION = "medreq serve"  # the key of a field's `Option` in its metadata


@dataclass(frozen=True)
class Option:
    """How `medreq serve` takes a setting: its help; its default as `--help` shows it (None: the
    field's default); its flag (None: ``--`` + the name with dashes; a bool's ``--on/--off``);
    and, for a comma-separated list, `each`: the metavar of a flag given once per item (its
    variable stays comma-separated)."""

    help: str
    shown: str | None = None
    flag: str | None = None
    each: str | None = None


def option(
    help: str, *, shown: str | None = None, flag: str | None = None, each: str | None = None
) -> dict[str, Option]:
    """The metadata of a setting that is an option of `medreq serve` too (see `Option`):
    ``field(default=…, metadata=option(…))``."""
    return {OPTION: Option(help, shown, flag, each)}


@dataclass(frozen=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata=option("Interface to bind."))
    port: int = field(default=8000, metadata=option("Port."))
    data_dir: Path = field(
        default=Path("medreq-data"),
        metadata=option(
            "SQLite file, media and JWT secret.",
            shown="./medreq-data",
        ),
    )
    database_url: str = field(
        default="",
        metadata=option(
            "Database URL, e.g. postgresql://user@host/db.",
            flag="--database",
            shown="SQLite in the data dir",
        ),
    )
    redis_url: str = field(
        default="",
        metadata=option(
            "Redis URL for a hub shared by many workers/hosts.",
            flag="--redis",
            shown="in-process hub",
        ),
    )
    media_dir: Path | None = field(
        default=None, metadata=option("Where uploads are stored.", shown="DATA_DIR/media")
    )
    # default: http://host:port, and media links follow the address each client used
    public_url: str = field(
        default="",
        metadata=option(
            "Base URL clients reach, for media links.",
            shown="the Host each request was sent to",
        ),
    )
    # PostgreSQL: the hot transactions as one statement each on asyncpg (storage/pgfast.py);
    # off: every transaction through SQLAlchemy, as on SQLite (the path the fast one is tested against)
    pg_fast_path: bool = True
    jwt_secret: str = field(default="", repr=False)
    jwt_algorithm: str = "HS256"
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 14 * 24 * 3600
    media_url_ttl: int = 24 * 3600
    max_image_bytes: int = 10 * 1024 * 1024
    max_audio_bytes: int = 10 * 1024 * 1024
    # docs/protocol.md §3, groups: the most pharmacies one request may ask at once (a repeated `pharmacy`),
    # and the currency of an answer's price when the pharmacy names none (ISO 4217)
    max_pharmacies_per_request: int = field(
        default=5, metadata=option("Pharmacies a patient may ask at once with one request.")
    )
    default_currency: str = "EUR"
    open_registration: bool = field(
        default=True,
        metadata=option(
            "Allow POST /auth/register.",
            flag="--open-registration/--closed-registration",
            shown="open",
        ),
    )
    # pharmacies that register themselves: open (active at once), approval (pending until an
    # operator approves them: a look-alike must not receive patients' data) or closed
    pharmacy_registration: str = field(
        default="approval",
        metadata=option(
            "Self-registered pharmacies: open, approval (pending until `medreq account approve`) or closed.",
        ),
    )
    # addresses of reverse proxies whose X-Forwarded-For/-Proto are believed (comma-separated);
    # none by default, so a client cannot pick the address its rate limit is counted under
    trusted_proxies: str = field(
        default="",
        metadata=option(
            "A reverse proxy whose X-Forwarded-For/-Proto are believed",
            flag="--trusted-proxy",
            each="ADDRESS",
            shown="none",
        ),
    )
    # wrong passwords in a row before an account's logins are held back, and the longest hold
    login_max_failures: int = 5
    login_backoff_max: int = 900
    # seconds of the first hold, doubled by each further wrong guess (service/throttle.py)
    login_backoff_first: float = 1.0
    # how often every worker looks for revocations made elsewhere (other workers, the CLI)
    revocation_poll_interval: float = 1.0
    # origins whose pages may call the API (CORS) and open WebSockets, comma-separated;
    # empty: only pages this server serves itself. "*": any (never with credentials)
    cors_origins: str = field(
        default="",
        metadata=option(
            "Origin whose pages may call the API, e.g. http://localhost:5173, or '*' for any",
            flag="--cors-origin",
            each="ORIGIN",
            shown="same origin only",
        ),
    )
    rate_limit_enabled: bool = field(
        default=True,
        metadata=option(
            "Per-account rate limits.",
            flag="--rate-limit/--no-rate-limit",
            shown="on",
        ),
    )
    # allow `"synthetic": true` on register: sandboxed accounts for simulations and load tests
    synthetic_accounts: bool = True
    # token bucket per account: sustained rate per second and burst size
    rest_rate: float = 20.0
    rest_burst: int = 60
    ws_rate: float = 20.0
    ws_burst: int = 60
    # a connection answered this many rate_limited errors in a row is closed with 1008
    ws_flood_limit: int = 20
    ws_max_frame: int = 64 * 1024
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    ws_compression: bool = False
    ws_queue_size: int = 1000
    # --- transport limits (docs/security.md, "Transport limits"; figures from loadtests/attacks.py)
    # request line + headers; past it 431 and close (httptools alone has no limit)
    max_header_bytes: int = 16 * 1024
    # from connection (or first byte of a request) to the end of its headers; then close
    header_timeout: float = 10.0
    # longest pause within a request body (slow uploads of a 10 MiB file still make progress)
    body_timeout: float = 30.0
    # idle keep-alive connection between requests (uvicorn's timeout_keep_alive)
    keep_alive_timeout: int = 5
    # open connections, HTTP and WebSocket; 0: the descriptor limit minus fd_reserve
    max_connections: int = field(
        default=0, metadata=option("Open connections at most.", shown="the descriptor limit minus 256")
    )
    # descriptors kept free for the database, media, logs and the 503 answers themselves
    fd_reserve: int = 256
    # open connections from one client address; 0: no per-address cap (behind a proxy)
    max_connections_per_client: int = field(
        default=256, metadata=option("Open connections per client address, 0 for none (behind a proxy).")
    )
    # a socket with more unsent bytes than this, or a send blocked this long, is dropped (1013)
    ws_max_unsent: int = 1024 * 1024
    ws_send_timeout: float = 30.0
    # JSON bodies and WebSocket messages
    max_json_body: int = 64 * 1024
    max_json_depth: int = 32
    # seconds a worker's claim that an account is online lasts without renewal (renewed every
    # third of it): how long a crashed worker's sockets still count as online (docs/protocol.md §4)
    presence_ttl: float = 30.0
    # webhooks (docs/protocol.md §5): private, loopback and link-local targets are refused (SSRF)
    # unless allowed; attempts before a delivery is marked failed; the first retry's delay in
    # seconds (doubling, with jitter) and the longest; a POST's timeout; how often every
    # worker looks for due deliveries
    webhook_allow_private: bool = False
    webhook_max_attempts: int = 8
    webhook_backoff: float = 2.0
    webhook_backoff_max: float = 3600.0
    webhook_timeout: float = 10.0
    webhook_poll_interval: float = 1.0
    # Web Push: the VAPID private key (a PEM file; default: generated once in the data dir) and
    # the contact push services may use (a mailto: or https: URL)
    vapid_private_key: str = ""
    vapid_subject: str = "mailto:webpush@medreq.invalid"
    scrypt_n: int = 2**14
    workers: int = field(default=1, metadata=option("Worker processes (needs PostgreSQL and Redis)."))
    log_level: str = field(default="info", metadata=option("debug, info, warning, error."))
    # text (uvicorn's) or json: one JSON object per line, one access line per request (logs.py)
    log_format: str = field(default="text", metadata=option("text, or json: one JSON object per line."))
    # bearer token that GET /metrics requires; empty: no /metrics at all (404)
    metrics_token: str = field(default="", repr=False)
    # stored events older than this many days are pruned (each account's latest is kept); 0: keep
    event_retention_days: int = 90
    # media of requests closed (answered or cancelled) longer than this many days are removed; 0: keep
    media_retention_days: int = 0
    # seconds between background prunes in the server
    prune_interval: float = 3600.0

    @classmethod
    def load(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``) and explicit overrides."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, raw, type(getattr(cls(), f.name)))
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
        settings = cls(**values)
        return settings.resolved()

    def resolved(self) -> Settings:
        data_dir = Path(self.data_dir)
        media_dir = Path(self.media_dir) if self.media_dir else data_dir / "media"
        database_url = self.database_url or f"sqlite:///{(data_dir / 'medreq.db').resolve()}"
        if database_url.startswith("sqlite+"):  # any driver suffix: the store drives sqlite3 itself
            database_url = "sqlite:///" + database_url.split(":///", 1)[1]
        elif database_url.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            database_url = postgres_url(database_url)  # libpq's h1:p1,h2:p2 too (urls.py)
        if self.redis_url:
            check_redis_url(self.redis_url)
        if self.pharmacy_registration not in PHARMACY_REGISTRATION:
            choices = ", ".join(PHARMACY_REGISTRATION)
            raise ValueError(f"pharmacy registration must be one of {choices}, not {self.pharmacy_registration!r}")
        if self.max_pharmacies_per_request < 1:
            raise ValueError(f"max pharmacies per request must be at least 1, not {self.max_pharmacies_per_request}")
        if not re.fullmatch(r"[A-Z]{3}", self.default_currency):
            raise ValueError(f"default currency must be an ISO 4217 code like EUR, not {self.default_currency!r}")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {self.log_format!r}")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        public_url = (self.public_url or f"http://{_bracket(host)}:{self.port}").rstrip("/")
        return replace(
            self,
            cors_origins=",".join(parse_origins(self.cors_origins)),
            data_dir=data_dir,
            media_dir=media_dir,
            database_url=database_url,
            public_url=public_url,
        )

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return parse_origins(self.cors_origins)

    @property
    def public_url_is_derived(self) -> bool:
        """No public URL was configured (it is ``http://HOST:PORT``): media links then follow
        the address each client used."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return self.public_url == f"http://{_bracket(host)}:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [address.strip() for address in self.trusted_proxies.split(",") if address.strip()]

    def ensure_secret(self) -> Settings:
        """Return settings with a JWT secret, creating and persisting one if needed."""
        if self.jwt_secret:
            return self
        make_private_dir(self.data_dir)
        path = self.data_dir / SECRET_FILE
        if path.exists():
            secret = path.read_text().strip()
        else:
            secret = secrets.token_urlsafe(48)
            create_private_file(path, (secret + "\n").encode())
        return replace(self, jwt_secret=secret)


def parse_origins(raw: str) -> tuple[str, ...]:
    """Comma-separated origins, each `*` or scheme://host[:port] (ValueError otherwise)."""
    origins: list[str] = []
    for item in raw.split(","):
        origin = item.strip().rstrip("/")
        if not origin:
            continue
        if origin != "*":
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
                raise ValueError(f"CORS origin {item.strip()!r} must be '*' or scheme://host[:port]")
            origin = f"{parts.scheme}://{parts.netloc.lower()}"
        origins.append(origin)
    return tuple(dict.fromkeys(origins))


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _parse(name: str, raw: str, kind: type) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{ENV_PREFIX}{name.upper()} must be true or false, not {raw!r}")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}{name.upper()} must be a number, not {raw!r}") from None
    if name in ("data_dir", "media_dir"):
        return Path(raw)
    return raw
