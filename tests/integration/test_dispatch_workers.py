"""Two ``watchline serve --role worker`` processes on RabbitMQ + Redis + PostgreSQL both see every
report of a rescue truck driving to its site; its work order goes ``on_site`` exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest_twisted
from twisted.internet import defer, reactor, task

from alarms.dispatch import WorkOrderDesk
from alarms.report import Fix, Report
from alarms.rescue_fleet import RescueFleet
from geo.geodesy import destination
from ingest.pipeline import IngestPipeline
from tests.crm.workorders_contract import fleet_rows
from tests.integration.processes import AMQP_URL, Deployment
from watchline.live.memory import MemoryLiveState
from watchline.mq.amqp import AmqpBus

SITE = (22.5431, 114.0579)


async def _sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_two_workers_record_the_arrival_once(pg_url, tmp_path):
    deployment = Deployment(pg_url, tmp_path, fleet_rows({"plate": "R1", "terminal_id": "13811110001",
                                                          "skills": "tow"}), "dispatch")
    db, run, exchange = deployment.db, deployment.run, deployment.exchange
    workers = [deployment.start(f"worker{i}", "worker") for i in range(2)]
    logs = [deployment.log(name) for name in deployment.processes]
    output = deployment.logs

    bus = AmqpBus.from_url(AMQP_URL, reactor, exchange=exchange, connection_name="wltest-dispatcher")
    live = MemoryLiveState(reactor)
    fleet = RescueFleet(db, bus, live, reactor, average_speed_kmh=36.0)
    desk = WorkOrderDesk(db, bus, reactor, fleet, watch_sites=False)  # the API process's desk
    try:
        await bus.startService()
        await bus.wait_connected(30)
        live.startService()
        for _ in range(300):  # both workers follow the fleet (bounded: 60 s)
            if all("rescue fleet ready" in p.read_text() for p in logs):
                break
            assert all(w.poll() is None for w in workers), output()
            await _sleep(0.2)
        assert all("rescue fleet ready" in p.read_text() for p in logs), output()
        for svc in (fleet, desk):
            await defer.maybeDeferred(svc.startService)
        pipeline = IngestPipeline(db.vehicles, bus, reactor)
        t0 = datetime.now(timezone.utc)
        sent = 0

        async def drive_to(metres_north: float) -> None:
            nonlocal sent
            lat, lon = destination(*SITE, 0.0, metres_north)
            sent += 1
            await pipeline.submit([Report("jt808", "13811110001", t0 + timedelta(seconds=sent), Fix(lat, lon),
                                          report_id=f"{run}-{sent}")])

        await drive_to(3000)  # the first position puts it in service
        for _ in range(100):
            if fleet.nearest(*SITE):
                break
            await _sleep(0.1)
        order = await desk.create("disp-1", site=SITE, kind="tow", contact_phone="+8613900139000")
        assert order.truck_plate == "R1"
        await _sleep(0.5)  # the workers hear of the order
        for metres in (2000, 1000, 400, 250):
            await drive_to(metres)
        await _sleep(1.0)
        assert (await db.work_orders.get(order.id)).status == "dispatched", output()
        for metres in (150, 90, 40, 10, 5):  # inside the 200 m circle: every report seen by both workers
            await drive_to(metres)
        for _ in range(100):
            if (await db.work_orders.get(order.id)).status == "on_site":
                break
            await _sleep(0.1)
        await _sleep(1.0)  # a second arrival would show by now
        stored = await db.work_orders.get(order.id)
        assert stored.status == "on_site", output()
        audits = [e.action for e in await db.audit.entries("work_order", order.id)]
        assert audits.count("work_order_on_site") == 1, audits
        assert (await db.rescue.get("R1")).availability == "on_site"
        assert fleet.position("R1").availability == "on_site"  # the event reached this process too
        assert all(w.poll() is None for w in workers), output()
    finally:
        for svc in (desk, fleet):
            await defer.maybeDeferred(svc.stopService)
        live.stopService()
        await deployment.stop(bus)
