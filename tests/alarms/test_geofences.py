"""The geofence stage: crossings raised once each, state kept across restarts and workers, fences reloaded
live — and, through the whole engine, a vehicle driving into a fence opens a geofence_enter incident."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest_twisted
from twisted.internet import reactor, task

from alarms.geofences import GeofenceWatch, inside_key
from alarms.report import Fix, Report
from crm.db import Database
from crm.fences import FenceDraft
from crm.migrate import upgrade
from geo.geodesy import destination
from tests.crm.fences_contract import U_SHAPE, circle
from tests.crm.storage_contract import rows
from watchline.live.memory import MemoryLiveState
from watchline.mq.memory import MemoryBus

T0 = datetime(2026, 5, 1, 8, tzinfo=timezone.utc)
DEPOT = (31.2, 121.5)  # circle(): 500 m around it


class Raised:
    """Stands in for the engine's _raise: records (plate, alarm, fence id), optionally slow or failing."""

    def __init__(self):
        self.alarms: list[tuple[str, str, object]] = []
        self.delay = 0.0
        self.fail_next = False

    async def __call__(self, report: Report, alarm: str):
        if self.delay:
            await task.deferLater(reactor, self.delay, lambda: None)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("database down")
        assert report.alarms == (alarm,) and report.extras["fence_name"]
        self.alarms.append((report.plate, alarm, report.extras["fence_id"]))
        return None


class Shared(MemoryLiveState):
    """In-memory live state standing in for Redis: two watches on one instance are two workers."""

    shared = True


