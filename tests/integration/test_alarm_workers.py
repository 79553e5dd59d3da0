"""Two ``watchline serve --role worker`` processes on RabbitMQ + Redis + PostgreSQL: every alarm
becomes exactly one incident per vehicle and alarm — none lost, none doubled — even when one worker
is killed in the middle of the stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest_twisted
from twisted.internet import reactor, task

from alarms.report import Fix, Report
from crm.db import Database, create_engine
from crm.migrate import upgrade
from ingest.pipeline import IngestPipeline
from tests.conftest import require_service
from tests.crm.storage_contract import rows
from watchline.mq.amqp import AmqpBus

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
VEHICLES = 30
T0 = datetime(2026, 5, 1, 8, tzinfo=timezone.utc)


async def on_channel(bus: AmqpBus, operation):
    """Run ``operation(channel)`` on a fresh channel of ``bus``; None if the broker refused it."""
    channel = await bus.link.open_channel(expect_failure=True)
    try:
        return await operation(channel)
    except Exception:
        return None
    finally:
        await bus.link.close_channel(channel)


async def consumers(bus: AmqpBus, queue: str) -> int:
    declared = await on_channel(bus, lambda channel: channel.queue_declare(queue=queue, passive=True))
    return declared.consumer_count if declared is not None else 0


def script(vehicle: int) -> list[tuple[str, ...]]:
    """One vehicle's alarms, report by report: SOS five times, power cut held, cleared, raised again."""
    return [("sos",)] * 5 + [("power_cut",)] * 3 + [()] + [("power_cut",)] * 2


@pytest_twisted.ensureDeferred
async def test_two_workers_open_each_incident_exactly_once(pg_url, tmp_path):
    require_service("RabbitMQ", "127.0.0.1", 5672)
    require_service("Redis", "127.0.0.1", 6379)
    engine = create_engine(pg_url)
    upgrade(engine)
    engine.dispose()
    db = Database(pg_url, reactor)
    db.vehicles.import_rows_blocking(rows(*({"plate": f"W{v:03d}", "terminal_id": f"5{v:011d}"}
                                             for v in range(VEHICLES))))
    db.startService()
    run = uuid.uuid4().hex[:8]
    exchange = f"wltest-alarms-{run}"
    env = dict(os.environ, WATCHLINE_DATABASE_URL=pg_url, WATCHLINE_MQ_URL=AMQP_URL, WATCHLINE_MQ_EXCHANGE=exchange,
               WATCHLINE_LIVE_URL="redis://127.0.0.1:6379/0", WATCHLINE_LIVE_PREFIX=f"wltest:{run}:",
               WATCHLINE_API_LISTEN="", WATCHLINE_INGEST_JT808="", WATCHLINE_INGEST_GT06="", WATCHLINE_SIP_LISTEN="")
    workers = []
    for i in range(2):
        with (tmp_path / f"worker{i}.log").open("wb") as out:
            workers.append(subprocess.Popen([sys.executable, "-m", "watchline", "serve", "--role", "worker"],
                                            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT))
    bus = AmqpBus.from_url(AMQP_URL, reactor, exchange=exchange, connection_name="wltest-ingest")
    try:
        await bus.startService()
        await bus.wait_connected(30)
        for _ in range(300):  # both workers subscribed to the shared alarms queue (bounded: 60 s)
            if await consumers(bus, f"{exchange}.alarms") == 2:
                break
            assert all(w.poll() is None for w in workers), _logs(tmp_path)
            await task.deferLater(reactor, 0.2, lambda: None)
        assert await consumers(bus, f"{exchange}.alarms") == 2, _logs(tmp_path)
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
        assert found, (await db.incidents.search(limit=1000), _logs(tmp_path))
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
        assert workers[1].poll() is None, _logs(tmp_path)
        dead = await on_channel(bus, lambda channel: channel.queue_declare(queue=f"{exchange}.dead", passive=True))
        assert dead is None or dead.message_count == 0, "reports were dead-lettered"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        if bus.link is not None:
            for queue in (f"{exchange}.alarms", f"{exchange}.positions", f"{exchange}.dead"):
                await on_channel(bus, lambda channel, queue=queue: channel.queue_delete(queue=queue))
            await on_channel(bus, lambda channel: channel.exchange_delete(exchange=exchange))
        await bus.stopService()
        await db.stopService()


def _logs(tmp_path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("worker*.log")))
