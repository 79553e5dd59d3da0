"""0x0900 uplink pass-through (data transparently relayed by the terminal) -> canonical Reports.

JT/T 808 leaves the content to the pass-through type byte; the types field devices use are read
as Traccar reads them: 0x40 text (a ``GTSL|`` driver card line), 0x41 an ``$OBD-RT`` line,
0xF0 CAN-bus/OBD records (I/O values, trouble codes, alarms, trips, VIN, events; the first three
end with status and coordinates), 0xFF a bare position, 0xF3 collision data, and the AOVX
(GL100) 0x53 BLE-tag and 0x54 sensor-sample reports, which carry a full position. Attribute
names are snake_case of Traccar's; alarms are canonical names. Other types give no Report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alarms.report import Fix, Report
from ingest.jt808.fields import (
    FieldError,
    Found,
    bcd_time,
    byte,
    need,
    report,
    s16,
    signed_byte,
    trimmed,
    u16,
    u32,
)
from ingest.jt808.location import coordinate, status_fields
from ingest.jt808.messages import BodyError
from ingest.jt808.vendor_blocks import obd_rt

PASS_THROUGH = 0x0900

# 0xF0 subtype 0x01 I/O ids -> (name, reader of the value bytes).
_CAN_VALUES = {
    0x0102: ("odometer", lambda d: u32(d) * 100), 0x0528: ("odometer", lambda d: u32(d) * 100),
    0x0546: ("odometer", lambda d: u32(d) * 100),
    0x0103: ("fuel", lambda d: u32(d) / 100),
    0x0111: ("fuel_temp", lambda d: byte(d) - 40),
    0x012E: ("oil_level", lambda d: u16(d) / 10),
    0x052A: ("fuel", lambda d: u16(d) / 100),
    0x0105: ("fuel_used", lambda d: u32(d) / 100), 0x052C: ("fuel_used", lambda d: u32(d) / 100),
    **{i: ("fuel_consumption", lambda d: u16(d) / 100) for i in (0x014A, 0x0537, 0x0538, 0x0539)},
    0x052B: ("fuel", byte),
    0x052D: ("coolant_temp", lambda d: byte(d) - 40),
    0x052E: ("air_temp", lambda d: byte(d) - 40),
    0x0530: ("power", lambda d: u16(d) / 1000),
    0x0535: ("obd_speed", lambda d: u16(d) / 10),
    0x0536: ("rpm", u16),
    0x053D: ("intake_pressure", lambda d: u16(d) / 10),
    0x0544: ("liquid_level", byte),
    0x0547: ("throttle", byte), 0x0548: ("throttle", byte),
    0xFEEC: ("vin", lambda d: d.decode("latin-1")),
}
# 0xF0 subtype 0x03 alarm ids -> canonical alarm.
_CAN_ALARMS = {
    0x01: "power_restored", 0x02: "power_cut", 0x0E: "idle", 0x1A: "hard_acceleration",
    0x1B: "hard_braking", 0x1C: "hard_cornering", 0x1D: "lane_change", 0x1E: "lane_change",
    0x1F: "lane_change", 0x23: "fatigue_driving", 0x25: "overspeed", 0x26: "accident",
    0x27: "accident", 0x28: "accident", 0x31: "door", 0x32: "door",
}
# 0xF0 subtype 0x15 event numbers that are driving-behaviour alarms.
_CAN_EVENTS = {51: "hard_acceleration", 52: "hard_braking", 53: "hard_cornering", 54: "lane_change",
               56: "accident"}


class _Message:
    """The Report being built for one pass-through message."""

    def __init__(self) -> None:
        self.extras: dict[str, Any] = {}
        self.found = Found(self.extras)
        self.time: datetime | None = None
        self.fix: Fix | None = None
        self.status: dict[str, Any] = {}

    def position(self, body: bytes, pos: int, *, full: bool) -> int:
        """Status DWORD, latitude, longitude (and with ``full`` altitude, speed, course, BCD
        time), as in the 0x0200 body; returns the offset after them."""
        need(body, pos, 28 if full else 12, "position")
        word, raw_lat, raw_lon = u32(body, pos), u32(body, pos + 4), u32(body, pos + 8)
        lat, lon = coordinate(raw_lat, bool(word & 0x4)), coordinate(raw_lon, bool(word & 0x8))
        altitude = speed = course = 0.0
        if full:
            altitude, speed, course = s16(body, pos + 12), u16(body, pos + 14) / 10, u16(body, pos + 16)
            self.time = bcd_time(body[pos + 18:pos + 24])
        self.status = status_fields(word, False)
        self.extras["status_word"] = word
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            self.fix = Fix(lat, lon, float(altitude), speed, float(course), bool(word & 0x2))
        else:
            self.extras["bad_coordinates"] = [lat, lon]
        return pos + (24 if full else 12)


def decode_passthrough(
    body: bytes, *, terminal_id: str, serial: int, received_at: datetime | None = None,
) -> list[Report]:
    """One 0x0900 body -> [Report], or [] for a pass-through type that carries nothing to report.
    Raises ``BodyError`` when the body breaks its type's layout."""
    try:
        return _decode(body, terminal_id=terminal_id, serial=serial, received_at=received_at)
    except BodyError:
        raise
    except (ValueError, IndexError) as exc:  # a number in a text field that is not one
        raise FieldError(f"0x0900 type 0x{body[0]:02X}: {exc}") from None


