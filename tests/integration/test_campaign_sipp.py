"""A 200-number notice campaign on 10 lines against sipp as the called phones (real SIP, RTP, DTMF, TTS).

sipp's scenario keys what each number does on its last digit (see sipp/uas_campaign.xml): confirm with
"1", listen and hang up, busy, no answer, not found. Every number must end with its outcome after the
retry policy, sipp must see exactly the calls that policy implies, and never more than 10 at once.
"""

from __future__ import annotations

import time

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from callflows import Telephony, TelephonySettings
from crm.campaign_records import NewNumber
from crm.db import Database
from crm.migrate import upgrade
from notify.campaign_runner import CampaignRunner
from notify.campaign_spec import campaign_from_fields
from notify.campaigns import CampaignControl
from notify.lines import TrunkLines
from notify.notice_call import NoticeCall
from tests.integration.sipp.harness import require_sipp, run_sipp, sipp_argv
from watchline.mq.memory import MemoryBus

pytestmark = pytest.mark.integration

BASE = 35000 + 10 * 90  # this file's port block (see test_sip_outbound.ports)
EXPECTED = {  # last digit -> (outcome, attempts) with busy=1x2, no_answer=1x1
    **dict.fromkeys("012", ("confirmed", 1)), **dict.fromkeys("345", ("answered", 1)),
    **dict.fromkeys("67", ("busy", 3)), "8": ("no_answer", 2), "9": ("invalid_number", 1)}


@pytest_twisted.ensureDeferred
async def test_200_numbers_on_10_lines(tmp_path, sqlite_url):
    require_sipp()
    phones = [f"+861380000{i:04d}" for i in range(200)]
    sipp_calls = sum(EXPECTED[p[-1]][1] for p in phones)  # 300
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    tel = Telephony(TelephonySettings(
        listen=f"udp:{BASE}:interface=127.0.0.1", trunk=f"127.0.0.1:{BASE + 1}", rtp_ports=(46200, 46398),
        recordings_dir=str(tmp_path / "rec"), prompt_cache_dir=str(tmp_path / "prompts"),
        recording_retention_days=None), reactor)
    tel.startService()
    bus = MemoryBus(reactor)
    bus.startService()
    lines = TrunkLines(30)
    runner = CampaignRunner(db, bus, NoticeCall(tel, reactor, ring_timeout=1.5, confirm_timeout=3), lines, reactor,
                            poll_interval=2)
    sampler = None
    try:
        sipp = run_sipp(reactor, sipp_argv("uas_campaign.xml", BASE + 1, BASE + 2, tmp_path, calls=sipp_calls,
                                           timeout=90), 90)
        await task.deferLater(reactor, 0.3, lambda: None)
        runner.startService()
        peak = [0]
        sampler = task.LoopingCall(lambda: peak.__setitem__(0, max(peak[0], len(tel.calls))))
        sampler.start(0.02)
        events = []
        await bus.start_consuming(lambda key, message: events.append((key, message)), "campaign.#")
        new = campaign_from_fields({"name": "Recall", "template": "This is a service notice from Watchline.",
                                    "language": "en", "lines": 10, "confirm": True, "window": "00:00-24:00",
                                    "retry": "busy=1x2,no_answer=1x1"})
        campaign = await db.campaigns.create(new, [NewNumber(p) for p in phones], "test", runner.now())
        started = time.monotonic()
        await CampaignControl(db, bus, reactor).change(campaign.id, "start", "test")
        for _ in range(600):
            if (await db.campaigns.get(campaign.id)).status == "completed":
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        elapsed = time.monotonic() - started
        result = await sipp
        assert (await db.campaigns.get(campaign.id)).status == "completed", f"not done after {elapsed:.0f} s"
        got = {n.phone: n for n in await db.campaigns.numbers(campaign.id)}
        wrong = {p: (n.outcome, n.attempts) for p, n in got.items() if (n.outcome, n.attempts) != EXPECTED[p[-1]]}
        assert not wrong, wrong
        assert all(n.confirmed is (n.outcome == "confirmed") for n in got.values() if n.outcome in ("answered",
                                                                                                     "confirmed"))
        assert all(n.history[-1].duration_s > 0.5 for n in got.values() if n.outcome in ("answered", "confirmed"))
        assert result.exit_code == 0, str(result)  # sipp saw exactly the calls the retry policy implies
        dialler_peak = max(d.peak_calls for d in runner.diallers.values()) if runner.diallers else runner.peak_calls
        assert peak[0] <= 10 and runner.peak_calls <= 10 and lines.peak <= 10 and dialler_peak <= 10
        assert runner.peak_calls >= 8  # and the lines were used
        assert len(tel.call_log.calls) == sipp_calls
        done = {"id": campaign.id, "name": "Recall", "status": "completed"}
        assert (f"campaign.{campaign.id}.status", done) in events
        print(f"200 numbers, {sipp_calls} calls in {elapsed:.1f} s; peak {peak[0]} calls")
    finally:
        if sampler is not None and sampler.running:
            sampler.stop()
        if runner.running:
            await runner.stopService()
        await tel.stopService()
        await bus.stopService()
        await db.stopService()
