"""Telephony end to end on a fake network and clock: real Telephony services talking SIP and RTP to
each other, driven by fake time (flows, dialling, outcomes, bridging, service life)."""

from __future__ import annotations

import os
import re

import pytest
import pytest_twisted

from callflows import CallEnded, CallNotConnected, CallOutcome, Prompt, Telephony, TelephonySettings
from tests.callflows.fakes import ivr_flow, result, start, telephony_settings


def test_dial_answer_dtmf_and_hangup(pair, net):
    caller, callee = pair
    seen: dict = {}
    callee.register_flow("4000", ivr_flow(seen))
    d = start(caller.dial("4000", caller_id="5551234"))
    net.run(0.1)
    call = result(d)
    assert call.state() == "connected" and call.leg.media.codec == "PCMU"
    sent = start(call.send_digits("1234"))
    net.run(3)
    assert sent.called  # done, or CallEnded if the IVR hung up before the last end packets went
    sent.addErrback(lambda failure: failure.trap(CallEnded))
    assert seen["played"] is True and seen["digits"] == "1234"
    assert call.is_ended and call.outcome == CallOutcome.ANSWERED
    assert not caller.calls and not callee.calls and not caller.agent.legs
    record = callee.call_log.calls[call.call_id]
    assert (record.direction, record.from_number, record.to_number, record.outcome) == (
        "inbound", "5551234", "4000", "answered")


@pytest.mark.parametrize("status,outcome", [(486, CallOutcome.BUSY), (404, CallOutcome.INVALID_NUMBER),
                                            (603, CallOutcome.REJECTED), (480, CallOutcome.UNAVAILABLE)])
def test_inbound_reject_maps_to_outcomes_on_both_sides(pair, net, status, outcome):
    caller, callee = pair

    async def refuse(call):
        call.leg.machine.reject(status)

    callee.register_flow("4000", refuse)
    d = start(caller.dial("4000"))
    net.run(0.5)
    with pytest.raises(CallNotConnected) as raised:
        result(d)
    assert raised.value.outcome == outcome
    (record,) = callee.call_log.calls.values()
    assert record.outcome == outcome.value


def test_ring_timeout_sends_cancel_and_gives_no_answer(pair, net):
    caller, callee = pair
    seen: dict = {}

    async def never_answers(call):
        seen["call"] = call
        try:
            await call.wait_ended()
        finally:
            seen["ended"] = True

    callee.register_flow("4000", never_answers)
    d = start(caller.dial("4000", ring_timeout=2))
    net.run(1.9)
    assert not d.called
    net.run(0.3)
    with pytest.raises(CallNotConnected) as raised:
        result(d)
    assert raised.value.outcome == CallOutcome.NO_ANSWER
    assert seen["call"].outcome == CallOutcome.CANCELLED
    lines = net.sip_sent(5070)
    assert "SIP/2.0 180 Ringing" in lines and "SIP/2.0 487 Request Terminated" in lines
    assert any(line.startswith("CANCEL ") for line in net.sip_sent(5060))


def test_our_bye_ends_the_remote_flows_play_with_call_ended(pair, net):
    caller, callee = pair
    seen: dict = {}

    async def talker(call):
        await call.answer()
        try:
            await call.play(Prompt.tone(300, 10))
        except CallEnded:
            seen["ended"] = call.outcome

    callee.register_flow("4000", talker)
    d = start(caller.dial("4000"))
    net.run(0.5)
    call = result(d)
    h = start(call.hangup())
    net.run(0.5)
    assert result(h) == CallOutcome.ANSWERED
    assert seen["ended"] == CallOutcome.ANSWERED


