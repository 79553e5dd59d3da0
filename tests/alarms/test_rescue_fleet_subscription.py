"""How the rescue fleet follows reports: its own copy of every report, many in flight at a time (nearly
all are dropped at once), and nothing but a dict look-up for a report that is not a truck's."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest_twisted
from twisted.internet import defer, task

from alarms.rescue_fleet import REPORT_PREFETCH, RescueFleet
from crm.rescue import RescueTruck
from watchline.mq.fake import FakeBus

T0 = datetime(2026, 6, 1, 9, tzinfo=timezone.utc)


class Trucks:
    """``db.rescue`` and the live state as far as the fleet's start reads them."""

    def __init__(self, *trucks):
        self.trucks_ = list(trucks)

    async def trucks(self, with_positions=False):
        return self.trucks_

    async def get_positions(self, plates):
        return {}


@pytest_twisted.ensureDeferred
async def test_the_fleet_takes_every_report_on_its_own_queue_with_many_in_flight():
    store, bus, clock = Trucks(RescueTruck(1, "R1", ("tow",), "available", None, T0, "engine")), FakeBus(), task.Clock()
    clock.advance(T0.timestamp())
    fleet = RescueFleet(type("Db", (), {"rescue": store})(), bus, store, clock)
    await defer.maybeDeferred(fleet.startService)
    try:
        reports, trucks = bus.consumers
        assert (reports.filter, reports.queue, reports.prefetch) == ("report.#", None, REPORT_PREFETCH)
        assert REPORT_PREFETCH > 1 and (trucks.filter, trucks.prefetch) == ("fleet.truck.#", 1)
        fix = {"lat": 22.55, "lon": 114.05, "valid": True}
        await bus.deliver("report.jt808.904", {"plate": "C1", "time": "2026-06-01T09:00:00Z", "fix": fix})
        await bus.deliver("report.jt808.905", {"plate": None, "time": "garbage", "fix": fix})  # unknown terminal
        assert fleet.position("C1") is None and len(fleet.index) == 0
        await bus.deliver("report.jt808.901", {"plate": "R1", "time": "2026-06-01T09:00:00Z", "fix": fix})
        assert (fleet.position("R1").lat, fleet.position("R1").time) == (22.55, T0.timestamp())
    finally:
        await defer.maybeDeferred(fleet.stopService)
    assert bus.consumers == []
