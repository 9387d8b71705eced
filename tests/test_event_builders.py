"""The event builders of medreq/service/events.py against the protocol's models: each builder gives
exactly its model's fields (the models ignore unknown keys when parsing, so a misspelt key would
send its field absent and only a test reading that very field would notice), and together the
builders make every event type of the protocol's union."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, get_type_hints

import pytest

from medreq.protocol import EVENT_MODELS, OPTIONAL_ON_THE_WIRE, TypedEvent, parse_event
from medreq.service import events

STAMP = "2026-11-28T20:56:26.534771+00:00"

# every column a builder reads from a request row (a joined `medicine_requests` row)
ROW = SimpleNamespace(
    id=12,
    patient_id=2,
    patient_name="Alice",
    patient_phone="+1 555 0100",
    pharmacy_id=1,
    pharmacy_name="LifeCare Pharmacy",
    quantity=5,
    medicine_name="Amoxicillin 500mg",
    note="after 5pm",
    image_name="rx.png",
    asked_pharmacies=3,
    status="ACCEPTED",
    response_message="Ready for pickup",
    response_audio_name="reply.wav",
    response_price="4.50",
    response_currency="EUR",
    response_ready_at=datetime(2026, 12, 3, 17, 0, tzinfo=UTC),
)

# each builder's sample arguments; a new builder needs its line here (the test below says so)
SAMPLES: dict[str, tuple[Any, ...]] = {
    "new_request": (ROW, STAMP),
    "pharmacy_response": (ROW, STAMP),
    "request_updated": (12, "CANCELLED", STAMP),
    "request_cancelled": (12, 2, "another_pharmacy_chosen", STAMP),
    "request_chosen": (12, STAMP),
    "message": (12, 2, "Which strength?", 40, STAMP),
    "target_added": ("webhook", "https://hooks.example/secret/path", None, STAMP),
    "typing": (12, 2, "stop", STAMP),
    "presence": (1, True, STAMP),
    "read": (12, 2, 41, STAMP),
}


def builders() -> dict[str, Callable[..., events.Event]]:
    """Every function of medreq/service/events.py that returns an `Event`."""
    return {
        name: function
        for name, function in inspect.getmembers(events, inspect.isfunction)
        if function.__module__ == events.__name__ and get_type_hints(function).get("return") is events.Event
    }


def wire_fields(model: type[TypedEvent]) -> set[str]:
    """The model's fields as sent (aliases, such as `from`), without those it may leave out."""
    return {field.alias or name for name, field in model.model_fields.items()} - set(OPTIONAL_ON_THE_WIRE)


def test_every_builder_has_sample_arguments() -> None:
    assert set(builders()) == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_builder_gives_exactly_its_models_fields(name: str) -> None:
    event = builders()[name](*SAMPLES[name])
    assert event.model in EVENT_MODELS
    assert event.type == event.model.model_fields["type"].default
    assert not {"type", "event_id", "timestamp"} & set(event.fields)  # `Event.build` adds those
    given = {"type", "event_id", "timestamp", *event.fields}
    expected = wire_fields(event.model)
    assert given == expected, f"missing {expected - given}, unknown {given - expected}"
    # and it is sent whole: every field present, parsed back as the same typed event
    sent = parse_event(event.build(7).model_dump(mode="json", by_alias=True, exclude_unset=True))
    assert type(sent) is event.model
    assert set(sent.raw) == expected


def test_builders_make_every_event_type_of_the_protocol() -> None:
    made = {builders()[name](*args).model for name, args in SAMPLES.items()}
    assert made == set(EVENT_MODELS)
