"""RTP header parsing and building."""

from __future__ import annotations

from callflows.media.rtp import RtpPacket, build_rtp, parse_rtp


def test_round_trip():
    data = build_rtp(8, True, 65536 + 7, 2**32 + 160, 0xDEADBEEF, b"\xd5" * 160)
    assert parse_rtp(data) == RtpPacket(8, True, 7, 160, 0xDEADBEEF, b"\xd5" * 160)


def test_csrc_extension_and_padding():
    header = bytes([0x80 | 0x20 | 0x10 | 0x01, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
    data = header + b"CSRC" + b"\x00\x01\x00\x01" + b"EXT!" + b"pay" + b"\x00\x02"
    assert parse_rtp(data).payload == b"pay"


def test_rejects_non_rtp():
    assert parse_rtp(b"short") is None
    assert parse_rtp(bytes([0x40]) + bytes(11)) is None  # version 1
    assert parse_rtp(bytes([0x8F]) + bytes(11)) is None  # 15 CSRCs announced, none present
    assert parse_rtp(bytes([0xA0]) + bytes(10) + b"\xff") is None  # padding longer than the packet
