"""The rescue fleet and the work-order desk on the embedded backends: reports through the real
ingest pipeline and bus, time from a ``task.Clock``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from alarms.dispatch import NoTruckError, SiteMissingError, WorkOrderDesk
from alarms.report import Fix, Report
from alarms.rescue_fleet import RescueFleet
from crm.db import Database
from crm.incidents import NewIncident
from crm.migrate import upgrade
from crm.rescue import TruckBusyError
from crm.workorders import WorkOrderStateError
from geo.geodesy import distance_m
from ingest.pipeline import IngestPipeline
from tests.crm.workorders_contract import fleet_rows
from watchline.live.memory import MemoryLiveState
from watchline.mq.memory import MemoryBus

T0 = datetime(2026, 6, 1, 9, tzinfo=timezone.utc)
SITE = (22.540, 114.050)
TERMINALS = {"R1": "901", "R2": "902", "R3": "903", "C1": "904"}


class Process:
    """One Watchline process's dispatch side: its own fleet index and desk on the shared db and bus."""

    def __init__(self, db, bus, live, clock, watch_sites=True):
        self.fleet = RescueFleet(db, bus, live, clock, average_speed_kmh=36.0, max_position_age=600.0)
        self.desk = WorkOrderDesk(db, bus, clock, self.fleet, on_site_radius_m=200.0, watch_sites=watch_sites)

    async def start(self):
        for svc in (self.fleet, self.desk):
            await defer.maybeDeferred(svc.startService)

    async def stop(self):
        for svc in (self.desk, self.fleet):
            await defer.maybeDeferred(svc.stopService)


@pytest_twisted.async_yield_fixture
async def system(sqlite_url):
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    bus, live = MemoryBus(reactor), MemoryLiveState(reactor)
    bus.startService()
    live.startService()
    clock = task.Clock()
    clock.advance(T0.timestamp())
    processes = []
    try:
        await db.vehicles.import_rows(fleet_rows(
            {"plate": "R1", "terminal_id": "901", "skills": "tow,battery"},
            {"plate": "R2", "terminal_id": "902", "skills": "tyre"},
            {"plate": "R3", "terminal_id": "903", "skills": "tow"},
            {"plate": "C1", "terminal_id": "904", "kind": "customer", "owner_phone": "13900139000"}), "test")
        events = []
        for topic in ("dispatch.#", "fleet.#", "incident.#"):
            await bus.start_consuming(lambda k, m: events.append((k, m)), topic)

        async def process(watch_sites=True) -> Process:
            p = Process(db, bus, live, clock, watch_sites)
            await p.start()
            processes.append(p)
            return p

        yield db, IngestPipeline(db.vehicles, bus, reactor), clock, process, events, live
    finally:
        for p in processes:
            await p.stop()
        await bus.stopService()
        live.stopService()
        await db.stopService()


async def until(check, timeout=5.0):
    for _ in range(int(timeout / 0.01)):
        result = check()
        if result:
            return result
        await task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not met in time")


async def report(pipeline, fleets, plate, lat, lon, seconds=0.0, valid=True):
    """A terminal report through ingest and the bus; returns once every fleet has it."""
    time = T0 + timedelta(seconds=seconds)
    await pipeline.submit([Report("jt808", TERMINALS[plate], time, Fix(lat, lon, valid=valid))])

    def seen():
        return all((p := f.position(plate)) is not None and p.time == time.timestamp() for f in fleets)

    if valid:
        await until(seen)


async def place_fleet(pipeline, fleets):
    await report(pipeline, fleets, "R1", 22.550, 114.050)  # ~1.1 km north of the site
    await report(pipeline, fleets, "R2", 22.560, 114.050)  # ~2.2 km
    await report(pipeline, fleets, "R3", 22.600, 114.050)  # ~6.6 km


