"""The wire serialization work of one request → answer cycle, in microseconds: the 201 body of
`POST /medicine/request/`, the `new_request`, `pharmacy_response` and `request_updated` events,
and the answer's body, built by `service/views.py` and `service/events.py` and turned into text.

    python loadtests/serialize_cost.py            # this tree
    /path/to/other/venv/bin/python loadtests/serialize_cost.py   # another version, to compare

It only calls the view and event builders and `dumps`, which every version has: run it with two
versions' interpreters, alternating, to compare the cost of building the wire models.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import medreq
from medreq.service import events, views

try:
    from medreq.protocol import dumps
except ImportError:  # versions before medreq/protocol/
    from medreq.schemas import dumps  # type: ignore[import-not-found,no-redef]

STAMP = "2026-11-28T20:56:26.534771+00:00"
NOW = datetime.now(UTC)
ROW = SimpleNamespace(
    id=12345,
    patient_id=2,
    patient_name="Alice",
    patient_phone="+1 555 0100",
    pharmacy_id=1,
    pharmacy_name="LifeCare Pharmacy",
    quantity=5,
    medicine_name="Amoxicillin 500mg",
    note="after 5pm",
    image_name=None,
    status="ACCEPTED",
    response_message="Ready for pickup",
    response_audio_name=None,
    responded_at=NOW,
    created_at=NOW,
    updated_at=NOW,
)


class NoMedia:
    def url(self, kind: str, name: str | None, base: str | None = None, **_: Any) -> str | None:
        return None


MEDIA: Any = NoMedia()
# since media links are issued to one account, views take the account they are for
VIEWER: dict[str, Any] = (
    {"viewer": 1} if "viewer" in inspect.signature(views.request_view).parameters else {}
)


def one_cycle() -> tuple[str, ...]:
    if hasattr(views, "request_created"):
        created = dumps(views.request_created(ROW, MEDIA, unread=0, **VIEWER))
        answered = dumps(views.response_sent(views.request_view(ROW, MEDIA, unread=0, **VIEWER)))
    else:  # the service built these dicts itself
        data = views.request_view(ROW, MEDIA, unread=0, **VIEWER)
        created = dumps({"message": "Medicine request sent successfully", "request_id": ROW.id, "data": data})
        answered = dumps(
            {"message": "Response sent successfully", "data": views.request_view(ROW, MEDIA, unread=0, **VIEWER)}
        )
    return (
        created,
        dumps(events.new_request(ROW, STAMP).build(7)),
        dumps(events.pharmacy_response(ROW, STAMP).build(8)),
        dumps(events.request_updated(ROW.id, "ACCEPTED", STAMP).build(9)),
        answered,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for _ in range(1000):
        one_cycle()
    rounds = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.cycles):
            one_cycle()
        rounds.append((time.perf_counter() - start) / args.cycles * 1e6)
    print(
        f"{medreq.__file__.rsplit('/medreq/', 1)[0]}: {min(rounds):.1f} µs per cycle (min of {args.rounds}),"
        f" median {statistics.median(rounds):.1f}"
    )


if __name__ == "__main__":
    main()
