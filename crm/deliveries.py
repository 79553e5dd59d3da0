"""``db.deliveries``: every notice sent through a channel (SMS, e-mail, webhook, voice) and what became of it.

A delivery is written ``pending`` before the channel is tried, so even a send that crashes leaves a row;
the channel's result then makes it ``sent`` (handed to the SMSC / mail server / customer system) or
``failed``; a later delivery receipt can make a ``sent`` row ``delivered`` or ``failed``. Rows link to
the incident or work order they are about.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from crm.schema import deliveries

STATUSES = ("pending", "sent", "delivered", "failed")
CHANNELS = ("voice", "sms", "email", "webhook")


@dataclass(frozen=True)
class NewDelivery:
    channel: str
    recipient: str  # E.164 number, e-mail address or URL
    template: str
    body: str
    subject: str | None = None
    incident_id: int | None = None
    work_order_id: int | None = None


@dataclass(frozen=True)
class Delivery:
    id: int
    channel: str
    recipient: str
    template: str
    subject: str | None
    body: str
    status: str
    attempts: int
    error: str | None
    external_id: str | None
    incident_id: int | None
    work_order_id: int | None
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class DeliveriesStore:
    def __init__(self, db) -> None:
        self.db = db

    async def add(self, new: NewDelivery, now: datetime) -> Delivery:
        """A ``pending`` row for a notice about to be sent."""
        if new.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {new.channel!r}")

        def _thd(conn):
            row = conn.execute(deliveries.insert().values(
                channel=new.channel, recipient=new.recipient[:500], template=new.template[:64],
                subject=None if new.subject is None else new.subject[:200], body=new.body, status="pending",
                attempts=0, incident_id=new.incident_id, work_order_id=new.work_order_id, created_at=now,
                updated_at=now).returning(*deliveries.c)).first()
            return self._model_from_row(row)

        return await self.db.pool.do(_thd)

    async def finish(self, delivery_id: int, status: str, now: datetime, *, attempts: int,
                     error: str | None = None, external_id: str | None = None) -> Delivery:
        """The channel's verdict: ``sent``, ``delivered`` or ``failed``, after ``attempts`` tries."""
        if status not in STATUSES[1:]:
            raise ValueError(f"status must be sent, delivered or failed, got {status!r}")

        def _thd(conn):
            row = conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(
                status=status, attempts=attempts, error=None if error is None else error[:2000],
                external_id=None if external_id is None else external_id[:100], updated_at=now,
            ).returning(*deliveries.c)).first()
            if row is None:
                raise LookupError(f"no delivery {delivery_id}")
            return self._model_from_row(row)

        return await self.db.pool.do(_thd)

    async def receipt(self, channel: str, external_id: str, status: str, now: datetime,
                      error: str | None = None) -> Delivery | None:
        """A delivery receipt for the row the channel knows as ``external_id``: ``delivered`` or
        ``failed``. Only a ``sent`` row changes (a receipt that arrives twice, or for a row already
        failed, changes nothing); None when no row is waiting for it."""
        if status not in ("delivered", "failed"):
            raise ValueError(f"a receipt is delivered or failed, got {status!r}")

        def _thd(conn):
            row = conn.execute(deliveries.update().where(
                deliveries.c.channel == channel, deliveries.c.external_id == external_id[:100],
                deliveries.c.status == "sent",
            ).values(status=status, error=error, updated_at=now).returning(*deliveries.c)).first()
            return None if row is None else self._model_from_row(row)

        return await self.db.pool.do(_thd)

    async def get(self, delivery_id: int) -> Delivery | None:
        def _thd(conn):
            row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()
            return None if row is None else self._model_from_row(row)

        return await self.db.pool.do(_thd)

    async def search(self, *, incident_id: int | None = None, work_order_id: int | None = None,
                     status: str | None = None, channel: str | None = None, limit: int = 100) -> list[Delivery]:
        """Oldest first."""
        query = sa.select(deliveries).order_by(deliveries.c.id).limit(limit)
        for column, value in ((deliveries.c.incident_id, incident_id), (deliveries.c.work_order_id, work_order_id),
                              (deliveries.c.status, status), (deliveries.c.channel, channel)):
            if value is not None:
                query = query.where(column == value)

        def _thd(conn):
            return [self._model_from_row(row) for row in conn.execute(query)]

        return await self.db.pool.do(_thd)

    @staticmethod
    def _model_from_row(row) -> Delivery:
        return Delivery(row.id, row.channel, row.recipient, row.template, row.subject, row.body, row.status,
                        row.attempts, row.error, row.external_id, row.incident_id, row.work_order_id,
                        row.created_at, row.updated_at)
