"""docs/deploy.md "Failover": a Redis master killed under load and replaced by Sentinel, and a
PostgreSQL primary stopped under load while its standby is promoted, lose nothing acknowledged.

Every server here is this test's own, on free loopback ports in a temporary directory, and is
removed afterwards: Redis (`redis-server`, a replica and a Sentinel) and PostgreSQL (`initdb`,
a standby made with `pg_basebackup -R`, synchronous replication). The machine's shared Redis
(6379) and PostgreSQL (5432) are never touched. Without those programs the tests skip, except
under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from websockets.exceptions import WebSocketException

from medreq.protocol import CloseCode

from .conftest import IN_CI, Account, ServerProcess, make_account
from .wire import close_code, open_ws, recv_events

SERVICE = "mymaster"
ENV = {"MEDREQ_RATE_LIMIT_ENABLED": "false", "MEDREQ_LOG_LEVEL": "warning"}
RECOVERY_SECONDS = 10.0  # the service answers again within this of the switch (issue 25)


def need(program: str) -> str:
    """The program's path; skip (fail under CI=true) when it is not installed."""
    found = shutil.which(program) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{program}"))), None
    )
    if found is None:
        message = f"{program} is not installed: the failover tests run their own servers with it"
        if IN_CI:
            pytest.fail(message + " (required under CI=true)")
        pytest.skip(message)
    return found


def free_port() -> int:
    from medreq.simulate.server import free_port as pick

    return pick()


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temporary directory the `postgres` user may write (we run its programs as it, as root)."""
    path = Path(tempfile.mkdtemp(prefix="medreq-failover-"))
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- Redis, a replica and a Sentinel ----------------------------------------------------------


@dataclass
class RedisSet:
    master: int
    replica: int
    sentinel: int
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self) -> str:
        # a Sentinel that is down comes first: the client moves on to the next
        return f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{self.sentinel}/{SERVICE}/0"

    def kill(self, port: int) -> None:
        self.procs[port].kill()
        self.procs[port].wait()

    async def master_port(self) -> int:
        async with aioredis.Redis(port=self.sentinel) as sentinel:
            _, port = await sentinel.sentinel_get_master_addr_by_name(SERVICE)
            return int(port)

    async def wait_for_master(self, port: int, seconds: float = 20.0) -> None:
        """Until the Sentinel names `port` the master and it accepts writes."""
        deadline = time.monotonic() + seconds
        while await self.master_port() != port or not await _is_master(port):
            assert time.monotonic() < deadline, f"Sentinel did not promote 127.0.0.1:{port}"
            await asyncio.sleep(0.1)


async def _is_master(port: int) -> bool:
    async with aioredis.Redis(port=port) as client:
        return bool((await client.info("replication"))["role"] == "master")


@pytest.fixture
async def redis_set(scratch: Path) -> AsyncIterator[RedisSet]:
    binary = need("redis-server")
    servers = RedisSet(free_port(), free_port(), free_port())

    def run(port: int, *args: str) -> None:
        with open(scratch / f"redis-{port}.log", "wb") as log:  # the process keeps its own copy
            servers.procs[port] = subprocess.Popen(
                [binary, *args], stdout=log, stderr=subprocess.STDOUT, cwd=scratch
            )

    # --dir: a replica writes the master's snapshot to disk when it syncs (dump.rdb), even with
    # --save '': into the scratch dir, not the folder pytest runs in
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(scratch)]
    try:
        # no 5 s wait for more replicas before the first sync (Redis 7's default): a set up in 1.8-2.0 s, not 6.9
        run(servers.master, "--port", str(servers.master), "--repl-diskless-sync-delay", "0", *common)
        await _until(lambda: _ping(servers.master), "the Redis master to start")
        run(
            servers.replica,
            "--port",
            str(servers.replica),
            "--replicaof",
            "127.0.0.1",
            str(servers.master),
            *common,
        )
        await _until(lambda: _in_sync(servers.replica), "the Redis replica to sync")
        conf = scratch / "sentinel.conf"
        conf.write_text(
            f"port {servers.sentinel}\nbind 127.0.0.1\ndir {scratch}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {servers.master} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 500\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
        )
        run(servers.sentinel, str(conf), "--sentinel")
        await _until(lambda: _sentinel_knows_replica(servers.sentinel), "the Sentinel to see the replica")
        yield servers
    finally:
        for proc in servers.procs.values():
            proc.kill()
            proc.wait()


async def _until(check: Any, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(OSError, aioredis.RedisError):
            if await check():
                return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _ping(port: int) -> bool:
    async with aioredis.Redis(port=port) as client:
        return bool(await client.ping())


async def _in_sync(port: int) -> bool:
    async with aioredis.Redis(port=port) as client:
        return (await client.info("replication")).get("master_link_status") == "up"


async def _sentinel_knows_replica(port: int) -> bool:
    async with aioredis.Redis(port=port) as sentinel:
        return len(await sentinel.sentinel_slaves(SERVICE)) == 1


# --- PostgreSQL, and a synchronous standby ----------------------------------------------------


class Postgres:
    """A PostgreSQL cluster of this test's own, run as `postgres` when we are root."""

    def __init__(self, scratch: Path, name: str) -> None:
        self.dir = scratch / name
        self.port = free_port()
        self.scratch = scratch
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self.as_postgres, need(program), *args],
            check=True,
            capture_output=True,
            timeout=60,
            cwd=self.scratch,
        )

    def configure(self, settings: str) -> None:
        with open(self.dir / "postgresql.conf", "a") as conf:
            conf.write(settings)

    def initdb(self) -> None:
        self.run("initdb", "-D", str(self.dir), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8")
        self.configure(
            f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.scratch}'\n"
            "fsync = off\nfull_page_writes = off\nshared_buffers = 16MB\nmax_connections = 60\n"
            # no acknowledged commit only on the primary: the standby has flushed it first
            "synchronous_standby_names = '*'\n"
        )

    def standby_of(self, primary: Postgres) -> None:
        self.run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(self.dir),
            "-R",
            "-X",
            "stream",
        )
        self.configure(f"port = {self.port}\nsynchronous_standby_names = ''\n")

    def start(self) -> None:
        self.run(
            "pg_ctl", "-D", str(self.dir), "-l", str(self.scratch / f"{self.dir.name}.log"), "-w", "start"
        )

    def stop(self, mode: str = "immediate") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.run("pg_ctl", "-D", str(self.dir), "-m", mode, "-w", "stop")

    def promote(self) -> None:
        self.run("pg_ctl", "-D", str(self.dir), "-w", "promote")

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres", database="postgres")


