"""Vendor forms of the GT06 family that gt06.md names but does not document byte by byte.

Read the way traccar's decoder reads them (its test frames are our conformance corpus): the RFID
form of 0x17, LW4G 0xA2, SR411 0x24, X1 GPS 0x34, the modular 0x70, AZ735 0x32/0x33 (``79 79``),
JC100/JC400 camera alarms 0x95, serial pass-through 0x9B, OBD 0x8C, both forms of 0x36, the LBS
address query 0xA7, 0x61, 0xF1 and the long heartbeat 0x13 of OBD firmware (the tails appended to
0x12/0x22/0x31 are in ``location_forms``). A form is chosen by protocol number and body length
only; a body that does not fit raises ``DecodeError`` (a bad frame) rather than guessing further.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ingest.gt06 import cells, replies
from ingest.gt06.blocks import (
    DecodeError,
    make_fix,
    need,
    read_gps,
    read_lbs,
    read_time,
    terminal_info,
)
from ingest.gt06.packet import Decoded, Handler, Packet

JC_EVENTS = {0x0E: "low_power", 0x76: "temperature", 0x80: "vibration", 0x87: "overspeed", 0x88: "power_cut",
             0x90: "hard_acceleration", 0x91: "hard_braking", 0x92: "hard_cornering", 0x93: "accident"}
MODULAR_EVENTS = {0x11: "low_battery", 0x12: "low_power", 0x13: "power_cut", 0x14: "removing"}
AZ735_ALARMS = {0xA2: "low_battery", 0xA3: "low_battery", 0xA4: "general", 0xA5: "door"}


def _rfid_location(p: Packet) -> Decoded:
    """0x17 RFID form: GPS, LBS, 8-byte driver card, validity."""
    time, fix, state, pos = read_gps(p.body, 0, p.utc_offset)
    cell, pos = read_lbs(p.body, pos)
    p.status.update(state)
    p.add_lbs(cell)
    p.extras["driver_id"] = p.body[pos:pos + 8].hex()
    return p.decoded("location", p.report(time, fix))


def _lw4g_status(p: Packet) -> Decoded:
    """0xA2 of LW4G firmware (59-byte body): GPS, 4G LBS, status with 2-byte power, odometer, hours."""
    body = p.body
    time, fix, state, pos = read_gps(body, 0, p.utc_offset)
    cell, pos = read_lbs(body, pos, wide=True)
    p.add_lbs(cell)
    pos += 1  # network indicator
    p.status.update(terminal_info(body[pos])[0])
    p.status.update(state)
    p.status["power_v"] = int.from_bytes(body[pos + 1:pos + 3], "big") / 100
    p.status["gsm_signal"] = body[pos + 4]
    p.read_alarm(pos + 5)
    pos += 7
    p.extras["odometer"] = int.from_bytes(body[pos:pos + 4], "big")
    return p.decoded("alarm", p.report(time, fix), p.ack())


def _sr411_location(p: Packet) -> Decoded:
    """0x24 of SR411 mini firmware (41-byte body): GPS, LBS, ignition, power, battery."""
    time, fix, state, pos = read_gps(p.body, 0, p.utc_offset)
    cell, pos = read_lbs(p.body, pos)
    p.add_lbs(cell)
    p.status.update(state)
    p.status["acc"] = p.body[pos] > 0
    p.status["power_v"] = int.from_bytes(p.body[pos + 1:pos + 3], "big") / 100
    p.status["battery_v"] = int.from_bytes(p.body[pos + 3:pos + 5], "big") / 100
    return p.decoded("location", p.report(time, fix))


def _gps_first(p: Packet) -> Decoded:
    """0x32 (``78 78``), 0x38 and 0xA3: a GPS block first, the rest vendor-specific and skipped."""
    time, fix, state, _ = read_gps(p.body, 0, p.utc_offset)
    p.status.update(state)
    return p.decoded("location", p.report(time, fix))


def _x1_location(p: Packet) -> Decoded:
    """0x34 (X1): data/alarm DWORD, GPS, terminal info WORD, odometer, cell (4-byte ID), driver, volts."""
    body = p.body
    need(body, 0, 51, "X1 location")
    time, fix, state, pos = read_gps(body, 4, p.utc_offset)
    p.status.update(state)
    pos += 2  # terminal information WORD
    p.extras["odometer"] = int.from_bytes(body[pos:pos + 4], "big")
    cell, pos = read_lbs(body, pos + 4, cell_bytes=4)
    p.add_lbs(cell)
    driver = int.from_bytes(body[pos:pos + 4], "big")
    if driver:
        p.extras["driver_id"] = str(driver)
    p.status["battery_v"] = int.from_bytes(body[pos + 4:pos + 6], "big") / 100
    p.status["power_v"] = int.from_bytes(body[pos + 6:pos + 8], "big") / 100
    return p.decoded("location", p.report(time, fix))


def _modular(p: Packet) -> Decoded:
    """0x70: modules of type WORD, length WORD, data (``79 79``)."""
    body = p.body
    pos = 0
    time = fix = None
    while pos + 4 <= len(body):
        kind, size = int.from_bytes(body[pos:pos + 2], "big"), int.from_bytes(body[pos + 2:pos + 4], "big")
        data = body[pos + 4:pos + 4 + size]
        if len(data) != size:
            raise DecodeError(f"0x70 module 0x{kind:04X} runs past the body")
        pos += 4 + size
        if kind == 0x33 and size >= 18:  # epoch time, satellites, altitude, then the GPS position
            time = datetime.fromtimestamp(int.from_bytes(data[0:4], "big"), timezone.utc)
            altitude = float(int.from_bytes(data[5:7], "big", signed=True))
            fix, state = make_fix(data, 7, satellites=data[4], altitude=altitude)
            p.status.update(state)
        elif kind == 0x2B and size >= 1:
            p.extras["event"] = data[0]
            if data[0] in MODULAR_EVENTS:
                p.alarms.append(MODULAR_EVENTS[data[0]])
        elif kind == 0x18 and size >= 2:
            p.status["battery_v"] = int.from_bytes(data[:2], "big") / 100
        elif kind == 0x03 and size >= 10:
            p.extras["iccid"] = data[:10].hex()
        elif kind == 0x09 and size >= 1:
            p.extras["satellites"] = data[0]
        elif kind == 0x2A and size >= 1:
            p.status["door"] = bool(data[0] & 0x0F)
        elif kind == 0x2E and size >= 4:
            p.extras["odometer"] = int.from_bytes(data[:4], "little")
        else:
            p.extras.setdefault("modules", {})[f"{kind:04x}"] = data.hex()
    return p.decoded("location", p.report(time, fix), p.ack())


def _az735(p: Packet) -> Decoded:
    """0x32/0x33 in ``79 79`` (AZ735): GPS with a length byte, LBS with a length byte, lists, status."""
    if not p.frame.extended:
        return _gps_first(p)
    body = p.body
    time = read_time(body, 0, p.utc_offset)
    fix = None
    need(body, 6, 1, "GPS length")
    pos = 7
    if body[6]:  # GPS length byte, then satellites, position, speed, course word
        need(body, 7, 12, "GPS block")
        fix, state = make_fix(body, 8, satellites=body[7] & 0x0F)
        p.status.update(state)
        pos = 19
    need(body, pos, 1, "LBS length")
    if body[pos]:
        cell, _ = read_lbs(body, pos + 1)
        p.add_lbs(cell)
        p.status["gsm_signal"] = body[pos + body[pos]]
        pos += body[pos] + 1
    else:
        pos += 1
    for _ in range(2):  # more cells, WiFi: skipped
        need(body, pos, 1, "list length")
        pos += 1 + body[pos]
    need(body, pos, 1, "status")
    status = body[pos]
    p.extras["status_code"] = status
    if p.protocol == 0x33:
        if status in (0xA0, 0xA1):
            p.status["armed"] = status == 0xA0
        elif status in AZ735_ALARMS:
            p.alarms.append(AZ735_ALARMS[status])
    return p.decoded("alarm" if p.alarms else "location", p.report(time, fix),
                     replies.ack(p.protocol, p.frame.serial, extended=True))


def _jc_alarm(p: Packet) -> Decoded:
    """0x95 (JC100/JC400 cameras): time + event, or an extended form with a position and file names."""
    body = p.body
    fix = None
    if len(body) <= 7:
        time = read_time(body, 0, p.utc_offset)
        event = body[6] if len(body) == 7 else 0
        extended = False
    elif body[:2] == b"\xff\xff":  # JC400: marker, version, GPS (time, sats, lat, lon, ...), power
        time = read_time(body, 3, p.utc_offset)
        need(body, 24, 1, "JC400 event")
        p.status["power_v"] = int.from_bytes(body[22:24], "big") / 10
        event, pos, extended = body[24], 27, True
    else:  # JC100 extended: time, lat, lon, course/status word (no speed), event
        time = read_time(body, 0, p.utc_offset)
        need(body, 6, 11, "JC100 alarm")
        fix, state = make_fix(body, 6, speed_bytes=0)
        p.status.update(state)
        event, pos, extended = body[16], 19, True
    p.extras["event"] = event
    if event == 0x01:
        p.alarms.append("sos" if extended else "general")
    elif event in JC_EVENTS:
        p.alarms.append(JC_EVENTS[event])
    if extended and len(body) > pos:
        files = [name for name in body[pos:].decode("ascii", "replace").split(",") if name]
        p.extras["event_files"] = files
    return p.decoded("alarm", p.report(time, fix))


def _serial_data(p: Packet) -> Decoded:
    """0x9B: external device type BYTE + pass-through data (text when printable, else hex)."""
    need(p.body, 0, 1, "0x9B device type")
    data = p.body[1:]
    text = data.decode("latin-1")
    printable = all(ch.isprintable() or ch in "\r\n\t" for ch in text) and data.isascii()
    p.extras["serial_data"] = text.strip() if printable else data.hex()
    return p.decoded("info", p.report())


def _obd(p: Packet) -> Decoded:
    """0x8C (``79 79``): time, ignition, then ``key=value`` pairs in ASCII."""
    time = read_time(p.body, 0, p.utc_offset)
    need(p.body, 6, 1, "OBD ignition")
    p.status["acc"] = p.body[6] > 0
    text = p.body[7:].decode("ascii", "replace")
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    p.extras["obd"] = {key.strip(): value.strip("\x00 ") for key, value in pairs}
    return p.decoded("status", p.report(time))


def _status_2(p: Packet) -> Decoded:
    """0x36: either a status block + language + modules (type WORD, length BYTE, data), or, on VL103
    firmware, a GPS block, LBS with a 4-byte cell ID and an 8-byte driver card at the end."""
    body = p.body
    if len(body) >= 35 and _starts_with_date(body):
        time, fix, state, pos = read_gps(body, 0, p.utc_offset)
        p.status.update(state)
        cell, pos = read_lbs(body, pos, cell_bytes=4)
        p.add_lbs(cell)
        if any(body[-8:]):
            p.extras["driver_id"] = body[-8:].hex()
        return p.decoded("location", p.report(time, fix), p.ack())
    pos = p.read_status(0)
    while pos < len(body):
        need(body, pos, 3, "0x36 module")
        kind, size = int.from_bytes(body[pos:pos + 2], "big"), body[pos + 2]
        data = body[pos + 3:pos + 3 + size]
        if len(data) != size:
            raise DecodeError(f"0x36 module 0x{kind:04X} runs past the body")
        pos += 3 + size
        if kind == 0x18 and size == 2:
            p.status["battery_v"] = int.from_bytes(data, "big") / 100
        elif kind == 0x6A and size == 1:
            p.status["battery_percent"] = data[0]
    return p.decoded("status", p.report(), p.ack())


def _starts_with_date(body: bytes) -> bool:
    try:
        read_time(body, 0, timedelta(0))
    except DecodeError:
        return False
    return True


def _lbs_address(p: Packet) -> Decoded:
    """0xA7: an address query located by a 4G LBS block; the phone number follows."""
    cell, pos = read_lbs(p.body, 0, wide=True)
    p.add_lbs(cell)
    phone = p.body[pos + 1:pos + 22]
    return p.decoded("address", p.report(), replies.address_reply(p.frame.serial, phone))


def long_heartbeat(p: Packet) -> None:
    """0x13 of OBD firmware (11+ bytes): terminal info, signal WORD, alarm, language, battery %,
    working mode, voltage WORD (1/100 V), then model-specific counters (ignored)."""
    body = p.body
    state, info_alarms, bits = terminal_info(body[0])
    p.status.update(state)
    p.alarms.extend(info_alarms)
    p.raw_alarms.update(gt06_info_alarm=bits, gt06_status_code=body[3])
    p.extras["language"] = body[4]
    p.status["battery_percent"] = body[5]
    p.status["power_v"] = int.from_bytes(body[7:9], "big") / 100
    if len(body) in (14, 16):  # these two forms end in a temperature, 1/10 degree, bit 15 = minus
        temp = int.from_bytes(body[-2:], "big")
        p.extras["temp1"] = (-(temp & 0x7FFF) if temp & 0x8000 else temp) / 10


def _driver_location(p: Packet) -> Decoded:
    """0x61: IMEI, GPS block, LBS with a 4-byte cell ID, a reserved WORD, driver ID DWORD."""
    body = p.body
    need(body, 0, 45 - 4, "0x61 location")
    time, fix, state, pos = read_gps(body, 8, p.utc_offset)
    p.status.update(state)
    cell, pos = read_lbs(body, pos, cell_bytes=4)
    p.add_lbs(cell)
    need(body, pos, 6, "0x61 driver")
    driver = int.from_bytes(body[pos + 2:pos + 6], "big")
    if driver:
        p.extras["driver_id"] = str(driver)
    return p.decoded("location", p.report(time, fix))


def _timed_modules(p: Packet) -> Decoded:
    """0xF1: UNIX time DWORD, then modules (type WORD, length BYTE, data); 0x0005 = external
    voltage in 1/100 V. Other modules are kept raw."""
    body = p.body
    need(body, 0, 4, "0xF1 time")
    time = datetime.fromtimestamp(int.from_bytes(body[:4], "big"), timezone.utc)
    pos = 4
    while pos + 3 <= len(body):
        kind, size = int.from_bytes(body[pos:pos + 2], "big"), body[pos + 2]
        data = body[pos + 3:pos + 3 + size]
        pos += 3 + size
        if kind == 0x0005 and size == 2:
            p.status["power_v"] = int.from_bytes(data, "big") / 100
        else:
            p.extras.setdefault("modules", {})[f"{kind:04x}"] = data.hex()
    return p.decoded("status", p.report(time))


def _cells_or_gps(p: Packet) -> Decoded:
    if p.protocol == 0xA2 and len(p.body) == 59:
        return _lw4g_status(p)
    if p.protocol == 0x24 and len(p.body) == 41:
        return _sr411_location(p)
    return cells.cell_list(p)


def _wifi_or_rfid(p: Packet) -> Decoded:
    if p.protocol == 0x17 and p.frame.length_ok and len(p.body) == 35:
        return _rfid_location(p)
    return cells.wifi_scan(p)


HANDLERS: dict[int, Handler] = {
    **dict.fromkeys((0x18, 0x24, 0x28, 0x2C, 0x2E, 0xA1, 0xA2), _cells_or_gps),
    **dict.fromkeys((0x17, 0x69), _wifi_or_rfid),
    **dict.fromkeys((0x38, 0xA3), _gps_first),
    **dict.fromkeys((0x32, 0x33), _az735),
    0xF3: cells.wifi_list,
    0xF1: _timed_modules,
    0x61: _driver_location,
    0x34: _x1_location,
    0x36: _status_2,
    0x70: _modular,
    0x8C: _obd,
    0x95: _jc_alarm,
    0x9B: _serial_data,
    0xA7: _lbs_address,
}
