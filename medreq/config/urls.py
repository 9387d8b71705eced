"""The database and Redis URLs the server accepts, with failover (docs/deploy.md, "Failover").

PostgreSQL: libpq's multi-host form, ``postgresql://user@h1:5432,h2:5432/db?target_session_attrs=read-write``:
connections try the hosts in order and keep the first that is a primary, so after a switch
new connections find the promoted standby. `postgres_url` turns it into the form SQLAlchemy's
asyncpg dialect reads (``postgresql+asyncpg://user@/db?host=h1:5432&host=h2:5432&…``, which
is what `Settings.database_url` holds), `libpq_url` turns that back for asyncpg's own pool
(storage/pgfast.py) and for libpq tools (pg_dump).

Redis: ``redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/service[/db]``: the
Sentinels (port 26379 by default) name the service's master, and a client asks them again
after every lost connection (`parse_sentinel_url`; hub/redis.py connects). The password is
the master's (and replicas'); ``?sentinel_password=`` is the Sentinels' own, if they have one.

Standard library only: the configuration reads these before anything heavy is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")
POSTGRES_PORT = 5432
SENTINEL_PORT = 26379
SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")
REDIS_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEME = "redis+sentinel"
_HOST = re.compile(r"[A-Za-z0-9._-]+")


def postgres_url(url: str) -> str:
    """A PostgreSQL URL (one host or libpq's ``h1:p1,h2:p2``) as SQLAlchemy's asyncpg URL.

    ValueError, naming what is wrong, for a host list it cannot take (an empty host, a port
    that is not a number, an IPv6 address in a list) or an unknown ``target_session_attrs``."""
    scheme, _, rest = url.partition("://")
    if scheme not in POSTGRES_SCHEMES:
        raise ValueError(f"database URL must start with postgresql://, not {scheme}://")
    netloc, slash, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    userinfo, at, hosts = netloc.rpartition("@")
    params = parse_qsl(query, keep_blank_values=True)
    attrs = [value for name, value in params if name == "target_session_attrs"]
    for value in attrs:
        if value not in SESSION_ATTRS:
            raise ValueError(f"target_session_attrs must be one of {', '.join(SESSION_ATTRS)}, not {value!r}")
    if "," not in hosts:
        return f"postgresql+asyncpg://{rest}"
    if any(name == "host" for name, _ in params):
        raise ValueError("database URL: give the hosts either as h1:p1,h2:p2 or as ?host=, not both")
    listed = [_host_port(item) for item in hosts.split(",")]
    query = urlencode([*(("host", f"{host}:{port}") for host, port in listed), *params])
    return f"postgresql+asyncpg://{userinfo}{at}{slash}{path}?{query}"


def _host_port(item: str) -> tuple[str, int]:
    host, colon, port = item.partition(":")
    if item.startswith("["):
        raise ValueError("database URL: a host list takes host names or IPv4 addresses, not IPv6 ones")
    if not _HOST.fullmatch(host):
        raise ValueError(f"database URL: {item!r} in the host list is not host[:port]")
    if colon and not port.isdigit():
        raise ValueError(f"database URL: port {port!r} of {host!r} is not a number")
    return host, int(port) if colon else POSTGRES_PORT


def libpq_url(url: str) -> str:
    """SQLAlchemy's URL (`postgres_url`) as libpq and asyncpg read it: ``postgresql://``, and
    ``?host=h1:p1&host=h2:p2`` back in the host list, where both understand several hosts."""
    _, _, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    hosts = [value for name, value in params if name == "host"]
    if not hosts:
        return f"postgresql://{rest}"
    userinfo, at, _ = netloc.rpartition("@")
    others = urlencode([(name, value) for name, value in params if name != "host"])
    return f"postgresql://{userinfo}{at}{','.join(hosts)}{slash}{path}{'?' if others else ''}{others}"


@dataclass(frozen=True)
class SentinelURL:
    """What a ``redis+sentinel://`` URL says (`parse_sentinel_url`)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def check_redis_url(url: str) -> None:
    """ValueError unless `url` is a Redis URL the hub can connect with."""
    scheme = url.partition("://")[0]
    if scheme == SENTINEL_SCHEME:
        parse_sentinel_url(url)
    elif scheme not in REDIS_SCHEMES or "://" not in url:
        known = ", ".join(f"{s}://" for s in (*REDIS_SCHEMES, SENTINEL_SCHEME))
        raise ValueError(f"Redis URL must start with one of {known}")


def parse_sentinel_url(url: str) -> SentinelURL:
    """``redis+sentinel://[[user]:password@]host[:port][,…]/service[/db][?sentinel_password=…]``."""
    scheme, _, rest = url.partition("://")
    if scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    userinfo, _, hosts = netloc.rpartition("@")
    sentinels = tuple(_sentinel(item) for item in hosts.split(","))
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise ValueError("Sentinel URL names no service: redis+sentinel://host:26379/<service>[/db]")
    if db and not db.isdigit():
        raise ValueError(f"Sentinel URL: database {db!r} is not a number")
    username, colon, password = userinfo.partition(":")
    options = dict(parse_qsl(query))
    unknown = set(options) - {"sentinel_password"}
    if unknown:
        raise ValueError(f"Sentinel URL: unknown option {sorted(unknown)[0]!r} (only sentinel_password)")
    return SentinelURL(
        sentinels=sentinels,
        service=unquote(service),
        db=int(db or 0),
        username=unquote(username) or None,
        password=unquote(password) if colon else None,
        sentinel_password=options.get("sentinel_password"),
    )


def _sentinel(item: str) -> tuple[str, int]:
    if item.startswith("["):
        host, _, port = item[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    if not host:
        raise ValueError(f"Sentinel URL: {item!r} in the Sentinel list has no host")
    if port and not port.isdigit():
        raise ValueError(f"Sentinel URL: port {port!r} of {host!r} is not a number")
    return host, int(port) if port else SENTINEL_PORT
