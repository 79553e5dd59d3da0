"""The ingest pipeline (the real IngestSink) and the position recorder, on the embedded backends."""

import random
from datetime import datetime, timedelta, timezone

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import globalLogPublisher

from alarms.report import Fix, Report
from crm.db import Database
from crm.migrate import upgrade
from ingest.pipeline import IngestPipeline, report_message, report_routing_key
from ingest.recorder import PositionRecorder
from ingest.sink import TerminalInfo
from tests.crm.storage_contract import rows
from watchline.live.memory import MemoryLiveState
from watchline.mq import BusUnavailable
from watchline.mq.fake import FakeBus
from watchline.mq.memory import MemoryBus


@pytest.fixture
def parts(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    db.vehicles.import_rows_blocking(rows({"plate": "P1", "terminal_id": "0123"}))
    bus, live = MemoryBus(reactor), MemoryLiveState(reactor)
    bus.startService()
    live.startService()
    yield db, bus, live
    pytest_twisted.blockon(bus.stopService())
    live.stopService()
    pytest_twisted.blockon(db.stopService())


def report(i: int, terminal: str = "123", **kw) -> Report:
    t = datetime(2026, 5, 1, tzinfo=timezone.utc) + timedelta(seconds=i)
    return Report("jt808", terminal, t, Fix(31.0 + i / 1e4, 121.0, speed_kmh=i), report_id=f"id{terminal}-{i}", **kw)


def test_routing_key_keeps_topic_words_safe():
    assert report_routing_key(report(0, "a.b#c")) == "report.jt808.a_b_c"


def decoded_reports() -> list[Report]:
    """Reports as the JT/T 808 decoder builds them: items, nested extras, alarms, no fix, bad time."""
    from ingest.jt808.location import decode_location
    from ingest.jt808.terminal import location_body

    when = datetime(2026, 5, 1, 8, 30, tzinfo=timezone(timedelta(hours=8)))
    received = datetime(2026, 5, 1, 0, 30, 1, 250000, tzinfo=timezone.utc)
    bodies = [
        location_body(lat=22.5, lon=114.0, time=when, speed_kmh=42.5, course=270,
                      items=[(0x01, b"\x00\x01\xe2\x40"), (0x30, b"\x1a"), (0x31, b"\x0c")]),
        location_body(lat=-33.9, lon=-70.6, time=when, alarm=1 << 20 | 1,
                      items=[(0x12, b"\x01\x00\x00\x00\x07\x01"), (0x05, bytes(range(30))), (0xE1, b"\xab")]),
        location_body(lat=95.0, lon=114.0, time=when)[:22] + b"\x99\x13\x45\x00\x00\x00",  # no fix, bad time
    ]
    return [decode_location(b, terminal_id="13800000000", serial=n, received_at=received) for n, b in enumerate(bodies)]


@pytest.mark.parametrize("plate", [None, "粤B12345"])
def test_report_message_is_to_message_with_the_plate(plate):
    beijing = timezone(timedelta(hours=8))
    reports = decoded_reports() + [
        report(3), report(4, alarms=("sos", "overspeed"), extras={"a": [1, {"b": 2}]}),
        report(5, received_at=datetime(2026, 5, 1, 8, tzinfo=beijing)),  # whole second, not UTC
        Report("jt808", "1", datetime(2026, 5, 1, 8, 0, 0, 5, tzinfo=beijing), None),
        # UTC received times, as the terminal servers stamp them: with and without microseconds.
        report(6, received_at=datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc)),
        report(7, received_at=datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=timezone.utc)),
    ]
    assert reports[2].fix is None and "time_invalid" in reports[2].extras
    for r in reports:
        message = report_message(r, plate)
        assert message == r.with_plate(plate).to_message()
        assert list(message) == list(r.to_message())  # same keys in the same order: same JSON text
        assert Report.from_message(message) == r.with_plate(plate)


