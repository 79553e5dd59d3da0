"""The geofence stage of two workers sharing a real Redis: each crossing raised once, state kept across
a worker restart. Fails when Redis is missing and CI=true; skipped otherwise."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from alarms.geofences import GeofenceWatch, inside_key
from crm.db import Database
from crm.migrate import upgrade
from tests.alarms.test_geofences import DEPOT, Raised, at, off
from tests.crm.fences_contract import circle
from tests.crm.storage_contract import rows
from tests.integration.test_live_redis import redis_states
from watchline.mq.memory import MemoryBus

pytestmark = pytest.mark.integration


@pytest_twisted.ensureDeferred
async def test_two_workers_and_a_restart_on_redis(sqlite_url) -> None:
    db = Database(sqlite_url, reactor)
    upgrade(db.engine)
    db.startService()
    bus = MemoryBus(reactor)
    bus.startService()
    watches = []
    try:
        await db.vehicles.import_rows(rows({"plate": "P1", "terminal_id": "11"}), "t")
        fence = await db.fences.create(circle(), "t")
        async with redis_states(3) as (live_a, live_b, live_restarted):
            raised = Raised()
            raised.delay = 0.05  # slow incident writes: both workers' reports are in flight together
            for live in (live_a, live_b):
                watches.append(GeofenceWatch(db, bus, live, reactor, raised))
                await watches[-1].start()
            a, b = watches
            await a.check(at(*off(DEPOT, 2000)))  # baseline
            both = await gatherResults([Deferred.fromCoroutine(a.check(at(*DEPOT, i=1))),
                                        Deferred.fromCoroutine(b.check(at(*off(DEPOT, 30), i=2)))])
            assert sorted(len(crossings) for crossings in both) == [0, 1]
            assert await live_b.get(inside_key("P1")) == [fence.id]
            await a.stop()
            restarted = GeofenceWatch(db, bus, live_restarted, reactor, raised)
            watches.append(restarted)
            await restarted.start()
            assert await restarted.check(at(*DEPOT, i=3)) == []  # still inside: nothing new
            (left,) = await restarted.check(at(*off(DEPOT, 2000), i=4))
            assert left.alarm == "geofence_exit" and left.fence_id == fence.id
            assert [alarm for _, alarm, _ in raised.alarms] == ["geofence_enter", "geofence_exit"]
    finally:
        for watch in watches:
            await watch.stop()
        await bus.stopService()
        await db.stopService()
