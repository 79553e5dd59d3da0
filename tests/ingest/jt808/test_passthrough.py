import json
import struct
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.jt808.messages import BodyError
from ingest.jt808.passthrough import decode_passthrough

NOW = datetime(2024, 3, 15, 6, 31, tzinfo=timezone.utc)
TIME = bytes.fromhex("240315143100")  # 14:31:00 Beijing = 06:31:00 UTC
COORDS = struct.pack(">III", 0x2 | 0x8, 22_500_000, 114_000_000)  # fixed, west


def decode(body: bytes):
    return decode_passthrough(body, terminal_id="1", serial=7, received_at=NOW)


def test_driver_card_line():
    (report,) = decode(b"\x40\x00\x18GTSL|6|1|0|10218094|1|\r\n")
    assert report.extras["driver_unique_id"] == "10218094"
    assert report.fix is None and report.time == NOW and report.raw_alarms["jt808_serial"] == 7


def test_other_text_and_a_short_card_line():
    (report,) = decode(b"\x40hello\r\n")
    assert report.extras["data"] == "hello"
    assert decode(b"\x40GTSL|6|1") == []


def test_obd_rt_line():
    (report,) = decode(b"\x41$OBD-RT,12.3,0,20,0.00,0.00,0,10.89,31.15,181.68,181,54.26,565.96,0,0,0\r\n")
    assert report.extras["fuel_used"] == 565.96 and report.extras["power"] == 12.3


def test_can_bus_values_with_position():
    values = bytes.fromhex("052b 01 50  0536 02 03b8  0545 04 0000001e")  # fuel %, rpm, an unnamed I/O
    body = b"\xf0" + TIME + b"\x00\x02\x01" + bytes((3,)) + values + COORDS
    (report,) = decode(body)
    assert report.time == NOW
    assert report.extras["fuel"] == 80 and report.extras["rpm"] == 952 and report.extras["io1349"] == 30
    assert (report.fix.lat, report.fix.lon, report.fix.valid) == (22.5, -114.0, True)


def test_can_bus_trouble_codes_and_alarms():
    codes = b"\x00\x01" + b"\xff" * 4 + b"\x00\x01" + struct.pack(">II", 0x1457, 2) + b"\x00\x06P1457\x00"
    (report,) = decode(b"\xf0" + TIME + b"\x01\x02\x02" + codes + COORDS)
    assert report.extras["dtcs"] == "P1457" and report.extras["archive"] is True and report.fix.lat == 22.5
    alarms = b"\x02" + b"\x26\x00" + b"\x31\x01\x00"
    (report,) = decode(b"\xf0" + TIME + b"\x00\x02\x03" + alarms + COORDS)
    assert report.alarms == ("accident", "door") and report.fix is not None


def test_sensor_samples_with_a_full_position():
    position = COORDS + struct.pack(">hHH", 12, 345, 90) + TIME
    sample = struct.pack(">H", 0x03) + TIME + struct.pack(">Hhh", 3137, 244, 284)
    (report,) = decode(b"\x54" + position + sample)
    assert report.extras["device_temp"] == 24.4 and report.extras["humidity"] == 28.4
    assert report.extras["light_sensor"] == 3137
    assert report.fix.speed_kmh == 34.5 and report.fix.altitude == 12 and report.time == NOW


def test_ble_tags():
    position = COORDS + struct.pack(">hHH", 0, 0, 0) + TIME
    (report,) = decode(b"\x53" + position + b"\x01" + b"\x00" + bytes.fromhex("aabbcc001122") + b"\xbd\x02\x0b\x04")
    assert report.extras["tag1_mac"] == "aabbcc001122" and report.extras["tag1_rssi"] == -67
    assert report.extras["tag1_data"] == "0b04"


def test_bare_position_and_unknown_types():
    (report,) = decode(b"\xff" + TIME + struct.pack(">iihHH", -22_500_000, 114_000_000, 5, 600, 180))
    assert (report.fix.lat, report.fix.lon, report.fix.speed_kmh) == (-22.5, 114.0, 60.0)
    assert decode(b"\x99anything") == []


def test_truncated_body_is_a_body_error():
    with pytest.raises(BodyError):
        decode(b"\xf0" + TIME)
    with pytest.raises(BodyError):
        decode(b"")


@settings(max_examples=300)
@given(st.sampled_from([0x40, 0x41, 0xF0, 0xFF, 0xF3, 0x53, 0x54]), st.binary(max_size=80))
def test_any_body_decodes_or_is_a_body_error(kind, rest):
    try:
        reports = decode(bytes((kind,)) + rest)
    except BodyError:
        return
    for report in reports:
        json.dumps(report.to_message())
