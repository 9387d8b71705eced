"""Running a scenario: accounts, connections, the arrival process, churn, drain, report.

Phases, each bounded in time: set up accounts (register + log in) → open every live
connection → arrivals for ``duration`` seconds (with churn) → drain until every owed delivery
arrived or ``drain_timeout`` passed → close → remove the accounts → `Report`.

Accounts are registered as synthetic (PROTOCOL beyond; service/sandbox.py): no real patient ever
sees a simulated pharmacy, and each is removed with everything it made at the end, unless `keep`.
A server's rate limits are respected: every 429 waits its `Retry-After` and is counted, unless
the scenario says it needs them off. A connection cap met during setup stops the run at once
(`limits`): it would only time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from medreq.client import MedreqClient, MedreqError, RateLimited

from .accounts import NewAccount, sign_up_client
from .actors import Actor, Patient, Pharmacy, RunState
from .chaos import ChaosProxy
from .ledger import Ledger
from .limits import SetupError, connection_limit_error, connection_refusal, rate_limit_error
from .report import Report, build_report
from .scenario import Scenario
from .server import ServerProcess, cpu_seconds, raise_fd_limit

T = TypeVar("T")
#: Called about four times a second with the phase name and `Ledger.snapshot()` numbers.
ProgressCallback = Callable[[str, dict[str, Any]], None]


async def run_scenario(
    scenario: Scenario,
    base_url: str,
    *,
    progress: ProgressCallback | None = None,
    server_pid: int | None = None,
    keep: bool = False,
) -> Report:
    """Run ``scenario`` against the server at ``base_url`` (already checked to be allowed);
    remove its synthetic accounts at the end unless ``keep``."""
    raise_fd_limit(2 * scenario.connections + 1024)
    rng = random.Random(scenario.seed)
    ledger = Ledger()
    budget = scenario.setup_timeout + scenario.duration + scenario.drain_timeout + 30
    state = RunState(scenario, ledger, rng, secrets.token_hex(3), time.monotonic() + budget)
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=400, max_keepalive_connections=400), retries=0
    )
    proxy: ChaosProxy | None = None
    clients: list[MedreqClient] = []
    actors: list[Actor] = []
    actor_tasks: list[asyncio.Task[None]] = []
    phase = "setup"
    started = time.monotonic()
    removed: int | None = None
    cpu_before = cpu_seconds(server_pid) if server_pid else None
    ticker = asyncio.create_task(_tick(lambda: phase, ledger, progress)) if progress else None
    try:
        if scenario.churn.share > 0 and scenario.churn.mode == "cut":
            host, port = _host_port(base_url)
            proxy = await ChaosProxy(host, port).start()
        actors = await _create_actors(state, base_url, proxy, transport, clients)
        accounts_seconds = time.monotonic() - started
        phase = "connect"
        actor_tasks = [asyncio.create_task(actor.run()) for actor in actors]
        await _wait_online(state, actors, scenario.setup_timeout)
        state.setting_up = False
        connect_seconds = time.monotonic() - started - accounts_seconds
        phase = "run"
        run_started = time.monotonic()
        churner = asyncio.create_task(_cut_loop(state, proxy, actors)) if proxy else None
        await _arrivals(state, [a for a in actors if isinstance(a, Patient)], _pharmacy_ids(actors))
        run_seconds = time.monotonic() - run_started
        phase = "drain"
        state.draining.set()
        if churner is not None:
            churner.cancel()
        drain_started = time.monotonic()
        await _drain(state, scenario.drain_timeout)
        drain_seconds = time.monotonic() - drain_started
    finally:
        phase = "close"
        state.stopped.set()
        if ticker is not None:
            ticker.cancel()
        await _settle([*actor_tasks, *state.tasks], 15)
        if not keep:
            phase = "cleanup"
            removed = await _remove_accounts(state, clients)
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        await transport.aclose()
        if proxy is not None:
            await proxy.close()
    server_cpu = cpu_seconds(server_pid) - cpu_before if server_pid and cpu_before is not None else None
    report = build_report(
        scenario,
        state,
        base_url=base_url,
        timings={
            "accounts": accounts_seconds,
            "connect": connect_seconds,
            "run": run_seconds,
            "drain": drain_seconds,
        },
        server_cpu=server_cpu,
        cuts=proxy.cuts if proxy else 0,
    )
    report.accounts = {"synthetic": len(clients), "removed": removed}
    return report


# --- setup ----------------------------------------------------------------------------------------


async def _create_actors(
    state: RunState,
    base_url: str,
    proxy: ChaosProxy | None,
    transport: httpx.AsyncHTTPTransport,
    clients: list[MedreqClient],
) -> list[Actor]:
    scenario = state.scenario
    password = secrets.token_urlsafe(12)
    limit = asyncio.Semaphore(scenario.setup_concurrency)
    plan: list[tuple[type[Actor], int, bool]] = []
    for kind, count in ((Pharmacy, scenario.pharmacies.count), (Patient, scenario.patients.count)):
        churners = set(state.rng.sample(range(count), round(count * scenario.churn.share)))
        plan += [(kind, index, index in churners) for index in range(count)]

    async def make(kind: type[Actor], index: int, churns: bool) -> Actor:
        url = proxy.url if proxy is not None and churns else base_url
        client = MedreqClient(url, transport=transport, timeout=20.0)
        clients.append(client)
        new = NewAccount(
            username=f"sim-{state.run_id}-{kind.role[:2]}{index}",
            password=password,
            role=kind.role,
            name=f"Sim {'Pharmacy' if kind is Pharmacy else 'Patient'} {index}",
            phone="+1-555-0199",
            synthetic=True,
        )
        async with limit:
            account = await sign_up_client(client, new, attempt=lambda call: _retry(call, state, setup=True))
        return kind(state, client, account.id, churns=churns)

    jobs = [asyncio.create_task(make(kind, index, churns)) for kind, index, churns in plan]
    try:
        return list(await asyncio.wait_for(asyncio.gather(*jobs), scenario.setup_timeout))
    except TimeoutError:
        done = sum(1 for job in jobs if job.done() and not job.cancelled() and job.exception() is None)
        raise SetupError(
            f"only {done} of {len(jobs)} accounts were set up within {scenario.setup_timeout:g}s"
        ) from None
    except MedreqError as exc:
        refusal = connection_refusal(exc)
        if refusal is not None:
            raise connection_limit_error(scenario, refusal) from None
        raise SetupError(f"setting up accounts failed: {exc.code}: {exc.message}") from exc
    finally:
        for job in jobs:
            job.cancel()


async def _retry(
    call: Callable[[], Awaitable[T]], state: RunState, attempts: int = 5, *, setup: bool = False
) -> T:
    """Setup and cleanup calls go direct or through the chaos proxy: retry transport failures
    (``attempts`` times), and wait out rate limits for as long as the server asks (counted; the
    phase's own deadline bounds it), except in the ``setup`` of a scenario that needs them off."""
    failures = 0
    while True:
        try:
            return await call()
        except RateLimited as exc:
            if setup and not state.scenario.server.rate_limit:
                raise rate_limit_error(state.scenario, exc) from None
            state.ledger.error(exc.code)
            await asyncio.sleep(max(0.05, exc.retry_after))
        except MedreqError as exc:
            failures += 1
            if exc.code not in ("transport_error", "connection_lost") or failures >= attempts:
                raise
            await asyncio.sleep(0.1 * failures)


async def _remove_accounts(state: RunState, clients: list[MedreqClient]) -> int:
    """Remove every synthetic account of the run with all it made; how many went."""
    limit = asyncio.Semaphore(state.scenario.setup_concurrency)

    async def remove(client: MedreqClient) -> bool:
        if client.account is None:
            return False
        async with limit:
            try:
                await _retry(client.remove_synthetic_account, state)
            except MedreqError as exc:
                state.ledger.error(f"cleanup_{exc.code}")
                return False
        return True

    jobs = [asyncio.create_task(remove(client)) for client in clients]
    done, pending = await asyncio.wait(jobs, timeout=state.scenario.setup_timeout) if jobs else (set(), set())
    for job in pending:
        job.cancel()
    return sum(1 for job in done if not job.cancelled() and job.exception() is None and job.result())


async def _wait_online(state: RunState, actors: list[Actor], limit: float) -> None:
    """Until every actor is online; a connection cap's refusal meanwhile stops at once."""
    waiters: list[asyncio.Future[Any]] = [
        asyncio.ensure_future(asyncio.gather(*(actor.online.wait() for actor in actors))),
        asyncio.ensure_future(state.refused.wait()),
    ]
    try:
        await asyncio.wait(waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)  # retrieved: no "never retrieved"
    online = sum(actor.online.is_set() for actor in actors)
    if state.refusal is not None:
        raise connection_limit_error(state.scenario, state.refusal, opened=online)
    if online < len(actors):
        raise SetupError(f"only {online} of {len(actors)} connections opened within {limit:g}s")


def _pharmacy_ids(actors: list[Actor]) -> list[int]:
    return [actor.id for actor in actors if isinstance(actor, Pharmacy)]


def _host_port(base_url: str) -> tuple[str, int]:
    parsed = httpx.URL(base_url)
    return parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)


