"""``db.audit``: the append-only audit log — who did what to which object, when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from crm.schema import audit_log


@dataclass(frozen=True)
class AuditEntry:
    id: int
    time: datetime
    actor: str
    action: str
    object_type: str
    object_id: str | None
    details: dict[str, Any] | None


_INSERT = audit_log.insert()  # built once: SQLAlchemy caches its compiled form


class AuditStore:
    def __init__(self, db) -> None:
        self.db = db

    @staticmethod
    def insert(conn: sa.Connection, actor: str, action: str, object_type: str, object_id: Any = None,
               details: dict[str, Any] | None = None, time: datetime | None = None) -> None:
        """Append inside a caller's transaction, so the audit row commits with the change it records."""
        conn.execute(_INSERT, {
            "time": time or datetime.now(timezone.utc), "actor": actor, "action": action, "object_type": object_type,
            "object_id": None if object_id is None else str(object_id), "details": details})

    @staticmethod
    def insert_many(conn: sa.Connection, entries: list[tuple[str, str, str, Any, dict[str, Any] | None]],
                    time: datetime) -> None:
        """Several ``(actor, action, object_type, object_id, details)`` rows in one statement."""
        conn.execute(_INSERT, [{"time": time, "actor": actor, "action": action, "object_type": object_type,
                                "object_id": None if object_id is None else str(object_id), "details": details}
                               for actor, action, object_type, object_id, details in entries])

    async def record(self, actor: str, action: str, object_type: str, object_id: Any = None,
                     details: dict[str, Any] | None = None) -> None:
        def _thd(conn):
            self.insert(conn, actor, action, object_type, object_id, details)

        await self.db.pool.do(_thd)

    async def entries(self, object_type: str | None = None, object_id: Any = None,
                      limit: int = 100) -> list[AuditEntry]:
        def _thd(conn):
            q = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
            if object_type is not None:
                q = q.where(audit_log.c.object_type == object_type)
            if object_id is not None:
                q = q.where(audit_log.c.object_id == str(object_id))
            return [self._model_from_row(r) for r in conn.execute(q)]

        return await self.db.pool.do(_thd)

    @staticmethod
    def _model_from_row(row) -> AuditEntry:
        return AuditEntry(row.id, row.time, row.actor, row.action, row.object_type, row.object_id, row.details)
