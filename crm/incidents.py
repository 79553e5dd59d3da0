"""``db.incidents``: incidents and their timelines; state changes go through the transition table.

``open_or_join`` is the one place incidents are created: inside a savepoint it inserts a row whose
``open_key`` (plate|alarm) is unique while unresolved, so a concurrent worker's insert fails and
joins the incident instead. ``transition`` applies ``alarms.incident.TRANSITIONS`` and writes the
timeline entry and the audit row in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from alarms.incident import Incident, TimelineEntry, next_state
from crm.audit import AuditStore
from crm.schema import incident_events, incidents


@dataclass(frozen=True)
class NewIncident:
    plate: str
    alarm: str
    severity: str
    priority: int
    tier: str
    policy: dict[str, Any]
    time: datetime
    terminal_protocol: str | None = None
    terminal_id: str | None = None
    alarm_serial: int | None = None
    lat: float | None = None
    lon: float | None = None


class IncidentsStore:
    def __init__(self, db) -> None:
        self.db = db

    async def open_or_join(self, new: NewIncident, now: datetime) -> tuple[Incident, bool]:
        """The open incident for (plate, alarm), created if there is none; True when created."""
        key = f"{new.plate}|{new.alarm}"

        def _thd(conn):
            for _ in range(3):
                row = conn.execute(sa.select(incidents).where(incidents.c.open_key == key)).first()
                if row is not None:
                    conn.execute(incidents.update().where(incidents.c.id == row.id).values(
                        count=incidents.c.count + 1, last_seen_at=now, alarm_serial=new.alarm_serial or row.alarm_serial))
                    return self._load(conn, row.id), False
                try:
                    with conn.begin_nested():
                        incident_id = conn.execute(incidents.insert().values(
                            plate=new.plate, alarm=new.alarm, severity=new.severity, priority=new.priority,
                            tier=new.tier, state="open", policy=new.policy, step=0, count=1, open_key=key,
                            opened_at=now, updated_at=now, last_seen_at=now, terminal_protocol=new.terminal_protocol,
                            terminal_id=new.terminal_id, alarm_serial=new.alarm_serial, lat=new.lat, lon=new.lon,
                        )).inserted_primary_key[0]
                except exc.IntegrityError:
                    continue  # another worker opened it a moment ago: join theirs
                self._event(conn, incident_id, now, "engine", "opened",
                            f"{new.alarm} on {new.plate} ({new.severity}, {new.tier})",
                            {"alarm_time": new.time.isoformat(), "lat": new.lat, "lon": new.lon})
                AuditStore.insert(conn, "engine", "incident_opened", "incident", incident_id,
                                  {"plate": new.plate, "alarm": new.alarm}, now)
                return self._load(conn, incident_id), True
            raise RuntimeError(f"could not open or join the incident for {key}")

        return await self.db.pool.do(_thd)

    async def transition(self, incident_id: int, event: str, actor: str, text: str, now: datetime,
                         data: dict[str, Any] | None = None, **changes: Any) -> Incident:
        """Apply ``event`` (raises IncidentStateError if not allowed; LookupError if no such incident)."""

        def _thd(conn):
            row = conn.execute(_for_update(sa.select(incidents).where(incidents.c.id == incident_id), conn)).first()
            if row is None:
                raise LookupError(f"no incident {incident_id}")
            state = next_state(row.state, event)
            values = dict(changes, state=state, updated_at=now)
            if state == "resolved":
                values.update(open_key=None, resolved_at=now, due_at=None)
            conn.execute(incidents.update().where(incidents.c.id == incident_id).values(**values))
            self._event(conn, incident_id, now, actor, event if event != "notify" else "notifying", text, data)
            AuditStore.insert(conn, actor, f"incident_{event}", "incident", incident_id,
                              {"from": row.state, "to": state, **({"note": text} if text else {})}, now)
            return self._load(conn, incident_id)

        return await self.db.pool.do(_thd)

    async def update(self, incident_id: int, actor: str, kind: str, text: str, now: datetime,
                     data: dict[str, Any] | None = None, **changes: Any) -> Incident:
        """A timeline entry (comment, call attempt, reassignment) with optional field changes, no state change."""

        def _thd(conn):
            if changes:
                changes["updated_at"] = now
                if conn.execute(incidents.update().where(incidents.c.id == incident_id).values(**changes)).rowcount == 0:
                    raise LookupError(f"no incident {incident_id}")
            elif conn.execute(sa.select(incidents.c.id).where(incidents.c.id == incident_id)).first() is None:
                raise LookupError(f"no incident {incident_id}")
            self._event(conn, incident_id, now, actor, kind, text, data)
            AuditStore.insert(conn, actor, f"incident_{kind}", "incident", incident_id, {"text": text}, now)
            return self._load(conn, incident_id)

        return await self.db.pool.do(_thd)

    async def get(self, incident_id: int) -> Incident | None:
        def _thd(conn):
            return self._load(conn, incident_id)

        return await self.db.pool.do(_thd)

    async def search(self, state: str | None = None, severity: str | None = None, plate: str | None = None,
                     since: datetime | None = None, until: datetime | None = None, limit: int = 100,
                     offset: int = 0) -> list[Incident]:
        """Emergencies first, then priority, then tier (platinum > gold > normal), then oldest first."""

        def _thd(conn):
            q = sa.select(incidents)
            for column, value in ((incidents.c.state, state), (incidents.c.severity, severity),
                                  (incidents.c.plate, plate)):
                if value is not None:
                    q = q.where(column == value)
            if since is not None:
                q = q.where(incidents.c.opened_at >= since)
            if until is not None:
                q = q.where(incidents.c.opened_at < until)
            tier_rank = sa.case((incidents.c.tier == "platinum", 0), (incidents.c.tier == "gold", 1), else_=2)
            q = q.order_by(sa.case((incidents.c.severity == "emergency", 0), else_=1), incidents.c.priority,
                           tier_rank, incidents.c.opened_at, incidents.c.id).limit(limit).offset(offset)
            return [self._model_from_row(r, ()) for r in conn.execute(q)]

        return await self.db.pool.do(_thd)

    async def due(self, now: datetime, limit: int = 100) -> list[Incident]:
        def _thd(conn):
            q = (sa.select(incidents).where(incidents.c.due_at.is_not(None), incidents.c.due_at <= now)
                 .order_by(incidents.c.due_at).limit(limit))
            return [self._model_from_row(r, ()) for r in conn.execute(q)]

        return await self.db.pool.do(_thd)

    async def unresolved_in(self, states: tuple[str, ...]) -> list[Incident]:
        def _thd(conn):
            q = sa.select(incidents).where(incidents.c.state.in_(states)).order_by(incidents.c.id)
            return [self._model_from_row(r, ()) for r in conn.execute(q)]

        return await self.db.pool.do(_thd)

    @staticmethod
    def _event(conn, incident_id: int, now: datetime, actor: str, kind: str, text: str, data) -> None:
        conn.execute(incident_events.insert().values(incident_id=incident_id, time=now, actor=actor, kind=kind,
                                                     text=text, data=data))

    @classmethod
    def _load(cls, conn, incident_id: int) -> Incident | None:
        row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()
        if row is None:
            return None
        events = conn.execute(sa.select(incident_events).where(incident_events.c.incident_id == incident_id)
                              .order_by(incident_events.c.id)).all()
        return cls._model_from_row(row, tuple(TimelineEntry(e.time, e.actor, e.kind, e.text, e.data) for e in events))

    @staticmethod
    def _model_from_row(row, timeline) -> Incident:
        return Incident(
            id=row.id, plate=row.plate, alarm=row.alarm, severity=row.severity, priority=row.priority, tier=row.tier,
            state=row.state, policy=row.policy, step=row.step, count=row.count, opened_at=row.opened_at,
            updated_at=row.updated_at, last_seen_at=row.last_seen_at, due_at=row.due_at, resolved_at=row.resolved_at,
            assignee=row.assignee, outcome=row.outcome, note=row.note, terminal_protocol=row.terminal_protocol,
            terminal_id=row.terminal_id, alarm_serial=row.alarm_serial, lat=row.lat, lon=row.lon, timeline=timeline)


def _for_update(q, conn):
    return q.with_for_update() if conn.dialect.name == "postgresql" else q
