"""``db.calls``: every call leg with its outcome and recording — the telephony core's ``CallLog``."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from callflows.calllog import CallRecord
from crm.schema import calls


class CallsStore:
    def __init__(self, db) -> None:
        self.db = db

    async def record_call(self, record: CallRecord) -> None:
        def _thd(conn):
            conn.execute(calls.insert().values(
                call_id=record.call_id, direction=record.direction, from_number=record.from_number[:64],
                to_number=record.to_number[:64], started_at=record.started_at, answered_at=record.answered_at,
                ended_at=record.ended_at, outcome=record.outcome, recording_path=record.recording_path))

        await self.db.pool.do(_thd)

    async def update_call(self, call_id: str, *, answered_at: datetime | None = None,
                          ended_at: datetime | None = None, outcome: str | None = None,
                          recording_path: str | None = None) -> None:
        changes = {k: v for k, v in (("answered_at", answered_at), ("ended_at", ended_at), ("outcome", outcome),
                                     ("recording_path", recording_path)) if v is not None}
        if not changes:
            return

        def _thd(conn):
            if conn.execute(calls.update().where(calls.c.call_id == call_id).values(**changes)).rowcount == 0:
                raise KeyError(f"unknown call {call_id}")

        await self.db.pool.do(_thd)

    async def get(self, call_id: str) -> CallRecord | None:
        def _thd(conn):
            row = conn.execute(sa.select(calls).where(calls.c.call_id == call_id)).first()
            return None if row is None else self._model_from_row(row)

        return await self.db.pool.do(_thd)

    @staticmethod
    def _model_from_row(row) -> CallRecord:
        return CallRecord(row.call_id, row.direction, row.from_number, row.to_number, row.started_at,
                          row.answered_at, row.ended_at, row.outcome, row.recording_path)
