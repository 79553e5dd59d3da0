"""Owner verification calls end to end over the telephony core on a fake SIP network."""

from datetime import datetime, timezone

import pytest

from callflows.prompts import Prompt
from notify.pin_check import VerificationOutcome as V
from notify.verification import OwnerVerifier, VerificationRequest, greeting_text
from tests.callflows.fakes import result, start

REQUEST = VerificationRequest(plate="粤B12345", number="4000", alarm="illegal_door_open",
                              alarm_time=datetime(2026, 5, 1, 14, 30, tzinfo=timezone.utc),
                              language="en", lat=22.5431, lon=114.0579)


def owner_keys(*entries: str, hang_up_after: int | None = None):
    """The owner's phone: answers, then keys each entry once the desk has asked (prompt heard)."""

    async def phone(call):
        await call.answer()
        for n, entry in enumerate(entries):
            await call.collect(1, timeout=0.4)  # let the desk's prompt play a little
            if hang_up_after is not None and n == hang_up_after:
                await call.hangup()
                return
            if entry:
                await call.send_digits(entry)
        await call.wait_ended()

    return phone


def verifier(desk, spoken):
    async def speak(text, language):
        spoken.append(text)
        return Prompt.tone(440, 0.2)

    async def check_pin(plate, pin):
        return plate == "粤B12345" and pin == "2468"

    return OwnerVerifier(desk, check_pin, speak=speak, pin_timeout=1.0)


def verify(net, desk, owner, phone, spoken):
    owner.register_flow("4000", phone)
    d = start(verifier(desk, spoken).verify(REQUEST))
    net.run(15)
    return result(d)


@pytest.mark.parametrize("keys, outcome, attempts, retries", [
    (["2468#"], V.VERIFIED, 1, 0),
    (["1111#", "2468#"], V.VERIFIED, 2, 1),
    (["1111#", "2222#", "3333#"], V.PIN_FAILED, 3, 2),
    (["1111#", "", "3333#"], V.PIN_FAILED, 3, 2),  # silence counts as an attempt
    (["9#"], V.DENIED, 0, 0),
    (["1111#", "0#"], V.OPERATOR, 1, 1),
])
def test_pin_outcomes(phones, keys, outcome, attempts, retries):
    net, desk, owner = phones
    spoken = []
    got = verify(net, desk, owner, owner_keys(*keys), spoken)
    assert (got.outcome, got.attempts) == (outcome, attempts)
    assert got.call_id and got.recording_path
    assert "reported a door opening without authorisation" in spoken[0]
    assert "粤 B 1 2 3 4 5" in spoken[0] and "22:30 on 01 May" in spoken[0]  # Beijing time
    assert sum("That PIN was not right" in s for s in spoken) == retries
    assert spoken[-1].startswith({V.VERIFIED: "Thank you", V.DENIED: "Understood", V.OPERATOR: "Please hold",
                                  V.PIN_FAILED: "We could not verify"}[outcome])


def test_owner_hangs_up_mid_check(phones):
    net, desk, owner = phones
    got = verify(net, desk, owner, owner_keys("1111#", "x", hang_up_after=1), [])
    assert got.outcome == V.FAILED and got.attempts == 1


@pytest.mark.parametrize("status, outcome", [(486, V.BUSY), (404, V.INVALID_NUMBER), (603, V.FAILED)])
def test_unanswered_calls(phones, status, outcome):
    net, desk, owner = phones

    async def refuse(call):
        call.leg.machine.reject(status)

    got = verify(net, desk, owner, refuse, [])
    assert (got.outcome, got.call_id, got.attempts) == (outcome, None, 0)


def test_no_answer(phones):
    net, desk, owner = phones

    async def rings(call):
        await call.wait_ended()

    owner.register_flow("4000", rings)
    v = verifier(desk, [])
    v.ring_timeout = 2
    d = start(v.verify(REQUEST))
    net.run(5)
    assert result(d).outcome == V.NO_ANSWER


def test_greeting_in_mandarin_reads_coordinates_without_a_place():
    req = VerificationRequest(plate="京A1", number="1", alarm="sos", alarm_time=REQUEST.alarm_time,
                              language="zh", lat=39.9, lon=116.4)
    text = greeting_text(req, "安途")
    assert "紧急按钮报警" in text and "北纬39.9000度" in text and "5月1日22点30分" in text and "按9" in text
