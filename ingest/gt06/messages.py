"""GT06 text and information packets: command replies 0x15/0x21 and information transfer 0x94.

Command replies answer a 0x80 online command (gt06.md §5.6) and are matched to the waiting
command by ``ingest.gt06.sessions``; a reply that carries facts about the terminal (an ICCID, a
"Current position!" text) also yields a Report. 0x94 carries one sub-type of terminal information
(external voltage, ICCID, door, ...); it needs no reply.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from alarms.report import Fix
from ingest.gt06.blocks import DecodeError, need, read_time
from ingest.gt06.packet import CommandReply, Decoded, Handler, Packet

_ICCID = re.compile(r"<ICCID:(\d{19,20})")
_POSITION = re.compile(
    r"Current position!\s*Lat:([NS])(\d+\.\d+),\s*Lon:([EW])(\d+\.\d+),\s*Course:(\d+\.\d+),\s*"
    r"Speed:(\d+\.\d+),\s*DateTime:(\d{4}-\d\d-\d\d +\d\d:\d\d:\d\d)")


def _text(data: bytes, encoding: str = "ascii") -> str:
    return data.decode(encoding, "replace").replace("\x00", "").strip()


def _command_reply(p: Packet, flag: int, text: str) -> Decoded:
    reply = CommandReply(flag, text)
    match = _ICCID.search(text)
    if match:
        p.extras["iccid"] = match.group(1)
        return p.decoded("command_reply", p.report(), command_reply=reply)
    match = _POSITION.search(text)
    if match:
        ns, lat, ew, lon, course, speed, when = match.groups()
        fix = Fix(lat=float(lat) * (-1 if ns == "S" else 1), lon=float(lon) * (-1 if ew == "W" else 1),
                  course=float(course), speed_kmh=float(speed), valid=True)
        try:
            time = datetime.strptime(" ".join(when.split()), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        except ValueError:
            time = p.now
        return p.decoded("command_reply", p.report(time, fix), command_reply=reply)
    return p.decoded("command_reply", command_reply=reply)


def _string_reply(p: Packet) -> Decoded:
    """0x15: command length BYTE, server flag DWORD, ASCII text, [language WORD]."""
    body = p.body
    need(body, 0, 5, "0x15 reply")
    length = body[0]
    flag = int.from_bytes(body[1:5], "big")
    if 4 <= length <= len(body) - 1:
        text = body[5:1 + length]
    else:  # firmware that leaves the length at 0: the text runs to the language word
        text = body[5:-2] if len(body) >= 7 and body[-2] == 0 and body[-1] in (1, 2) else body[5:]
    return _command_reply(p, flag, _text(text))


def _string_info(p: Packet) -> Decoded:
    """0x21 (``79 79``): server flag DWORD, encoding BYTE (1 ASCII, 2 UTF-16BE), text."""
    body = p.body
    need(body, 0, 5, "0x21 reply")
    flag = int.from_bytes(body[0:4], "big")
    encoding = "utf-16-be" if body[4] == 2 else "ascii"
    data = body[5:]
    if encoding == "utf-16-be" and len(data) % 2:
        data = data[:-1]
    return _command_reply(p, flag, _text(data, encoding))


def _info(p: Packet) -> Decoded:
    """0x94 information transfer: sub-type BYTE + data (gt06.md §2)."""
    body = p.body
    if not p.frame.extended and len(body) == 2:
        # The short 78 78 form carries the external voltage alone (as traccar reads it).
        p.status["power_v"] = int.from_bytes(body, "big", signed=True) / 100
        return p.decoded("info", p.report())
    need(body, 0, 1, "0x94 sub-type")
    sub, data = body[0], body[1:]
    p.extras["info_type"] = sub
    if sub == 0x00 and len(data) >= 2:
        p.status["power_v"] = int.from_bytes(data[:2], "big") / 100
    elif sub == 0x04:  # terminal status sync: "ALM1=C5;ALM2=CC;STA1=C0;DYD=01;SOS=...;..."
        pairs = (item.split("=", 1) for item in _text(data).split(";") if "=" in item)
        p.extras["status_sync"] = {key.strip(): value.strip() for key, value in pairs}
    elif sub == 0x05 and data:  # door status, optionally after a 6-byte time
        flags = data[6] if len(data) >= 7 else data[0]
        p.status["door"] = bool(flags & 0x01)
        p.status["input1"] = bool(flags & 0x04)
    elif sub == 0x0A and len(data) >= 26:  # IMEI 8, IMSI 8, ICCID 10 (BCD, F-padded)
        p.extras["imsi"] = data[8:16].hex()[1:].rstrip("f")
        p.extras["iccid"] = data[16:26].hex().replace("f", "")
    elif sub == 0x0B and len(data) == 1:
        p.extras["network_technology"] = "4G" if data[0] else "2G"
    elif sub == 0x0B and len(data) == 2:  # the 2-byte form carries a voltage, 1/100 V
        p.status["power_v"] = int.from_bytes(data, "big") / 100
    elif sub == 0x1E and len(data) == 8:  # temperature and humidity sensor, 1/10 units each
        p.extras["temp1"] = int.from_bytes(data[:4], "big", signed=True) / 10
        p.extras["humidity"] = int.from_bytes(data[4:], "big") / 10
    elif sub == 0x0D:  # fuel sensor sentence "!AIOIL,...", optionally after a 6-byte time
        start = data.find(b"!")
        if 0 < start:
            try:
                p.extras["sensor_time"] = read_time(data, 0, p.utc_offset).isoformat()
            except DecodeError:
                pass
        p.extras["sensor_text"] = _text(data[max(start, 0):])
    elif sub == 0x1B and data:  # RFID / serial peripheral
        if chr(data[0]).isalpha():
            p.extras["serial_data"] = _text(data)
        elif len(data) >= 6:
            p.extras["driver_id"] = data[2:6].hex()
    else:
        p.extras["info_data"] = data.hex()
    return p.decoded("info", p.report())


HANDLERS: dict[int, Handler] = {0x15: _string_reply, 0x21: _string_info, 0x94: _info}
