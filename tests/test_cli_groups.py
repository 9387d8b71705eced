"""Asking several pharmacies at once from the CLI (docs/protocol.md §3, groups): `medreq request` with
`--pharmacy` repeated, `medreq requests --group`, `medreq choose`, and what `medreq listen`
prints of `request_chosen` and `request_cancelled` with its reason; against a real server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from medreq.cli import app

from .conftest import Account, ServerProcess, make_account

pytestmark = [pytest.mark.shared_server, pytest.mark.timeout(60)]

Invoke = Callable[..., Result]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("MEDREQ_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("MEDREQ_PROFILE", raising=False)
    monkeypatch.delenv("MEDREQ_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return invoke


def log_in(cli: Invoke, server: ServerProcess, account: Account, profile: str) -> None:
    result = cli(
        "login", "--url", server.url, "-u", account.username, "--password-stdin", "-P", profile,
        input=account.password + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def group_json(cli: Invoke, group: int) -> dict[int, dict[str, object]]:
    listed = cli("requests", "--group", str(group), "-P", "alice", "--json")
    assert listed.exit_code == 0, listed.output
    return {int(r["id"]): r for r in json.loads(listed.stdout)}


def test_ask_three_pharmacies_choose_one_and_each_pharmacy_hears_its_outcome(
    cli: Invoke, server: ServerProcess
) -> None:
    patient = make_account(server.url, "patient", "Alice")
    first, second, third = (make_account(server.url, "pharmacy", f"Shop {n}") for n in "ABC")
    log_in(cli, server, patient, "alice")
    for account, profile in ((first, "a"), (second, "b"), (third, "c")):
        log_in(cli, server, account, profile)

    sent = cli(
        "request", "--pharmacy", str(first.id), "--pharmacy", str(second.id), "--pharmacy", str(third.id),
        "-q", "2", "--medicine", "Salbutamol", "-P", "alice",
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    other = cli(
        "request", "--pharmacy", str(first.id), "--pharmacy", str(second.id), "-q", "1",
        "--medicine", "Other", "-P", "alice", "--json",
    )  # fmt: skip
    created = json.loads(other.stdout)
    assert created["group"] is not None and len(created["requests"]) == 2
    listed = json.loads(cli("requests", "-P", "alice", "--json").stdout)
    group = next(r["group"] for r in listed if r["medicine_name"] == "Salbutamol")
    members = group_json(cli, group)
    assert len(members) == 3 and {r["group"] for r in members.values()} == {group}
    by_shop = {int(r["pharmacy"]["id"]): rid for rid, r in members.items()}  # type: ignore[index]
    ask_a, ask_b, ask_c = by_shop[first.id], by_shop[second.id], by_shop[third.id]
    assert f"Request group {group} sent to 3 pharmacies" in sent.output
    for request_id, shop in ((ask_a, first), (ask_b, second), (ask_c, third)):
        assert f"request {request_id} → {shop.name} (PENDING)" in sent.output
    assert f"medreq requests --group {group}" in sent.output

    offer = cli("respond", str(ask_a), "--accept", "--price", "12.5", "--currency", "EUR", "-P", "a")
    assert offer.exit_code == 0, offer.output
    assert cli("respond", str(ask_c), "--reject", "-m", "none left", "-P", "c").exit_code == 0
    refused = cli("choose", str(ask_c), "-P", "alice")  # a rejected answer cannot be taken
    assert refused.exit_code == 1 and refused.stderr.startswith("error: conflict: ")

    chose = cli("choose", str(ask_a), "-P", "alice")
    assert chose.exit_code == 0, chose.output
    assert f"Chose request {ask_a} at {first.name} (ACCEPTED)" in chose.output
    members = group_json(cli, group)
    assert members[ask_a]["chosen"] is True and members[ask_a]["status"] == "ACCEPTED"
    assert members[ask_a]["response"]["price"] == "12.50"  # type: ignore[index]
    assert (members[ask_b]["status"], members[ask_b]["cancel_reason"]) == (
        "CANCELLED",
        "another_pharmacy_chosen",
    )
    assert (members[ask_c]["status"], members[ask_c]["cancel_reason"]) == ("REJECTED", None)
    table = cli("requests", "--group", str(group), "-P", "alice")
    assert "Group" in table.stdout and "✓ chosen" in table.stdout
    assert "another pharmacy" in " ".join(table.stdout.split())
    assert cli("choose", str(ask_a), "-P", "alice").exit_code == 0  # the same choice again: fine

    heard_a = cli("listen", "--after", "0", "--count", "4", "--timeout", "15", "-P", "a")
    assert heard_a.exit_code == 0, heard_a.output
    assert f"request {ask_a} from Alice" in heard_a.stdout
    assert "asked 3 pharmacies, the patient picks one" in heard_a.stdout
    assert f"request_chosen request {ask_a} chosen: the patient takes your offer" in heard_a.stdout
    heard_b = cli("listen", "--after", "0", "--count", "3", "--timeout", "15", "-P", "b")
    assert heard_b.exit_code == 0, heard_b.output
    assert f"request {ask_b} cancelled: the patient chose another pharmacy" in " ".join(
        heard_b.stdout.split()
    )
    raw = cli("listen", "--after", "0", "--count", "3", "--timeout", "15", "--json", "-P", "b")
    events = [json.loads(line) for line in raw.stdout.splitlines()]
    cancelled = [e for e in events if e["type"] == "request_cancelled"]
    assert [(e["request_id"], e["reason"]) for e in cancelled] == [(ask_b, "another_pharmacy_chosen")]
    # the pharmacy never learns who else was asked: its view of the request has no group
    seen = httpx.get(f"{server.url}/medicine/request/{ask_b}/", headers=second.headers).json()
    assert seen["group"] is None and seen["asked_pharmacies"] == 3


def test_requests_group_must_be_a_positive_number(cli: Invoke, server: ServerProcess) -> None:
    log_in(cli, server, make_account(server.url, "patient"), "alice")
    result = cli("requests", "--group", "0", "-P", "alice")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
