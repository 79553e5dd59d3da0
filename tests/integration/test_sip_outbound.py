"""Outbound calls from Watchline to sipp acting as the trunk/callee (UAS scenarios in sipp/)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from callflows import CallEnded, CallNotConnected, CallOutcome, Prompt, Telephony, TelephonySettings
from tests.integration.sipp.harness import render_scenario, require_sipp, run_sipp, sipp_argv

pytestmark = pytest.mark.integration


def ports(k: int) -> int:
    """Test k's block: Watchline SIP on base, sipp on base+1 (media base+2, base+4); RTP range apart."""
    return 35000 + 10 * k


def make_telephony(tmp_path, base: int, **settings) -> Telephony:
    k = (base - 35000) // 10
    values = dict(listen=f"udp:{base}:interface=127.0.0.1", trunk=f"127.0.0.1:{base + 1}",
                  rtp_ports=(40000 + 100 * k, 40098 + 100 * k), recordings_dir=str(tmp_path / "recordings"),
                  prompt_cache_dir=str(tmp_path / "prompts"), recording_retention_days=None)
    values.update(settings)
    return Telephony(TelephonySettings(**values), reactor)


def uas(tmp_path, scenario: str, base: int, timeout: float = 20, **kwargs):
    """Start sipp as the callee on base+1 (media on base+2)."""
    return run_sipp(reactor, sipp_argv(scenario, base + 1, base + 2, tmp_path, timeout=timeout, **kwargs), timeout)


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_sipp_answers_and_watchline_collects_its_rfc4733_digits(tmp_path):
    require_sipp()
    tel = make_telephony(tmp_path, ports(0))
    tel.startService()
    try:
        sipp = uas(tmp_path, "uas_answer_dtmf.xml", ports(0))
        await sleep(0.3)
        call = await tel.dial("4000", caller_id="5551234", ring_timeout=10)
        assert call.leg.media.te_payload_type == 96
        digits = await call.collect(10, timeout=5)
        assert digits == "4711"  # sipp keys 4711#; '#' terminates; each digit once despite 3 end packets
        assert await call.hangup() == CallOutcome.ANSWERED
        result = await sipp
        assert result.exit_code == 0, str(result)
        record = tel.call_log.calls[call.call_id]
        assert (record.direction, record.from_number, record.to_number) == ("outbound", "5551234", "4000")
        assert record.outcome == "answered" and record.answered_at is not None
    finally:
        await tel.stopService()


@pytest.mark.parametrize("base,status,reason,outcome", [
    (ports(1), "486", "Busy Here", CallOutcome.BUSY),
    (ports(2), "600", "Busy Everywhere", CallOutcome.BUSY),
    (ports(3), "404", "Not Found", CallOutcome.INVALID_NUMBER),
    (ports(4), "484", "Address Incomplete", CallOutcome.INVALID_NUMBER),
    (ports(5), "480", "Temporarily Unavailable", CallOutcome.UNAVAILABLE),
    (ports(6), "603", "Decline", CallOutcome.REJECTED),
    (ports(7), "500", "Server Internal Error", CallOutcome.FAILED),
])
@pytest_twisted.ensureDeferred
async def test_final_failures_map_to_call_outcomes(tmp_path, base, status, reason, outcome):
    require_sipp()
    tel = make_telephony(tmp_path, base)
    tel.startService()
    try:
        scenario = render_scenario("uas_reject.xml", tmp_path, status_code=status)
        sipp = uas(tmp_path, scenario, base, keys={"reason": reason})
        await sleep(0.3)
        with pytest.raises(CallNotConnected) as raised:
            await tel.dial("4000", ring_timeout=10)
        assert raised.value.outcome == outcome
        result = await sipp
        assert result.exit_code == 0, str(result)  # sipp got the ACK for its final response
        (record,) = tel.call_log.calls.values()
        assert record.outcome == outcome.value and record.answered_at is None
    finally:
        await tel.stopService()


@pytest_twisted.ensureDeferred
async def test_ring_timeout_cancels_and_reports_no_answer(tmp_path):
    require_sipp()
    tel = make_telephony(tmp_path, ports(8))
    tel.startService()
    try:
        sipp = uas(tmp_path, "uas_no_answer.xml", ports(8))
        await sleep(0.3)
        started = reactor.seconds()
        with pytest.raises(CallNotConnected) as raised:
            await tel.dial("4000", ring_timeout=1.5)
        assert raised.value.outcome == CallOutcome.NO_ANSWER
        assert 1.4 < reactor.seconds() - started < 4
        result = await sipp
        assert result.exit_code == 0, str(result)  # CANCEL, 200, 487, ACK all as RFC 3261 says
    finally:
        await tel.stopService()


@pytest_twisted.ensureDeferred
async def test_callee_hangs_up_with_bye_during_a_prompt(tmp_path):
    require_sipp()
    tel = make_telephony(tmp_path, ports(9))
    tel.startService()
    try:
        sipp = uas(tmp_path, "uas_answer_bye.xml", ports(9))
        await sleep(0.3)
        call = await tel.dial("4000", ring_timeout=10)
        assert call.codec == "PCMA"
        with pytest.raises(CallEnded):
            await call.play(Prompt.tone(440, 10))
        assert call.outcome == CallOutcome.ANSWERED
        result = await sipp
        assert result.exit_code == 0, str(result)  # sipp got 200 for its BYE
        assert 1.3 < call.recording.duration < 2.5
    finally:
        await tel.stopService()


@pytest_twisted.ensureDeferred
async def test_trunk_demanding_digest_auth_gets_a_valid_authorization(tmp_path):
    require_sipp()
    tel = make_telephony(tmp_path, ports(10), username="trunkuser", password="s3cret")
    tel.startService()
    try:
        sipp = uas(tmp_path, "uas_auth.xml", ports(10))
        await sleep(0.3)
        call = await tel.dial("4000", ring_timeout=10)  # sipp answers 200 only if verifyauth passed
        await call.hangup()
        result = await sipp
        assert result.exit_code == 0, str(result)
    finally:
        await tel.stopService()


@pytest_twisted.ensureDeferred
async def test_wrong_trunk_password_is_refused(tmp_path):
    require_sipp()
    tel = make_telephony(tmp_path, ports(11), username="trunkuser", password="wrong")
    tel.startService()
    try:
        sipp = uas(tmp_path, "uas_auth.xml", ports(11))
        await sleep(0.3)
        with pytest.raises(CallNotConnected) as raised:
            await tel.dial("4000", ring_timeout=10)
        assert raised.value.outcome == CallOutcome.FAILED  # sipp's verifyauth failed: 403
        await sipp
    finally:
        await tel.stopService()


@pytest_twisted.ensureDeferred
async def test_register_with_digest_and_refresh_before_expiry(tmp_path):
    require_sipp()
    tel = make_telephony(tmp_path, ports(12), username="trunkuser", password="s3cret", register=True)
    sipp = uas(tmp_path, "uas_register.xml", ports(12))
    await sleep(0.3)
    tel.startService()
    try:
        result = await sipp
        assert result.exit_code == 0, str(result)  # both REGISTERs verified, the refresh came in time
        registration = tel.registration
        assert registration.registered and registration.granted == 3600 and registration.last_status == 200
        assert registration.attempts == 4  # two challenged REGISTERs, each followed by the answer
    finally:
        await tel.stopService()
