import json
import struct
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alarms.report import Report
from ingest.jt808.codec import parse_packet
from ingest.jt808.framing import Jt808Framer
from ingest.jt808.location import LocationError, decode_batch, decode_location
from ingest.jt808.terminal import batch_body, location_body

NOW = datetime(2024, 3, 15, 6, 31, tzinfo=timezone.utc)


def packet_of(wire_hex: str):
    (frame,) = Jt808Framer().feed(bytes.fromhex(wire_hex.replace(" ", "")))
    return parse_packet(frame)


EXAMPLE_A = (
    "7E 02 00 00 26 12 34 56 78 90 12 00 7D 02 00 00 00 01 00 00 00 02 00 BA 7F 0E 07 E4 F1 1C"
    "00 28 00 3C 00 00 18 10 15 10 10 10 01 04 00 00 00 64 02 02 00 7D 01 13 7E"
)
EXAMPLE_B = (
    "7E 02 00 40 30 01 00 00 00 00 01 39 12 34 56 78 00 23 00 10 00 00 00 0C 00 03 01 57 FA F8"
    "06 CC 62 89 00 19 02 0B 00 5A 24 03 15 14 30 45 01 04 00 01 E2 40 12 06 01 00 00 00 07 00"
    "30 01 1A 31 01 0C B0 7E"
)
EXAMPLE_C = (
    "7e0704402d0100000866496077582164881d0001000028000000000000000701a00192091f2a47001600000002"
    "26050916422701040000258230010031010e507e"
)


def decode(body: bytes, is_2019: bool = False, serial: int = 1) -> Report:
    return decode_location(body, terminal_id="13912345678", serial=serial, is_2019=is_2019, received_at=NOW)


def test_example_a():
    packet = packet_of(EXAMPLE_A)
    report = decode(packet.body, serial=packet.header.serial)
    assert report.protocol == "jt808"
    assert report.time == datetime(2018, 10, 15, 2, 10, 10, tzinfo=timezone.utc)
    fix = report.fix
    assert (fix.lat, fix.lon, fix.altitude, fix.speed_kmh, fix.course, fix.valid) == (
        12.222222, 132.444444, 40.0, 6.0, 0.0, True)
    assert report.alarms == ("sos",)
    assert report.raw_alarms == {"jt808_word": 1, "jt808_serial": 126}
    assert report.extras["mileage_km"] == 10.0 and report.extras["fuel_l"] == 12.5
    assert report.status["acc"] is False and report.status["fix_valid"] is True


def test_example_b_geofence_enter_with_area_details():
    packet = packet_of(EXAMPLE_B)
    report = decode(packet.body, is_2019=True, serial=packet.header.serial)
    assert report.time == datetime(2024, 3, 15, 6, 30, 45, tzinfo=timezone.utc)
    assert report.alarms == ("geofence",)
    assert report.extras["geofence_direction"] == "enter"
    assert report.raw_alarms["jt808_area_route"] == {"location_type": "circle", "area_id": 7, "direction": "enter"}
    assert report.raw_alarms["jt808_serial"] == 0x23
    assert report.fix.satellites == 12 and report.fix.speed_kmh == 52.3 and report.fix.course == 90
    assert report.extras["signal"] == 26 and report.extras["mileage_km"] == 12345.6
    status = report.status
    assert status["acc"] and status["gps"] and status["beidou"] and not status["glonass"]
    assert status["moving"] is False  # bit 22 only reported for 2019


def test_example_c_batch_south_latitude():
    packet = packet_of(EXAMPLE_C)
    reports, problems = decode_batch(packet.body, terminal_id="866496077582164", serial=packet.header.serial,
                                     is_2019=True, received_at=NOW)
    assert problems == [] and len(reports) == 1
    report = reports[0]
    assert report.fix.lat == -27.263378 and report.fix.lon == 153.037383
    assert report.fix.satellites == 14 and report.extras["mileage_km"] == 960.2
    assert report.time == datetime(2026, 5, 9, 8, 42, 27, tzinfo=timezone.utc)
    assert "backfill" not in report.extras


def test_status_bits():
    word = 0x1 | 0x2 | 0x10 | 0x20 | 0x300 | 0x400 | 0x800 | 0x1000 | 0x2000 | 0x10000 | 0x200000
    status = decode(location_body(lat=1, lon=1, time=NOW, status=word)).status
    assert status["acc"] and status["out_of_service"] and status["coords_encrypted"]
    assert status["load"] == "full" and status["oil_cut"] and status["circuit_cut"] and status["doors_locked"]
    assert status["door_front_open"] and status["door_driver_open"] and not status["door_rear_open"]
    assert status["galileo"] and "moving" not in status


