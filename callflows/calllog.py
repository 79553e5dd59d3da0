"""The record of every call leg and the ``CallLog`` interface it is handed to.

The telephony core only calls ``record_call`` when a leg starts and ``update_call`` as it is answered
and ends. The lead's database implementation (``db.calls``) satisfies the same protocol; the
in-memory one here is the embedded default and the tests' fake.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class CallRecord:
    call_id: str  # the SIP Call-ID of this leg
    direction: str  # "inbound" | "outbound"
    from_number: str
    to_number: str
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None  # a CallOutcome value once ended
    recording_path: str | None = None


@runtime_checkable
class CallLog(Protocol):
    async def record_call(self, record: CallRecord) -> None: ...

    async def update_call(self, call_id: str, *, answered_at: datetime | None = None,
                          ended_at: datetime | None = None, outcome: str | None = None,
                          recording_path: str | None = None) -> None: ...


class InMemoryCallLog:
    def __init__(self) -> None:
        self.calls: dict[str, CallRecord] = {}

    async def record_call(self, record: CallRecord) -> None:
        self.calls[record.call_id] = record

    async def update_call(self, call_id: str, *, answered_at: datetime | None = None,
                          ended_at: datetime | None = None, outcome: str | None = None,
                          recording_path: str | None = None) -> None:
        record = self.calls.get(call_id)
        if record is None:
            raise KeyError(f"unknown call {call_id}")
        changes = {k: v for k, v in (("answered_at", answered_at), ("ended_at", ended_at),
                                     ("outcome", outcome), ("recording_path", recording_path)) if v is not None}
        self.calls[call_id] = dataclasses.replace(record, **changes)