def _decode(body: bytes, *, terminal_id: str, serial: int, received_at: datetime | None) -> list[Report]:
    if not body:
        raise FieldError("0x0900 body is empty")
    kind, msg = body[0], _Message()
    extras = msg.extras
    extras["passthrough_type"] = kind
    if kind == 0x40:
        line = trimmed(body[1:])
        if line.startswith("GTSL"):
            fields = line.split("|")
            if len(fields) <= 4:
                return []
            extras["driver_unique_id"] = fields[4]
        else:
            extras["data"] = line
    elif kind == 0x41:
        obd_rt(trimmed(body[1:]), msg.found)
    elif kind == 0xF0:
        if not _can_bus(body, msg):
            return []
    elif kind == 0xFF:
        need(body, 1, 20, "0xFF position")
        msg.time = bcd_time(body[1:7])
        lat, lon = s32(body, 7) / 1e6, s32(body, 11) / 1e6
        msg.fix = Fix(lat, lon, float(s16(body, 15)), u16(body, 17) / 10, float(u16(body, 19)), True)
    elif kind == 0xF3:
        pos = 1
        while pos + 4 <= len(body):
            sub, size = u16(body, pos), u16(body, pos + 2)
            data = body[pos + 4:pos + 4 + size]
            pos += 4 + size
            if sub == 0x0002:
                extras["collision"] = u16(data) / 256 / 100
            elif sub == 0x0006:
                msg.time = bcd_time(data[:6])
    elif kind in (0x53, 0x54):
        pos = msg.position(body, 1, full=True)
        if kind == 0x53:
            _ble_tags(body, pos + 1, extras)  # after the node count
        else:
            _sensor_samples(body, pos, extras)
    else:
        return []
    msg.found.finish()
    return [report(terminal_id=terminal_id, serial=serial, received_at=received_at, time=msg.time,
                   fix=msg.fix, status=msg.status, alarms=msg.found.alarms, extras=extras)]


def s32(data: bytes, pos: int) -> int:
    value = u32(data, pos)
    return value - (1 << 32) if value & 0x80000000 else value


