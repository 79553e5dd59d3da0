from datetime import datetime, timezone

from ingest.jt808.codec import parse_packet
from ingest.jt808.framing import Jt808Framer
from ingest.jt808.location import decode_location
from ingest.jt808.terminal import STATUS_SOUTH, STATUS_WEST, TerminalIdentity, bcd_time, location_body


def test_bcd_time_is_beijing_time():
    assert bcd_time(datetime(2024, 3, 15, 6, 30, 45, tzinfo=timezone.utc)) == bytes.fromhex("240315143045")


def test_location_body_sets_hemisphere_bits_and_round_trips():
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    body = location_body(lat=-12.5, lon=-45.25, time=when, speed_kmh=33.3, course=270, altitude=-5)
    status = int.from_bytes(body[4:8], "big")
    assert status & STATUS_SOUTH and status & STATUS_WEST
    report = decode_location(body, terminal_id="1", serial=0)
    assert (report.fix.lat, report.fix.lon, report.fix.speed_kmh, report.fix.course, report.fix.altitude) == (
        -12.5, -45.25, 33.3, 270, -5)
    assert report.time == when


def test_identity_serial_wraps_and_packets_parse():
    terminal = TerminalIdentity("13912345678", is_2019=True, version=1, serial=0xFFFF)
    first, second = terminal.packet(0x0002, b""), terminal.packet(0x0002, b"")
    frames = Jt808Framer().feed(first + second)
    assert [parse_packet(f).header.serial for f in frames] == [0xFFFF, 0]
    assert parse_packet(frames[0]).header.phone == "00000000013912345678"
