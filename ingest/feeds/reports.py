"""Watchline's own report JSON: one report object, or ``{"reports": [...]}`` (at most 1,000).

Each report: ``report_id`` (the client's id, for idempotency), ``terminal_id``, ``protocol`` (default
``http``), ``time``, ``lat``, ``lon`` and optionally ``altitude``, ``speed_kmh``, ``course``, ``valid``,
``satellites``, ``alarms`` (canonical names), ``status`` and ``extras`` (objects).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from alarms.names import is_canonical
from alarms.report import Fix, Report
from ingest.feeds.fields import FeedError, boolean, join, number, obj, string, timestamp

MAX_BATCH = 1000
_FIELDS = {"report_id", "terminal_id", "protocol", "time", "lat", "lon", "altitude", "speed_kmh", "course",
           "valid", "satellites", "alarms", "status", "extras"}
_PROTOCOLS = ("http", "traccar", "jt808", "gt06")


def reports_from_json(body: Any, now: datetime | None = None) -> list[Report]:
    now = now or datetime.now(timezone.utc)
    body = obj(body, "")
    if "reports" in body:
        if set(body) != {"reports"}:
            raise FeedError(sorted(set(body) - {"reports"})[0], "unknown field next to reports")
        items = body["reports"]
        if not isinstance(items, list) or not items:
            raise FeedError("reports", "must be a non-empty list")
        if len(items) > MAX_BATCH:
            raise FeedError("reports", f"at most {MAX_BATCH} reports per request")
        return [_report(item, f"reports[{i}]", now) for i, item in enumerate(items)]
    return [_report(body, "", now)]


def _report(item: Any, path: str, now: datetime) -> Report:
    item = obj(item, path)
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise FeedError(join(path, unknown[0]), "unknown field")
    protocol = (string(item, "protocol", path, required=False) or "http").lower()
    if protocol not in _PROTOCOLS:
        raise FeedError(join(path, "protocol"), f"must be one of {', '.join(_PROTOCOLS)}")
    sats = number(item, "satellites", path, 0, 128)
    fix = Fix(lat=number(item, "lat", path, -90, 90, required=True),
              lon=number(item, "lon", path, -180, 180, required=True),
              altitude=number(item, "altitude", path, -12262, 18000) or 0.0,
              speed_kmh=number(item, "speed_kmh", path, 0, 1600) or 0.0,
              course=number(item, "course", path, 0, 360) or 0.0,
              valid=boolean(item, "valid", path, True), satellites=None if sats is None else int(sats))
    alarms = item.get("alarms", [])
    if not isinstance(alarms, list):
        raise FeedError(join(path, "alarms"), "must be a list of alarm names")
    for i, name in enumerate(alarms):
        if not isinstance(name, str) or not is_canonical(name):
            raise FeedError(f"{join(path, 'alarms')}[{i}]", "must be a canonical alarm name (snake_case)")
    status = obj(item.get("status", {}), join(path, "status"))
    extras = obj(item.get("extras", {}), join(path, "extras"))
    client_id = string(item, "report_id", path, max_len=64)
    return Report(protocol=protocol, terminal_id=string(item, "terminal_id", path), time=timestamp(item, "time", path, now),
                  fix=fix, status=dict(status), alarms=tuple(dict.fromkeys(alarms)), extras=dict(extras),
                  report_id=client_id)