@pytest.fixture
async def postgres_pair(scratch: Path) -> AsyncIterator[tuple[Postgres, Postgres]]:
    primary, standby = Postgres(scratch, "primary"), Postgres(scratch, "standby")
    try:
        primary.initdb()
        primary.start()
        standby.standby_of(primary)
        standby.start()
        await _until_sync_standby(primary)
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()


@pytest.fixture
def postgres_alone(scratch: Path) -> Iterator[Postgres]:
    server = Postgres(scratch, "alone")
    try:
        server.initdb()
        server.configure("synchronous_standby_names = ''\n")
        server.start()
        yield server
    finally:
        server.stop()


async def _until_sync_standby(primary: Postgres) -> None:
    deadline = time.monotonic() + 20
    conn = await primary.connect()
    try:
        while await conn.fetchval("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") != 1:
            assert time.monotonic() < deadline, "the standby did not become synchronous"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


# --- clients: a pharmacy's sockets, and patients posting requests ----------------------------


class Inbox:
    """A pharmacy's socket that, as a real client does, reconnects with ?after= when it closes."""

    def __init__(self, server: ServerProcess, account: Account) -> None:
        self.server = server
        self.account = account
        self.events: list[dict[str, Any]] = []
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.arrived = asyncio.Condition()

    async def run(self) -> None:
        after = 0  # a fresh account: everything from its first event on
        while True:
            try:
                async with open_ws(self.server, self.account, after=after) as ws:
                    await ws.send('{"type":"ping"}')  # its pong: the server has subscribed us
                    async for raw in ws:
                        event = json.loads(raw)
                        if event["type"] == "pong":
                            self.connected.set()
                        elif "event_id" in event:
                            async with self.arrived:
                                self.events.append(event)
                                after = event["event_id"]
                                self.arrived.notify_all()
            except (OSError, TimeoutError, WebSocketException):
                pass
            self.connected.clear()
            self.reconnects += 1
            await asyncio.sleep(0.2)

    def request_ids(self) -> list[int]:
        return [e["request_id"] for e in self.events if e["type"] == "new_request"]

    async def wait_for(self, request_ids: set[int], seconds: float) -> None:
        async with self.arrived:
            await asyncio.wait_for(
                self.arrived.wait_for(lambda: request_ids <= set(self.request_ids())), seconds
            )


