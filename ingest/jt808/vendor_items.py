"""Vendor additional items of the 0x0200 location report -> extras and canonical alarms.

``location`` decodes the standard items itself and hands the rest here, only when a report
carries any (so a plain standard report pays nothing). Meanings and attribute names follow
Traccar's JT/T 808 decoder, the de-facto reference for these vendor conventions, so a report
carries what Traccar would show for the same device: names in snake_case (``battery_level``,
``tire1_pressure``), alarms as canonical names (``removing``, ``hard_acceleration``). A few
meanings depend on the device model (``model``, from the fleet), as they do in Traccar. Items
that nest their own fields are in ``vendor_blocks``, lock and seal items in ``vendor_locks``.

Stricter than Traccar in one way: an item whose length does not fit its layout is not read
past its end; it stays raw in ``extras["raw_items"]`` (hex), as do items nobody documents, so
nothing the terminal sent is lost.
"""

from __future__ import annotations

from collections.abc import Callable

from ingest.jt808 import vendor_blocks as blocks
from ingest.jt808 import vendor_locks as locks
from ingest.jt808.fields import (
    Found,
    byte,
    cell,
    need,
    text,
    trimmed,
    u16,
    u32,
)

PADLOCK_MODELS = frozenset({"G-360P", "G-508P"})
_DOOR_MODELS = frozenset({"MV810G", "MV710G"})

# Model conventions for the alarm DWORD that replace the standard bit meanings (the device does
# not follow the standard there): bit -> canonical alarm.
MODEL_ALARM_BITS: dict[str, dict[int, str]] = {
    **{model: {16: "movement"} for model in blocks.AOVX_MODELS},
    **{model: {0: "removing", 4: "removing", 1: "tampering"} for model in PADLOCK_MODELS},
}


def model_alarms(word: int, model: str) -> tuple[str, ...]:
    """The alarm DWORD read by ``model``'s convention (a model in MODEL_ALARM_BITS)."""
    names: list[str] = []
    for bit, name in MODEL_ALARM_BITS[model].items():
        if word >> bit & 1 and name not in names:
            names.append(name)
    return tuple(names)


def _scaled(name: str, size: int, read: Callable[[bytes], float | int]) -> Callable[[bytes, Found], bool]:
    def decode(value: bytes, found: Found) -> bool:
        if len(value) != size:
            return False
        found.extras[name] = read(value)
        return True
    return decode


def _string(name: str, *, trim: bool = False) -> Callable[[bytes, Found], bool]:
    def decode(value: bytes, found: Found) -> bool:
        if not value:
            return False
        found.extras[name] = trimmed(value) if trim else text(value)
        return True
    return decode


