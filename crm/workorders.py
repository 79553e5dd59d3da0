"""``db.work_orders``: dispatches of rescue trucks and their life cycle.

``dispatched → en_route → on_site → completed``, or ``cancelled`` before completion; the transition
table is at the bottom. Every change is one transaction: the order's status and timestamp, its truck's
availability (through ``crm.rescue``) and an audit row. Each transition is guarded in SQL — the UPDATE
only matches the status the caller saw (the row is also locked on PostgreSQL) — so when two workers
both see a truck arrive, exactly one moves the order to ``on_site`` and the other gets
``WorkOrderStateError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crm.audit import AuditStore
from crm.rescue import RescueStore, TruckBusyError
from crm.schema import vehicles, work_orders

KINDS = ("tow", "battery", "tyre", "fuel", "accident")
STATUSES = ("dispatched", "en_route", "on_site", "completed", "cancelled")
ACTIVE = ("dispatched", "en_route", "on_site")


class WorkOrderStateError(ValueError):
    """The transition is not allowed in the order's current status."""


@dataclass(frozen=True)
class NewWorkOrder:
    kind: str
    truck_plate: str
    site_lat: float
    site_lon: float
    created_by: str
    incident_id: int | None = None
    customer_plate: str | None = None
    contact_phone: str | None = None
    address: str | None = None
    distance_m: float | None = None
    eta_s: float | None = None
    note: str | None = None


@dataclass(frozen=True)
class WorkOrder:
    id: int
    kind: str
    status: str
    incident_id: int | None
    truck_id: int
    truck_plate: str
    customer_plate: str | None
    contact_phone: str | None
    site_lat: float
    site_lon: float
    address: str | None
    distance_m: float | None
    eta_s: float | None
    note: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    en_route_at: datetime | None
    on_site_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (
            "id", "kind", "status", "incident_id", "truck_plate", "customer_plate", "contact_phone", "address",
            "distance_m", "eta_s", "note", "created_by", "created_at", "updated_at", "en_route_at", "on_site_at",
            "completed_at", "cancelled_at")}
        out["site"] = {"lat": self.site_lat, "lon": self.site_lon}
        return out


