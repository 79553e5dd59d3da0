"""Jointech electronic locks (JT701 family) speaking their JT/T 808 dialect: 0x5501 location and
0x5502 blind-area (stored) location, with a one-byte serial and a Jointech position block.

The header is JT/T 808's 2013 header except that the serial is one byte (and the attribute
word's high bits are Jointech flags, bit 15 asking for an answer), so ``codec.parse_packet``
rejects these frames; ``parse_frame`` reads them instead. The position block is Jointech's:
BCD day-month-year time (UTC), BCD degrees-and-minutes coordinates with the hemispheres in a
flags nibble, BCD speed in knots, course / 2; then signal, satellites, odometer (km), battery,
cell, product type, status and alarm WORDs, and (id, length, value) items (altitude, lock
events, tilt). Names follow Traccar's reading of the same devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from alarms.report import Fix, Report
from ingest.jt808.codec import MalformedPacket, PacketError
from ingest.jt808.fields import FieldError, Found, need, report, s16, u16, u32
from ingest.jt808.framing import wrap, xor_check
from ingest.jt808.messages import BodyError
from ingest.jt808.vendor_locks import lock_command

LOCATION = 0x5501
BLIND_LOCATION = 0x5502
MESSAGES = frozenset({LOCATION, BLIND_LOCATION})
ANSWER = 0x4401  # Jointech's general answer: answered message id WORD + result BYTE
_HEADER = 11  # id, attributes, phone BCD[6], serial BYTE
_POSITION = 35


class JointechCheckCode(PacketError):
    def __init__(self, message: str, packet: JointechPacket) -> None:
        super().__init__(message)
        self.packet = packet


@dataclass(frozen=True, slots=True)
class JointechPacket:
    msg_id: int
    attrs: int
    phone_bcd: bytes
    serial: int
    body: bytes

    @property
    def phone(self) -> str:
        return self.phone_bcd.hex()

    @property
    def wants_answer(self) -> bool:
        return bool(self.attrs & 0x8000)


def is_jointech(frame: bytes) -> bool:
    return len(frame) >= 2 and int.from_bytes(frame[:2], "big") in MESSAGES


def parse_frame(frame: bytes, *, verify_checksum: bool = True) -> JointechPacket:
    """An un-escaped 0x5501/0x5502 frame -> JointechPacket. Raises MalformedPacket, or
    JointechCheckCode (carrying the packet) when the XOR check code is wrong."""
    if not is_jointech(frame) or len(frame) < _HEADER + 1:
        raise MalformedPacket("not a Jointech 0x5501/0x5502 frame")
    attrs = u16(frame, 2)
    size = attrs & 0x03FF
    if _HEADER + size + 1 != len(frame):
        raise MalformedPacket(f"Jointech body length {size} does not fit a frame of {len(frame)} bytes")
    packet = JointechPacket(u16(frame), attrs, frame[4:10], frame[10], frame[_HEADER:-1])
    if verify_checksum and xor_check(frame[:-1]) != frame[-1]:
        raise JointechCheckCode(f"check code mismatch on Jointech msg 0x{packet.msg_id:04X}", packet)
    return packet


def answer(packet: JointechPacket, result: int = 0) -> bytes | None:
    """The 0x4401 frame to send back, when the terminal asked for one (attribute bit 15).
    ``result`` 0 is success; the server answers others (as 0x8001 results) for refused frames."""
    if not packet.wants_answer:
        return None
    body = packet.msg_id.to_bytes(2, "big") + bytes((result,))
    return wrap(ANSWER.to_bytes(2, "big") + len(body).to_bytes(2, "big") + packet.phone_bcd + b"\x01" + body)


def decode_jointech(
    packet: JointechPacket, *, terminal_id: str, received_at: datetime | None = None,
) -> list[Report]:
    """A 0x5501/0x5502 packet -> [Report]. Raises ``BodyError`` when the body does not fit."""
    try:
        return _decode(packet, terminal_id, received_at)
    except BodyError:
        raise
    except (ValueError, IndexError) as exc:
        raise FieldError(f"Jointech msg 0x{packet.msg_id:04X}: {exc}") from None


def _decode(packet: JointechPacket, terminal_id: str, received_at: datetime | None) -> list[Report]:
    body = packet.body
    need(body, 0, _POSITION, "Jointech position")
    extras: dict[str, Any] = {}
    found = Found(extras)
    time, fix = _position(body, blind=packet.msg_id == BLIND_LOCATION)
    extras["rssi"] = body[17]
    satellites = body[18]
    extras["odometer"] = u32(body, 19) * 1000
    battery = body[23]
    if battery <= 100:
        extras["battery_level"] = battery
    elif battery in (0xAA, 0xAB):
        extras["charge"] = True
    cell_id, lac = u32(body, 24), u16(body, 28)
    if cell_id and lac:
        extras["cells"] = [{"lac": lac, "cell_id": cell_id}]  # the network (MCC/MNC) is not sent
    product, status, alarm = body[30], u16(body, 31), u16(body, 33)
    extras["status"] = status
    if product in (1, 2) and alarm & 1:
        found.alarm("low_power")
    elif product == 3:
        extras["blocked"] = bool(status & 0x20)
        for bit, name in ((0, "overspeed"), (1, "low_power"), (2, "vibration"), (3, "low_battery"),
                          (5, "geofence_enter"), (6, "geofence_exit")):
            if alarm >> bit & 1:
                found.alarm(name)
    altitude = _items(body, _POSITION, found)
    fix = Fix(fix.lat, fix.lon, altitude, fix.speed_kmh, fix.course, fix.valid, satellites)
    return [report(terminal_id=terminal_id, serial=packet.serial, received_at=received_at, time=time,
                   fix=fix, alarms=found.alarms, extras=extras)]


def _bcd(raw: bytes) -> int:
    digits = raw.hex()
    if not digits.isdigit():
        raise FieldError(f"not BCD: {digits}")
    return int(digits)


def _position(body: bytes, *, blind: bool) -> tuple[datetime | None, Fix]:
    day, month, year, hour, minute, second = (_bcd(body[n:n + 1]) for n in range(6))
    try:
        time: datetime | None = datetime(2000 + year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        time = None
    lat_raw = _bcd(body[6:10])  # DDMMmmmm
    if body[14] >> 4 > 9:
        raise FieldError(f"not BCD: {body[14]:02x}")
    lon_raw = _bcd(body[10:14]) * 10 + (body[14] >> 4)  # DDDMMmmmm; the low nibble is flags
    flags = body[14] & 0x0F
    lat = lat_raw // 1_000_000 + (lat_raw % 1_000_000) / 10000 / 60
    lon = lon_raw // 1_000_000 + (lon_raw % 1_000_000) / 10000 / 60
    if not flags & 0x2:
        lat = -lat
    if not flags & 0x4:
        lon = -lon
    knots = _bcd(body[15:16])
    # A blind-area report is a stored fix: Jointech marks it invalid whatever its flags say.
    return time, Fix(lat, lon, 0.0, knots * 1.852, body[16] * 2.0, not blind)


def _items(body: bytes, pos: int, found: Found) -> float:
    """The trailing (id, length, value) items; returns the altitude (item 0x02), else 0."""
    altitude = 0.0
    while pos + 2 <= len(body):
        item_id, size = body[pos], body[pos + 1]
        value = body[pos + 2:pos + 2 + size]
        pos += 2 + size
        if len(value) < size:
            found.extras.setdefault("item_problems", []).append(f"item 0x{item_id:02X} runs past the body")
            break
        if item_id == 0x02 and size == 2:
            altitude = float(s16(value))
        elif item_id == 0x10 and size == 1:
            found.extras["wake_source"] = value[0]
        elif item_id == 0x0B:
            lock_command(value, found)  # as in the 0x0200 item 0x0B
        elif item_id == 0x0C and size == 6:
            axes = [u16(value, 2 * n) for n in range(3)]
            found.extras["tilt"] = "[" + ",".join(str(a - 0x10000 if a > 0x8000 else a) for a in axes) + "]"
        elif item_id == 0xFC and size == 1:
            found.extras["geofence"] = value[0]
    return altitude

