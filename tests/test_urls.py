"""medreq/config/urls.py: libpq's multi-host PostgreSQL URLs and ``redis+sentinel://`` URLs are read,
and a URL the server could not use is refused at start with what is wrong, creating nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from medreq.config import Settings
from medreq.config.urls import SentinelURL, libpq_url, parse_sentinel_url, postgres_url
from medreq.simulate.server import free_port

SERVE = (sys.executable, "-P", "-m", "medreq", "serve")


def test_a_libpq_host_list_becomes_sqlalchemys_and_back() -> None:
    url = "postgresql://medreq:s%40cret@db1:5432,db2.example.org,10.0.0.3:6432/medreq?target_session_attrs=read-write"
    converted = postgres_url(url)
    assert converted == (
        "postgresql+asyncpg://medreq:s%40cret@/medreq?host=db1%3A5432&host=db2.example.org%3A5432"
        "&host=10.0.0.3%3A6432&target_session_attrs=read-write"
    )
    parsed = make_url(converted)  # what the store, the start-up errors and `medreq db` read
    assert parsed.query["host"] == ("db1:5432", "db2.example.org:5432", "10.0.0.3:6432")
    assert parsed.password == "s@cret"
    assert "s%40cret" not in parsed.render_as_string(hide_password=True)
    assert libpq_url(converted) == (
        "postgresql://medreq:s%40cret@db1:5432,db2.example.org:5432,10.0.0.3:6432/medreq"
        "?target_session_attrs=read-write"
    )


def test_one_host_is_left_as_it_was() -> None:
    assert postgres_url("postgres://u@[::1]:5433/db") == "postgresql+asyncpg://u@[::1]:5433/db"
    assert postgres_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert (
        libpq_url("postgresql+asyncpg://u:p@h:5433/db?sslmode=require")
        == "postgresql://u:p@h:5433/db?sslmode=require"
    )


def test_the_settings_hold_the_converted_url_and_converting_again_changes_nothing() -> None:
    settings = Settings.load(env={}, database_url="postgresql://u@h1:1,h2:2/db")
    assert settings.database_url == "postgresql+asyncpg://u@/db?host=h1%3A1&host=h2%3A2"
    assert settings.resolved().database_url == settings.database_url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u@h1:5432,/db", "'' in the host list is not host[:port]"),
        ("postgresql://u@h1:54x2,h2/db", "port '54x2' of 'h1' is not a number"),
        ("postgresql://u@[::1]:5432,h2/db", "not IPv6 ones"),
        ("postgresql://u@h1,h2/db?host=h3", "either as h1:p1,h2:p2 or as ?host="),
        (
            "postgresql://u@h1,h2/db?target_session_attrs=primary-please",
            "target_session_attrs must be one of",
        ),
    ],
)
def test_a_database_url_it_cannot_use_is_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings.load(env={}, database_url=url)


def test_a_sentinel_url_names_its_sentinels_service_database_and_passwords() -> None:
    url = "redis+sentinel://:pw@s1,s2:26380,[::1]:26381/mymaster/2?sentinel_password=spw"
    assert parse_sentinel_url(url) == SentinelURL(
        sentinels=(("s1", 26379), ("s2", 26380), ("::1", 26381)),
        service="mymaster",
        db=2,
        username=None,
        password="pw",
        sentinel_password="spw",
    )
    plain = parse_sentinel_url("redis+sentinel://h/svc")
    assert (plain.sentinels, plain.service, plain.db, plain.password) == ((("h", 26379),), "svc", 0, None)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://h:26379", "names no service"),
        ("redis+sentinel://h:26379/svc/zero", "database 'zero' is not a number"),
        ("redis+sentinel://h:2637x/svc", "port '2637x' of 'h' is not a number"),
        ("redis+sentinel://h,/svc", "has no host"),
        ("redis+sentinel://h/svc?socket_timeout=1", "unknown option 'socket_timeout'"),
        (
            "sentinel://h/svc",
            "Redis URL must start with one of redis://, rediss://, unix://, redis+sentinel://",
        ),
        ("127.0.0.1:6379", "Redis URL must start with one of"),
    ],
)
def test_a_redis_url_it_cannot_use_is_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings.load(env={}, redis_url=url)


def test_serve_refuses_a_bad_sentinel_url_before_creating_anything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDREQ_")}
    result = subprocess.run(
        [
            *SERVE,
            "--port",
            str(free_port()),
            "--data-dir",
            str(data_dir),
            "--redis",
            "redis+sentinel://h:26379",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Sentinel URL names no service" in result.stderr
    assert not data_dir.exists()
