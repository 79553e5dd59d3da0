"""The JT/T 808 location report body (0x0200, also inside 0x0704 and 0x0201) -> canonical Report.

Decoded against the standard (jt808.md §4–§5): the alarm DWORD maps bit by bit through
``alarms.names``, the status DWORD into named flags, the standard additional items into
``extras``/``raw_alarms``. Other items (vendor items, or a standard id with a length that does
not match the standard) go to ``vendor_items``, which decodes the vendor conventions Traccar
knows and keeps the rest as hex in ``extras["raw_items"]``, so nothing the terminal sent is
lost. A device ``model`` with its own alarm-bit convention (``vendor_items.MODEL_ALARM_BITS``)
replaces the standard bit meanings. This is the hot path of the terminal server: per-word
results are cached, the common items are read inline, and vendor decoding runs only for
reports that carry vendor items.
"""

from __future__ import annotations

import itertools
import struct
import uuid
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from alarms.names import JT808_ALARM_BITS
from alarms.report import Fix, Report
from ingest.jt808.messages import BodyError, split_batch
from ingest.jt808.vendor_items import MODEL_ALARM_BITS, decode_vendor_items, model_alarms

_FIXED = struct.Struct(">IIIIhHH6s")
FIXED_LENGTH = _FIXED.size  # 28
_WORD = struct.Struct(">H")
_SWORD = struct.Struct(">h")
_DWORD = struct.Struct(">I")
_ROUTE_TIME = struct.Struct(">IH")
_BEIJING = timedelta(hours=8)  # the BCD time is GMT+8

# Report ids: a random per-process prefix plus a counter, 32 hex characters like uuid4().hex
# (Report's default), without one urandom system call per report on the hot path.
_ID_PREFIX = uuid.uuid4().hex[:20]
_ID_COUNTER = itertools.count()

_LOCATION_TYPES = {0: "none", 1: "circle", 2: "rectangle", 3: "polygon", 4: "road_section"}
_SIGNALS = (
    "low_beam", "high_beam", "right_turn", "left_turn", "brake", "reverse", "fog_lamp",
    "clearance_lamp", "horn", "air_conditioner", "neutral", "retarder", "abs", "heater", "clutch",
)
_LOADS = {0: "empty", 1: "half", 2: "reserved", 3: "full"}
_DOORS = ("door_front_open", "door_middle_open", "door_rear_open", "door_driver_open", "door_custom_open")
# Reserved in JT/T 808-2013, defined only by 2019 (jt808.md §5.1): a 2013 terminal setting them
# follows some vendor convention, so they are kept in the raw word but not named.
_BITS_2019_ONLY = (15, 16, 17)
_MASK_2019_ONLY = sum(1 << bit for bit in _BITS_2019_ONLY)


class LocationError(BodyError):
    pass


@lru_cache(maxsize=1024)
def alarm_names(word: int, is_2019: bool) -> tuple[str, ...]:
    if not is_2019:
        word &= ~_MASK_2019_ONLY
    return tuple(JT808_ALARM_BITS[bit] for bit in range(32) if word >> bit & 1)


@lru_cache(maxsize=1024)
def _status_fields(word: int, is_2019: bool) -> dict[str, Any]:
    status: dict[str, Any] = {
        "acc": bool(word & 0x1),
        "fix_valid": bool(word & 0x2),
        "out_of_service": bool(word & 0x10),
        "coords_encrypted": bool(word & 0x20),
        "load": _LOADS[word >> 8 & 0x3],
        "oil_cut": bool(word & 0x400),
        "circuit_cut": bool(word & 0x800),
        "doors_locked": bool(word & 0x1000),
    }
    for n, name in enumerate(_DOORS):
        status[name] = bool(word >> (13 + n) & 1)
    status["gps"] = bool(word & 0x40000)
    status["beidou"] = bool(word & 0x80000)
    status["glonass"] = bool(word & 0x100000)
    status["galileo"] = bool(word & 0x200000)
    if is_2019:  # bit 22 moving/stopped is only attested for 2019 (jt808.md §5.2)
        status["moving"] = bool(word & 0x400000)
    return status


def status_fields(word: int, is_2019: bool) -> dict[str, Any]:
    return dict(_status_fields(word, is_2019))


