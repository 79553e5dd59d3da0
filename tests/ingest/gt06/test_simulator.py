"""The simulated fleet against the real server over loopback TCP (our own listener, no service)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest_twisted
from twisted.internet.defer import Deferred

from ingest.gt06.decoder import TerminalContext, decode
from ingest.gt06.framing import Frame, build_frame
from ingest.gt06.server import Gt06ServerFactory
from ingest.gt06.simulator import fleet_imeis, gps_block, luhn_imei, run_fleet
from ingest.limits import ConnectionLimits

from .fakes import FakeSink


def test_imeis_carry_a_luhn_check_digit():
    assert luhn_imei("49015420323751") == "490154203237518"  # the textbook example
    imeis = fleet_imeis(3)
    assert len(set(imeis)) == 3 and all(len(i) == 15 and i.isdigit() for i in imeis)


def test_gps_block_round_trips_through_the_decoder():
    when = datetime(2024, 3, 15, 14, 30, 45, tzinfo=timezone.utc)
    body = gps_block(when, -33.86882, -70.65, 72, 275)
    report = decode(Frame(build_frame(0x10, body, 1)), TerminalContext("1"), when).report
    assert report.time == when
    fix = report.fix
    assert (fix.lat, fix.lon, fix.speed_kmh, fix.course) == (-33.86882, -70.65, 72, 275)


def test_bad_arguments_are_refused():
    failures: list = []
    Deferred.fromCoroutine(run_fleet(None, "127.0.0.1", 1, count=0, rate=1.0)).addErrback(failures.append)
    assert failures[0].check(ValueError)


@pytest_twisted.ensureDeferred
async def test_fleet_against_the_server_over_loopback():
    from twisted.internet import reactor

    imeis = fleet_imeis(4)
    sink = FakeSink(known=tuple(imeis))
    factory = Gt06ServerFactory(sink, reactor, ConnectionLimits())
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        stats = await run_fleet(reactor, "127.0.0.1", port.getHost().port, count=4, rate=200, alarm_ratio=0.3,
                                duration=0.5, imeis=imeis, seed=7)
    finally:
        await port.stopListening()
    assert stats.logged_in == 4 and stats.errors == {}
    assert 60 <= stats.sent <= 110 and stats.alarms_sent > 0
    assert stats.acked == stats.alarms_sent and stats.unacked == 0
    assert len(sink.reports) == stats.sent
    assert {r.terminal_id for r in sink.reports} == set(imeis)
    summary = stats.as_dict()
    assert summary["p50_ms"] is not None and summary["p50_ms"] <= summary["p99_ms"]
