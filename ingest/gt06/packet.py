"""The shared vocabulary of the GT06 decoder: what a packet handler reads and what it returns.

``Packet`` carries one frame's body plus the terminal's context and accumulates status, extras and
alarms while a handler reads blocks; ``Decoded`` is the handler's answer (a canonical Report and/or
the bytes to send back). Handlers live in ``decoder`` (documented packets), ``messages`` (text and
information packets) and ``variants`` (vendor forms).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alarms.report import Fix, Report
from ingest.gt06 import replies
from ingest.gt06.blocks import (
    ACC_EVENT_CODES,
    alarm_names,
    merge_alarms,
    need,
    terminal_info,
    voltage_fields,
)
from ingest.gt06.framing import Frame

# v1.8 protocol numbers whose GPS time is the terminal's local time.
CLASSIC_TIME = frozenset({0x10, 0x11, 0x12, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1E})


@dataclass(frozen=True)
class TerminalContext:
    imei: str
    utc_offset: timedelta = timedelta(0)  # local time of classic packets = UTC + utc_offset


@dataclass(frozen=True)
class Login:
    imei: str
    type_code: int | None = None
    utc_offset: timedelta | None = None  # from the time-zone word, when the login carries one
    language: int | None = None


@dataclass(frozen=True)
class CommandReply:
    server_flag: int
    text: str


@dataclass(frozen=True)
class Decoded:
    protocol: int
    serial: int
    kind: str  # login | location | status | alarm | info | command_reply | time | address | ignored
    report: Report | None = None
    login: Login | None = None
    command_reply: CommandReply | None = None
    reply: bytes | None = None  # sent after the report (if any) is accepted by the sink


@dataclass
class Packet:
    """What a packet handler works on."""

    frame: Frame
    body: bytes
    ctx: TerminalContext
    now: datetime
    protocol: int
    status: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    raw_alarms: dict[str, Any] = field(default_factory=dict)
    alarms: list[str] = field(default_factory=list)

    @property
    def utc_offset(self) -> timedelta:
        return self.ctx.utc_offset if self.protocol in CLASSIC_TIME else timedelta(0)

    def report(self, time: datetime | None = None, fix: Fix | None = None) -> Report:
        raw = {"gt06_protocol": self.protocol, **self.raw_alarms}
        return Report(protocol="gt06", terminal_id=self.ctx.imei, time=time or self.now, fix=fix,
                      status=self.status, raw_alarms=raw, alarms=merge_alarms(self.alarms),
                      extras=self.extras, received_at=self.now)

    def decoded(self, kind: str, report: Report | None = None, reply: bytes | None = None,
                **kw: Any) -> Decoded:
        return Decoded(self.protocol, self.frame.serial, kind, report=report, reply=reply, **kw)

    def ack(self) -> bytes:
        return replies.ack(self.protocol, self.frame.serial)

    def read_status(self, offset: int, *, with_alarm: bool = True) -> int:
        """Terminal info, voltage, GSM (+ alarm/language): gt06.md §4.3. Returns the next offset."""
        need(self.body, offset, 5 if with_alarm else 3, "status block")
        state, info_alarms, bits = terminal_info(self.body[offset])
        self.status.update(state)
        self.status.update(voltage_fields(self.body[offset + 1]))
        self.status["gsm_signal"] = self.body[offset + 2]
        self.raw_alarms["gt06_info_alarm"] = bits
        self.alarms.extend(info_alarms)
        if not with_alarm:
            return offset + 3
        self.read_alarm(offset + 3)
        return offset + 5

    def read_alarm(self, offset: int) -> None:
        """Alarm/language pair (gt06.md §4.6): canonical alarm, or ACC state for 0xFE/0xFF."""
        need(self.body, offset, 2, "alarm/language")
        code, language = self.body[offset], self.body[offset + 1]
        self.raw_alarms["gt06_code"] = code
        self.extras["language"] = language
        if code in ACC_EVENT_CODES:
            self.status["acc"] = ACC_EVENT_CODES[code]
        else:
            self.alarms.extend(alarm_names(code))

    def add_lbs(self, cell: dict[str, int]) -> None:
        self.extras.update(cell)


Handler = Callable[[Packet], Decoded]