@lru_cache(maxsize=4096)
def bcd_time(raw: bytes) -> datetime | None:
    """BCD YYMMDDhhmmss in Beijing time -> UTC datetime, or None when not a real time."""
    digits = raw.hex()
    if not digits.isdigit():
        return None
    try:
        local = datetime(
            2000 + int(digits[0:2]), int(digits[2:4]), int(digits[4:6]),
            int(digits[6:8]), int(digits[8:10]), int(digits[10:12]), tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    return local - _BEIJING


def coordinate(raw: int, negative: bool) -> float:
    # Unsigned degrees x 1e6 with the sign in a status bit; some terminals send an already
    # negative two's-complement value instead, which is kept (jt808.md §4).
    value = (raw - 0x100000000 if raw & 0x80000000 else raw) / 1e6
    return -value if negative and value > 0 else value


def collect_items(body: bytes, start: int = FIXED_LENGTH) -> tuple[dict[int, bytes], list[str]]:
    """The additional items as {id: value}; the first of duplicate ids wins. A declared length
    running past the body stops the walk, keeping what was read (reported in the problems)."""
    items: dict[int, bytes] = {}
    problems: list[str] = []
    pos, end = start, len(body)
    while pos < end:
        if pos + 2 > end:
            problems.append(f"stray byte at offset {pos}")
            break
        item_id, size = body[pos], body[pos + 1]
        pos += 2
        if pos + size > end:
            problems.append(f"item 0x{item_id:02X} declares {size} bytes, {end - pos} left")
            break
        if item_id in items:
            problems.append(f"duplicate item 0x{item_id:02X} ignored")
        else:
            items[item_id] = body[pos:pos + size]
        pos += size
    return items, problems


def decode_location(
    body: bytes,
    *,
    terminal_id: str,
    serial: int,
    is_2019: bool = False,
    received_at: datetime | None = None,
    model: str | None = None,
) -> Report:
    """One 0x0200 body -> Report. Raises LocationError when the fixed part is missing.

    ``received_at`` is used as the report time when the BCD time is not a real date. ``model``
    is the terminal's device model from the fleet, for the vendor conventions that depend on it.
    """
    size = len(body)
    if size < FIXED_LENGTH:
        raise LocationError(f"location body of {size} bytes, need {FIXED_LENGTH}")
    alarm_word, status_word, raw_lat, raw_lon, altitude, speed, course, time_bcd = _FIXED.unpack_from(body)
    extras: dict[str, Any] = {"status_word": status_word}
    raw_alarms: dict[str, Any] = {"jt808_word": alarm_word, "jt808_serial": serial}
    time = bcd_time(time_bcd)
    if time is None:
        time = received_at or datetime.now(timezone.utc)
        extras["time_invalid"] = time_bcd.hex()
    satellites = None
    vendor_alarms: list[str] | None = None
    if size > FIXED_LENGTH:
        found = _read_items(body, size, alarm_word, raw_alarms, extras, model)
        if found is None:
            found = _read_items_carefully(body, alarm_word, raw_alarms, extras, model)
        satellites, vendor_alarms = found
    if status_word & 0xC or (raw_lat | raw_lon) & 0x80000000:
        lat = coordinate(raw_lat, bool(status_word & 0x4))
        lon = coordinate(raw_lon, bool(status_word & 0x8))
    else:  # northern and eastern hemispheres, unsigned: what coordinate() comes down to
        lat = raw_lat / 1e6
        lon = raw_lon / 1e6
    if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:
        fix: Fix | None = Fix(lat, lon, float(altitude), speed / 10, float(course), status_word & 0x2 != 0,
                              satellites)
    else:
        fix = None
        extras["bad_coordinates"] = [lat, lon]
    if model is not None and model in MODEL_ALARM_BITS:
        alarms = model_alarms(alarm_word, model)
    elif alarm_word:
        alarms = alarm_names(alarm_word, is_2019)
        if not is_2019 and alarm_word & _MASK_2019_ONLY:
            extras["reserved_alarm_bits"] = [bit for bit in _BITS_2019_ONLY if alarm_word >> bit & 1]
    else:
        alarms = ()
    if vendor_alarms:
        alarms = alarms + tuple(name for name in vendor_alarms if name not in alarms)
    # Positional: Report's fields in order (protocol ... received_at), cheaper to bind than keywords.
    return Report(
        "jt808", terminal_id, time, fix, dict(_status_fields(status_word, is_2019)), raw_alarms, alarms, extras,
        f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFF:012x}", received_at or datetime.now(timezone.utc),
    )