def _can_bus(body: bytes, msg: _Message) -> bool:
    """0xF0: BCD time, archive flag, vehicle type, subtype, then the subtype's records."""
    need(body, 1, 9, "0xF0 header")
    msg.time = bcd_time(body[1:7])
    extras, found = msg.extras, msg.found
    if body[7]:
        extras["archive"] = True
    subtype, pos = body[9], 10
    if subtype == 0x01:
        count, pos = byte(body, pos), pos + 1
        for _ in range(count):
            ident, size = u16(body, pos), byte(body, pos + 2)
            need(body, pos + 3, size, "0xF0 value")
            data = body[pos + 3:pos + 3 + size]
            pos += 3 + size
            if ident in _CAN_VALUES:
                name, read = _CAN_VALUES[ident]
                extras[name] = read(data)
            elif size in (1, 2, 4):
                extras[f"io{ident}"] = int.from_bytes(data, "big")
        msg.position(body, pos, full=False)
    elif subtype == 0x02:
        codes = []
        systems, pos = u16(body, pos), pos + 2
        for _ in range(systems):
            count, pos = u16(body, pos + 4), pos + 6  # after the system id
            for _ in range(count):
                size, pos = u16(body, pos + 8), pos + 10  # after the code and its status
                need(body, pos, size, "0xF0 trouble code")
                codes.append(trimmed(body[pos:pos + size]))
                pos += size
        extras["dtcs"] = " ".join(codes)
        msg.position(body, pos, full=False)
    elif subtype == 0x03:
        count, pos = byte(body, pos), pos + 1
        for _ in range(count):
            ident, size = byte(body, pos), byte(body, pos + 1)
            if ident in _CAN_ALARMS:
                found.alarm(_CAN_ALARMS[ident])
            pos += 2 + size
        msg.position(body, pos, full=False)
    elif subtype == 0x04:
        trip = byte(body, pos)
        extras["trip_number"] = u32(body, pos + 1)
        if trip == 0x02:  # finished trip: after start/end times and locations and a flags byte
            base = pos + 5 + 6 + 6 + 8 + 8 + 1
            extras["idling_count"] = u16(body, base)
            extras["idling_time"] = u16(body, base + 2)
            extras["odometer_trip"] = u16(body, base + 4) * 100
            extras["trip_fuel"] = u16(body, base + 6) / 100
    elif subtype == 0x0B:
        if byte(body, pos):
            need(body, pos + 1, 17, "0xF0 VIN")
            extras["vin"] = body[pos + 1:pos + 18].decode("latin-1")
    elif subtype == 0x15:
        event = s32(body, pos)
        if event in _CAN_EVENTS:
            found.alarm(_CAN_EVENTS[event])
        else:
            extras["event"] = event
    else:
        return False
    return True


def _ble_tags(body: bytes, pos: int, extras: dict[str, Any]) -> None:
    """0x53 nodes: index, MAC, RSSI, data length, data."""
    while pos + 9 <= len(body):
        index = body[pos] + 1
        extras[f"tag{index}_mac"] = body[pos + 1:pos + 7].hex()
        extras[f"tag{index}_rssi"] = signed_byte(body, pos + 7)
        size = body[pos + 8]
        need(body, pos + 9, size, "0x53 tag data")
        extras[f"tag{index}_data"] = body[pos + 9:pos + 9 + size].hex()
        pos += 9 + size


def _sensor_samples(body: bytes, pos: int, extras: dict[str, Any]) -> None:
    """0x54 samples: field mask, sample time, then the masked sensors; the last sample wins."""
    while pos + 8 <= len(body):
        mask = u16(body, pos)
        pos += 8
        if mask & 0x01:
            extras["light_sensor"] = u16(body, pos)
            pos += 2
        if mask & 0x02:
            extras["device_temp"] = s16(body, pos) / 10
            extras["humidity"] = s16(body, pos + 2) / 10
            pos += 4
        if mask & 0x04:
            extras["temp3"] = s16(body, pos) / 10
            pos += 2
        if mask & 0x08:
            pos += 6  # acceleration
        if mask & 0x10:
            extras["air_pressure"] = u16(body, pos)
            pos += 2
