"""The final report of a simulation (as a dict for ``--json``, or a rich table) and the live view."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from .actors import RunState
    from .scenario import Scenario


@dataclass
class Report:
    scenario: str
    target: str
    embedded: bool
    counts: dict[str, int]
    lost: dict[str, int]
    duplicated: dict[str, int]
    unexpected: int
    latency_ms: dict[str, dict[str, Any]]
    errors: dict[str, int]
    timings: dict[str, float]
    server_cpu_seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    # synthetic accounts made, and how many were removed at the end (None: kept)
    accounts: dict[str, int | None] = field(default_factory=dict)

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    @property
    def duplicated_total(self) -> int:
        return sum(self.duplicated.values())

    @property
    def failed(self) -> int:
        return (
            self.counts.get("failed_requests", 0)
            + self.counts.get("failed_answers", 0)
            + self.counts.get("failed_choices", 0)
        )

    @property
    def ok(self) -> bool:
        """Nothing lost, duplicated, misrouted, and every operation eventually succeeded."""
        return (
            self.lost_total == 0 and self.duplicated_total == 0 and self.unexpected == 0 and self.failed == 0
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "target": self.target,
            "embedded": self.embedded,
            "ok": self.ok,
            "lost": self.lost_total,
            "duplicated": self.duplicated_total,
            "unexpected": self.unexpected,
            "lost_by_kind": self.lost,
            "duplicated_by_kind": self.duplicated,
            "counts": self.counts,
            "latency_ms": self.latency_ms,
            "errors": self.errors,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "server_cpu_seconds": None
            if self.server_cpu_seconds is None
            else round(self.server_cpu_seconds, 3),
            "accounts": self.accounts,
            "notes": self.notes,
        }

    def render(self) -> Group:
        verdict = (
            Text("OK: every request and answer (and choice) arrived exactly once", style="bold green")
            if self.ok
            else Text(
                f"FAILED: lost {self.lost_total}, duplicated {self.duplicated_total}, "
                f"unexpected {self.unexpected}, failed operations {self.failed}",
                style="bold red",
            )
        )
        counts = Table(title=f"{self.scenario} → {self.target}", show_header=False, box=None)
        for key, value in self.counts.items():
            counts.add_row(key.replace("_", " "), str(value))
        counts.add_row("lost", f"{self.lost_total}  {self.lost}")
        counts.add_row("duplicated", f"{self.duplicated_total}  {self.duplicated}")
        counts.add_row("unexpected", str(self.unexpected))
        if self.server_cpu_seconds is not None:
            counts.add_row("server CPU", f"{self.server_cpu_seconds:.2f} s")
        timings = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
        counts.add_row("timings", timings)
        latency = Table(title="latency (ms)")
        for column in ("", "count", "p50", "p90", "p99", "max"):
            latency.add_column(column, justify="right" if column else "left")
        for name, stats in self.latency_ms.items():
            latency.add_row(name, *(_fmt(stats.get(k)) for k in ("count", "p50", "p90", "p99", "max")))
        parts: list[Any] = [counts, latency]
        if self.errors:
            errors = Table(title="errors by code (retried ones included)")
            errors.add_column("code")
            errors.add_column("count", justify="right")
            for code, count in sorted(self.errors.items(), key=lambda item: -item[1]):
                errors.add_row(code, str(count))
            parts.append(errors)
        parts += [Text(note, style="dim") for note in [*self.notes, *self._account_note()]]
        parts.append(verdict)
        return Group(*parts)


    def _account_note(self) -> list[str]:
        made, removed = self.accounts.get("synthetic"), self.accounts.get("removed")
        if self.embedded or made is None:
            return []
        if removed is None:
            return [f"kept the {made} synthetic accounts of this run (--keep); other patients never see them"]
        return [f"removed {removed} of {made} synthetic accounts and everything they made"]


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def build_report(
    scenario: Scenario,
    state: RunState,
    *,
    base_url: str,
    timings: dict[str, float],
    server_cpu: float | None,
    cuts: int,
) -> Report:
    ledger = state.ledger
    counts = {
        "patients": scenario.patients.count,
        "pharmacies": scenario.pharmacies.count,
        "sent": ledger.counts["sent"],
        "created": ledger.counts["created"],
        "delivered": ledger.counts["delivered"],
        "answered": ledger.counts["answered"],
        "answer_delivered": ledger.counts["answer_delivered"],
        "accepted": ledger.counts["answered_accepted"],
        "rejected": ledger.counts["answered_rejected"],
        "answered_over_ws": ledger.counts["answered_over_ws"],
        "answered_over_rest": ledger.counts["answered_over_rest"],
        "answered_with_audio": ledger.counts["answered_with_audio"],
        "unanswered": ledger.unanswered(),
        "failed_requests": ledger.counts["failed_requests"],
        "failed_answers": ledger.counts["failed_answers"],
        "skipped_by_generator": ledger.skipped,
        "voluntary_drops": state.drops,
        "proxy_cuts": cuts,
        "auto_reconnects": state.reconnects,
        "redelivered_dropped_by_client": state.redelivered_dropped,
        "rate_limited_waits": ledger.errors["rate_limited"],
    }
    if scenario.requests.pharmacies > 1:  # asking several pharmacies at once (docs/protocol.md §3, groups)
        counts |= {
            "groups": ledger.counts["groups"],
            "chosen": ledger.counts["chosen"],
            "chosen_delivered": ledger.counts["chosen_delivered"],
            "cancels_owed": ledger.cancels_owed(),
            "cancel_delivered": ledger.counts["cancel_delivered"],
            "answers_superseded": ledger.counts["answers_superseded"],
            "failed_choices": ledger.counts["failed_choices"],
        }
    notes = []
    if ledger.skipped:
        notes.append(
            f"{ledger.skipped} arrivals were skipped: max_in_flight POSTs were already open "
            "(the server or the generator could not keep up)."
        )
    if ledger.errors["rate_limited"]:
        notes.append(
            f"the server rate-limited {ledger.errors['rate_limited']} calls (429): each waited its "
            "Retry-After and was retried"
        )
    if run := timings.get("run"):
        notes.append(f"offered {ledger.counts['sent'] / run:.1f} requests/s over {run:.1f}s")
    return Report(
        scenario=scenario.name,
        target=base_url,
        embedded=False,
        counts=counts,
        lost=ledger.lost(),
        duplicated=ledger.duplicated(),
        unexpected=ledger.unexpected + ledger.misdirected(),
        latency_ms={
            "request_to_pharmacy": ledger.notify_latency.summary(),
            "created_to_pharmacy": ledger.notify_after_201.summary(),
            "answer_to_patient": ledger.answer_latency.summary(),
            "post_request": ledger.post_latency.summary(),
        },
        errors=dict(ledger.errors),
        timings=timings,
        server_cpu_seconds=server_cpu,
        notes=notes,
    )


class LiveView:
    """The rich renderable behind ``medreq simulate``'s live progress line."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.phase = "setup"
        self.numbers: dict[str, Any] = {}

    def update(self, phase: str, numbers: dict[str, Any]) -> None:
        self.phase, self.numbers = phase, numbers

    def __rich__(self) -> Table:
        n = self.numbers
        table = Table(title=f"medreq simulate {self.scenario.name} — {self.phase}", expand=False)
        columns = [
            "sent",
            "delivered",
            "answered",
            "answer delivered",
            "in flight",
            "errors",
            "p50 ms",
            "p99 ms",
        ]
        for column in columns:
            table.add_column(column, justify="right")
        if n:
            table.add_row(
                str(n["sent"]),
                str(n["delivered"]),
                str(n["answered"]),
                str(n["answer_delivered"]),
                str(n["in_flight"]),
                str(n["errors"]),
                _fmt(n["p50"]),
                _fmt(n["p99"]),
            )
        return table
