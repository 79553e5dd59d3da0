"""``db.incidents``: incidents and their timelines; state changes go through the transition table.

``open_or_join`` is the one place incidents are created: one ``INSERT … ON CONFLICT (open_key) DO
UPDATE`` either inserts the incident or counts the repeat on the open one — ``open_key`` (plate|alarm)
is unique while unresolved — so two workers can never open two incidents for one vehicle and alarm.
``transition`` applies ``alarms.incident.TRANSITIONS`` and writes the timeline entry and the audit row
in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from alarms.incident import Incident, IncidentStateError, TimelineEntry, next_state
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
    start_deadline: float | None = None  # seconds: due_at of a new incident whose policy must start


@dataclass(frozen=True)
class Repeat:
    """What ``open_or_join`` returns for a repeat of an open incident: its id and its new count."""

    id: int
    count: int


@dataclass(frozen=True)
class Step:
    """A transition carried out inside another write: the first step of a new incident, in the
    transaction that opens it, or a second step after a transition (verify, then resolve)."""

    event: str
    actor: str
    text: str
    changes: dict[str, Any] = field(default_factory=dict)


# Built once, so SQLAlchemy reuses their compiled form on the engine's hot path.
_INSERT_EVENT = incident_events.insert()
GROUP_MAX = 50  # open_or_join calls per transaction
_OPEN_BY_KEY = sa.select(incidents.c.open_key, incidents.c.id).where(
    incidents.c.open_key.in_(sa.bindparam("b_keys", expanding=True))).order_by(incidents.c.id)
_COUNT_REPEATS = (incidents.update().where(incidents.c.id == sa.bindparam("b_id"))
                  .values(count=incidents.c.count + sa.bindparam("b_n", type_=sa.Integer),
                          last_seen_at=sa.bindparam("b_now", type_=incidents.c.last_seen_at.type),
                          alarm_serial=sa.func.coalesce(sa.bindparam("b_serial", type_=sa.Integer),
                                                        incidents.c.alarm_serial)))
_COUNTS = sa.select(incidents.c.id, incidents.c.count).where(incidents.c.id.in_(sa.bindparam("b_ids", expanding=True)))
_OPEN_OR_JOIN: dict[str, Any] = {}


def _open_or_join_statement(dialect: str):
    """INSERT the incident, or — when one is open for the same plate|alarm — count the repeat on it."""
    statement = _OPEN_OR_JOIN.get(dialect)
    if statement is None:
        from sqlalchemy.dialects import postgresql, sqlite

        insert = (postgresql if dialect == "postgresql" else sqlite).insert(incidents)
        statement = _OPEN_OR_JOIN[dialect] = insert.on_conflict_do_update(
            index_elements=[incidents.c.open_key],
            set_={"count": incidents.c.count + 1, "last_seen_at": insert.excluded.last_seen_at,
                  "alarm_serial": sa.func.coalesce(insert.excluded.alarm_serial, incidents.c.alarm_serial)},
        ).returning(*incidents.c)
    return statement


class IncidentsStore:
    def __init__(self, db) -> None:
        self.db = db
        self._pending: list[tuple[NewIncident, datetime, Step | None, Deferred]] = []
        self._flushing = False

    async def open_or_join(self, new: NewIncident, now: datetime,
                           first: Step | None = None) -> tuple[Incident | Repeat, bool]:
        """The incident opened for (plate, alarm) and True; or, when one is open, the repeat counted on
        it (a ``Repeat``) and False.
        A created incident takes ``first`` (e.g. escalate) in the same transaction.

        Calls made while the database is busy are grouped into one transaction (group commit): under
        load the engine's many small writes cost one thread hand-off and one commit per group. If a
        group fails, its calls are tried again one by one, so one bad call fails alone."""
        waiter: Deferred[tuple[Incident | Repeat, bool]] = Deferred()
        self._pending.append((new, now, first, waiter))
        if not self._flushing:
            Deferred.fromCoroutine(self._flush())
        return await waiter

    async def _flush(self) -> None:
        self._flushing = True
        try:
            while self._pending:
                group, self._pending = self._pending[:GROUP_MAX], self._pending[GROUP_MAX:]
                calls = [call[:3] for call in group]
                try:
                    results = await self.db.pool.do(self._open_or_join_many, calls)
                except Exception:
                    if len(group) == 1:
                        results = [Failure()]
                    else:
                        results = []
                        for call in calls:
                            try:
                                results.extend(await self.db.pool.do(self._open_or_join_many, [call]))
                            except Exception:
                                results.append(Failure())
                for (*_, waiter), result in zip(group, results, strict=True):
                    if isinstance(result, Failure):
                        waiter.errback(result)
                    else:
                        waiter.callback(result)
        finally:
            self._flushing = False

    def _open_or_join_many(self, conn, calls) -> list[tuple[Incident | Repeat, bool]]:
        """A group in a handful of statements: one SELECT finds the open incidents of all its keys,
        one executemany counts every repeat, and only new keys cost an INSERT of their own."""
        keys = [f"{new.plate}|{new.alarm}" for new, _, _ in calls]
        # On PostgreSQL the rows are locked (in id order, as every group takes them: no deadlock) and
        # re-checked: one resolved since is no longer open, and its repeat opens a new incident.
        select = _OPEN_BY_KEY.with_for_update() if conn.dialect.name == "postgresql" else _OPEN_BY_KEY
        open_ids = dict(conn.execute(select, {"b_keys": sorted(set(keys))}).all())
        results: list[tuple[Incident | Repeat, bool] | None] = [None] * len(calls)
        first_call: dict[str, int] = {}  # a key with no open incident -> its first call in the group
        for i, key in enumerate(keys):
            if key not in open_ids:
                first_call.setdefault(key, i)
        for key in sorted(first_call):  # inserted in key order, as every group does: no deadlock
            i = first_call[key]
            incident, created = self._open_or_join_thd(conn, *calls[i])
            open_ids[key] = incident.id
            results[i] = (incident, created)  # opened, or counted on one another worker just opened
        repeats: dict[int, dict[str, Any]] = {}  # incident id -> its count update
        for i, ((new, now, _), key) in enumerate(zip(calls, keys, strict=True)):
            if results[i] is not None:
                continue
            incident_id = open_ids[key]
            update = repeats.setdefault(incident_id, {"b_id": incident_id, "b_n": 0, "b_now": now, "b_serial": None})
            update["b_n"] += 1
            update["b_now"] = max(update["b_now"], now)
            if new.alarm_serial is not None:
                update["b_serial"] = new.alarm_serial
            results[i] = (Repeat(incident_id, 0), False)
        if repeats:
            conn.execute(_COUNT_REPEATS, [repeats[i] for i in sorted(repeats)])  # id order, as locked
            counts = dict(conn.execute(_COUNTS, {"b_ids": list(repeats)}).all())
            results = [(Repeat(r.id, counts.get(r.id, r.count)), False) if isinstance(r, Repeat) else (r, created)
                       for r, created in results]
        return results

    def _open_or_join_thd(self, conn, new: NewIncident, now: datetime,
                          first: Step | None) -> tuple[Incident | Repeat, bool]:
        key = f"{new.plate}|{new.alarm}"
        values = dict(
            plate=new.plate, alarm=new.alarm, severity=new.severity, priority=new.priority, tier=new.tier,
            state="open", policy=new.policy, step=0, count=1, open_key=key, opened_at=now, updated_at=now,
            last_seen_at=now, due_at=None, resolved_at=None, assignee=None, outcome=None, note=None,
            terminal_protocol=new.terminal_protocol, terminal_id=new.terminal_id,
            alarm_serial=new.alarm_serial, lat=new.lat, lon=new.lon)
        if first is not None:
            values.update(first.changes, state=next_state("open", first.event))
        elif new.start_deadline is not None:
            values["due_at"] = now + timedelta(seconds=new.start_deadline)
        # One statement opens or joins, atomically even between workers (INSERT … ON CONFLICT).
        row = conn.execute(_open_or_join_statement(conn.dialect.name), values).one()
        if row.count > 1:  # another worker opened it since the SELECT: counted on theirs
            return Repeat(row.id, row.count), False
        entries = [TimelineEntry(now, "engine", "opened", f"{new.alarm} on {new.plate} ({new.severity}, "
                                 f"{new.tier})", {"alarm_time": new.time.isoformat(), "lat": new.lat,
                                                 "lon": new.lon})]
        audits = [("engine", "incident_opened", {"plate": new.plate, "alarm": new.alarm})]
        if first is not None:
            entries.append(TimelineEntry(now, first.actor, _timeline_kind(first.event), first.text, None))
            audits.append((first.actor, f"incident_{first.event}",
                           {"from": "open", "to": row.state, "note": first.text}))
        conn.execute(_INSERT_EVENT, [{"incident_id": row.id, "time": e.time, "actor": e.actor, "kind": e.kind,
                                      "text": e.text, "data": e.data} for e in entries])
        AuditStore.insert_many(conn, [(actor, action, "incident", row.id, details)
                                      for actor, action, details in audits], now)
        return self._model_from_row(row, tuple(entries)), True

    async def transition(self, incident_id: int, event: str, actor: str, text: str, now: datetime,
                         data: dict[str, Any] | None = None, with_timeline: bool = True,
                         expect: tuple[str, ...] | None = None, due_by: datetime | None = None,
                         then: Step | None = None, **changes: Any) -> Incident:
        """Apply ``event`` (raises IncidentStateError if not allowed; LookupError if no such incident).

        Guards, checked on the locked row: ``expect`` — the states the caller saw (an agent may have
        taken the incident meanwhile); ``due_by`` — the deadline must still be at or before it (another
        worker's sweep, or a fresh acknowledgement, may have moved it). ``then`` applies a second step
        in the same transaction (verify, then resolve). The incident comes back with its timeline unless
        ``with_timeline`` is False (the engine's path)."""

        def _thd(conn):
            row = conn.execute(_for_update(sa.select(incidents).where(incidents.c.id == incident_id), conn)).first()
            if row is None:
                raise LookupError(f"no incident {incident_id}")
            if expect is not None and row.state not in expect:
                raise IncidentStateError(f"incident {incident_id} is {row.state} now, not {' or '.join(expect)}")
            if due_by is not None and (row.due_at is None or row.due_at > due_by):
                raise IncidentStateError(f"incident {incident_id} is no longer due")
            for step_event, step_actor, step_text, step_data, step_changes in (
                    (event, actor, text, data, changes),
                    *(((then.event, then.actor, then.text, None, then.changes),) if then else ())):
                before, state = row.state, next_state(row.state, step_event)
                values = dict(step_changes, state=state, updated_at=now)
                if state == "resolved":
                    values.update(open_key=None, resolved_at=now, due_at=None)
                elif state == "verified":
                    values.update(due_at=None)
                row = conn.execute(incidents.update().where(incidents.c.id == incident_id).values(**values)
                                   .returning(*incidents.c)).one()
                self._event(conn, incident_id, now, step_actor, _timeline_kind(step_event), step_text, step_data)
                AuditStore.insert(conn, step_actor, f"incident_{step_event}", "incident", incident_id,
                                  {"from": before, "to": state, **({"note": step_text} if step_text else {})}, now)
            return self._load(conn, incident_id) if with_timeline else self._model_from_row(row, ())

        return await self.db.pool.do(_thd)

    async def update(self, incident_id: int, actor: str, kind: str, text: str, now: datetime,
                     data: dict[str, Any] | None = None, due_if_notifying: datetime | None = None,
                     **changes: Any) -> Incident:
        """A timeline entry (comment, call attempt, reassignment) with optional field changes, no state
        change. ``due_if_notifying`` moves the deadline of an incident still ``notifying`` (a policy
        pausing between calls) and leaves any other's alone — an agent's acknowledgement deadline, or
        none. The incident comes back without its timeline."""
        if due_if_notifying is not None:
            # Bound with the column's own type: a bare datetime would go to PostgreSQL as timestamptz and
            # be stored in the server's local time.
            changes["due_at"] = sa.case((incidents.c.state == "notifying", sa.literal(due_if_notifying,
                                                                                        incidents.c.due_at.type)),
                                        else_=incidents.c.due_at)

        def _thd(conn):
            row = conn.execute(incidents.update().where(incidents.c.id == incident_id)
                               .values(**changes, updated_at=now).returning(*incidents.c)).first()
            if row is None:
                raise LookupError(f"no incident {incident_id}")
            self._event(conn, incident_id, now, actor, kind, text, data)
            AuditStore.insert(conn, actor, f"incident_{kind}", "incident", incident_id, {"text": text}, now)
            return self._model_from_row(row, ())

        return await self.db.pool.do(_thd)

    async def get(self, incident_id: int) -> Incident | None:
        def _thd(conn):
            return self._load(conn, incident_id)

        return await self.db.pool.do(_thd)

    async def search(self, state: str | None = None, severity: str | None = None, plate: str | None = None,
                     since: datetime | None = None, until: datetime | None = None, limit: int = 100,
                     offset: int = 0, with_timelines: bool = False) -> list[Incident]:
        """Emergencies first, then priority, then tier (platinum > gold > normal), then oldest first.
        ``with_timelines`` reads every found incident's timeline too, in one more query."""

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
            rows = conn.execute(q).all()
            timelines = self._timelines(conn, [r.id for r in rows]) if with_timelines and rows else {}
            return [self._model_from_row(r, timelines.get(r.id, ())) for r in rows]

        return await self.db.pool.do(_thd)

    async def due(self, now: datetime, limit: int = 100) -> list[Incident]:
        def _thd(conn):
            q = (sa.select(incidents).where(incidents.c.due_at.is_not(None), incidents.c.due_at <= now,
                                            incidents.c.state.in_(("open", "notifying", "acknowledged")))
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
        conn.execute(_INSERT_EVENT, {"incident_id": incident_id, "time": now, "actor": actor, "kind": kind,
                                     "text": text, "data": data})

    @classmethod
    def _load(cls, conn, incident_id: int) -> Incident | None:
        row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()
        if row is None:
            return None
        return cls._model_from_row(row, cls._timelines(conn, [incident_id]).get(incident_id, ()))

    @staticmethod
    def _timelines(conn, incident_ids: list[int]) -> dict[int, tuple[TimelineEntry, ...]]:
        found: dict[int, list[TimelineEntry]] = {}
        for e in conn.execute(sa.select(incident_events).where(incident_events.c.incident_id.in_(incident_ids))
                              .order_by(incident_events.c.id)):
            found.setdefault(e.incident_id, []).append(TimelineEntry(e.time, e.actor, e.kind, e.text, e.data))
        return {incident_id: tuple(entries) for incident_id, entries in found.items()}

    @staticmethod
    def _model_from_row(row, timeline) -> Incident:
        return Incident(
            id=row.id, plate=row.plate, alarm=row.alarm, severity=row.severity, priority=row.priority, tier=row.tier,
            state=row.state, policy=row.policy, step=row.step, count=row.count, opened_at=row.opened_at,
            updated_at=row.updated_at, last_seen_at=row.last_seen_at, due_at=row.due_at, resolved_at=row.resolved_at,
            assignee=row.assignee, outcome=row.outcome, note=row.note, terminal_protocol=row.terminal_protocol,
            terminal_id=row.terminal_id, alarm_serial=row.alarm_serial, lat=row.lat, lon=row.lon, timeline=timeline)


def _timeline_kind(event: str) -> str:
    """The timeline names a started policy step by the state it enters."""
    return "notifying" if event == "notify" else event


def _for_update(q, conn):
    return q.with_for_update() if conn.dialect.name == "postgresql" else q
