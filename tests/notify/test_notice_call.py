"""Notice calls end to end over the telephony core on a fake SIP network."""

import pytest

from callflows.prompts import Prompt
from notify.notice_call import NoticeCall, NoticePrompts
from tests.callflows.fakes import result, start


def notice_call(net, desk, spoken, **kwargs) -> NoticeCall:
    async def speak(text, language):
        spoken.append((text, language))
        return Prompt.tone(440, 1.0)

    return NoticeCall(desk, net, speak=speak, ring_timeout=2, confirm_timeout=1.5, **kwargs)


def deliver(net, desk, owner, flow, confirm, spoken=None):
    owner.register_flow("13800138000", flow)
    notice = notice_call(net, desk, spoken if spoken is not None else [])
    prompts = start(notice.prepare("Your inspection is due", "en", confirm))
    net.run(0.1)
    d = start(notice.deliver("13800138000", result(prompts), confirm, caller_id="95000"))
    net.run(8)
    return result(d)


def keys(digits: str, after: float = 0.3):
    async def phone(call):
        await call.answer()
        await call.collect(1, timeout=after)  # hear a little of the notice
        if digits:
            await call.send_digits(digits)
        await call.wait_ended()

    return phone


def test_press_1_confirms_and_hears_thanks(phones):
    net, desk, owner = phones
    spoken = []
    got = deliver(net, desk, owner, keys("1"), True, spoken)
    assert (got.outcome, got.confirmed) == ("confirmed", True)
    assert got.call_id in desk.call_log.calls and 0.3 < got.duration_s < 3
    assert spoken == [("Your inspection is due Press 1 to confirm.", "en"), ("Thank you, goodbye.", "en")]


@pytest.mark.parametrize("digits, low, high", [
    ("", 2.4, 3.0),  # the whole notice (1 s), then the wait for a key (1.5 s)
    ("2", 0.3, 0.6),  # another key stops the notice and ends the call
])
def test_no_confirmation_is_answered_not_confirmed(phones, digits, low, high):
    net, desk, owner = phones
    got = deliver(net, desk, owner, keys(digits), True)
    assert (got.outcome, got.confirmed) == ("answered", False)
    assert low <= got.duration_s <= high


def test_without_confirmation_the_notice_plays_to_the_end(phones):
    net, desk, owner = phones
    got = deliver(net, desk, owner, keys(""), False)
    assert (got.outcome, got.confirmed) == ("answered", None) and 0.9 < got.duration_s < 1.5


def test_owner_hanging_up_mid_notice_still_counts_as_answered(phones):
    net, desk, owner = phones

    async def hangs_up(call):
        await call.answer()
        await call.collect(1, timeout=0.3)
        await call.hangup()

    got = deliver(net, desk, owner, hangs_up, True)
    assert (got.outcome, got.confirmed) == ("answered", False) and got.duration_s < 0.8


@pytest.mark.parametrize("status, outcome", [(486, "busy"), (603, "busy"), (404, "invalid_number"),
                                             (480, "no_answer"), (500, "failed")])
def test_unanswered_calls(phones, status, outcome):
    net, desk, owner = phones

    async def refuse(call):
        call.leg.machine.reject(status)

    got = deliver(net, desk, owner, refuse, True)
    assert (got.outcome, got.call_id, got.duration_s, got.confirmed) == (outcome, None, 0.0, None)


def test_no_answer_after_the_ring_timeout(phones):
    net, desk, owner = phones

    async def rings(call):
        await call.wait_ended()

    assert deliver(net, desk, owner, rings, False).outcome == "no_answer"


def test_mandarin_confirmation_request(phones):
    net, desk, _ = phones
    spoken = []
    start(notice_call(net, desk, spoken).prepare("您的车辆年检即将到期", "zh", True))
    net.run(0.1)
    assert spoken == [("您的车辆年检即将到期 确认收到请按1。", "zh"), ("谢谢，再见。", "zh")]


def test_an_answered_call_is_hung_up_whatever_goes_wrong_while_reading():
    from twisted.internet.task import Clock

    class BrokenCall:
        call_id, is_ended, hung_up = "c-1", False, 0

        async def play(self, prompt, interruptible=False):
            raise RuntimeError("media gone")

        async def hangup(self):
            self.hung_up += 1
            self.is_ended = True

    call = BrokenCall()

    class Dialler:
        async def dial(self, number, caller_id=None, ring_timeout=None):
            return call

    d = start(NoticeCall(Dialler(), Clock()).deliver("4000", NoticePrompts(Prompt.tone(440, 0.1), None), False))
    with pytest.raises(RuntimeError, match="media gone"):
        result(d)
    assert call.hung_up == 1
