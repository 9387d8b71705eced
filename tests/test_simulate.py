"""`medreq simulate`: scenario files are validated, and a real run delivers everything exactly once."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import medreq.cli.simulate  # noqa: F401  (registers `simulate` and `bench` on the app)
from medreq.cli.app import app
from medreq.simulate import ScenarioError, TargetRefused, check_target, load_scenario
from medreq.simulate.actors import Actor
from medreq.simulate.server import ServerProcess as SimServer

from .conftest import ServerProcess, make_account

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))


def test_smoke_scenario_delivers_every_request_and_answer_exactly_once() -> None:
    result = CliRunner().invoke(
        app, ["simulate", str(ROOT / "scenarios" / "smoke.toml"), "--embedded", "--json", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert (report["lost"], report["duplicated"], report["unexpected"]) == (0, 0, 0)
    counts = report["counts"]
    assert counts["sent"] > 0
    assert counts["created"] == counts["delivered"] == counts["sent"]
    assert counts["answered"] == counts["answer_delivered"] > 0
    assert counts["answered_over_ws"] > 0 and counts["answered_over_rest"] > 0
    assert counts["voluntary_drops"] > 0  # the smoke scenario churns, and still loses nothing
    assert report["latency_ms"]["request_to_pharmacy"]["count"] == counts["delivered"]
    assert report["latency_ms"]["request_to_pharmacy"]["p99"] is not None


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenarios_are_valid(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.target is not None
    check_target(scenario.target)  # every shipped target is loopback


def test_bad_scenario_gives_a_clear_error_and_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\nduration = 5\n[patients]\ncount = 0\n[pharmacies]\ncount = 2\n'
        "[arrivals]\nrate = -1\nramp = 3\n"
        '[pharmacy]\nthink_time = { distribution = "uniform", min = 2, max = 1 }\n'
    )
    result = CliRunner().invoke(app, ["simulate", str(bad), "--embedded", "--no-progress"])
    assert result.exit_code == 2
    message = result.output
    assert "bad.toml: invalid scenario" in message
    assert "patients.count: Input should be greater than or equal to 1" in message
    assert "arrivals.rate: Input should be greater than 0" in message
    assert "arrivals.ramp: unknown field" in message
    assert "pharmacy.think_time: max must be >= min" in message
    assert "Traceback" not in message


def test_unreadable_scenarios_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(broken)


def test_remote_targets_are_refused_unless_allowed() -> None:
    result = CliRunner().invoke(
        app, ["simulate", str(ROOT / "scenarios" / "smoke.toml"), "--url", "http://203.0.113.7:8000"]
    )
    assert result.exit_code == 2
    assert "refusing to load 203.0.113.7" in result.output
    with pytest.raises(TargetRefused):
        check_target("ftp://127.0.0.1/")
    assert check_target("http://[::1]:8000/") == "http://[::1]:8000"
    assert check_target("http://203.0.113.7:8000", allow_remote=True) == "http://203.0.113.7:8000"


def test_a_run_against_a_rate_limited_server_waits_and_leaves_no_trace(
    server_factory: Any, tmp_path: Path
) -> None:
    """Tight limits: setup meets 429s, waits their Retry-After, passes; then every synthetic
    account is removed with all it made, and real accounts never saw them."""
    server: ServerProcess = server_factory(env={"MEDREQ_REST_RATE": "10", "MEDREQ_REST_BURST": "5"})
    real = make_account(server.url, "patient")
    real_pharmacy = make_account(server.url, "pharmacy")
    smoke = str(ROOT / "scenarios" / "smoke.toml")
    result = CliRunner().invoke(app, ["simulate", smoke, "--url", server.url, "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["counts"]["rate_limited_waits"] > 0
    assert report["accounts"] == {"synthetic": 9, "removed": 9}
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        assert db.execute("select count(*) from accounts where synthetic").fetchone() == (0,)
        assert db.execute("select count(*) from medicine_requests").fetchone() == (0,)
        assert db.execute("select count(*) from accounts").fetchone() == (2,)
    finally:
        db.close()
    assert not [p for p in (server.data_dir / "media").rglob("*.*")]

    kept = CliRunner().invoke(app, ["simulate", smoke, "--url", server.url, "--keep", "--no-progress"])
    assert kept.exit_code == 0, kept.output
    assert "kept the 9 synthetic accounts" in kept.stdout
    listed = httpx.get(f"{server.url}/pharmacies/", headers=real.headers).json()["results"]
    assert [p["id"] for p in listed] == [real_pharmacy.id]


def test_a_folder_named_medreq_in_the_working_directory_does_not_shadow_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`medreq bench` and `simulate --embedded` from the folder above a checkout named medreq."""
    (tmp_path / "medreq").mkdir()
    (tmp_path / "medreq" / "README.md").write_text("a checkout, not the installed package\n")
    monkeypatch.chdir(tmp_path)
    with SimServer() as server:
        assert httpx.get(f"{server.url}/health").status_code == 200


