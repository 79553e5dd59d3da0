"""Vendor additional items of the 0x0200 location report that nest their own fields.

0xEB (Concox/Jimi: cells, a time-zone text, or length-type-value blocks), 0xE8 (Jimi JC dash
cameras: status blocks and alarm events), 0xF3 (AOVX BLE tags, else OBD values), 0xF6 (AOVX
sensor block), 0xFE (battery, or a 0x7C driving-behaviour block), 0xEA (external sensors),
0xE6 ($OBD-RT text or BLE temperature sensors), 0xF9 (AOVX GNSS extras) and 0x91 (OBD block).
Field meanings and Traccar attribute names follow Traccar's JT/T 808 decoder, so the values line
up with what Traccar reports for the same devices; names are snake_case (``battery_level``),
alarms are canonical names. Each function raises ``FieldError`` when the value is too short.
"""

from __future__ import annotations

from ingest.jt808.fields import (
    FieldError,
    Found,
    byte,
    cell,
    is_printable,
    mac,
    need,
    s16,
    signed_byte,
    text,
    trimmed,
    u16,
    u32,
)

AOVX_MODELS = frozenset({"AL300", "GL100"})
JC_MODELS = frozenset({"JC371", "JC181", "JC182", "JC450", "JC451"})

# JC dash-camera event types in item 0xE8 -> canonical alarm.
_JC_ALARMS = {
    0x0001: "fault", 0x0400: "hard_acceleration", 0x0412: "hard_acceleration",
    0x0401: "hard_braking", 0x0413: "hard_braking", 0x0402: "hard_cornering", 0x0414: "hard_cornering",
    0x0403: "overspeed", 0x0405: "accident", 0x0416: "accident", 0x0417: "accident",
    0x0406: "vibration", 0x0407: "tow", 0x0408: "geofence_enter", 0x0409: "geofence_exit",
    0x040C: "door", 0x0415: "lane_change", 0x0C01: "sos", 0x0C02: "low_power", 0x0C05: "general",
    0x0C0E: "power_cut", 0x0C0F: "low_battery", 0x0C10: "power_off", 0x0C12: "tampering",
}


def obd_rt(line: str, found: Found) -> None:
    """``$OBD-RT,power,rpm,speed,throttle,load,coolant,instant fuel,average fuel,trip,odometer,
    trip fuel,fuel used,...``: empty fields are absent, the average consumption wins."""
    names = ("power", "rpm", "obd_speed", "throttle", "engine_load", "coolant_temp", "fuel_consumption",
             "fuel_consumption", "odometer_trip", "obd_odometer", "trip_fuel_used", "fuel_used")
    values = line.split(",")
    for index, name in enumerate(names, start=1):
        if index < len(values) and values[index].strip():
            raw = values[index].strip()
            found.extras[name] = int(raw) if name == "coolant_temp" else float(raw)


def sensor_or_obd_text(value: bytes, found: Found) -> bool:
    """0xE6: an $OBD-RT line, or 11-byte BLE sensor records (index, MAC, temperature, humidity)."""
    if len(value) >= 7 and value.startswith(b"$OBD-RT"):
        obd_rt(value.decode("utf-8", errors="replace"), found)
        return True
    if len(value) < 11 or len(value) % 11:
        return False
    for pos in range(0, len(value), 11):
        index = value[pos]
        found.extras[f"temp{index}"] = _custom_double(value, pos + 7)
        found.extras[f"humidity{index}"] = _custom_double(value, pos + 9)
    return True


def _custom_double(value: bytes, pos: int) -> float:
    # Signed whole part, then 1/255 fractions carrying the same sign.
    whole, fraction = signed_byte(value, pos), byte(value, pos + 1)
    sign = -1 if whole < 0 else 1
    return sign * (abs(whole) + fraction / 255.0)