def decode_batch(
    body: bytes,
    *,
    terminal_id: str,
    serial: int,
    is_2019: bool = False,
    received_at: datetime | None = None,
    model: str | None = None,
) -> tuple[list[Report], list[str]]:
    """0x0704 body -> (reports, problems). A bad item is skipped and named in the problems;
    the items around it are still reported. Blind-area back-fill items get ``extras["backfill"]``."""
    data_type, items, problems = split_batch(body)
    reports = []
    for n, item in enumerate(items):
        try:
            report = decode_location(
                item, terminal_id=terminal_id, serial=serial, is_2019=is_2019, received_at=received_at,
                model=model,
            )
        except LocationError as exc:
            problems.append(f"item {n + 1}: {exc}")
            continue
        if data_type == 1:
            report.extras["backfill"] = True
        reports.append(report)
    return reports, problems


def _read_items(
    body: bytes, end: int, alarm_word: int, raw_alarms: dict, extras: dict, model: str | None
) -> tuple[int | None, list[str] | None] | None:
    """The additional items in one walk, in report order: the common ones read in place, other
    standard ones through ``_STANDARD_ITEMS``, the rest to ``vendor_items``. Returns the satellite
    count (item 0x31) and the vendor items' alarms (None without any) — or None, with ``extras``
    and ``raw_alarms`` as they were, for a walk that breaks (an overrun, a stray byte, a duplicate
    id): ``_read_items_carefully`` then names the problems."""
    kept_extras, kept_raw = len(extras), len(raw_alarms)
    satellites = None
    vendor: dict[int, bytes] | None = None
    seen = 0  # bit n: item n read
    pos = FIXED_LENGTH
    while pos < end:
        start = pos + 2
        if start > end:
            return _undo(extras, kept_extras, raw_alarms, kept_raw)
        item_id, size = body[pos], body[pos + 1]
        pos = start + size
        if pos > end or seen >> item_id & 1:
            return _undo(extras, kept_extras, raw_alarms, kept_raw)
        seen |= 1 << item_id
        # The five items most terminals send, as their _STANDARD_ITEMS handlers read them.
        if item_id == 0x01 and size == 4:
            extras["mileage_km"] = _DWORD.unpack_from(body, start)[0] / 10
        elif item_id == 0x31 and size == 1:
            satellites = body[start]
        elif item_id == 0x30 and size == 1:
            extras["signal"] = body[start]
        elif item_id == 0x02 and size == 2:
            extras["fuel_l"] = _WORD.unpack_from(body, start)[0] / 10
        elif item_id == 0x03 and size == 2:
            extras["recorder_speed_kmh"] = _WORD.unpack_from(body, start)[0] / 10
        else:
            vendor = _interpret(item_id, body[start:pos], alarm_word, raw_alarms, extras, vendor)
    return satellites, (decode_vendor_items(vendor, extras, model) if vendor else None)


def _interpret(item_id: int, value: bytes, alarm_word: int, raw_alarms: dict, extras: dict,
               vendor: dict[int, bytes] | None) -> dict[int, bytes] | None:
    """A standard item into ``extras``/``raw_alarms``; any other kept in ``vendor`` (made on first
    use) for ``vendor_items``. Returns ``vendor``."""
    handler = _STANDARD_ITEMS.get(item_id << 8 | len(value))
    if handler is not None:
        handler(value, alarm_word, raw_alarms, extras)
        return vendor
    if vendor is None:
        vendor = {}
    vendor[item_id] = value
    return vendor


def _undo(extras: dict, kept_extras: int, raw_alarms: dict, kept_raw: int) -> None:
    """Drop what a broken walk added: dicts pop their newest key first, and the walk only adds keys."""
    while len(extras) > kept_extras:
        extras.popitem()
    while len(raw_alarms) > kept_raw:
        raw_alarms.popitem()


