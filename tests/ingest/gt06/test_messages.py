"""Command replies 0x15/0x21 and the 0x94 information packet."""

from __future__ import annotations

from datetime import datetime, timezone

from ingest.gt06.decoder import TerminalContext, decode
from ingest.gt06.framing import Frame, build_frame

NOW = datetime(2024, 5, 1, tzinfo=timezone.utc)
CTX = TerminalContext("123456789012345")


def _decode(raw: bytes):
    return decode(Frame(raw), CTX, NOW)


def test_0x15_iccid_reply_from_the_brief():
    d = _decode(bytes.fromhex("787828152000000000 3C49434349443A38393838323339303030303039373330323635303E"
                              "00020D446F260D0A".replace(" ", "")))
    assert d.kind == "command_reply" and d.reply is None
    assert d.command_reply.text == "<ICCID:89882390000097302650>" and d.command_reply.server_flag == 0
    assert d.report.extras == {"iccid": "89882390000097302650"} and d.report.fix is None


def test_0x15_with_a_zero_length_byte_runs_to_the_language_word():
    body = b"\x00" + (77).to_bytes(4, "big") + b"DYD=Success!" + b"\x00" * 5 + b"\x00\x02"
    d = _decode(build_frame(0x15, body, 3))
    assert (d.command_reply.server_flag, d.command_reply.text, d.report) == (77, "DYD=Success!", None)


def test_0x21_utf16_reply_from_the_brief():
    d = _decode(bytes.fromhex("797900262100000000020043006F006D006D0061006E00640020006500720072006F00720021"
                              "00236E850D0A"))
    assert d.command_reply.text == "Command error!" and d.report is None


def test_0x21_position_text_becomes_a_fix():
    text = (b"Current position!Lat:S33.868820,Lon:W70.650000,Course:275.00,Speed:72.00,"
            b"DateTime:2024-03-15 14:30:45")
    d = _decode(build_frame(0x21, (9).to_bytes(4, "big") + b"\x01" + text, 5, extended=True))
    fix = d.report.fix
    assert (fix.lat, fix.lon, fix.course, fix.speed_kmh) == (-33.86882, -70.65, 275, 72)
    assert d.report.time == datetime(2024, 3, 15, 14, 30, 45, tzinfo=timezone.utc)
    assert d.command_reply.server_flag == 9


def test_0x94_sub_types():
    power = _decode(build_frame(0x94, b"\x00\x04\xEB", 1, extended=True)).report
    assert power.status == {"power_v": 12.59} and power.extras["info_type"] == 0
    door = _decode(build_frame(0x94, b"\x05\x01", 2, extended=True)).report
    assert door.status == {"door": True, "input1": False}
    iccid = bytes.fromhex("0123456789012345" "0460001234567890" "89860012345678901234")
    assert _decode(build_frame(0x94, b"\x0a" + iccid, 3, extended=True)).report.extras["iccid"] == \
        "89860012345678901234"
    sync = _decode(build_frame(0x94, b"\x04ALM1=C5;DYD=01;", 4, extended=True)).report
    assert sync.extras["status_sync"] == {"ALM1": "C5", "DYD": "01"}
    other = _decode(build_frame(0x94, b"\x7f\x01\x02", 5, extended=True)).report
    assert other.extras["info_data"] == "0102"
