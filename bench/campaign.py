"""Notice campaign benchmark: 2,000 numbers on 30 lines against sipp answering every call for 5 s.

Prints one JSON object:
- ``completion_s``: from ``start`` to the campaign's ``completed`` event, against
  ``trunk_limited_minimum_s`` = ceil(numbers / lines) x call length, the best any dialler could do;
- ``line_utilisation``: line-seconds in calls (INVITE to end, from the call log) / (lines x completion);
  ``line_utilisation_sampled`` is the mean of the trunk lines in use, sampled every 100 ms. Target >= 0.9;
- ``redials_after_success``: calls placed to a number after one of its calls was answered (must be 0),
  counted from the telephony's call log, plus the outcomes and attempts the database recorded;
- sipp's own count of successful/failed calls and the peak of concurrent calls seen in Watchline.
Everything runs in this one process as ``watchline serve`` would: SQLite (embedded default) or
``--database URL``, the in-process bus, the real CampaignRunner, NoticeCall (espeak-ng TTS, spoken once and
cached), TrunkLines and Telephony. Run: ``python bench/campaign.py`` (about 6 minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and os.path.abspath(sys.path[0]) == str(ROOT / "bench"):
    del sys.path[0]
sys.path.insert(0, str(ROOT))

from twisted.internet import reactor, task  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402

from callflows import Telephony, TelephonySettings  # noqa: E402
from crm.campaign_records import NewNumber  # noqa: E402
from crm.db import Database  # noqa: E402
from crm.migrate import upgrade  # noqa: E402
from notify.campaign_runner import CampaignRunner  # noqa: E402
from notify.campaign_spec import campaign_from_fields  # noqa: E402
from notify.campaigns import CampaignControl  # noqa: E402
from notify.lines import TrunkLines  # noqa: E402
from notify.notice_call import NoticeCall  # noqa: E402
from tests.integration.sipp.harness import SIPP, run_sipp, sipp_argv  # noqa: E402
from watchline.mq.memory import MemoryBus  # noqa: E402

SIP_PORT = 45160
SIPP_PORT = 45170
# Longer than the call: sipp's BYE after 5 s ends every call, as a callee hanging up would.
NOTICE = ("This is a service notice from Watchline. Your vehicle is due for its annual inspection. Please "
          "bring it to any of our service stations before the end of the month, and remember to carry your "
          "registration papers and your insurance certificate with you. Thank you.")


def sipp_totals(stats_csv: str) -> dict[str, float]:
    """Cumulative counters from the last row of sipp's -trace_stat CSV."""
    rows = [line.split(";") for line in stats_csv.strip().splitlines() if line]
    values = dict(zip(rows[0], rows[-1], strict=False))
    return {name: float(values.get(column) or 0) for name, column in
            (("successful", "SuccessfulCall(C)"), ("failed", "FailedCall(C)"))}


def redials_after_success(records) -> int:
    by_number = defaultdict(list)
    for r in records:
        by_number[r.to_number].append(r)
    redials = 0
    for calls in by_number.values():
        calls.sort(key=lambda r: r.started_at)
        answered = [i for i, r in enumerate(calls) if r.answered_at is not None]
        if answered:
            redials += len(calls) - answered[0] - 1
    return redials


