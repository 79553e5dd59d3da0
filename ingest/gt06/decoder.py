"""GT06 packet decoder: one ``Frame`` -> ``Decoded`` (a canonical Report and/or the reply to send).

Owns the packets the brief documents (gt06.md §3-§5): login 0x01, locations 0x10/0x11/0x12/0x22/
0xA0 (+0x1E/0x37), status 0x13/0x23, alarms 0x16/0x26/0x27/0xA4 and LBS alarms 0x19/0xA5, address
queries 0x1A/0x2A, time requests 0x8A, and dispatches the rest: command replies and 0x94 to
``messages``, cell/WiFi lists to ``cells``, vendor forms to ``variants`` and ``location_forms``.
Pure: no I/O, no clock of its own (``now`` is passed in), no session state beyond the
``TerminalContext`` it is given. A body that does not fit raises ``DecodeError``.

Time: the "classic" packets (v1.8 numbering) carry local time per the terminal's time zone (from
its login, else the server default); the new numbering (0x22 and up) is UTC (gt06.md §4.1, §10).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from ingest.gt06 import location_forms, messages, replies, variants
from ingest.gt06.blocks import DecodeError, need, read_gps, read_lbs, terminal_info
from ingest.gt06.framing import Frame
from ingest.gt06.packet import Decoded, Handler, Login, Packet, TerminalContext

# Locations whose GPS block is followed by a plain LBS block (gt06.md §5.1, §5.2; 0x11: 4-byte cell ID).
LBS_FOLLOWS = frozenset({0x11, 0x12, 0x22, 0xA0, 0x31, 0x37})

__all__ = ["DecodeError", "Decoded", "Login", "TerminalContext", "decode", "decode_login"]


def decode_login(frame: Frame) -> Login:
    """0x01: BCD IMEI (15 digits after the pad nibble), then type code and time-zone word if present."""
    body = frame.body
    need(body, 0, 8, "login IMEI")
    digits = body[:8].hex()
    if not digits.isdigit():
        raise DecodeError(f"login IMEI {digits} is not BCD")
    imei = digits[1:]
    if len(body) < 12:
        return Login(imei)
    type_code = int.from_bytes(body[8:10], "big")
    word = int.from_bytes(body[10:12], "big")
    hhmm = word >> 4
    minutes = (hhmm // 100) * 60 + hhmm % 100
    offset = timedelta(minutes=-minutes if word & 0x08 else minutes)
    if abs(offset) > timedelta(hours=14):
        offset = None  # not a time zone: ignore it rather than shift every timestamp
    return Login(imei, type_code, offset, word & 0x03)


def _location(p: Packet) -> Decoded:
    body, proto = p.body, p.protocol
    start = 8 if proto == 0x12 and _has_imei_prefix(body) else 0
    time, fix, state, pos = read_gps(body, start, p.utc_offset)
    p.status.update(state)
    form = location_forms.LOCATION_FORMS.get((proto, len(body)))
    if form is not None:
        form(p, pos)
        if "altitude" in p.extras:
            fix = replace(fix, altitude=float(p.extras.pop("altitude")))
    elif proto in LBS_FOLLOWS and len(body) >= pos + 8:
        cell, pos = read_lbs(body, pos, wide=proto == 0xA0, cell_bytes=4 if proto == 0x11 else None)
        p.add_lbs(cell)
        if proto != 0x12 and len(body) >= pos + 3:  # ACC, upload mode, re-upload (gt06.md §5.2)
            p.status["acc"] = body[pos] > 0
            p.extras["upload_mode"] = body[pos + 1]
            p.extras["reupload"] = body[pos + 2] > 0
            if proto in (0x22, 0xA0) and len(body) == pos + 7:
                p.extras["mileage"] = int.from_bytes(body[pos + 3:pos + 7], "big")
    return p.decoded("location", p.report(time, fix))


def _has_imei_prefix(body: bytes) -> bool:
    """Firmware that puts the IMEI (BCD, pad nibble 0) before the GPS block of 0x12 (gt06.md §5.1)."""
    return len(body) >= 34 and body[0] < 0x10 and body[:8].hex().isdigit()


def _status(p: Packet) -> Decoded:
    body = p.body
    if p.protocol == 0x23 and len(body) >= 6:  # GK310 heartbeat: 2-byte battery voltage
        state, info_alarms, bits = terminal_info(body[0])
        p.status.update(state)
        p.status["battery_v"] = int.from_bytes(body[1:3], "big") / 100
        p.status["gsm_signal"] = body[3]
        p.raw_alarms["gt06_info_alarm"] = bits
        p.alarms.extend(info_alarms)
    elif p.protocol == 0x13 and len(body) >= 11:
        variants.long_heartbeat(p)
    else:
        p.read_status(0, with_alarm=False)
        if len(body) >= 5:
            # In a heartbeat the first byte is an "alarm status for fence projects" (gt06.md §4.3):
            # kept raw, not raised; heartbeat alarms come from the terminal-information bits.
            p.raw_alarms["gt06_status_code"] = body[3]
            p.extras["language"] = body[4]
    return p.decoded("status", p.report(), p.ack())


def _alarm(p: Packet) -> Decoded:
    body, proto = p.body, p.protocol
    time = fix = None
    pos = 0
    if proto not in (0x19, 0xA5):
        time, fix, state, pos = read_gps(body, 0, p.utc_offset)
        p.status.update(state)
    wide = proto in (0xA4, 0xA5)
    fence = 1 if proto in (0x27, 0xA4) else 0
    if proto in (0x19, 0xA5):
        if proto == 0x19 and len(body) != 13:
            return p.decoded("ignored")  # multi-cell forms share 0x19; only the documented one is read
        cell, pos = read_lbs(body, pos, wide=wide)
        p.add_lbs(cell)
    elif proto == 0x16 and len(body) == 31:
        # VXT01 firmware: no LBS length byte and a 2-byte power instead of voltage level + GSM.
        cell, pos = read_lbs(body, pos)
        p.add_lbs(cell)
        state, info_alarms, bits = terminal_info(body[pos])
        p.status.update(state)
        p.status["power_v"] = int.from_bytes(body[pos + 1:pos + 3], "big") / 100
        p.status["gsm_signal"] = body[pos + 3]
        p.raw_alarms["gt06_info_alarm"] = bits
        p.alarms.extend(info_alarms)
        return p.decoded("alarm", p.report(time, fix), p.ack())
    else:
        pos = _alarm_lbs(p, pos, wide, tail=5 + fence)
    pos = p.read_status(pos)
    if fence and len(body) > pos:
        p.extras["fence"] = body[pos]
    elif len(body) == pos + 8 and any(body[pos:]):
        p.extras["driver_id"] = body[pos:].hex()  # VL103 firmware appends the driver's RFID card
    return p.decoded("alarm", p.report(time, fix), p.ack())


def _alarm_lbs(p: Packet, pos: int, wide: bool, tail: int) -> int:
    """LBS length byte + LBS block of the alarm packets; returns where the status block starts.

    The length byte counts itself (normally 9), but firmware also sends 8 for the same 8-byte block,
    so the block is always read whole and only a larger length skips extra bytes. Length 0 means no
    LBS, possibly followed by zero padding: the status block is then the tail of the body.
    """
    body = p.body
    need(body, pos, 1, "LBS length")
    lbs_len = body[pos]
    pos += 1
    if lbs_len == 0:
        return max(pos, len(body) - tail)
    need(body, pos, 2, "LBS block")
    mnc_size = 2 if body[pos] & 0x80 else 1
    lac_size, cid_size = (4, 8) if wide else (2, 3)
    standard = 2 + mnc_size + lac_size + cid_size
    region = max(lbs_len - 1, standard)
    if region == standard and len(body) == pos + standard + 1 + tail:
        cid_size += 1  # a 4-byte cell ID under an unchanged length byte (SEEWORLD firmware)
        region += 1
    cell, _ = read_lbs(body, pos, wide=wide, cell_bytes=cid_size)
    if cell["mcc"] or cell["cell_id"]:
        p.add_lbs(cell)
    return pos + region


def _address_query(p: Packet) -> Decoded:
    """0x1A/0x2A: a phone user asked for the terminal's address; its GPS block is a position too."""
    time, fix, state, pos = read_gps(p.body, 0, p.utc_offset)
    p.status.update(state)
    phone = p.body[pos:pos + 21]
    p.extras["phone"] = phone.rstrip(b"\x00").decode("ascii", "replace")
    if len(p.body) >= pos + 23:
        p.read_alarm(pos + 21)
    return p.decoded("address", p.report(time, fix), replies.address_reply(p.frame.serial, phone))