async def test_a_churned_session_resumes_after_the_last_event_handled_not_the_last_queued() -> None:
    """The race behind one "lost 1" in a CI run: a live connection queues events as they
    arrive; when a churning actor's session timer fired with an event queued but not yet
    handed out, the next session resumed from the connection's `last_event_id`, past it."""

    class Queued:
        """A live connection that hands out events 1 and 2 and has already queued 3."""

        last_event_id = 3

        def __init__(self) -> None:
            self.events = [
                SimpleNamespace(event_id=1),
                SimpleNamespace(event_id=None),
                SimpleNamespace(event_id=2),
            ]

        def __aiter__(self) -> Queued:
            return self

        async def __anext__(self) -> Any:
            if self.events:
                return self.events.pop(0)
            await asyncio.sleep(3600)  # event 3 is never handed out before the timer fires

    class Recorder(Actor):
        role = "pharmacy"

        def handle(self, event: object) -> None:
            handled.append(event)

    handled: list[Any] = []
    state = SimpleNamespace(rng=random.Random(0), draining=asyncio.Event())
    actor = Recorder(state, client=None, account_id=1, churns=True)  # type: ignore[arg-type]
    assert actor.handled_through == 0  # a fresh account replays from its first event
    dropped = await actor._listen(Queued(), session=0.05)  # type: ignore[arg-type]
    assert dropped is True and len(handled) == 3
    assert actor.handled_through == 2  # the next session asks for ?after=2: event 3 comes again


def scenario_file(tmp_path: Path, patients: int, pharmacies: int, server: str) -> str:
    path = tmp_path / "needs.toml"
    path.write_text(
        f'name = "needs"\nduration = 2\nsetup_concurrency = 1\nsetup_timeout = 120\n'
        f"[patients]\ncount = {patients}\n[pharmacies]\ncount = {pharmacies}\n"
        f"[arrivals]\nrate = 2\n[server]\n{server}\n"
    )
    return str(path)


def synthetic_accounts(server: ServerProcess) -> int:
    db = sqlite3.connect(server.data_dir / "medreq.db")
    try:
        return int(db.execute("select count(*) from accounts where synthetic").fetchone()[0])
    finally:
        db.close()


def test_a_scenario_over_the_per_address_cap_stops_at_once_naming_the_limit_and_its_flag(
    server_factory: Any, tmp_path: Path
) -> None:
    """12 WebSockets against a server that allows 8 per address: the first 503 stops the run
    (not a 120 s wait for connections that cannot open), and the message quotes the server's
    limit and says which flag lifts it; the accounts it made are removed."""
    server: ServerProcess = server_factory(env={"MEDREQ_MAX_CONNECTIONS_PER_CLIENT": "8"})
    needs = scenario_file(tmp_path, 10, 2, "max_connections_per_client = 0")
    result = CliRunner().invoke(app, ["simulate", needs, "--url", server.url, "--no-progress"])
    assert result.exit_code == 3, result.output
    message = " ".join(result.stderr.split())
    assert "setup failed: the server refused a connection: 503 unavailable, Retry-After 5 s" in message
    assert "this server allows 8 per address" in message  # the server's words: which cap
    assert "of 12 were open" in message  # stopped while connecting, not after the setup timeout
    assert "within 120s" not in message
    assert "its file says it needs max_connections_per_client = 0, no cap" in message
    assert "medreq serve --max-connections-per-client 0" in message
    assert "MEDREQ_MAX_CONNECTIONS_PER_CLIENT=0" in message
    assert "--embedded" in message
    assert synthetic_accounts(server) == 0


def test_a_scenario_that_needs_rate_limits_off_stops_at_the_first_429(
    server_factory: Any, tmp_path: Path
) -> None:
    server: ServerProcess = server_factory(env={"MEDREQ_REST_RATE": "0.5", "MEDREQ_REST_BURST": "2"})
    needs = scenario_file(tmp_path, 4, 2, "rate_limit = false")
    result = CliRunner().invoke(app, ["simulate", needs, "--url", server.url, "--no-progress"])
    assert result.exit_code == 3, result.output
    message = " ".join(result.stderr.split())
    assert "setup failed: the server rate-limits sign-ups: 429 rate_limited, Retry-After" in message
    assert "registers and logs in 6 accounts (12 calls from this address)" in message
    assert "medreq serve --no-rate-limit (or MEDREQ_RATE_LIMIT_ENABLED=false)" in message
    assert synthetic_accounts(server) == 0