def _read_items_carefully(
    body: bytes, alarm_word: int, raw_alarms: dict, extras: dict, model: str | None
) -> tuple[int | None, list[str] | None]:
    """``_read_items`` for an item list that does not walk cleanly: what ``collect_items`` keeps,
    with its problems in ``extras["item_problems"]``."""
    items, problems = collect_items(body)
    if problems:
        extras["item_problems"] = problems
    return _apply_items(items, alarm_word, raw_alarms, extras, model)


def _apply_items(
    items: dict[int, bytes], alarm_word: int, raw_alarms: dict, extras: dict, model: str | None
) -> tuple[int | None, list[str] | None]:
    """Interpret the standard items (jt808.md §4.1) and hand the others to ``vendor_items``;
    returns the satellite count (item 0x31) and the vendor items' alarms (None without any)."""
    satellites = None
    vendor: dict[int, bytes] | None = None
    for item_id, value in items.items():
        if item_id == 0x31 and len(value) == 1:
            satellites = value[0]
        else:
            vendor = _interpret(item_id, value, alarm_word, raw_alarms, extras, vendor)
    return satellites, (decode_vendor_items(vendor, extras, model) if vendor else None)


# The standard additional items (jt808.md §4.1) other than 0x31 (satellites, which goes into the
# Fix): one handler per id and length, writing into extras / raw_alarms. An id with a length not
# listed here is not the standard item and goes to vendor_items.

def _mileage(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    extras["mileage_km"] = _DWORD.unpack(value)[0] / 10


def _fuel(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    extras["fuel_l"] = _WORD.unpack(value)[0] / 10


def _recorder_speed(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    extras["recorder_speed_kmh"] = _WORD.unpack(value)[0] / 10


def _event_id(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    raw_alarms["jt808_event_id"] = _WORD.unpack(value)[0]


def _tyre_pressures(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    extras["tyre_pressures"] = [None if b == 0xFF else b for b in value]


def _compartment_temp(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    extras["compartment_temp_c"] = _SWORD.unpack(value)[0]


def _overspeed(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    overspeed: dict[str, Any] = {"location_type": _LOCATION_TYPES.get(value[0], str(value[0]))}
    if len(value) == 5:
        overspeed["area_id"] = _DWORD.unpack_from(value, 1)[0]
    raw_alarms["jt808_overspeed"] = overspeed


def _area_route(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    direction = "enter" if value[5] == 0 else "exit"
    raw_alarms["jt808_area_route"] = {
        "location_type": _LOCATION_TYPES.get(value[0], str(value[0])),
        "area_id": _DWORD.unpack_from(value, 1)[0],
        "direction": direction,
    }
    if alarm_word & (1 << 20):
        extras["geofence_direction"] = direction
    if alarm_word & (1 << 21):
        extras["route_direction"] = direction


def _route_time(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    section, seconds = _ROUTE_TIME.unpack_from(value)
    raw_alarms["jt808_route_time"] = {
        "section_id": section,
        "driving_time_s": seconds,
        "result": "too_short" if value[6] == 0 else "too_long",
    }


def _vehicle_signals(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    word = _DWORD.unpack(value)[0]
    extras["vehicle_signals"] = [name for bit, name in enumerate(_SIGNALS) if word >> bit & 1]


def _io_status(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    word = _WORD.unpack(value)[0]
    extras["io_status"] = {"deep_sleep": bool(word & 1), "sleep": bool(word & 2)}


def _analog(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    word = _DWORD.unpack(value)[0]
    extras["analog"] = {"ad0": word & 0xFFFF, "ad1": word >> 16}


def _signal(value: bytes, alarm_word: int, raw_alarms: dict, extras: dict) -> None:
    extras["signal"] = value[0]


# (id << 8 | length) -> handler
_STANDARD_ITEMS = {
    0x01 << 8 | 4: _mileage,
    0x02 << 8 | 2: _fuel,
    0x03 << 8 | 2: _recorder_speed,
    0x04 << 8 | 2: _event_id,
    0x05 << 8 | 30: _tyre_pressures,
    0x06 << 8 | 2: _compartment_temp,
    0x11 << 8 | 1: _overspeed,
    0x11 << 8 | 5: _overspeed,
    0x12 << 8 | 6: _area_route,
    0x13 << 8 | 7: _route_time,
    0x25 << 8 | 4: _vehicle_signals,
    0x2A << 8 | 2: _io_status,
    0x2B << 8 | 4: _analog,
    0x30 << 8 | 1: _signal,
}