def _temperatures(value: bytes, found: Found) -> bool:
    """0x51: 1 or 8 sign-magnitude temperatures in 1/10 °C; 0xFFFF is no sensor."""
    if len(value) not in (2, 16):
        return False
    for n in range(len(value) // 2):
        raw = u16(value, 2 * n)
        if raw != 0xFFFF:
            found.extras[f"temp{n + 1}"] = (-(raw & 0x7FFF) if raw & 0x8000 else raw) / 10
    return True


def _behaviour_flags(value: bytes, found: Found) -> bool:
    """0x57: driving-behaviour WORD (b8-b10), switch WORD, alarm DWORD (b16 door on MV cameras)."""
    need(value, 0, 8, "0x57")
    flags = u16(value)
    for bit, name in ((8, "hard_acceleration"), (9, "hard_braking"), (10, "hard_cornering")):
        if flags >> bit & 1:
            found.alarm(name)
    if found.model in _DOOR_MODELS and u32(value, 4) >> 16 & 1:
        found.alarm("door")
    return True


def _active_safety(name: str) -> Callable[[bytes, Found], bool]:
    """0x64 ADAS / 0x65 DMS: serial, status, alarm type; a full record ends with a 16-byte label."""
    def decode(value: bytes, found: Found) -> bool:
        found.extras[name] = byte(value, 5)
        if len(value) >= 47:
            found.extras["alarm_label"] = value[-16:].hex()
        return True
    return decode


def _safety_event(value: bytes, found: Found) -> bool:
    """0x70: serial, status, event type (1 acceleration, 2 braking, 3 cornering, 0x16 crash)."""
    name = {1: "hard_acceleration", 2: "hard_braking", 3: "hard_cornering", 0x16: "accident"}.get(byte(value, 5))
    if name:
        found.alarm(name)
    return True


def _tyres(value: bytes, found: Found) -> bool:
    """0x77: 8-byte tyre records: index, sensor id[3], pressure (low 10 bits, 1/40 bar),
    temperature + 50 °C, status."""
    if not value or len(value) % 8:
        return False
    for pos in range(0, len(value), 8):
        tyre = f"tire{value[pos]}"
        found.extras[f"{tyre}_sensor_id"] = value[pos + 1:pos + 4].hex()
        found.extras[f"{tyre}_pressure"] = (u16(value, pos + 4) & 0x3FF) / 40
        found.extras[f"{tyre}_temp"] = value[pos + 6] - 50
        found.extras[f"{tyre}_status"] = value[pos + 7]
    return True


def _battery_cells_or_id(value: bytes, found: Found, item_id: int) -> bool:
    """0xD4/0xE1/0xE9: battery % (0xFF: charging); 0xE1 also a cell list or power in 1/10 V;
    otherwise a numeric driver id."""
    size = len(value)
    if size == 1:
        if value[0] == 0xFF:
            found.extras["charge"] = True
        else:
            found.extras["battery_level"] = value[0]
    elif item_id == 0xE1 and size >= 12 and (size - 4) % 8 == 0:
        mcc, mnc = u16(value), u16(value, 2)
        for pos in range(4, size, 8):
            lac = int.from_bytes(value[pos:pos + 3], "big")
            cell_id = u32(value, pos + 3)
            if 0 < lac <= 0xFFFF and cell_id <= 0xFFFFFFF:
                found.cells.append(cell(mcc, mnc, lac, cell_id, value[pos + 7]))
    elif item_id == 0xE1 and size == 2:
        found.extras["power"] = u16(value) / 10
    else:
        found.extras["driver_unique_id"] = str(u32(value))
    return True


def _battery_status(value: bytes, found: Found) -> bool:
    """0xE3: reserved, battery %, battery in 1/100 V."""
    need(value, 0, 4, "0xE3")
    found.extras["battery_level"] = value[1]
    found.extras["battery"] = u16(value, 2) / 100
    return True


def _charge_level(value: bytes, found: Found) -> bool:
    """0xE4: charging (0 = charging), battery %."""
    need(value, 0, 2, "0xE4")
    if value[0] == 0:
        found.extras["charge"] = True
    found.extras["battery_level"] = value[1]
    return True


def _vibration_sos(value: bytes, found: Found) -> bool:
    """0xE7 (8 bytes): alarm WORD, b0 vibration, b1-b3 SOS buttons."""
    if len(value) != 8:
        return False
    flags = u16(value)
    if flags & 1:
        found.alarm("vibration")
    if flags & 0b1110:
        found.alarm("sos")
    return True


def _camera_or_lock(value: bytes, found: Found) -> bool:
    """0xE8: a JC dash camera's status/event (JC models), else a 3-byte lock status."""
    if found.model in blocks.JC_MODELS:
        return blocks.jc_camera(value, found)
    if len(value) != 3:
        return False
    found.extras["lock_status"] = int.from_bytes(value, "big")
    return True


def _rssi_power(value: bytes, found: Found) -> bool:
    """0xEE (6 bytes): signal, power and battery in mV, satellites."""
    if len(value) != 6:
        return False
    found.extras.update(rssi=value[0], power=u16(value, 1) / 1000, battery=u16(value, 3) / 1000, sat=value[5])
    return True


def _cells_f0(value: bytes, found: Found) -> bool:
    """0xF0: 13-byte cells (MCC, MNC WORDs, cell id and LAC DWORDs, RSSI)."""
    if not value or len(value) % 13:
        return False
    for pos in range(0, len(value), 13):
        found.cells.append(cell(u16(value, pos), u16(value, pos + 2), u32(value, pos + 8), u32(value, pos + 4),
                                value[pos + 12]))
    return True


def _pressure_imei_or_sensors(value: bytes, found: Found) -> bool:
    """0xF6: air pressure (2 bytes) or BCD IMEI (8), except on AOVX models: a sensor block."""
    aovx = found.model in blocks.AOVX_MODELS
    if not aovx and len(value) == 2:
        found.extras["air_pressure"] = u16(value)
    elif not aovx and len(value) == 8:
        found.extras["imei"] = value.hex()[1:]
    else:
        return blocks.sensor_block(value, found)
    return True


def _humidity_or_battery(value: bytes, found: Found) -> bool:
    """0xF7: humidity (2 bytes), or battery in mV, charge state (2/3 charging), battery %."""
    if len(value) == 2:
        found.extras["humidity"] = u16(value) / 10
        return True
    found.extras["battery"] = u32(value) / 1000
    if len(value) >= 5 and value[4] in (2, 3):
        found.extras["charge"] = True
    if len(value) >= 6:
        found.extras["battery_level"] = value[5]
    return True


def _iccid_steps_or_temp(value: bytes, found: Found) -> bool:
    """0xF8: AOVX status with the ICCID, C5 step count, else temperature 2 (1/10 °C + 50)."""
    if found.model in blocks.AOVX_MODELS:
        need(value, 9, 10, "0xF8 ICCID")  # working mode, IMEI[8], then the ICCID
        found.extras["iccid"] = value[9:19].hex()
    elif found.model in ("C5", "C5L"):
        found.extras["steps"] = u16(value)
    else:
        found.extras["temp2"] = u16(value) / 10 - 50
    return True


def _fuel(value: bytes, found: Found) -> bool:
    """0xE2: fuel in 1/10 (DT800 trackers use the id for something else)."""
    if found.model == "DT800" or len(value) != 4:
        return False
    found.extras["fuel"] = u32(value) / 10
    return True


def _analog(value: bytes, found: Found) -> bool:
    """0xA7: two analog inputs in 1/100 V."""
    if len(value) != 4:
        return False
    found.extras.update(adc1=u16(value) / 100, adc2=u16(value, 2) / 100)
    return True


def _trouble_codes(value: bytes, found: Found) -> bool:
    """0xA0 (OBD extension): comma-separated trouble codes, kept space-separated."""
    found.extras["dtcs"] = text(value).replace(",", " ")
    return True


def _user_status(value: bytes, found: Found) -> bool:
    """0xD0: user status DWORD, b3 vibration."""
    if u32(value) & 0x8:
        found.alarm("vibration")
    return True


_Decoder = Callable[[bytes, Found], bool]
ITEMS: dict[int, _Decoder] = {
    0x06: _scaled("battery_level", 1, lambda v: v[0]),  # 1 byte: not the 2019 temperature
    0x0B: locks.lock_command,
    0x14: _scaled("video_alarm", 4, u32),  # JT/T 1078 video alarm flags
    0x33: locks.mode_or_lock,
    0x51: _temperatures,
    0x56: _scaled("battery_level", 2, lambda v: v[0] * 10),
    0x57: _behaviour_flags,
    0x60: locks.lock_event,
    0x63: locks.seal_locks,
    0x64: _active_safety("adas_alarm"),
    0x65: _active_safety("dms_alarm"),
    0x67: _scaled("password", 8, text),
    0x68: _scaled("battery_level", 2, lambda v: u16(v) / 100),
    0x69: _scaled("battery", 2, lambda v: u16(v) / 100),
    0x70: _safety_event,
    0x77: _tyres,
    0x82: _scaled("power", 2, lambda v: u16(v) / 10),
    0x91: blocks.obd_block,
    0x94: _string("vin"),
    0xA7: _analog,
    0xAC: _scaled("odometer", 4, u32),
    0xBC: _string("driver", trim=True),
    0xBD: _string("driver_unique_id"),
    0xD0: _user_status,
    0xD3: _scaled("power", 2, lambda v: u16(v) / 10),
    0xD4: lambda v, f: _battery_cells_or_id(v, f, 0xD4),
    0xD5: locks.padlocks,
    0xDA: locks.string_lock,
    0xE1: lambda v, f: _battery_cells_or_id(v, f, 0xE1),
    0xE2: _fuel,
    0xE3: _battery_status,
    0xE4: _charge_level,
    0xE5: _scaled("motion", 1, lambda v: v[0] == 1),
    0xE6: blocks.sensor_or_obd_text,
    0xE7: _vibration_sos,
    0xE8: _camera_or_lock,
    0xE9: lambda v, f: _battery_cells_or_id(v, f, 0xE9),
    0xEA: blocks.external_sensors,
    0xEB: blocks.concox_block,
    0xEC: blocks.wifi_list,
    0xED: _string("card", trim=True),
    0xEE: _rssi_power,
    0xF0: _cells_f0,
    0xF1: _scaled("power", 4, lambda v: u32(v) / 1000),
    0xF2: _string("version_fw"),
    0xF3: blocks.tags_or_obd,
    0xF4: blocks.wifi_list,
    0xF5: _scaled("illuminance", 2, u16),
    0xF6: _pressure_imei_or_sensors,
    0xF7: _humidity_or_battery,
    0xF8: _iccid_steps_or_temp,
    0xF9: blocks.gnss_extras,
    0xFB: _string("container"),
    0xFC: _scaled("geofence", 1, lambda v: v[0]),
    0xFE: blocks.battery_or_behaviour,
}

# After an 0x80 item the rest of the report is OBD extension items, with their own meanings.
OBD_EXTENSION: dict[int, _Decoder] = {
    0x56: _scaled("battery_level", 2, lambda v: v[1]),
    0x61: _scaled("power", 2, lambda v: u16(v) / 100),
    0x69: _scaled("battery", 2, lambda v: u16(v) / 100),
    0x80: _scaled("obd_speed", 1, lambda v: v[0]),
    0x81: _scaled("rpm", 2, u16),
    0x82: _scaled("power", 2, lambda v: u16(v) / 10),
    0x83: _scaled("engine_load", 1, lambda v: v[0]),
    0x84: _scaled("coolant_temp", 1, lambda v: v[0] - 40),
    0x85: _scaled("fuel_consumption", 2, u16),
    0x86: _scaled("intake_temp", 1, lambda v: v[0] - 40),
    0x87: _scaled("intake_flow", 2, u16),
    0x88: _scaled("intake_pressure", 1, lambda v: v[0]),
    0x89: _scaled("throttle", 1, lambda v: v[0]),
    0x8B: _scaled("vin", 17, text),
    0x8C: _scaled("obd_odometer", 4, lambda v: u32(v) * 100),
    0x8D: _scaled("odometer_trip", 2, lambda v: u16(v) * 1000),
    0x8E: _scaled("fuel", 1, lambda v: v[0]),
    0xA0: _trouble_codes,
    0xCC: _scaled("iccid", 20, text),
}


def decode_vendor_items(items: dict[int, bytes], extras: dict, model: str | None = None) -> list[str]:
    """Decode ``items`` (id -> value, in report order) into ``extras``; return the alarms found.

    An item is taken whole or not at all: one that is not decoded goes to
    ``extras["raw_items"]`` as hex, and one that breaks its layout is also named in
    ``extras["item_problems"]``.
    """
    found = Found(extras, model)
    raw: dict[str, str] = extras.get("raw_items", {})
    table = ITEMS
    for item_id, value in items.items():
        decode = table.get(item_id)
        if item_id == 0x80 and table is ITEMS:
            table = OBD_EXTENSION  # its own value is a content byte
            continue
        item = Found({}, model)
        try:
            done = decode is not None and decode(value, item)
        except (ValueError, IndexError) as exc:  # FieldError included; also a text that is no number
            extras.setdefault("item_problems", []).append(f"item 0x{item_id:02X}: {exc}")
            done = False
        if done:
            extras.update(item.extras)
            for name in item.alarms:
                found.alarm(name)
            found.cells += item.cells
            found.wifi += item.wifi
        else:
            raw[f"{item_id:02x}"] = value.hex()
    found.finish()
    if raw:
        extras["raw_items"] = raw
    return found.alarms
