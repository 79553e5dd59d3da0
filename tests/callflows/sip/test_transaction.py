"""Transaction timers (RFC 3261 17) stepped with task.Clock."""

from __future__ import annotations

from twisted.internet.task import Clock

from callflows.sip.address import NameAddr, SipUri
from callflows.sip.dialog import build_request
from callflows.sip.endpoint import response_for
from callflows.sip.message import parse_message
from callflows.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    SipTimers,
)

PEER = ("127.0.0.1", 5070)


def request(method: str):
    return build_request(method, SipUri("4000", "127.0.0.1", 5070), NameAddr(SipUri("a", "h"), params={"tag": "t1"}),
                         NameAddr(SipUri("4000", "127.0.0.1")), "cid", 1, "127.0.0.1:5060")


class Wire:
    def __init__(self, clock):
        self.clock = clock
        self.sent = []

    def __call__(self, data, peer):
        self.sent.append((round(self.clock.seconds(), 3), data.split(b"\r\n", 1)[0].decode()))


def client(kind, method):
    clock = Clock()
    wire = Wire(clock)
    events = []
    tx = kind(request(method), PEER, wire, clock, SipTimers(), lambda r: events.append(r.status),
              lambda: events.append("timeout"), lambda t: events.append("terminated"))
    tx.start()
    return clock, wire, events, tx


def test_invite_client_timer_a_doubles_and_timer_b_times_out():
    clock, wire, events, tx = client(ClientInviteTransaction, "INVITE")
    for _ in range(70):
        clock.advance(0.5)
    assert [t for t, _ in wire.sent] == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert events == ["terminated", "timeout"] and tx.state == "terminated"


def test_invite_client_provisional_stops_retransmission_and_failure_is_acked():
    clock, wire, events, tx = client(ClientInviteTransaction, "INVITE")
    tx.receive(response_for(tx.request, 180, "Ringing", "rt"))
    clock.advance(10)
    assert len(wire.sent) == 1 and tx.state == "proceeding"
    busy = response_for(tx.request, 486, "Busy Here", "rt")
    tx.receive(busy)
    assert wire.sent[-1][1].startswith("ACK sip:4000@127.0.0.1:5070")
    tx.receive(busy)  # a retransmitted final: ACK again, report once
    assert len(wire.sent) == 3 and events == [180, 486]
    clock.advance(32)  # timer D
    assert tx.state == "terminated" and events[-1] == "terminated"


def test_invite_client_2xx_terminates_and_leaves_ack_to_the_tu():
    clock, wire, events, tx = client(ClientInviteTransaction, "INVITE")
    tx.receive(response_for(tx.request, 200, "OK", "rt"))
    assert events == ["terminated", 200] and len(wire.sent) == 1


def test_ack_of_a_failure_has_the_invite_branch_and_the_response_to_tag():
    clock, wire, events, tx = client(ClientInviteTransaction, "INVITE")
    sent = []
    tx._send = lambda data, peer: sent.append(parse_message(data))
    tx.receive(response_for(tx.request, 603, "Decline", "rtag"))
    ack = sent[0]
    assert ack.branch == tx.request.branch and ack.cseq == (1, "ACK") and "tag=rtag" in ack.headers.get("to")


def test_non_invite_client_timer_e_caps_at_t2_then_f():
    clock, wire, events, tx = client(ClientNonInviteTransaction, "BYE")
    for _ in range(140):
        clock.advance(0.25)
    assert [t for t, _ in wire.sent] == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events[-1] == "timeout"


def test_non_invite_client_proceeding_retransmits_at_t2_and_k_waits():
    clock, wire, events, tx = client(ClientNonInviteTransaction, "BYE")
    clock.advance(0.5)
    tx.receive(response_for(tx.request, 100, "Trying"))
    clock.advance(1.0)
    clock.advance(4.0)
    assert [t for t, _ in wire.sent] == [0, 0.5, 1.5, 5.5]
    tx.receive(response_for(tx.request, 200, "OK"))
    tx.receive(response_for(tx.request, 200, "OK"))  # absorbed in completed
    assert events == [100, 200]
    clock.advance(5)  # timer K
    assert events[-1] == "terminated"


def server(kind, method):
    clock = Clock()
    wire = Wire(clock)
    events = []
    tx = kind(request(method), PEER, wire, clock, SipTimers(), lambda t: events.append("terminated"),
              lambda: events.append("timeout"))
    return clock, wire, events, tx


def test_invite_server_retransmits_2xx_until_ack():
    clock, wire, events, tx = server(ServerInviteTransaction, "INVITE")
    tx.respond(response_for(tx.request, 180, "Ringing", "lt"))
    tx.receive_request(tx.request)  # retransmitted INVITE: resend the 180
    assert [line for _, line in wire.sent] == ["SIP/2.0 180 Ringing"] * 2
    tx.respond(response_for(tx.request, 200, "OK", "lt"))
    clock.advance(0.5)
    clock.advance(1.0)
    assert [t for t, _ in wire.sent][2:] == [0, 0.5, 1.5]
    tx.ack_received()
    clock.advance(10)
    assert len(wire.sent) == 5 and events == ["terminated"]


def test_invite_server_2xx_never_acked_times_out_with_timer_h():
    clock, wire, events, tx = server(ServerInviteTransaction, "INVITE")
    tx.respond(response_for(tx.request, 200, "OK", "lt"))
    for _ in range(70):
        clock.advance(0.5)
    assert events == ["terminated", "timeout"]
    assert [t for t, _ in wire.sent] == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def test_invite_server_failure_absorbs_retransmissions_until_ack_then_timer_i():
    clock, wire, events, tx = server(ServerInviteTransaction, "INVITE")
    tx.respond(response_for(tx.request, 486, "Busy Here", "lt"))
    tx.receive_request(tx.request)
    assert len(wire.sent) == 2
    ack = request("ACK")
    tx.receive_request(ack)
    assert tx.state == "confirmed"
    clock.advance(5)
    assert tx.state == "terminated" and events == ["terminated"]  # no timeout: the ACK came


def test_non_invite_server_resends_final_and_timer_j():
    clock, wire, events, tx = server(ServerNonInviteTransaction, "BYE")
    tx.receive_request(tx.request)  # nothing to resend yet
    tx.respond(response_for(tx.request, 200, "OK"))
    tx.receive_request(tx.request)
    tx.respond(response_for(tx.request, 500, "late"))  # ignored: already completed
    assert [line for _, line in wire.sent] == ["SIP/2.0 200 OK"] * 2
    clock.advance(32)
    assert events == ["terminated"]
