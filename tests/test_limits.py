"""One home for the server's bounds and options (issue 26): the service, the web layer and the
uvicorn protocols read one `Limits` object, and `medreq serve`'s options are Settings' fields."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from uvicorn.server import ServerState

from medreq.config import Limits, Settings
from medreq.config.settings import OPTION
from medreq.server import uvicorn_config
from medreq.web.app import create_app
from medreq.web.guard.admission import gate_for

from .test_cli_options import all_commands


def test_the_service_and_the_uvicorn_protocols_read_one_limits_object(tmp_path: Path) -> None:
    settings = replace(Settings.load({}, data_dir=tmp_path), max_json_depth=7, max_connections_per_client=3)
    app = create_app(settings, migrate=False)
    config = uvicorn_config(settings, app)
    config.load()
    gate = gate_for(ServerState(), config)
    assert gate.limits is app.service.limits
    assert (gate.limits.max_json_depth, gate.limits.max_connections_per_client) == (7, 3)


def test_every_limit_is_a_setting_of_the_same_name() -> None:
    settings = Settings()
    limits = Limits.of(settings)
    for f in fields(Limits):
        if f.name != "max_connections":  # the cap in force: within the descriptor limit
            assert getattr(limits, f.name) == getattr(settings, f.name), f.name


def test_serve_takes_each_setting_declared_as_an_option_with_its_variable() -> None:
    serve = dict(all_commands())["serve"]
    given = {param.name: param for param in serve.params if param.name != "help"}
    declared = [f.name for f in fields(Settings) if OPTION in f.metadata]
    assert list(given) == declared
    assert given["port"].envvar == "MEDREQ_PORT"
    assert given["database_url"].opts == ["--database"]
    assert given["trusted_proxies"].opts == ["--trusted-proxy"]
    assert given["trusted_proxies"].envvar is None  # comma-separated, read by Settings.load
