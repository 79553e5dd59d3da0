"""Vendor forms: read by protocol number and body length, never guessed further."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ingest.gt06.decoder import DecodeError, TerminalContext, decode
from ingest.gt06.framing import Frame, build_frame
from ingest.gt06.simulator import gps_block

NOW = datetime(2024, 5, 1, tzinfo=timezone.utc)
CTX = TerminalContext("123456789012345")
WHEN = datetime(2024, 4, 30, 8, 15, 0, tzinfo=timezone.utc)


def _decode(proto: int, body: bytes, extended: bool = False):
    return decode(Frame(build_frame(proto, body, 11, extended=extended)), CTX, NOW)


def test_0x70_modules_with_gps_and_event():
    gps = (int(WHEN.timestamp()).to_bytes(4, "big") + b"\x08" + (232).to_bytes(2, "big")
           + gps_block(WHEN, 48.5, 2.25, 30, 90)[7:])
    body = (b"\x00\x33\x00\x12" + gps + b"\x00\x2b\x00\x01\x14" + b"\x00\x18\x00\x02\x01\x72"
            + b"\x00\x99\x00\x02\xab\xcd")
    d = _decode(0x70, body, extended=True)
    r = d.report
    assert (r.time, r.fix.lat, r.fix.lon, r.fix.altitude, r.fix.satellites) == (WHEN, 48.5, 2.25, 232, 8)
    assert r.alarms == ("removing",) and r.extras["event"] == 0x14 and r.status["battery_v"] == 3.7
    assert r.extras["modules"] == {"0099": "abcd"} and d.reply[3] == 0x70
    with pytest.raises(DecodeError):
        _decode(0x70, b"\x00\x33\x00\x40" + gps, extended=True)  # module longer than the body


def test_0x95_camera_alarms():
    short = _decode(0x95, bytes((24, 4, 30, 8, 15, 0, 0x90))).report
    assert short.alarms == ("hard_acceleration",) and short.time == WHEN and short.fix is None
    sos = _decode(0x95, bytes((24, 4, 30, 8, 15, 0, 0x01))).report
    assert sos.alarms == ("general",)  # the short form's 0x01 is a generic alarm, SOS only when extended


def test_0x9b_pass_through_text_or_hex():
    assert _decode(0x9B, b"\x03D7520A62\r\n", extended=True).report.extras["serial_data"] == "D7520A62"
    assert _decode(0x9B, b"\x03\x80\xd6\x00", extended=True).report.extras["serial_data"] == "80d600"


def test_long_heartbeat_of_obd_firmware():
    body = bytes.fromhex("02 8019 00 00 2e 42 016f 000000 011c".replace(" ", ""))  # 14 bytes
    d = _decode(0x13, body)
    assert d.reply is not None and d.report.status["power_v"] == 3.67
    assert d.report.status["battery_percent"] == 46 and d.report.extras["temp1"] == 28.4


def test_az735_extended_location_and_alarm():
    gps = bytes((24, 4, 30, 8, 15, 0)) + b"\x0c" + gps_block(WHEN, 10.0, -20.0, 5, 45)[6:]
    body = gps + b"\x09" + bytes.fromhex("01FE0A007C000911") + b"\x24" + b"\x00" + b"\x00" + b"\xa5" + b"\x00"
    d = _decode(0x33, body, extended=True)
    assert (d.report.fix.lat, d.report.fix.lon) == (10.0, -20.0) and d.report.alarms == ("door",)
    assert d.report.extras["mcc"] == 510 and d.reply[:4] == b"\x79\x79\x00\x05"


def test_0x16_driver_card_tail():
    body = gps_block(WHEN, 1.0, 2.0, 0, 0) + b"\x08" + bytes.fromhex("01CC0025EF40E88C") + bytes.fromhex(
        "4506040001") + bytes.fromhex("c3000001453f9201")
    r = _decode(0x16, body).report
    assert r.extras["driver_id"] == "c3000001453f9201" and r.status["charging"]