# --- the run --------------------------------------------------------------------------------------


async def _arrivals(state: RunState, patients: list[Patient], pharmacies: list[int]) -> None:
    """Open loop: requests arrive on schedule whether or not earlier ones finished."""
    arrivals, rng = state.scenario.arrivals, state.rng
    start = time.monotonic()
    end = start + state.scenario.duration
    next_at = start
    sent = 0
    posting: set[asyncio.Task[None]] = set()
    while sent < arrivals.max_requests:
        next_at += arrivals.gap(next_at - start, rng)
        if next_at >= end:
            break
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(posting) >= arrivals.max_in_flight:
            state.ledger.skipped += 1
            continue
        sent += 1
        asked = rng.sample(pharmacies, state.scenario.requests.pharmacies)
        task = asyncio.create_task(rng.choice(patients).post(asked))
        posting.add(task)
        task.add_done_callback(posting.discard)
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
    await asyncio.sleep(max(0.0, end - time.monotonic()))


async def _cut_loop(state: RunState, proxy: ChaosProxy, actors: list[Actor]) -> None:
    churn = state.scenario.churn
    churners = sum(actor.churns for actor in actors)
    if churners == 0:
        return
    rate = churners / churn.interval  # cuts per second over all churning clients
    while not state.draining.is_set():
        await asyncio.sleep(state.rng.expovariate(rate))
        proxy.cut(state.rng)


