"""Typed server → client events (docs/protocol.md §4): the protocol's own models
(`medreq.protocol.events`), under the names `medreq.client` has always exported.

Every event keeps the exact object the server sent in ``raw`` (what ``medreq listen --json``
prints); unknown types and events that do not match their model become a plain `Event`, so a
newer server never breaks an older client.
"""

from __future__ import annotations

from medreq.protocol.events import (
    EVENT_TYPES,
    Event,
    MessageEvent,
    NewRequestEvent,
    PharmacyResponseEvent,
    PresenceEvent,
    ReadEvent,
    RequestCancelledEvent,
    RequestChosenEvent,
    RequestUpdatedEvent,
    TypingEvent,
    parse_event,
)

__all__ = [
    "EVENT_TYPES",
    "Event",
    "MessageEvent",
    "NewRequestEvent",
    "PharmacyResponseEvent",
    "PresenceEvent",
    "ReadEvent",
    "RequestCancelledEvent",
    "RequestChosenEvent",
    "RequestUpdatedEvent",
    "TypingEvent",
    "parse_event",
]
