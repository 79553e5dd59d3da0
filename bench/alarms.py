"""Alarm engine benchmark on the embedded default: alarm reports through the bus into incidents.

    python bench/alarms.py [--rate 1000] [--seconds 60] [--vehicles 5000] [--new-share 0.1]
                           [--emergency-share 0.1]

Runs Watchline's own service tree (role ``all``: SQLite file, in-process bus, memory live state,
position recorder, alarm engine, incident desk, HTTP API with its event stream) in this process and
feeds it alarm reports through the ingest pipeline at a steady rate — what the terminal servers do
after decoding. Every report carries an event alarm (JT/T 808 SOS, illegal door open, illegal
ignition, illegal movement: alarms raised on every report that carries them). A share
``--new-share`` of the reports starts an alarm on a random vehicle (a new incident, unless that
vehicle already has it); the rest repeat one of the alarms already going, as terminals do until the
alarm is handled. ``--new-share 1`` makes nearly every report a new incident (the stress case).

Measured, in wall-clock seconds of this process:
- ``opened_ms``: from the moment the pipeline accepted the first report of a (vehicle, alarm) pair
  (the terminal's ack would go out then) to the ``incident.opened`` bus event — p50/p99/max;
- ``emergency_stream_ms``: for SOS, from accepted to the ``incident.escalated`` event read by an SSE
  client over loopback HTTP from ``/api/v1/events``;
- ``reconciliation``: after the queue drains, incidents in the database against what was sent — one
  incident per distinct (vehicle, alarm) pair and the incidents' report counts summing to the
  reports sent: nothing lost, nothing doubled.
Targets (issue 4): 1,000 reports/s for 60 s, opened p99 <= 50 ms, emergency stream p99 <= 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ALARMS = ("illegal_ignition", "illegal_movement", "illegal_door_open")


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"n": len(ordered), "p50": at(0.50), "p99": at(0.99), "max": round(ordered[-1], 2)}


def fleet_rows(n: int):
    from crm.fleet import validate

    records = ((i + 2, {"plate": f"粤B{i:05d}", "terminal_id": f"0{14000000000 + i}", "protocol": "jt808",
                        "owner_name": f"Owner {i}", "owner_phone": f"139{i:08d}",
                        "tier": ("platinum", "gold", "normal", "normal")[i % 4], "pin": "1234"})
               for i in range(n))
    rows, errors = validate(records, "CN")
    assert not errors, errors[:3]
    return rows


class SseClient:
    """A raw HTTP/1.1 event-stream reader that timestamps every ``incident.escalated`` of an emergency."""

    def __init__(self, path: str, seen: dict[tuple[str, str], float]) -> None:
        from twisted.internet import protocol

        client = self

        class Stream(protocol.Protocol):
            def connectionMade(self):  # noqa: N802 - twisted's name
                self.buffer, self.head = b"", None
                self.transport.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())

            def dataReceived(self, data):  # noqa: N802
                now = time.time()
                self.buffer += data
                if self.head is None:
                    if b"\r\n\r\n" not in self.buffer:
                        return
                    self.head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
                    client.status = self.head.split(b" ", 2)[1].decode()
                *blocks, self.buffer = self.buffer.split(b"\n\n")
                for block in blocks:  # each event is one HTTP chunk: skip the chunk-size line before it
                    at = block.find(b"event: incident.escalated\ndata: ")
                    if at < 0:
                        continue
                    incident = json.loads(block[at + 32:])["incident"]
                    if incident["severity"] == "emergency":
                        seen.setdefault((incident["plate"], incident["alarm"]), now)

        self.protocol = Stream()
        self.status = None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from twisted.internet import reactor, task
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    from alarms.report import Fix, Report
    from crm.migrate import upgrade
    from tests.conftest import free_port
    from watchline.config import load_config
    from watchline.run import tune_gc
    from watchline.service import Watchline

    folder = Path(tempfile.mkdtemp(prefix="wl-bench-alarms-"))
    api_port = free_port()
    config = load_config(environ={
        "WATCHLINE_DATABASE_URL": f"sqlite:///{folder / 'watchline.db'}",
        "WATCHLINE_API_LISTEN": f"tcp:{api_port}:interface=127.0.0.1",
        "WATCHLINE_INGEST_JT808": "", "WATCHLINE_INGEST_GT06": "", "WATCHLINE_SIP_LISTEN": "",
        **{k: v for k, v in os.environ.items() if k.startswith("WATCHLINE_")},  # e.g. batch sizes to compare
    })
    app = Watchline(config, reactor)
    upgrade(app.db.engine)
    t0 = time.perf_counter()
    app.db.vehicles.import_rows_blocking(fleet_rows(args.vehicles))
    import_s = time.perf_counter() - t0
    token = app.db.users.issue_token_blocking("agent", "bench")
    app.startService()
    tune_gc()  # as `watchline serve` does once started

    first_accepted: dict[tuple[str, str], float] = {}
    opened_at: dict[tuple[str, str], float] = {}
    streamed: dict[tuple[str, str], float] = {}

    def on_opened(_key: str, message: dict) -> None:
        incident = message["incident"]
        opened_at.setdefault((incident["plate"], incident["alarm"]), time.time())

    await app.bus.start_consuming(on_opened, "incident.opened")
    sse = SseClient(f"/api/v1/events?token={token}", streamed)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", api_port), sse.protocol)

    rng = random.Random(7)
    plates = [f"粤B{i:05d}" for i in range(args.vehicles)]
    sent = {"reports": 0}
    pairs_sent: dict[tuple[str, str], int] = {}
    open_pairs: list[tuple[int, tuple[str, str]]] = []
    tick = 0.01
    errors: list[str] = []

    async def submit(report: Report, pair: tuple[str, str]) -> None:
        await app.ingest.submit([report])
        first_accepted.setdefault(pair, time.time())

    def send_tick() -> None:  # paced by the clock: a late tick sends what is owed
        count = int(args.rate * (time.perf_counter() - started)) - sent["reports"]
        now = datetime.now(timezone.utc)
        for _ in range(count):
            if not open_pairs or rng.random() < args.new_share:  # a vehicle starts an alarm
                v = rng.randrange(args.vehicles)
                alarm = "sos" if rng.random() < args.emergency_share else rng.choice(ALARMS)
                pair = (plates[v], alarm)
                if pair not in pairs_sent:
                    open_pairs.append((v, pair))
            else:  # a terminal repeats the alarm it is in
                v, pair = open_pairs[rng.randrange(len(open_pairs))]
                alarm = pair[1]
            pairs_sent[pair] = pairs_sent.get(pair, 0) + 1
            report = Report("jt808", f"0{14000000000 + v}", now, Fix(23.0 + v / 1e5, 113.0, speed_kmh=40.0),
                            alarms=(alarm,), raw_alarms={"jt808_word": 0})
            sent["reports"] += 1
            _defer(submit(report, pair)).addErrback(lambda f: errors.append(f.getErrorMessage()))

    loop = task.LoopingCall(send_tick)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    loop.start(tick, now=True)
    await task.deferLater(reactor, args.seconds, lambda: None)
    loop.stop()
    sending_s = time.perf_counter() - started

    # Drain: every report through the engine, then the incidents in the database.
    engine = app.engine
    for _ in range(6000):  # bounded: 60 s
        if engine.stats["reports"] >= sent["reports"] and len(opened_at) >= len(pairs_sent):
            break
        await task.deferLater(reactor, 0.01, lambda: None)
    for _ in range(120):  # bounded: 60 s — until the reports in hand are counted
        incidents = await app.db.incidents.search(limit=10_000_000)
        if sum(i.count for i in incidents) >= sent["reports"] and len(streamed) >= len(
                [p for p in pairs_sent if p[1] == "sos"]):
            break
        await task.deferLater(reactor, 0.5, lambda: None)
    drain_s = time.perf_counter() - started - sending_s
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    await task.deferLater(reactor, 1.0, lambda: None)  # anything doubled or over-counted shows by now
    incidents = await app.db.incidents.search(limit=10_000_000)
    by_pair: dict[tuple[str, str], list] = {}
    for incident in incidents:
        by_pair.setdefault((incident.plate, incident.alarm), []).append(incident)
    lost = [p for p in pairs_sent if p not in by_pair]
    doubled = [p for p, found in by_pair.items() if len(found) > 1]
    miscounted = [p for p, n in pairs_sent.items() if p in by_pair and sum(i.count for i in by_pair[p]) != n]
    unexpected = [p for p in by_pair if p not in pairs_sent]
    if miscounted and args.verbose:
        for p in miscounted[:5]:
            print("miscounted", p, pairs_sent[p], [(i.count, i.state) for i in by_pair[p]], file=sys.stderr)

    opened = [(opened_at[p] - first_accepted[p]) * 1000 for p in opened_at if p in first_accepted]
    stream = [(streamed[p] - first_accepted[p]) * 1000 for p in streamed if p in first_accepted]
    emergencies = sum(1 for p in pairs_sent if p[1] == "sos")
    result = {
        "backend": "embedded (SQLite, in-process bus, memory live state)",
        "vehicles": args.vehicles, "fleet_import_s": round(import_s, 2),
        "offered_rate": args.rate, "seconds": args.seconds, "new_share": args.new_share,
        "reports_sent": sent["reports"], "submit_errors": len(errors), "achieved_rate": round(sent["reports"] / sending_s, 1),
        "reports_through_engine": engine.stats["reports"], "drain_after_load_s": round(drain_s, 2),
        "cpu_s_per_1000_reports": round((cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime)
                                        / max(1, sent["reports"]) * 1000, 3),
        "incidents_opened": len(incidents), "emergency_incidents": emergencies,
        "opened_ms": percentiles(opened),
        "emergency_stream_ms": percentiles(stream), "event_stream_status": sse.status,
        "reconciliation": {"pairs_sent": len(pairs_sent), "incidents": len(incidents), "lost": len(lost),
                           "doubled": len(doubled), "miscounted": len(miscounted), "unexpected": len(unexpected),
                           "alarm_reports_sent": sent["reports"],
                           "alarm_reports_counted": sum(i.count for i in incidents)},
    }
    p99_open, p99_stream = result["opened_ms"]["p99"], result["emergency_stream_ms"]["p99"]
    result["targets"] = {
        "rate_1000_per_s": result["achieved_rate"] >= 0.98 * 1000 and args.rate >= 1000,
        "opened_p99_le_50ms": p99_open is not None and p99_open <= 50,
        "emergency_stream_p99_le_100ms": p99_stream is not None and len(stream) == emergencies and p99_stream <= 100,
        "nothing_lost_or_doubled": not (lost or doubled or miscounted or unexpected or errors),
    }
    sse.protocol.transport.loseConnection()
    await app.stopService()
    return result


def _defer(coroutine):
    from twisted.internet.defer import Deferred

    return Deferred.fromCoroutine(coroutine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000, help="alarm reports per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--vehicles", type=int, default=5000)
    parser.add_argument("--emergency-share", type=float, default=0.1, help="share of new alarms that are SOS")
    parser.add_argument("--new-share", type=float, default=0.1,
                        help="share of reports starting a new alarm (the rest repeat an open one); 1.0 = all new")
    parser.add_argument("--verbose", action="store_true", help="print miscounted pairs to stderr")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    out: dict[str, Any] = {}

    def done(result):
        out.update(result) if isinstance(result, dict) else out.update(error=str(result.value))
        reactor.stop()

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(run(args)).addBoth(done))
    reactor.run()
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0 if "error" not in out and all(out.get("targets", {}).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
