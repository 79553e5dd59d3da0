"""RTP packets (RFC 3550): the fixed header, parsed and built with one precompiled ``struct``."""

from __future__ import annotations

import struct
from typing import NamedTuple

HEADER = struct.Struct("!BBHII")
VERSION_BYTE = 0x80  # version 2, no padding, no extension, no CSRC


class RtpPacket(NamedTuple):
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket | None:
    """The packet, or None for anything that is not RTP version 2 with a consistent length."""
    if len(data) < 12:
        return None
    b0, b1, seq, ts, ssrc = HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        return None
    offset = 12 + 4 * (b0 & 0x0F)
    end = len(data)
    if b0 & 0x10:
        if offset + 4 > end:
            return None
        offset += 4 + 4 * int.from_bytes(data[offset + 2:offset + 4], "big")
    if b0 & 0x20:
        end -= data[-1]
    if offset > end:
        return None
    return RtpPacket(b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, data[offset:end])


def build_rtp(payload_type: int, marker: bool, seq: int, timestamp: int, ssrc: int, payload: bytes) -> bytes:
    return HEADER.pack(VERSION_BYTE, payload_type | (0x80 if marker else 0), seq & 0xFFFF,
                       timestamp & 0xFFFFFFFF, ssrc) + payload
