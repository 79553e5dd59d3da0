"""Traccar's event and position forwarders (JSON over HTTP or AMQP) → canonical Reports.

Event forwarding sends ``{"event": {...}, "position": {...}, "device": {...}}``; position forwarding
sends ``{"position": {...}, "device": {...}}``. Traccar speeds are knots; its alarm names are
camelCase and map 1:1 to canonical snake_case names. A re-sent forward carries the same Traccar ids
and so the same report id, which keeps ingestion idempotent.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from alarms.names import from_traccar, is_canonical
from alarms.report import Fix, Report
from ingest.feeds.fields import FeedError, boolean, join, number, obj, string, timestamp

KNOT_KMH = 1.852

# Traccar event types that are alarms in Watchline's vocabulary; other types go to extras.
EVENT_ALARMS = {
    "geofenceEnter": "geofence_enter",
    "geofenceExit": "geofence_exit",
    "deviceOverspeed": "overspeed",
    "deviceFuelDrop": "fuel_drop",
}
_STATUS_ATTRIBUTES = {"ignition": "acc", "motion": "moving", "charge": "charging", "blocked": "oil_cut",
                      "door": "door_open", "armed": "armed"}
_EXTRA_ATTRIBUTES = ("batteryLevel", "power", "battery", "odometer", "totalDistance", "rssi", "fuel", "hours",
                     "temp1", "distance", "event")


def reports_from_traccar(body: Any, now: datetime | None = None) -> list[Report]:
    now = now or datetime.now(timezone.utc)
    body = obj(body, "")
    unknown = sorted(set(body) - {"event", "position", "device", "users", "geofence", "maintenance"})
    if unknown:
        raise FeedError(unknown[0], "unknown field (expected event, position, device)")
    device = obj(body.get("device"), "device")
    unique_id = string(device, "uniqueId", "device")
    event = obj(body["event"], "event") if body.get("event") is not None else None
    position = obj(body["position"], "position") if body.get("position") is not None else None
    if event is None and position is None:
        raise FeedError("position", "is required when there is no event")

    alarms: list[str] = []
    extras: dict[str, Any] = {"traccar_device_id": device.get("id"), "device_name": device.get("name")}
    status: dict[str, Any] = {}
    fix = None
    time = None
    if position is not None:
        fix, time = _position(position, now, status, extras, alarms)
    if event is not None:
        event_type = string(event, "type", "event")
        attributes = obj(event.get("attributes", {}), "event.attributes")
        if event_type == "alarm":
            alarm = attributes.get("alarm")
            if not isinstance(alarm, str) or not alarm.strip():
                raise FeedError("event.attributes.alarm", "an alarm event needs its alarm name")
            alarms.extend(a for a in _alarm_names(alarm, "event.attributes.alarm") if a not in alarms)
        elif event_type in EVENT_ALARMS:
            if EVENT_ALARMS[event_type] not in alarms:
                alarms.append(EVENT_ALARMS[event_type])
        else:
            extras["traccar_event"] = event_type
        if event.get("geofenceId") is not None:
            extras["fence_id"] = event.get("geofenceId")
        event_time = timestamp(event, "eventTime", "event", now, required=time is None)
        time = time or event_time
    report_id = _report_id(event, position, body)
    return [Report(protocol="traccar", terminal_id=unique_id, time=time, fix=fix, status=status,
                   raw_alarms={"traccar": ",".join(alarms)} if alarms else {}, alarms=tuple(alarms),
                   extras={k: v for k, v in extras.items() if v is not None}, report_id=report_id)]


def _position(p: dict, now: datetime, status: dict, extras: dict, alarms: list[str]):
    path = "position"
    lat = number(p, "latitude", path, -90, 90, required=True)
    lon = number(p, "longitude", path, -180, 180, required=True)
    speed = number(p, "speed", path, 0, 1000) or 0.0
    fix = Fix(lat=lat, lon=lon, altitude=number(p, "altitude", path, -12262, 18000) or 0.0,
              speed_kmh=round(speed * KNOT_KMH, 3), course=number(p, "course", path, 0, 360) or 0.0,
              valid=boolean(p, "valid", path, True),
              satellites=None)
    time = (timestamp(p, "fixTime", path, now, required=False) or timestamp(p, "deviceTime", path, now, required=False)
            or timestamp(p, "serverTime", path, now))
    attributes = obj(p.get("attributes", {}), join(path, "attributes"))
    if "sat" in attributes:
        sats = number(attributes, "sat", join(path, "attributes"), 0, 128)
        fix = Fix(fix.lat, fix.lon, fix.altitude, fix.speed_kmh, fix.course, fix.valid, int(sats))
    if attributes.get("alarm") is not None:
        if not isinstance(attributes["alarm"], str):
            raise FeedError("position.attributes.alarm", "must be a string of alarm names")
        alarms.extend(a for a in _alarm_names(attributes["alarm"], "position.attributes.alarm") if a not in alarms)
    for key, name in _STATUS_ATTRIBUTES.items():
        if isinstance(attributes.get(key), bool):
            status[name] = attributes[key]
    for key in _EXTRA_ATTRIBUTES:
        if isinstance(attributes.get(key), (int, float, str)) and not isinstance(attributes.get(key), bool):
            extras[key] = attributes[key]
    if isinstance(p.get("address"), str):
        extras["address"] = p["address"][:200]
    if p.get("protocol"):
        extras["device_protocol"] = str(p["protocol"])[:32]
    return fix, time


def _alarm_names(value: str, path: str) -> list[str]:
    names = from_traccar(value)
    bad = [n for n in names if not is_canonical(n)]
    if bad:
        raise FeedError(path, f"not an alarm name: {bad[0]!r}")
    return names


def _report_id(event: dict | None, position: dict | None, body: dict) -> str:
    if event is not None and event.get("id") is not None:
        return f"traccar-e{event['id']}"
    if position is not None and position.get("id") is not None:
        return f"traccar-p{position['id']}"
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f"traccar-h{digest}"
