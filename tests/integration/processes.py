"""``watchline serve --role ...`` as real processes on the shared services, for the split-deployment
tests: a migrated PostgreSQL schema with a fleet, an exchange and Redis prefix of the run's own, the
processes' logs in the test's folder, and everything stopped and deleted afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from twisted.internet import reactor

from crm.db import Database, create_engine
from crm.migrate import upgrade
from tests.conftest import require_service

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class Deployment:
    """One test's processes: ``start(name, role)``; ``stop()`` ends them and removes the run's queues."""

    def __init__(self, pg_url: str, tmp_path: Path, fleet_rows, kind: str, **environ: str) -> None:
        require_service("RabbitMQ", "127.0.0.1", 5672)
        require_service("Redis", "127.0.0.1", 6379)
        engine = create_engine(pg_url)
        upgrade(engine)
        engine.dispose()
        self.db = Database(pg_url, reactor)
        self.db.vehicles.import_rows_blocking(fleet_rows)
        self.db.startService()
        self.run = uuid.uuid4().hex[:8]
        self.exchange = f"wltest-{kind}-{self.run}"
        self.tmp_path = tmp_path
        self.env = dict(os.environ, WATCHLINE_DATABASE_URL=pg_url, WATCHLINE_MQ_URL=AMQP_URL,
                        WATCHLINE_MQ_EXCHANGE=self.exchange, WATCHLINE_LIVE_URL="redis://127.0.0.1:6379/0",
                        WATCHLINE_LIVE_PREFIX=f"wltest:{self.run}:", WATCHLINE_API_LISTEN="",
                        WATCHLINE_INGEST_JT808="", WATCHLINE_INGEST_GT06="", WATCHLINE_SIP_LISTEN="")
        self.env.update(environ)  # the test's own settings win
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, role: str) -> subprocess.Popen:
        with self.log(name).open("wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "watchline", "serve", "--role", role],
                                       cwd=self.tmp_path, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def log(self, name: str) -> Path:
        return self.tmp_path / f"{name}.log"

    def running(self) -> bool:
        return all(p.poll() is None for p in self.processes.values())

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name).read_text()[-3000:]}" for name in self.processes)

    async def stop(self, bus) -> None:
        """SIGTERM (then SIGKILL after 15 s) to every process; the run's queues and exchange deleted."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if bus.link is not None:
            for queue in ("alarms", "positions", "policies", "dead"):
                await on_channel(bus, lambda channel, queue=queue: channel.queue_delete(queue=f"{self.exchange}.{queue}"))
            await on_channel(bus, lambda channel: channel.exchange_delete(exchange=self.exchange))
        await bus.stopService()
        await self.db.stopService()


async def on_channel(bus, operation):
    """Run ``operation(channel)`` on a fresh channel of ``bus``; None if the broker refused it."""
    channel = await bus.link.open_channel(expect_failure=True)
    try:
        return await operation(channel)
    except Exception:
        return None
    finally:
        await bus.link.close_channel(channel)


async def consumers(bus, queue: str) -> int:
    declared = await on_channel(bus, lambda channel: channel.queue_declare(queue=queue, passive=True))
    return declared.consumer_count if declared is not None else 0
