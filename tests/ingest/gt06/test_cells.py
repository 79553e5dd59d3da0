"""Multi-cell LBS lists and WiFi scans become fix-less Reports with cells/WiFi in extras."""

from __future__ import annotations

from datetime import datetime, timezone

from ingest.gt06.decoder import TerminalContext, decode
from ingest.gt06.framing import Frame, Gt06Framer, build_frame

NOW = datetime(2024, 5, 1, tzinfo=timezone.utc)
CTX = TerminalContext("123456789012345")


def test_0x28_lbs_list():
    cells = bytes.fromhex("287D001F713E") + bytes.fromhex("287D001F7231") + bytes(6 * 5)
    body = bytes((24, 5, 1, 10, 0, 0)) + bytes.fromhex("01CC00") + cells + b"\xff" + b"\x00\x02"
    d = decode(Frame(build_frame(0x28, body, 9)), CTX, NOW)
    r = d.report
    assert d.kind == "location" and d.reply is None and r.fix is None
    assert r.time == datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    assert r.extras["cells"] == [
        {"mcc": 460, "mnc": 0, "lac": 0x287D, "cell_id": 0x1F71, "rssi": -0x3E},
        {"mcc": 460, "mnc": 0, "lac": 0x287D, "cell_id": 0x1F72, "rssi": -0x31},
    ]
    assert (r.extras["lac"], r.extras["cell_id"]) == (0x287D, 0x1F71)


def test_0x69_wifi_scan_without_serial_or_crc():
    raw = bytes.fromhex("78780169" "171023110850" "00112233445566" "0100cc08" "0c4e2fa564" "0d0a")
    frame = Gt06Framer().feed(raw)[0]
    d = decode(frame, CTX, NOW)
    assert d.report.time == datetime(2017, 10, 23, 11, 8, 50, tzinfo=timezone.utc)
    assert d.report.extras["wifi"] == [{"mac": "00:11:22:33:44:55", "rssi": -0x66}]
    cell = {"mcc": 204, "mnc": 8, "lac": 0x0C4E, "cell_id": 0x2FA5, "rssi": -0x64}
    assert d.report.extras["cells"] == [cell]
    assert d.reply == b"\x78\x78\x00\x69" + bytes.fromhex("171023110850") + b"\r\n"
