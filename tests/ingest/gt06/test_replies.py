"""Server-to-terminal frames: the exact bytes of gt06.md §2, §5.6-5.7, §8."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ingest.gt06 import replies
from ingest.gt06.framing import Frame


@pytest.mark.parametrize("protocol, serial, expected", [
    (0x01, 0x0001, "787805010001D9DC0D0A"),
    (0x01, 0x0005, "7878050100059FF80D0A"),
    (0x13, 0x000F, "78780513000F008F0D0A"),
    (0x16, 0x0008, "7878051600084D8D0D0A"),
    (0x16, 0x0009, "7878051600095C040D0A"),
    (0x12, 0x0003, "787805120003903F0D0A"),
])
def test_acks_echo_protocol_and_serial(protocol, serial, expected):
    assert replies.ack(protocol, serial) == bytes.fromhex(expected)


def test_extended_ack_uses_the_two_byte_length():
    frame = Frame(replies.ack(0x33, 0x0102, extended=True))
    assert frame.raw[:4] == b"\x79\x79\x00\x05" and frame.crc_ok and frame.serial == 0x0102


def test_time_calibration_is_utc():
    now = datetime(2024, 12, 31, 23, 59, 58, tzinfo=timezone(timedelta(hours=2)))
    frame = Frame(replies.time_calibration(6, now))
    assert frame.raw[:4] == bytes.fromhex("78780B8A") and frame.crc_ok and frame.serial == 6
    assert frame.body == bytes((24, 12, 31, 21, 59, 58))


def test_online_commands_match_the_brief():
    assert replies.online_command("Relay,1#", 0, 0) == bytes.fromhex(
        "787812800C0000000052656C61792C312300009DEE0D0A")
    where = bytes.fromhex("787810800A000000015748455245230001389F0D0A")
    assert replies.online_command("WHERE#", 1, 1) == where
    with_language = Frame(replies.online_command("WHERE#", 2, 7, language=2))
    assert with_language.body[-2:] == b"\x00\x02" and with_language.crc_ok


def test_bad_commands_are_refused():
    with pytest.raises(ValueError):
        replies.online_command("Relais,ä#", 1)
    with pytest.raises(ValueError):
        replies.online_command("X" * 250, 1)


def test_address_reply_is_an_english_address_packet():
    frame = Frame(replies.address_reply(0x42, b"13800138000"))
    assert frame.extended and frame.protocol == 0x97 and frame.crc_ok and frame.serial == 0x42
    text = frame.body[5:]
    assert frame.body[0] == len(text) + 4 and text.startswith(b"ADDRESS&&") and text.endswith(b"##")
    assert b"13800138000" + b"\x00" * 10 in text