def _time_request(p: Packet) -> Decoded:
    return p.decoded("time", reply=replies.time_calibration(p.frame.serial, p.now))


HANDLERS: dict[int, Handler] = {
    **messages.HANDLERS,
    **variants.HANDLERS,
    **dict.fromkeys((0x10, 0x11, 0x12, 0x22, 0xA0, 0x1E, 0x31, 0x37), _location),
    **dict.fromkeys((0x13, 0x23), _status),
    **dict.fromkeys((0x16, 0x26, 0x27, 0x19, 0xA4, 0xA5), _alarm),
    **dict.fromkeys((0x1A, 0x2A), _address_query),
    0x8A: _time_request,
}


def decode(frame: Frame, ctx: TerminalContext, now: datetime) -> Decoded:
    """Decode one frame of a logged-in terminal. Raises ``DecodeError`` on a malformed body."""
    proto = frame.protocol
    if proto == replies.LOGIN:
        login = decode_login(frame)
        return Decoded(proto, frame.serial, "login", login=login, reply=replies.ack(proto, frame.serial))
    handler = HANDLERS.get(proto)
    if handler is None:
        return Decoded(proto, frame.serial, "ignored")
    try:
        return handler(Packet(frame, frame.body, ctx, now, proto))
    except (IndexError, UnicodeDecodeError, OverflowError) as exc:  # defensive: a short body
        raise DecodeError(f"protocol 0x{proto:02X}: {exc}") from None

