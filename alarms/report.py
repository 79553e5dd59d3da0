"""The canonical Report: what every ingest source (terminal, platform feed) turns a message into.

A Report is a plain value: it crosses the bus as JSON (``to_message``/``from_message``) and is
what the alarm engine, the live state and position storage consume. Decoders build Reports and
never touch the database; the ingest pipeline fills in ``plate`` after looking the terminal up.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

# Report ids: a random per-process prefix plus a counter — unique across processes and restarts,
# and far cheaper than a uuid4 per frame on the ingest hot path.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def new_report_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):x}"


# Fix and Report write their own __init__ (same parameters as the generated one, checked by a test):
# a frozen dataclass's generated __init__ sets each field through object.__setattr__, about twice the
# cost of filling the instance dict, and the terminal servers build both for every position.


@dataclass(frozen=True, init=False)
class Fix:
    lat: float  # WGS-84 degrees
    lon: float
    altitude: float = 0.0  # metres
    speed_kmh: float = 0.0
    course: float = 0.0  # degrees clockwise from north
    valid: bool = True
    satellites: int | None = None

    def __init__(self, lat: float, lon: float, altitude: float = 0.0, speed_kmh: float = 0.0, course: float = 0.0,
                 valid: bool = True, satellites: int | None = None) -> None:
        fields = self.__dict__
        fields["lat"] = lat
        fields["lon"] = lon
        fields["altitude"] = altitude
        fields["speed_kmh"] = speed_kmh
        fields["course"] = course
        fields["valid"] = valid
        fields["satellites"] = satellites


@dataclass(frozen=True, init=False)
class Report:
    protocol: str  # jt808 | gt06 | traccar | http
    terminal_id: str
    time: datetime  # UTC, timezone-aware
    fix: Fix | None = None
    status: dict[str, Any] = field(default_factory=dict)  # acc, door_front_open, oil_cut, ...
    raw_alarms: dict[str, Any] = field(default_factory=dict)  # {"jt808_word": 1} / {"gt06_code": 1}
    alarms: tuple[str, ...] = ()  # canonical names
    extras: dict[str, Any] = field(default_factory=dict)
    report_id: str = field(default_factory=new_report_id)
    received_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    plate: str | None = None  # filled in by the ingest pipeline from the fleet

    def __init__(self, protocol: str, terminal_id: str, time: datetime, fix: Fix | None = None,
                 status: dict[str, Any] | None = None, raw_alarms: dict[str, Any] | None = None,
                 alarms: tuple[str, ...] = (), extras: dict[str, Any] | None = None, report_id: str | None = None,
                 received_at: datetime | None = None, plate: str | None = None) -> None:
        fields = self.__dict__  # None stands for the field's default factory
        fields["protocol"] = protocol
        fields["terminal_id"] = terminal_id
        fields["time"] = time
        fields["fix"] = fix
        fields["status"] = {} if status is None else status
        fields["raw_alarms"] = {} if raw_alarms is None else raw_alarms
        fields["alarms"] = alarms
        fields["extras"] = {} if extras is None else extras
        fields["report_id"] = new_report_id() if report_id is None else report_id
        fields["received_at"] = datetime.now(timezone.utc) if received_at is None else received_at
        fields["plate"] = plate

    def with_plate(self, plate: str | None) -> Report:
        return replace(self, plate=plate)

    def to_message(self) -> dict[str, Any]:
        msg = asdict(self)
        msg["time"] = iso_utc(self.time)
        msg["received_at"] = iso_utc(self.received_at)
        msg["alarms"] = list(self.alarms)
        return msg

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> Report:
        fix = msg.get("fix")
        return cls(
            protocol=msg["protocol"],
            terminal_id=msg["terminal_id"],
            time=_parse_iso(msg["time"]),
            fix=Fix(**fix) if fix else None,
            status=dict(msg.get("status") or {}),
            raw_alarms=dict(msg.get("raw_alarms") or {}),
            alarms=tuple(msg.get("alarms") or ()),
            extras=dict(msg.get("extras") or {}),
            report_id=msg.get("report_id") or new_report_id(),
            received_at=_parse_iso(msg["received_at"]) if msg.get("received_at") else datetime.now(timezone.utc),
            plate=msg.get("plate"),
        )


def iso_utc(t: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``: the one time format on the bus and in the API."""
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_iso(s: str) -> datetime:
    t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