@pytest_twisted.ensureDeferred
async def test_lookup_is_cached_and_reports_get_their_plate(parts):
    db, _, _ = parts
    bus = FakeBus()
    clock = task.Clock()
    pipeline = IngestPipeline(db.vehicles, bus, clock, cache_ttl=60)
    assert (await pipeline.lookup_terminal("jt808", "00123")).plate == "P1"
    calls = []
    original = db.vehicles.lookup_terminal
    db.vehicles.lookup_terminal = lambda *a: calls.append(a) or original(*a)
    await pipeline.submit([report(0), report(1, "999")])
    assert calls == [("jt808", "999")]  # 123 came from the cache; the unknown one was looked up
    produced = bus.produced()
    assert [(k, m["plate"]) for k, m in produced] == [("report.jt808.123", "P1"), ("report.jt808.999", None)]
    batched = []
    original_many = db.vehicles.lookup_terminals
    db.vehicles.lookup_terminals = lambda *a: batched.append(a) or original_many(*a)
    clock.advance(61)
    await pipeline.submit([report(2)])
    assert bus.produced()[-1][1]["plate"] == "P1"  # expired: served as it was, looked up again in the background
    clock.advance(pipeline.refresh_delay)
    assert batched == [("jt808", ["123"])] and len(calls) == 1


class SlowVehicles:
    """``db.vehicles`` whose lookups wait until the test answers them."""

    def __init__(self) -> None:
        self.waiting: list[tuple[str, list[str], Deferred]] = []

    def lookup_terminal(self, protocol: str, terminal_id: str) -> Deferred:
        return self.lookup_terminals(protocol, [terminal_id]).addCallback(lambda found: found.get(terminal_id))

    def lookup_terminals(self, protocol: str, terminal_ids: list[str]) -> Deferred:
        answer: Deferred = Deferred()
        self.waiting.append((protocol, list(terminal_ids), answer))
        return answer

    async def set_auth_code(self, protocol: str, terminal_id: str, auth_code: str) -> None:
        pass

    def answer(self, plates: dict[str, str] | None = None, error: Exception | None = None) -> list[str]:
        """Answer the one lookup under way (the terminals not in ``plates`` are unknown); its ids."""
        (protocol, ids, answer), = self.waiting
        self.waiting.clear()
        if error is not None:
            answer.errback(error)
        else:
            answer.callback({t: TerminalInfo(protocol, t, plate) for t, plate in (plates or {}).items()})
        return ids


@pytest_twisted.ensureDeferred
async def test_a_known_terminal_is_looked_up_again_without_holding_its_reports():
    vehicles, bus, clock = SlowVehicles(), FakeBus(), task.Clock()
    pipeline = IngestPipeline(vehicles, bus, clock, cache_ttl=60)
    first = ensureDeferred(pipeline.submit([report(0), report(1, "456")]))
    vehicles.answer({"123": "P1"})  # unknown terminals are waited for
    vehicles.answer({"456": "P2"})
    await first
    clock.advance(61)
    await pipeline.submit([report(2), report(3, "456")])  # past their time: served as they were
    await pipeline.submit([report(4)])
    assert vehicles.waiting == []  # due terminals wait a moment for each other...
    clock.advance(pipeline.refresh_delay)
    assert sorted(vehicles.answer({"123": "P1-new"})) == ["123", "456"]  # ...and are looked up together
    await pipeline.submit([report(5), report(6, "456")])
    plates = [m["plate"] for _, m in bus.produced()]
    assert plates == ["P1", "P2", "P1", "P2", "P1", "P1-new", None]  # 456 has left the fleet
    clock.advance(pipeline.refresh_delay)
    assert vehicles.waiting == []


