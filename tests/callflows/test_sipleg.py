"""One leg's SIP behaviour on the fake network: INFO DTMF, re-INVITE for hold, a 2xx never ACKed,
retransmissions when responses are lost."""

from __future__ import annotations

from callflows import CallOutcome, Prompt
from tests.callflows.fakes import ivr_flow, result, start


def test_inbound_digits_by_sip_info_when_no_telephone_event(pair, net, monkeypatch):
    caller, callee = pair
    seen: dict = {}
    callee.register_flow("4000", ivr_flow(seen))
    d = start(caller.dial("4000"))
    net.run(0.1)
    call = result(d)
    call.leg.stream.te_payload_type = None  # as if the callee had not offered telephone-event
    start(call.send_digits("79#"))
    net.run(3)
    assert seen["digits"] == "79"
    assert any(line.startswith("INFO ") for line in net.sip_sent(5060))


def test_reinvite_for_hold_is_accepted_and_mutes(pair, net):
    caller, callee = pair
    seen: dict = {}

    async def hold_music(call):
        seen["call"] = call
        await call.answer()
        await call.play(Prompt.tone(300, 10))

    callee.register_flow("4000", hold_music)
    d = start(caller.dial("4000"))
    net.run(0.2)
    call = result(d)
    leg = call.leg
    body = leg.local_session.describe([("PCMU", 0)], 101, "sendonly")
    leg._send_in_dialog(leg.dialog.request("INVITE", body, "application/sdp"), lambda r: seen.setdefault("r", r))
    net.run(0.2)
    assert seen["r"].status == 200 and b"a=recvonly" in seen["r"].body
    remote = seen["call"].leg.stream
    assert remote.muted
    before = remote.sent_packets
    net.run(0.2)
    assert remote.sent_packets == before  # on hold: nothing sent
    body = leg.local_session.describe([("PCMU", 0)], 101, "sendrecv")
    leg._send_in_dialog(leg.dialog.request("INVITE", body, "application/sdp"), lambda r: seen.update(r2=r))
    net.run(0.2)
    assert seen["r2"].status == 200 and not remote.muted


def test_ack_never_arrives_so_watchline_hangs_up(pair, net):
    caller, callee = pair
    seen: dict = {}
    callee.register_flow("4000", ivr_flow(seen, prompt_seconds=60))
    net.drop = lambda data, src, dst: data.startswith(b"ACK ")
    start(caller.dial("4000"))
    net.run(40)
    assert seen["call"].outcome == CallOutcome.FAILED
    assert any(line.startswith("BYE ") for line in net.sip_sent(5070))


def test_invite_retransmission_is_absorbed_when_responses_are_lost(pair, net):
    caller, callee = pair
    seen: dict = {}
    callee.register_flow("4000", ivr_flow(seen, prompt_seconds=0.2))
    # Everything the callee sends in the first 0.7 s is lost: its 100, 180 and 200.
    net.drop = lambda data, src, dst: src[1] == 5070 and net.seconds() < 0.7
    d = start(caller.dial("4000"))
    net.run(2)
    assert result(d).direction == "outbound"
    invites = [line for line in net.sip_sent(5060) if line.startswith("INVITE ")]
    assert len(invites) == 3  # timer A: at 0, 0.5 and 1.5 s; the 200 resent at 1.502 s (timer G) got through
    assert len(callee.call_log.calls) == 1  # one call despite the retransmission
