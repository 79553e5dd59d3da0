"""The user agent's door on the fake network: 403, 404, 503, the dial plan, out-of-dialog requests,
malformed input, and fuzzing the whole SIP stack through its UDP protocol."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from callflows import CallNotConnected, CallOutcome, NotAllowed, Prompt, Telephony
from tests.callflows.fakes import FakeNetwork, ivr_flow, result, start, telephony_settings


def test_unknown_number_404_and_no_trunk_or_bad_number_not_allowed(pair, net, tmp_path):
    caller, callee = pair
    d = start(caller.dial("4999"))
    net.run(0.5)
    with pytest.raises(CallNotConnected) as raised:
        result(d)
    assert raised.value.outcome == CallOutcome.INVALID_NUMBER
    assert callee.agent.refused == {404: 1}
    with pytest.raises(NotAllowed):
        result(start(caller.dial("12; drop table")))
    with pytest.raises(NotAllowed):
        result(start(callee.dial("4000")))  # callee has no trunk
    with pytest.raises(NotAllowed):
        result(start(caller.dial("sip:4000@10.1.1.1:5060")))  # not an allowed peer


def test_stranger_gets_403_and_cap_gives_503(tmp_path, net):
    callee = Telephony(telephony_settings(tmp_path, 5070, allowed_peers=("10.0.0.0/8",), max_calls=1), net)
    caller = Telephony(telephony_settings(tmp_path, 5060, trunk="127.0.0.1:5070"), net)
    callee.register_flow("4000", lambda call: call.answer())
    callee.startService()
    caller.startService()
    d = start(caller.dial("4000"))
    net.run(0.5)
    with pytest.raises(CallNotConnected):
        result(d)
    assert callee.agent.refused == {403: 1}

    trusted = Telephony(telephony_settings(tmp_path, 5080, max_calls=1), net)
    holding: dict = {}

    async def hold(call):
        holding["call"] = call
        await call.answer()
        await call.play(Prompt.silence(10))

    trusted.register_flow("4000", hold)
    trusted.startService()
    first = start(caller.dial("sip:4000@127.0.0.1:5080"))
    net.run(0.2)
    assert result(first).state() == "connected"
    second = start(caller.dial("sip:4000@127.0.0.1:5080"))
    net.run(0.2)
    with pytest.raises(CallNotConnected) as raised:
        result(second)
    assert raised.value.outcome == CallOutcome.FAILED
    assert trusted.agent.refused == {503: 1}


def test_own_cap_refuses_outbound_before_any_sip(tmp_path, net):
    callee = Telephony(telephony_settings(tmp_path, 5070), net)
    caller = Telephony(telephony_settings(tmp_path, 5060, trunk="127.0.0.1:5070", max_calls=1), net)

    async def hold(call):
        await call.answer()
        await call.play(Prompt.silence(10))

    callee.register_flow("4000", hold)
    callee.startService()
    caller.startService()
    first = start(caller.dial("4000"))
    net.run(0.2)
    assert result(first).state() == "connected"
    invites = len([line for line in net.sip_sent(5060) if line.startswith("INVITE")])
    with pytest.raises(NotAllowed):
        result(start(caller.dial("4000")))
    assert len([line for line in net.sip_sent(5060) if line.startswith("INVITE")]) == invites


def test_out_of_dialog_options_bye_register_and_garbage(pair, net):
    caller, callee = pair
    callee.register_flow("4000", ivr_flow({}))
    from callflows.sip.message import parse_message
    from tests.callflows.sip.test_message import INVITE

    def exchange(data: bytes) -> list:
        before = len(net.sent)
        net.send(data, ("127.0.0.1", 5999), ("127.0.0.1", 5070))
        net.run(0.02)
        return [parse_message(d) for src, dst, d in net.sent[before:] if dst == ("127.0.0.1", 5999)]

    options = INVITE.replace(b"INVITE sip:", b"OPTIONS sip:").replace(b"314159 INVITE", b"1 OPTIONS")
    (reply,) = exchange(options)
    assert reply.status == 200 and "INVITE" in reply.headers.get("allow")
    bye = INVITE.replace(b"INVITE sip:", b"BYE sip:").replace(b"314159 INVITE", b"2 BYE")
    assert [r.status for r in exchange(bye)] == [481]
    register = INVITE.replace(b"INVITE sip:", b"REGISTER sip:").replace(b"314159 INVITE", b"3 REGISTER")
    assert [r.status for r in exchange(register)] == [405]
    bad_from = INVITE.replace(b'From: "Alice" <sip:5551234@10.0.0.2>;tag=1928301774', b"From: <mailto:x>")
    assert [r.status for r in exchange(bad_from)] == [100, 400]  # the transaction ends, no leak
    assert exchange(b"\x16\x03\x01 TLS hello?") == []
    assert callee.agent.endpoint.stats.core_errors == 0


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_the_whole_user_agent_never_crashes(tmp_path, data):
    from tests.callflows.sip.test_message import INVITE

    net = FakeNetwork()
    service = Telephony(telephony_settings(tmp_path, 5070), net)
    service.register_flow("4000", ivr_flow({}))
    service.startService()
    base = INVITE.replace(b"sip:4000@127.0.0.1:5060", b"sip:4000@127.0.0.1:5070")
    for _ in range(data.draw(st.integers(1, 3))):
        raw = bytearray(data.draw(st.sampled_from([
            base, base.replace(b"INVITE sip:", b"BYE sip:").replace(b"314159 INVITE", b"314160 BYE"),
            base.replace(b"To: <sip:4000@127.0.0.1>", b"To: <sip:4000@127.0.0.1>;tag=x")])))
        for _ in range(data.draw(st.integers(0, 5))):
            at = data.draw(st.integers(0, len(raw) - 1))
            raw[at:at + data.draw(st.integers(0, 12))] = data.draw(st.binary(max_size=5))
        net.send(bytes(raw), ("127.0.0.1", 5999), ("127.0.0.1", 5070))
        net.run(0.05)
    assert service.agent.endpoint.stats.core_errors == 0
    service.stopService()
    net.run(40)
    assert service.agent.endpoint.transaction_count == 0 and not service.agent.legs
    assert service.agent.rtp_ports.in_use == 0
