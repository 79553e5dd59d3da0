"""Frames the server sends to a GT06 terminal (gt06.md §2, §5.5-5.7, §6).

Acks echo the serial of the packet they answer; the 0x80 online command carries the server's
own serial and a server flag the terminal echoes in its 0x15/0x21 reply.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ingest.gt06.framing import build_frame

LOGIN = 0x01
STATUS = 0x13
HEARTBEAT = 0x23
TIME_REQUEST = 0x8A
ONLINE_COMMAND = 0x80
ADDRESS_ENGLISH = 0x97

# Packets the terminal expects a 5-byte echo for (gt06.md §6), besides the login.
ACKED = frozenset({0x13, 0x23, 0x16, 0x26, 0x27, 0x19, 0xA4, 0xA5})


def ack(protocol: int, serial: int, *, extended: bool = False) -> bytes:
    """``78 78 05 <protocol> <serial> <crc> 0D 0A`` (``79 79 00 05 ...`` for extended packets)."""
    return build_frame(protocol, b"", serial, extended=extended)


def time_calibration(serial: int, now: datetime) -> bytes:
    """0x8A reply: the current UTC time as YY MM DD hh mm ss (gt06.md §5.7)."""
    t = now.astimezone(timezone.utc)
    content = bytes((t.year - 2000, t.month, t.day, t.hour, t.minute, t.second))
    return build_frame(TIME_REQUEST, content, serial)


def address_reply(serial: int, phone: bytes, address: str = "") -> bytes:
    """English address packet (0x97, ``79 79``) answering a 0x1A/0x2A query.

    Watchline has no reverse geocoder at the edge; an empty address tells the terminal the
    server answered. The ``ADDRESS`` marker is the brief's unverified recollection (§5.5).
    """
    phone = phone[:21].ljust(21, b"\x00")
    text = b"ADDRESS&&" + address.encode("utf-16-be") + b"&&" + phone + b"##"
    content = bytes((len(text) + 4,)) + b"\x00\x00\x00\x00" + text
    return build_frame(ADDRESS_ENGLISH, content, serial, extended=True)


def online_command(command: str, serial: int, server_flag: int = 0, language: int | None = None) -> bytes:
    """0x80 online command (gt06.md §5.6): ASCII command in a ``78 78`` frame."""
    try:
        text = command.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError("GT06 online commands are ASCII") from None
    content = bytes((len(text) + 4,)) + (server_flag & 0xFFFFFFFF).to_bytes(4, "big") + text
    if language is not None:
        content += (language & 0xFFFF).to_bytes(2, "big")
    if len(text) + 4 > 0xFF or len(content) + 5 > 0xFF:
        raise ValueError(f"command of {len(text)} characters is too long for one GT06 frame")
    return build_frame(ONLINE_COMMAND, content, serial)
