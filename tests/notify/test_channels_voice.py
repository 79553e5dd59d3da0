"""The ``voice`` channel over the telephony core on a fake SIP network: a notice read out, or not."""

import pytest

from callflows.prompts import Prompt
from notify.channels import DeliveryFailed, Message
from notify.channels.voice import VoiceChannel
from notify.lines import TrunkLines
from tests.callflows.fakes import result, start

NOTICE = Message("4000", "救援车京B999已出发，预计22分钟内到达。", "work_order_dispatched", language="zh")


def channel(net, desk, spoken, lines=None):
    async def speak(text, language):
        spoken.append((text, language))
        return Prompt.tone(440, 0.3)

    return VoiceChannel(desk, lines or TrunkLines(1), net, ring_timeout=2, speak=speak)


def test_answered_call_hears_the_notice_twice_and_is_delivered(phones):
    net, desk, owner = phones
    heard = []

    async def listen(call):
        await call.answer()
        answered = net.seconds()
        await call.wait_ended()
        heard.append(net.seconds() - answered)

    owner.register_flow("4000", listen)
    spoken, lines = [], TrunkLines(1)
    d = start(channel(net, desk, spoken, lines).send(NOTICE))
    net.run(10)
    sent = result(d)
    assert (sent.status, sent.attempts) == ("delivered", 1) and sent.external_id
    assert spoken == [(NOTICE.body, "zh")]
    assert 0.6 <= heard[0] < 1.5  # two 0.3 s readings, then the desk hung up
    assert lines.in_use == 0 and lines.peak == 1


@pytest.mark.parametrize("status, permanent", [(486, False), (404, True), (603, False)])
def test_busy_fails_and_a_bad_number_fails_for_good(phones, status, permanent):
    net, desk, owner = phones

    async def refuse(call):
        call.leg.machine.reject(status)

    owner.register_flow("4000", refuse)
    d = start(channel(net, desk, []).send(NOTICE))
    net.run(5)
    with pytest.raises(DeliveryFailed) as failed:
        result(d)
    assert failed.value.permanent is permanent and "call not answered" in failed.value.reason
    if status == 603:  # declined: retried like busy, but the delivery's error says what happened
        assert failed.value.reason == "call not answered: busy (rejected)"


def test_hang_up_during_the_first_reading_is_not_delivered(phones):
    net, desk, owner = phones

    async def hang_up(call):
        await call.answer()
        await call.collect(1, timeout=0.1)
        await call.hangup()

    owner.register_flow("4000", hang_up)
    d = start(channel(net, desk, []).send(NOTICE))
    net.run(10)
    with pytest.raises(DeliveryFailed, match="hung up before the notice was read out"):
        result(d)
