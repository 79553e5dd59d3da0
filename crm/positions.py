"""``db.positions``: the position history, written in batches and read newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from alarms.report import Report
from crm.schema import positions, vehicles


@dataclass(frozen=True)
class Position:
    time: datetime
    lat: float | None
    lon: float | None
    speed_kmh: float | None
    course: float | None
    altitude: float | None
    valid: bool
    satellites: int | None
    alarms: tuple[str, ...]


class PositionsStore:
    def __init__(self, db) -> None:
        self.db = db

    async def add_many(self, reports: list[Report]) -> int:
        """Store the reports of known vehicles in one transaction; a report id already stored (a
        redelivered message) is skipped. Returns the number of reports with a known vehicle."""

        def _thd(conn):
            plates = sorted({r.plate for r in reports if r.plate})
            if not plates:
                return 0
            ids = dict(conn.execute(sa.select(vehicles.c.plate, vehicles.c.id).where(vehicles.c.plate.in_(plates))).all())
            rows = [self._row(r, ids[r.plate]) for r in reports if r.plate in ids]
            if rows:
                conn.execute(_insert_ignoring_duplicates(conn.dialect.name), rows)
            return len(rows)

        return await self.db.pool.do(_thd)

    async def latest(self, plate: str, limit: int) -> list[Position] | None:
        """Newest first; None when there is no such vehicle."""

        def _thd(conn):
            vid = conn.execute(sa.select(vehicles.c.id).where(vehicles.c.plate == plate)).scalar()
            if vid is None:
                return None
            q = (sa.select(positions).where(positions.c.vehicle_id == vid)
                 .order_by(positions.c.time.desc(), positions.c.id.desc()).limit(limit))
            return [self._model_from_row(r) for r in conn.execute(q)]

        return await self.db.pool.do(_thd)

    @staticmethod
    def _row(r: Report, vehicle_id: int) -> dict:
        fix = r.fix
        return dict(
            vehicle_id=vehicle_id, report_id=r.report_id[:64], time=r.time, received_at=r.received_at,
            lat=fix.lat if fix else None, lon=fix.lon if fix else None, altitude=fix.altitude if fix else None,
            speed_kmh=fix.speed_kmh if fix else None, course=fix.course if fix else None,
            valid=bool(fix and fix.valid), satellites=fix.satellites if fix else None, alarms=list(r.alarms),
            status=r.status or None,
        )

    @staticmethod
    def _model_from_row(row) -> Position:
        return Position(row.time, row.lat, row.lon, row.speed_kmh, row.course, row.altitude, row.valid,
                        row.satellites, tuple(row.alarms or ()))


def _insert_ignoring_duplicates(dialect: str):
    if dialect == "postgresql":
        return postgresql.insert(positions).on_conflict_do_nothing(index_elements=["report_id"])
    if dialect == "sqlite":
        return sqlite.insert(positions).on_conflict_do_nothing(index_elements=["report_id"])
    return positions.insert()
