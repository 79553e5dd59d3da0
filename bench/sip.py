"""Telephony benchmark: sipp calls an IVR flow (a 5 s prompt, collect 2 digits, hang up).

Prints one JSON object:
- ``concurrency``: for each level L, sipp keeps up to L calls up (``-l L``, ``2L`` calls at the rate
  that fills L in one call length); a level passes with <= 1 % failed calls (sipp's count plus flows
  that did not get their digits), every collected DTMF string right, and the media clock never
  falling behind (skipped 20 ms ticks). ``max_concurrent_calls`` is the peak of the highest passing
  level, as counted inside Watchline.
- ``setup_rate``: 3 s bursts of calls at R calls/s (same flow); passes as above and with the 95th
  percentile INVITE->200 time under 1 s. ``max_setups_per_second`` is the highest passing R.
The levels stop at the first failure. Beyond ~500 calls the failures seen were single 100-200 ms
full garbage collections (``gc_max_ms``) stalling the media clock; like ``watchline serve``, the bench
tunes the collector once started (``watchline.run.tune_gc``); ``--no-gc-tuning`` shows it without.
Every call has media both ways (Watchline sends the prompt and silence at 50 packets/s, sipp keys
its digits as RFC 4733 events) and is recorded. One Watchline process (this one) on the reactor.
Run: ``python bench/sip.py`` (about 3 minutes); ``--profile FILE`` writes a pyinstrument report.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and os.path.abspath(sys.path[0]) == str(ROOT / "bench"):
    del sys.path[0]
sys.path.insert(0, str(ROOT))

from twisted.internet import reactor, task  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402

from callflows import CallEnded, Prompt, Telephony, TelephonySettings  # noqa: E402
from tests.integration.sipp.harness import SIPP, run_sipp, sipp_argv  # noqa: E402

DIGITS = "42"
gc_pauses: list[float] = []
_gc_started = [0.0]


def _time_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    elif info.get("generation") == 2:
        gc_pauses.append(time.perf_counter() - _gc_started[0])


gc.callbacks.append(_time_gc)
SIP_PORT = 45060
SIPP_PORT = 45070


class IvrStats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.right = self.wrong = self.missing = self.ended_early = 0
        self.peak = 0


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


def sipp_totals(stats_csv: str) -> dict[str, float]:
    """Cumulative counters from sipp's -trace_stat CSV (last row)."""
    rows = [line.split(";") for line in stats_csv.strip().splitlines() if line]
    header = rows[0]
    last = rows[-1]
    values = dict(zip(header, last, strict=False))

    def number(name: str) -> float:
        try:
            return float(values.get(name, "0") or 0)
        except ValueError:
            return 0.0

    return {"successful": number("SuccessfulCall(C)"), "failed": number("FailedCall(C)"),
            "created": number("TotalCallCreated")}


def rtd_p95(stats_csv: str) -> float | None:
    """sipp's ResponseTime1 (INVITE -> 200, marked rtd in the scenario) is an average per period (ms
    resolution); the 95th percentile of those periodic averages, over periods that placed calls, is a
    conservative set-up latency."""
    rows = [line.split(";") for line in stats_csv.strip().splitlines() if line]
    header = rows[0]
    if "ResponseTime1(P)" not in header or "OutgoingCall(P)" not in header:
        return None
    i, calls = header.index("ResponseTime1(P)"), header.index("OutgoingCall(P)")
    samples = []
    for row in rows[1:]:
        parts = row[i].split(":") if i < len(row) else []  # hh:mm:ss:micro
        if len(parts) == 4 and all(p.isdigit() for p in parts) and row[calls].isdigit() and int(row[calls]):
            h, m, s, us = map(int, parts)
            samples.append(h * 3600 + m * 60 + s + us / 1e6)
    if not samples:
        return None
    samples.sort()
    return samples[min(len(samples) - 1, int(0.95 * len(samples)))]


async def run_level(tel: Telephony, stats: IvrStats, work: Path, limit: int, rate: float, calls: int,
                    prompt_ms: int) -> dict:
    stats.reset()
    skipped_before = tel.media_clock.skipped
    tel.media_clock.max_lateness = 0.0
    gc_pauses.clear()
    ticks_before = tel.media_clock.total_ticks
    timeout = calls / rate + prompt_ms / 1000 + 40
    logs = work / f"l{limit}-r{rate:g}"
    logs.mkdir()
    argv = sipp_argv("uac_ivr.xml", SIPP_PORT, 46000, logs, remote=f"127.0.0.1:{SIP_PORT}", calls=calls,
                     timeout=timeout, keys={"caller": "5550001", "digits": DIGITS},
                     sets={"prompt_ms": str(prompt_ms)},
                     extra=["-s", "4000", "-r", f"{rate:g}", "-l", str(limit), "-fd", "1"])
    started = time.monotonic()
    sampler = task.LoopingCall(lambda: setattr(stats, "peak", max(stats.peak, len(tel.calls))))
    sampler.clock = reactor
    sampler.start(0.1)
    result = await run_sipp(reactor, argv, timeout)
    sampler.stop()
    elapsed = time.monotonic() - started
    await sleep(1)
    totals = sipp_totals(result.stats) if result.stats else {"successful": 0, "failed": calls, "created": 0}
    failed = totals["failed"] + stats.missing + stats.ended_early
    skipped = tel.media_clock.skipped - skipped_before
    ticks = tel.media_clock.total_ticks - ticks_before
    ok = (result.exit_code in (0, 1) and totals["created"] >= calls and failed <= 0.01 * calls
          and stats.wrong == 0 and skipped <= 0.001 * max(1, ticks))
    return {"limit": limit, "rate_cps": rate, "calls": calls, "peak_concurrent": stats.peak,
            "sipp_successful": int(totals["successful"]), "sipp_failed": int(totals["failed"]),
            "digits_right": stats.right, "digits_wrong": stats.wrong, "no_digits": stats.missing,
            "ended_early": stats.ended_early, "media_ticks": ticks, "media_ticks_skipped": skipped,
            "media_max_late_ms": round(1000 * tel.media_clock.max_lateness, 1),
            "gc_max_ms": round(1000 * max(gc_pauses, default=0), 1), "gc_over_20ms": sum(p > 0.02 for p in gc_pauses),
            "setup_p95_s": rtd_p95(result.stats) if result.stats else None, "seconds": round(elapsed, 1),
            "sipp_exit": result.exit_code, "rtp_ports_in_use_after": tel.agent.rtp_ports.in_use,
            "passed": ok}


