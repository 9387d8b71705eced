"""`LiveSession`, the live stream's state with no I/O: fed frames and link events, it says what to
send and what to hand out. No server, no socket, no event loop."""

from __future__ import annotations

import json

import pytest

from medreq.client import Backoff, Conflict, Forbidden, NewRequestEvent, TransportError, Unauthorized
from medreq.client._session import LiveSession, Reply, close_error, ends_stream
from medreq.protocol import MessageIn, PingIn, ResponseIn


def frame(**fields: object) -> str:
    return json.dumps(fields)


def new_request(event_id: int, request_id: int = 1) -> str:
    return frame(type="new_request", event_id=event_id, request_id=request_id)


def test_a_message_goes_out_as_its_protocol_model_with_a_fresh_id() -> None:
    session = LiveSession()
    first = session.request(MessageIn(type="message", request_id=3, text="in stock"))
    second = session.request(PingIn(type="ping"))
    assert json.loads(first.text) == {"id": first.ref, "type": "message", "request_id": 3, "text": "in stock"}
    assert json.loads(second.text) == {"id": second.ref, "type": "ping"}
    assert first.ref != second.ref


def test_a_response_sends_only_the_fields_given() -> None:
    session = LiveSession()
    out = session.request(ResponseIn(type="response", request_id=3, status="ACCEPTED", message=None))
    assert json.loads(out.text) == {
        "id": out.ref,
        "type": "response",
        "request_id": 3,
        "status": "ACCEPTED",
        "message": None,
    }


def test_a_reply_goes_to_the_message_awaiting_it_once() -> None:
    session = LiveSession()
    out = session.request(MessageIn(type="message", request_id=3, text="hi"))
    ack = frame(type="ack", ref=out.ref, request_id=3, message={"id": 1, "from": 2, "text": "hi"})
    reply = session.receive(ack)
    assert isinstance(reply, Reply)
    assert reply.ref == out.ref
    assert reply.result()["type"] == "ack"
    assert session.receive(ack) is None  # answered already
    assert session.receive(frame(type="ack", ref=999)) is None  # nobody asked


def test_an_error_reply_raises_the_error_it_names() -> None:
    session = LiveSession()
    out = session.request(PingIn(type="ping"))
    reply = session.receive(frame(type="error", ref=out.ref, error={"code": "conflict", "message": "taken"}))
    assert isinstance(reply, Reply)
    with pytest.raises(Conflict, match="taken"):
        reply.result()


def test_a_reply_nobody_waits_for_any_more_is_dropped() -> None:
    session = LiveSession()
    out = session.request(PingIn(type="ping"))
    session.forget(out.ref)  # timed out
    assert session.receive(frame(type="pong", ref=out.ref)) is None


def test_events_are_handed_out_once_each_in_order() -> None:
    session = LiveSession(after=5)
    assert session.receive(new_request(5)) is None
    event = session.receive(new_request(6))
    assert isinstance(event, NewRequestEvent)
    assert event.event_id == 6
    assert session.receive(new_request(6)) is None
    assert session.receive(new_request(4)) is None
    assert (session.last_event_id, session.duplicates_dropped) == (6, 3)


def test_events_never_stored_are_always_handed_out() -> None:
    session = LiveSession(after=5)
    typing = frame(type="typing", request_id=1, state="start")
    assert session.receive(typing) is not None
    assert session.receive(typing) is not None
    assert session.last_event_id == 5


def test_frames_that_are_not_json_objects_are_ignored() -> None:
    session = LiveSession()
    for junk in ("not json", "[1, 2]", "3", b"\xff"):
        assert session.receive(junk) is None


def test_a_new_socket_resumes_after_the_last_event_seen() -> None:
    session = LiveSession()
    assert session.query("tok") == {"token": "tok"}
    session.receive(new_request(7))
    assert session.query(None) == {"token": "", "after": 7}


