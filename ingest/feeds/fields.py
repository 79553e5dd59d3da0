"""Reading untrusted JSON with errors that name the offending field by its path (``reports[3].lat``)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any


class FeedError(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FeedError(path or "body", "must be a JSON object")
    return value


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def string(o: dict, key: str, path: str, required: bool = True, max_len: int = 64) -> str | None:
    value = o.get(key)
    if value is None:
        if required:
            raise FeedError(join(path, key), "is required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise FeedError(join(path, key), "must be a non-empty string")
    if len(value) > max_len:
        raise FeedError(join(path, key), f"longer than {max_len} characters")
    return value.strip()


def number(o: dict, key: str, path: str, low: float, high: float, required: bool = False) -> float | None:
    value = o.get(key)
    if value is None:
        if required:
            raise FeedError(join(path, key), "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FeedError(join(path, key), "must be a finite number")
    if not low <= value <= high:
        raise FeedError(join(path, key), f"must be between {low:g} and {high:g}")
    return float(value)


def boolean(o: dict, key: str, path: str, default: bool) -> bool:
    value = o.get(key, default)
    if not isinstance(value, bool):
        raise FeedError(join(path, key), "must be true or false")
    return value


def timestamp(o: dict, key: str, path: str, now: datetime, required: bool = True) -> datetime | None:
    """ISO-8601 with a zone (or epoch milliseconds), not more than 25 h in the future."""
    value = o.get(key)
    if value is None:
        if required:
            raise FeedError(join(path, key), "is required")
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            t = datetime.fromtimestamp(value / 1000, timezone.utc)
        elif isinstance(value, str):
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            raise ValueError
    except (ValueError, OverflowError, OSError):
        raise FeedError(join(path, key), "must be an ISO-8601 time such as 2026-05-01T08:00:00Z") from None
    if t.tzinfo is None:
        raise FeedError(join(path, key), "needs a time zone (Z or +08:00)")
    if t > now + timedelta(hours=25):
        raise FeedError(join(path, key), "is more than 25 hours in the future")
    if t.year < 2000:
        raise FeedError(join(path, key), "is before the year 2000")
    return t.astimezone(timezone.utc)
