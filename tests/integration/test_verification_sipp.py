"""Owner verification against sipp as the owner's phone: real SIP, RTP, RFC 4733 DTMF and espeak-ng TTS."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from callflows import Telephony, TelephonySettings
from notify.pin_check import VerificationOutcome as V
from notify.verification import OwnerVerifier, VerificationRequest
from tests.integration.sipp.harness import render_scenario, require_sipp, run_sipp, sipp_argv

pytestmark = pytest.mark.integration

BASE = 35000 + 10 * 40  # this file's port block (see test_sip_outbound.ports)


@pytest.mark.parametrize("k, digits, outcome", [
    (0, "2468#", V.VERIFIED),
    (1, "9#", V.DENIED),
])
@pytest_twisted.ensureDeferred
async def test_owner_keys_pin_on_a_real_call(tmp_path, k, digits, outcome):
    require_sipp()
    base = BASE + 10 * k
    tel = Telephony(TelephonySettings(
        listen=f"udp:{base}:interface=127.0.0.1", trunk=f"127.0.0.1:{base + 1}",
        rtp_ports=(44000 + 100 * k, 44098 + 100 * k), recordings_dir=str(tmp_path / "rec"),
        prompt_cache_dir=str(tmp_path / "prompts"), recording_retention_days=None), reactor)
    tel.startService()
    try:
        scenario = render_scenario("uas_owner_pin.xml", tmp_path, owner_digits=digits)
        sipp = run_sipp(reactor, sipp_argv(scenario, base + 1, base + 2, tmp_path, timeout=40), 40)
        await task.deferLater(reactor, 0.3, lambda: None)

        async def check_pin(plate, pin):
            return (plate, pin) == ("粤B12345", "2468")

        verifier = OwnerVerifier(tel, check_pin, pin_timeout=5, ring_timeout=10)
        result = await verifier.verify(VerificationRequest(
            plate="粤B12345", number="13800138000", alarm="illegal_door_open", language="en",
            alarm_time=datetime(2026, 5, 1, 14, 30, tzinfo=timezone.utc), lat=22.54, lon=114.05))
        assert result.outcome == outcome
        assert result.recording_path and result.call_id in tel.call_log.calls
        assert (await sipp).exit_code == 0
    finally:
        await tel.stopService()