async def main(args: argparse.Namespace) -> dict:
    if SIPP is None:
        raise SystemExit("sipp is not installed (Debian package sip-tester)")
    work = Path(tempfile.mkdtemp(prefix="watchline-sip-bench-"))
    print(f"work folder: {work}", file=sys.stderr)
    settings = TelephonySettings(listen=f"udp:{SIP_PORT}:interface=127.0.0.1", rtp_ports=(50000, 59999),
                                 max_calls=2000, recordings_dir=str(work / "recordings"),
                                 prompt_cache_dir=str(work / "prompts"), recording_retention_days=None)
    tel = Telephony(settings, reactor)
    stats = IvrStats()
    prompt = Prompt.tone(425, args.prompt)

    async def ivr(call):
        try:
            await call.answer()
            await call.play(prompt)
            digits = await call.collect(2, timeout=8)
        except CallEnded:
            stats.ended_early += 1
            return
        if digits == DIGITS:
            stats.right += 1
        elif digits:
            stats.wrong += 1
        else:
            stats.missing += 1
        await call.hangup()

    tel.register_flow("4000", ivr)
    tel.startService()
    if not args.no_gc_tuning:
        from watchline.run import tune_gc

        tune_gc()  # as `watchline serve` does once started: start-up objects frozen, fewer collections
    call_seconds = args.prompt + 1.6  # prompt, then sipp's DTMF (0.4 s warm-up, 2 x 0.4 s), hang-up
    prompt_ms = int(args.prompt * 1000) + 200
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "reactor": type(reactor).__name__},
                 "flow": {"prompt_s": args.prompt, "digits": DIGITS, "call_s": call_seconds},
                 "gc_tuning": not args.no_gc_tuning}
    try:
        levels = []
        for limit in args.levels:
            rate = round(limit / call_seconds, 1)
            level = await run_level(tel, stats, work, limit, rate, 2 * limit, prompt_ms)
            levels.append(level)
            print(json.dumps(level), file=sys.stderr)
            if not level["passed"]:
                break
            await sleep(2)
        passing = [lv for lv in levels if lv["passed"]]
        out["concurrency"] = levels
        out["max_concurrent_calls"] = max((lv["peak_concurrent"] for lv in passing), default=0)
        rates = []
        for rate in args.rates:
            burst = int(rate * args.burst_seconds)
            level = await run_level(tel, stats, work, burst, rate, burst, prompt_ms)
            p95 = level["setup_p95_s"]
            level["passed"] = level["passed"] and p95 is not None and p95 < 1.0
            rates.append(level)
            print(json.dumps(level), file=sys.stderr)
            if not level["passed"]:
                break
            await sleep(3)
        out["setup_rate"] = rates
        out["max_setups_per_second"] = max((lv["rate_cps"] for lv in rates if lv["passed"]), default=0)
        out["targets"] = {"concurrent_calls": 200, "setups_per_second": 50}
    finally:
        await tel.stopService()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[100, 200, 300, 400, 500])
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[50, 80, 110, 140])
    parser.add_argument("--burst-seconds", type=float, default=3.0, help="length of each set-up burst")
    parser.add_argument("--prompt", type=float, default=5.0, help="prompt length in seconds")
    parser.add_argument("--profile", help="write a pyinstrument text report here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (sipp logs, recordings)")
    parser.add_argument("--no-gc-tuning", action="store_true",
                        help="leave the garbage collector as Python sets it (watchline serve tunes it)")
    return parser.parse_args()


def run() -> None:
    args = parse_args()
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    box: list = []

    def go() -> None:
        d = Deferred.fromCoroutine(main(args))
        d.addBoth(box.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(go)
    reactor.run()
    if profiler is not None:
        profiler.stop()
        Path(args.profile).write_text(profiler.output_text(unicode=True, show_all=False))
    result = box[0] if box else None
    if hasattr(result, "raiseException"):
        result.raiseException()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run()
