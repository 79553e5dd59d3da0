"""Fixtures shared by the API tests."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor, task

from alarms.dispatch import WorkOrderDesk
from alarms.rescue_fleet import RescueFleet
from api.app import WatchlineApi
from crm.db import Database
from crm.migrate import upgrade
from ingest.pipeline import IngestPipeline
from tests.alarms.test_dispatch import T0, place_fleet
from tests.crm.workorders_contract import fleet_rows
from watchline.config import load_config
from watchline.live.memory import MemoryLiveState
from watchline.mq.memory import MemoryBus


@pytest_twisted.async_yield_fixture
async def dispatch_system(sqlite_url):
    """The API with a rescue fleet R1-R3 placed and a customer car C1, on a loopback port:
    (port, tokens by role, db, the fleet's clock, fleet, bus)."""
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    live, bus = MemoryLiveState(reactor), MemoryBus(reactor)
    live.startService()
    bus.startService()
    clock = task.Clock()
    clock.advance(T0.timestamp())
    fleet = RescueFleet(db, bus, live, clock, average_speed_kmh=36.0, max_position_age=600.0)
    desk = WorkOrderDesk(db, bus, clock, fleet, on_site_radius_m=200.0)
    app = WatchlineApi(db, live, load_config(environ={}), bus=bus, clock=reactor, dispatch=(fleet, desk))
    port = reactor.listenTCP(0, app.site(), interface="127.0.0.1")
    try:
        await db.vehicles.import_rows(fleet_rows(
            {"plate": "R1", "terminal_id": "901", "skills": "tow,battery"},
            {"plate": "R2", "terminal_id": "902", "skills": "tyre"},
            {"plate": "R3", "terminal_id": "903", "skills": "tow"},
            {"plate": "C1", "terminal_id": "904", "kind": "customer", "owner_phone": "13900139000"}), "test")
        await fleet.startService()
        await desk.startService()
        await place_fleet(IngestPipeline(db.vehicles, bus, reactor), [fleet])
        tokens = {role: await db.users.issue_token(role, f"{role}-1")
                  for role in ("dispatcher", "agent", "platform", "supervisor")}
        yield port.getHost().port, tokens, db, clock, fleet, bus
    finally:
        await port.stopListening()
        await defer.maybeDeferred(desk.stopService)
        await defer.maybeDeferred(fleet.stopService)
        await bus.stopService()
        live.stopService()
        await db.stopService()