class WorkOrdersStore:
    def __init__(self, db) -> None:
        self.db = db

    async def create(self, new: NewWorkOrder, now: datetime) -> WorkOrder:
        """Insert the order and make its truck serve it. LookupError: no such rescue truck;
        TruckBusyError: the truck is not available (nothing is written then)."""
        if new.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")

        def _thd(conn):
            vid = conn.execute(sa.select(vehicles.c.id).where(vehicles.c.plate == new.truck_plate,
                                                              vehicles.c.kind == "rescue")).scalar()
            if vid is None:
                raise LookupError(f"no rescue truck {new.truck_plate}")
            order_id = conn.execute(work_orders.insert().values(
                kind=new.kind, status="dispatched", incident_id=new.incident_id, truck_id=vid,
                customer_plate=new.customer_plate, contact_phone=new.contact_phone, site_lat=new.site_lat,
                site_lon=new.site_lon, address=new.address, distance_m=new.distance_m, eta_s=new.eta_s,
                note=new.note, created_by=new.created_by, created_at=now, updated_at=now)
                .returning(work_orders.c.id)).scalar_one()
            if not RescueStore.claim(conn, vid, order_id, new.created_by, now):
                # Raising rolls the insert back: an order exists only with its truck.
                raise TruckBusyError(f"truck {new.truck_plate} is not available")
            AuditStore.insert(conn, new.created_by, "work_order_dispatched", "work_order", order_id,
                              {"truck": new.truck_plate, "incident_id": new.incident_id, "kind": new.kind}, now)
            return self._load(conn, order_id)

        return await self.db.pool.do(_thd)

    async def transition(self, order_id: int, event: str, actor: str, now: datetime,
                         note: str | None = None) -> WorkOrder:
        """Apply ``event`` (en_route, on_site, complete, cancel). LookupError: no such order;
        WorkOrderStateError: not allowed now, or another process changed the order first."""

        def _thd(conn):
            q = sa.select(work_orders.c.status, work_orders.c.truck_id).where(work_orders.c.id == order_id)
            row = conn.execute(q.with_for_update() if conn.dialect.name == "postgresql" else q).first()
            if row is None:
                raise LookupError(f"no work order {order_id}")
            status = next_status(order_id, row.status, event)
            values: dict[str, Any] = {"status": status, "updated_at": now, f"{status}_at": now}
            if note is not None:
                values["note"] = note
            changed = conn.execute(work_orders.update().where(
                work_orders.c.id == order_id, work_orders.c.status == row.status).values(**values)).rowcount
            if changed != 1:  # SQLite has no row lock: the status it read may be gone already
                raise WorkOrderStateError(f"work order {order_id} changed meanwhile; it is no longer {row.status}")
            over = status in ("completed", "cancelled")
            RescueStore.follow_order(conn, row.truck_id, order_id, "available" if over else status, actor, now,
                                     release=over)
            AuditStore.insert(conn, actor, f"work_order_{status}", "work_order", order_id,
                              {"from": row.status, "to": status, **({"note": note} if note else {})}, now)
            return self._load(conn, order_id)

        return await self.db.pool.do(_thd)

    async def get(self, order_id: int) -> WorkOrder | None:
        return await self.db.pool.do(self._load, order_id)

    async def search(self, statuses: tuple[str, ...] | None = None, truck_plate: str | None = None,
                     incident_id: int | None = None, limit: int = 100, offset: int = 0) -> list[WorkOrder]:
        """Newest first."""

        def _thd(conn):
            q = _ORDERS
            if statuses is not None:
                q = q.where(work_orders.c.status.in_(statuses))
            if truck_plate is not None:
                q = q.where(vehicles.c.plate == truck_plate)
            if incident_id is not None:
                q = q.where(work_orders.c.incident_id == incident_id)
            q = q.order_by(work_orders.c.id.desc()).limit(limit).offset(offset)
            return [self._model_from_row(r) for r in conn.execute(q)]

        return await self.db.pool.do(_thd)

    @classmethod
    def _load(cls, conn, order_id: int) -> WorkOrder | None:
        row = conn.execute(_ORDERS.where(work_orders.c.id == order_id)).first()
        return None if row is None else cls._model_from_row(row)

    @staticmethod
    def _model_from_row(row) -> WorkOrder:
        return WorkOrder(
            id=row.id, kind=row.kind, status=row.status, incident_id=row.incident_id, truck_id=row.truck_id,
            truck_plate=row.truck_plate, customer_plate=row.customer_plate, contact_phone=row.contact_phone,
            site_lat=row.site_lat, site_lon=row.site_lon, address=row.address, distance_m=row.distance_m,
            eta_s=row.eta_s, note=row.note, created_by=row.created_by, created_at=row.created_at,
            updated_at=row.updated_at, en_route_at=row.en_route_at, on_site_at=row.on_site_at,
            completed_at=row.completed_at, cancelled_at=row.cancelled_at)


_ORDERS = (sa.select(work_orders, vehicles.c.plate.label("truck_plate"))
           .join(vehicles, vehicles.c.id == work_orders.c.truck_id))


def next_status(order_id: int, status: str, event: str) -> str:
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise WorkOrderStateError(f"cannot {event.replace('_', ' ')} work order {order_id}: it is {status}") from None


# The life cycle, in one place. Inputs: en_route (the crew set off), on_site (the truck is at the site:
# the crew says so, or its position entered the site circle — possibly without en_route ever sent),
# complete (the job is done), cancel (before completion).
TRANSITIONS: dict[tuple[str, str], str] = {
    ("dispatched", "en_route"): "en_route",
    ("dispatched", "on_site"): "on_site",
    ("en_route", "on_site"): "on_site",
    ("on_site", "complete"): "completed",
    **{(status, "cancel"): "cancelled" for status in ACTIVE},
}