async def open_incident(db, lat=SITE[0], lon=SITE[1]):
    incident, _ = await db.incidents.open_or_join(NewIncident(
        plate="C1", alarm="collision", severity="emergency", priority=0, tier="normal",
        policy={"name": "agent_only", "steps": []}, time=T0, lat=lat, lon=lon), T0)
    return incident


@pytest_twisted.ensureDeferred
async def test_first_position_puts_a_truck_in_service_and_nearest_ranks_by_geodesic_distance(system):
    db, pipeline, clock, process, events, _ = system
    p = await process()
    assert p.fleet.nearest(*SITE) == []  # nobody has reported yet
    await place_fleet(pipeline, [p.fleet])
    assert [(t.plate, t.availability) for t in await db.rescue.trucks()] == [
        ("R1", "available"), ("R2", "available"), ("R3", "available")]
    await until(lambda: sum(k == "fleet.truck.available" for k, _ in events) == 3)
    clock.advance(30)
    found = p.fleet.nearest(*SITE, k=2)
    assert [t.truck_id for t in found] == ["R1", "R2"]
    assert found[0].distance_m == pytest.approx(distance_m(22.550, 114.050, *SITE), abs=1e-6)
    assert found[0].eta_s == pytest.approx(found[0].distance_m / 10.0)  # 36 km/h
    assert found[0].age_s == 30 and not found[0].stale
    assert [t.truck_id for t in p.fleet.nearest(*SITE, capability="tow")] == ["R1", "R3"]
    assert [t.truck_id for t in p.fleet.nearest(*SITE, max_km=3)] == ["R1", "R2"]
    assert p.fleet.nearest(*SITE, capability="crane") == []
    # A report without a valid fix does not move the truck; a customer's vehicle is not in the fleet.
    await report(pipeline, [p.fleet], "R1", 0.0, 0.0, seconds=40, valid=False)
    await report(pipeline, [], "C1", 22.541, 114.05, seconds=40)
    await task.deferLater(reactor, 0.05, lambda: None)
    assert p.fleet.position("R1").lat == 22.550 and p.fleet.position("C1") is None


@pytest_twisted.ensureDeferred
async def test_positions_older_than_the_limit_are_left_out_or_flagged(system):
    _, pipeline, clock, process, _, _ = system
    p = await process()
    await place_fleet(pipeline, [p.fleet])
    await report(pipeline, [p.fleet], "R2", 22.560, 114.050, seconds=500)
    clock.advance(700)  # R1 and R3 reported 700 s ago (limit 600); R2 200 s ago
    assert [t.truck_id for t in p.fleet.nearest(*SITE)] == ["R2"]
    flagged = p.fleet.nearest(*SITE, include_stale=True)
    assert [(t.truck_id, t.stale, t.age_s) for t in flagged] == [
        ("R1", True, 700), ("R2", False, 200), ("R3", True, 700)]
    states = {s.truck.plate: s for s in await p.fleet.state()}
    assert (states["R1"].stale, states["R1"].age_s, states["R2"].stale) == (True, 700, False)


@pytest_twisted.ensureDeferred
async def test_availability_changes_reach_every_process(system):
    db, pipeline, _, process, events, _ = system
    api, worker = await process(watch_sites=False), await process()
    await place_fleet(pipeline, [api.fleet, worker.fleet])
    await api.fleet.set_availability("R1", "off_duty", "disp-1")
    assert [t.truck_id for t in api.fleet.nearest(*SITE)] == ["R2", "R3"]  # at once where it was set
    await until(lambda: [t.truck_id for t in worker.fleet.nearest(*SITE)] == ["R2", "R3"])
    assert ("fleet.truck.off_duty", "R1") in [(k, m["truck"]["plate"]) for k, m in events]
    with pytest.raises(ValueError, match="follow a work order"):
        await api.fleet.set_availability("R2", "en_route", "disp-1")
    order = await api.desk.create("disp-1", site=SITE, kind="tyre", contact_phone="+8613900139000")
    assert order.truck_plate == "R2"
    await until(lambda: [t.truck_id for t in worker.fleet.nearest(*SITE)] == ["R3"])
    with pytest.raises(TruckBusyError, match="serves work order"):
        await api.fleet.set_availability("R2", "available", "disp-1")
    await api.fleet.set_availability("R1", "available", "disp-1")
    await until(lambda: [t.truck_id for t in worker.fleet.nearest(*SITE)] == ["R1", "R3"])
    # A refresh (a missed event, a restart) brings the database's view back.
    await db.rescue.set_availability("R3", "off_duty", "elsewhere", T0 + timedelta(hours=1))
    await worker.fleet.refresh()
    assert [t.truck_id for t in worker.fleet.nearest(*SITE)] == ["R1"]