@dataclass
class Load:
    """Patients posting requests to a pharmacy, one after another each, spread over servers. A
    request that fails is retried with its Idempotency-Key until it is acknowledged (201)."""

    servers: list[ServerProcess]
    patients: list[Account]
    pharmacy: Account
    acknowledged: list[int] = field(default_factory=list)
    failures: int = 0
    refusals: list[tuple[int, str]] = field(default_factory=list)  # (status, error code) of each
    stopping: bool = False
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def post(
        self, client: httpx.AsyncClient, server: ServerProcess, patient: Account, key: str | None = None
    ) -> int:
        key = key or str(uuid.uuid4())
        while True:
            try:
                response = await client.post(
                    f"{server.url}/medicine/request/",
                    data={"pharmacy": str(self.pharmacy.id), "quantity": "1", "medicine_name": "Amoxicillin"},
                    headers={**patient.headers, "Idempotency-Key": key},
                    timeout=5,
                )
                if response.status_code == 201:
                    request_id = int(response.json()["request_id"])
                    self.acknowledged.append(request_id)
                    self.progress.set()
                    return request_id
                assert response.status_code >= 500, response.text  # never a client error
                self.refusals.append((response.status_code, response.json()["error"]["code"]))
                assert response.headers.get("Retry-After"), "a refusal says when to try again"
            except httpx.TransportError:
                pass
            self.failures += 1
            await asyncio.sleep(0.1)

    async def patient(self, index: int) -> None:
        async with httpx.AsyncClient() as client:
            n = index
            while not self.stopping:
                await self.post(client, self.servers[n % len(self.servers)], self.patients[index])
                n += 1
                await asyncio.sleep(0.02)

    async def acknowledged_again(self, seconds: float) -> None:
        """A request acknowledged from now on, within `seconds`."""
        self.progress.clear()
        await asyncio.wait_for(self.progress.wait(), seconds)


@contextlib.asynccontextmanager
async def running(*coroutines: Any) -> AsyncIterator[list[asyncio.Task[Any]]]:
    tasks = [asyncio.create_task(c) for c in coroutines]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def assert_complete(inbox: Inbox, acknowledged: list[int]) -> None:
    """Every acknowledged request arrived, once, and the event ids have no gap."""
    ids = [e["event_id"] for e in inbox.events]
    assert ids == list(range(1, len(ids) + 1)), "event ids out of order, repeated or with a gap"
    arrived = inbox.request_ids()
    assert len(arrived) == len(set(arrived)), "a request arrived twice"
    assert set(acknowledged) <= set(arrived), (
        f"acknowledged but never delivered: {set(acknowledged) - set(arrived)}"
    )


@pytest.fixture
def two_servers(
    redis_set: RedisSet, postgres_alone: Postgres, tmp_path: Path
) -> Iterator[list[ServerProcess]]:
    env = {
        **ENV,
        "MEDREQ_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{postgres_alone.port}/postgres",
        "MEDREQ_REDIS_URL": redis_set.url(),
        "MEDREQ_JWT_SECRET": "failover-" + uuid.uuid4().hex,
    }
    servers = [ServerProcess(tmp_path / name, env=env) for name in ("a", "b")]
    try:
        for server in servers:  # one at a time: the first applies the migrations
            server.start()
        yield servers
    finally:
        for server in servers:
            if server.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    server.proc.send_signal(signal.SIGCONT)
            server.stop()


# --- the tests ----------------------------------------------------------------------------------


async def test_redis_master_killed_under_load_loses_nothing_acknowledged(
    redis_set: RedisSet, two_servers: list[ServerProcess]
) -> None:
    a, b = two_servers
    pharmacy = make_account(a.url, "pharmacy")
    patients = [make_account(server.url, "patient") for server in (a, b)]
    inboxes = [Inbox(server, pharmacy) for server in (a, b)]
    load = Load([a, b], patients, pharmacy)
    async with running(*(inbox.run() for inbox in inboxes)):
        for inbox in inboxes:
            await asyncio.wait_for(inbox.connected.wait(), 10)
        async with running(load.patient(0), load.patient(1)):
            await load.acknowledged_again(10)
            await asyncio.sleep(1)
            redis_set.kill(redis_set.master)  # under load: no shutdown, no warning
            await load.acknowledged_again(RECOVERY_SECONDS)
            await redis_set.wait_for_master(redis_set.replica)
            await asyncio.sleep(1.5)  # load on the new master
            load.stopping = True
        for inbox in inboxes:
            await inbox.wait_for(set(load.acknowledged), 15)
        for inbox in inboxes:
            assert_complete(inbox, load.acknowledged)
    assert len(load.acknowledged) > 20


