"""SDP offer/answer."""

from __future__ import annotations

import pytest

from callflows.sdp import LocalSession, MediaParams, SdpError, accept_answer, answer_offer, parse_sdp

OFFER = b"""v=0\r
o=- 1 1 IN IP4 10.0.0.2\r
s=-\r
c=IN IP4 10.0.0.2\r
t=0 0\r
m=audio 40000 RTP/AVP 18 8 0 96\r
a=rtpmap:18 G729/8000\r
a=rtpmap:96 telephone-event/8000\r
a=fmtp:96 0-16\r
"""


def test_offer_lists_g711_and_telephone_event():
    offer = LocalSession("127.0.0.1", 20000).offer().decode()
    assert "m=audio 20000 RTP/AVP 0 8 101" in offer and "c=IN IP4 127.0.0.1" in offer
    assert "a=rtpmap:101 telephone-event/8000" in offer and "a=sendrecv" in offer


def test_answer_takes_offerers_first_supported_codec_and_its_event_type():
    local = LocalSession("127.0.0.1", 20000)
    params, body = answer_offer(OFFER, local)
    assert params == MediaParams("10.0.0.2", 40000, "PCMA", 8, 96, "sendrecv")
    text = body.decode()
    assert "m=audio 20000 RTP/AVP 8 96" in text and "a=rtpmap:96 telephone-event/8000" in text
    again = answer_offer(OFFER, local)[1].decode()
    assert again.split("\r\n")[1].split()[2] == str(int(text.split("\r\n")[1].split()[2]) + 1)  # version


@pytest.mark.parametrize("change,direction,hold", [
    (b"a=fmtp:96 0-16\r\n", "sendrecv", False),
    (b"a=sendonly\r\n", "sendonly", True),
    (b"a=inactive\r\n", "inactive", True),
])
def test_hold_offers_are_answered_in_the_mirror_direction(change, direction, hold):
    offer = OFFER.replace(b"a=fmtp:96 0-16\r\n", change)
    params, body = answer_offer(offer, LocalSession("127.0.0.1", 1))
    assert params.remote_direction == direction and params.on_hold == hold
    expected = {"sendrecv": "sendrecv", "sendonly": "recvonly", "inactive": "inactive"}[direction]
    assert f"a={expected}" in body.decode()


def test_old_style_hold_with_zero_address():
    params, _ = answer_offer(OFFER.replace(b"c=IN IP4 10.0.0.2", b"c=IN IP4 0.0.0.0"), LocalSession("h", 1))
    assert params.on_hold


def test_no_common_codec_or_no_audio_is_an_error():
    with pytest.raises(SdpError):
        answer_offer(OFFER.replace(b"18 8 0 96", b"18 96"), LocalSession("h", 1))
    with pytest.raises(SdpError):
        answer_offer(OFFER.replace(b"m=audio", b"m=video"), LocalSession("h", 1))
    for bad in (b"\xff", b"v=0\r\n", b"m=audio x RTP/AVP 0\r\n", b"m=audio 99999 RTP/AVP 0\r\n"):
        with pytest.raises(SdpError):
            parse_sdp(bad)


def test_accept_answer_reads_media_level_connection():
    answer = b"v=0\r\nc=IN IP4 1.1.1.1\r\nm=audio 5000 RTP/AVP 0 101\r\nc=IN IP4 2.2.2.2\r\na=rtpmap:101 telephone-event/8000\r\n"
    assert accept_answer(answer) == MediaParams("2.2.2.2", 5000, "PCMU", 0, 101, "sendrecv")
    with pytest.raises(SdpError):
        accept_answer(b"v=0\r\nm=audio 5000 RTP/AVP 0\r\n")  # no address anywhere