def test_shipped_scenarios_that_go_past_a_default_server_say_so() -> None:
    """The README's promise: a scenario runs against a default server or its file names the
    limit it needs (a default server allows 256 connections per address)."""
    for path in SCENARIOS:
        scenario = load_scenario(path)
        fits = scenario.connections < 200 and scenario.server.max_connections_per_client is None
        assert fits or scenario.server.max_connections_per_client == 0, path.name
        assert scenario.connections < 1000 or not scenario.server.rate_limit, path.name


def test_shopping_around_against_a_default_server_delivers_each_choice_exactly_once(server_factory: Any) -> None:
    """scenarios/shopping-around.toml (docs/protocol.md §3, groups) against a default server, rate limits
    on: every request goes to 3 pharmacies, each gets its `new_request` once; the patient takes the
    first acceptance, the chosen pharmacy gets `request_chosen` once and every other open one
    `request_cancelled` once, across reconnect churn."""
    server: ServerProcess = server_factory()
    path = str(ROOT / "scenarios" / "shopping-around.toml")
    result = CliRunner().invoke(app, ["simulate", path, "--url", server.url, "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert (report["lost"], report["duplicated"], report["unexpected"]) == (0, 0, 0)
    counts = report["counts"]
    assert counts["groups"] > 0
    assert counts["sent"] == counts["created"] == counts["delivered"] == 3 * counts["groups"]
    assert 0 < counts["chosen"] == counts["chosen_delivered"] <= counts["groups"]
    assert 0 < counts["cancels_owed"] == counts["cancel_delivered"]
    assert counts["failed_choices"] == counts["failed_answers"] == 0
    assert counts["voluntary_drops"] > 0  # it churns, and still loses nothing
    assert report["accounts"] == {"synthetic": 11, "removed": 11}


def test_the_ledger_catches_a_lost_a_duplicated_and_a_misdirected_choice_event() -> None:
    """The accounting the shopping-around run relies on would fail if the server lost, repeated or
    misrouted a `request_chosen` or `request_cancelled`."""
    from medreq.simulate.ledger import Ledger

    ledger = Ledger()
    group = ledger.request_started("k1", patient_id=1, pharmacy_ids=[10, 11, 12])
    ledger.request_created(group, [100, 101, 102])
    for pharmacy, request_id in ((10, 100), (11, 101), (12, 102)):
        assert ledger.request_delivered(pharmacy, request_id, "sim:k1", asked_pharmacies=3) is not None
    accepted, _open, rejected = group.members
    ledger.answer_confirmed(accepted, "ACCEPTED")
    ledger.answer_confirmed(rejected, "REJECTED")
    assert ledger.in_flight() == 2  # the two answers, not yet at the patient
    ledger.choice_confirmed(group, accepted)
    assert ledger.lost() == {"requests": 0, "answers": 2, "chosen": 1, "cancelled": 1}
    ledger.chosen_delivered(10, 100)
    ledger.cancel_delivered(11, 101, "another_pharmacy_chosen")
    ledger.cancel_delivered(11, 101, "another_pharmacy_chosen")  # a second one: duplicated
    ledger.cancel_delivered(12, 102, "another_pharmacy_chosen")  # to the rejected one: misdirected
    assert ledger.lost()["chosen"] == ledger.lost()["cancelled"] == 0
    assert ledger.duplicated() == {"requests": 0, "answers": 0, "chosen": 0, "cancelled": 1}
    assert ledger.misdirected() == 1
    assert ledger.cancel_delivered(11, 101, "patient_cancelled") is None  # the patients never cancel
    assert ledger.request_delivered(10, 100, "sim:k1", asked_pharmacies=1) is None  # a repeat
    assert ledger.unexpected == 2  # the wrong reason, and a count that told the pharmacy 1 of 3


def test_a_scenario_cannot_ask_more_pharmacies_than_it_has(tmp_path: Path) -> None:
    bad = tmp_path / "greedy.toml"
    bad.write_text(
        'name = "greedy"\nduration = 5\n[patients]\ncount = 2\n[pharmacies]\ncount = 2\n'
        '[arrivals]\nrate = 1\n[requests]\npharmacies = 3\nchoose = "first_accepted"\n'
    )
    with pytest.raises(ScenarioError, match=r"requests.pharmacies \(3\) is more than pharmacies.count \(2\)"):
        load_scenario(bad)