@pytest_twisted.ensureDeferred
async def test_order_from_an_incident_life_cycle_timeline_and_notice(system):
    db, pipeline, clock, process, events, _ = system
    p = await process()
    await place_fleet(pipeline, [p.fleet])
    incident = await open_incident(db)
    order = await p.desk.create("disp-1", incident_id=incident.id, capability="tow")
    await p.desk.notices_sent()  # in the background: on the timeline before what follows
    assert (order.truck_plate, order.kind, order.status, order.customer_plate, order.contact_phone) == (
        "R1", "accident", "dispatched", "C1", "+8613900139000")
    assert order.distance_m == pytest.approx(distance_m(22.550, 114.050, *SITE))
    assert order.eta_s == pytest.approx(order.distance_m / 10)
    assert (await db.rescue.get("R1")).availability == "dispatched"
    assert [t.truck_id for t in p.fleet.nearest(*SITE, capability="tow")] == ["R3"]
    await until(lambda: ("dispatch.work_order.dispatched", order.id) in [
        (k, m["work_order"]["id"]) for k, m in events if k.startswith("dispatch.")])
    assert ("fleet.truck.dispatched", "R1") in [(k, m["truck"]["plate"]) for k, m in events if k.startswith("fleet.")]

    with pytest.raises(WorkOrderStateError, match="cannot complete"):
        await p.desk.complete(order.id, "crew")
    clock.advance(60)
    assert (await p.desk.en_route(order.id, "crew")).status == "en_route"
    on_site = await p.desk.on_site(order.id, "crew")
    assert on_site.on_site_at == T0 + timedelta(seconds=60)
    done = await p.desk.complete(order.id, "crew", note="towed to the garage")
    assert (done.status, done.note) == ("completed", "towed to the garage")
    truck = await db.rescue.get("R1")
    assert (truck.availability, truck.work_order_id) == ("available", None)
    assert [t.truck_id for t in p.fleet.nearest(*SITE, capability="tow")][0] == "R1"

    timeline = (await db.incidents.get(incident.id)).timeline
    linked = [(e.kind, (e.data or {}).get("work_order_id")) for e in timeline]
    assert linked[1:] == [("work_order", order.id), ("message", order.id), ("work_order", order.id),
                          ("work_order", order.id)]
    notice = timeline[2]  # no notices hook given: the text, as not sent
    assert "R1" in notice.text and "+861390013****" in notice.text and "min" in notice.text
    assert "not sent (no notice channel)" in notice.text and notice.data["sent"] is False
    assert notice.data["eta_s"] == pytest.approx(order.eta_s)
    assert [e.data["status"] for e in timeline if e.kind == "work_order"] == ["dispatched", "on_site", "completed"]
    await until(lambda: sum(k == "incident.updated" for k, _ in events) >= 3)


