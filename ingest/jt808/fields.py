"""Small pieces shared by the JT/T 808 decoders beyond the 0x0200 body (vendor items,
pass-through, Jointech, other report-carrying messages): field readers, ``Found`` (what a vendor
decoder learnt about one report) and ``report`` (a Report from such a message).

Vendor layouts are read the way the device families send them: big-endian integers, text as
Latin-1 (a byte is one character, so nothing is lost on a stray high byte), Java-style trimming
of control characters.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from alarms.report import Fix, Report
from ingest.jt808.messages import BodyError

U16 = struct.Struct(">H")
S16 = struct.Struct(">h")
U32 = struct.Struct(">I")
BEIJING = timedelta(hours=8)  # JT/T 808 BCD times are GMT+8
_CONTROL = "".join(chr(c) for c in range(33))  # what Java's String.trim() strips


class FieldError(BodyError):
    """A vendor value that does not fit its layout."""


def need(data: bytes, pos: int, size: int, what: str) -> None:
    if pos + size > len(data):
        raise FieldError(f"{what}: needs {size} bytes at offset {pos}, {len(data)} in all")


def u16(data: bytes, pos: int = 0) -> int:
    need(data, pos, 2, "word")
    return U16.unpack_from(data, pos)[0]


def s16(data: bytes, pos: int = 0) -> int:
    need(data, pos, 2, "signed word")
    return S16.unpack_from(data, pos)[0]


def u32(data: bytes, pos: int = 0) -> int:
    need(data, pos, 4, "dword")
    return U32.unpack_from(data, pos)[0]


def byte(data: bytes, pos: int = 0) -> int:
    need(data, pos, 1, "byte")
    return data[pos]


def signed_byte(data: bytes, pos: int = 0) -> int:
    value = byte(data, pos)
    return value - 256 if value > 127 else value


def text(data: bytes) -> str:
    return data.decode("latin-1")


def trimmed(data: bytes) -> str:
    return data.decode("latin-1").strip(_CONTROL)


def is_printable(data: bytes) -> bool:
    return bool(data) and all(0x20 <= b <= 0x7E for b in data)


def bcd_time(raw: bytes, offset: timedelta = BEIJING) -> datetime | None:
    """BCD YYMMDDhhmmss in local time ``offset`` -> UTC, or None when not a real time."""
    digits = raw.hex()
    if len(digits) != 12 or not digits.isdigit():
        return None
    try:
        local = datetime(2000 + int(digits[0:2]), int(digits[2:4]), int(digits[4:6]),
                         int(digits[6:8]), int(digits[8:10]), int(digits[10:12]), tzinfo=timezone.utc)
    except ValueError:
        return None
    return local - offset


def cell(mcc: int, mnc: int, lac: int, cell_id: int, rssi: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"mcc": mcc, "mnc": mnc, "lac": lac, "cell_id": cell_id}
    if rssi is not None:
        entry["rssi"] = rssi
    return entry


def mac(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


@dataclass(slots=True)
class Found:
    """What vendor decoding adds to one report: extras (written in place), alarms in the order
    found (canonical names: snake_case of Traccar's vocabulary), cells and WiFi heard."""

    extras: dict[str, Any]
    model: str | None = None
    alarms: list[str] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    wifi: list[dict[str, Any]] = field(default_factory=list)

    def alarm(self, name: str) -> None:
        if name not in self.alarms:
            self.alarms.append(name)

    def finish(self) -> None:
        """Move the cells and WiFi networks into the extras."""
        if self.cells:
            self.extras["cells"] = self.extras.get("cells", []) + self.cells
            self.cells = []
        if self.wifi:
            self.extras["wifi"] = self.extras.get("wifi", []) + self.wifi
            self.wifi = []


def report(
    *,
    terminal_id: str,
    serial: int,
    received_at: datetime | None,
    time: datetime | None = None,
    fix: Fix | None = None,
    status: dict[str, Any] | None = None,
    alarms: list[str] | tuple[str, ...] = (),
    extras: dict[str, Any] | None = None,
    raw_alarms: dict[str, Any] | None = None,
) -> Report:
    """A jt808 Report for a message other than a plain 0x0200. Without a device time the report
    is timed at reception (a status or text message that carries none)."""
    received_at = received_at or datetime.now(timezone.utc)
    return Report(
        protocol="jt808",
        terminal_id=terminal_id,
        time=time or received_at,
        fix=fix,
        status=status or {},
        raw_alarms={"jt808_serial": serial, **(raw_alarms or {})},
        alarms=tuple(alarms),
        extras=extras or {},
        received_at=received_at,
    )