@pytest_twisted.async_yield_fixture
async def world(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    bus = MemoryBus(reactor)
    bus.startService()
    watches: list[GeofenceWatch] = []

    async def watch(live, raised=None, **kwargs) -> GeofenceWatch:
        if not live.running:
            live.startService()
        w = GeofenceWatch(db, bus, live, reactor, raised or Raised(), **kwargs)
        await w.start()
        watches.append(w)
        return w

    try:
        await db.vehicles.import_rows(rows({"plate": "P1", "terminal_id": "11"},
                                           {"plate": "P2", "terminal_id": "12", "owner_phone": "13900139000"}), "t")
        yield db, bus, watch
    finally:
        for w in watches:
            await w.stop()
        await bus.stopService()
        await db.stopService()


def at(lat: float, lon: float, i: int = 0, plate: str = "P1", valid: bool = True) -> Report:
    return Report("gt06", "1", T0 + timedelta(seconds=i), Fix(lat, lon, valid=valid), plate=plate)


def off(point: tuple[float, float], metres: float, bearing: float = 0.0) -> tuple[float, float]:
    return destination(point[0], point[1], bearing, metres)


async def drive(watch: GeofenceWatch, *points: tuple[float, float], plate: str = "P1") -> list[str]:
    events = []
    for i, (lat, lon) in enumerate(points):
        events.extend(c.alarm.removeprefix("geofence_") for c in await watch.check(at(lat, lon, i, plate)))
    return events


@pytest_twisted.ensureDeferred
async def test_each_crossing_fires_once_with_hysteresis_on_exit(world):
    db, _, watch = world
    fence = await db.fences.create(circle(), "t")
    raised = Raised()
    w = await watch(MemoryLiveState(reactor), raised)
    events = await drive(w, off(DEPOT, 2000), DEPOT, off(DEPOT, 100), DEPOT,
                         off(DEPOT, 505),  # 5 m outside: GPS jitter on the edge, still counted inside
                         off(DEPOT, 2000), off(DEPOT, 3000), off(DEPOT, 400, 90))
    assert events == ["enter", "exit", "enter"]
    assert raised.alarms == [("P1", "geofence_enter", fence.id), ("P1", "geofence_exit", fence.id),
                             ("P1", "geofence_enter", fence.id)]


@pytest_twisted.ensureDeferred
async def test_concave_polygon_notch_is_outside(world):
    db, _, watch = world
    u = await db.fences.create(FenceDraft("U", "polygon", {"points": U_SHAPE}), "t")
    w = await watch(MemoryLiveState(reactor))
    # Across the U at lat 31.02: left arm, the notch between the arms (inside the box, outside the U), right arm.
    events = await drive(w, (31.02, 120.99), (31.02, 121.005), (31.02, 121.015), (31.02, 121.025), (31.02, 121.04))
    assert events == ["enter", "exit", "enter", "exit"]
    assert w.index.containing(31.02, 121.015) == frozenset() and u.id in w.index.containing(31.005, 121.015)


@pytest_twisted.ensureDeferred
async def test_fence_across_the_antimeridian(world):
    db, _, watch = world
    fiji = await db.fences.create(FenceDraft("Fiji strait", "polygon", {"points": [
        [-17.0, 179.9], [-17.0, -179.9], [-16.9, -179.9], [-16.9, 179.9]]}), "t")
    ring = await db.fences.create(circle("Date line", lat=0.0, lon=180.0, radius_m=5000), "t")
    w = await watch(MemoryLiveState(reactor))
    # Crossing the date line inside the fence is no crossing of the fence.
    assert await drive(w, (-16.95, 179.8), (-16.95, 179.95), (-16.95, -179.95), (-16.95, -179.8)) == [
        "enter", "exit"]
    assert await drive(w, (0.0, 179.9), (0.0, 179.99), (0.0, -179.99), (0.01, -179.98), (0.0, -179.9),
                       plate="P2") == ["enter", "exit"]
    assert {fiji.id, ring.id} == {f.id for f in w.index}


@pytest_twisted.ensureDeferred
async def test_restart_keeps_the_inside_set_and_unknown_state_is_a_silent_baseline(world):
    db, _, watch = world
    await db.fences.create(circle(), "t")
    live = MemoryLiveState(reactor)  # outlives the watches, as Redis outlives a worker
    first = await watch(live)
    assert await drive(first, off(DEPOT, 2000), DEPOT) == ["enter"]
    await first.stop()
    again = await watch(live)  # the restarted worker
    assert await drive(again, DEPOT, off(DEPOT, 2000)) == ["exit"]
    # Live state lost (the embedded in-memory store restarted): the first position is a baseline, so a
    # vehicle parked inside a fence does not "enter" it again.
    fresh = await watch(MemoryLiveState(reactor))
    assert await drive(fresh, DEPOT, DEPOT, off(DEPOT, 2000)) == ["exit"]


@pytest_twisted.ensureDeferred
async def test_two_workers_on_shared_state_raise_each_crossing_once(world):
    db, _, watch = world
    await db.fences.create(circle(), "t")
    live = Shared(reactor)
    raised = Raised()
    raised.delay = 0.05  # a slow incident write: the other worker's report arrives meanwhile
    a, b = await watch(live, raised), await watch(live, raised)
    await a.check(at(*off(DEPOT, 2000)))  # baseline
    from twisted.internet.defer import Deferred, gatherResults

    both = await gatherResults([Deferred.fromCoroutine(a.check(at(*DEPOT, i=1))),
                                Deferred.fromCoroutine(b.check(at(*off(DEPOT, 50), i=2)))])
    assert sorted(len(c) for c in both) == [0, 1]
    # Alternating workers: each sees what the other wrote.
    for i, (w, point) in enumerate(((a, DEPOT), (b, off(DEPOT, 2000)), (a, off(DEPOT, 2500)), (b, DEPOT))):
        await w.check(at(*point, i=3 + i))
    assert [alarm for _, alarm, _ in raised.alarms] == ["geofence_enter", "geofence_exit", "geofence_enter"]
    assert await live.get(inside_key("P1")) == [raised.alarms[0][2]]


@pytest_twisted.ensureDeferred
async def test_owner_fences_apply_to_that_owners_vehicles_only(world):
    db, _, watch = world
    owner = (await db.vehicles.get_by_plate("P1")).owner.id
    home = await db.fences.create(circle("Home", owner_id=owner), "t")
    everyone = await db.fences.create(circle("Zone", radius_m=1000), "t")
    raised = Raised()
    w = await watch(MemoryLiveState(reactor), raised)
    await drive(w, off(DEPOT, 5000), DEPOT, plate="P1")
    await drive(w, off(DEPOT, 5000), DEPOT, plate="P2")
    assert sorted((plate, fence) for plate, _, fence in raised.alarms) == sorted([
        ("P1", everyone.id), ("P1", home.id), ("P2", everyone.id)])


@pytest_twisted.ensureDeferred
async def test_fences_reload_without_restart_by_message_and_by_poll(world):
    db, bus, watch = world
    live = MemoryLiveState(reactor)
    await db.fences.create(circle("Elsewhere", lat=40.0), "t")
    w = await watch(live, poll_interval=0.05)
    assert await drive(w, off(DEPOT, 2000), DEPOT) == []  # no fence here yet
    depot = await db.fences.create(circle(), "t")
    await bus.produce("fences.changed", {"id": depot.id})  # what the API does after a write
    await settle(lambda: depot.id in w.index)
    assert await drive(w, DEPOT) == ["enter"]  # a fence drawn around a vehicle is entered
    road = await db.fences.create(FenceDraft("Road", "corridor", {
        "path": [list(off(DEPOT, 3000, 90)), list(off(DEPOT, 6000, 90))], "width_m": 100}), "t")
    await settle(lambda: road.id in w.index)  # no message: the version poll finds it
    assert await drive(w, off(DEPOT, 4000, 90)) == ["exit", "enter"]
    await db.fences.delete(road.id, "t")
    await settle(lambda: road.id not in w.index)
    assert await drive(w, off(DEPOT, 4000, 90)) == []  # a deleted fence is forgotten, not left
    assert await live.get(inside_key("P1")) == []


@pytest_twisted.ensureDeferred
async def test_a_failed_raise_is_found_again_on_the_next_report(world):
    db, _, watch = world
    fence = await db.fences.create(circle(), "t")
    raised = Raised()
    w = await watch(MemoryLiveState(reactor), raised)
    await drive(w, off(DEPOT, 2000))
    raised.fail_next = True
    assert await w.check(at(*DEPOT, i=1)) == [] and w.stats["failed"] == 1
    assert await drive(w, DEPOT, DEPOT) == ["enter"]
    assert raised.alarms == [("P1", "geofence_enter", fence.id)]


@pytest_twisted.ensureDeferred
async def test_reports_without_a_valid_fix_are_not_checked(world):
    db, _, watch = world
    await db.fences.create(circle(), "t")
    w = await watch(MemoryLiveState(reactor))
    await drive(w, off(DEPOT, 2000))
    assert await w.check(at(*DEPOT, i=1, valid=False)) == []
    assert await w.check(Report("gt06", "1", T0, None, plate="P1")) == []
    assert await w.check(at(*DEPOT, i=2, plate=None)) == []
    assert await w.check(at(95.0, 0.0, i=3)) == []
    assert w.stats["checked"] == 1 and w.stats["failed"] == 0


@pytest_twisted.ensureDeferred
async def test_without_fences_reports_cost_no_live_state_round_trip(world):
    _, _, watch = world

    class Counting(Shared):
        reads = 0

        async def get(self, key):
            Counting.reads += 1
            return await super().get(key)

    w = await watch(Counting(reactor))
    assert len(w.index) == 0
    assert await drive(w, DEPOT, off(DEPOT, 2000)) == [] and Counting.reads == 0


async def settle(check, timeout=5.0):
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("not settled")


# -- through the whole engine ---------------------------------------------------------------------

@pytest_twisted.async_yield_fixture
async def engine(sqlite_url):
    from alarms.desk import IncidentDesk
    from alarms.engine import AlarmEngine
    from ingest.pipeline import IngestPipeline

    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    bus, live = MemoryBus(reactor), MemoryLiveState(reactor)
    bus.startService()
    live.startService()
    desk = IncidentDesk(db, bus, reactor)
    engine = AlarmEngine(db, bus, live, reactor, desk, sweep_interval=0.05)
    try:
        await db.vehicles.import_rows(rows({"plate": "P1", "terminal_id": "11", "tier": "gold"}), "t")
        events = []
        await engine.startService()
        await bus.start_consuming(lambda k, m: events.append((k, m)), "fleet.#")
        yield db, bus, engine, IngestPipeline(db.vehicles, bus, reactor), events
    finally:
        await engine.stopService()
        await bus.stopService()
        live.stopService()
        await db.stopService()


def jt808(point: tuple[float, float], i: int, *alarms: str) -> Report:
    return Report("jt808", "11", T0 + timedelta(seconds=i), Fix(*point), alarms=alarms,
                  raw_alarms={"jt808_word": 0, "jt808_serial": 5})


async def incidents(db, check):
    for _ in range(250):
        found = await db.incidents.search(limit=100)
        if check(found):
            return found
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError(f"not settled: {found}")


@pytest_twisted.ensureDeferred
async def test_driving_into_a_fence_opens_one_routine_geofence_enter_incident_linked_to_it(engine):
    db, bus, alarm_engine, pipeline, events = engine
    depot = await db.fences.create(circle(), "t")
    await bus.produce("fences.changed", {"id": depot.id})
    await settle(lambda: depot.id in alarm_engine.geofences.index)
    await pipeline.submit([jt808(off(DEPOT, 2000), 0), jt808(off(DEPOT, 300), 1), jt808(DEPOT, 2, "sos")])
    found = await incidents(db, lambda f: {i.alarm for i in f} == {"geofence_enter", "sos"})
    (enter,) = [i for i in found if i.alarm == "geofence_enter"]
    assert (enter.plate, enter.severity, enter.count, enter.alarm_serial) == ("P1", "routine", 1, None)
    full = await db.incidents.get(enter.id)
    (link,) = [e for e in full.timeline if e.kind == "geofence"]
    assert link.data["fence_id"] == depot.id and link.data["fence_name"] == "Depot"
    assert link.text == f"entered fence Depot (#{depot.id})"
    await pipeline.submit([jt808(off(DEPOT, 2000), 3)])
    found = await incidents(db, lambda f: len(f) == 3)
    assert sorted(i.alarm for i in found) == ["geofence_enter", "geofence_exit", "sos"]
    assert [(k, m["fence"]["id"]) for k, m in events] == [("fleet.geofence_enter", depot.id),
                                                         ("fleet.geofence_exit", depot.id)]
    assert events[0][1]["incident_id"] == enter.id and events[0][1]["plate"] == "P1"


@pytest_twisted.ensureDeferred
async def test_rules_classify_crossings_by_fence(engine):
    from alarms.rules import parse_rules

    db, _, alarm_engine, pipeline, _ = engine
    depot = await db.fences.create(circle(), "t")
    vault = await db.fences.create(circle("Vault", lat=31.3, lon=121.5, radius_m=200), "t")
    alarm_engine.rules = parse_rules({"rule": [{"name": "vault", "alarms": ["geofence_*"], "fences": [vault.id],
                                                "severity": "emergency"}]}, "test")
    await alarm_engine.geofences.reload()
    await pipeline.submit([jt808((31.25, 121.5), 0), jt808(DEPOT, 1)])
    (first,) = await incidents(db, lambda f: len(f) == 1)
    assert (first.alarm, first.severity, first.policy["rule"]) == ("geofence_enter", "routine", "default")
    await pipeline.submit([jt808((31.3, 121.5), 2)])  # out of the depot and into the vault
    found = await incidents(db, lambda f: len(f) == 2)
    exit_, = [i for i in found if i.alarm == "geofence_exit"]
    assert exit_.severity == "routine"
    joined = await db.incidents.get(first.id)  # the vault's enter joined the open enter incident...
    assert joined.count == 2 and [e.data["fence_id"] for e in joined.timeline if e.kind == "geofence"] == [
        depot.id, vault.id]


@pytest_twisted.ensureDeferred
async def test_one_process_reads_live_state_once_per_vehicle_and_writes_only_changes(world):
    db, _, watch = world
    await db.fences.create(circle(), "t")
    calls = []

    class Counting(MemoryLiveState):
        async def get(self, key):
            calls.append("get")
            return await super().get(key)

        async def set(self, key, value, ttl=None):
            calls.append("set")
            return await super().set(key, value, ttl)

    w = await watch(Counting(reactor))
    far = [off(DEPOT, 2000 + 10 * i) for i in range(5)]
    assert await drive(w, *far, DEPOT, DEPOT, *far) == ["enter", "exit"]
    assert calls == ["get", "set", "set", "set"]  # first sight, baseline, enter, exit


@pytest_twisted.ensureDeferred
async def test_reloads_asked_for_during_a_reload_wait_for_one_more_pass(world):
    from twisted.internet.defer import Deferred, gatherResults

    db, _, watch = world
    w = await watch(MemoryLiveState(reactor))
    first = Deferred.fromCoroutine(w.reload())  # running: its version read is in flight
    depot = await db.fences.create(circle(), "t")
    late = [Deferred.fromCoroutine(w.reload()) for _ in range(5)]
    await late[-1]  # returns once a pass that began after it was asked for is done
    assert depot.id in w.index
    await gatherResults([first, *late])
    assert w.stats["reloads"] <= 3
