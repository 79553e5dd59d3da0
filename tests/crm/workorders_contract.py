"""``db.rescue`` and ``db.work_orders`` part of the storage contract (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import pytest_twisted
from twisted.internet import defer

from alarms.report import Fix, Report
from crm.fleet import validate
from crm.incidents import NewIncident
from crm.rescue import TruckBusyError
from crm.workorders import NewWorkOrder, WorkOrderStateError

T0 = datetime(2026, 6, 1, 9, tzinfo=timezone.utc)


def fleet_rows(*records: dict[str, str]):
    base = {"terminal_id": "", "protocol": "jt808", "owner_name": "Rescue Co", "owner_phone": "13800138000",
            "tier": "normal", "pin": "1234", "kind": "rescue"}
    good, errors = validate(((i + 2, dict(base, **r)) for i, r in enumerate(records)), "CN")
    assert not errors, errors
    return good


async def rescue_fleet(database):
    await database.vehicles.import_rows(fleet_rows(
        {"plate": "R1", "terminal_id": "901", "skills": "tow,battery"},
        {"plate": "R2", "terminal_id": "902", "skills": "tyre"},
        {"plate": "C1", "terminal_id": "903", "kind": "customer"}), "test")


def order(truck="R1", **extra) -> NewWorkOrder:
    return NewWorkOrder(**{"kind": "tow", "truck_plate": truck, "site_lat": 22.54, "site_lon": 114.05,
                           "created_by": "disp-1", "contact_phone": "+8613900139000", **extra})


class WorkOrdersContract:
    @pytest_twisted.ensureDeferred
    async def test_rescue_trucks_enter_service_once_and_take_manual_availability(self, database):
        await rescue_fleet(database)
        trucks = await database.rescue.trucks()
        assert [(t.plate, t.skills, t.availability) for t in trucks] == [
            ("R1", ("tow", "battery"), None), ("R2", ("tyre",), None)]  # customers are not rescue trucks
        truck, entered = await database.rescue.enter_service("R1", T0)
        assert entered and (truck.availability, truck.changed_by) == ("available", "engine")
        truck, entered = await database.rescue.enter_service("R1", T0 + timedelta(seconds=1))
        assert not entered and truck.changed_at == T0
        assert await database.rescue.enter_service("C1", T0) == (None, False)
        # A dispatcher sets a truck off duty before it ever reported: its first report keeps that.
        off = await database.rescue.set_availability("R2", "off_duty", "disp-1", T0)
        assert (off.availability, off.changed_by) == ("off_duty", "disp-1")
        assert (await database.rescue.enter_service("R2", T0))[0].availability == "off_duty"
        with pytest.raises(ValueError, match="follow a work order"):
            await database.rescue.set_availability("R2", "on_site", "disp-1", T0)
        with pytest.raises(LookupError):
            await database.rescue.set_availability("C1", "available", "disp-1", T0)
        assert (await database.rescue.get("R2")).availability == "off_duty"
        assert await database.rescue.get("C1") is None
        actions = [e.action for e in await database.audit.entries("vehicle")]
        assert actions.count("truck_in_service") == 1 and "truck_availability" in actions

    @pytest_twisted.ensureDeferred
    async def test_last_fixes_are_the_newest_valid_position_of_each_truck(self, database):
        await rescue_fleet(database)
        await database.positions.add_many([
            Report("jt808", "901", T0, Fix(22.50, 114.00), report_id="a", plate="R1"),
            Report("jt808", "901", T0 + timedelta(seconds=30), Fix(22.51, 114.01), report_id="b", plate="R1"),
            Report("jt808", "901", T0 + timedelta(seconds=60), Fix(0.0, 0.0, valid=False), report_id="c", plate="R1"),
            Report("jt808", "903", T0, Fix(1.0, 1.0), report_id="d", plate="C1")])
        fixes = {t.plate: t.last_fix for t in await database.rescue.trucks(with_positions=True)}
        assert fixes["R2"] is None
        assert (fixes["R1"].time, fixes["R1"].lat, fixes["R1"].lon) == (T0 + timedelta(seconds=30), 22.51, 114.01)

    @pytest_twisted.ensureDeferred
    async def test_work_order_life_cycle_moves_its_truck(self, database):
        await rescue_fleet(database)
        await database.rescue.enter_service("R1", T0)
        incident, _ = await database.incidents.open_or_join(NewIncident(
            plate="C1", alarm="collision", severity="emergency", priority=0, tier="normal",
            policy={"name": "agent_only", "steps": []}, time=T0, lat=22.54, lon=114.05), T0)
        created = await database.work_orders.create(order(incident_id=incident.id, customer_plate="C1",
                                                          distance_m=1234.5, eta_s=111.1), T0)
        assert (created.status, created.truck_plate, created.incident_id, created.eta_s) == (
            "dispatched", "R1", incident.id, 111.1)
        truck = await database.rescue.get("R1")
        assert (truck.availability, truck.work_order_id) == ("dispatched", created.id)
        with pytest.raises(TruckBusyError, match="serves work order"):
            await database.rescue.set_availability("R1", "off_duty", "disp-1", T0)
        with pytest.raises(WorkOrderStateError, match="cannot complete work order .*: it is dispatched"):
            await database.work_orders.transition(created.id, "complete", "disp-1", T0)
        steps = [("en_route", "en_route"), ("on_site", "on_site"), ("complete", "completed")]
        for i, (event, status) in enumerate(steps, start=1):
            moved = await database.work_orders.transition(created.id, event, "crew", T0 + timedelta(minutes=i))
            assert moved.status == status
            if status != "completed":
                assert (await database.rescue.get("R1")).availability == status
        assert (moved.en_route_at, moved.on_site_at, moved.completed_at, moved.cancelled_at) == (
            T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), T0 + timedelta(minutes=3), None)
        truck = await database.rescue.get("R1")
        assert (truck.availability, truck.work_order_id) == ("available", None)  # free for the next call
        with pytest.raises(WorkOrderStateError):
            await database.work_orders.transition(created.id, "cancel", "disp-1", T0)
        with pytest.raises(LookupError):
            await database.work_orders.transition(10**9, "cancel", "disp-1", T0)
        actions = {e.action for e in await database.audit.entries("work_order", created.id)}
        assert actions == {"work_order_dispatched", "work_order_en_route", "work_order_on_site",
                           "work_order_completed"}

    @pytest_twisted.ensureDeferred
    async def test_a_truck_serves_one_order_and_an_unavailable_truck_gets_none(self, database):
        await rescue_fleet(database)
        await database.rescue.enter_service("R1", T0)
        with pytest.raises(TruckBusyError):  # never reported: not in service
            await database.work_orders.create(order("R2"), T0)
        with pytest.raises(LookupError):
            await database.work_orders.create(order("C1"), T0)
        with pytest.raises(ValueError, match="kind"):
            await database.work_orders.create(order(kind="ferry"), T0)
        results = await defer.DeferredList([
            defer.Deferred.fromCoroutine(database.work_orders.create(order(address=str(i)), T0)) for i in range(5)],
            consumeErrors=True)
        won = [r for ok, r in results if ok]
        assert len(won) == 1 and all(r.check(TruckBusyError) for ok, r in results if not ok)
        assert [o.id for o in await database.work_orders.search()] == [won[0].id]  # losers left nothing
        cancelled = await database.work_orders.transition(won[0].id, "cancel", "disp-1", T0, note="owner fixed it")
        assert (cancelled.status, cancelled.note, cancelled.cancelled_at) == ("cancelled", "owner fixed it", T0)
        again = await database.work_orders.create(order(), T0)
        assert again.id != won[0].id

    @pytest_twisted.ensureDeferred
    async def test_arrival_seen_by_two_workers_moves_the_order_once(self, database):
        await rescue_fleet(database)
        await database.rescue.enter_service("R1", T0)
        created = await database.work_orders.create(order(), T0)
        results = await defer.DeferredList([
            defer.Deferred.fromCoroutine(database.work_orders.transition(created.id, "on_site", "engine", T0))
            for _ in range(6)], consumeErrors=True)
        assert sum(ok for ok, _ in results) == 1
        assert all(r.check(WorkOrderStateError) for ok, r in results if not ok)
        audits = await database.audit.entries("work_order", created.id)
        assert [e.action for e in audits].count("work_order_on_site") == 1

    @pytest_twisted.ensureDeferred
    async def test_search_by_status_truck_and_incident(self, database):
        await rescue_fleet(database)
        for plate in ("R1", "R2"):
            await database.rescue.set_availability(plate, "available", "disp-1", T0)
        first = await database.work_orders.create(order("R1"), T0)
        second = await database.work_orders.create(order("R2", kind="tyre"), T0)
        await database.work_orders.transition(second.id, "en_route", "crew", T0)
        search = database.work_orders.search
        assert [o.id for o in await search()] == [second.id, first.id]
        assert [o.id for o in await search(statuses=("en_route",))] == [second.id]
        assert [o.id for o in await search(statuses=("dispatched", "en_route"), truck_plate="R1")] == [first.id]
        assert await search(incident_id=first.id + 100) == []
        assert (await database.work_orders.get(first.id)).to_json()["site"] == {"lat": 22.54, "lon": 114.05}
        assert await database.work_orders.get(10**9) is None
