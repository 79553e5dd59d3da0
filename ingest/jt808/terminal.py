"""The terminal's side of JT/T 808: building what a vehicle terminal sends (0x0100, 0x0102,
0x0200 bodies, 0x0704, 0x0001) and reading what the platform answers.

Used by the fleet simulator and by tests that need frames beyond the captured ones. Coordinates
are written the standard way: unsigned degrees x 10^6 with the hemisphere in status bits 2/3,
time as BCD in Beijing time (GMT+8).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from ingest.jt808 import messages as m
from ingest.jt808.codec import build_packet, encode_phone

_BEIJING = timedelta(hours=8)
STATUS_ACC = 0x1
STATUS_FIX = 0x2
STATUS_SOUTH = 0x4
STATUS_WEST = 0x8


@lru_cache(maxsize=64)  # the simulator sends many reports per second of BCD time
def bcd_time(time: datetime) -> bytes:
    local = time.astimezone(timezone.utc) + _BEIJING
    return bytes.fromhex(local.strftime("%y%m%d%H%M%S"))


def location_body(
    *,
    lat: float,
    lon: float,
    time: datetime,
    alarm: int = 0,
    status: int = STATUS_ACC | STATUS_FIX,
    altitude: int = 0,
    speed_kmh: float = 0.0,
    course: int = 0,
    items: Sequence[tuple[int, bytes]] | None = None,
) -> bytes:
    """A 0x0200 body; the hemisphere bits of ``status`` are set from the signs of lat/lon."""
    status &= ~(STATUS_SOUTH | STATUS_WEST)
    if lat < 0:
        status |= STATUS_SOUTH
    if lon < 0:
        status |= STATUS_WEST
    body = struct.pack(
        ">IIIIhHH", alarm, status, round(abs(lat) * 1e6), round(abs(lon) * 1e6), altitude,
        round(speed_kmh * 10), course,
    ) + bcd_time(time)
    for item_id, value in items or ():
        body += bytes((item_id, len(value))) + value
    return body


def registration_body(
    *,
    is_2019: bool,
    province: int = 0,
    city: int = 0,
    manufacturer: str = "WLSIM",
    model: str = "SIM-1",
    terminal_code: str = "0000001",
    plate_colour: int = 1,
    plate: str = "",
) -> bytes:
    widths = (11, 30, 30) if is_2019 else (5, 20, 7)
    fields = (manufacturer, model, terminal_code)
    body = struct.pack(">HH", province, city)
    for text, width in zip(fields, widths, strict=True):
        raw = text.encode("gbk")[:width]
        body += raw + bytes(width - len(raw))
    return body + bytes((plate_colour,)) + plate.encode("gbk")


def authentication_body(auth_code: str, *, is_2019: bool, imei: str = "", software: str = "") -> bytes:
    code = auth_code.encode("gbk")
    if not is_2019:
        return code
    imei_raw = imei.encode("ascii")[:15].ljust(15, b"\x00")
    software_raw = software.encode("ascii")[:20].ljust(20, b"\x00")
    return bytes((len(code),)) + code + imei_raw + software_raw


def batch_body(bodies: list[bytes], data_type: int = 0) -> bytes:
    out = struct.pack(">HB", len(bodies), data_type)
    for body in bodies:
        out += struct.pack(">H", len(body)) + body
    return out


@dataclass
class TerminalIdentity:
    """One simulated terminal's header fields and its own serial counter."""

    phone: str
    is_2019: bool = False
    version: int = 1
    serial: int = 0

    def __post_init__(self) -> None:
        self.phone_bcd = encode_phone(self.phone, self.is_2019)

    def next_serial(self) -> int:
        serial = self.serial
        self.serial = (serial + 1) & 0xFFFF
        return serial

    def packet(self, msg_id: int, body: bytes, serial: int | None = None) -> bytes:
        return build_packet(
            msg_id,
            body,
            phone_bcd=self.phone_bcd,
            serial=self.next_serial() if serial is None else serial,
            version=self.version if self.is_2019 else None,
        )

    def response(self, reply_serial: int, reply_id: int, result: int = m.RESULT_OK) -> bytes:
        return self.packet(m.TERMINAL_RESPONSE, m.platform_response(reply_serial, reply_id, result))