@pytest_twisted.ensureDeferred
async def test_a_truck_driving_to_the_site_flips_its_order_on_site_exactly_once(system):
    db, pipeline, clock, process, events, _ = system
    api = await process(watch_sites=False)
    workers = [await process(), await process()]  # two worker processes see every report
    fleets = [api.fleet] + [w.fleet for w in workers]
    await place_fleet(pipeline, fleets)
    incident = await open_incident(db)
    order = await api.desk.create("disp-1", incident_id=incident.id, truck_plate="R3")
    await until(lambda: all(order.truck_plate in w.desk._sites for w in workers))
    # R3 drives south along the meridian towards the site, a report every 30 s.
    route = [22.59, 22.57, 22.55, 22.545, 22.5425]  # the last is ~277 m short of the site
    for i, lat in enumerate(route, start=1):
        clock.advance(30)
        await report(pipeline, fleets, "R3", lat, 114.050, seconds=30 * i)
    await task.deferLater(reactor, 0.1, lambda: None)
    assert (await db.work_orders.get(order.id)).status == "dispatched"  # outside the 200 m circle
    for i, lat in enumerate((22.5415, 22.5405, 22.5401), start=len(route) + 1):  # ~166 m, ~55 m, ~11 m
        clock.advance(30)
        await report(pipeline, fleets, "R3", lat, 114.050, seconds=30 * i)
    arrived = await until(lambda: [m for k, m in events if k == "dispatch.work_order.on_site"])
    await task.deferLater(reactor, 0.2, lambda: None)  # time for a duplicate to show up, if there were one
    assert len([k for k, _ in events if k == "dispatch.work_order.on_site"]) == 1
    stored = await db.work_orders.get(order.id)
    assert stored.status == "on_site" and stored.on_site_at == T0 + timedelta(seconds=180)
    assert arrived[0]["work_order"]["on_site_at"] == "2026-06-01T09:03:00Z"
    audits = [e.action for e in await db.audit.entries("work_order", order.id)]
    assert audits.count("work_order_on_site") == 1
    assert (await db.rescue.get("R3")).availability == "on_site"
    timeline = (await db.incidents.get(incident.id)).timeline
    (auto,) = [e for e in timeline if (e.data or {}).get("status") == "on_site"]
    assert auto.actor == "engine" and "200 m circle" in auto.text and "166 m" in auto.text
    assert all(order.truck_plate not in w.desk._sites for w in workers)


@pytest_twisted.ensureDeferred
async def test_standalone_orders_and_what_is_refused(system):
    db, pipeline, clock, process, _, _ = system
    p = await process()
    await place_fleet(pipeline, [p.fleet])
    order = await p.desk.create("disp-1", site=(22.561, 114.05), kind="battery", contact_phone="+8613700137000",
                                address="Shennan Road 1", truck_plate="R1")
    assert (order.truck_plate, order.incident_id, order.address) == ("R1", None, "Shennan Road 1")
    assert order.distance_m == pytest.approx(distance_m(22.550, 114.050, 22.561, 114.05))
    with pytest.raises(TruckBusyError):
        await p.desk.create("disp-1", site=SITE, kind="tow", truck_plate="R1")
    with pytest.raises(LookupError):
        await p.desk.create("disp-1", site=SITE, kind="tow", truck_plate="C1")
    with pytest.raises(NoTruckError, match="no available rescue truck with battery"):
        await p.desk.create("disp-1", site=SITE, kind="battery", capability="battery")
    with pytest.raises(SiteMissingError):
        await p.desk.create("disp-1", kind="tow")
    with pytest.raises(SiteMissingError, match="incident has no position"):
        await p.desk.create("disp-1", incident_id=(await open_incident(db, None, None)).id)
    with pytest.raises(LookupError):
        await p.desk.create("disp-1", incident_id=10**6)
    with pytest.raises(ValueError, match="latitude"):
        await p.desk.create("disp-1", site=(95.0, 0.0), kind="tow")
    with pytest.raises(ValueError, match="kind"):
        await p.desk.create("disp-1", site=SITE, kind="ferry")
    clock.advance(3600)  # everyone's position is now stale: nobody is dispatched blind
    with pytest.raises(NoTruckError, match="last 600 s"):
        await p.desk.create("disp-1", site=SITE, kind="tow")
    cancelled = await p.desk.cancel(order.id, "disp-1", note="owner found a charger")
    assert cancelled.status == "cancelled" and (await db.rescue.get("R1")).availability == "available"