async def main(args: argparse.Namespace) -> dict:
    if SIPP is None:
        raise SystemExit("sipp is not installed (Debian package sip-tester)")
    work = Path(tempfile.mkdtemp(prefix="watchline-campaign-bench-"))
    print(f"work folder: {work}", file=sys.stderr)
    db = Database(args.database or f"sqlite:///{work / 'watchline.db'}", reactor)
    upgrade(db.engine)
    db.startService()
    tel = Telephony(TelephonySettings(listen=f"udp:{SIP_PORT}:interface=127.0.0.1", trunk=f"127.0.0.1:{SIPP_PORT}",
                                      rtp_ports=(50000, 50999), max_calls=max(60, 2 * args.lines),
                                      recordings_dir=str(work / "recordings"), prompt_cache_dir=str(work / "prompts"),
                                      recording_retention_days=None), reactor)
    tel.startService()
    bus = MemoryBus(reactor)
    bus.startService()
    lines = TrunkLines(args.lines)
    runner = CampaignRunner(db, bus, NoticeCall(tel, reactor, ring_timeout=10), lines, reactor)
    from watchline.run import tune_gc

    tune_gc()  # as `watchline serve` does once started
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "reactor": type(reactor).__name__, "database": db.dialect},
                 "numbers": args.numbers, "lines": args.lines, "call_s": args.call}
    sampler = None
    try:
        await runner.notice.prepare(NOTICE, "en", False)  # TTS once, before the clock starts
        argv = sipp_argv("uas_answer_hold.xml", SIPP_PORT, 46100, work, calls=args.numbers, timeout=args.timeout,
                         extra=["-d", str(int(args.call * 1000)), "-l", str(10 * args.lines), "-fd", "5"])
        sipp = run_sipp(reactor, argv, args.timeout)
        await task.deferLater(reactor, 0.5, lambda: None)
        runner.startService()
        new = campaign_from_fields({"name": "bench", "template": NOTICE, "language": "en", "lines": args.lines,
                                    "window": "00:00-24:00"})
        phones = [f"+86138{i:08d}" for i in range(args.numbers)]
        campaign = await db.campaigns.create(new, [NewNumber(p) for p in phones], "bench", runner.now())
        finished: Deferred = Deferred()

        def on_status(key: str, message: dict) -> None:
            if message.get("status") == "completed" and not finished.called:
                finished.callback(time.monotonic())

        await bus.start_consuming(on_status, f"campaign.{campaign.id}.status")
        in_use: list[int] = []
        sampler = task.LoopingCall(lambda: in_use.append(lines.in_use))
        started = time.monotonic()
        sampler.start(0.1)
        await CampaignControl(db, bus, reactor).change(campaign.id, "start", "bench")
        ended = await finished
        sampler.stop()
        elapsed = ended - started
        result = await sipp
        records = list(tel.call_log.calls.values())
        busy = sum((r.ended_at - r.started_at).total_seconds() for r in records if r.ended_at is not None)
        numbers = await db.campaigns.numbers(campaign.id)
        outcomes: dict[str, int] = defaultdict(int)
        for n in numbers:
            outcomes[n.outcome or "none"] += 1
        minimum = math.ceil(args.numbers / args.lines) * args.call
        totals = sipp_totals(result.stats) if result.stats else {}
        utilisation = busy / (args.lines * elapsed)
        redials = redials_after_success(records)
        out.update({
            "completion_s": round(elapsed, 1), "trunk_limited_minimum_s": minimum,
            "completion_over_minimum": round(elapsed / minimum, 3),
            "line_utilisation": round(utilisation, 3),
            "line_utilisation_sampled": round(sum(in_use) / max(1, len(in_use)) / args.lines, 3),
            "target_line_utilisation": 0.9,
            "calls_placed": len(records), "outcomes": dict(outcomes),
            "numbers_with_more_than_one_attempt": sum(1 for n in numbers if n.attempts > 1),
            "redials_after_success": redials,
            "peak_concurrent_calls": max(runner.peak_calls, lines.peak),
            "sipp": {"exit": result.exit_code, "successful": int(totals.get("successful", 0)),
                     "failed": int(totals.get("failed", 0))},
            "passed": utilisation >= 0.9 and redials == 0 and outcomes.get("answered") == args.numbers,
        })
    finally:
        if sampler is not None and sampler.running:
            sampler.stop()
        if runner.running:
            await runner.stopService()
        await tel.stopService()
        await bus.stopService()
        await db.stopService()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=30)
    parser.add_argument("--call", type=float, default=5.0, help="seconds sipp holds each answered call")
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--timeout", type=float, default=1200, help="sipp's bound, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (sipp logs, recordings)")
    return parser.parse_args()


def run() -> None:
    args = parse_args()

    async def report(_reactor) -> None:
        print(json.dumps(await main(args), indent=2))

    task.react(lambda reactor: Deferred.fromCoroutine(report(reactor)))  # exits 1 with the traceback on failure


if __name__ == "__main__":
    run()