def test_bridge_relays_both_ways_and_records_both_legs(tmp_path, net):
    agent_phone = Telephony(telephony_settings(tmp_path, 5080), net)
    hotline = Telephony(telephony_settings(tmp_path, 5070, trunk="127.0.0.1:5080"), net)
    customer = Telephony(telephony_settings(tmp_path, 5060, trunk="127.0.0.1:5070"), net)
    seen: dict = {}

    async def acd(call):
        await call.answer()
        other = await call.transfer("8001", caller_id="4000")
        seen["transferred"] = other

    async def agent(call):
        seen["agent"] = call
        await call.answer()
        await call.play(Prompt.tone(1000, 1.0))
        seen["agent_digits"] = await call.collect(2, timeout=3)

    hotline.register_flow("4000", acd)
    agent_phone.register_flow("8001", agent)
    for service in (agent_phone, hotline, customer):
        service.startService()
    d = start(customer.dial("4000"))
    net.run(0.2)
    call = result(d)
    net.run(0.3)
    agent_call = seen["agent"]
    assert len(hotline.calls) == 2 and all(c.state() == "bridged" for c in hotline.calls)
    start(call.play(Prompt.tone(500, 0.5)))
    net.run(0.6)
    start(call.send_digits("56"))
    net.run(1.5)
    assert seen["agent_digits"] == "56"  # RFC 4733 events relayed through the bridge
    # The agent's stream saw one SSRC from the hotline, with consecutive sequence numbers.
    rtp = [data for src, dst, data in net.sent if src[0] == "127.0.0.1" and dst[1] == agent_call.leg.rtp_port]
    ssrcs = {data[8:12] for data in rtp}
    assert len(ssrcs) == 1
    seqs = [int.from_bytes(data[2:4], "big") for data in rtp]
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    h = start(call.hangup())
    net.run(1)
    assert result(h) == CallOutcome.ANSWERED
    assert seen["transferred"].is_ended
    paths = [r.recording_path for r in hotline.call_log.calls.values()]
    assert len(paths) == 2 and all(paths)


def test_flow_registration_patterns(tmp_path, net):
    service = Telephony(telephony_settings(tmp_path, 5060), net)

    async def a(call):
        pass

    async def b(call):
        pass

    service.register_flow("4000", a)
    service.register_flow(re.compile(r"40\d\d"), b)
    assert service.flow_for("4000") is a
    assert service.flow_for("4012") is b
    assert service.flow_for("40123") is None


def test_stop_service_hangs_up_live_calls(pair, net):
    caller, callee = pair
    seen: dict = {}
    callee.register_flow("4000", ivr_flow(seen, prompt_seconds=60))
    d = start(caller.dial("4000"))
    net.run(0.2)
    call = result(d)
    stopped = caller.stopService()
    net.run(1)
    assert stopped.called and call.is_ended
    assert seen["call"].is_ended


@pytest_twisted.ensureDeferred
async def test_retention_sweep_runs_in_a_thread_on_the_real_reactor(tmp_path):
    from twisted.internet import reactor

    old = tmp_path / "rec" / "2020" / "01" / "01" / "old.wav"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"RIFF")
    os.utime(old, (0, 0))
    fresh = tmp_path / "rec" / "fresh.wav"
    fresh.write_bytes(b"RIFF")
    service = Telephony(TelephonySettings(listen="udp:0:interface=127.0.0.1", recordings_dir=str(tmp_path / "rec"),
                                          prompt_cache_dir=str(tmp_path / "p"), recording_retention_days=30,
                                          rtp_ports=(47000, 47098)), reactor)
    service.startService()  # the first sweep runs at start
    try:
        assert service.port > 0
        removed = await service.sweep_recordings()
        # whichever of the start-up sweep and this one reached it first deleted it
        assert removed in ([], [old]) and not old.exists() and fresh.exists()
    finally:
        await service.stopService()


def test_silent_trunk_fails_after_timer_b(tmp_path, net):
    caller = Telephony(telephony_settings(tmp_path, 5060, trunk="127.0.0.1:5999"), net)  # nobody there
    caller.startService()
    d = start(caller.dial("4000", ring_timeout=60))
    net.run(31.9, step=0.1)
    assert not d.called
    net.run(0.3, step=0.1)
    with pytest.raises(CallNotConnected) as raised:
        result(d)
    assert raised.value.outcome == CallOutcome.FAILED
    assert len([line for line in net.sip_sent(5060) if line.startswith("INVITE")]) == 7  # timer A
    assert not caller.agent.legs and caller.agent.rtp_ports.in_use == 0
