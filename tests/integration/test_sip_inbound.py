"""Inbound calls: sipp (UAC scenarios in sipp/) calls Watchline's flows."""

from __future__ import annotations

import wave
from array import array

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from callflows import CallEnded, CallOutcome, Prompt, Telephony, TelephonySettings
from tests.integration.sipp.harness import require_sipp, run_sipp, sipp_argv

pytestmark = pytest.mark.integration


def ports(k: int) -> int:
    """Test k's block: Watchline SIP on base, sipp on base+1 (media base+2, base+4); RTP range apart."""
    return 35000 + 10 * k


def make_telephony(tmp_path, base: int, **settings) -> Telephony:
    k = (base - 35000) // 10
    values = dict(listen=f"udp:{base}:interface=127.0.0.1", rtp_ports=(40000 + 100 * k, 40098 + 100 * k),
                  recordings_dir=str(tmp_path / "recordings"), prompt_cache_dir=str(tmp_path / "prompts"),
                  recording_retention_days=None)
    values.update(settings)
    return Telephony(TelephonySettings(**values), reactor)


def uac(tmp_path, scenario: str, base: int, timeout: float = 20, keys=None, watchline: int | None = None,
        **kwargs):
    """sipp on base+1 (media on base+2) calls number 4000 at Watchline on ``watchline`` (default base)."""
    keys = {"caller": "5550001", **(keys or {})}
    argv = sipp_argv(scenario, base + 1, base + 2, tmp_path, remote=f"127.0.0.1:{watchline or base}",
                     timeout=timeout,
                     keys=keys, extra=["-s", "4000", *kwargs.pop("extra", [])], **kwargs)
    return run_sipp(reactor, argv, timeout)


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


def channel_activity(path, threshold: int = 1000) -> tuple[float, float, float]:
    """(duration, seconds of sound on the left channel, on the right) in 20 ms windows."""
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        samples = array("h", wav.readframes(wav.getnframes()))
        duration = wav.getnframes() / 8000
    left, right = samples[0::2], samples[1::2]

    def loud(channel) -> float:
        windows = [channel[i:i + 160] for i in range(0, len(channel), 160)]
        return sum(1 for w in windows if w and max(abs(s) for s in w) > threshold) * 0.02

    return duration, loud(left), loud(right)


@pytest_twisted.ensureDeferred
async def test_ivr_plays_prompt_that_sipp_receives_and_collects_digits(tmp_path):
    require_sipp()
    tel = make_telephony(tmp_path, ports(20))
    seen = {}

    async def ivr(call):
        await call.answer()
        seen["played"] = await call.play(Prompt.tone(440, 2.0))
        seen["digits"] = await call.collect(2, timeout=5)
        seen["call"] = call
        await call.hangup()

    tel.register_flow("4000", ivr)
    tel.startService()
    try:
        # -rtp_echo: sipp sends every RTP packet it receives back, so what reached sipp is in the
        # left (remote) channel of Watchline's recording.
        sipp = uac(tmp_path, "uac_ivr.xml", ports(20), keys={"digits": "42"}, sets={"prompt_ms": "2300"},
                   extra=["-rtp_echo"])
        result = await sipp
        assert result.exit_code == 0, str(result)
        assert seen["played"] is True
        assert seen["digits"] == "42"
        call = seen["call"]
        record = tel.call_log.calls[call.call_id]
        assert (record.direction, record.from_number, record.to_number, record.outcome) == (
            "inbound", "5550001", "4000", "answered")
        duration, left, right = channel_activity(record.recording_path)
        talk = (record.ended_at - record.answered_at).total_seconds()
        assert abs(duration - talk) < 0.3  # one frame per 20 ms tick from answer to hang-up
        assert 1.9 <= right <= 2.1  # the prompt we sent
        assert 1.8 <= left <= 2.1  # the prompt as sipp received and echoed it
    finally:
        await tel.stopService()


@pytest_twisted.ensureDeferred
async def test_caller_cancels_before_answer(tmp_path):
    require_sipp()
    tel = make_telephony(tmp_path, ports(21))
    seen = {}

    async def slow_to_answer(call):
        seen["call"] = call
        await sleep(3)
        try:
            await call.answer()
        except CallEnded:
            seen["ended"] = True

    tel.register_flow("4000", slow_to_answer)
    tel.startService()
    try:
        result = await uac(tmp_path, "uac_cancel.xml", ports(21))
        assert result.exit_code == 0, str(result)  # 180, then 200 for the CANCEL, 487, ACK absorbed
        await sleep(3.2)
        assert seen["ended"] is True
        assert seen["call"].outcome == CallOutcome.CANCELLED
        assert not tel.calls and not tel.agent.legs
    finally:
        await tel.stopService()


@pytest_twisted.ensureDeferred
async def test_caller_hangs_up_during_prompt(tmp_path):
    require_sipp()
    tel = make_telephony(tmp_path, ports(22))
    seen = {}

    async def long_prompt(call):
        seen["call"] = call
        try:
            await call.play(Prompt.tone(300, 10))
        except CallEnded:
            seen["ended"] = True

    tel.register_flow("4000", long_prompt)
    tel.startService()
    try:
        result = await uac(tmp_path, "uac_hangup.xml", ports(22), sets={"hold_ms": "1200"})
        assert result.exit_code == 0, str(result)
        assert seen["ended"] is True
        call = seen["call"]
        assert call.outcome == CallOutcome.ANSWERED
        duration, _, right = channel_activity(call.recording.path)
        assert 1.1 < duration < 1.8 and right > 1.0
    finally:
        await tel.stopService()


@pytest_twisted.ensureDeferred
async def test_invite_from_a_stranger_is_forbidden(tmp_path):
    require_sipp()
    tel = make_telephony(tmp_path, ports(23), allowed_peers=("10.20.30.0/24",))
    tel.register_flow("4000", lambda call: call.answer())
    tel.startService()
    try:
        result = await uac(tmp_path, "uac_refused.xml", ports(23))
        assert result.exit_code == 0, str(result)
        assert tel.agent.refused == {403: 1}
        assert not tel.call_log.calls
    finally:
        await tel.stopService()


@pytest_twisted.ensureDeferred
async def test_calls_beyond_the_cap_get_503(tmp_path):
    require_sipp()
    tel = make_telephony(tmp_path, ports(24), max_calls=1)

    async def hold(call):
        await call.answer()
        await call.play(Prompt.silence(5))

    tel.register_flow("4000", hold)
    tel.startService()
    try:
        first = uac(tmp_path, "uac_hangup.xml", ports(24), sets={"hold_ms": "1500"})
        await sleep(0.5)
        second = await uac(tmp_path, "uac_refused.xml", ports(25), watchline=ports(24))
        assert second.exit_code == 0, str(second)
        assert tel.agent.refused == {503: 1}
        assert (await first).exit_code == 0
    finally:
        await tel.stopService()