async def _drain(state: RunState, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not state.tasks and state.ledger.in_flight() == 0:
            return
        await asyncio.sleep(0.05)


async def _settle(tasks: list[asyncio.Task[None]], limit: float) -> None:
    """Cancel ``tasks`` (closing their connections) and wait, at most ``limit`` seconds, for them."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=limit)


async def _tick(phase: Callable[[], str], ledger: Ledger, progress: ProgressCallback) -> None:
    while True:
        progress(phase(), ledger.snapshot())
        await asyncio.sleep(0.25)


async def run_embedded(
    scenario: Scenario, *, progress: ProgressCallback | None = None, env: dict[str, str] | None = None
) -> Report:
    """Start a server subprocess (free port, temporary data dir, rate limits off), run, stop it
    (its accounts go with its data dir)."""
    raise_fd_limit(2 * scenario.connections + 1024)
    server = ServerProcess(env=env)
    await asyncio.to_thread(server.start)
    try:
        report = await run_scenario(scenario, server.url, progress=progress, server_pid=server.pid, keep=True)
        report.embedded = True
        if not report.ok or report.errors.get("internal"):
            tail = server.log().strip().splitlines()[-15:]
            if tail:
                report.notes.append("embedded server log (last lines):\n" + "\n".join(tail))
        return report
    finally:
        await asyncio.to_thread(server.cleanup)
