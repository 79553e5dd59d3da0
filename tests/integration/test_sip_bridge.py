"""B2BUA bridge over real sockets: sipp A calls the hotline, the flow dials sipp B (the agent) and
bridges them; B's RFC 4733 digits reach A through the relay and come back in A's echo."""

from __future__ import annotations

import wave

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred

from callflows import Telephony, TelephonySettings
from tests.integration.sipp.harness import require_sipp, run_sipp, sipp_argv

pytestmark = pytest.mark.integration
BASE = 35300  # SIP 35300, sipp A 35301 (media 35302/4), sipp B 35306 (media 35308/10); RTP 42600-42698


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_bridge_relays_rfc4733_both_ways_and_records_both_legs(tmp_path):
    require_sipp()
    tel = Telephony(TelephonySettings(
        listen=f"udp:{BASE}:interface=127.0.0.1", trunk=f"127.0.0.1:{BASE + 6}", rtp_ports=(42600, 42698),
        recordings_dir=str(tmp_path / "recordings"), prompt_cache_dir=str(tmp_path / "prompts"),
        recording_retention_days=None), reactor)
    seen: dict = {}

    async def hotline(call):
        await call.answer()
        agent = await tel.dial("8001", caller_id=call.from_number, ring_timeout=5)
        seen["calls"] = (call, agent)
        bridged = Deferred.fromCoroutine(call.bridge(agent))
        await sleep(5.5)
        seen["states"] = (call.state(), agent.state())
        seen["a"] = (await call.collect(10, timeout=0.5), await call.collect(10, timeout=0.5))
        seen["b"] = await agent.collect(10, timeout=0.5)
        await agent.hangup()
        await bridged
        await call.hangup()

    tel.register_flow("4000", hotline)
    tel.startService()
    try:
        b = run_sipp(reactor, sipp_argv("uas_answer_dtmf.xml", BASE + 6, BASE + 8, tmp_path, timeout=20), 20)
        await sleep(0.3)
        a = run_sipp(reactor, sipp_argv("uac_ivr.xml", BASE + 1, BASE + 2, tmp_path, remote=f"127.0.0.1:{BASE}",
                                        timeout=20, keys={"caller": "5550002", "digits": "9"},
                                        sets={"prompt_ms": "4000"}, extra=["-s", "4000", "-rtp_echo"]), 20)
        result_a, result_b = await a, await b
        assert result_a.exit_code == 0, str(result_a)
        assert result_b.exit_code == 0, str(result_b)
        assert seen["states"] == ("bridged", "bridged")
        # B keyed 4711#: relayed to A, echoed by A, detected on A's leg; then A's own 9.
        assert seen["a"] == ("4711", "9")
        assert seen["b"] == "4711"
        for call in seen["calls"]:
            with wave.open(str(call.recording.path)) as wav:
                assert wav.getnchannels() == 2 and 5.0 < wav.getnframes() / 8000 < 7.5
    finally:
        await tel.stopService()
