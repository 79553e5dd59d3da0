"""Location tails chosen by exact body length; other lengths are read as documented."""

from __future__ import annotations

from datetime import datetime, timezone

from ingest.gt06.decoder import TerminalContext, decode
from ingest.gt06.framing import Frame, build_frame
from ingest.gt06.simulator import gps_block

NOW = datetime(2024, 5, 1, tzinfo=timezone.utc)
CTX = TerminalContext("123456789012345")
GPS = gps_block(datetime(2024, 4, 30, 8, 15, tzinfo=timezone.utc), 23.1, 114.4, 12, 90)
LBS = bytes.fromhex("01CC00287D001FB8")


def _report(proto: int, body: bytes):
    return decode(Frame(build_frame(proto, body, 1)), CTX, NOW).report


def test_vxt01_status_tail_gives_ignition_and_power():
    r = _report(0x12, GPS + LBS + bytes.fromhex("0204E40400"))  # 31-byte body
    assert r.status["acc"] is True and r.status["power_v"] == 12.52 and r.extras["cell_id"] == 8120


def test_s5_tail_temperature_and_odometer():
    tail = bytes.fromhex("4504B60400") + bytes.fromhex("0000") + b"\x9c" + (5).to_bytes(4, "big")
    r = _report(0x12, GPS + LBS + tail)  # 38-byte body
    assert r.extras["temp1"] == -28 and r.extras["odometer"] == 50 and r.status["power_v"] == 12.06


def test_seeworld_0x22_temperature_and_humidity():
    tail = bytes.fromhex("01CC0025030328E7A0") + b"\x01\x00\x00" + bytes(8) + bytes.fromhex("8020" "1194")
    r = _report(0x22, GPS + tail)
    assert r.extras["temp1"] == -0.32 and r.extras["humidity"] == 45.0 and r.extras["cell_id"] == 0x0328E7A0


def test_sl4x_altitude_goes_into_the_fix():
    altitude = (-12).to_bytes(2, "big", signed=True)
    tail = bytes.fromhex("02D4" "0002" "000A" "C3C70DBDC4150100" "010500") + altitude
    r = _report(0x31, GPS + tail)
    assert r.fix.altitude == -12 and r.extras["mnc"] == 2 and "altitude" not in r.extras


def test_other_lengths_are_read_as_documented():
    r = _report(0x12, GPS + LBS + b"\x00\x00")  # 28 bytes: not a known tail, extra bytes ignored
    assert r.extras == {"mcc": 460, "mnc": 0, "lac": 10365, "cell_id": 8120} and r.status == {}
