"""RFC 4733 events and SIP INFO DTMF."""

from __future__ import annotations

import pytest

from callflows.media.dtmf import DtmfReceiver, event_payloads, parse_event, parse_info_body


def test_one_digit_per_event_despite_redundant_end_packets():
    receiver = DtmfReceiver()
    payloads = event_payloads("5")
    digits = [receiver.feed(0x1234, 8000, p) for p in payloads]
    assert [d for d in digits if d] == ["5"]
    assert receiver.feed(0x1234, 8000, payloads[-1]) is None  # a late redundant end packet
    assert receiver.feed(0x1234, 9600, payloads[0]) == "5"  # the same key pressed again
    assert receiver.feed(0x9999, 9600, payloads[0]) == "5"  # another SSRC (sipp's play_dtmf stream)


def test_lost_start_packets_still_give_the_digit():
    receiver = DtmfReceiver()
    end = event_payloads("#")[-1]
    assert [receiver.feed(1, 500, end) for _ in range(3)] == ["#", None, None]


def test_event_payloads():
    payloads = event_payloads("*", duration_ms=100)
    assert [parse_event(p) for p in payloads] == [(10, False, 160), (10, False, 320), (10, False, 480),
                                                  (10, False, 640), (10, True, 800), (10, True, 800),
                                                  (10, True, 800)]
    assert parse_event(b"\x01") is None
    assert DtmfReceiver().feed(1, 1, bytes([99, 0, 0, 0])) is None  # not a DTMF event


@pytest.mark.parametrize("content_type,body,digit", [
    ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5"),
    ("application/dtmf-relay", b"Signal= #\r\n", "#"),
    ("application/dtmf-relay", b"Signal=11\r\n", "#"),
    ("application/dtmf", b"*", "*"),
    ("application/dtmf-relay; charset=x", b"signal=a", "A"),
    ("application/dtmf-relay", b"Duration=160", None),
    ("text/plain", b"5", None),
    ("application/dtmf", b"55", None),
    ("application/dtmf", b"\xff", None),
])
def test_info_bodies(content_type, body, digit):
    assert parse_info_body(content_type, body) == digit
