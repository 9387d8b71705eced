"""Shared fixtures: a real `medreq serve` on a free loopback port, accounts, media files.

`server` is a fresh server process (own temp data dir) per test; it can be stopped,
started and restarted on the same port and data, which is how restart tests prove that
nothing acknowledged is lost.
"""

from __future__ import annotations

import compileall
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

import medreq
from medreq.simulate import server as medreq_server
from medreq.simulate.accounts import Account, Role, create_account
from medreq.simulate.samples import png, wav
from medreq.simulate.server import Launched, free_port

from .forked import Forked

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_URL = os.environ.get("MEDREQ_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MEDREQ_TEST_REDIS", "redis://127.0.0.1:6379/0")
# Every server of the suite (spawned or in-process) records what it sends (medreq/web/wire_record.py);
# tests/test_wire_contract.py validates it all against /openapi.json and /asyncapi.json.
_MADE_WIRE_RECORD = "MEDREQ_WIRE_RECORD" not in os.environ
WIRE_RECORD = Path(os.environ.setdefault("MEDREQ_WIRE_RECORD", tempfile.mkdtemp(prefix="medreq-wire-")))


def pytest_configure(config: pytest.Config) -> None:
    """Once per run (in the xdist controller): bytecode for medreq's own modules. This machine and
    CI set PYTHONDONTWRITEBYTECODE, and an editable install has no compiled copy of the checkout,
    so every server and CLI process the suite starts (several hundred) compiled medreq from source
    again; the installed packages are compiled at install (`[tool.uv] compile-bytecode`). Together
    a server's start took 1.5 s before and 0.57 s after (tests/conftest.py ServerProcess, fresh
    data dir, an idle machine)."""
    if not hasattr(config, "workerinput"):
        compileall.compile_dir(Path(medreq.__file__).parent, quiet=1)