@pytest.mark.parametrize("asleep", [False, True], ids=["b-awake", "b-asleep"])
async def test_a_request_posted_while_redis_changes_hands_reaches_every_server(
    redis_set: RedisSet, two_servers: list[ServerProcess], asleep: bool
) -> None:
    # A request is posted on server a right after the master died, before Sentinel promotes the
    # replica: its publish fails. The pharmacy's sockets stay open, and no later event comes to
    # fill a gap: the request reaches b's socket only because a nudges the others once Redis
    # answers, or b, reconnected, asks Redis what it missed. Asleep: b is stopped (SIGSTOP)
    # until the switch is over, so only the second can bring it.
    a, b = two_servers
    pharmacy = make_account(a.url, "pharmacy")
    patient = make_account(a.url, "patient")
    on_a, on_b = Inbox(a, pharmacy), Inbox(b, pharmacy)
    load = Load([a], [patient], pharmacy)
    async with running(on_a.run(), on_b.run()):
        for inbox in (on_a, on_b):
            await asyncio.wait_for(inbox.connected.wait(), 10)
        assert b.proc is not None
        if asleep:
            b.proc.send_signal(signal.SIGSTOP)
        redis_set.kill(redis_set.master)
        async with httpx.AsyncClient() as client:
            request_id = await asyncio.wait_for(load.post(client, a, patient), RECOVERY_SECONDS)
        await on_a.wait_for({request_id}, 5)  # a's own sockets at once
        await redis_set.wait_for_master(redis_set.replica)
        b.proc.send_signal(signal.SIGCONT)
        await on_b.wait_for({request_id}, 15)
        for inbox in (on_a, on_b):
            assert inbox.reconnects == 0, "delivered on the socket that stayed open, not by a resume"
            assert_complete(inbox, [request_id])


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "plain-path"])
async def test_postgres_primary_switch_under_load_loses_nothing_acknowledged(
    postgres_pair: tuple[Postgres, Postgres], tmp_path: Path, fast_path: bool
) -> None:
    primary, standby = postgres_pair
    url = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/postgres"
        "?target_session_attrs=read-write"
    )
    env = {
        **ENV,
        "MEDREQ_DATABASE_URL": url,
        "MEDREQ_PG_FAST_PATH": str(fast_path).lower(),
        "MEDREQ_JWT_SECRET": "failover-" + uuid.uuid4().hex,
    }
    # the second server has not met the pharmacy: its socket's handshake needs the database
    server, second = ServerProcess(tmp_path / "server", env=env), ServerProcess(tmp_path / "second", env=env)
    server.start()
    second.start()
    try:
        pharmacy = make_account(server.url, "pharmacy")
        patients = [make_account(server.url, "patient") for _ in range(2)]
        inbox = Inbox(server, pharmacy)
        load = Load([server], patients, pharmacy)
        async with running(inbox.run()), httpx.AsyncClient() as client:
            await asyncio.wait_for(inbox.connected.wait(), 10)
            async with running(load.patient(0), load.patient(1)):
                await load.acknowledged_again(10)
                await asyncio.sleep(1)
                await asyncio.to_thread(primary.stop, "immediate")  # as a crash: no shutdown checkpoint
                # no primary until the standby is promoted: a request is refused, to be retried...
                refused = await client.post(
                    f"{server.url}/medicine/request/",
                    data={"pharmacy": str(pharmacy.id), "quantity": "1", "medicine_name": "Insulin"},
                    headers={**patients[0].headers, "Idempotency-Key": "during-the-switch"},
                )
                assert (refused.status_code, refused.json()["error"]["code"]) == (503, "unavailable")
                assert int(refused.headers["Retry-After"]) >= 1
                # ... and a new socket is closed with 1013 (try again later), not 4401
                async with open_ws(second, pharmacy) as ws:
                    assert await close_code(ws) == CloseCode.TRY_AGAIN_LATER
                await asyncio.to_thread(standby.promote)
                await load.acknowledged_again(RECOVERY_SECONDS)
                await asyncio.sleep(1)
                load.stopping = True
            await load.post(client, server, patients[0], key="during-the-switch")  # the refused one
            # what SQLAlchemy's pool does after the switch: a new account, logged in, posts
            late = await asyncio.to_thread(make_account, server.url, "patient")
            await load.post(client, server, late)
            await inbox.wait_for(set(load.acknowledged), 15)
            assert_complete(inbox, load.acknowledged)
            async with open_ws(second, pharmacy, after=0) as ws:  # the socket, again: a full replay
                replayed = [e["request_id"] for e in await recv_events(ws, len(inbox.events))]
            assert replayed == inbox.request_ids()
        conn = await standby.connect()
        try:
            stored = {row[0] for row in await conn.fetch("SELECT id FROM medicine_requests")}
            assert await conn.fetchval("SELECT NOT pg_is_in_recovery()")
        finally:
            await conn.close()
        assert set(load.acknowledged) <= stored
        assert set(load.refusals) <= {(503, "unavailable")}, "the switch answered something else than 503"
    finally:
        server.stop()
        second.stop()