@pytest_twisted.ensureDeferred
async def test_a_failed_lookup_keeps_the_entry_and_is_tried_again_later():
    vehicles, bus, clock = SlowVehicles(), FakeBus(), task.Clock()
    pipeline = IngestPipeline(vehicles, bus, clock, cache_ttl=60)
    first = ensureDeferred(pipeline.submit([report(0)]))
    vehicles.answer({"123": "P1"})
    await first
    clock.advance(61)
    await pipeline.submit([report(1)])
    clock.advance(pipeline.refresh_delay)
    failures: list = []

    def observe(event) -> None:
        if "log_failure" in event:
            failures.append(event["log_failure"])

    globalLogPublisher.addObserver(observe)
    try:
        vehicles.answer(error=ConnectionError("database down"))
    finally:
        globalLogPublisher.removeObserver(observe)
    assert [f.type for f in failures] == [ConnectionError]
    clock.advance(10)
    await pipeline.submit([report(2)])
    clock.advance(pipeline.refresh_delay)
    assert not vehicles.waiting  # not again at every report: after a quarter of the TTL
    clock.advance(5)
    await pipeline.submit([report(3)])
    clock.advance(pipeline.refresh_delay)
    assert len(vehicles.waiting) == 1
    assert [m["plate"] for _, m in bus.produced()] == ["P1"] * 4


@pytest_twisted.ensureDeferred
async def test_a_refresh_read_before_a_new_auth_code_is_not_kept():
    vehicles, clock = SlowVehicles(), task.Clock()
    pipeline = IngestPipeline(vehicles, FakeBus(), clock, cache_ttl=60)
    first = ensureDeferred(pipeline.submit([report(0)]))
    vehicles.answer({"123": "P1"})
    await first
    clock.advance(61)
    await pipeline.submit([report(1)])
    clock.advance(pipeline.refresh_delay)  # the refresh is under way...
    await pipeline.set_auth_code("jt808", "123", "NEWCODE")  # ...when the terminal registers again
    vehicles.answer({"123": "P1"})  # what the refresh read is older than the new code
    looking = ensureDeferred(pipeline.lookup_terminal("jt808", "123"))
    assert len(vehicles.waiting) == 1  # not served from the cache: read again
    vehicles.answer({"123": "P1"})
    assert (await looking).plate == "P1"


@pytest_twisted.ensureDeferred
async def test_the_fleet_store_answers_the_batched_lookup(parts):
    db, _, _ = parts
    found = await db.vehicles.lookup_terminals("jt808", ["00123", "123", "999"])
    assert list(found) == ["123"] and found["123"].plate == "P1"
    assert found["123"] == await db.vehicles.lookup_terminal("jt808", "123")
    assert await db.vehicles.lookup_terminals("jt808", []) == {}


@pytest_twisted.ensureDeferred
async def test_entries_of_terminals_looked_up_together_expire_apart():
    vehicles, clock = SlowVehicles(), task.Clock()
    pipeline = IngestPipeline(vehicles, FakeBus(), clock, cache_ttl=60, rng=random.Random(7))
    for n in range(200):
        looking = ensureDeferred(pipeline.lookup_terminal("jt808", str(1000 + n)))
        vehicles.answer({str(1000 + n): f"P{n}"})
        await looking
    expiries = [expires for expires, _ in pipeline._cache.values()]
    assert 45 <= min(expiries) < 50 and 55 < max(expiries) <= 60


@pytest_twisted.ensureDeferred
async def test_submit_fails_when_the_bus_does(parts):
    db, _, _ = parts
    bus = MemoryBus(reactor)  # never started: it accepts nothing
    pipeline = IngestPipeline(db.vehicles, bus, reactor)
    with pytest.raises(BusUnavailable):
        await pipeline.submit([report(0)])


@pytest_twisted.ensureDeferred
async def test_recorder_batches_positions_and_keeps_the_newest_live(parts):
    db, bus, live = parts
    recorder = PositionRecorder(db, bus, live, reactor, batch_size=50, flush_interval=0.05)
    await recorder.startService()
    pipeline = IngestPipeline(db.vehicles, bus, reactor)
    reports = [report(i) for i in range(120)]
    reports[60] = report(60, alarms=("sos",))
    await pipeline.submit(reports[::-1])  # newest first: the live position must still be the newest
    for _ in range(100):
        found = await db.positions.latest("P1", 500)
        if len(found) == 120:
            break
        await task.deferLater(reactor, 0.02, lambda: None)
    assert len(found) == 120 and found[0].speed_kmh == 119
    assert [p.alarms for p in found if p.alarms] == [("sos",)]
    assert (await live.get_position("P1"))["speed_kmh"] == 119
    await recorder.stopService()
