"""The ``db`` service: the engine, the SQL thread pool and one storage component per aggregate.

``db.vehicles``, ``db.users``, ``db.audit``, … each own their queries and return dataclasses.
SQLite (the embedded default) and PostgreSQL are both first-class.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from twisted.application import service

from crm.audit import AuditStore
from crm.calls import CallsStore
from crm.campaigns import CampaignsStore
from crm.deliveries import DeliveriesStore
from crm.fences import FencesStore
from crm.incidents import IncidentsStore
from crm.pool import DBThreadPool
from crm.positions import PositionsStore
from crm.rescue import RescueStore
from crm.users import UsersStore
from crm.vehicles import VehiclesStore
from crm.workorders import WorkOrdersStore


def create_engine(url: str, echo: bool = False) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=False
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return sa.create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database(service.Service):
    name = "db"

    def __init__(self, url: str, reactor: Any, pool_size: int = 5, echo: bool = False) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo)
        # SQLite has one writer at a time: one thread avoids lock contention inside this process.
        threads = 1 if self.engine.dialect.name == "sqlite" else max(1, pool_size)
        self.pool = DBThreadPool(self.engine, reactor, threads)
        self.vehicles = VehiclesStore(self)
        self.users = UsersStore(self)
        self.audit = AuditStore(self)
        self.positions = PositionsStore(self)
        self.calls = CallsStore(self)
        self.incidents = IncidentsStore(self)
        self.fences = FencesStore(self)
        self.campaigns = CampaignsStore(self)
        self.rescue = RescueStore(self)
        self.work_orders = WorkOrdersStore(self)
        self.deliveries = DeliveriesStore(self)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def ping(self) -> bool:
        try:
            return await self.pool.do(lambda conn: conn.execute(sa.text("SELECT 1")).scalar() == 1)
        except Exception:
            return False

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self):
        from twisted.internet.defer import Deferred

        super().stopService()
        return Deferred.fromCoroutine(self.pool.stop())