@pytest_twisted.ensureDeferred
async def test_a_restarted_process_knows_the_fleet_and_the_sites(system):
    db, pipeline, clock, process, events, live = system
    first = await process()
    await place_fleet(pipeline, [first.fleet])
    order = await first.desk.create("disp-1", site=SITE, kind="tow", truck_plate="R1")
    await first.desk.en_route(order.id, "crew")
    await db.positions.add_many([Report("jt808", "902", T0 + timedelta(seconds=5), Fix(22.558, 114.05),
                                        plate="R2")])
    await live.set_position("R3", {"time": "2026-06-01T09:00:07Z", "lat": 22.61, "lon": 114.05, "valid": True})
    later = await process()  # loads availability, last positions (db history, live state) and the open order
    assert later.fleet.position("R2").lat == 22.558 and later.fleet.position("R3").lat == 22.61
    assert [t.truck_id for t in later.fleet.nearest(*SITE)] == ["R2", "R3"]
    assert later.desk._sites["R1"].order_id == order.id
    clock.advance(10)
    await report(pipeline, [first.fleet, later.fleet], "R1", 22.5401, 114.05, seconds=10)
    await until(lambda: [m for k, m in events if k == "dispatch.work_order.on_site"])
    assert (await db.work_orders.get(order.id)).status == "on_site"


@pytest_twisted.ensureDeferred
async def test_an_old_fix_near_the_site_is_no_arrival(system):
    db, pipeline, clock, process, events, _ = system
    p = await process()
    await place_fleet(pipeline, [p.fleet])
    clock.advance(3600)  # R1 has not reported for an hour (a dispatcher picks it by plate)
    order = await p.desk.create("disp-1", site=SITE, kind="tow", truck_plate="R1")
    # Then a blind-zone upload: where it was 15 min before the order, passing by the site.
    await report(pipeline, [p.fleet], "R1", 22.5401, 114.05, seconds=3600 - 900)
    await task.deferLater(reactor, 0.1, lambda: None)
    assert (await db.work_orders.get(order.id)).status == "dispatched"
    await report(pipeline, [p.fleet], "R1", 22.5401, 114.05, seconds=3600 + 30)
    await until(lambda: [m for k, m in events if k == "dispatch.work_order.on_site"])


@pytest_twisted.ensureDeferred
async def test_a_slow_customer_notice_does_not_hold_up_the_order(system):
    db, pipeline, clock, process, events, _ = system
    p = await process()
    await place_fleet(pipeline, [p.fleet])
    held = defer.Deferred()

    class SlowNotices:  # an SMSC or a customer webhook taking its time (retries, backoff)
        sent = []

        async def work_order_dispatched(self, order, truck_plate, eta_s, phone):
            await held
            self.sent.append(order.id)

    p.desk.notices = SlowNotices()
    order = await p.desk.create("disp-1", site=SITE, kind="tow", contact_phone="13900139000")
    assert order.status == "dispatched" and SlowNotices.sent == []
    waiting = p.desk.notices_sent()
    assert not waiting.called
    held.callback(None)
    await waiting
    assert SlowNotices.sent == [order.id]


@pytest_twisted.ensureDeferred
async def test_stopping_waits_a_little_for_a_notice_then_goes_on(system, monkeypatch):
    import alarms.dispatch as dispatch

    db, pipeline, clock, process, events, _ = system
    p = await process()
    await place_fleet(pipeline, [p.fleet])

    class StuckNotices:  # a customer webhook that never answers
        async def work_order_dispatched(self, order, truck_plate, eta_s, phone):
            await defer.Deferred()

    p.desk.notices = StuckNotices()
    await p.desk.create("disp-1", site=SITE, kind="tow", contact_phone="13900139000")
    monkeypatch.setattr(dispatch, "NOTICE_STOP_WAIT", 5.0)
    stopping = defer.maybeDeferred(p.desk.stopService)
    assert not stopping.called
    clock.advance(5)  # the desk's clock
    await stopping
