"""DTMF as RFC 4733 telephone events (received and sent) and as SIP INFO bodies (the fallback)."""

from __future__ import annotations

import struct
from collections import deque

EVENTS = "0123456789*#ABCD"
_EVENT = struct.Struct("!BBH")


def parse_event(payload: bytes) -> tuple[int, bool, int] | None:
    """(event, end, duration) of a telephone-event payload, or None if it is too short."""
    if len(payload) < 4:
        return None
    event, flags, duration = _EVENT.unpack_from(payload)
    return event, bool(flags & 0x80), duration


class DtmfReceiver:
    """Turns RFC 4733 packets into digits, one per event.

    An event is identified by (SSRC, RTP timestamp, event code): every packet of one key press, including the
    usually three redundant end packets, carries the event's start timestamp. The digit is reported on
    the first packet seen, so a lost start or lost end packets still give exactly one digit.
    """

    def __init__(self, memory: int = 16):
        self._seen: deque[tuple[int, int, int]] = deque(maxlen=memory)

    def feed(self, ssrc: int, timestamp: int, payload: bytes) -> str | None:
        parsed = parse_event(payload)
        if parsed is None or parsed[0] >= len(EVENTS):
            return None
        key = (ssrc, timestamp, parsed[0])
        if key in self._seen:
            return None
        self._seen.append(key)
        return EVENTS[parsed[0]]


def event_payloads(digit: str, duration_ms: int = 160, volume: int = 10, packet_ms: int = 20) -> list[bytes]:
    """The payloads for one key press: growing durations every ``packet_ms``, then three end packets
    (RFC 4733 2.5.1.4). All are sent with the same RTP timestamp, the first one with the marker bit."""
    event = EVENTS.index(digit.upper())
    step = 8 * packet_ms
    total = max(step, 8 * duration_ms)
    payloads = [_EVENT.pack(event, volume & 0x3F, d) for d in range(step, total, step)]
    payloads += [_EVENT.pack(event, 0x80 | (volume & 0x3F), total)] * 3
    return payloads


def parse_info_body(content_type: str, body: bytes) -> str | None:
    """The digit of a SIP INFO request (``application/dtmf-relay`` or ``application/dtmf``)."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if kind == "application/dtmf-relay":
        for line in text.splitlines():
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal":
                text = value.strip()
                break
        else:
            return None
    elif kind != "application/dtmf":
        return None
    if text == "10":
        text = "*"
    elif text == "11":
        text = "#"
    return text.upper() if len(text) == 1 and text.upper() in EVENTS else None
