"""The GPS, LBS and status building blocks shared by the GT06 packet bodies (gt06.md §4).

Each reader takes the body and an offset and returns what it read plus the next offset; a body
too short for a block raises ``DecodeError`` (the frame is then counted as bad, never a crash).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from alarms.names import GT06_ALARM_CODES
from alarms.report import Fix

COORD_SCALE = 1_800_000.0  # degrees = value / 1 800 000 (minutes x 30 000)

# Terminal-information bits 5-3 (gt06.md §4.4): 1-4 from the v1.8 document, 6 and 7 as traccar
# maps them for generic devices (7 is overspeed on VXT01 firmware; "removing" is the common case).
INFO_ALARMS = {1: "vibration", 2: "power_cut", 3: "low_battery", 4: "sos", 6: "geofence", 7: "removing"}

# Alarm-byte codes that are events, not alarms (ACC on/off): reported as state instead.
ACC_EVENT_CODES = {0xFE: True, 0xFF: False}


class DecodeError(ValueError):
    """The frame's body does not fit the layout of its protocol number."""


def need(body: bytes, offset: int, size: int, what: str) -> None:
    if offset + size > len(body):
        raise DecodeError(f"{what}: needs {size} bytes at offset {offset}, body has {len(body)}")


def read_time(body: bytes, offset: int, utc_offset: timedelta, what: str = "date-time") -> datetime:
    """Six binary bytes YY MM DD hh mm ss, in local time ``utc_offset`` ahead of UTC; returns UTC."""
    need(body, offset, 6, what)
    yy, mo, dd, hh, mi, ss = body[offset:offset + 6]
    try:
        local = datetime(2000 + yy, mo, dd, hh, mi, ss, tzinfo=timezone.utc)
    except ValueError as exc:
        raise DecodeError(f"{what}: {body[offset:offset + 6].hex()} is not a date ({exc})") from None
    return local - utc_offset


def read_bcd_time(body: bytes, offset: int) -> datetime:
    """Six BCD bytes YY MM DD hh mm ss, UTC (WiFi packets 0x17/0x69)."""
    need(body, offset, 6, "BCD date-time")
    digits = body[offset:offset + 6].hex()
    try:
        return datetime.strptime(digits, "%y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        raise DecodeError(f"BCD date-time {digits} is not a date") from None


def read_gps(body: bytes, offset: int, utc_offset: timedelta) -> tuple[datetime, Fix, dict[str, bool], int]:
    """GPS block (18 bytes): time, GPS info (satellites), lat, lon, speed, course/status word.

    Returns (UTC time, fix, state from the course word, next offset).
    """
    need(body, offset, 18, "GPS block")
    time = read_time(body, offset, utc_offset)
    fix, state = make_fix(body, offset + 7, satellites=body[offset + 6] & 0x0F)
    return time, fix, state, offset + 18


def make_fix(body: bytes, offset: int, *, satellites: int | None = None, speed_bytes: int = 1,
             altitude: float = 0.0) -> tuple[Fix, dict[str, bool]]:
    """Latitude, longitude (4 bytes each), speed (km/h), course/status word, from ``offset``.

    The course word holds the fix flag, the hemisphere bits (north = 1, west = 1) and the course;
    bit 14 marks bit 15 as the ACC line on firmware that sends it there (gt06.md §4.1).
    """
    need(body, offset, 10 + speed_bytes, "GPS position")
    lat = int.from_bytes(body[offset:offset + 4], "big") / COORD_SCALE
    lon = int.from_bytes(body[offset + 4:offset + 8], "big") / COORD_SCALE
    pos = offset + 8
    speed = int.from_bytes(body[pos:pos + speed_bytes], "big")
    word = int.from_bytes(body[pos + speed_bytes:pos + speed_bytes + 2], "big")
    if not word & 0x0400:  # bit 10 clear = south
        lat = -lat
    if word & 0x0800:  # bit 11 set = west
        lon = -lon
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise DecodeError(f"GPS block: position {lat:.6f},{lon:.6f} out of range")
    fix = Fix(lat=round(lat, 6), lon=round(lon, 6), altitude=altitude, speed_kmh=float(speed),
              course=float(word & 0x03FF), valid=bool(word & 0x1000), satellites=satellites)
    state: dict[str, bool] = {}
    if word & 0x4000:
        state["acc"] = bool(word & 0x8000)
    return fix, state


def read_lbs(body: bytes, offset: int, *, wide: bool = False, cell_bytes: int | None = None
             ) -> tuple[dict[str, int], int]:
    """LBS block: MCC, MNC (2 bytes when MCC bit 15 is set), LAC, cell ID.

    ``wide`` is the 4G form (0xA0/0xA4/0xA5...): LAC 4 bytes and cell ID 8 bytes.
    """
    need(body, offset, 2, "LBS block")
    mcc = int.from_bytes(body[offset:offset + 2], "big")
    pos = offset + 2
    mnc_size = 2 if mcc & 0x8000 else 1
    lac_size = 4 if wide else 2
    cid_size = cell_bytes or (8 if wide else 3)
    need(body, pos, mnc_size + lac_size + cid_size, "LBS block")
    mnc = int.from_bytes(body[pos:pos + mnc_size], "big")
    pos += mnc_size
    lac = int.from_bytes(body[pos:pos + lac_size], "big")
    pos += lac_size
    cell_id = int.from_bytes(body[pos:pos + cid_size], "big")
    pos += cid_size
    return {"mcc": mcc & 0x7FFF, "mnc": mnc, "lac": lac, "cell_id": cell_id}, pos


def terminal_info(info: int) -> tuple[dict[str, bool], list[str], int]:
    """Terminal-information byte (gt06.md §4.4) -> state, canonical alarms, raw bits 5-3."""
    state = {
        "oil_cut": bool(info & 0x80),
        "gps_tracking": bool(info & 0x40),
        "charging": bool(info & 0x04),
        "acc": bool(info & 0x02),
        "armed": bool(info & 0x01),
    }
    bits = (info >> 3) & 0x07
    alarm = INFO_ALARMS.get(bits)
    return state, [alarm] if alarm else [], bits


def voltage_fields(value: int) -> dict[str, int]:
    """Voltage byte: a 0-6 level, or a battery percentage on models that send one (> 6)."""
    if value <= 6:
        return {"voltage_level": value, "battery_percent": value * 100 // 6}
    if value <= 100:
        return {"battery_percent": value}
    return {}


def alarm_names(code: int) -> list[str]:
    """Canonical names of an alarm byte (alarms.names.GT06_ALARM_CODES); unknown codes map to none
    here and stay in ``raw_alarms`` so they can be mapped per model later (gt06.md §10)."""
    name = GT06_ALARM_CODES.get(code)
    return [name] if name else []


def merge_alarms(*groups: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for group in groups:
        for name in group:
            if name not in out:
                out.append(name)
    return tuple(out)