#: `pytest -m quick`, the edit loop: each area of the product once, in well under a minute on
#: this 2-core machine (README.md, "The edit loop"). Listed here, by area, so what it covers is
#: read in one place; a name that no longer exists fails the whole run (below).
QUICK = {
    "REST and sockets, one full cycle": ["test_seed_flow.py::test_request_reaches_pharmacy_and_answer_reaches_patient"],
    "bad input changes nothing": ["test_request_validation.py::test_request_with_bad_fields_is_422_and_stores_nothing"],
    "socket messages": ["test_websocket.py::test_bad_message_gets_error_and_connection_stays_open"],
    "delivery and resume": ["test_delivery.py::test_broken_connection_resumes_without_gaps_or_duplicates"],
    "accounts and tokens": ["test_auth.py::test_token_body_has_typed_tokens_and_the_account"],
    "media links": ["test_media.py::test_signed_urls_open_without_a_token"],
    "storage and service": [
        "test_service.py::test_events_are_stored_before_they_are_published",
        "test_group_commit.py::test_concurrent_writes_share_one_commit_and_all_land",
        "test_migrations_head.py::test_head_is_alembics_head",
    ],
    "PostgreSQL and Redis, two servers": ["test_scale_out.py::test_request_posted_on_one_server_reaches_pharmacy_on_another"],
    "webhooks": ["test_webhooks.py::test_offline_patient_gets_signed_webhook_on_third_try"],
    "the client": [
        "test_client.py::test_request_answer_and_media_round_trip",
        "test_client_live.py::test_offline_events_are_replayed_after_the_last_seen_id",
    ],
    "the CLI": ["test_cli.py::test_request_respond_and_list"],
    "the console in Chromium": ["test_console_browser.py::test_patient_and_pharmacy_end_to_end_across_a_server_kill"],
    "the inbox": [
        "test_tui_model.py::test_filter_search_and_order",
        "test_tui_inbox.py::test_request_posted_by_patient_appears_live",
    ],
    "the published contract": [
        "test_openapi.py::test_every_rest_route_is_documented",
        "test_protocol_doc.py::test_every_event_and_reply_is_documented",
        "test_imports.py::test_medreq_has_no_import_loops",
    ],
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the QUICK tests (every parametrised case of each); when the whole suite was
    collected, a QUICK name that matches nothing is an error, not a silently smaller loop."""
    wanted = {name for names in QUICK.values() for name in names}
    found: set[str] = set()
    for item in items:
        name = f"{item.path.name}::{item.originalname}"  # type: ignore[attr-defined]
        if name in wanted:
            item.add_marker(pytest.mark.quick)
            found.add(name)
    whole_suite = not config.args or any(Path(arg).resolve() == Path(__file__).parent for arg in config.args)
    if whole_suite and not config.getoption("keyword") and wanted - found:
        raise pytest.UsageError(f"tests/conftest.py QUICK names tests that do not exist: {sorted(wanted - found)}")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's default): two workers per core. Most of a test's time is spent
    waiting on servers, sockets and browsers in other processes: with one worker per core the
    whole suite kept 1.2 of 2 cores busy and took 315 s here, with two per core 1.7 cores and
    226 s (the same tree, one after the other on a quiet machine; docs/benchmarks.md)."""
    return 2 * (os.cpu_count() or 1)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole suite (in the xdist controller, once every worker is done): check all that
    the servers sent against the published documents, as tests/test_wire_contract.py does for what
    it sees at its turn; then remove the recording (what the servers sent is medical test data too)."""
    if not _MADE_WIRE_RECORD or hasattr(session.config, "workerinput"):
        return
    try:
        whole_suite = any(Path(arg).resolve() == Path(__file__).parent for arg in session.config.args)
        if whole_suite and exitstatus == 0:
            from .test_wire_contract import offenders_in_recording

            offenders = offenders_in_recording()
            if offenders:
                reporter = session.config.pluginmanager.get_plugin("terminalreporter")
                if reporter is not None:
                    reporter.write_line(f"the wire contract: {len(offenders)} sent items break it:", red=True)
                    for line in offenders[:30]:
                        reporter.write_line(line)
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
    finally:
        shutil.rmtree(WIRE_RECORD, ignore_errors=True)


class ServerProcess(medreq_server.ServerProcess):
    """`medreq serve` for tests: output in a log beside the data dir, rate limits left on."""

    default_env = {
        "MEDREQ_LOG_LEVEL": "warning",
        "MEDREQ_SCRYPT_N": "1024",  # fast hashes keep tests quick; production default is 2**14
        # tests register pharmacies over the API; approval has its own tests (test_accounts.py)
        "MEDREQ_PHARMACY_REGISTRATION": "open",
    }

    def __init__(self, data_dir: Path, *, port: int | None = None, env: dict[str, str] | None = None) -> None:
        port = port or free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            env=env, port=port, data_dir=data_dir, log_path=data_dir.parent / f"server-{port}.log"
        )

    def _launch(self, command: list[str], env: dict[str, str], log: IO[bytes]) -> Launched:
        """The same command line, forked from a process that has imported medreq (tests/forked.py)."""
        head = [sys.executable, "-P", "-m", "medreq"]
        if self.wrapper or command[: len(head)] != head:
            return super()._launch(command, env, log)
        return Forked(command[len(head) :], env, log.name)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def make(env: dict[str, str] | None = None, *, start: bool = True) -> ServerProcess:
        proc = ServerProcess(tmp_path / f"data{len(started)}", env=env)
        started.append(proc)
        if start:
            proc.start()
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One default server for the tests of a file marked `shared_server` (see `server`)."""
    proc = ServerProcess(tmp_path_factory.mktemp("shared") / "data")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def server(request: pytest.FixtureRequest, server_factory: Any) -> ServerProcess:
    """A default server of the test's own, or, in a file marked ``pytestmark =
    pytest.mark.shared_server``, the file's one server (a test there marked ``own_server`` still
    gets its own). Sharing suits tests that make their own accounts, look only at those accounts'
    requests and events, and leave the server running: accounts never see each other's data, and
    rate limits count per account. A fresh server costs about 0.6 s to start on this machine, and
    files like test_websocket.py started one for each of their 23 cases."""
    if request.node.get_closest_marker("shared_server") and not request.node.get_closest_marker("own_server"):
        shared: ServerProcess = request.getfixturevalue("module_server")
        if shared.proc is None or shared.proc.poll() is not None:
            pytest.fail("a test stopped the file's shared server: mark it own_server")
        return shared
    return server_factory()


def make_account(base_url: str, role: Role, name: str | None = None, phone: str | None = None) -> Account:
    """A fresh account registered over HTTP and logged in (medreq.simulate.accounts)."""
    return create_account(base_url, role, name=name, phone=phone)


@pytest.fixture
def patient(server: ServerProcess) -> Account:
    return make_account(server.url, "patient", name="Alice Patient", phone="+1-555-0100")


@pytest.fixture
def pharmacy(server: ServerProcess) -> Account:
    return make_account(server.url, "pharmacy", name="LifeCare Pharmacy")


# --- media made here, real enough for any sniffer ---------------------------------------------


@pytest.fixture
def png_bytes() -> bytes:
    return png(2, 2)


@pytest.fixture
def wav_bytes() -> bytes:
    return wav()


# --- external services -------------------------------------------------------------------------


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, under CI=true, fail) when a service this test needs is not reachable."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        if IN_CI:
            pytest.fail(f"{name} at {host}:{port} is required under CI=true but unreachable: {exc}")
        pytest.skip(f"{name} at {host}:{port} is not reachable: {exc}")


async def create_database() -> str:
    """A fresh, empty PostgreSQL database on the shared server; its URL."""
    import asyncpg

    name = f"medreq_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + name


async def drop_database(url: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; Redis must be up too (servers on one
    database share a Redis hub)."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    url = await create_database()
    yield url
    await drop_database(url)


@pytest.fixture
def cluster_env() -> dict[str, str]:
    """Settings both `cluster` servers get besides the shared ones (a test file may override it)."""
    return {}


@pytest.fixture
def cluster(
    postgres_url: str, tmp_path: Path, cluster_env: dict[str, str]
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers sharing the database, the Redis hub, the JWT secret and the media volume."""
    shared = {
        "MEDREQ_DATABASE_URL": postgres_url,
        "MEDREQ_REDIS_URL": REDIS_URL,
        "MEDREQ_JWT_SECRET": "test-cluster-secret-" + tmp_path.name,
        "MEDREQ_MEDIA_DIR": str(tmp_path / "shared-media"),
        **cluster_env,
    }
    first = ServerProcess(tmp_path / "a", env=shared)
    second = ServerProcess(tmp_path / "b", env=shared)
    first.start()  # one at a time: the first applies the migrations
    second.start()
    yield first, second
    first.stop()
    second.stop()


T = TypeVar("T")


def eventually(action: Callable[[], T], done: Callable[[T], bool], *, seconds: float = 5.0) -> T:
    """`action()` until `done` holds of its result (a change made elsewhere reaches a worker
    within its poll interval), at most `seconds`; the last result either way."""
    deadline = time.monotonic() + seconds
    while True:
        result = action()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.1)