def test_west_and_signed_coordinates():
    report = decode(location_body(lat=-33.5, lon=-70.25, time=NOW))
    assert (report.fix.lat, report.fix.lon) == (-33.5, -70.25)
    body = bytearray(location_body(lat=10, lon=20, time=NOW))
    body[8:12] = struct.pack(">i", -10_000_000)  # an already-negative value is kept
    assert decode(bytes(body)).fix.lat == -10.0


def test_out_of_range_coordinates_give_no_fix():
    body = bytearray(location_body(lat=10, lon=20, time=NOW))
    body[8:12] = struct.pack(">I", 95_000_000)
    report = decode(bytes(body))
    assert report.fix is None and report.extras["bad_coordinates"] == [95.0, 20.0]


def test_every_alarm_bit_maps_and_2013_reserved_bits_are_not_named():
    all_bits = decode(location_body(lat=1, lon=1, time=NOW, alarm=0xFFFFFFFF), is_2019=True)
    assert len(all_bits.alarms) == 32 and all_bits.alarms[0] == "sos" and all_bits.alarms[-1] == "illegal_door_open"
    bits_2013 = decode(location_body(lat=1, lon=1, time=NOW, alarm=(1 << 15) | (1 << 17) | (1 << 29)))
    assert bits_2013.alarms == ("collision",)
    assert bits_2013.extras["reserved_alarm_bits"] == [15, 17]
    assert bits_2013.raw_alarms["jt808_word"] == (1 << 15) | (1 << 17) | (1 << 29)


def test_route_exit_and_alarm_details():
    items = [
        (0x04, b"\x00\x09"),
        (0x11, b"\x04\x00\x00\x00\x2a"),
        (0x12, b"\x04\x00\x00\x00\x03\x01"),
        (0x13, b"\x00\x00\x00\x05\x00\x3c\x01"),
    ]
    report = decode(location_body(lat=1, lon=1, time=NOW, alarm=(1 << 21) | (1 << 1) | (1 << 22), items=items))
    assert report.alarms == ("overspeed", "route", "route_time")
    assert report.extras["route_direction"] == "exit" and "geofence_direction" not in report.extras
    assert report.raw_alarms["jt808_event_id"] == 9
    assert report.raw_alarms["jt808_overspeed"] == {"location_type": "road_section", "area_id": 42}
    assert report.raw_alarms["jt808_route_time"] == {"section_id": 5, "driving_time_s": 60, "result": "too_long"}
    no_area = decode(location_body(lat=1, lon=1, time=NOW, alarm=1 << 1, items=[(0x11, b"\x00")]))
    assert no_area.raw_alarms["jt808_overspeed"] == {"location_type": "none"}


def test_other_standard_items():
    items = [
        (0x03, b"\x01\xf4"),
        (0x05, bytes([200] * 29 + [0xFF])),
        (0x06, struct.pack(">h", -18)),
        (0x25, struct.pack(">I", 0b10011)),
        (0x2A, b"\x00\x02"),
        (0x2B, struct.pack(">I", (7 << 16) | 3)),
    ]
    extras = decode(location_body(lat=1, lon=1, time=NOW, items=items), is_2019=True).extras
    assert extras["recorder_speed_kmh"] == 50.0
    assert extras["tyre_pressures"][0] == 200 and extras["tyre_pressures"][-1] is None
    assert extras["compartment_temp_c"] == -18
    assert extras["vehicle_signals"] == ["low_beam", "high_beam", "brake"]
    assert extras["io_status"] == {"deep_sleep": False, "sleep": True}
    assert extras["analog"] == {"ad0": 3, "ad1": 7}


def test_unknown_wrong_length_duplicate_and_overlong_items():
    body = location_body(lat=1, lon=1, time=NOW, items=[
        (0x99, b"\xaa\xbb"),  # vendor id nobody documents: kept raw
        (0x31, b"\x05"),
        (0x31, b"\x09"),  # duplicate: the first wins
        (0x01, b"\x00\x01"),  # standard id, wrong length: kept raw
    ]) + b"\x30\x05\x01"  # declares 5 bytes, 1 left: the walk stops
    report = decode(body)
    assert report.fix.satellites == 5
    assert report.extras["raw_items"] == {"99": "aabb", "01": "0001"}
    assert "mileage_km" not in report.extras and "signal" not in report.extras
    assert len(report.extras["item_problems"]) == 2


