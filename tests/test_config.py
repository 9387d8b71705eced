"""Configuration: CLI options > environment > defaults; the JWT secret is made once, kept private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from medreq.config import Settings


def test_defaults(tmp_path: Path) -> None:
    settings = Settings.load(env={}, data_dir=tmp_path)
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.database_url == f"sqlite:///{(tmp_path / 'medreq.db').resolve()}"
    assert settings.media_dir == tmp_path / "media"
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.rate_limit_enabled
    assert settings.open_registration


def test_option_beats_environment_beats_default() -> None:
    env = {"MEDREQ_PORT": "9001", "MEDREQ_OPEN_REGISTRATION": "false", "MEDREQ_HOST": "0.0.0.0"}
    from_env = Settings.load(env=env)
    assert (from_env.port, from_env.open_registration) == (9001, False)
    assert from_env.public_url == "http://127.0.0.1:9001"  # a wildcard bind is not a reachable address
    from_option = Settings.load(env=env, port=9002, open_registration=None)
    assert (from_option.port, from_option.open_registration) == (9002, False)


def test_database_urls_get_async_drivers() -> None:
    assert (
        Settings.load(env={}, database_url="postgresql://u@h/db").database_url
        == "postgresql+asyncpg://u@h/db"
    )
    assert Settings.load(env={}, database_url="sqlite+aiosqlite:///x.db").database_url == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("name", "value"), [("MEDREQ_PORT", "eighty"), ("MEDREQ_RATE_LIMIT_ENABLED", "maybe")]
)
def test_bad_environment_value_is_a_clear_error(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.load(env={name: value})


def test_jwt_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    first = Settings.load(env={}, data_dir=tmp_path).ensure_secret()
    second = Settings.load(env={}, data_dir=tmp_path).ensure_secret()
    assert first.jwt_secret == second.jwt_secret
    assert len(first.jwt_secret) >= 48
    assert stat.S_IMODE((tmp_path / "jwt-secret").stat().st_mode) == 0o600
    given = Settings.load(env={"MEDREQ_JWT_SECRET": "from-env"}, data_dir=tmp_path / "other").ensure_secret()
    assert given.jwt_secret == "from-env"
    assert not (tmp_path / "other" / "jwt-secret").exists()


def test_transport_limits_come_from_the_environment_and_stay_below_the_fd_limit() -> None:
    import resource

    from medreq.config import Limits

    env = {
        "MEDREQ_MAX_HEADER_BYTES": "4096",
        "MEDREQ_HEADER_TIMEOUT": "2.5",
        "MEDREQ_MAX_CONNECTIONS": str(10**9),
        "MEDREQ_FD_RESERVE": "100",
        "MEDREQ_MAX_CONNECTIONS_PER_CLIENT": "0",
    }
    limits = Limits.of(Settings.load(env=env))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert (limits.max_header_bytes, limits.header_timeout) == (4096, 2.5)
    assert limits.max_connections == soft - 100  # a configured cap above the ceiling is lowered
    assert limits.max_connections_per_client == 0
    small = Limits.of(Settings.load(env={"MEDREQ_MAX_CONNECTIONS": "50"}))
    assert small.max_connections == 50
    default = Settings.load(env={})
    assert (default.max_header_bytes, default.max_connections_per_client) == (16384, 256)
