"""The live-state interface: fast, shared, short-lived state (config ``[live] url``).

Last position per vehicle, keys with a time-to-live, and atomic locks. Backends: in memory
(``memory://``, one process) and Redis (``redis://``, shared by every Watchline process). Values are
JSON-serialisable. Durable facts live in the database, never only here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


class LiveUnavailable(Exception):
    """The live-state store could not be reached (Redis down, timed out) or is not started."""


@dataclass(frozen=True)
class Lock:
    name: str
    token: str  # proves ownership: only the holder can release or extend it


class LiveState(Protocol):
    shared: bool  # True when other processes see the same state (Redis); False for one process's memory

    async def set_position(self, vehicle: str, position: dict[str, Any]) -> None:
        """Keep ``position`` as the vehicle's last one — unless the stored one has a newer
        ``time`` (ISO-8601 string), so late or replayed reports never move a vehicle back."""

    async def get_position(self, vehicle: str) -> dict[str, Any] | None: ...

    async def get_positions(self, vehicles: list[str]) -> dict[str, dict[str, Any]]:
        """Last positions of the vehicles that have one."""

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None: ...

    async def set_if_absent(self, key: str, value: Any, ttl: float | None = None) -> bool:
        """Atomically set ``key`` only when it does not exist; True when this call set it."""

    async def get(self, key: str) -> Any | None: ...

    async def delete(self, key: str) -> None: ...

    async def acquire_lock(self, name: str, ttl: float) -> Lock | None:
        """Take the lock if free (atomic across processes); it expires after ``ttl`` seconds."""

    async def extend_lock(self, lock: Lock, ttl: float) -> bool: ...

    async def release_lock(self, lock: Lock) -> bool:
        """Release only if still held by ``lock.token``; False if it expired or was taken."""


_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_value(value: Any) -> str:
    """Values are stored as JSON, in every backend, so what works in memory works on Redis."""
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"live-state value is not JSON-serialisable: {e}") from None


def decode_value(text: str | bytes | None) -> Any:
    return None if text is None else json.loads(text)


def check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind} must be a non-empty string, not {name!r}")


def check_ttl(ttl: float | None, optional: bool = True) -> None:
    if ttl is None and optional:
        return
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")


def ttl_milliseconds(ttl: float) -> int:
    return max(1, round(ttl * 1000))


def position_time_us(position: dict[str, Any]) -> int:
    """The position's ``time`` in microseconds since the epoch, for ordering positions by instant
    (ISO-8601 strings with different offsets or precision do not sort as text). A time without an
    offset is taken as UTC."""
    if not isinstance(position, dict):
        raise TypeError(f"a position is a dict, not {type(position).__name__}")
    text = position.get("time")
    if not isinstance(text, str):
        raise ValueError(f"a position needs an ISO-8601 'time' string, got {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"position time is not ISO-8601: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
