"""``db.rescue``: the rescue fleet — vehicles of kind ``rescue`` and their dispatch availability.

A rescue vehicle has no ``rescue_trucks`` row until it first reports a position (``enter_service``
inserts one as ``available``) or a dispatcher sets its availability. While a truck serves a work
order (``work_order_id`` set) its availability follows the order and only ``db.work_orders`` moves it,
through ``claim`` and ``follow_order`` inside the order's own transaction; a dispatcher's change
(``set_availability``) is refused then, in SQL, so two desks cannot disagree about a busy truck.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from crm.audit import AuditStore
from crm.schema import positions, rescue_trucks, vehicles

AVAILABILITIES = ("available", "dispatched", "en_route", "on_site", "returning", "off_duty")
# What a dispatcher may set by hand; the others belong to a work order's life cycle.
MANUAL_AVAILABILITIES = ("available", "returning", "off_duty")


class TruckBusyError(ValueError):
    """The truck serves a work order (or is not available for one): its availability cannot change so."""


@dataclass(frozen=True)
class LastFix:
    time: datetime
    lat: float
    lon: float


@dataclass(frozen=True)
class RescueTruck:
    vehicle_id: int
    plate: str
    skills: tuple[str, ...]
    availability: str | None  # None: not in service yet (no position reported, nothing set)
    work_order_id: int | None
    changed_at: datetime | None
    changed_by: str | None
    last_fix: LastFix | None = None  # only from ``trucks(with_positions=True)``


def _upsert(dialect: str):
    return (postgresql if dialect == "postgresql" else sqlite).insert(rescue_trucks)


class RescueStore:
    def __init__(self, db) -> None:
        self.db = db

    async def trucks(self, with_positions: bool = False) -> list[RescueTruck]:
        """Every rescue vehicle by plate; ``with_positions`` adds each one's newest stored valid fix."""

        def _thd(conn):
            rows = conn.execute(_TRUCKS.order_by(vehicles.c.plate)).all()
            fixes = self._last_fixes(conn) if with_positions and rows else {}
            return [self._model_from_row(r, fixes.get(r.vehicle_id)) for r in rows]

        return await self.db.pool.do(_thd)

    async def get(self, plate: str) -> RescueTruck | None:
        """The rescue truck with this plate; None when there is no such vehicle or it is not a rescue one."""

        def _thd(conn):
            row = conn.execute(_TRUCKS.where(vehicles.c.plate == plate)).first()
            return None if row is None else self._model_from_row(row, None)

        return await self.db.pool.do(_thd)

    async def enter_service(self, plate: str, now: datetime) -> tuple[RescueTruck | None, bool]:
        """On a truck's first position: ``available`` unless an availability is set already.
        Returns the truck (None if not a rescue vehicle) and whether this call put it in service —
        several processes may see the same first report; only one inserts."""

        def _thd(conn):
            vid = conn.execute(sa.select(vehicles.c.id).where(vehicles.c.plate == plate,
                                                              vehicles.c.kind == "rescue")).scalar()
            if vid is None:
                return None, False
            insert = _upsert(conn.dialect.name).values(vehicle_id=vid, availability="available",
                                                       work_order_id=None, changed_at=now, changed_by="engine")
            inserted = conn.execute(insert.on_conflict_do_nothing(index_elements=["vehicle_id"])
                                    .returning(rescue_trucks.c.vehicle_id)).first() is not None
            if inserted:
                AuditStore.insert(conn, "engine", "truck_in_service", "vehicle", vid,
                                  {"plate": plate, "availability": "available"}, now)
            return self._model_from_row(conn.execute(_TRUCKS.where(vehicles.c.id == vid)).one(), None), inserted

        return await self.db.pool.do(_thd)

    async def set_availability(self, plate: str, availability: str, actor: str, now: datetime) -> RescueTruck:
        """A dispatcher's change (available, returning, off_duty). LookupError: no such rescue truck;
        ValueError: another availability; TruckBusyError: the truck serves a work order."""
        if availability not in MANUAL_AVAILABILITIES:
            raise ValueError(f"availability must be one of {', '.join(MANUAL_AVAILABILITIES)} "
                             "(the others follow a work order)")

        def _thd(conn):
            vid = conn.execute(sa.select(vehicles.c.id).where(vehicles.c.plate == plate,
                                                              vehicles.c.kind == "rescue")).scalar()
            if vid is None:
                raise LookupError(f"no rescue truck {plate}")
            insert = _upsert(conn.dialect.name).values(vehicle_id=vid, availability=availability,
                                                       work_order_id=None, changed_at=now, changed_by=actor)
            # The WHERE is the guard: a truck serving an order keeps its row untouched.
            changed = conn.execute(insert.on_conflict_do_update(
                index_elements=["vehicle_id"],
                set_={"availability": availability, "changed_at": now, "changed_by": actor},
                where=rescue_trucks.c.work_order_id.is_(None)).returning(rescue_trucks.c.vehicle_id)).first() is not None
            if not changed:
                order = conn.execute(sa.select(rescue_trucks.c.work_order_id)
                                     .where(rescue_trucks.c.vehicle_id == vid)).scalar()
                raise TruckBusyError(f"truck {plate} serves work order {order}; complete or cancel it first")
            AuditStore.insert(conn, actor, "truck_availability", "vehicle", vid,
                              {"plate": plate, "availability": availability}, now)
            return self._model_from_row(conn.execute(_TRUCKS.where(vehicles.c.id == vid)).one(), None)

        return await self.db.pool.do(_thd)

    # -- inside a work order's transaction (crm.workorders) -------------------------------------

    @staticmethod
    def claim(conn, vehicle_id: int, work_order_id: int, actor: str, now: datetime) -> bool:
        """Make an ``available`` truck serve the order; False when it is not available (any more)."""
        result = conn.execute(rescue_trucks.update().where(
            rescue_trucks.c.vehicle_id == vehicle_id, rescue_trucks.c.availability == "available",
            rescue_trucks.c.work_order_id.is_(None)).values(
            availability="dispatched", work_order_id=work_order_id, changed_at=now, changed_by=actor))
        return result.rowcount == 1

    @staticmethod
    def follow_order(conn, vehicle_id: int, work_order_id: int, availability: str, actor: str, now: datetime,
                     release: bool = False) -> bool:
        """Move the truck with its order (``release``: the order is over, the truck is free of it).
        Only while the truck still serves that order."""
        values = {"availability": availability, "changed_at": now, "changed_by": actor}
        if release:
            values["work_order_id"] = None
        result = conn.execute(rescue_trucks.update().where(
            rescue_trucks.c.vehicle_id == vehicle_id, rescue_trucks.c.work_order_id == work_order_id).values(**values))
        return result.rowcount == 1

    @staticmethod
    def _last_fixes(conn) -> dict[int, LastFix]:
        """Newest valid fix per rescue vehicle: one correlated lookup each, on (vehicle_id, time)."""
        p = positions.alias("newest")
        newest = (sa.select(p.c.id).where(p.c.vehicle_id == vehicles.c.id, p.c.valid, p.c.lat.is_not(None),
                                          p.c.lon.is_not(None))
                  .order_by(p.c.time.desc(), p.c.id.desc()).limit(1).correlate(vehicles).scalar_subquery())
        q = (sa.select(vehicles.c.id, positions.c.time, positions.c.lat, positions.c.lon)
             .select_from(vehicles).join(positions, positions.c.id == newest).where(vehicles.c.kind == "rescue"))
        return {r.id: LastFix(r.time, r.lat, r.lon) for r in conn.execute(q)}

    @staticmethod
    def _model_from_row(row, last_fix: LastFix | None) -> RescueTruck:
        return RescueTruck(
            vehicle_id=row.vehicle_id, plate=row.plate, skills=tuple(s for s in (row.skills or "").split(",") if s),
            availability=row.availability, work_order_id=row.work_order_id, changed_at=row.changed_at,
            changed_by=row.changed_by, last_fix=last_fix)


_TRUCKS = (sa.select(vehicles.c.id.label("vehicle_id"), vehicles.c.plate, vehicles.c.skills,
                     rescue_trucks.c.availability, rescue_trucks.c.work_order_id, rescue_trucks.c.changed_at,
                     rescue_trucks.c.changed_by)
           .outerjoin(rescue_trucks, rescue_trucks.c.vehicle_id == vehicles.c.id)
           .where(vehicles.c.kind == "rescue"))
