"""The simulated fleet against the real server over loopback TCP (real reactor, bounded run)."""

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from ingest.jt808.protocol import Jt808ServerFactory
from ingest.jt808.sessions import Jt808Sessions
from ingest.jt808.simulator import connect_fleet, run_fleet
from ingest.limits import ConnectionLimits
from tests.ingest.jt808.fakes import FakeSink, known

FIRST = 13800000000


def serve(sink: FakeSink):
    registry = Jt808Sessions(reactor, command_timeout=5)
    factory = Jt808ServerFactory(sink, reactor, ConnectionLimits(), registry)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return port, factory, registry


@pytest.mark.parametrize("version", [2013, 2019])
@pytest_twisted.ensureDeferred
async def test_fleet_registers_reports_and_every_report_is_acked(version):
    sink = FakeSink({str(FIRST + n): known(str(FIRST + n)) for n in range(4)})
    port, factory, _registry = serve(sink)
    try:
        stats = await run_fleet(reactor, "127.0.0.1", port.getHost().port, count=4, rate=200, alarm_ratio=0.5,
                                version=version, duration=0.5, first_phone=FIRST, seed=7)
    finally:
        await port.stopListening()
    assert stats.errors == {} and stats.authenticated == 4
    assert stats.reports_sent >= 50 and stats.acked == stats.reports_sent and stats.unacked == 0
    assert stats.frames_sent == stats.reports_sent + 8  # + registration and authentication
    assert 0 < stats.alarms_sent < stats.reports_sent
    assert stats.ack_latency_p50_ms is not None and stats.ack_latency_p99_ms >= stats.ack_latency_p50_ms
    assert len(sink.reports) == stats.reports_sent
    assert sum(1 for r in sink.reports if r.alarms) == stats.alarms_sent
    assert {r.terminal_id for r in sink.reports} == {str(FIRST + n) for n in range(4)}


@pytest_twisted.ensureDeferred
async def test_refused_terminals_are_counted_as_errors():
    sink = FakeSink({str(FIRST): known(str(FIRST))})  # only the first terminal is in the fleet
    port, _factory, _registry = serve(sink)
    try:
        stats = await run_fleet(reactor, "127.0.0.1", port.getHost().port, count=3, rate=50,
                                duration=0.3, first_phone=FIRST, ready_timeout=2)
    finally:
        await port.stopListening()
    assert stats.authenticated == 1 and stats.errors == {"registration_result_4": 2}
    assert stats.acked == stats.reports_sent > 0


@pytest_twisted.ensureDeferred
async def test_simulated_terminals_answer_platform_commands():
    sink = FakeSink({str(FIRST): known(str(FIRST))})
    port, _factory, registry = serve(sink)
    try:
        from twisted.internet.defer import Deferred

        fleet = Deferred.fromCoroutine(run_fleet(reactor, "127.0.0.1", port.getHost().port, count=1, rate=10,
                                                 duration=1.5, first_phone=FIRST, version=2019))
        for _ in range(200):
            if registry.is_connected(str(FIRST)):
                break
            await deferLater(reactor, 0.01, lambda: None)
        assert await registry.confirm_alarm(str(FIRST), 0, 1) == 0
        assert await registry.send_text(str(FIRST), "hello") == 0
        report = await registry.query_position(str(FIRST))
        assert report.terminal_id == str(FIRST) and abs(report.fix.lat - 22.543) < 1e-6
        stats = await fleet
    finally:
        await port.stopListening()
    assert stats.errors == {}


@pytest_twisted.ensureDeferred
async def test_a_connected_fleet_runs_open_and_closed_loop_phases_with_their_own_counts():
    sink = FakeSink({str(FIRST + n): known(str(FIRST + n)) for n in range(3)})
    port, factory, _registry = serve(sink)
    try:
        fleet = await connect_fleet(reactor, "127.0.0.1", port.getHost().port, 3, first_phone=FIRST, seed=3)
        try:
            assert len(fleet.ready) == 3 and fleet.errors_so_far() == {}
            paced = await fleet.report(100, 0.3)
            flood = await fleet.saturate(0.4, window=2, warmup=0.1)
        finally:
            await fleet.close()
    finally:
        await port.stopListening()
    # Each phase counts from zero (no registration frames); who is logged in carries over.
    assert paced.authenticated == flood.authenticated == 3
    assert paced.frames_sent == paced.reports_sent >= 20 and paced.acked == paced.reports_sent
    assert paced.unacked == 0 and paced.errors == {} and paced.acked_per_s > 0
    # Closed loop: every answered report was followed by the next, so it sent far more than the paced phase
    # and left nothing unanswered once it stopped.
    assert flood.reports_sent > 4 * paced.reports_sent and flood.acked == flood.reports_sent
    assert flood.unacked == 0 and flood.errors == {} and flood.acked_per_s > 0
    assert len(sink.reports) == paced.reports_sent + flood.reports_sent
    assert factory.stats.reports == len(sink.reports)


@pytest_twisted.ensureDeferred
async def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        await run_fleet(reactor, "127.0.0.1", 1, count=1, rate=1, version=2011)
    with pytest.raises(ValueError):
        await run_fleet(reactor, "127.0.0.1", 1, count=1, rate=1, alarm_ratio=2)
    with pytest.raises(ValueError):
        await connect_fleet(reactor, "127.0.0.1", 1, 0)