def concox_block(value: bytes, found: Found) -> bool:
    """0xEB: a cell list, a printable time-zone text, or blocks of (length WORD, type WORD, data)
    where the length counts the type."""
    size = len(value)
    if size >= 2 and u16(value) > 200 and (size - 3) % 5 == 0:
        mcc, mnc = u16(value), byte(value, 2)
        for pos in range(3, size, 5):
            lac, cell_id = u16(value, pos), u16(value, pos + 2)
            if lac or cell_id:  # unused slots are zeros
                found.cells.append(cell(mcc, mnc, lac, cell_id, value[pos + 4]))
        return True
    if is_printable(value):
        found.extras["timezone"] = text(value)
        return True
    pos = 0
    while pos + 4 <= size:
        length, kind = u16(value, pos), u16(value, pos + 2)
        data = value[pos + 4:pos + 2 + length]
        pos += 2 + length
        if length < 2 or pos > size:
            raise FieldError(f"0xEB block 0x{kind:04X} declares {length} bytes")
        _concox_field(kind, data, found)
    return True


def _concox_field(kind: int, data: bytes, found: Found) -> None:
    extras = found.extras
    if kind == 0x0001:
        extras["fuel1"] = u16(data) / 10
    elif kind == 0x0023:
        need(data, 0, 6, "0xEB fuel text")
        extras["fuel2"] = float(text(data[:6]))
    elif kind == 0x002D:
        if len(data) == 4:
            extras["power"] = u32(data) / 1000
        else:
            extras["battery"] = u16(data) / 1000
    elif kind == 0x0089:
        # Active-low alarm flags: a cleared bit is the alarm.
        flags = u32(data)
        if not flags & 1:
            found.alarm("power_off")
        if not flags & (1 << 12):
            found.alarm("removing")
    elif kind == 0x00B2:
        need(data, 0, 10, "0xEB ICCID")
        extras["iccid"] = data[:10].hex().rstrip("f")
    elif kind == 0x00B9:
        parts = text(data[1:]).split(",")
        for n in range(len(parts) // 2):
            found.wifi.append({"mac": parts[2 * n].lower(), "rssi": int(parts[2 * n + 1])})
    elif kind == 0x00C5:
        flags = u32(data)
        if not flags & (1 << 6):
            found.alarm("vibration")
        motion_state = flags >> 23 & 0x3
        if motion_state in (0, 1):
            extras["motion"] = motion_state == 0
    elif kind == 0x00C6:
        level = byte(data)
        extras["battery_alarm"] = level
        if level in (3, 4):
            found.alarm("low_battery")
    elif kind == 0x00CE:
        extras["power"] = u16(data) / 100
    elif kind == 0x00D8:
        need(data, 0, 9, "0xEB cell")
        found.cells.append(cell(u16(data), data[2], u16(data, 3), u32(data, 5)))
    elif kind in (0x00A8, 0x00E1):
        extras["battery_level"] = byte(data)


def jc_camera(value: bytes, found: Found) -> bool:
    """0xE8 from a JC dash camera: an event type WORD, then for 0x2002/0x2003/0x2005 a status
    block, otherwise the event itself."""
    kind = u16(value)
    extras = found.extras
    if kind == 0x2002:
        extras["upload_mode"] = byte(value, 3)
        extras["buffered"] = byte(value, 4) == 1
    elif kind == 0x2003:
        extras["charge"] = byte(value, 3) == 1
        level = byte(value, 4)
        if 1 <= level <= 6:
            extras["battery_level"] = level * 100 // 6
        extras["battery"] = u16(value, 5) / 100
        extras["rssi"] = byte(value, 7)
        extras["power"] = u16(value, 8) / 100
    elif kind == 0x2005:
        pos = 3
        while pos + 3 <= len(value):
            status, size = u16(value, pos), value[pos + 2]
            data = value[pos + 3:pos + 3 + size]
            pos += 3 + size
            if pos > len(value):
                raise FieldError(f"0xE8 status 0x{status:04X} declares {size} bytes")
            _jc_status(status, data, found)
    elif kind == 0x0C03:
        extras["ignition"] = True
    elif kind == 0x0C04:
        extras["ignition"] = False
    elif kind in _JC_ALARMS:
        found.alarm(_JC_ALARMS[kind])
    return True


def _jc_status(status: int, data: bytes, found: Found) -> None:
    extras = found.extras
    if status == 0x0001:
        extras["battery"] = u16(data) / 100
    elif status == 0x0002:
        extras["data_usage"] = u32(data)
    elif status == 0x0003:
        extras["battery_level"] = byte(data)
    elif status == 0x0004:
        extras["charge"] = byte(data) == 0
    elif status == 0x0005:
        need(data, 0, 10, "0xE8 ICCID")
        extras["iccid"] = data[:10].hex()[:19]
    elif status == 0x0007:
        extras["hdop"] = u16(data) / 10
    elif status == 0x2001:
        extras["power"] = u16(data) / 10


# 0xF3 (non-AOVX) OBD value type -> (name, conversion of the value read as an unsigned integer
# of its declared length), or (name, None) for a text value.
_OBD_VALUES = {
    0x0002: ("obd_speed", lambda v: v / 10),
    0x0003: ("rpm", int),
    0x0004: ("power", lambda v: v / 1000),
    0x0005: ("obd_odometer", lambda v: v * 100),
    0x0007: ("fuel_consumption", lambda v: v / 10),
    0x0008: ("engine_load", lambda v: v / 10),
    0x0009: ("coolant_temp", lambda v: v - 40),
    0x000B: ("intake_pressure", int),
    0x000C: ("intake_temp", lambda v: v - 40),
    0x000D: ("intake_flow", int),
    0x000E: ("throttle", lambda v: v * 100 // 255),
    0x0050: ("vin", None),
    0x0051: ("cvn", bytes.hex),
    0x0052: ("calid", None),
    0x0100: ("odometer_trip", lambda v: v / 10),
    0x0102: ("trip_fuel", lambda v: v / 10),
    0x0112: ("hard_acceleration_count", int),
    0x0113: ("hard_deceleration_count", int),
    0x0114: ("hard_cornering_count", int),
}


def tags_or_obd(value: bytes, found: Found) -> bool:
    """0xF3: AOVX BLE tags (a field mask, then per tag MAC, RSSI and the masked fields), or for
    other devices OBD values as (type WORD, length BYTE, data)."""
    extras = found.extras
    if found.model in AOVX_MODELS:
        mask, pos, index = byte(value), 1, 0
        while pos < len(value):
            index += 1
            need(value, pos, 7, "0xF3 tag")
            extras[f"tag{index}_mac"] = value[pos:pos + 6].hex()
            extras[f"tag{index}_rssi"] = signed_byte(value, pos + 6)
            pos += 7
            if mask & 0x01:
                need(value, pos, 10, "0xF3 tag name")
                extras[f"tag{index}_name"] = trimmed(value[pos:pos + 10])
                pos += 10
            if mask & 0x02:
                pos += 2  # firmware version
            if mask & 0x04:
                extras[f"tag{index}_battery"] = u16(value, pos) / 1000
                pos += 2
            if mask & 0x08:
                extras[f"tag{index}_temp"] = s16(value, pos) / 10
                pos += 2
            if mask & 0x10:
                extras[f"tag{index}_humidity"] = s16(value, pos) / 10
                pos += 2
            pos += (6 if mask & 0x20 else 0) + (2 if mask & 0x40 else 0) + (2 if mask & 0x80 else 0)
        return True
    pos = 0
    while pos + 3 <= len(value):
        kind, size = u16(value, pos), value[pos + 2]
        data = value[pos + 3:pos + 3 + size]
        pos += 3 + size
        if pos > len(value):
            raise FieldError(f"0xF3 value 0x{kind:04X} declares {size} bytes")
        if kind in _OBD_VALUES and size:
            name, convert = _OBD_VALUES[kind]
            if convert is None:
                if text(data).split("\x00", 1)[0]:
                    extras[name] = text(data).split("\x00", 1)[0]
            elif convert is bytes.hex:
                extras[name] = data.hex()
            elif size <= 4:
                extras[name] = convert(int.from_bytes(data, "big"))
    return pos == len(value)


def sensor_block(value: bytes, found: Found) -> bool:
    """0xF6 (AOVX, or any length but 2 and 8): event, field mask, then the masked sensors."""
    extras = found.extras
    event, mask = byte(value), byte(value, 1)
    extras["event"] = event
    if event == 2:
        extras["motion"] = True
    pos = 2
    if mask & 0x01:
        extras["light_sensor"] = u16(value, pos)
        pos += 2
    if mask & 0x02:
        extras["temp1"] = s16(value, pos) / 10
        pos += 2
    if mask & 0x04:
        extras["humidity"] = s16(value, pos) / 10
        pos += 2
    if mask & 0x08:
        extras["g_sensor"] = f"[{s16(value, pos)},{s16(value, pos + 2)},{s16(value, pos + 4)}]"
        pos += 6
    if mask & 0x10:
        pos += 10  # threshold configuration
    if mask & 0x20:
        extras["air_pressure"] = u16(value, pos)
    return True


def gnss_extras(value: bytes, found: Found) -> bool:
    """0xF9: a field mask, then GNSS age, ACC-on time, HDOP, GNSS time, intervals, temperature."""
    mask, pos = u16(value), 2
    pos += (4 if mask & 0x01 else 0) + (4 if mask & 0x02 else 0)
    if mask & 0x04:
        found.extras["hdop"] = u16(value, pos) / 10
        pos += 2
    pos += (6 if mask & 0x08 else 0) + (8 if mask & 0x20 else 0)
    if mask & 0x40:
        found.extras["temp3"] = s16(value, pos) / 10
    return True


def battery_or_behaviour(value: bytes, found: Found) -> bool:
    """0xFE: battery % (1 byte), power (2), odometer (4), or a 0x7C block of driving-behaviour
    alarms followed by the battery %."""
    size, extras = len(value), found.extras
    if size == 1:
        extras["battery_level"] = value[0]
    elif size == 2:
        extras["power"] = u16(value) / 10
    elif size == 4:
        extras["odometer"] = u32(value)
    elif value[0] == 0x7C:
        pos = 1
        while pos + 2 <= size:
            kind, length = value[pos], value[pos + 1]
            if kind == 0x01:
                flags = u32(value, pos + 2)
                for bit, name in enumerate(("hard_acceleration", "hard_braking", "hard_cornering",
                                            "accident", "tampering")):
                    if flags >> bit & 1:
                        found.alarm(name)
            pos += 2 + length
    else:
        extras["battery_level"] = byte(value, 1)
    return True


def external_sensors(value: bytes, found: Found) -> bool:
    """0xEA: an info-type byte, then (type BYTE, length BYTE, data) external sensor readings."""
    if len(value) <= 2:
        return False
    extras, pos = found.extras, 1
    while pos + 2 <= len(value):
        kind, size = value[pos], value[pos + 1]
        data = value[pos + 2:pos + 2 + size]
        pos += 2 + size
        if pos > len(value):
            break
        if kind == 0x11:
            extras["external_alarms"] = u16(data)
            extras["alarm_threshold_type"] = byte(data, 2)
        elif kind == 0x13:
            extras["external_illuminance"] = u16(data)
        elif kind == 0x14:
            extras["external_air_pressure"] = u16(data)
        elif kind == 0x15:
            extras["external_humidity"] = u16(data) / 10
        elif kind == 0x16:
            extras["external_temp"] = u16(data) / 10 - 50
    return True


def obd_block(value: bytes, found: Found) -> bool:
    """0x91: battery, RPM, speed, throttle, load, coolant, fuel consumption, fuel used."""
    need(value, 0, 22, "0x91 OBD block")
    extras = found.extras
    extras["battery"] = u16(value) / 10
    extras["rpm"] = u16(value, 2)
    extras["obd_speed"] = value[4]
    extras["throttle"] = value[5] * 100 // 255
    extras["engine_load"] = value[6] * 100 // 255
    extras["coolant_temp"] = value[7] - 40
    extras["fuel_consumption"] = u16(value, 10) / 100
    extras["fuel_used"] = u16(value, 20) / 100
    return True


def wifi_list(value: bytes, found: Found) -> bool:
    """0xEC/0xF4: 7-byte entries, MAC and signed RSSI."""
    if len(value) % 7:
        return False
    for pos in range(0, len(value), 7):
        found.wifi.append({"mac": mac(value[pos:pos + 6]), "rssi": signed_byte(value, pos + 6)})
    return True
