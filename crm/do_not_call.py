"""``db.campaigns.dnc``: the do-not-call list — numbers (E.164) no campaign may dial, whoever put them there."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from crm.audit import AuditStore
from crm.campaign_records import DncEntry
from crm.schema import do_not_call

_CHUNK = 500  # IN-list size


class DoNotCallStore:
    def __init__(self, db) -> None:
        self.db = db

    async def add(self, phone: str, reason: str | None, actor: str, now: datetime) -> DncEntry:
        return await self.db.pool.do(self._add_thd, phone, reason, actor, now)

    def add_blocking(self, phone: str, reason: str | None, actor: str, now: datetime) -> DncEntry:
        return self.db.pool.do_blocking(self._add_thd, phone, reason, actor, now)

    def _add_thd(self, conn, phone, reason, actor, now) -> DncEntry:
        existing = conn.execute(sa.select(do_not_call).where(do_not_call.c.phone == phone)).first()
        if existing is None:
            conn.execute(do_not_call.insert().values(phone=phone, reason=reason, added_at=now))
        elif reason is not None:
            conn.execute(do_not_call.update().where(do_not_call.c.phone == phone).values(reason=reason))
        AuditStore.insert(conn, actor, "dnc_added", "do_not_call", phone, {"reason": reason}, now)
        row = conn.execute(sa.select(do_not_call).where(do_not_call.c.phone == phone)).one()
        return DncEntry(row.phone, row.reason, row.added_at)

    async def remove(self, phone: str, actor: str, now: datetime) -> bool:
        return await self.db.pool.do(self._remove_thd, phone, actor, now)

    def remove_blocking(self, phone: str, actor: str, now: datetime) -> bool:
        return self.db.pool.do_blocking(self._remove_thd, phone, actor, now)

    def _remove_thd(self, conn, phone, actor, now) -> bool:
        gone = conn.execute(do_not_call.delete().where(do_not_call.c.phone == phone)).rowcount > 0
        if gone:
            AuditStore.insert(conn, actor, "dnc_removed", "do_not_call", phone, None, now)
        return gone

    async def search(self, limit: int = 1000, offset: int = 0) -> list[DncEntry]:
        return await self.db.pool.do(self._search_thd, limit, offset)

    def search_blocking(self, limit: int = 1000, offset: int = 0) -> list[DncEntry]:
        return self.db.pool.do_blocking(self._search_thd, limit, offset)

    def _search_thd(self, conn, limit: int, offset: int) -> list[DncEntry]:
        q = sa.select(do_not_call).order_by(do_not_call.c.phone).limit(limit).offset(offset)
        return [DncEntry(r.phone, r.reason, r.added_at) for r in conn.execute(q)]

    @staticmethod
    def among(conn, phones: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(phones), _CHUNK):
            found.update(conn.execute(sa.select(do_not_call.c.phone).where(
                do_not_call.c.phone.in_(phones[i:i + _CHUNK]))).scalars())
        return found