def test_a_walk_that_breaks_after_read_items_keeps_the_first_values_and_the_field_order():
    # The common items are read in one walk; a duplicate met later sends the body to the careful
    # walk, which must not see anything the first walk already wrote.
    items = [
        (0x01, b"\x00\x00\x03\xe8"),
        (0x12, b"\x01\x00\x00\x00\x07\x00"),
        (0x30, b"\x11"),
        (0x01, b"\x00\x00\x00\x01"),  # duplicate mileage: ignored
        (0x31, b"\x06"),
    ]
    report = decode(location_body(lat=1, lon=1, time=NOW, alarm=1 << 20, items=items))
    assert list(report.extras) == ["status_word", "item_problems", "mileage_km", "geofence_direction", "signal"]
    assert report.extras["item_problems"] == ["duplicate item 0x01 ignored"]
    assert report.extras["mileage_km"] == 100.0 and report.extras["signal"] == 0x11
    assert list(report.raw_alarms) == ["jt808_word", "jt808_serial", "jt808_area_route"]
    assert report.fix.satellites == 6


@pytest.mark.parametrize("tail, problem", [
    (b"\x31", "stray byte at offset 35"),
    (b"\x31\x02\x07", "item 0x31 declares 2 bytes, 1 left"),
])
def test_a_broken_item_list_is_read_up_to_the_break(tail, problem):
    body = location_body(lat=1, lon=1, time=NOW, items=[(0x30, b"\x09"), (0x02, b"\x00\x64")]) + tail
    report = decode(body)
    assert list(report.extras) == ["status_word", "item_problems", "signal", "fuel_l"]
    assert report.extras["item_problems"] == [problem]
    assert report.extras["fuel_l"] == 10.0 and report.fix.satellites is None


def test_items_keep_the_order_they_were_sent_in():
    items = [(0x30, b"\x01"), (0x99, b"\xab"), (0x2A, b"\x00\x01"), (0x01, b"\x00\x00\x00\x0a"),
             (0x03, b"\x00\x32")]
    extras = decode(location_body(lat=1, lon=1, time=NOW, items=items)).extras
    assert list(extras) == ["status_word", "signal", "io_status", "mileage_km", "recorder_speed_kmh", "raw_items"]


def test_invalid_time_uses_the_receive_time():
    body = bytearray(location_body(lat=1, lon=1, time=NOW))
    body[22:28] = b"\x00" * 6
    report = decode(bytes(body))
    assert report.time == NOW and report.extras["time_invalid"] == "000000000000"


def test_short_body_is_an_error():
    with pytest.raises(LocationError):
        decode(b"\x00" * 27)


def test_batch_keeps_good_items_around_a_bad_one():
    good = location_body(lat=1, lon=2, time=NOW)
    reports, problems = decode_batch(batch_body([good, b"\x00" * 5, good], data_type=1),
                                     terminal_id="1", serial=3, received_at=NOW)
    assert len(reports) == 2 and all(r.extras["backfill"] for r in reports)
    assert len(problems) == 1 and "item 2" in problems[0]


def test_report_crosses_the_bus_as_json():
    report = decode(packet_of(EXAMPLE_B).body, is_2019=True)
    message = json.loads(json.dumps(report.to_message()))
    assert Report.from_message(message) == report


@settings(max_examples=300)
@given(st.binary(min_size=28, max_size=200), st.booleans())
def test_any_body_decodes_or_fails_cleanly(body, is_2019):
    report = decode(body, is_2019)
    json.dumps(report.to_message())
    assert report.time.tzinfo is not None
    if report.fix is not None:
        assert -90 <= report.fix.lat <= 90 and -180 <= report.fix.lon <= 180


@given(st.binary(max_size=27))
def test_short_bodies_raise_location_error(body):
    with pytest.raises(LocationError):
        decode(body)


def test_batch_items_use_the_device_model():
    item = location_body(lat=1, lon=2, time=NOW, alarm=1 << 16, items=[(0xF8, b"\x49\x36")])
    reports, _ = decode_batch(batch_body([item]), terminal_id="1", serial=3, received_at=NOW, model="C5L")
    assert reports[0].extras["steps"] == 18742 and reports[0].alarms == ()
    reports, _ = decode_batch(batch_body([item]), terminal_id="1", serial=3, received_at=NOW, model="AL300")
    assert reports[0].alarms == ("movement",) and "steps" not in reports[0].extras
