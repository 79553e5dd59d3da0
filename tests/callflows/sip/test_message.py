"""SIP message parsing and serialisation, including hypothesis fuzzing of the parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callflows.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    parse_cseq,
    parse_message,
    parse_via,
)

INVITE = (
    b"INVITE sip:4000@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:5551234@10.0.0.2>;tag=1928301774\r\n'
    b"To: <sip:4000@127.0.0.1>\r\n"
    b"Call-ID: a84b4c76e66710@10.0.0.2\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:5551234@10.0.0.2:5062>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\r\nextra bytes beyond Content-Length"
)


def test_parses_a_request():
    message = parse_message(INVITE)
    assert isinstance(message, SipRequest)
    assert (message.method, message.uri) == ("INVITE", "sip:4000@127.0.0.1:5060")
    assert message.cseq == (314159, "INVITE")
    assert message.call_id == "a84b4c76e66710@10.0.0.2"
    assert message.branch == "z9hG4bK776asdhds"
    assert message.body == b"v=0\r"  # cut at Content-Length
    assert message.headers.get("FROM") == '"Alice" <sip:5551234@10.0.0.2>;tag=1928301774'


def test_compact_forms_folding_and_comma_joined_vias():
    data = (b"SIP/2.0 180 Ringing\r\n"
            b"v: SIP/2.0/UDP a:1;branch=z9hG4bK1, SIP/2.0/UDP b:2;branch=z9hG4bK2\r\n"
            b"f: <sip:a@x>;tag=1\r\nt: <sip:b@y>\r\n ;tag=2\r\ni: cid\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n")
    message = parse_message(data)
    assert isinstance(message, SipResponse) and (message.status, message.reason) == (180, "Ringing")
    assert message.headers.get_all("via") == ["SIP/2.0/UDP a:1;branch=z9hG4bK1", "SIP/2.0/UDP b:2;branch=z9hG4bK2"]
    assert message.headers.get("to") == "<sip:b@y> ;tag=2"
    assert message.branch == "z9hG4bK1"


def test_serialise_round_trip_sets_content_length():
    headers = Headers([("Via", "SIP/2.0/UDP h:1;branch=z9hG4bKx"), ("From", "<sip:a@h>;tag=1"),
                       ("To", "<sip:b@h>"), ("Call-ID", "c"), ("CSeq", "2 BYE"), ("Content-Length", "99")])
    request = SipRequest("BYE", "sip:b@h", headers, b"body")
    data = request.to_bytes()
    assert b"Content-Length: 4\r\n\r\nbody" in data and b"Content-Length: 99" not in data
    again = parse_message(data)
    assert (again.method, again.body, again.cseq) == ("BYE", b"body", (2, "BYE"))


def test_headers_set_replaces_every_value():
    headers = Headers([("Via", "a"), ("Via", "b"), ("To", "t")])
    headers.set("via", "c")
    assert headers.get_all("via") == ["c"] and headers.get("to") == "t"
    headers.remove("to")
    assert "to" not in headers


@pytest.mark.parametrize("data,answerable", [
    (b"garbage\r\n\r\n", False),
    (b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n", False),  # no From/To/...
    (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: many INVITE"), True),
    (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 1 BYE"), True),
    (INVITE.replace(b"Content-Length: 4", b"Content-Length: 4000"), True),
    (INVITE.replace(b"Content-Length: 4", b"Content-Length: -1"), True),
    (INVITE.replace(b";branch=z9hG4bK776asdhds", b""), True),
    (INVITE.replace(b"Max-Forwards: 70", b"Max Forwards 70"), True),
    (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 99999999999 INVITE"), True),
    (b"SIP/2.0 999 Nope\r\n\r\n", False),
    (b"INVITE sip:x SIP/2.0", False),  # no end of headers
    (b"\xff\xfe INVITE\r\n\r\n", False),
])
def test_malformed_messages_raise_parse_errors_answerable_when_possible(data, answerable):
    with pytest.raises(SipParseError) as raised:
        parse_message(data)
    assert (raised.value.request is not None) == answerable


def test_ack_is_never_answered_with_400():
    data = INVITE.replace(b"INVITE sip", b"ACK sip").replace(b"314159 INVITE", b"314159 ACK")
    with pytest.raises(SipParseError) as raised:
        parse_message(data.replace(b"Content-Length: 4", b"Content-Length: 400"))
    assert raised.value.request is None


def test_via_and_cseq_helpers():
    assert parse_via("SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bKa;rport;received=5.6.7.8") == (
        "UDP", "1.2.3.4:5060", {"branch": "z9hG4bKa", "rport": "", "received": "5.6.7.8"})
    assert parse_cseq("7 invite") == (7, "INVITE")
    with pytest.raises(SipParseError):
        parse_via("HTTP/1.1 nope")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_random_bytes_only_ever_raise_parse_errors(data):
    try:
        parse_message(data)
    except SipParseError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fuzz_mutated_invites_only_ever_raise_parse_errors(data):
    raw = bytearray(INVITE)
    for _ in range(data.draw(st.integers(1, 8))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, len(raw) - 1))
        if action == "flip":
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del raw[at:at + data.draw(st.integers(1, 40))]
        else:
            raw[at:at] = data.draw(st.sampled_from([b"\r\n", b":", b";", b"<", b">", b'"', b",", b" ", b"\x00"]))
        if not raw:
            break
    try:
        message = parse_message(bytes(raw))
    except SipParseError as exc:
        if exc.request is not None:
            exc.request.to_bytes()  # a 400 can be built from what was understood
        return
    message.to_bytes()
