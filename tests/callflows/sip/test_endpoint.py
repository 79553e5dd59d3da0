"""The SIP endpoint: routing to transactions and the core, CANCEL matching, 400s, never crashing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from callflows.sip.endpoint import SipEndpoint, response_for
from callflows.sip.message import parse_message
from tests.callflows.sip.test_message import INVITE

PEER = ("10.0.0.2", 5062)


class RecordingCore:
    def __init__(self):
        self.events = []
        self.fail = False

    def request_received(self, request, tx, peer):
        if self.fail:
            raise RuntimeError("core bug")
        self.events.append(("request", request.method))
        self.tx = tx

    def ack_received(self, request, peer):
        self.events.append(("ack", request.cseq[0]))

    def cancel_received(self, invite_tx):
        self.events.append(("cancel", invite_tx.request.call_id))

    def stray_response(self, response, peer):
        self.events.append(("stray", response.status))


class Sent(list):
    """(message, address) pairs, parsed when read: a 400 may copy a header we could not parse."""

    def __getitem__(self, index):
        data, addr = super().__getitem__(index)
        return parse_message(data), addr

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class Transport:
    def __init__(self):
        self.sent = Sent()

    def write(self, data, addr):
        assert isinstance(data, bytes)
        self.sent.append((data, addr))


def endpoint():
    core = RecordingCore()
    ep = SipEndpoint(core, Clock())
    ep.transport = Transport()
    return ep, core, ep.transport.sent


def test_new_invite_gets_100_and_reaches_the_core_once():
    ep, core, sent = endpoint()
    ep.datagramReceived(INVITE, PEER)
    ep.datagramReceived(INVITE, PEER)  # retransmission: the transaction resends 100 Trying
    assert core.events == [("request", "INVITE")]
    assert [(m.status, addr) for m, addr in sent] == [(100, PEER), (100, PEER)]


def test_cancel_matches_the_invite_transaction():
    ep, core, sent = endpoint()
    ep.datagramReceived(INVITE, PEER)
    cancel = INVITE.replace(b"INVITE sip:", b"CANCEL sip:").replace(b"314159 INVITE", b"314159 CANCEL")
    ep.datagramReceived(cancel, PEER)
    assert core.events == [("request", "INVITE"), ("cancel", "a84b4c76e66710@10.0.0.2")]
    assert sent[-1][0].status == 200 and sent[-1][0].cseq == (314159, "CANCEL")
    unknown = cancel.replace(b"z9hG4bK776asdhds", b"z9hG4bKother")
    ep.datagramReceived(unknown, PEER)
    assert sent[-1][0].status == 481


def test_ack_without_transaction_goes_to_the_core():
    ep, core, sent = endpoint()
    ack = INVITE.replace(b"INVITE sip:", b"ACK sip:").replace(b"314159 INVITE", b"314159 ACK")
    ep.datagramReceived(ack.replace(b"z9hG4bK776asdhds", b"z9hG4bKack"), PEER)
    assert core.events == [("ack", 314159)] and not sent


def test_malformed_request_gets_400_and_garbage_is_dropped():
    ep, core, sent = endpoint()
    ep.datagramReceived(INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: x INVITE"), PEER)
    data, addr = list.__getitem__(sent, 0)
    assert data.startswith(b"SIP/2.0 400 Bad Request (bad CSeq") and addr == PEER
    ep.datagramReceived(b"\x00\x01binary junk", PEER)
    ep.datagramReceived(b"\r\n\r\n", PEER)  # keep-alive
    assert len(sent) == 1 and ep.stats.malformed == 2 and core.events == []


def test_core_exception_is_logged_not_raised():
    ep, core, sent = endpoint()
    core.fail = True
    ep.datagramReceived(INVITE, PEER)
    assert ep.stats.core_errors == 1
    core.fail = False
    ep.datagramReceived(INVITE.replace(b"z9hG4bK776asdhds", b"z9hG4bKnext"), PEER)
    assert core.events == [("request", "INVITE")]


def test_responses_route_to_client_transactions_or_the_core():
    ep, core, sent = endpoint()
    request = parse_message(INVITE)
    got = []
    ep.send_request(request, PEER, lambda r: got.append(r.status), lambda: got.append("timeout"))
    ok = response_for(request, 200, "OK", "rt")
    ep.datagramReceived(ok.to_bytes(), PEER)
    ep.datagramReceived(ok.to_bytes(), PEER)  # the transaction is gone: a stray 2xx for the dialog
    assert got == [200] and core.events == [("stray", 200)]
    assert ep.transaction_count == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=5))
def test_fuzz_udp_protocol_never_raises(datagrams):
    ep, core, sent = endpoint()
    for data in datagrams:
        ep.datagramReceived(data, PEER)
    assert ep.stats.core_errors == 0


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_invites_never_raise_and_replies_are_valid(data):
    ep, core, sent = endpoint()
    raw = bytearray(INVITE)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        raw[at:at + data.draw(st.integers(0, 20))] = data.draw(st.binary(max_size=6))
    ep.datagramReceived(bytes(raw), PEER)
    assert ep.stats.core_errors == 0
    for data, _ in list.__iter__(ep.transport.sent):
        assert data.startswith((b"SIP/2.0 100 ", b"SIP/2.0 400 ", b"SIP/2.0 481 ")), data[:40]