def test_frames_before_the_opening_pong_are_handed_out_once_the_socket_is_in_use() -> None:
    session = LiveSession(after=1)
    probe = session.probe()
    assert json.loads(probe.text) == {"id": probe.ref, "type": "ping"}
    assert not session.receive_opening(new_request(2))
    assert not session.receive_opening(new_request(1))  # a replay may repeat: dropped later
    assert not session.receive_opening(frame(type="pong", ref="someone-else"))
    assert session.receive_opening(frame(type="pong", ref=probe.ref, last_event_id=2))
    session.opened()
    early = session.early()
    assert [getattr(item, "event_id", None) for item in early] == [2]
    assert session.early() == []
    assert session.last_event_id == 2


def test_a_live_only_stream_resumes_from_the_opening_pong() -> None:
    session = LiveSession()
    probe = session.probe()
    assert session.receive_opening(frame(type="pong", ref=probe.ref, last_event_id=41))
    session.opened()
    assert session.early() == []
    assert session.last_event_id == 41  # a drop before the first event resumes after 41
    probe = session.probe()
    session.receive_opening(frame(type="pong", ref=probe.ref, last_event_id=99))
    session.opened()
    session.early()
    assert session.last_event_id == 41  # known already: the pong does not move it


def test_a_live_event_before_the_opening_pong_of_a_live_only_stream_is_not_lost() -> None:
    # the server sent event 42 on the new socket before answering the probe, so the pong's
    # mark counts it: adopting the mark first would drop the event as already seen
    session = LiveSession()
    probe = session.probe()
    assert not session.receive_opening(new_request(42))
    assert session.receive_opening(frame(type="pong", ref=probe.ref, last_event_id=42))
    session.opened()
    assert [getattr(item, "event_id", None) for item in session.early()] == [42]
    assert (session.last_event_id, session.duplicates_dropped) == (42, 0)


def test_only_a_socket_after_the_first_counts_as_a_reconnect() -> None:
    session = LiveSession()
    session.opened()
    assert session.reconnects == 0
    session.opened()
    assert session.reconnects == 1


def test_the_backoff_grows_until_a_socket_opens() -> None:
    session = LiveSession(backoff=Backoff(initial=1.0, factor=2.0, maximum=5.0, jitter=0.0))
    assert [session.retry_delay() for _ in range(4)] == [1.0, 2.0, 4.0, 5.0]
    session.opened()
    assert session.retry_delay() == 1.0


def test_a_lost_link_gives_up_on_the_replies_it_carried() -> None:
    session = LiveSession()
    first = session.request(PingIn(type="ping"))
    second = session.request(PingIn(type="ping"))
    assert session.link_lost() == [first.ref, second.ref]
    assert session.link_lost() == []
    assert session.receive(frame(type="pong", ref=first.ref)) is None


def test_finishing_happens_once_and_keeps_the_reason() -> None:
    session = LiveSession()
    out = session.request(PingIn(type="ping"))
    refused = Forbidden("no")
    assert session.finish(refused) == [out.ref]
    assert session.finish(None) is None
    assert (session.finished, session.error) == (True, refused)


def test_on_state_hears_only_changes() -> None:
    session = LiveSession()
    assert not session.set_state("connecting")
    assert session.set_state("reconnecting", 0.5)
    assert not session.set_state("reconnecting", 0.5)
    assert session.set_state("reconnecting")
    assert (session.state, session.retry_in) == ("reconnecting", None)


def test_a_close_code_says_whether_reconnecting_is_worth_it() -> None:
    assert isinstance(close_error(4403, "not yours"), Forbidden)
    assert "not yours" in close_error(4403, "not yours").message
    assert ends_stream(close_error(4403, None))
    assert ends_stream(close_error(4404, None))
    assert isinstance(close_error(4401, None), Unauthorized)
    assert not ends_stream(close_error(4401, None))  # a fresh token may do
    assert isinstance(close_error(1006, None), TransportError)
    assert not ends_stream(close_error(None, None))
