"""Two ``watchline serve --role worker`` processes on RabbitMQ + Redis + PostgreSQL: every alarm
becomes exactly one incident per vehicle and alarm — none lost, none doubled — even when one worker
is killed in the middle of the stream."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone

import pytest_twisted
from twisted.internet import reactor, task

from alarms.report import Fix, Report
from ingest.pipeline import IngestPipeline
from tests.crm.storage_contract import rows
from tests.integration.processes import AMQP_URL, Deployment, consumers, on_channel
from watchline.mq.amqp import AmqpBus

VEHICLES = 30
T0 = datetime(2026, 5, 1, 8, tzinfo=timezone.utc)


def script(vehicle: int) -> list[tuple[str, ...]]:
    """One vehicle's alarms, report by report: SOS five times, power cut held, cleared, raised again."""
    return [("sos",)] * 5 + [("power_cut",)] * 3 + [()] + [("power_cut",)] * 2


@pytest_twisted.ensureDeferred
async def test_two_workers_open_each_incident_exactly_once(pg_url, tmp_path):
    deployment = Deployment(pg_url, tmp_path, rows(*({"plate": f"W{v:03d}", "terminal_id": f"5{v:011d}"}
                                                       for v in range(VEHICLES))), "alarms")
    db, run, exchange = deployment.db, deployment.run, deployment.exchange
    workers = [deployment.start(f"worker{i}", "worker") for i in range(2)]
    bus = AmqpBus.from_url(AMQP_URL, reactor, exchange=exchange, connection_name="wltest-ingest")
    try:
        await bus.startService()
        await bus.wait_connected(30)
        for _ in range(300):  # both workers subscribed to the shared alarms queue (bounded: 60 s)
            if await consumers(bus, f"{exchange}.alarms") == 2:
                break
            assert deployment.running(), deployment.logs()
            await task.deferLater(reactor, 0.2, lambda: None)
        assert await consumers(bus, f"{exchange}.alarms") == 2, deployment.logs()
        pipeline = IngestPipeline(db.vehicles, bus, reactor)
        steps = {v: script(v) for v in range(VEHICLES)}
        length = len(steps[0])
        for step in range(length):  # interleaved: every vehicle's n-th report, then the (n+1)-th
            if step == length // 2:
                workers[0].send_signal(signal.SIGKILL)  # mid-stream: its unacked report goes to the other
            await pipeline.submit([
                Report("jt808", f"5{v:011d}", T0 + timedelta(seconds=step), Fix(31.0, 121.0, valid=True),
                       alarms=steps[v][step], raw_alarms={"jt808_word": 0}, report_id=f"{run}-{v}-{step}")
                for v in range(VEHICLES)])

        async def settled():
            found = await db.incidents.search(limit=1000)
            done = len(found) >= 2 * VEHICLES and sum(i.count for i in found) >= 7 * VEHICLES
            return found if done and all(i.state == "escalated" for i in found) else None

        found = None
        for _ in range(900):  # bounded: 90 s (a killed worker's vehicle locks expire after 10 s)
            found = await settled()
            if found:
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        assert found, (await db.incidents.search(limit=1000), deployment.logs())
        await task.deferLater(reactor, 1.0, lambda: None)  # anything doubled would show up by now
        found = await db.incidents.search(limit=1000)
        keys = sorted((i.plate, i.alarm) for i in found)
        assert keys == sorted((f"W{v:03d}", alarm) for v in range(VEHICLES) for alarm in ("sos", "power_cut"))
        for incident in found:
            # SOS is raised by each of its five reports; the held power cut once, and again after the clear.
            # A report redelivered after the kill may be counted twice, never lost.
            assert incident.count >= (5 if incident.alarm == "sos" else 2), incident
            full = await db.incidents.get(incident.id)
            assert [e.kind for e in full.timeline] == ["opened", "escalate"], full.timeline
        assert workers[1].poll() is None, deployment.logs()
        dead = await on_channel(bus, lambda channel: channel.queue_declare(queue=f"{exchange}.dead", passive=True))
        assert dead is None or dead.message_count == 0, "reports were dead-lettered"
    finally:
        await deployment.stop(bus)
